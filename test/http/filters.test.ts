import t from "tap";
import { drivers, type Engine, everyCase, expectError, startEngine } from "../support/engine.js";
import { activateLine, createBillingAccount, orderReadyAccount } from "../support/fixtures.js";

/**
 * TMF630 filters (issue 21): `id` on every list, dotted paths into references, date ranges with
 * `.gt .gte .lt .lte`, comma for OR, older spellings kept; unknown names and bad values are a 400 naming them.
 */

const ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount";
const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const PRODUCTS = "/tmf-api/productInventory/v4/product";
const UNKNOWN = "00000000-0000-7000-8000-000000000000";

async function ids(engine: Engine, url: string): Promise<string[]> {
  const answer = await engine.request("GET", url);
  if (answer.statusCode !== 200) throw new Error(`${url}: ${answer.statusCode} ${answer.body}`);
  return (answer.json() as Array<{ id: string }>).map((item) => item.id).sort();
}

for (const driver of drivers) {
  t.test(`[${driver}] id, dotted references and date ranges return exactly the matching items`, async (t) => {
    const engine = await startEngine(t, { driver });
    const first = await createBillingAccount(engine, { name: "First" });
    engine.clock.advanceSeconds(60);
    const second = await createBillingAccount(engine, { name: "Second" });
    engine.clock.advanceSeconds(60);
    const third = await createBillingAccount(engine, { name: "Third" });

    t.same(await ids(engine, `${ACCOUNTS}?id=${second.id}`), [second.id], "id");
    t.same(await ids(engine, `${ACCOUNTS}?id=${first.id},${third.id}`), [first.id, third.id].sort(), "ids, OR");
    t.same(await ids(engine, `${ACCOUNTS}?id=${UNKNOWN}`), [], "an unknown id matches nothing");
    t.same(await ids(engine, `${ACCOUNTS}?id=not-one-of-ours`), [], "an id that is no id matches nothing");
    t.same(await ids(engine, `${ACCOUNTS}?relatedParty.id=${second.customerId}`), [second.id], "relatedParty.id");
    const middle = (await engine.request("GET", `${ACCOUNTS}/${second.id}`)).json().lastModified as string;
    t.same(await ids(engine, `${ACCOUNTS}?lastModified.gte=${middle}`), [second.id, third.id].sort(), ".gte");
    t.same(await ids(engine, `${ACCOUNTS}?lastModified.gt=${middle}`), [third.id], ".gt");
    t.same(await ids(engine, `${ACCOUNTS}?lastModified.lt=${middle}`), [first.id], ".lt");
    t.same(
      await ids(engine, `${ACCOUNTS}?lastModified.gte=${middle}&lastModified.lte=${middle}`),
      [second.id],
      "a closed range",
    );
    t.same(await ids(engine, `${ACCOUNTS}?lastModified.gte=2026-03-15&name=First,Third`), [first.id, third.id].sort());

    expectError(t, await engine.request("GET", `${ACCOUNTS}?colour=red`), 400, "invalid_parameter", "colour");
    expectError(
      t,
      await engine.request("GET", `${ACCOUNTS}?lastModified.gte=yesterday`),
      400,
      "invalid_parameter",
      "lastModified.gte",
    );
    expectError(t, await engine.request("GET", `${ACCOUNTS}?name.gte=a`), 400, "invalid_parameter", "name.gte");
    const many = Array.from({ length: 1_000 }, () => UNKNOWN).join(",");
    const tooMany = await engine.request("GET", `${ACCOUNTS}?id=${many}`);
    t.equal(tooMany.statusCode, 400, "an id filter with 1,000 values is a 400");
    t.equal(tooMany.json().field, "id");
  });

  if (everyCase(driver))
    t.test(`[${driver}] orders and products by billing account, offering and date; older spellings kept`, async (t) => {
      const engine = await startEngine(t, { driver });
      const { accountId } = await orderReadyAccount(engine);
      const other = await createBillingAccount(engine);
      const { lineId } = await activateLine(engine, accountId, "plan-postpaid-m");
      const orders = await ids(engine, `${ORDERS}?billingAccount.id=${accountId}`);
      t.equal(orders.length, 1, "billingAccount.id");
      t.same(await ids(engine, `${ORDERS}?billingAccountId=${accountId}`), orders, "the older billingAccountId");
      t.same(await ids(engine, `${ORDERS}?billingAccount.id=${other.id}`), []);
      t.same(await ids(engine, `${ORDERS}?orderDate.gte=2026-03-15T00:00:00Z`), orders, "orderDate.gte");
      t.same(await ids(engine, `${ORDERS}?orderDate.lt=2026-03-15T00:00:00Z`), [], "orderDate.lt");
      t.same(await ids(engine, `${ORDERS}?id=${orders[0]}&state=completed`), orders, "id with state");

      t.same(
        await ids(engine, `${PRODUCTS}?billingAccount.id=${accountId}`),
        [lineId],
        "products by billingAccount.id",
      );
      t.same(await ids(engine, `${PRODUCTS}?productOffering.id=plan-postpaid-m`), [lineId], "productOffering.id");
      t.same(
        await ids(engine, `${PRODUCTS}?offeringId=plan-postpaid-m&id=${lineId}`),
        [lineId],
        "older offeringId, id",
      );
      t.same(await ids(engine, `${PRODUCTS}?productOffering.id=plan-prepaid-payg`), []);
      t.same(
        await ids(engine, `/tmf-api/usageManagement/v4/usage?usageDate.gte=2026-01-01&usageType=voice`),
        [],
        "usage by date and type",
      );
      expectError(t, await engine.request("GET", `${ORDERS}?orderDate.gte=15.03.2026`), 400, "invalid_parameter");
    });
}

