import type { FastifyReply, FastifyRequest } from "fastify";
import { type TObject, type TProperties, type TSchema, Type } from "typebox";
import { FILTER_VALUES_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, PAGE_OFFSET_MAX } from "../shared/limits.js";
import { AppError, invalidField } from "./errors.js";

/**
 * The HTTP conventions of API.md in one place: list queries (paging, `fields`, equality filters with
 * comma for OR), count headers, `Location`, merge-patch bodies, and the shared TMF schemas.
 */

export const TMF_BASE = {
  party: "/tmf-api/party/v4",
  customer: "/tmf-api/customerManagement/v4",
  account: "/tmf-api/accountManagement/v4",
  catalog: "/tmf-api/productCatalogManagement/v4",
  inventory: "/tmf-api/resourceInventoryManagement/v4",
  productInventory: "/tmf-api/productInventory/v4",
  ordering: "/tmf-api/productOrderingManagement/v4",
  usage: "/tmf-api/usageManagement/v4",
} as const;

export const ErrorSchema = Type.Object(
  {
    code: Type.String(),
    reason: Type.String(),
    message: Type.String(),
    status: Type.String(),
    field: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(Type.Object({ line: Type.Integer(), field: Type.String(), reason: Type.String() })),
    ),
    "@type": Type.Literal("Error"),
  },
  { $id: "Error" },
);

/** Every route answers its errors with the TMF error body; these are the statuses each may produce. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of [400, 401, 403, 500, 503, ...statuses]) out[status] = Type.Ref("Error");
  return out;
}

/** A filter a list route accepts: equality on a top-level field, comma-separated values meaning OR. */
export interface FilterSpec {
  /** Allowed values (enum filters); anything else is a 400 naming the value. */
  values?: readonly string[];
  /** Each value must be an id (UUID); otherwise a 400. */
  isId?: boolean;
}

export type FilterSpecs = Record<string, FilterSpec>;

export function listQuerySchema(filters: FilterSpecs): TObject {
  const properties: TProperties = {
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: PAGE_OFFSET_MAX, default: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT })),
    fields: Type.Optional(Type.String({ maxLength: 1000 })),
  };
  for (const name of Object.keys(filters)) {
    properties[name] = Type.Optional(Type.String({ minLength: 1, maxLength: 2000 }));
  }
  return Type.Object(properties, { additionalProperties: false });
}

export interface ListRequest {
  offset: number;
  limit: number;
  fields: readonly string[] | null;
  filters: Record<string, string[]>;
  /** The validated query string, for parameters a route adds beyond these (a pattern search). */
  query?: Record<string, unknown>;
}

/** Reads paging, fields and filters out of a validated list query. */
export function parseListQuery(
  query: Record<string, unknown>,
  filters: FilterSpecs,
  knownFields: readonly string[],
): ListRequest {
  const parsed: Record<string, string[]> = {};
  for (const [name, spec] of Object.entries(filters)) {
    const raw = query[name];
    if (typeof raw !== "string") continue;
    const values = raw.split(",").map((value) => value.trim());
    if (values.length > FILTER_VALUES_MAX) {
      throw new AppError("bad_request", "invalid_parameter", `${name}: at most ${FILTER_VALUES_MAX} values`, name);
    }
    for (const value of values) {
      if (value === "") throw new AppError("bad_request", "invalid_parameter", `${name}: empty value`, name);
      if (spec.values && !spec.values.includes(value)) {
        throw new AppError(
          "bad_request",
          "invalid_parameter",
          `${name}: "${value}" is not one of ${spec.values.join(", ")}`,
          name,
        );
      }
      if (spec.isId && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value)) {
        throw new AppError("bad_request", "invalid_parameter", `${name}: "${value}" is not an id`, name);
      }
    }
    parsed[name] = values;
  }
  return {
    offset: typeof query.offset === "number" ? query.offset : 0,
    limit: typeof query.limit === "number" ? query.limit : PAGE_LIMIT_DEFAULT,
    fields: parseFields(query.fields, knownFields),
    filters: parsed,
  };
}

const ALWAYS_KEPT = ["id", "href", "@type"];

function parseFields(raw: unknown, knownFields: readonly string[]): readonly string[] | null {
  if (typeof raw !== "string" || raw.trim() === "") return null;
  const names = raw.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!knownFields.includes(name) && !ALWAYS_KEPT.includes(name)) {
      throw new AppError(
        "bad_request",
        "invalid_parameter",
        `fields: "${name}" is not a field of this resource`,
        "fields",
      );
    }
  }
  return [...new Set([...ALWAYS_KEPT, ...names])];
}

/** Keeps only the requested top-level fields (plus id, href, @type). */
export function selectFields<T extends object>(resource: T, fields: readonly string[] | null): Partial<T> {
  if (fields === null) return resource;
  const out: Record<string, unknown> = {};
  for (const name of fields) {
    if (name in resource) out[name] = (resource as Record<string, unknown>)[name];
  }
  return out as Partial<T>;
}

/** A reference to a resource: `{id, href, name?, @referredType}` (API.md, resource shape). */
export function tmfRef(path: string, id: string, referredType: string, name?: string) {
  return { id, href: `${path}/${id}`, ...(name !== undefined ? { name } : {}), "@referredType": referredType };
}

/** A list answer: a bare array with X-Total-Count and X-Result-Count. */
export function sendList<T extends object>(
  reply: FastifyReply,
  items: readonly T[],
  total: number,
  fields: readonly string[] | null,
): Partial<T>[] {
  reply.header("x-total-count", String(total));
  reply.header("x-result-count", String(items.length));
  return items.map((item) => selectFields(item, fields));
}

/** A create answer: 201 with the resource and its Location. */
/** The Idempotency-Key header (API.md), or undefined; a header sent twice arrives joined, as Node joins it. */
export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const value = request.headers["idempotency-key"];
  return Array.isArray(value) ? value.join(", ") : value;
}

export function sendCreated<T extends { href: string }>(reply: FastifyReply, resource: T): T {
  reply.code(201).header("location", resource.href);
  return resource;
}

/** `fields` for a single GET: the same rule as lists. */
export function readFieldsParameter(
  query: { fields?: string },
  knownFields: readonly string[],
): readonly string[] | null {
  return parseFields(query.fields, knownFields);
}

export const FieldsQuerySchema = Type.Object(
  { fields: Type.Optional(Type.String({ maxLength: 1000 })) },
  { additionalProperties: false },
);

export const IdParamsSchema = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

/**
 * The body schema of a merge-patch PATCH (RFC 7386): every field optional, and `null` allowed where the
 * field may be removed. The merged resource is validated again as a whole by the service.
 */
export function mergePatchSchema(schema: TObject, removable: readonly string[]): TObject {
  const properties: TProperties = {};
  for (const [name, property] of Object.entries(schema.properties)) {
    const inner = stripOptional(property);
    properties[name] = Type.Optional(removable.includes(name) ? Type.Union([inner, Type.Null()]) : inner);
  }
  const additionalProperties = (schema as { additionalProperties?: boolean }).additionalProperties ?? true;
  return Type.Object(properties, { additionalProperties, minProperties: 1 });
}

function stripOptional(schema: TSchema): TSchema {
  // TypeBox marks optional properties with a symbol-free flag in 1.x; a shallow copy drops nothing else.
  return { ...(schema as object) } as TSchema;
}

/** A reference in a request body must name an id; a missing or non-id value is a field error. */
export function requireRefId(ref: { id?: unknown } | undefined, field: string): string {
  if (!ref || typeof ref.id !== "string" || ref.id === "") throw invalidField(`${field}.id`, "is required");
  return ref.id;
}
