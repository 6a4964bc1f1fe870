import type { FastifyInstance } from "fastify";
import { electronicFormatIBAN, validateBIC, validateIBAN } from "ibantools";
import { Type } from "typebox";
import { actorOf, STAFF } from "../../platform/auth.js";
import { AppError } from "../../platform/errors.js";
import { errorResponses, idempotencyKeyOf, sendCreated, TMF_BASE } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import { MoneySchema, multilineText, text } from "../../platform/tmf-schemas.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { describeAmountProblem, parseDecimalText, parseJsonAmount } from "../../shared/money.js";
import type { MethodInput, PaymentRequest, PaymentsService } from "./payments.service.js";
import { REVERSAL_REASON_CODES } from "./reversal-reasons.js";

const PAYMENT_PATH = `${TMF_BASE.payment}/payment`;
const REFUND_PATH = `${TMF_BASE.payment}/refund`;
const TAG = "payments (TMF676)";
const PAYERS = [...STAFF, "subscriber"] as const;
const FINANCE = ["admin", "finance"] as const;

const IdRef = Type.Object({ id: text(100) }, { additionalProperties: true });

const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
});

/** TMF676 Payment_Create: the attributes read, checked for type; others a standard client sends are ignored. */
const PaymentCreateSchema = Type.Object(
  {
    totalAmount: MoneySchema,
    amount: Type.Optional(MoneySchema),
    account: IdRef,
    paymentMethod: IdRef,
    paymentItem: Type.Optional(
      Type.Array(
        Type.Object(
          {
            item: Type.Object(
              { id: text(100), "@referredType": Type.Optional(text(64)) },
              { additionalProperties: true },
            ),
            amount: Type.Optional(MoneySchema),
            totalAmount: Type.Optional(MoneySchema),
          },
          { additionalProperties: true },
        ),
        { maxItems: 100 },
      ),
    ),
    /** The value date (not in TMF676's create schema; accepted). */
    paymentDate: Type.Optional(Type.String({ format: "date-time" })),
    name: Type.Optional(text(200)),
    description: Type.Optional(multilineText(500)),
    channel: Type.Optional(
      Type.Object({ id: text(64), name: Type.Optional(text(200)) }, { additionalProperties: true }),
    ),
    correlatorId: Type.Optional(text(200)),
    authorizationCode: Type.Optional(text(200)),
  },
  { additionalProperties: true },
);

const RefundCreateSchema = Type.Object(
  {
    totalAmount: MoneySchema,
    amount: Type.Optional(MoneySchema),
    account: IdRef,
    paymentMethod: IdRef,
    payment: Type.Optional(IdRef),
    name: Type.Optional(text(200)),
    description: Type.Optional(multilineText(500)),
    reason: Type.Optional(text(500)),
  },
  { additionalProperties: true },
);

const TmfMoneyOut = Type.Object({ unit: Type.String(), value: Type.Number() });
const AccountRefOut = Type.Object({ id: Type.String(), href: Type.String(), "@referredType": Type.String() });

const PaymentSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Payment"),
  name: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  correlatorId: Type.Optional(Type.String()),
  authorizationCode: Type.Optional(Type.String()),
  paymentDate: Type.String(),
  status: Type.String(),
  statusDate: Type.String(),
  account: AccountRefOut,
  amount: TmfMoneyOut,
  totalAmount: TmfMoneyOut,
  paymentMethod: Type.Object({ id: Type.String(), name: Type.Optional(Type.String()), "@referredType": Type.String() }),
  channel: Type.Optional(Type.Object({ id: Type.String(), name: Type.Optional(Type.String()) })),
  paymentItem: Type.Array(
    Type.Object({
      amount: TmfMoneyOut,
      totalAmount: TmfMoneyOut,
      item: Type.Object({
        id: Type.String(),
        href: Type.Optional(Type.String()),
        name: Type.Optional(Type.String()),
        "@referredType": Type.String(),
      }),
    }),
  ),
  unappliedAmount: TmfMoneyOut,
  matchedBy: Type.String(),
  reversal: Type.Optional(
    Type.Object({
      reasonCode: Type.String(),
      reason: Type.String(),
      note: Type.Optional(Type.String()),
      date: Type.String(),
    }),
  ),
});

const RefundSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Refund"),
  name: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  refundDate: Type.String(),
  status: Type.String(),
  statusDate: Type.String(),
  account: AccountRefOut,
  amount: TmfMoneyOut,
  totalAmount: TmfMoneyOut,
  paymentMethod: Type.Object({ id: Type.String(), name: Type.String(), "@referredType": Type.String() }),
  payment: Type.Optional(AccountRefOut),
  reason: Type.Optional(Type.String()),
  manual: Type.Boolean(),
});

const ReversalSchema = Type.Object(
  {
    /** An ISO 20022 return reason (AM04, MD06, MS02…) or CHARGEBACK. */
    reasonCode: Type.String({ enum: REVERSAL_REASON_CODES }),
    note: Type.Optional(multilineText(500)),
  },
  { additionalProperties: false },
);

/** A native amount: `{"unit": "EUR", "value": "12.34"}`. */
const NativeMoney = Type.Object(
  { unit: Type.String({ pattern: "^[A-Z]{3}$" }), value: Type.String({ minLength: 1, maxLength: 24 }) },
  { additionalProperties: false },
);

const ImportItemSchema = Type.Object(
  {
    account: Type.Object({ id: text(100) }, { additionalProperties: false }),
    totalAmount: NativeMoney,
    paymentMethod: Type.Object({ id: text(100) }, { additionalProperties: false }),
    paymentItem: Type.Optional(
      Type.Array(
        Type.Object(
          { item: Type.Object({ id: text(100) }, { additionalProperties: false }), amount: Type.Optional(NativeMoney) },
          { additionalProperties: false },
        ),
        { maxItems: 100 },
      ),
    ),
    paymentDate: Type.Optional(Type.String({ format: "date-time" })),
    name: Type.Optional(text(200)),
    description: Type.Optional(multilineText(500)),
    correlatorId: Type.Optional(text(200)),
    /** Each payment's own key: importing the same file again records nothing twice. */
    idempotencyKey: Type.Optional(text(200)),
  },
  { additionalProperties: false },
);

const ImportSchema = Type.Object(
  { payments: Type.Array(ImportItemSchema, { minItems: 1, maxItems: 10_000 }) },
  { additionalProperties: false },
);

const ImportResultSchema = Type.Object({
  created: Type.Integer(),
  replayed: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(
    Type.Object({
      index: Type.Integer(),
      outcome: Type.String(),
      payment: Type.Optional(
        Type.Object({
          id: Type.String(),
          href: Type.String(),
          status: Type.String(),
          matchedBy: Type.String(),
          unappliedAmount: TmfMoneyOut,
        }),
      ),
      error: Type.Optional(
        Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }),
      ),
    }),
  ),
});

const MethodCreateSchema = Type.Object(
  {
    kind: Type.Union([Type.Literal("bankTransfer"), Type.Literal("directDebit"), Type.Literal("card")]),
    name: Type.Optional(text(200)),
    isDefault: Type.Optional(Type.Boolean()),
    iban: Type.Optional(Type.String({ minLength: 15, maxLength: 42 })),
    bic: Type.Optional(Type.String({ minLength: 8, maxLength: 11 })),
    accountHolder: Type.Optional(text(140)),
    /** A SEPA mandate reference (at most 35 characters of the SEPA set). */
    mandateReference: Type.Optional(Type.String({ minLength: 1, maxLength: 35, pattern: "^[A-Za-z0-9+?/:().,' -]+$" })),
    provider: Type.Optional(text(64)),
    /** The provider's token for the card, never a card number. */
    token: Type.Optional(text(200)),
    brand: Type.Optional(text(32)),
    lastFour: Type.Optional(Type.String({ pattern: "^[0-9]{4}$" })),
    expiry: Type.Optional(Type.String({ pattern: "^20[0-9]{2}-(0[1-9]|1[0-2])$" })),
  },
  { additionalProperties: false },
);

const MethodPatchSchema = Type.Object(
  { name: Type.Optional(text(200)), isDefault: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

const MethodSchema = Type.Object(
  {
    id: Type.String(),
    kind: Type.String(),
    isDefault: Type.Boolean(),
    billingAccount: Type.Object({ id: Type.String() }),
    createdAt: Type.String(),
  },
  { additionalProperties: true },
);

const AccountParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const MethodParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 100 }),
  methodId: Type.String({ minLength: 1, maxLength: 100 }),
});
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