t.test("usage specifications: id, name and fields filter them; a long or unknown id is a 404", async (t) => {
  const engine = await startEngine(t);
  const SPECS = "/tmf-api/usageManagement/v4/usageSpecification";
  t.same(await ids(engine, `${SPECS}?id=voice`), ["voice"]);
  t.same(await ids(engine, `${SPECS}?name=sms,data`), ["data", "sms"]);
  t.same(await ids(engine, `${SPECS}?lifecycleStatus=Active`), ["data", "sms", "voice"]);
  const narrow = await engine.request("GET", `${SPECS}?id=data&fields=name`);
  t.same(narrow.json(), [{ id: "data", href: `${SPECS}/data`, "@type": "UsageSpecification", name: "data" }]);
  t.equal((await engine.request("GET", `${SPECS}/voice?fields=lifecycleStatus`)).json().lifecycleStatus, "Active");
  expectError(t, await engine.request("GET", `${SPECS}/${"x".repeat(40)}`), 404, "not_found");
  expectError(t, await engine.request("GET", `${SPECS}/fax`), 404, "not_found");
  expectError(t, await engine.request("GET", `${ACCOUNTS}/${"x".repeat(120)}`), 404, "not_found");
});

t.test("TMF639 resources carry their name and are found by it", async (t) => {
  const engine = await startEngine(t);
  await orderReadyAccount(engine);
  const RESOURCES = "/tmf-api/resourceInventoryManagement/v4/resource";
  const found = await engine.request("GET", `${RESOURCES}?name=${encodeURIComponent("+4915100000003")}`);
  t.equal(found.statusCode, 200);
  t.match(found.json(), [{ "@type": "MSISDN", name: "+4915100000003", value: "+4915100000003" }]);
  const sims = (await engine.request("GET", `${RESOURCES}?@type=SIMCard&limit=1`)).json();
  t.equal(sims[0].name, sims[0].value, "a SIM is named by its ICCID");
  const byId = await ids(engine, `${RESOURCES}?id=${sims[0].id}`);
  t.same(byId, [sims[0].id]);
});

