import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { ALERT_KINDS, AlertFields } from "../../platform/alerts.js";
import { actorOf, type Role, STAFF } from "../../platform/auth.js";
import { AppError } from "../../platform/errors.js";
import {
  errorResponses,
  FieldsQuerySchema,
  IdParamsSchema,
  listQuerySchema,
  parseListQuery,
  readFieldsParameter,
  selectFields,
  sendList,
} from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { ALERTS_PATH, type AlertsService } from "./alerts.service.js";
import type { LiveHub } from "./live.js";

const READERS: readonly Role[] = [...STAFF, "subscriber"];

const ALERT_FILTERS = {
  billingAccountId: { isId: true },
  productId: { isId: true },
  kind: { values: ALERT_KINDS },
};

const TicketSchema = Type.Object({
  id: Type.String(),
  "@type": Type.Literal("WebSocketTicket"),
  ticket: Type.String({ description: "single use; pass as ?ticket= when opening /api/v1/ws" }),
  expiresAt: Type.String(),
  billingAccountId: Type.Optional(Type.String()),
  url: Type.String(),
});

/** Alerts over REST, WebSocket tickets, and `/api/v1/ws` itself. */
export function alertsRoutes(alerts: AlertsService, live: LiveHub) {
  return async (instance: FastifyInstance) => {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.get(
      ALERTS_PATH,
      {
        config: { roles: READERS },
        schema: {
          tags: ["alerts"],
          summary: "Alerts, newest first (subscribers: their own account's; naming another account is a 404)",
          querystring: listQuerySchema(ALERT_FILTERS),
          response: { 200: Type.Array(Type.Partial(Type.Object(AlertFields))), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, ALERT_FILTERS, Object.keys(AlertFields));
        const { items, total } = await alerts.list(actorOf(request), list);
        return sendList(reply, items, total, list.fields);
      },
    );

    app.get(
      `${ALERTS_PATH}/:id`,
      {
        config: { roles: READERS },
        schema: {
          tags: ["alerts"],
          summary: "One alert",
          params: IdParamsSchema,
          querystring: FieldsQuerySchema,
          response: { 200: Type.Partial(Type.Object(AlertFields)), ...errorResponses(404) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const fields = readFieldsParameter(request.query, Object.keys(AlertFields));
        return selectFields(await alerts.get(actorOf(request), id), fields);
      },
    );

    app.post(
      "/api/v1/ws/tickets",
      {
        config: { roles: READERS },
        schema: {
          tags: ["alerts"],
          summary:
            "A single-use ticket for /api/v1/ws, valid 30 seconds: a subscriber's follows its own account; staff may name one or follow all",
          body: Type.Optional(
            Type.Object(
              { billingAccountId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })) },
              { additionalProperties: false },
            ),
          ),
          response: { 201: TicketSchema, ...errorResponses(404, 413, 415) },
        },
      },
      async (request, reply) => {
        reply.code(201);
        return live.issueTicket(actorOf(request), request.body?.billingAccountId);
      },
    );

    app.route({
      method: "GET",
      url: "/api/v1/ws",
      // Authenticated by the ticket, not a header: browsers cannot set one on a WebSocket.
      config: { public: true },
      schema: {
        tags: ["alerts"],
        summary:
          "WebSocket of alerts: ?ticket=<single-use ticket>&after=<last alert id seen> (replays what came after it)",
        querystring: Type.Object({
          ticket: Type.Optional(Type.String({ maxLength: 200 })),
          after: Type.Optional(Type.String({ maxLength: 20 })),
        }),
        response: errorResponses(426),
      },
      handler: async () => {
        throw new AppError("upgrade_required", "upgrade_required", "/api/v1/ws is a WebSocket: connect with Upgrade");
      },
      wsHandler: (socket, request) => {
        live.accept(socket, request.query);
      },
    });
  };
}
