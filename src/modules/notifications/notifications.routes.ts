import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, type Role } from "../../platform/auth.js";
import { invalidField, notFound } from "../../platform/errors.js";
import { EVENT_APIS, type EventApi } from "../../platform/events.js";
import {
  errorResponses,
  IdParamsSchema,
  listQuerySchema,
  parseListQuery,
  sendCreated,
  sendList,
} from "../../platform/tmf.js";
import { multilineText, text } from "../../platform/tmf-schemas.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isE164, isEmailAddress } from "../../shared/contact.js";
import { isId } from "../../shared/ids.js";
import { MESSAGE_BODY_MAX_LENGTH } from "../../shared/limits.js";
import type { HubService } from "./hub.service.js";
import type { MessagesService } from "./messages.service.js";

const HUB_ROLES: readonly Role[] = ["admin", "crm"];

const HubInputSchema = Type.Object({
  callback: Type.String({ minLength: 1, maxLength: 2000 }),
  query: Type.Optional(Type.String({ maxLength: 2000 })),
});

const HubFields = {
  id: Type.String(),
  href: Type.String(),
  callback: Type.String(),
  query: Type.Optional(Type.String()),
  api: Type.String(),
  status: Type.String(),
  parkedReason: Type.Optional(Type.String()),
  createdAt: Type.String(),
};
const HubSchema = Type.Object(HubFields);
const CreatedHubSchema = Type.Object({
  ...HubFields,
  secret: Type.String({ description: "HMAC-SHA256 key of the X-Bss-Signature header; shown once" }),
});
const DeliverySchema = Type.Object({
  id: Type.String(),
  eventId: Type.String(),
  eventType: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  nextAttemptAt: Type.String(),
  deliveredAt: Type.Optional(Type.String()),
  lastStatusCode: Type.Optional(Type.Integer()),
  lastError: Type.Optional(Type.String()),
  log: Type.Array(
    Type.Object({
      attempt: Type.Integer(),
      attemptedAt: Type.String(),
      statusCode: Type.Optional(Type.Integer()),
      error: Type.Optional(Type.String()),
      durationMs: Type.Integer(),
    }),
  ),
});
const HUB_FILTERS = { api: { values: Object.keys(EVENT_APIS) }, status: { values: ["active", "parked"] } };
const DELIVERY_FILTERS = { status: { values: ["pending", "sending", "delivered", "failed"] } };

const MessageInputSchema = Type.Object(
  {
    channel: Type.Enum(["sms", "email"]),
    to: Type.Optional(Type.String({ minLength: 3, maxLength: 254 })),
    subject: Type.Optional(text(200)),
    body: multilineText(MESSAGE_BODY_MAX_LENGTH),
  },
  { additionalProperties: false },
);
const MessageSchema = Type.Object({
  id: Type.String(),
  channel: Type.String(),
  to: Type.String(),
  subject: Type.Optional(Type.String()),
  body: Type.String(),
  reason: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  lastError: Type.Optional(Type.String()),
  createdAt: Type.String(),
  sentAt: Type.Optional(Type.String()),
});
const MESSAGE_FILTERS = {
  status: { values: ["pending", "sent", "failed", "undelivered"] },
  channel: { values: ["sms", "email"] },
};

/**
 * `POST {api}/hub` and `DELETE {api}/hub/{id}` on every TMF API with events, the admin view of delivery, and
 * customer messages (agents send one and read each customer's log).
 */
export function notificationsRoutes(hubs: HubService, messages: MessagesService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      "/api/v1/customers/:id/messages",
      {
        config: { roles: HUB_ROLES },
        schema: {
          tags: ["messages"],
          summary: "Send an SMS or e-mail to a customer (to its own contact unless `to` is given)",
          params: IdParamsSchema,
          body: MessageInputSchema,
          response: { 201: MessageSchema, ...errorResponses(404, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const input = request.body;
        if (input.channel === "sms" && input.to !== undefined && !isE164(input.to))
          throw invalidField("to", "must be an E.164 number");
        if (input.channel === "email" && input.to !== undefined && !isEmailAddress(input.to))
          throw invalidField("to", "must be an e-mail address");
        const message = await messages.send(actorOf(request), { ...input, customerId: id, reason: "agent" });
        return reply.code(201).send(message);
      },
    );
    app.get(
      "/api/v1/customers/:id/messages",
      {
        config: { roles: HUB_ROLES },
        schema: {
          tags: ["messages"],
          summary: "Every message sent to a customer and what became of it",
          params: IdParamsSchema,
          querystring: listQuerySchema(MESSAGE_FILTERS),
          response: { 200: Type.Array(Type.Partial(MessageSchema)), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const list = parseListQuery(request.query, MESSAGE_FILTERS, Object.keys(MessageSchema.properties));
        const { items, total } = await messages.list(id, list);
        return sendList(reply, items, total, list.fields);
      },
    );

    for (const [api, base] of Object.entries(EVENT_APIS) as Array<[EventApi, string]>) {
      app.post(
        `${base}/hub`,
        {
          config: { roles: HUB_ROLES },
          schema: {
            tags: ["events"],
            summary: `Subscribe a callback to ${api} events`,
            body: HubInputSchema,
            response: { 201: CreatedHubSchema, ...errorResponses(413, 415, 422) },
          },
        },
        async (request, reply) => {
          const created = await hubs.subscribe(actorOf(request), api, request.body);
          return sendCreated(reply, created);
        },
      );
      app.delete(
        `${base}/hub/:id`,
        {
          config: { roles: HUB_ROLES },
          schema: {
            tags: ["events"],
            summary: `Unsubscribe from ${api} events`,
            params: IdParamsSchema,
            response: { 204: Type.Null(), ...errorResponses(404) },
          },
        },
        async (request, reply) => {
          const { id } = request.params;
          if (!isId(id)) throw notFound("hub", id);
          await hubs.unsubscribe(actorOf(request), api, id);
          return reply.code(204).send();
        },
      );
    }

    app.get(
      "/api/v1/hub-subscriptions",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["events"],
          summary: "Every hub subscription, with its status",
          querystring: listQuerySchema(HUB_FILTERS),
          response: { 200: Type.Array(Type.Partial(HubSchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, HUB_FILTERS, Object.keys(HubFields));
        const { items, total } = await hubs.list(list);
        return sendList(reply, items, total, list.fields);
      },
    );

    app.get(
      "/api/v1/hub-subscriptions/:id/deliveries",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["events"],
          summary: "The delivery log of one subscription: each event, its status and every attempt",
          params: IdParamsSchema,
          querystring: listQuerySchema(DELIVERY_FILTERS),
          response: { 200: Type.Array(Type.Partial(DeliverySchema)), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("hub", id);
        const list = parseListQuery(request.query, DELIVERY_FILTERS, Object.keys(DeliverySchema.properties));
        const { items, total } = await hubs.deliveries(id, list);
        return sendList(reply, items, total, list.fields);
      },
    );

    app.patch(
      "/api/v1/hub-subscriptions/:id",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["events"],
          summary: "Resume a parked subscription; its failed deliveries are sent again",
          params: IdParamsSchema,
          body: Type.Object({ status: Type.Literal("active") }, { additionalProperties: false }),
          response: { 200: HubSchema, ...errorResponses(404, 413, 415) },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("hub", id);
        return hubs.resume(actorOf(request), id);
      },
    );
  };
}
