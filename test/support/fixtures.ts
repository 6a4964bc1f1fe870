import { luhnCheckDigit } from "../../src/shared/identifiers.js";
import type { Engine } from "./engine.js";

/** Builders for the resources most tests need, created over HTTP like a CRM would. */

export async function createIndividual(engine: Engine, overrides: Record<string, unknown> = {}) {
  const response = await engine.request("POST", "/tmf-api/party/v4/individual", {
    body: { givenName: "Ada", familyName: "Lovelace", ...overrides },
  });
  if (response.statusCode !== 201) throw new Error(`individual: ${response.statusCode} ${response.body}`);
  return response.json() as { id: string; href: string };
}

export async function createCustomer(engine: Engine, overrides: Record<string, unknown> = {}) {
  const party = await createIndividual(engine);
  const response = await engine.request("POST", "/tmf-api/customerManagement/v4/customer", {
    body: { name: "Ada Lovelace", engagedParty: { id: party.id, "@referredType": "Individual" }, ...overrides },
  });
  if (response.statusCode !== 201) throw new Error(`customer: ${response.statusCode} ${response.body}`);
  return response.json() as { id: string; href: string };
}

export function billingAccountBody(customerId: string, overrides: Record<string, unknown> = {}) {
  return {
    name: "Main account",
    relatedParty: [{ id: customerId, "@referredType": "Customer" }],
    accountType: "postpaid",
    currency: "EUR",
    billCycleDay: 1,
    timeZone: "Europe/Berlin",
    taxJurisdiction: "DE",
    creditLimit: { unit: "EUR", value: 100 },
    ...overrides,
  };
}

export async function createBillingAccount(engine: Engine, overrides: Record<string, unknown> = {}) {
  const customer = await createCustomer(engine);
  const response = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
    body: billingAccountBody(customer.id, overrides),
  });
  if (response.statusCode !== 201) throw new Error(`billingAccount: ${response.statusCode} ${response.body}`);
  return { ...(response.json() as { id: string; href: string }), customerId: customer.id };
}

/** A valid SIM record: a 19-digit ICCID with its Luhn digit, an IMSI on the operator's first network. */
export function simRecord(serial: number, overrides: Record<string, string> = {}) {
  const payload = `894920000${String(serial).padStart(9, "0")}`;
  return {
    iccid: `${payload}${luhnCheckDigit(payload)}`,
    imsi: `26201${String(serial).padStart(10, "0")}`,
    pin1: "1234",
    puk1: "12345678",
    ki: "000102030405060708090a0b0c0d0e0f",
    opc: "ffeeddccbbaa99887766554433221100",
    ...overrides,
  };
}

/** The catalog published, numbers and SIMs in stock, a customer with a mobile contact and an account. */
export async function orderReadyAccount(
  engine: Engine,
  options: { numbers?: [string, string]; sims?: number; accountType?: "prepaid" | "postpaid" } = {},
) {
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const [from, to] = options.numbers ?? ["+4915100000000", "+4915100000009"];
  await engine.request("POST", "/api/v1/inventory/number-ranges", { body: { from, to } });
  const sims = Array.from({ length: options.sims ?? 10 }, (_, index) => simRecord(index + 1));
  await engine.request("POST", "/api/v1/inventory/sim-imports", { body: sims });
  const customer = await createCustomer(engine, {
    contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+4915799999999" } }],
  });
  const postpaid = (options.accountType ?? "postpaid") === "postpaid";
  const account = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
    body: billingAccountBody(customer.id, postpaid ? {} : { accountType: "prepaid", creditLimit: undefined }),
  });
  return { customerId: customer.id, accountId: account.json().id as string, sims };
}

export function lineOrder(accountId: string, plan = "plan-postpaid-m", extra: Record<string, unknown>[] = []) {
  return {
    billingAccount: { id: accountId },
    productOrderItem: [{ id: "1", action: "add", productOffering: { id: plan } }, ...extra],
  };
}

/** Orders a line on an account and fulfils it at once (manual fulfilment): the active line's id and number. */
export async function activateLine(engine: Engine, accountId: string, plan = "plan-postpaid-m") {
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  const placed = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    body: lineOrder(accountId, plan),
  });
  if (placed.statusCode !== 201) throw new Error(`order: ${placed.statusCode} ${placed.body}`);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const product = (await engine.request("GET", placed.json().href)).json().productOrderItem[0].product;
  const characteristic = (name: string) =>
    product.productCharacteristic.find((c: { name: string }) => c.name === name)?.value as string;
  return { lineId: product.id as string, msisdn: characteristic("msisdn"), iccid: characteristic("iccid") };
}
