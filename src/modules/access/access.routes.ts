import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { AuditLog } from "../../platform/audit.js";
import { actorOf } from "../../platform/auth.js";
import type { Database } from "../../platform/database.js";
import { notFound } from "../../platform/errors.js";
import {
  errorResponses,
  IdParamsSchema,
  listQuerySchema,
  parseListQuery,
  sendCreated,
  sendList,
} from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import { ApiKeyCreateSchema, ApiKeySchema, AuditEventSchema, CreatedApiKeySchema } from "./access.schemas.js";
import { type AccessService, API_KEY_PATH } from "./access.service.js";

const ADMIN = { roles: ["admin"] as const };
const TAG = ["administration"];
const API_KEY_FILTERS = {
  role: { values: ["admin", "crm", "network", "finance", "subscriber"] },
  name: {},
  billingAccountId: { isId: true },
};
const AUDIT_FILTERS = { entityType: {}, entityId: {}, action: {}, actorKeyId: { isId: true } };

/** API key administration and the audit trail, for admins. */
export function accessRoutes(access: AccessService, database: Database, audit: AuditLog) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      API_KEY_PATH,
      {
        config: ADMIN,
        schema: {
          tags: TAG,
          summary: "Issue an API key; the answer is the only time the secret is shown",
          body: ApiKeyCreateSchema,
          response: { 201: CreatedApiKeySchema, ...errorResponses(409, 413, 415, 422) },
        },
      },
      async (request, reply) => sendCreated(reply, await access.create(actorOf(request), request.body)),
    );

    app.get(
      API_KEY_PATH,
      {
        config: ADMIN,
        schema: {
          tags: TAG,
          summary: "List API keys (never their secrets)",
          querystring: listQuerySchema(API_KEY_FILTERS),
          response: { 200: Type.Array(Type.Partial(ApiKeySchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, API_KEY_FILTERS, Object.keys(ApiKeySchema.properties));
        const { items, total } = await access.list(list);
        return sendList(reply, items, total, list.fields);
      },
    );

    app.get(
      `${API_KEY_PATH}/:id`,
      {
        config: ADMIN,
        schema: {
          tags: TAG,
          summary: "Retrieve an API key",
          params: IdParamsSchema,
          response: { 200: ApiKeySchema, ...errorResponses(404) },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("api key", id);
        return access.get(id);
      },
    );

    app.delete(
      `${API_KEY_PATH}/:id`,
      {
        config: ADMIN,
        schema: {
          tags: TAG,
          summary: "Revoke an API key",
          params: IdParamsSchema,
          response: { 204: Type.Null(), ...errorResponses(404, 409) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("api key", id);
        await access.revoke(actorOf(request), id);
        return reply.code(204).send();
      },
    );

    app.get(
      "/api/v1/audit-events",
      {
        config: ADMIN,
        schema: {
          tags: TAG,
          summary: "The audit trail, newest first, with redacted before/after snapshots",
          querystring: listQuerySchema(AUDIT_FILTERS),
          response: { 200: Type.Array(Type.Partial(AuditEventSchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, AUDIT_FILTERS, Object.keys(AuditEventSchema.properties));
        const { rows, total } = await audit.list(database.db, list);
        const events = rows.map((row) => ({
          id: String(row.id),
          occurredAt: row.occurredAt.toISOString(),
          ...(row.requestId === null ? {} : { requestId: row.requestId }),
          ...(row.callerRequestId === null ? {} : { callerRequestId: row.callerRequestId }),
          ...(row.actorKeyId === null ? {} : { actorKeyId: row.actorKeyId }),
          actorRole: row.actorRole,
          action: row.action,
          entityType: row.entityType,
          entityId: row.entityId,
          ...(row.before === null ? {} : { before: row.before }),
          ...(row.after === null ? {} : { after: row.after }),
        }));
        return sendList(reply, events, total, list.fields);
      },
    );
  };
}
