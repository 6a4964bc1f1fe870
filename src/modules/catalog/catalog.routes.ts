import type { FastifyInstance } from "fastify";
import { type TObject, Type } from "typebox";
import { STAFF } from "../../platform/auth.js";
import { notFound } from "../../platform/errors.js";
import {
  errorResponses,
  type FilterSpecs,
  IdParamsSchema,
  listQuerySchema,
  matchesFilters,
  parseListQuery,
  readFieldsParameter,
  selectFields,
  sendList,
} from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { PATHS } from "./catalog.resources.js";
import {
  CatalogSchema,
  CategorySchema,
  ProductOfferingPriceSchema,
  ProductOfferingSchema,
  ProductSpecificationSchema,
} from "./catalog.schemas.js";
import type { CatalogService, CatalogSnapshot } from "./catalog.service.js";

type ResourceType = keyof CatalogSnapshot["resources"];

const RESOURCES: Record<ResourceType, { schema: TObject; filters: FilterSpecs; name: string }> = {
  productOffering: {
    schema: ProductOfferingSchema,
    name: "product offering",
    filters: {
      lifecycleStatus: { values: ["active", "retired"] },
      isSellable: { values: ["true", "false"] },
      offeringKind: { values: ["plan", "addon", "fee"] },
      businessOnly: { values: ["true", "false"] },
      name: {},
    },
  },
  productOfferingPrice: {
    schema: ProductOfferingPriceSchema,
    name: "product offering price",
    filters: { priceType: { values: ["recurring", "oneTime", "discount"] }, lifecycleStatus: {}, name: {} },
  },
  productSpecification: { schema: ProductSpecificationSchema, name: "product specification", filters: { name: {} } },
  category: { schema: CategorySchema, name: "category", filters: { isRoot: { values: ["true", "false"] }, name: {} } },
  catalog: { schema: CatalogSchema, name: "catalog", filters: { name: {} } },
};

const ListOrVersionQuery = (filters: FilterSpecs) => listQuerySchema(filters);
const ItemQuery = Type.Object(
  {
    fields: Type.Optional(Type.String({ maxLength: 1000 })),
    version: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);

/** TMF620 reads, served from the in-memory snapshot of the current catalog (older versions from the database). */
export function catalogRoutes(catalog: CatalogService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    for (const [type, spec] of Object.entries(RESOURCES) as Array<[ResourceType, (typeof RESOURCES)[ResourceType]]>) {
      const path = PATHS[type];
      const knownFields = Object.keys(spec.schema.properties);
      app.get(
        path,
        {
          config: { roles: STAFF },
          schema: {
            tags: ["catalog (TMF620)"],
            summary: `List or find ${spec.name} objects (current versions)`,
            querystring: ListOrVersionQuery(spec.filters),
            response: { 200: Type.Array(Type.Partial(spec.schema)), ...errorResponses() },
          },
        },
        async (request, reply) => {
          const list = parseListQuery(request.query, spec.filters, knownFields);
          const all = (await catalog.snapshot()).resources[type] as Array<Record<string, unknown>>;
          const matching = all.filter((resource) => matchesFilters(resource, list.filters));
          return sendList(reply, matching.slice(list.offset, list.offset + list.limit), matching.length, list.fields);
        },
      );
      app.get(
        `${path}/:id`,
        {
          config: { roles: STAFF },
          schema: {
            tags: ["catalog (TMF620)"],
            summary: `Retrieve a ${spec.name}: the current version, or ?version=N`,
            params: IdParamsSchema,
            querystring: ItemQuery,
            response: { 200: Type.Partial(spec.schema), ...errorResponses(404) },
          },
        },
        async (request) => {
          const { id } = request.params;
          const query = request.query;
          const fields = readFieldsParameter(query, knownFields);
          const resource =
            query.version === undefined
              ? ((await catalog.snapshot()).resources[type] as Array<{ id: string }>).find((item) => item.id === id)
              : await catalog.resourceVersion(type, id, query.version);
          if (resource === undefined) {
            throw notFound(spec.name, query.version === undefined ? id : `${id} version ${query.version}`);
          }
          return selectFields(resource, fields);
        },
      );
    }
  };
}
