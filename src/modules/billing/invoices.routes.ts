import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, STAFF } from "../../platform/auth.js";
import { AppError, notFound } from "../../platform/errors.js";
import {
  errorResponses,
  type FilterSpecs,
  IdParamsSchema,
  idempotencyKeyOf,
  sendCreated,
  TMF_BASE,
} from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import { text } from "../../platform/tmf-schemas.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import { AppliedCustomerBillingRateSchema, CustomerBillSchema } from "./billing.schemas.js";
import type { InvoicesService } from "./invoices.service.js";

const BILL_PATH = `${TMF_BASE.bill}/customerBill`;
const RATE_PATH = `${TMF_BASE.bill}/appliedCustomerBillingRate`;
const ON_DEMAND_PATH = `${TMF_BASE.bill}/customerBillOnDemand`;
const TAG = "bills (TMF678)";

const NativeMoneyInput = Type.Object(
  {
    unit: Type.String({ pattern: "^[A-Z]{3}$" }),
    value: Type.String({ pattern: "^[0-9]{1,12}(\\.[0-9]{1,6})?$" }),
  },
  { additionalProperties: false },
);

const IssueRequestSchema = Type.Object(
  {
    /** The local date (exclusive) the usage period to invoice ends on; omitted, the last period that ended. */
    periodEnd: Type.Optional(Type.String({ minLength: 10, maxLength: 10 })),
  },
  { additionalProperties: false },
);

const NothingToBillSchema = Type.Object({
  billingAccount: Type.Object({ id: Type.String() }),
  usagePeriod: Type.String(),
  invoiced: Type.Literal(false),
  reason: Type.String(),
});

const CreditRequestSchema = Type.Object(
  {
    reason: text(500),
    /** Omitted: the whole invoice (all that is left of every line). */
    lines: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Type.String({ minLength: 1, maxLength: 64 }),
            /** A net amount (without tax) to credit; omitted, all that is left of the line. */
            amount: Type.Optional(NativeMoneyInput),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 1000 },
      ),
    ),
  },
  { additionalProperties: false },
);

const OnDemandSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("CustomerBillOnDemand"),
  name: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  /** done (a bill was issued) or rejected (nothing to bill: `reason`). */
  state: Type.String(),
  lastUpdate: Type.String(),
  billingAccount: Type.Object({ id: Type.String(), href: Type.String(), "@referredType": Type.String() }),
  customerBill: Type.Optional(
    Type.Object({
      id: Type.String(),
      href: Type.String(),
      name: Type.Optional(Type.String()),
      "@referredType": Type.String(),
    }),
  ),
  reason: Type.Optional(Type.String()),
});

const OnDemandCreateSchema = Type.Object(
  {
    billingAccount: Type.Object({
      id: Type.String({ minLength: 1, maxLength: 100 }),
      href: Type.Optional(Type.String({ maxLength: 500 })),
      name: Type.Optional(Type.String({ maxLength: 200 })),
      "@referredType": Type.Optional(Type.String({ maxLength: 100 })),
    }),
    name: Type.Optional(text(200)),
    description: Type.Optional(text(1000)),
    "@type": Type.Optional(Type.Literal("CustomerBillOnDemand")),
  },
  { additionalProperties: false },
);

