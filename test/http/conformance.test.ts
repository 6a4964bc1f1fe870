import { readdirSync, readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import type { LightMyRequestResponse } from "fastify";
import t, { type Test } from "tap";
import { voiceCdr } from "../support/charging.js";
import { type Engine, startEngine } from "../support/engine.js";
import {
  activateLine,
  billingAccountBody,
  createCustomer,
  lineOrder,
  orderReadyAccount,
  simRecord,
} from "../support/fixtures.js";

/**
 * TM Forum conformance (issue 21): walks the official v4 descriptions (test/fixtures/tmf-v4, copied unchanged from
 * the TM Forum's published files). For every path and method of them the engine registers:
 * - it answers with a code the description documents, and the body validates against the description's own schema
 *   for that code (Ajv over the file's definitions);
 * - a POST with only the attributes the description marks mandatory succeeds;
 * - every list filters exactly: on `id` (one value and OR), and on every equality, dotted-path and date-range filter
 *   the route declares, the answer is exactly the items of the unfiltered list that match.
 * An operation the engine registers that this file does not exercise fails the test, so a later route cannot
 * skip the walk.
 */

interface Operation {
  responses: Record<string, { schema?: Schema }>;
  parameters?: Array<{ in: string; name: string; schema?: Schema }>;
}
interface Schema {
  $ref?: string;
  type?: string;
  items?: Schema;
  required?: string[];
}
interface Description {
  basePath: string;
  paths: Record<string, Record<string, Operation>>;
  definitions: Record<string, Schema>;
}

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop (as in src/platform/validation.ts).
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const FIXTURES = new URL("../fixtures/tmf-v4/", import.meta.url);
/** TMF676's published basePath lacks the `/tmf-api` prefix every other API has; API.md puts it beside them. */
const BASE_OVERRIDES: Record<string, string> = { "/payment/v4": "/tmf-api/paymentManagement/v4" };

interface Api {
  file: string;
  base: string;
  description: Description;
  ajv: Ajv;
}

function loadApis(): Api[] {
  return readdirSync(FIXTURES)
    .filter((file) => file.endsWith(".swagger.json"))
    .map((file) => {
      const description = JSON.parse(readFileSync(new URL(file, FIXTURES), "utf8")) as Description;
      const published = description.basePath.replace(/\/$/, "");
      // One validator per file: the definitions' names repeat across APIs with different shapes.
      const ajv = new Ajv({ strict: false, allErrors: true });
      addFormats(ajv);
      // The engine's hrefs are references relative to its own origin (it does not know the address a proxy
      // publishes); the descriptions' `uri` format asks for an absolute one. Everything else is checked as written.
      ajv.addFormat("uri", true);
      ajv.addSchema({ $id: `https://tmf.invalid/${file}`, definitions: description.definitions });
      return { file, base: BASE_OVERRIDES[published] ?? published, description, ajv };
    });
}

const APIS = loadApis();

/** The engine's form of a description's path: `{id}` becomes `:id`. */
const routeOf = (api: Api, path: string) => `${api.base}${path.replace(/\{(\w+)\}/g, ":$1")}`;

/** The description's operation for an engine route, with its API. */
function operationOf(method: string, route: string): { api: Api; operation: Operation } | undefined {
  for (const api of APIS) {
    for (const [path, operations] of Object.entries(api.description.paths)) {
      const operation = operations[method.toLowerCase()];
      if (operation !== undefined && routeOf(api, path) === route) return { api, operation };
    }
  }
  return undefined;
}

function validatorFor(api: Api, schema: Schema): ValidateFunction {
  const name = (ref: string) => `https://tmf.invalid/${api.file}#/definitions/${ref.split("/").pop()}`;
  const resolved =
    schema.$ref !== undefined
      ? { $ref: name(schema.$ref) }
      : schema.type === "array" && schema.items?.$ref !== undefined
        ? { type: "array", items: { $ref: name(schema.items.$ref) } }
        : schema;
  return api.ajv.compile(resolved);
}

/** The attributes the description marks mandatory in a create body. */
function mandatory(api: Api, operation: Operation): string[] {
  const body = operation.parameters?.find((parameter) => parameter.in === "body");
  const ref = body?.schema?.$ref?.split("/").pop();
  return ref === undefined ? [] : (api.description.definitions[ref]?.required ?? []);
}

/** Checks one answer of an operation: a documented code, and a body the documented schema for it accepts. */
function conforms(t: Test, method: string, route: string, response: LightMyRequestResponse, label: string): void {
  const found = operationOf(method, route);
  if (found === undefined) throw new Error(`${method} ${route} is in no description`);
  const documented = found.operation.responses[String(response.statusCode)];
  t.ok(documented, `${label}: ${method} ${route} answers ${response.statusCode}, a documented code`, {
    body: response.body.slice(0, 500),
  });
  const schema = documented?.schema;
  if (schema === undefined) return;
  const validate = validatorFor(found.api, schema);
  validate(response.json());
  const errors = (validate.errors ?? []).filter(
    (error) =>
      !KNOWN_DEVIATIONS.some(
        (deviation) =>
          found.api.file.startsWith(deviation.api) &&
          route.startsWith(deviation.route) &&
          error.keyword === deviation.keyword &&
          (error.params as { missingProperty?: string }).missingProperty === deviation.missingProperty,
      ),
  );
  t.same(errors, [], `${label}: the ${response.statusCode} body validates against ${found.api.file}`);
}

/**
 * Where the engine knowingly answers outside a description, with the reason (README, "TM Forum APIs"). Each is
 * matched exactly (API, route, keyword, attribute); anything else is a failure.
 */
const KNOWN_DEVIATIONS = [
  {
    api: "TMF654",
    route: "/tmf-api/prepayBalanceManagement/v4/accumulatedBalance",
    keyword: "required",
    missingProperty: "bucket",
    why: "TMF654 asks for at least one bucket; a postpaid account without allowances aggregates none (its accumulated balance is its spend to date), so the list is left out rather than sent empty or invented",
  },
];

/** The value(s) at a dotted path of an item, through arrays (`relatedParty.id` of every related party). */
function valuesAt(item: unknown, path: string): unknown[] {
  let current: unknown[] = [item];
  for (const part of path.split(".")) {
    current = current.flatMap((value) => {
      if (Array.isArray(value)) return value.map((inner) => (inner as Record<string, unknown>)?.[part]);
      return value !== null && typeof value === "object" ? [(value as Record<string, unknown>)[part]] : [];
    });
    current = current.flat().filter((value) => value !== undefined && value !== null);
  }
  return current;
}

const RANGE_OPERATORS = ["gt", "gte", "lt", "lte"] as const;
const compare: Record<(typeof RANGE_OPERATORS)[number], (a: number, b: number) => boolean> = {
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
};

/** The data every list needs to be non-empty, made as a CRM, a network and finance would. */
async function populate(engine: Engine) {
  const ready = await orderReadyAccount(engine);
  const postpaid = await activateLine(engine, ready.accountId);
  const customer = await createCustomer(engine);
  const prepaidAccount = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
    body: billingAccountBody(customer.id, { accountType: "prepaid", creditLimit: undefined }),
  });
  if (prepaidAccount.statusCode !== 201) throw new Error(prepaidAccount.body);
  const prepaid = await activateLine(engine, prepaidAccount.json().id, "plan-prepaid-payg");
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const cdr = voiceCdr(postpaid.msisdn, "+4930123456", 60);
  const usage = await engine.request("POST", "/tmf-api/usageManagement/v4/usage", {
    key: engine.keys.network,
    body: {
      usageType: "voice",
      usageCharacteristic: Object.entries(cdr).map(([name, value]) => ({ name, value })),
    },
  });
  if (usage.statusCode !== 201) throw new Error(usage.body);
  // Forty days on, the postpaid account's first invoice is issued (TMF678 bills and lines).
  engine.clock.set(new Date(engine.clock.now().getTime() + 40 * 86_400_000));
  const bill = await engine.request("POST", `/api/v1/billing/accounts/${ready.accountId}/invoices`, { body: {} });
  if (bill.statusCode !== 201) throw new Error(bill.body);
  // Another postpaid account pays 10.00 ahead of any bill (TMF676 payments), and 5.00 of it is paid back (refunds).
  const payer = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
    body: billingAccountBody(customer.id),
  });
  const paid = await engine.request("POST", "/tmf-api/paymentManagement/v4/payment", {
    body: {
      totalAmount: { unit: "EUR", value: 10 },
      account: { id: payer.json().id },
      paymentMethod: { id: "bankTransfer" },
    },
  });
  if (paid.statusCode !== 201) throw new Error(paid.body);
  const refunded = await engine.request("POST", "/tmf-api/paymentManagement/v4/refund", {
    body: {
      totalAmount: { unit: "EUR", value: 5 },
      account: { id: payer.json().id },
      paymentMethod: { id: "bankTransfer" },
    },
  });
  if (refunded.statusCode !== 201) throw new Error(refunded.body);
  return {
    accountId: ready.accountId,
    prepaidAccountId: prepaidAccount.json().id as string,
    payerAccountId: payer.json().id as string,
    postpaid,
    prepaid,
    billId: bill.json().id as string,
  };
}