/** A TMF amount (a JSON number) as exact decimal text, or a 400 naming the field. */
function tmfAmount(value: number, field: string): string {
  const amount = parseJsonAmount(value, { maxDecimals: 6, allowNegative: true });
  if (typeof amount === "string") {
    throw new AppError("bad_request", "invalid_amount", `${field}: ${describeAmountProblem(amount)}`, field);
  }
  return amount.toFixed();
}

function nativeAmount(value: string, field: string): string {
  const amount = parseDecimalText(value, { maxDecimals: 6, allowNegative: true });
  if (typeof amount === "string") {
    throw new AppError("bad_request", "invalid_amount", `${field}: ${describeAmountProblem(amount)}`, field);
  }
  return amount.toFixed();
}

function checkMethod(body: MethodInput): MethodInput {
  const input = { ...body };
  if (input.iban !== undefined) {
    const iban = electronicFormatIBAN(input.iban) ?? "";
    if (!validateIBAN(iban).valid) {
      throw new AppError(
        "bad_request",
        "invalid_iban",
        "iban: not a valid IBAN (checked by its country's length and the ISO 13616 mod-97 check digits)",
        "iban",
      );
    }
    input.iban = iban;
  }
  if (input.bic !== undefined && !validateBIC(input.bic).valid) {
    throw new AppError("bad_request", "invalid_bic", "bic: not a valid BIC (ISO 9362)", "bic");
  }
  if (input.kind === "directDebit" && input.iban === undefined) {
    throw new AppError("bad_request", "missing_field", "iban: a direct debit needs the account to debit", "iban");
  }
  if (input.kind === "card" && (input.provider === undefined || input.token === undefined)) {
    throw new AppError(
      "bad_request",
      "missing_field",
      "token: a card is stored as a provider's token (provider and token)",
      input.provider === undefined ? "provider" : "token",
    );
  }
  // What each kind may carry: a card is a provider's token; a bank method an account (and a mandate to debit it).
  const allowed: Record<MethodInput["kind"], ReadonlyArray<keyof MethodInput>> = {
    bankTransfer: ["iban", "bic", "accountHolder"],
    directDebit: ["iban", "bic", "accountHolder", "mandateReference"],
    card: ["provider", "token", "brand", "lastFour", "expiry"],
  };
  for (const field of [
    "iban",
    "bic",
    "accountHolder",
    "mandateReference",
    "provider",
    "token",
    "brand",
    "lastFour",
    "expiry",
  ] as const) {
    if (input[field] !== undefined && !allowed[input.kind].includes(field)) {
      throw new AppError("bad_request", "invalid_field", `${field}: a ${input.kind} method has no ${field}`, field);
    }
  }
  return input;
}

function checkKey(key: string | undefined): string | undefined {
  if (key !== undefined && (key.length === 0 || key.length > 200)) {
    throw new AppError("bad_request", "invalid_field", "Idempotency-Key: 1 to 200 characters", "Idempotency-Key");
  }
  return key;
}

