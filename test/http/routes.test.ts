import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { isPublicPrefix, ROLES, type Role } from "../../src/platform/auth.js";
import { EVENT_APIS } from "../../src/platform/events.js";
import { camt053 } from "../support/bank-files.js";
import { type Engine, startEngine } from "../support/engine.js";
import {
  billingAccountBody,
  createBillingAccount,
  createCustomer,
  createIndividual,
  lineOrder,
  orderReadyAccount,
  simRecord,
} from "../support/fixtures.js";

/**
 * Proves three rules for every route the app registers, so a route added later cannot skip them:
 * it declares roles (or is public) and a response schema; a caller without a key or with a role it does
 * not list is refused; and every write leaves an audit row naming what it changed.
 */

type WriteSample = (engine: Engine) => Promise<{
  url: string;
  body?: unknown;
  contentType?: string;
  /** Sent as is (an XML file), not JSON-encoded. */
  rawBody?: string;
  entityId?: string;
  /** Where the audited entity's id is in the answer, when it is not `id` (imports answer with a batch). */
  entityIdFrom?: (answer: Record<string, unknown>) => string;
}>;

const BA = "/tmf-api/accountManagement/v4/billingAccount";

/** One valid request per write route. A write route missing here fails the test below. */
const WRITE_SAMPLES: Record<string, WriteSample> = {
  "POST /api/v1/api-keys": async () => ({ url: "/api/v1/api-keys", body: { name: "sample", role: "crm" } }),
  "POST /api/v1/ws/tickets": async () => ({ url: "/api/v1/ws/tickets", body: {} }),
  "DELETE /api/v1/api-keys/:id": async (engine) => {
    const created = await engine.request("POST", "/api/v1/api-keys", {
      body: { name: "to revoke", role: "network", cdrSources: ["*"] },
    });
    const id = created.json().id as string;
    return { url: `/api/v1/api-keys/${id}`, entityId: id };
  },
  "POST /tmf-api/party/v4/individual": async () => ({
    url: "/tmf-api/party/v4/individual",
    body: { givenName: "Grace", familyName: "Hopper" },
  }),
  "PATCH /tmf-api/party/v4/individual/:id": async (engine) => {
    const { id } = await createIndividual(engine);
    return { url: `/tmf-api/party/v4/individual/${id}`, body: { title: "Dr" }, entityId: id };
  },
  "DELETE /tmf-api/party/v4/individual/:id": async (engine) => {
    const { id } = await createIndividual(engine);
    return { url: `/tmf-api/party/v4/individual/${id}`, entityId: id };
  },
  "POST /tmf-api/party/v4/organization": async () => ({
    url: "/tmf-api/party/v4/organization",
    body: { tradingName: "Acme" },
  }),
  "PATCH /tmf-api/party/v4/organization/:id": async (engine) => {
    const created = await engine.request("POST", "/tmf-api/party/v4/organization", { body: { tradingName: "Acme" } });
    const id = created.json().id as string;
    return {
      url: `/tmf-api/party/v4/organization/${id}`,
      body: { status: "validated" },
      contentType: "application/merge-patch+json",
      entityId: id,
    };
  },
  "DELETE /tmf-api/party/v4/organization/:id": async (engine) => {
    const created = await engine.request("POST", "/tmf-api/party/v4/organization", { body: { tradingName: "Gone" } });
    const id = created.json().id as string;
    return { url: `/tmf-api/party/v4/organization/${id}`, entityId: id };
  },
  "POST /tmf-api/customerManagement/v4/customer": async (engine) => {
    const party = await createIndividual(engine);
    return {
      url: "/tmf-api/customerManagement/v4/customer",
      body: { name: "Grace", engagedParty: { id: party.id, "@referredType": "Individual" } },
    };
  },
  "PATCH /tmf-api/customerManagement/v4/customer/:id": async (engine) => {
    const { id } = await createCustomer(engine);
    return { url: `/tmf-api/customerManagement/v4/customer/${id}`, body: { statusReason: "KYC done" }, entityId: id };
  },
  "DELETE /tmf-api/customerManagement/v4/customer/:id": async (engine) => {
    const { id } = await createCustomer(engine);
    return { url: `/tmf-api/customerManagement/v4/customer/${id}`, entityId: id };
  },
  "POST /tmf-api/accountManagement/v4/billingAccount": async (engine) => {
    const customer = await createCustomer(engine);
    return { url: BA, body: billingAccountBody(customer.id) };
  },
  "PATCH /tmf-api/accountManagement/v4/billingAccount/:id": async (engine) => {
    const { id } = await createBillingAccount(engine);
    return { url: `${BA}/${id}`, body: { creditLimit: { unit: "EUR", value: 250 } }, entityId: id };
  },
};