const RatedUsagePageSchema = Type.Object({
  items: Type.Array(
    Type.Object({
      usageId: Type.String(),
      href: Type.String(),
      seq: Type.Integer(),
      startedAt: Type.String(),
      ratedAt: Type.String(),
      quantity: Type.Number(),
      chargedUnits: Type.Number(),
      amount: Type.String(),
      currency: Type.String(),
      destination: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
  nextAfterSeq: Type.Union([Type.Integer(), Type.Null()]),
});

const BILL_FILTERS: FilterSpecs = {
  state: {},
  category: { values: ["normal", "interim", "last", "creditNote"] },
  billNo: {},
  "billingAccount.id": {},
  usagePeriod: {},
};

const RATE_FILTERS: FilterSpecs = {
  type: { values: ["recurring", "oneTime", "usage", "credit", "unused"] },
  name: {},
  "bill.id": {},
  "billingAccount.id": {},
  "product.id": {},
};

/** Issuing and credit notes (native, finance) and TMF678 bills, lines and on-demand bills. */
export function invoicesRoutes(invoices: InvoicesService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      "/api/v1/billing/accounts/:id/invoices",
      {
        config: { roles: ["admin", "finance"] },
        // A POST with no body asks for the last ended period.
        preValidation: async (request) => {
          if (request.body === undefined || request.body === null) request.body = {};
        },
        schema: {
          tags: ["billing"],
          summary:
            "Issue the cycle invoice of the account's last ended usage period (201), or answer the one issued (200)",
          params: IdParamsSchema,
          body: IssueRequestSchema,
          response: {
            200: Type.Union([CustomerBillSchema, NothingToBillSchema]),
            201: CustomerBillSchema,
            ...errorResponses(404, 409, 413, 415, 422),
          },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("billingAccount", id);
        const outcome = await invoices.issueCycle(actorOf(request), id, request.body);
        if (outcome.status === "nothing") {
          return {
            billingAccount: { id },
            usagePeriod: outcome.usagePeriod,
            invoiced: false as const,
            reason: outcome.reason,
          };
        }
        if (outcome.status === "existing") return outcome.bill;
        return sendCreated(reply, outcome.bill as typeof outcome.bill & { href: string });
      },
    );

    app.post(
      "/api/v1/billing/invoices/:id/credit-notes",
      {
        config: { roles: ["admin", "finance"] },
        schema: {
          tags: ["billing"],
          summary: "Credit a whole invoice or some of its lines with a credit note (its own number series)",
          params: IdParamsSchema,
          body: CreditRequestSchema,
          response: { 201: CustomerBillSchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const note = await invoices.creditNote(actorOf(request), request.params.id, request.body);
        return sendCreated(reply, note as typeof note & { href: string });
      },
    );

    registerReadRoutes(app, {
      path: BILL_PATH,
      name: "customerBill",
      tag: TAG,
      resource: CustomerBillSchema,
      filters: BILL_FILTERS,
      roles: [...STAFF, "subscriber"],
      list: (actor, request) => invoices.list(actor, request),
      get: (actor, id) => invoices.get(actor, id),
    });
    app.patch(
      `${BILL_PATH}/:id`,
      {
        config: { roles: ["admin", "finance", "crm"] },
        schema: {
          tags: [TAG],
          summary: "Put a bill on hold (disputed) or release it: the only change a client makes to an issued bill",
          params: IdParamsSchema,
          body: Type.Object(
            { state: Type.Enum(["onHold", "validated", "sent", "partiallyPaid", "settled"]) },
            {
              additionalProperties: false,
            },
          ),
          response: { 200: CustomerBillSchema, ...errorResponses(404, 409, 413, 415) },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("customerBill", id);
        return invoices.changeState(actorOf(request), id, request.body.state);
      },
    );

    registerReadRoutes(app, {
      path: RATE_PATH,
      name: "appliedCustomerBillingRate",
      tag: TAG,
      resource: AppliedCustomerBillingRateSchema,
      filters: RATE_FILTERS,
      roles: [...STAFF, "subscriber"],
      list: (actor, request) => invoices.listLines(actor, request),
      get: (actor, id) => invoices.getLine(actor, id),
    });
    app.get(
      `${RATE_PATH}/:id/usage`,
      {
        config: { roles: [...STAFF, "subscriber"] },
        schema: {
          tags: [TAG],
          summary: "The rated usage a usage line billed, in sequence (TMF635 usage ids), a page at a time",
          params: IdParamsSchema,
          querystring: Type.Object(
            {
              afterSeq: Type.Optional(Type.Integer({ minimum: 0 })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: RatedUsagePageSchema, ...errorResponses(404) },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("appliedCustomerBillingRate", id);
        return invoices.lineUsage(actorOf(request), id, request.query);
      },
    );

    registerReadRoutes(app, {
      path: ON_DEMAND_PATH,
      name: "customerBillOnDemand",
      tag: TAG,
      resource: OnDemandSchema,
      filters: { state: { values: ["done", "rejected"] }, "billingAccount.id": {} },
      roles: [...STAFF, "subscriber"],
      list: (actor, request) => invoices.listRequests(actor, request),
      get: (actor, id) => invoices.getRequest(actor, id),
    });
    app.post(
      ON_DEMAND_PATH,
      {
        config: { roles: ["admin", "finance", "crm"] },
        schema: {
          tags: [TAG],
          summary: "Bill an account now: an interim bill of its usage and one-time charges to date",
          body: OnDemandCreateSchema,
          response: { 201: OnDemandSchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { body } = request;
        const key = idempotencyKeyOf(request);
        if (key !== undefined && key.length > 200) {
          throw new AppError(
            "bad_request",
            "invalid_field",
            "Idempotency-Key: at most 200 characters",
            "Idempotency-Key",
          );
        }
        const { created, request: answer } = await invoices.requestOnDemand(actorOf(request), {
          billingAccountId: body.billingAccount.id,
          ...(body.name === undefined ? {} : { name: body.name }),
          ...(body.description === undefined ? {} : { description: body.description }),
          ...(key === undefined ? {} : { idempotencyKey: key }),
        });
        // A replay answers as the first call did (201), marked as a replay.
        if (!created) reply.header("idempotent-replayed", "true");
        return sendCreated(reply, answer);
      },
    );
  };
}
