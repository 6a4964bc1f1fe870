import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, type Role, STAFF } from "../../platform/auth.js";
import { AppError, invalidField, notFound } from "../../platform/errors.js";
import { errorResponses, IdParamsSchema, sendCreated } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import {
  LIFECYCLE_STATES,
  NUMBER_CATEGORIES,
  NumberRangeSchema,
  RESOURCE_STATUSES,
  RESOURCE_TYPES,
  ReservationRequestSchema,
  ReservationSchema,
  ResourceCreateSchema,
  ResourcePatchSchema,
  ResourceSchema,
  STATUS_CHANGES,
  standardResource,
} from "./inventory.schemas.js";
import { type InventoryService, RESERVATION_PATH, RESOURCE_PATH } from "./inventory.service.js";
import { parseSimCsv } from "./sim-csv.js";

const WRITERS: readonly Role[] = ["admin", "crm"];
const FILTERS = {
  "@type": { values: RESOURCE_TYPES },
  resourceStatus: { values: RESOURCE_STATUSES },
  lifecycleState: { values: LIFECYCLE_STATES },
  value: {},
  name: { aliasOf: "value" },
  category: { values: NUMBER_CATEGORIES },
};
const ImportResult = Type.Object({ batch: Type.String(), imported: Type.Integer() });

/** TMF639 resources, SIM imports, number ranges and reservations. */
export function inventoryRoutes(inventory: InventoryService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    registerReadRoutes(app, {
      path: RESOURCE_PATH,
      name: "resource",
      tag: "inventory (TMF639)",
      resource: ResourceSchema,
      filters: FILTERS,
      roles: STAFF,
      extraQuery: { valuePattern: Type.Optional(Type.String({ pattern: "^[+0-9*]{1,16}$" })) },
      list: (_actor, request) =>
        inventory.list(
          request,
          typeof request.query?.valuePattern === "string" ? request.query.valuePattern : undefined,
        ),
      get: (_actor, id) => inventory.get(id),
    });

    app.post(
      RESOURCE_PATH,
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["inventory (TMF639)"],
          summary: "Add one SIM (identifiers and secrets) or one number",
          body: ResourceCreateSchema,
          response: { 201: ResourceSchema, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => {
        const input = standardResource(request.body);
        if ("reason" in input) throw invalidField(input.field, input.reason);
        return sendCreated(reply, await inventory.create(actorOf(request), input));
      },
    );

    app.patch(
      `${RESOURCE_PATH}/:id`,
      {
        config: { roles: WRITERS },
        schema: {
          tags: ["inventory (TMF639)"],
          summary:
            "Change a resource's status (lifecycleState, or a standard resourceStatus: available, reserved, suspended): block, unblock or retire a SIM, end a number's quarantine early",
          params: IdParamsSchema,
          body: ResourcePatchSchema,
          response: { 200: ResourceSchema, ...errorResponses(404, 409, 413, 415) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const { lifecycleState, resourceStatus } = request.body;
        const to = lifecycleState ?? STATUS_CHANGES[resourceStatus as keyof typeof STATUS_CHANGES];
        return inventory.changeStatus(actorOf(request), id, to);
      },
    );

    app.post(
      "/api/v1/inventory/sim-imports",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["inventory (TMF639)"],
          summary: "Import SIMs from a vendor file: text/csv with a header row, or a JSON array; all or nothing",
          body: Type.Union([Type.String(), Type.Array(Type.Object({}, { additionalProperties: true }))]),
          response: { 201: ImportResult, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => {
        const records = typeof request.body === "string" ? parseSimCsv(request.body) : request.body;
        if (!Array.isArray(records))
          throw new AppError("bad_request", "invalid_import", "body: must be CSV or a JSON array");
        const result = await inventory.importSims(actorOf(request), records);
        return reply.code(201).send(result);
      },
    );

    app.post(
      "/api/v1/inventory/number-ranges",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["inventory (TMF639)"],
          summary: "Import a range of numbers in one category; all or nothing",
          body: NumberRangeSchema,
          response: { 201: ImportResult, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => reply.code(201).send(await inventory.importRange(actorOf(request), request.body)),
    );

    app.post(
      RESERVATION_PATH,
      {
        config: { roles: WRITERS },
        schema: {
          tags: ["inventory (TMF639)"],
          summary: "Reserve a SIM or a number (a given one, or any matching a pattern or category) until it expires",
          body: ReservationRequestSchema,
          response: { 201: ReservationSchema, ...errorResponses(404, 409, 413, 415) },
        },
      },
      async (request, reply) => sendCreated(reply, await inventory.reserve(actorOf(request), request.body)),
    );

    app.delete(
      `${RESERVATION_PATH}/:id`,
      {
        config: { roles: WRITERS },
        schema: {
          tags: ["inventory (TMF639)"],
          summary: "Release a reservation; the resource is available again",
          params: IdParamsSchema,
          response: { 204: Type.Null(), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("reservation", id);
        await inventory.releaseReservation(actorOf(request), id);
        return reply.code(204).send();
      },
    );
  };
}