const INVENTORY = "/tmf-api/resourceInventoryManagement/v4/resource";
async function numberId(engine: Engine, value: string): Promise<string> {
  const created = await engine.request("POST", INVENTORY, { body: { "@type": "MSISDN", value } });
  return created.json().id as string;
}
Object.assign(WRITE_SAMPLES, {
  [`POST ${INVENTORY}`]: async () => ({ url: INVENTORY, body: { "@type": "MSISDN", value: "+4915100000100" } }),
  [`PATCH ${INVENTORY}/:id`]: async (engine: Engine) => {
    const created = await engine.request("POST", INVENTORY, { body: { "@type": "SIMCard", ...simRecord(900) } });
    const id = created.json().id as string;
    return { url: `${INVENTORY}/${id}`, body: { lifecycleState: "blocked" }, entityId: id };
  },
  "POST /api/v1/inventory/sim-imports": async () => ({
    url: "/api/v1/inventory/sim-imports",
    body: [simRecord(901), simRecord(902)],
    entityIdFrom: (answer: Record<string, unknown>) => String(answer.batch),
  }),
  "POST /api/v1/inventory/number-ranges": async () => ({
    url: "/api/v1/inventory/number-ranges",
    body: { from: "+4915100000200", to: "+4915100000209" },
    entityIdFrom: (answer: Record<string, unknown>) => String(answer.batch),
  }),
  "POST /api/v1/inventory/reservations": async (engine: Engine) => {
    const id = await numberId(engine, "+4915100000300");
    return { url: "/api/v1/inventory/reservations", body: { "@type": "MSISDN", id }, entityId: id };
  },
  "DELETE /api/v1/inventory/reservations/:id": async (engine: Engine) => {
    const id = await numberId(engine, "+4915100000400");
    const reserved = await engine.request("POST", "/api/v1/inventory/reservations", {
      body: { "@type": "MSISDN", id },
    });
    return { url: `/api/v1/inventory/reservations/${reserved.json().id as string}`, entityId: id };
  },
} satisfies Record<string, WriteSample>);

WRITE_SAMPLES["POST /api/v1/customers/:id/messages"] = async (engine) => {
  const customer = await createCustomer(engine, {
    contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+4915112345678" } }],
  });
  return {
    url: `/api/v1/customers/${customer.id}/messages`,
    body: { channel: "sms", to: "+4915112345678", body: "Hi" },
  };
};

const ORDERING = "/tmf-api/productOrderingManagement/v4";
async function activeLine(engine: Engine): Promise<{ accountId: string; lineId: string }> {
  const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100009000", "+4915100009009"], sims: 2 });
  const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(accountId) });
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const order = await engine.request("GET", placed.json().href);
  return { accountId, lineId: order.json().productOrderItem[0].product.id as string };
}
Object.assign(WRITE_SAMPLES, {
  [`POST ${ORDERING}/productOrder`]: async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100008000", "+4915100008001"], sims: 1 });
    return { url: `${ORDERING}/productOrder`, body: lineOrder(accountId) };
  },
  [`POST ${ORDERING}/cancelProductOrder`]: async (engine: Engine) => {
    const customer = await createCustomer(engine);
    const account = await engine.request("POST", BA, { body: billingAccountBody(customer.id) });
    const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(account.json().id) });
    return { url: `${ORDERING}/cancelProductOrder`, body: { productOrder: { id: placed.json().id } } };
  },
  "PATCH /tmf-api/productInventory/v4/product/:id": async (engine: Engine) => {
    const { lineId } = await activeLine(engine);
    return { url: `/tmf-api/productInventory/v4/product/${lineId}`, body: { status: "suspended" }, entityId: lineId };
  },
  "POST /api/v1/network-simulator/failures": async () => ({
    url: "/api/v1/network-simulator/failures",
    body: { operation: "activate", count: 0 },
    entityIdFrom: () => "failures",
  }),
} satisfies Record<string, WriteSample>);

