import type { FastifyInstance } from "fastify";
import { type TObject, type TProperties, type TSchema, Type } from "typebox";
import { isId } from "../shared/ids.js";
import type { Actor } from "./audit.js";
import { actorOf, type Role } from "./auth.js";
import { notFound } from "./errors.js";
import {
  errorResponses,
  FieldsQuerySchema,
  type FilterSpecs,
  IdParamsSchema,
  type ListRequest,
  listQuerySchema,
  parseListQuery,
  readFieldsParameter,
  selectFields,
  sendCreated,
  sendList,
} from "./tmf.js";
import type { SchemaTypeProvider } from "./type-provider.js";

/** What a TMF resource's service offers the generic routes. Services know nothing of HTTP. */
export interface ResourceService<R, C, P> {
  list(actor: Actor, request: ListRequest): Promise<{ items: R[]; total: number }>;
  get(actor: Actor, id: string): Promise<R>;
  create(actor: Actor, input: C): Promise<R>;
  update(actor: Actor, id: string, patch: P): Promise<R>;
  remove?(actor: Actor, id: string): Promise<void>;
}

export interface ResourceRoutesSpec<R, C, P> {
  /** Collection path, e.g. /tmf-api/party/v4/individual. */
  path: string;
  /** The resource's name in documentation ("individual"). */
  name: string;
  tag: string;
  resource: TObject;
  create: TObject;
  patch: TObject;
  filters: FilterSpecs;
  roles: { read: readonly Role[]; write: readonly Role[] };
  service: ResourceService<R, C, P>;
  /** Whether DELETE exists; financial records (billing accounts) are closed, never deleted. */
  deletable: boolean;
}

/** What the two read routes of a resource need: its schema, filters, roles and two service calls. */
export interface ReadRoutesSpec<R> {
  path: string;
  name: string;
  tag: string;
  resource: TObject;
  filters: FilterSpecs;
  roles: readonly Role[];
  list(actor: Actor, request: ListRequest): Promise<{ items: R[]; total: number }>;
  get(actor: Actor, id: string): Promise<R>;
  /** A query parameter beyond paging, fields and equality filters (a pattern search), passed to `list` whole. */
  extraQuery?: TProperties;
  /** Whether a path id can name an item (default: one of the engine's UUIDs); anything else is a 404. */
  isItemId?: (id: string) => boolean;
}

/** The schema of an attribute of a resource, dotted through objects and arrays of objects; undefined if none. */
export function attributeSchema(resource: TSchema, path: string): TSchema | undefined {
  let node: TSchema | undefined = resource;
  for (const segment of path.split(".")) {
    node = propertyOf(node, segment);
    if (node === undefined) return undefined;
  }
  return node;
}