type Data = Awaited<ReturnType<typeof populate>>;

/** A body with only the mandatory attributes of each create the engine offers, and what makes it valid here. */
const MINIMAL_CREATES: Record<string, (engine: Engine, data: Data) => Promise<Record<string, unknown>>> = {
  "/tmf-api/party/v4/individual": async () => ({ givenName: "Grace", familyName: "Hopper" }),
  "/tmf-api/party/v4/organization": async () => ({ tradingName: "Acme Mobile" }),
  "/tmf-api/customerManagement/v4/customer": async (engine) => {
    const party = await engine.request("POST", "/tmf-api/party/v4/individual", {
      body: { givenName: "Alan", familyName: "Turing" },
    });
    return { name: "Alan Turing", engagedParty: { id: party.json().id, "@referredType": "Individual" } };
  },
  "/tmf-api/accountManagement/v4/billingAccount": async (engine) => {
    const party = await engine.request("POST", "/tmf-api/party/v4/organization", {
      body: { tradingName: "Bletchley" },
    });
    return {
      name: "Bletchley main",
      relatedParty: [{ id: party.json().id, "@referredType": "Organization", name: "Bletchley" }],
    };
  },
  "/tmf-api/productOrderingManagement/v4/productOrder": async () => ({
    productOrderItem: lineOrder("00000000-0000-0000-0000-000000000000").productOrderItem,
  }),
  "/tmf-api/productOrderingManagement/v4/cancelProductOrder": async (engine, data) => {
    const placed = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
      body: lineOrder(data.accountId),
    });
    return { productOrder: { id: placed.json().id } };
  },
  "/tmf-api/resourceInventoryManagement/v4/resource": async () => ({ name: "+4915100000777" }),
  "/tmf-api/usageManagement/v4/usage": async () => ({}),
  "/tmf-api/prepayBalanceManagement/v4/topupBalance": async (_engine, data) => ({
    amount: { amount: 10, units: "EUR" },
    usageType: "monetary",
    bucket: { id: data.prepaid.lineId },
    partyAccount: { id: data.prepaidAccountId },
  }),
  "/tmf-api/prepayBalanceManagement/v4/adjustBalance": async (_engine, data) => ({
    amount: { amount: -2.5, units: "EUR" },
    usageType: "monetary",
    bucket: { id: data.prepaid.lineId },
  }),
  "/tmf-api/productCatalogManagement/v4/hub": hubBody,
  "/tmf-api/party/v4/hub": hubBody,
  "/tmf-api/customerManagement/v4/hub": hubBody,
  "/tmf-api/accountManagement/v4/hub": hubBody,
  "/tmf-api/productOrderingManagement/v4/hub": hubBody,
  "/tmf-api/productInventory/v4/hub": hubBody,
  "/tmf-api/resourceInventoryManagement/v4/hub": hubBody,
  "/tmf-api/prepayBalanceManagement/v4/hub": hubBody,
  "/tmf-api/customerBillManagement/v4/hub": hubBody,
  "/tmf-api/customerBillManagement/v4/customerBillOnDemand": async (_engine, data) => ({
    billingAccount: { id: data.accountId },
  }),
  "/tmf-api/paymentManagement/v4/hub": hubBody,
  "/tmf-api/paymentManagement/v4/payment": async (_engine, data) => ({
    totalAmount: { unit: "EUR", value: 1 },
    account: { id: data.accountId },
    paymentMethod: { id: "bankTransfer" },
  }),
  "/tmf-api/paymentManagement/v4/refund": async (_engine, data) => ({
    totalAmount: { unit: "EUR", value: 1 },
    account: { id: data.payerAccountId },
    paymentMethod: { id: "bankTransfer" },
  }),
};