/** A prepaid line of its own (numbers and SIMs no other sample uses), for the TMF654 writes. */
async function prepaidLine(engine: Engine, numbers: [string, string], serial: number): Promise<string> {
  const { accountId } = await orderReadyAccount(engine, { numbers, sims: 0, accountType: "prepaid" });
  await engine.request("POST", "/api/v1/inventory/sim-imports", { body: [simRecord(serial)] });
  const placed = await engine.request("POST", `${ORDERING}/productOrder`, {
    body: lineOrder(accountId, "plan-prepaid-payg"),
  });
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const order = await engine.request("GET", placed.json().href);
  return order.json().productOrderItem[0].product.id as string;
}

/** A CDR for a number no line holds: accepted into suspense, so the re-guide routes have something to work on. */
async function suspendedCdr(engine: Engine, cdrId: string): Promise<string> {
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-samples", countryCode: "49" } });
  const posted = await engine.request("POST", "/api/v1/cdrs", {
    key: engine.keys.network,
    body: [
      {
        recordType: "sms",
        cdrId,
        source: "msc-samples",
        servedMSISDN: "+4915112345678",
        calledNumber: "+4915187654321",
        recordOpeningTime: "2026-03-15T09:00:00Z",
      },
    ],
  });
  return posted.json().records[0].usageId as string;
}

Object.assign(WRITE_SAMPLES, {
  "POST /tmf-api/prepayBalanceManagement/v4/topupBalance": async (engine: Engine) => {
    const lineId = await prepaidLine(engine, ["+4915100007000", "+4915100007001"], 7001);
    return {
      url: "/tmf-api/prepayBalanceManagement/v4/topupBalance",
      body: { amount: { amount: 10, units: "EUR" }, product: { id: lineId } },
    };
  },
  "POST /tmf-api/prepayBalanceManagement/v4/adjustBalance": async (engine: Engine) => {
    const lineId = await prepaidLine(engine, ["+4915100007100", "+4915100007101"], 7101);
    return {
      url: "/tmf-api/prepayBalanceManagement/v4/adjustBalance",
      body: { amount: { amount: 1.5, units: "EUR" }, product: { id: lineId }, reason: "goodwill" },
    };
  },
  "POST /api/v1/cdr-sources": async () => ({
    url: "/api/v1/cdr-sources",
    body: { id: "msc-sample", countryCode: "49" },
  }),
  "PATCH /api/v1/cdr-sources/:id": async (engine: Engine) => {
    await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-patched", countryCode: "49" } });
    return { url: "/api/v1/cdr-sources/msc-patched", body: { timeZone: "Europe/Berlin" }, entityId: "msc-patched" };
  },
  "POST /api/v1/suspense/:id/reguide": async (engine: Engine) => {
    const usageId = await suspendedCdr(engine, "sample-one");
    return { url: `/api/v1/suspense/${usageId}/reguide`, entityId: usageId };
  },
  "POST /api/v1/suspense/reguide": async (engine: Engine) => {
    await suspendedCdr(engine, "sample-bulk");
    return { url: "/api/v1/suspense/reguide", body: { reason: ["unknown_number"] }, entityIdFrom: () => "bulk" };
  },
} satisfies Record<string, WriteSample>);