function propertyOf(node: TSchema | undefined, name: string): TSchema | undefined {
  if (node === undefined) return undefined;
  const schema = node as { type?: unknown; items?: TSchema; properties?: Record<string, TSchema>; anyOf?: TSchema[] };
  if (schema.type === "array" && schema.items !== undefined) return propertyOf(schema.items, name);
  if (schema.properties?.[name] !== undefined) return schema.properties[name];
  for (const member of schema.anyOf ?? []) {
    const found = propertyOf(member, name);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A route's filters checked against its resource's schema (TMF630: filters name attributes of the resource):
 * a name that is no attribute and no declared alias or extension fails at registration, and an enum's values
 * come from the schema where the declaration does not list them.
 */
export function resolveFilters(resource: TObject, filters: FilterSpecs, where: string): FilterSpecs {
  const resolved: FilterSpecs = {};
  for (const [name, spec] of Object.entries(filters)) {
    const attribute = spec.aliasOf ?? name;
    const schema = attributeSchema(resource, attribute);
    if (schema === undefined && spec.extension !== true) {
      throw new Error(`${where}: filter ${name} is no attribute of the resource (declare it an alias or extension)`);
    }
    const values = (schema as { enum?: unknown[] } | undefined)?.enum;
    resolved[name] =
      spec.values === undefined && Array.isArray(values) ? { ...spec, values: values.map(String) } : spec;
  }
  return resolved;
}

/** GET of the collection (paging, fields, filters, counts) and GET of one item by id (404 for non-ids). */
export function registerReadRoutes<R extends object>(instance: FastifyInstance, spec: ReadRoutesSpec<R>): void {
  const app = instance.withTypeProvider<SchemaTypeProvider>();
  const knownFields = Object.keys(spec.resource.properties);
  const partial = Type.Partial(spec.resource);
  const filters = resolveFilters(spec.resource, spec.filters, spec.path);
  const base = listQuerySchema(filters);
  const querystring = spec.extraQuery
    ? Type.Object({ ...base.properties, ...spec.extraQuery }, { additionalProperties: false })
    : base;
  app.get(
    spec.path,
    {
      config: { roles: spec.roles },
      schema: {
        tags: [spec.tag],
        summary: `List or find ${spec.name} objects`,
        querystring,
        response: { 200: Type.Array(partial), ...errorResponses() },
      },
    },
    async (request, reply) => {
      const query = request.query;
      const list = parseListQuery(query, filters, knownFields);
      const { items, total } = await spec.list(actorOf(request), { ...list, query });
      return sendList(reply, items, total, list.fields);
    },
  );
  app.get(
    `${spec.path}/:id`,
    {
      config: { roles: spec.roles },
      schema: {
        tags: [spec.tag],
        summary: `Retrieve a ${spec.name} by id`,
        params: IdParamsSchema,
        querystring: FieldsQuerySchema,
        response: { 200: partial, ...errorResponses(404) },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(spec.isItemId ?? isId)(id)) throw notFound(spec.name, id);
      const fields = readFieldsParameter(request.query, knownFields);
      return selectFields(await spec.get(actorOf(request), id), fields);
    },
  );
}

/**
 * The five routes of a TMF resource (list, get, create, merge-patch, delete), each a parse, one service
 * call and a reply. Every resource registers through here so the conventions cannot drift apart.
 */
export function registerResourceRoutes<R extends { href: string }, C, P>(
  instance: FastifyInstance,
  spec: ResourceRoutesSpec<R, C, P>,
): void {
  const app = instance.withTypeProvider<SchemaTypeProvider>();
  const itemPath = `${spec.path}/:id`;
  const checkedId = (id: string) => {
    if (!isId(id)) throw notFound(spec.name, id);
    return id;
  };
  registerReadRoutes(app, {
    path: spec.path,
    name: spec.name,
    tag: spec.tag,
    resource: spec.resource,
    filters: spec.filters,
    roles: spec.roles.read,
    list: (actor, request) => spec.service.list(actor, request),
    get: (actor, id) => spec.service.get(actor, id),
  });

  app.post(
    spec.path,
    {
      config: { roles: spec.roles.write },
      schema: {
        tags: [spec.tag],
        summary: `Create a ${spec.name}`,
        body: spec.create,
        response: { 201: spec.resource, ...errorResponses(409, 413, 415, 422) },
      },
    },
    // The validator checked the body against spec.create, the schema the module declared for C; this generic builder
    // cannot see that link, so it is stated here once for every resource.
    async (request, reply) => sendCreated(reply, await spec.service.create(actorOf(request), request.body as C)),
  );

  app.patch(
    itemPath,
    {
      config: { roles: spec.roles.write },
      schema: {
        tags: [spec.tag],
        summary: `Update a ${spec.name} (JSON merge patch)`,
        params: IdParamsSchema,
        body: spec.patch,
        response: { 200: spec.resource, ...errorResponses(404, 409, 413, 415, 422) },
      },
    },
    async (request) => {
      const { id } = request.params;
      return spec.service.update(actorOf(request), checkedId(id), request.body as P);
    },
  );

  const remove = spec.service.remove?.bind(spec.service);
  if (spec.deletable && remove) {
    app.delete(
      itemPath,
      {
        config: { roles: spec.roles.write },
        schema: {
          tags: [spec.tag],
          summary: `Delete a ${spec.name}`,
          params: IdParamsSchema,
          response: { 204: Type.Null(), ...errorResponses(404, 409) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await remove(actorOf(request), checkedId(id));
        return reply.code(204).send();
      },
    );
  }
}
