import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, type Role } from "../../platform/auth.js";
import { notFound } from "../../platform/errors.js";
import {
  errorResponses,
  FieldsQuerySchema,
  IdParamsSchema,
  idempotencyKeyOf,
  listQuerySchema,
  parseListQuery,
  selectFields,
  sendCreated,
  sendList,
} from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import { BALANCE_BASE, type BalancesService } from "./balances.service.js";

const READERS: readonly Role[] = ["admin", "crm", "finance", "subscriber"];
const TOPPERS: readonly Role[] = ["admin", "crm"];
const ADJUSTERS: readonly Role[] = ["admin", "crm", "finance"];

const Text = Type.String();
const Ref = Type.Object({ id: Text, href: Text, "@referredType": Text });
const QuantitySchema = Type.Object({ amount: Type.Number(), units: Text });
const IdRef = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true });

const OperationSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Enum(["TopupBalance", "AdjustBalance"]),
  status: Type.Literal("completed"),
  confirmationDate: Type.String({ format: "date-time" }),
  amount: QuantitySchema,
  usageType: Text,
  bucket: Ref,
  product: Type.Array(Ref),
  partyAccount: Ref,
  reason: Type.Optional(Text),
  remainingValue: Type.Optional(QuantitySchema),
});

const BucketSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Literal("Bucket"),
  name: Text,
  usageType: Text,
  isShared: Type.Boolean(),
  status: Text,
  remainingValue: QuantitySchema,
  initialValue: Type.Optional(QuantitySchema),
  validFor: Type.Optional(Type.Object({ startDateTime: Text, endDateTime: Text })),
  product: Type.Optional(Type.Array(Ref)),
  partyAccount: Ref,
});

const AccumulatedSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Literal("AccumulatedBalance"),
  name: Text,
  totalBalance: QuantitySchema,
  partyAccount: Ref,
  validFor: Type.Optional(Type.Object({ startDateTime: Text, endDateTime: Text })),
  creditLimit: Type.Optional(QuantitySchema),
  billLimit: Type.Optional(QuantitySchema),
  bucket: Type.Optional(Type.Array(Ref)),
});

/** TMF654 bodies: the attributes this engine reads, checked for type; others a standard client sends are ignored. */
const RequestBodySchema = Type.Object(
  {
    amount: Type.Object(
      { amount: Type.Number(), units: Type.String({ minLength: 1, maxLength: 16 }) },
      { additionalProperties: true },
    ),
    bucket: Type.Optional(IdRef),
    // TMF654 sends the product as a list; one product (the line) is read, as an object or a one-item list.
    product: Type.Optional(Type.Union([IdRef, Type.Array(IdRef, { minItems: 1, maxItems: 1 })])),
    partyAccount: Type.Optional(IdRef),
    usageType: Type.Optional(Type.String({ maxLength: 32 })),
    // Optional in TMF654 for top-ups and adjustments alike; the audit row names who adjusted either way.
    reason: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: true },
);

const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
});

const ACCOUNT_FILTER = { "partyAccount.id": { isId: true } };

/** TMF654 prepay balance management: topupBalance, adjustBalance, bucket, accumulatedBalance. */
export function balancesRoutes(balances: BalancesService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    for (const [kind, resource, roles] of [
      ["topup", "topupBalance", TOPPERS],
      ["adjustment", "adjustBalance", ADJUSTERS],
    ] as const) {
      const path = `${BALANCE_BASE}/${resource}`;
      app.post(
        path,
        {
          config: { roles },
          schema: {
            tags: ["balances"],
            summary:
              kind === "topup"
                ? "Top up a prepaid line (Idempotency-Key honoured); lifts credit barring once the balance is back at zero"
                : "Adjust a prepaid balance, credit a postpaid account's spend to date, or change an allowance bucket's grant",
            headers: IdempotencyHeaders,
            body: RequestBodySchema,
            response: { 200: OperationSchema, 201: OperationSchema, ...errorResponses(404, 409, 413, 415, 422) },
          },
        },
        async (request, reply) => {
          const key = idempotencyKeyOf(request);
          const { product, ...rest } = request.body;
          const body = {
            ...rest,
            ...(product === undefined ? {} : { product: [product].flat()[0] as { id: string } }),
          };
          const done =
            kind === "topup"
              ? await balances.topUp(actorOf(request), body, key)
              : await balances.adjust(actorOf(request), body, key);
          if (!done.created) return reply.code(200).send(done.resource);
          return sendCreated(reply, done.resource);
        },
      );
      registerReadRoutes(app, {
        path,
        name: resource,
        tag: "balances",
        resource: OperationSchema,
        filters: ACCOUNT_FILTER,
        roles: READERS,
        list: (actor, list) => balances.listOperations(actor, kind, list),
        get: (actor, id) => balances.getOperation(actor, kind, id),
      });
    }

    const bucketQuery = listQuerySchema(ACCOUNT_FILTER);
    app.get(
      `${BALANCE_BASE}/bucket`,
      {
        config: { roles: READERS },
        schema: {
          tags: ["balances"],
          summary:
            "Buckets: prepaid balances and allowances with what is left, every account's in account order, paged (partyAccount.id or id narrows it; subscribers: their own)",
          querystring: bucketQuery,
          response: { 200: Type.Array(Type.Partial(BucketSchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, ACCOUNT_FILTER, Object.keys(BucketSchema.properties));
        const { items, total } = await balances.bucketList(actorOf(request), list);
        return sendList(reply, items, total, list.fields);
      },
    );
    app.get(
      `${BALANCE_BASE}/bucket/:id`,
      {
        config: { roles: READERS },
        schema: {
          tags: ["balances"],
          summary: "Retrieve a bucket",
          params: IdParamsSchema,
          querystring: Type.Object(
            { ...FieldsQuerySchema.properties, ...bucketQuery.properties },
            { additionalProperties: false },
          ),
          response: { 200: Type.Partial(BucketSchema), ...errorResponses(404) },
        },
      },
      async (request) => {
        const { id } = request.params;
        const bucket = isId(id) ? await balances.bucket(actorOf(request), id) : undefined;
        if (bucket === undefined) throw notFound("bucket", id);
        const fields = request.query.fields;
        return selectFields(bucket, fields ? ["id", "href", "@type", ...fields.split(",")] : null);
      },
    );
    const accumulatedFilters = { "partyAccount.id": { isId: true } };
    app.get(
      `${BALANCE_BASE}/accumulatedBalance`,
      {
        config: { roles: READERS },
        schema: {
          tags: ["balances"],
          summary:
            "Every account's accumulated balance (subscribers: their own), paged; partyAccount.id or id narrows it",
          querystring: listQuerySchema(accumulatedFilters),
          response: { 200: Type.Array(Type.Partial(AccumulatedSchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, accumulatedFilters, Object.keys(AccumulatedSchema.properties));
        const { items, total } = await balances.accumulatedList(actorOf(request), list);
        return sendList(reply, items, total, list.fields);
      },
    );
    app.get(
      `${BALANCE_BASE}/accumulatedBalance/:id`,
      {
        config: { roles: READERS },
        schema: {
          tags: ["balances"],
          summary:
            "An account's accumulated balance: spend to date against its limits (postpaid) or its lines' balances (prepaid); the id is the billing account's",
          params: IdParamsSchema,
          response: { 200: AccumulatedSchema, ...errorResponses(404) },
        },
      },
      async (request) => balances.accumulated(actorOf(request), request.params.id),
    );
  };
}