// Hub routes exist on every TMF API with events.
for (const base of Object.values(EVENT_APIS)) {
  WRITE_SAMPLES[`POST ${base}/hub`] = async () => ({
    url: `${base}/hub`,
    body: { callback: "http://127.0.0.1:9/events" },
  });
  WRITE_SAMPLES[`DELETE ${base}/hub/:id`] = async (engine) => {
    const created = await engine.request("POST", `${base}/hub`, { body: { callback: "http://127.0.0.1:9/events" } });
    const id = created.json().id as string;
    return { url: `${base}/hub/${id}`, entityId: id };
  };
}
WRITE_SAMPLES["PATCH /api/v1/hub-subscriptions/:id"] = async (engine) => {
  const created = await engine.request("POST", "/tmf-api/party/v4/hub", {
    body: { callback: "http://127.0.0.1:9/events" },
  });
  const id = created.json().id as string;
  return { url: `/api/v1/hub-subscriptions/${id}`, body: { status: "active" }, entityId: id };
};

const BILLING = "/tmf-api/customerBillManagement/v4";
/** An account with a line ordered a month and more ago: its cycle invoice is due (the clock moves on 40 days). */
async function accountToBill(engine: Engine, range: string): Promise<string> {
  const { accountId } = await orderReadyAccount(engine, {
    numbers: [`+49151000${range}0`, `+49151000${range}9`],
    sims: 1,
  });
  const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(accountId) });
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  engine.clock.set(new Date(engine.clock.now().getTime() + 40 * 86_400_000));
  return accountId;
}
async function issuedBill(engine: Engine, range: string): Promise<string> {
  const accountId = await accountToBill(engine, range);
  const issued = await engine.request("POST", `/api/v1/billing/accounts/${accountId}/invoices`, { body: {} });
  return issued.json().id as string;
}
Object.assign(WRITE_SAMPLES, {
  "POST /api/v1/billing/accounts/:id/invoices": async (engine: Engine) => ({
    url: `/api/v1/billing/accounts/${await accountToBill(engine, "600")}/invoices`,
    body: {},
  }),
  "POST /api/v1/billing/invoices/:id/credit-notes": async (engine: Engine) => ({
    url: `/api/v1/billing/invoices/${await issuedBill(engine, "610")}/credit-notes`,
    body: { reason: "goodwill" },
  }),
  [`PATCH ${BILLING}/customerBill/:id`]: async (engine: Engine) => {
    const id = await issuedBill(engine, "620");
    return { url: `${BILLING}/customerBill/${id}`, body: { state: "onHold" }, entityId: id };
  },
  "POST /api/v1/bill-runs": async (engine: Engine) => ({
    url: "/api/v1/bill-runs",
    body: { billingAccountIds: [await accountToBill(engine, "640")] },
  }),
  "POST /api/v1/bill-runs/:id/retry": async (engine: Engine) => {
    // An account in France, which no issuing entity bills: its run fails, to be taken again.
    const customer = await createCustomer(engine);
    const account = await engine.request("POST", BA, {
      body: billingAccountBody(customer.id, { taxJurisdiction: "FR" }),
    });
    const accountId = account.json().id as string;
    await orderReadyAccount(engine, { numbers: ["+4915100006500", "+4915100006509"], sims: 1 });
    const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(accountId) });
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    engine.clock.set(new Date(engine.clock.now().getTime() + 40 * 86_400_000));
    const run = await engine.request("POST", "/api/v1/bill-runs", { body: { billingAccountIds: [accountId] } });
    const id = run.json().id as string;
    await engine.app.services.billRuns.work(id);
    return { url: `/api/v1/bill-runs/${id}/retry`, entityId: id };
  },
  [`POST ${BILLING}/customerBillOnDemand`]: async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100006300", "+4915100006309"], sims: 1 });
    const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(accountId) });
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    return { url: `${BILLING}/customerBillOnDemand`, body: { billingAccount: { id: accountId } } };
  },
});

