import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { type TObject, type TProperties, type TSchema, Type } from "typebox";
import {
  FILTER_TEXT_MAX,
  FILTER_VALUES_MAX,
  PAGE_LIMIT_DEFAULT,
  PAGE_LIMIT_MAX,
  PAGE_OFFSET_MAX,
} from "../shared/limits.js";
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
  bill: "/tmf-api/customerBillManagement/v4",
  payment: "/tmf-api/paymentManagement/v4",
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

/**
 * An attribute a list route filters on (TMF630): equality with comma for OR, and for dates and numbers the
 * operators `.gt .gte .lt .lte` (`orderDate.gte=2026-01-01`). Names are attributes of the resource, dotted into
 * references (`billingAccount.id`); registerReadRoutes checks that against the resource's schema and reads
 * from it what the declaration leaves out (the enum values, whether the attribute is a date or a number).
 */
export interface FilterSpec {
  /** Allowed values (enum filters); anything else is a 400 naming the value. */
  values?: readonly string[];
  /** Each value must be an id (UUID); otherwise a 400. */
  isId?: boolean;
  /** A date-time or number: the range operators apply. */
  range?: "date" | "number";
  /**
   * A name that is no attribute of the resource but an older spelling of one (`billingAccountId` for
   * `billingAccount.id`): accepted, and read as that attribute.
   */
  aliasOf?: string;
  /** A filter on something the resource does not show as an attribute (a line's number): the engine's own. */
  extension?: true;
}

export type FilterSpecs = Record<string, FilterSpec>;

export const RANGE_OPERATORS = ["gt", "gte", "lt", "lte"] as const;
export type RangeOperator = (typeof RANGE_OPERATORS)[number];

/** A range condition of a list query: the attribute, the operator and one value (a date-time or a number). */
export interface RangeFilter {
  attribute: string;
  op: RangeOperator;
  value: string;
}

/** `id` filters every list: an id that is not one of the engine's matches nothing. */
const ID_FILTER: FilterSpec = {};

function withIdFilter(filters: FilterSpecs): FilterSpecs {
  return "id" in filters ? filters : { id: ID_FILTER, ...filters };
}

export function listQuerySchema(filters: FilterSpecs): TObject {
  const properties: TProperties = {
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: PAGE_OFFSET_MAX, default: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT })),
    fields: Type.Optional(Type.String({ maxLength: 1000 })),
  };
  for (const [name, spec] of Object.entries(withIdFilter(filters))) {
    properties[name] = Type.Optional(Type.String({ minLength: 1, maxLength: FILTER_TEXT_MAX }));
    if (spec.range !== undefined) {
      for (const op of RANGE_OPERATORS) properties[`${name}.${op}`] = Type.Optional(Type.String({ maxLength: 64 }));
    }
  }
  return Type.Object(properties, { additionalProperties: false });
}

export interface ListRequest {
  offset: number;
  limit: number;
  fields: readonly string[] | null;
  /** Equality conditions by attribute (dotted for references), each with its OR-ed values; attributes AND. */
  filters: Record<string, string[]>;
  /** Range conditions on dates and numbers; they AND with each other and with `filters`. */
  ranges: RangeFilter[];
  /** The validated query string, for parameters a route adds beyond these (a pattern search). */
  query?: Record<string, unknown>;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const isIsoDate = (value: string) => ISO_DATE.test(value) && !Number.isNaN(Date.parse(value));
const DECIMAL = /^-?\d{1,18}(\.\d{1,18})?$/;

function refuse(name: string, reason: string): AppError {
  return new AppError("bad_request", "invalid_parameter", `${name}: ${reason}`, name);
}

/** Reads paging, fields and filters out of a validated list query. */
export function parseListQuery(
  query: Record<string, unknown>,
  filters: FilterSpecs,
  knownFields: readonly string[],
): ListRequest {
  const parsed: Record<string, string[]> = {};
  const ranges: RangeFilter[] = [];
  for (const [name, spec] of Object.entries(withIdFilter(filters))) {
    const attribute = spec.aliasOf ?? name;
    if (spec.range !== undefined) {
      for (const op of RANGE_OPERATORS) {
        const raw = query[`${name}.${op}`];
        if (typeof raw !== "string") continue;
        const value = raw.trim();
        const valid = spec.range === "date" ? isIsoDate(value) : DECIMAL.test(value);
        if (!valid) {
          throw refuse(
            `${name}.${op}`,
            `"${raw}" is not ${spec.range === "date" ? "an ISO 8601 date or date-time" : "a number"}`,
          );
        }
        ranges.push({ attribute, op, value });
      }
    }
    const raw = query[name];
    if (typeof raw !== "string") continue;
    const values = raw.split(",").map((value) => value.trim());
    if (values.length > FILTER_VALUES_MAX) throw refuse(name, `at most ${FILTER_VALUES_MAX} values`);
    for (const value of values) {
      if (value === "") throw refuse(name, "empty value");
      if (spec.values && !spec.values.includes(value)) {
        throw refuse(name, `"${value}" is not one of ${spec.values.join(", ")}`);
      }
      if (spec.isId && !isUuid(value)) throw refuse(name, `"${value}" is not an id`);
      if (spec.range === "date" && !isIsoDate(value)) {
        throw refuse(name, `"${value}" is not an ISO 8601 date or date-time`);
      }
    }
    parsed[attribute] = [...(parsed[attribute] ?? []), ...values];
  }
  return {
    offset: typeof query.offset === "number" ? query.offset : 0,
    limit: typeof query.limit === "number" ? query.limit : PAGE_LIMIT_DEFAULT,
    fields: parseFields(query.fields, knownFields),
    filters: parsed,
    ranges,
  };
}

/**
 * Whether a resource held in memory (the catalog, the usage specifications) meets a list's equality filters:
 * each attribute (dotted through objects and arrays) has one of the filter's values.
 */
export function matchesFilters(resource: object, filters: Readonly<Record<string, readonly string[]>>): boolean {
  return Object.entries(filters).every(([attribute, values]) =>
    valuesAt(resource, attribute.split(".")).some((value) => values.includes(value)),
  );
}

function valuesAt(node: unknown, path: readonly string[]): string[] {
  if (Array.isArray(node)) return node.flatMap((item) => valuesAt(item, path));
  if (path.length === 0) return node === undefined || node === null ? [] : [String(node)];
  if (typeof node !== "object" || node === null) return [];
  return valuesAt((node as Record<string, unknown>)[path[0] as string], path.slice(1));
}

export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
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
/** What an idempotent request asked, as a hash: a key reused with another request is refused, not replayed. */
export function requestHash(body: unknown): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}

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

/**
 * A path id: anything that is not one of ours is a 404, however long (TMF clients send their own shapes); the
 * request line's own limit bounds it.
 */
export const IdParamsSchema = Type.Object({ id: Type.String({ minLength: 1 }) });

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
