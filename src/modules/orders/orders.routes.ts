import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, type Role } from "../../platform/auth.js";
import { AppError } from "../../platform/errors.js";
import { errorResponses, type FilterSpecs, idempotencyKeyOf, sendCreated } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import {
  CancelProductOrderCreateSchema,
  CancelProductOrderSchema,
  ProductOrderCreateSchema,
  ProductOrderSchema,
} from "./orders.schemas.js";
import { CANCEL_PATH, ORDER_PATH, type OrdersService } from "./orders.service.js";

const ORDERING: readonly Role[] = ["admin", "crm"];
const READERS: readonly Role[] = ["admin", "crm", "finance"];
const FILTERS: FilterSpecs = {
  state: { values: ["acknowledged", "rejected", "inProgress", "completed", "failed", "cancelled"] },
  "billingAccount.id": {},
  orderDate: { range: "date" },
  completionDate: { range: "date" },
  // The older spelling, kept for clients that use it.
  billingAccountId: { isId: true, aliasOf: "billingAccount.id" },
};
const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
});

/** TMF622 productOrder and cancelProductOrder. */
export function ordersRoutes(orders: OrdersService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      ORDER_PATH,
      {
        config: { roles: ORDERING },
        schema: {
          tags: ["ordering (TMF622)"],
          summary:
            "Place an order (Idempotency-Key honoured). 201 acknowledged, then fulfilled in the background; a well-formed order that breaks a rule is 201 rejected with every reason",
          headers: IdempotencyHeaders,
          body: ProductOrderCreateSchema,
          response: { 201: ProductOrderSchema, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => {
        const key = idempotencyKeyOf(request);
        const { order, replayed } = await orders.place(actorOf(request), request.body, key);
        if (replayed) reply.header("idempotent-replayed", "true");
        return sendCreated(reply, order);
      },
    );
    registerReadRoutes(app, {
      path: ORDER_PATH,
      name: "productOrder",
      tag: "ordering (TMF622)",
      resource: ProductOrderSchema,
      filters: FILTERS,
      roles: READERS,
      list: (_actor, request) => orders.list(request),
      get: (_actor, id) => orders.get(id),
    });
    app.post(
      CANCEL_PATH,
      {
        config: { roles: ORDERING },
        schema: {
          tags: ["ordering (TMF622)"],
          summary: "Cancel an order that is not complete; whatever it reserved is released",
          body: CancelProductOrderCreateSchema,
          response: { 201: CancelProductOrderSchema, ...errorResponses(409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const body = request.body;
        if (!isId(body.productOrder.id)) {
          throw new AppError(
            "unprocessable",
            "unknown_order",
            `productOrder.id: order ${body.productOrder.id} does not exist`,
            "productOrder.id",
          );
        }
        return sendCreated(reply, await orders.cancel(actorOf(request), body.productOrder.id, body.cancellationReason));
      },
    );
    registerReadRoutes(app, {
      path: CANCEL_PATH,
      name: "cancelProductOrder",
      tag: "ordering (TMF622)",
      resource: CancelProductOrderSchema,
      filters: { "productOrder.id": {}, creationDate: { range: "date" } },
      roles: READERS,
      list: (_actor, request) => orders.listCancels(request),
      get: (_actor, id) => orders.getCancel(id),
    });
  };
}