const PAYMENTS = "/tmf-api/paymentManagement/v4";
/** A payment of 10.00 on a fresh postpaid account (its credit, with no bill to pay). */
async function paymentOn(engine: Engine, range: string) {
  const { accountId } = await orderReadyAccount(engine, {
    numbers: [`+49151000${range}0`, `+49151000${range}9`],
    sims: 1,
  });
  const paid = await engine.request("POST", `${PAYMENTS}/payment`, {
    body: {
      totalAmount: { unit: "EUR", value: 10 },
      account: { id: accountId },
      paymentMethod: { id: "bankTransfer" },
    },
  });
  return { accountId, paymentId: paid.json().id as string };
}
async function methodOn(engine: Engine, range: string) {
  const { accountId } = await orderReadyAccount(engine, {
    numbers: [`+49151000${range}0`, `+49151000${range}9`],
    sims: 1,
  });
  const method = await engine.request("POST", `/api/v1/billing-accounts/${accountId}/payment-methods`, {
    body: { kind: "bankTransfer", iban: "DE89370400440532013000" },
  });
  return { accountId, methodId: method.json().id as string };
}
Object.assign(WRITE_SAMPLES, {
  [`POST ${PAYMENTS}/payment`]: async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007000", "+4915100007009"], sims: 1 });
    return {
      url: `${PAYMENTS}/payment`,
      body: { totalAmount: { unit: "EUR", value: 5 }, account: { id: accountId }, paymentMethod: { id: "cash" } },
    };
  },
  "POST /api/v1/payments/:id/reversal": async (engine: Engine) => {
    const { paymentId } = await paymentOn(engine, "701");
    return { url: `/api/v1/payments/${paymentId}/reversal`, body: { reasonCode: "AM05" }, entityId: paymentId };
  },
  "POST /api/v1/payments/import": async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007020", "+4915100007029"], sims: 1 });
    return {
      url: "/api/v1/payments/import",
      body: {
        payments: [
          {
            account: { id: accountId },
            totalAmount: { unit: "EUR", value: "3.00" },
            paymentMethod: { id: "bankTransfer" },
          },
        ],
      },
      entityIdFrom: (answer: { results: Array<{ payment: { id: string } }> }) => answer.results[0]?.payment.id,
    };
  },
  [`POST ${PAYMENTS}/refund`]: async (engine: Engine) => {
    const { accountId } = await paymentOn(engine, "703");
    return {
      url: `${PAYMENTS}/refund`,
      body: {
        totalAmount: { unit: "EUR", value: 4 },
        account: { id: accountId },
        paymentMethod: { id: "bankTransfer" },
      },
    };
  },
  "POST /api/v1/refunds/:id/completion": async (engine: Engine) => {
    const { accountId } = await paymentOn(engine, "704");
    await engine.request("PATCH", `${BA}/${accountId}`, { body: { state: "closed" } });
    const [refund] = await engine.sql<{ id: string }>("select id from refunds where billing_account_id = $1", [
      accountId,
    ]);
    return { url: `/api/v1/refunds/${refund?.id}/completion`, entityId: refund?.id };
  },
  "POST /api/v1/billing-accounts/:id/payment-methods": async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007050", "+4915100007059"], sims: 1 });
    return {
      url: `/api/v1/billing-accounts/${accountId}/payment-methods`,
      body: { kind: "card", provider: "psp", token: "tok_1" },
    };
  },
  "PATCH /api/v1/billing-accounts/:id/payment-methods/:methodId": async (engine: Engine) => {
    const { accountId, methodId } = await methodOn(engine, "706");
    return {
      url: `/api/v1/billing-accounts/${accountId}/payment-methods/${methodId}`,
      body: { name: "Main" },
      entityId: methodId,
    };
  },
  "DELETE /api/v1/billing-accounts/:id/payment-methods/:methodId": async (engine: Engine) => {
    const { accountId, methodId } = await methodOn(engine, "707");
    return { url: `/api/v1/billing-accounts/${accountId}/payment-methods/${methodId}`, entityId: methodId };
  },
});