t.test(
  "TMF666 minimal billing account: name and an Individual or Organization; defaults and the customer role",
  async (t) => {
    const engine = await startEngine(t, { env: { BSS_DEFAULT_CURRENCY: "GBP", BSS_DEFAULT_TAX_JURISDICTION: "GB" } });
    const person = (
      await engine.request("POST", "/tmf-api/party/v4/individual", {
        body: { givenName: "Grace", familyName: "Hopper" },
      })
    ).json();
    const minimal = { name: "Grace's line", relatedParty: [{ id: person.id, "@referredType": "Individual" }] };
    const first = await engine.request("POST", ACCOUNTS, { body: minimal });
    t.equal(first.statusCode, 201, first.body);
    t.match(first.json(), { currency: "GBP", taxJurisdiction: "GB", relatedParty: [{ "@referredType": "Customer" }] });
    const customerId = first.json().relatedParty[0].id as string;
    const customer = (await engine.request("GET", `/tmf-api/customerManagement/v4/customer/${customerId}`)).json();
    t.match(customer, { name: "Grace Hopper", engagedParty: { id: person.id, "@referredType": "Individual" } });
    const second = await engine.request("POST", ACCOUNTS, { body: { ...minimal, name: "Second", currency: "EUR" } });
    t.equal(second.json().relatedParty[0].id, customerId, "the party's customer is found, not made twice");
    t.equal(second.json().currency, "EUR", "a named currency wins");
    t.equal(await engine.count("customers"), 1);

    const org = (
      await engine.request("POST", "/tmf-api/party/v4/organization", { body: { tradingName: "Acme" } })
    ).json();
    const byOrg = await engine.request("POST", ACCOUNTS, {
      body: { name: "Acme main", relatedParty: [{ id: org.id, "@referredType": "Organization" }] },
    });
    t.equal(byOrg.statusCode, 201, byOrg.body);
    const unknown = await engine.request("POST", ACCOUNTS, {
      body: { name: "Ghost", relatedParty: [{ id: UNKNOWN, "@referredType": "Individual" }] },
    });
    expectError(t, unknown, 422, "unknown_reference", "relatedParty[0].id");
    t.equal(await engine.count("customers"), 2, "nothing made for an unknown party");
  },
);

t.test("TMF639 standard creates: @type Resource with a resourceSpecification naming SIMCard or MSISDN", async (t) => {
  const engine = await startEngine(t);
  const RESOURCES = "/tmf-api/resourceInventoryManagement/v4/resource";
  const number = await engine.request("POST", RESOURCES, {
    body: {
      "@type": "Resource",
      name: "+4915199990001",
      resourceSpecification: { id: "MSISDN", name: "MSISDN" },
      resourceCharacteristic: [{ name: "category", value: "premium" }],
    },
  });
  t.equal(number.statusCode, 201, number.body);
  t.match(number.json(), { "@type": "MSISDN", name: "+4915199990001", category: "premium" });
  const sim = await engine.request("POST", RESOURCES, {
    body: {
      "@type": "LogicalResource",
      resourceSpecification: { name: "SIM" },
      name: "8949200000000099992",
      resourceCharacteristic: [
        { name: "imsi", value: "262019999000001" },
        { name: "pin1", value: "1234" },
        { name: "puk1", value: "12345678" },
        { name: "ki", value: "000102030405060708090a0b0c0d0e0f" },
      ],
    },
  });
  t.equal(sim.statusCode, 201, sim.body);
  t.match(sim.json(), { "@type": "SIMCard", name: "8949200000000099992" });
  t.notOk(JSON.stringify(sim.json()).includes("000102030405060708090a0b0c0d0e0f"), "the Ki is never returned");
  const post = (body: Record<string, unknown>) => engine.request("POST", RESOURCES, { body });
  expectError(t, await post({ "@type": "Resource", name: "x" }), 400, "invalid_field", "@type");
  expectError(
    t,
    await post({ "@type": "Resource", resourceSpecification: { id: "eSIMProfile" }, name: "x" }),
    400,
    "invalid_field",
    "resourceSpecification",
  );
  const badCategory = await post({
    "@type": "Resource",
    resourceSpecification: { id: "MSISDN" },
    name: "+4915199990002",
    resourceCharacteristic: [{ name: "category", value: "gold" }],
  });
  expectError(t, badCategory, 400, "invalid_field", "resourceCharacteristic.category");
});