/**
 * Attributes the engine needs beyond the description's mandatory ones: TMF678 marks nothing of a bill on demand
 * mandatory, but a bill belongs to an account, so the engine asks which.
 */
const ENGINE_MANDATORY: Record<string, string[]> = {
  "/tmf-api/customerBillManagement/v4/customerBillOnDemand": ["billingAccount"],
};

async function hubBody() {
  return { callback: "http://127.0.0.1:9/listener" };
}

/** A change each PATCH the engine offers accepts, on an item it makes (or the populated data's). */
const PATCHES: Record<string, (engine: Engine, data: Data) => Promise<{ id: string; body: Record<string, unknown> }>> =
  {
    "/tmf-api/party/v4/individual": async (engine) => ({
      id: (
        await engine.request("POST", "/tmf-api/party/v4/individual", { body: { givenName: "A", familyName: "B" } })
      ).json().id,
      body: { title: "Dr" },
    }),
    "/tmf-api/party/v4/organization": async (engine) => ({
      id: (await engine.request("POST", "/tmf-api/party/v4/organization", { body: { tradingName: "Patched" } })).json()
        .id,
      body: { status: "validated" },
    }),
    "/tmf-api/customerManagement/v4/customer": async (engine) => ({
      id: (await createCustomer(engine)).id,
      body: { statusReason: "KYC done" },
    }),
    "/tmf-api/accountManagement/v4/billingAccount": async (_engine, data) => ({
      id: data.accountId,
      body: { creditLimit: { unit: "EUR", value: 250 } },
    }),
    "/tmf-api/productInventory/v4/product": async (_engine, data) => ({
      id: data.postpaid.lineId,
      body: { status: "suspended" },
    }),
    "/tmf-api/customerBillManagement/v4/customerBill": async (_engine, data) => ({
      id: data.billId,
      body: { state: "onHold" },
    }),
    "/tmf-api/resourceInventoryManagement/v4/resource": async (engine) => ({
      id: (
        await engine.request("POST", "/tmf-api/resourceInventoryManagement/v4/resource", {
          body: { "@type": "SIMCard", ...simRecord(500) },
        })
      ).json().id,
      body: { resourceStatus: "suspended" },
    }),
  };