/** A mandate signed yesterday on a fresh account. */
async function mandateOn(engine: Engine, accountId: string, reference: string) {
  const yesterday = new Date(engine.clock.now().getTime() - 86_400_000).toISOString().slice(0, 10);
  const created = await engine.request("POST", `/api/v1/billing-accounts/${accountId}/mandates`, {
    body: { reference, signatureDate: yesterday, debtorName: "Ada Lovelace", iban: "DE02120300000000202051" },
  });
  return created.json().id as string;
}
/** A statement with one credit nobody can place: its entry waits in the worklist. */
async function unmatchedEntry(engine: Engine, ref: string): Promise<string> {
  const imported = await engine.request("POST", "/api/v1/payments/statements", {
    rawBody: camt053({ messageId: ref, entries: [{ ref, amount: "7.00", remittance: "no reference" }] }),
    headers: { "content-type": "application/xml" },
  });
  return imported.json().items[0].id as string;
}
Object.assign(WRITE_SAMPLES, {
  "POST /api/v1/billing-accounts/:id/mandates": async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007200", "+4915100007209"], sims: 1 });
    return {
      url: `/api/v1/billing-accounts/${accountId}/mandates`,
      body: { reference: "ROUTES-M-1", signatureDate: "2020-01-01", debtorName: "Ada", iban: "DE02120300000000202051" },
    };
  },
  "DELETE /api/v1/billing-accounts/:id/mandates/:mandateId": async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007210", "+4915100007219"], sims: 1 });
    const mandateId = await mandateOn(engine, accountId, "ROUTES-M-2");
    return { url: `/api/v1/billing-accounts/${accountId}/mandates/${mandateId}`, entityId: mandateId };
  },
  "POST /api/v1/payments/direct-debits": async (engine: Engine) => {
    // Its own SIM: the samples before took the shared ones.
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007220", "+4915100007229"], sims: 0 });
    await engine.request("POST", "/api/v1/inventory/sim-imports", { body: [simRecord(7221)] });
    const placed = await engine.request("POST", `${ORDERING}/productOrder`, { body: lineOrder(accountId) });
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    engine.clock.set(new Date(engine.clock.now().getTime() + 40 * 86_400_000));
    const issued = await engine.request("POST", `/api/v1/billing/accounts/${accountId}/invoices`, { body: {} });
    if (issued.statusCode !== 201) throw new Error(`no bill: ${issued.body}`);
    await mandateOn(engine, accountId, "ROUTES-M-3");
    const collection = new Date(engine.clock.now().getTime() + 60 * 86_400_000).toISOString().slice(0, 10);
    return { url: "/api/v1/payments/direct-debits", body: { collectionDate: collection } };
  },
  "POST /api/v1/payments/statements": async () => ({
    url: "/api/v1/payments/statements",
    rawBody: camt053({ messageId: "ROUTES-S", entries: [{ ref: "ROUTES-S-1", amount: "3.00", remittance: "hello" }] }),
    contentType: "application/xml",
  }),
  "POST /api/v1/payments/unmatched/:id/assign": async (engine: Engine) => {
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100007230", "+4915100007239"], sims: 1 });
    const entryId = await unmatchedEntry(engine, "ROUTES-U-1");
    return {
      url: `/api/v1/payments/unmatched/${entryId}/assign`,
      body: { billingAccount: { id: accountId } },
      entityId: entryId,
    };
  },
});

const WRITE_METHODS = new Set(["POST", "PATCH", "PUT", "DELETE"]);

t.test("every route declares roles or is public, and has a response schema", async (t) => {
  const engine = await startEngine(t);
  const routes = engine.app.routeTable.filter((route) => !isPublicPrefix(route.url));
  t.ok(routes.length > 20, `found ${routes.length} routes`);
  for (const route of routes) {
    const name = `${route.method} ${route.url}`;
    const declared = (route.config.roles?.length ?? 0) > 0 || route.config.public === true;
    t.ok(declared, `${name} declares roles or public`);
    t.ok(route.hasResponseSchema, `${name} has a response schema`);
  }
});

t.test("a guarded route refuses no key (401) and a role it does not list (403)", async (t) => {
  const engine = await startEngine(t);
  const guarded = engine.app.routeTable.filter((route) => route.config.roles !== undefined && route.method !== "HEAD");
  for (const route of guarded) {
    const url = route.url.replace(":id", "00000000-0000-7000-8000-000000000000");
    const anonymous = await engine.request(route.method, url, { key: null });
    t.equal(anonymous.statusCode, 401, `${route.method} ${route.url} without a key`);
    t.equal(anonymous.json().status, "401");
    const outsider = (ROLES as readonly Role[]).find(
      (role) => role !== "subscriber" && !route.config.roles?.includes(role),
    );
    if (outsider === undefined) continue;
    const refused = await engine.request(route.method, url, {
      key: engine.keys[outsider as Exclude<Role, "subscriber">],
    });
    t.equal(refused.statusCode, 403, `${route.method} ${route.url} as ${outsider}`);
    t.equal(refused.json().code, "role_not_allowed");
  }
});