/** TMF676 payments and refunds, reversals, imports and the payment methods of billing accounts. */
export function paymentsRoutes(service: PaymentsService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    registerReadRoutes(app, {
      path: PAYMENT_PATH,
      name: "payment",
      tag: TAG,
      resource: PaymentSchema,
      filters: { status: { values: ["pending", "succeeded", "reversed"] }, "account.id": {}, correlatorId: {} },
      roles: PAYERS,
      list: (actor, request) => service.list(actor, request),
      get: (actor, id) => service.get(actor, id),
    });
    app.post(
      PAYMENT_PATH,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [TAG],
          summary:
            "Record a payment of a postpaid account (Idempotency-Key honoured): allocated to the bills it names, else to a bill its description quotes, else oldest first, fees first; the rest stays as credit",
          headers: IdempotencyHeaders,
          body: PaymentCreateSchema,
          response: { 201: PaymentSchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { body } = request;
        const total = tmfAmount(body.totalAmount.value, "totalAmount.value");
        if (body.amount !== undefined) {
          const amount = tmfAmount(body.amount.value, "amount.value");
          if (amount !== total || body.amount.unit !== body.totalAmount.unit) {
            throw new AppError(
              "bad_request",
              "invalid_field",
              "amount: a payment carries no tax; amount, when sent, equals totalAmount",
              "amount",
            );
          }
        }
        const key = checkKey(idempotencyKeyOf(request));
        const { created, payment } = await service.record(actorOf(request), {
          ...paymentRequest(body.account.id, body.totalAmount.unit, total, body.paymentMethod.id, body),
          items: (body.paymentItem ?? []).map((item, index) => {
            const money = item.amount ?? item.totalAmount;
            return {
              billId: item.item.id,
              ...(money === undefined ? {} : { amount: tmfAmount(money.value, `paymentItem[${index}].amount.value`) }),
            };
          }),
          ...(body.channel === undefined ? {} : { channel: body.channel.id }),
          ...(body.authorizationCode === undefined ? {} : { authorizationCode: body.authorizationCode }),
          ...(key === undefined ? {} : { idempotencyKey: key }),
        });
        if (!created) reply.header("idempotent-replayed", "true");
        return sendCreated(reply, payment);
      },
    );
    app.post(
      "/api/v1/payments/:id/reversal",
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary:
            "Reverse a payment (a chargeback, a returned debit): its allocations undone, its bills reopen, and the catalog's reversal fee when the payer caused it",
          params: IdParams,
          body: ReversalSchema,
          response: { 200: PaymentSchema, ...errorResponses(404, 409, 413, 415) },
        },
      },
      async (request) =>
        service.reverse(actorOf(request), request.params.id, {
          reasonCode: request.body.reasonCode,
          ...(request.body.note === undefined ? {} : { note: request.body.note }),
        }),
    );
    app.post(
      "/api/v1/payments/import",
      {
        config: { roles: FINANCE },
        bodyLimit: 8 * 1024 * 1024,
        schema: {
          tags: [TAG],
          summary:
            "Record many payments (lockbox files, migrations): each with its own outcome; each item's idempotencyKey makes importing a file twice record nothing twice",
          body: ImportSchema,
          response: { 200: ImportResultSchema, ...errorResponses(413, 415) },
        },
      },
      async (request) => {
        const requests: Array<PaymentRequest | AppError> = request.body.payments.map((item, index) => {
          try {
            return {
              ...paymentRequest(
                item.account.id,
                item.totalAmount.unit,
                nativeAmount(item.totalAmount.value, "totalAmount.value"),
                item.paymentMethod.id,
                item,
              ),
              items: (item.paymentItem ?? []).map((paid, position) => ({
                billId: paid.item.id,
                ...(paid.amount === undefined
                  ? {}
                  : { amount: nativeAmount(paid.amount.value, `paymentItem[${position}].amount.value`) }),
              })),
              ...(item.idempotencyKey === undefined ? {} : { idempotencyKey: item.idempotencyKey }),
            };
          } catch (error) {
            if (error instanceof AppError) return error;
            throw new Error(`payment ${index} could not be read`, { cause: error });
          }
        });
        const valid = requests.filter((item): item is PaymentRequest => !(item instanceof AppError));
        const outcomes = await service.recordMany(actorOf(request), valid);
        let next = 0;
        const results = requests.map((item, index) => {
          const outcome =
            item instanceof AppError ? { status: "rejected" as const, error: item } : (outcomes[next++] ?? null);
          if (outcome === null) throw new Error(`payment ${index} has no outcome`);
          if (outcome.status === "rejected") {
            return {
              index,
              outcome: "rejected",
              error: {
                code: outcome.error.code,
                message: outcome.error.message,
                ...(outcome.error.field === undefined ? {} : { field: outcome.error.field }),
              },
            };
          }
          const { payment } = outcome;
          return {
            index,
            outcome: outcome.status,
            payment: {
              id: payment.id,
              href: payment.href,
              status: payment.status as string,
              matchedBy: payment.matchedBy as string,
              unappliedAmount: payment.unappliedAmount as { unit: string; value: number },
            },
          };
        });
        const countOf = (outcome: string) => results.filter((result) => result.outcome === outcome).length;
        return {
          created: countOf("created"),
          replayed: countOf("replayed"),
          rejected: countOf("rejected"),
          results,
        };
      },
    );

    registerReadRoutes(app, {
      path: REFUND_PATH,
      name: "refund",
      tag: TAG,
      resource: RefundSchema,
      filters: { status: { values: ["requested", "completed"] }, "account.id": {} },
      roles: STAFF,
      list: (actor, request) => service.listRefunds(actor, request),
      get: (actor, id) => service.getRefund(actor, id) as never,
    });
    app.post(
      REFUND_PATH,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "Record a refund paid out of the account's unapplied credit (never more; Idempotency-Key honoured)",
          headers: IdempotencyHeaders,
          body: RefundCreateSchema,
          response: { 201: RefundSchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { body } = request;
        const key = checkKey(idempotencyKeyOf(request));
        const { created, refund } = await service.refund(actorOf(request), {
          billingAccountId: body.account.id,
          amount: tmfAmount(body.totalAmount.value, "totalAmount.value"),
          currency: body.totalAmount.unit,
          methodId: body.paymentMethod.id,
          ...(body.payment === undefined ? {} : { paymentId: body.payment.id }),
          ...(body.name === undefined ? {} : { name: body.name }),
          ...(body.description === undefined ? {} : { description: body.description }),
          ...(body.reason === undefined ? {} : { reason: body.reason }),
          ...(key === undefined ? {} : { idempotencyKey: key }),
        });
        if (!created) reply.header("idempotent-replayed", "true");
        return sendCreated(reply, refund as { href: string });
      },
    );
    app.post(
      "/api/v1/refunds/:id/completion",
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "Report a requested refund (an account closed with credit) paid out",
          params: IdParams,
          response: { 200: RefundSchema, ...errorResponses(404, 409) },
        },
      },
      async (request) => service.completeRefund(actorOf(request), request.params.id),
    );

    const methodsPath = "/api/v1/billing-accounts/:id/payment-methods";
    const methodTag = "payment methods";
    app.get(
      methodsPath,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [methodTag],
          summary: "The payment methods of a billing account (the default first to be used for refunds)",
          params: AccountParams,
          response: { 200: Type.Array(MethodSchema), ...errorResponses(404) },
        },
      },
      async (request) => service.methods(actorOf(request), request.params.id),
    );
    app.post(
      methodsPath,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [methodTag],
          summary:
            "Add a payment method: a bank transfer (the payer's IBAN, optional), a direct debit (IBAN and mandate reference), a card (a provider's token); the first is the default",
          params: AccountParams,
          body: MethodCreateSchema,
          response: { 201: MethodSchema, ...errorResponses(404, 413, 415) },
        },
      },
      async (request, reply) => {
        const created = (await service.addMethod(
          actorOf(request),
          request.params.id,
          checkMethod(request.body as MethodInput),
        )) as { id: string };
        reply
          .code(201)
          .header("location", `/api/v1/billing-accounts/${request.params.id}/payment-methods/${created.id}`);
        return created;
      },
    );
    app.get(
      `${methodsPath}/:methodId`,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [methodTag],
          summary: "One payment method",
          params: MethodParams,
          response: { 200: MethodSchema, ...errorResponses(404) },
        },
      },
      async (request) => service.method(actorOf(request), request.params.id, request.params.methodId),
    );
    app.patch(
      `${methodsPath}/:methodId`,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [methodTag],
          summary: "Rename a payment method or make it the default",
          params: MethodParams,
          body: MethodPatchSchema,
          response: { 200: MethodSchema, ...errorResponses(404, 409, 415) },
        },
      },
      async (request) =>
        service.changeMethod(actorOf(request), request.params.id, request.params.methodId, request.body),
    );
    app.delete(
      `${methodsPath}/:methodId`,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [methodTag],
          summary: "Remove a payment method (kept for the payments that name it; the oldest other becomes the default)",
          params: MethodParams,
          response: { 204: Type.Null(), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        await service.removeMethod(actorOf(request), request.params.id, request.params.methodId);
        return reply.code(204).send();
      },
    );
  };
}

function paymentRequest(
  billingAccountId: string,
  currency: string,
  amount: string,
  methodId: string,
  body: {
    paymentDate?: string;
    name?: string;
    description?: string;
    correlatorId?: string;
  },
): PaymentRequest {
  return {
    billingAccountId,
    amount,
    currency,
    methodId,
    ...(body.paymentDate === undefined ? {} : { paymentDate: new Date(body.paymentDate) }),
    ...(body.name === undefined ? {} : { name: body.name }),
    ...(body.description === undefined ? {} : { description: body.description }),
    ...(body.correlatorId === undefined ? {} : { correlatorId: body.correlatorId }),
  };
}