/** Deletes the engine offers, each on an item it makes for the purpose. */
const DELETES: Record<string, (engine: Engine) => Promise<string>> = {
  "/tmf-api/party/v4/individual": async (engine) =>
    (await engine.request("POST", "/tmf-api/party/v4/individual", { body: { givenName: "C", familyName: "D" } })).json()
      .id,
  "/tmf-api/party/v4/organization": async (engine) =>
    (await engine.request("POST", "/tmf-api/party/v4/organization", { body: { tradingName: "Gone" } })).json().id,
  "/tmf-api/customerManagement/v4/customer": async (engine) => (await createCustomer(engine)).id,
};

t.test("every TMF operation the engine offers conforms to the official description", async (t) => {
  const engine = await startEngine(t);
  const data = await populate(engine);
  const tmfRoutes = engine.app.routeTable
    .filter((route) => route.url.startsWith("/tmf-api/") && route.method !== "HEAD")
    .map((route) => ({ method: route.method, url: route.url }));
  const walked = new Set<string>();
  const claimed = tmfRoutes.filter((route) => operationOf(route.method, route.url) !== undefined);
  t.ok(claimed.length > 60, `${claimed.length} operations of the descriptions are the engine's`);

  // Writes first, so every list below has items of every kind.
  for (const { method, url } of claimed.filter((route) => route.method === "POST")) {
    const make = MINIMAL_CREATES[url];
    if (make === undefined) continue;
    const body = await make(engine, data);
    const found = operationOf(method, url);
    if (found !== undefined && !url.endsWith("/hub")) {
      t.same(
        Object.keys(body).sort(),
        [...mandatory(found.api, found.operation), ...(ENGINE_MANDATORY[url] ?? [])].sort(),
        `${url}: only the mandatory attributes`,
      );
    }
    const key = url.includes("/usageManagement/") ? engine.keys.network : engine.keys.admin;
    const response = await engine.request(method, url, { body, key });
    t.equal(response.statusCode, 201, `POST ${url} with only the mandatory attributes: ${response.body.slice(0, 300)}`);
    conforms(t, method, url, response, "minimal create");
    if (url.endsWith("/hub")) {
      const gone = await engine.request("DELETE", `${url}/${response.json().id}`);
      t.equal(gone.statusCode, 204);
      conforms(t, "DELETE", `${url}/:id`, gone, "unsubscribe");
      walked.add(`DELETE ${url}/:id`);
    }
    walked.add(`${method} ${url}`);
  }
  for (const { method, url } of claimed.filter((route) => route.method === "PATCH")) {
    const base = url.replace(/\/:id$/, "");
    const make = PATCHES[base];
    if (make === undefined) continue;
    const { id, body } = await make(engine, data);
    const response = await engine.request("PATCH", `${base}/${id}`, {
      body,
      headers: { "content-type": "application/merge-patch+json" },
    });
    t.equal(response.statusCode, 200, `PATCH ${base}/${id}: ${response.body.slice(0, 300)}`);
    conforms(t, method, url, response, "patch");
    walked.add(`${method} ${url}`);
  }
  for (const { method, url } of claimed.filter(
    (route) => route.method === "DELETE" && !route.url.endsWith("/hub/:id"),
  )) {
    const base = url.replace(/\/:id$/, "");
    const make = DELETES[base];
    if (make === undefined) continue;
    const response = await engine.request("DELETE", `${base}/${await make(engine)}`);
    t.equal(response.statusCode, 204, `DELETE ${base}: ${response.body.slice(0, 300)}`);
    conforms(t, method, url, response, "delete");
    walked.add(`${method} ${url}`);
  }

  // Every list and retrieve: the answer validates; the id filter and every declared filter select exactly.
  const openapi = (await engine.request("GET", "/docs/json")).json() as {
    paths: Record<string, { get?: { parameters?: Array<{ in: string; name: string }> } }>;
  };
  for (const { url } of claimed.filter((route) => route.method === "GET" && !route.url.endsWith("/:id"))) {
    const listed = await engine.request("GET", url, { query: { limit: "1000" } });
    conforms(t, "GET", url, listed, "list");
    const items = listed.json() as Array<Record<string, unknown>>;
    t.ok(items.length > 0, `${url}: the populated engine lists items`);
    walked.add(`GET ${url}`);
    const first = items[0] as { id: string };
    const last = items[items.length - 1] as { id: string };

    const one = await engine.request("GET", `${url}/${first.id}`);
    t.equal(one.statusCode, 200);
    conforms(t, "GET", `${url}/:id`, one, "retrieve");
    const unknown = await engine.request("GET", `${url}/${"f".repeat(300)}`);
    t.equal(unknown.statusCode, 404, `${url}: an id longer than any is a 404`);
    conforms(t, "GET", `${url}/:id`, unknown, "retrieve unknown");
    walked.add(`GET ${url}/:id`);

    const byId = await engine.request("GET", url, { query: { id: `${first.id},${last.id}` } });
    t.same(
      (byId.json() as Array<{ id: string }>).map((item) => item.id).sort(),
      [...new Set([first.id, last.id])].sort(),
      `${url}?id=a,b`,
    );

    const parameters = (openapi.paths[url.replace(/:(\w+)/g, "{$1}")]?.get?.parameters ?? [])
      .filter((parameter) => parameter.in === "query")
      .map((parameter) => parameter.name)
      .filter((name) => !["offset", "limit", "fields", "id"].includes(name));
    let exercised = 0;
    for (const name of parameters) {
      const operator = RANGE_OPERATORS.find((op) => name.endsWith(`.${op}`));
      const attribute = operator === undefined ? name : name.slice(0, -operator.length - 1);
      // A comma separates values (TMF630 OR), so a value with a comma in it cannot be one filter value.
      const holders = items.filter(
        (item) => valuesAt(item, attribute).length > 0 && !String(valuesAt(item, attribute)[0]).includes(","),
      );
      // An alias or an extension parameter names no attribute of the item; it is tested with its resource.
      if (holders.length === 0) continue;
      const pivot = valuesAt(holders[Math.floor(holders.length / 2)], attribute)[0];
      let expected: string[];
      if (operator !== undefined) {
        const at = (value: unknown) => (typeof value === "number" ? value : Date.parse(String(value)));
        expected = items
          .filter((item) => valuesAt(item, attribute).some((value) => compare[operator](at(value), at(pivot))))
          .map((item) => item.id as string);
      } else {
        expected = items
          .filter((item) => valuesAt(item, attribute).some((value) => String(value) === String(pivot)))
          .map((item) => item.id as string);
      }
      const filtered = await engine.request("GET", url, { query: { [name]: String(pivot), limit: "1000" } });
      t.equal(filtered.statusCode, 200, `${url}?${name}=${String(pivot)}: ${filtered.body.slice(0, 200)}`);
      t.same(
        (filtered.json() as Array<{ id: string }>).map((item) => item.id).sort(),
        expected.sort(),
        `${url}?${name}=${String(pivot)} selects exactly the matching items`,
      );
      exercised += 1;
    }
    t.comment(`${url}: id and ${exercised} of ${parameters.length} declared filters checked against the full list`);
  }

  const unwalked = claimed.map((route) => `${route.method} ${route.url}`).filter((key) => !walked.has(key));
  t.same(unwalked, [], "every operation the engine offers from the descriptions was walked");
});