t.test("a route marked read-only (a quote, a bill preview) writes nothing", async (t) => {
  const engine = await startEngine(t);
  const readOnly = engine.app.routeTable.filter((route) => route.config.readOnly === true);
  t.same(readOnly.map((route) => `${route.method} ${route.url}`).sort(), [
    "POST /api/v1/billing/preview",
    "POST /api/v1/rating/quote",
  ]);
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const account = await createBillingAccount(engine, { taxJurisdiction: "DE" });
  const before = await engine.count("audit_log");
  const quote = await engine.request("POST", "/api/v1/rating/quote", {
    body: { tariff: "none", event: { recordType: "sms", recordOpeningTime: "2026-03-16T10:00:00Z" } },
  });
  t.equal(quote.statusCode, 422);
  const preview = await engine.request("POST", "/api/v1/billing/preview", { body: { billingAccountId: account.id } });
  t.equal(preview.statusCode, 200, preview.body);
  t.equal(await engine.count("audit_log"), before);
});

t.test("only the CDR doors are exempt from the audit log, and they write none", async (t) => {
  const engine = await startEngine(t);
  const exempt = engine.app.routeTable.filter((route) => route.config.auditExempt === true);
  t.same(exempt.map((route) => `${route.method} ${route.url}`).sort(), [
    "POST /api/v1/cdrs",
    "POST /api/v1/cdrs/asterisk",
    "POST /api/v1/cdrs/freeswitch",
    "POST /tmf-api/usageManagement/v4/usage",
  ]);
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-audit", countryCode: "49" } });
  const before = await engine.count("audit_log");
  const posted = await engine.request("POST", "/api/v1/cdrs", {
    key: engine.keys.network,
    body: [
      {
        recordType: "sms",
        cdrId: "audit-1",
        source: "msc-audit",
        servedMSISDN: "+4915112345678",
        calledNumber: "+4915187654321",
        recordOpeningTime: "2026-03-15T09:00:00Z",
      },
    ],
  });
  t.equal(posted.json().accepted, 1, posted.body);
  t.equal(await engine.count("usage_records"), 1, "the record is stored");
  t.equal(await engine.count("audit_log"), before, "per-CDR rows write no audit row");
});

t.test("every write route leaves an audit row for the entity it changed", async (t) => {
  const engine = await startEngine(t);
  const writes = engine.app.routeTable.filter(
    (route) =>
      WRITE_METHODS.has(route.method) &&
      !isPublicPrefix(route.url) &&
      route.config.readOnly !== true &&
      route.config.auditExempt !== true,
  );
  for (const route of writes) {
    const name = `${route.method} ${route.url}`;
    const sample = WRITE_SAMPLES[name];
    if (sample === undefined) {
      t.fail(`${name} has no sample in WRITE_SAMPLES: add one so its audit row is proven`);
      continue;
    }
    const request = await sample(engine);
    const [last] = await engine.sql<{ id: number }>("select coalesce(max(id), 0)::int as id from audit_log");
    const before = last?.id ?? 0;
    const response = await engine.request(route.method, request.url, {
      ...(request.body === undefined ? {} : { body: request.body }),
      ...(request.rawBody === undefined ? {} : { rawBody: request.rawBody }),
      ...(request.contentType ? { headers: { "content-type": request.contentType } } : {}),
    });
    t.ok(
      response.statusCode >= 200 && response.statusCode < 300,
      `${name} succeeds (${response.statusCode} ${response.body})`,
    );
    const entityId = request.entityId ?? request.entityIdFrom?.(response.json()) ?? (response.json().id as string);
    const rows = await engine.sql<{ action: string; actor_role: string }>(
      "select action, actor_role from audit_log where entity_id = $1 and id > $2 order by id",
      [entityId, before],
    );
    t.equal(rows.length, 1, `${name} wrote one audit row`);
    t.equal(rows[0]?.actor_role, "admin", `${name} audit row names the actor`);
  }
});