t.test("filters reach into references and dates where the descriptions put them", async (t) => {
  // The generic walk above checks every declared filter against the items; these name the ones the issue lists,
  // so a declaration that went missing fails here rather than being skipped.
  const engine = await startEngine(t);
  await populate(engine);
  const declared = (await engine.request("GET", "/docs/json")).json() as {
    paths: Record<string, { get?: { parameters?: Array<{ in: string; name: string }> } }>;
  };
  const expectations: Record<string, string[]> = {
    "/tmf-api/productOrderingManagement/v4/productOrder": ["billingAccount.id", "orderDate.gte", "state"],
    "/tmf-api/productInventory/v4/product": ["billingAccount.id", "productOffering.id", "status", "name"],
    "/tmf-api/accountManagement/v4/billingAccount": ["relatedParty.id", "lastModified.gt", "state"],
    "/tmf-api/usageManagement/v4/usage": ["usageType", "status", "usageDate.lt"],
    "/tmf-api/usageManagement/v4/usageSpecification": ["lifecycleStatus", "name"],
    "/tmf-api/prepayBalanceManagement/v4/bucket": ["partyAccount.id"],
    "/tmf-api/resourceInventoryManagement/v4/resource": ["name"],
  };
  for (const [path, names] of Object.entries(expectations)) {
    const parameters = (declared.paths[path]?.get?.parameters ?? []).map((parameter) => parameter.name);
    for (const name of names) t.ok(parameters.includes(name), `${path} filters on ${name}`);
  }
});
