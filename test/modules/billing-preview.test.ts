import t from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { drivers, expectError, startEngine } from "../support/engine.js";
import { activateLine, billingAccountBody, createCustomer, orderReadyAccount } from "../support/fixtures.js";

/**
 * The preview (issue 23): POST /api/v1/billing/preview answers the bill an account would get, computed by
 * composeInvoice from what the engine holds, and writes nothing.
 */

const PREVIEW = "/api/v1/billing/preview";
const BA = "/tmf-api/accountManagement/v4/billingAccount";

type Line = { type: string; name: string; taxExcludedAmount: { value: string }; amount: { value: string } };

t.test("a line ordered on the 17th, previewed on the 1st", async (t) => {
  // 17 March 2027, 10:00 in Berlin: the account bills on the 1st, in Europe/Berlin, in Germany.
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock });
  const { accountId } = await orderReadyAccount(engine);
  const { lineId } = await activateLine(engine, accountId, "plan-postpaid-m");
  const auditRows = await engine.count("audit_log");

  clock.set("2027-04-01T08:00:00Z");
  const last = await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId, period: "last" } });
  t.equal(last.statusCode, 200, last.body);
  const bill = last.json();
  t.notOk("id" in bill || "billNo" in bill, "nothing issued: no id, no number");
  t.match(bill, {
    "@type": "CustomerBill",
    category: "normal",
    runType: "onCycle",
    billDate: "2027-03-31T22:00:00.000Z",
    paymentDueDate: "2027-04-14T22:00:00.000Z",
    usagePeriod: "2027-03-01",
    billingPeriod: { startDateTime: "2027-02-28T23:00:00.000Z", endDateTime: "2027-03-31T22:00:00.000Z" },
    billingAccount: { id: accountId, "@referredType": "BillingAccount" },
    relatedParty: [{ id: "telco-de", role: "issuer" }],
    reverseCharge: false,
  });
  const lines = bill.appliedCustomerBillingRate as Line[];
  // Postpaid M is 19.99 a month with VAT, charged in advance. March: 17th to 31st, 15 of 31 days:
  // 19.99 × 15 / 31 = 9.6726 → 9.67. April in advance: 19.99. The activation fee 9.99 and the SIM 4.99.
  t.same(
    lines.map((line) => [line.type, line.name, line.amount.value]),
    [
      ["recurring", "Postpaid M, monthly: 15 of 31 days", "9.67"],
      ["recurring", "Postpaid M, monthly", "19.99"],
      ["oneTime", "Activation", "9.99"],
      ["oneTime", "SIM card", "4.99"],
    ],
  );
  t.match(lines[0], { product: { id: lineId }, periodCoverage: { startDateTime: "2027-02-28T23:00:00.000Z" } });
  // All prices include 19 % VAT: gross 44.64, tax round(44.64 × 0.19 / 1.19) = round(7.1274) = 7.13, net 37.51.
  t.same(bill.taxIncludedAmount, { unit: "EUR", value: "44.64" });
  t.same(bill.taxExcludedAmount, { unit: "EUR", value: "37.51" });
  t.same(bill.taxItem, [{ taxCategory: "S", taxRate: 0.19, taxAmount: { unit: "EUR", value: "7.13" } }]);
  t.same(bill.amountDue, { unit: "EUR", value: "44.64" }, "nothing owed before, nothing paid: the bill is due");
  const nets = lines.reduce((sum, line) => sum + Math.round(Number(line.taxExcludedAmount.value) * 100), 0);
  t.equal(nets, 3751, "the lines' nets add up to the bill's");

  // "current": the bill at the end of April: April was charged in advance already, May is next.
  const current = await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId } });
  t.equal(current.statusCode, 200, current.body);
  t.same(
    (current.json().appliedCustomerBillingRate as Line[]).map((line) => [line.type, line.amount.value]),
    [
      ["recurring", "19.99"],
      ["oneTime", "9.99"],
      ["oneTime", "4.99"],
    ],
    "May in advance; the one-time charges wait for an invoice",
  );
  t.equal(current.json().usagePeriod, "2027-04-01");

  t.equal(await engine.count("audit_log"), auditRows, "a preview writes nothing");

  // A subscriber sees its own account's bill, and no other's.
  const own = await engine.subscriberKey(accountId);
  const mine = await engine.request("POST", PREVIEW, { key: own, body: { billingAccountId: accountId } });
  t.equal(mine.statusCode, 200, mine.body);
  const other = await orderReadyAccount(engine, { numbers: ["+4915100000100", "+4915100000109"] });
  expectError(
    t,
    await engine.request("POST", PREVIEW, { key: own, body: { billingAccountId: other.accountId } }),
    404,
    "not_found",
  );
});

t.test("what cannot be previewed gets a clear answer", async (t) => {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock });
  const { accountId } = await orderReadyAccount(engine);

  expectError(
    t,
    await engine.request("POST", PREVIEW, { body: { billingAccountId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" } }),
    404,
    "not_found",
  );
  expectError(t, await engine.request("POST", PREVIEW, { body: { billingAccountId: "nope" } }), 404, "not_found");
  expectError(
    t,
    await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId, period: "next" } }),
    400,
    "invalid_field",
    "period",
  );
  expectError(
    t,
    await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId, extra: 1 } }),
    400,
    "invalid_field",
  );
  expectError(
    t,
    await engine.request("POST", PREVIEW, { rawBody: "{", headers: { "content-type": "application/json" } }),
    400,
    "malformed_json",
  );
  expectError(
    t,
    await engine.request("POST", PREVIEW, { key: engine.keys.network, body: { billingAccountId: accountId } }),
    403,
    "role_not_allowed",
  );

  // A prepaid account: its lines and usage are paid from the balance; the bill is empty and says so.
  const prepaid = await orderReadyAccount(engine, {
    numbers: ["+4915100000100", "+4915100000109"],
    accountType: "prepaid",
  });
  await activateLine(engine, prepaid.accountId, "plan-prepaid-s");
  const empty = await engine.request("POST", PREVIEW, { body: { billingAccountId: prepaid.accountId } });
  t.equal(empty.statusCode, 200, empty.body);
  t.same(empty.json().appliedCustomerBillingRate, []);
  t.same(empty.json().amountDue, { unit: "EUR", value: "0.00" });
  t.match(empty.json().note, [/prepaid/]);

  // No issuing entity bills California: a clear 422, not a 500.
  const customer = await createCustomer(engine);
  const californian = await engine.request("POST", BA, {
    body: billingAccountBody(customer.id, { taxJurisdiction: "US-CA", currency: "EUR" }),
  });
  t.equal(californian.statusCode, 201, californian.body);
  expectError(
    t,
    await engine.request("POST", PREVIEW, { body: { billingAccountId: californian.json().id } }),
    422,
    "no_issuing_entity",
  );
});

t.test("a business in another EU country is reverse-charged", async (t) => {
  const clock = new ManualClock("2027-03-01T09:00:00Z");
  const engine = await startEngine(t, { clock });
  await orderReadyAccount(engine);
  const organization = await engine.request("POST", "/tmf-api/party/v4/organization", {
    body: { tradingName: "Alpenfunk GmbH" },
  });
  const account = await engine.request("POST", BA, {
    body: {
      name: "Alpenfunk",
      relatedParty: [{ id: organization.json().id, "@referredType": "Organization" }],
      billCycleDay: 1,
      timeZone: "Europe/Vienna",
      taxJurisdiction: "AT",
      vatId: "ATU12345678",
    },
  });
  t.equal(account.statusCode, 201, account.body);
  await activateLine(engine, account.json().id, "plan-business-pro");
  clock.set("2027-04-01T08:00:00Z");
  const preview = await engine.request("POST", PREVIEW, {
    body: { billingAccountId: account.json().id, period: "last" },
  });
  t.equal(preview.statusCode, 200, preview.body);
  const bill = preview.json();
  t.equal(bill.reverseCharge, true, "Telco Deutschland bills an Austrian business with a VAT ID");
  // Business Pro is 49.00 without VAT, in advance; activated on 1 March at 10:00, after the period began: March whole
  // (31 of 31 days) and April in advance, plus the one-time charges, all at 0 % under category AE.
  t.same(
    bill.taxBreakdown.map((row: { taxCategory: string; taxRate: string; exemptionReason?: string }) => [
      row.taxCategory,
      row.taxRate,
      row.exemptionReason,
    ]),
    [["AE", "0", "Reverse charge"]],
  );
  t.same(bill.taxItem[0].taxAmount, { unit: "EUR", value: "0.00" });
  const recurring = (bill.appliedCustomerBillingRate as Line[]).filter((line) => line.type === "recurring");
  t.same(
    recurring.map((line) => line.taxExcludedAmount.value),
    ["49.00", "49.00"],
  );
});

t.test("orders give a line a promotion; the bill takes it off for its cycles", async (t) => {
  // 17 October 2026, 10:00 in Berlin; promo-m-20-off-3 is on offer until the end of 2026.
  const clock = new ManualClock("2026-10-17T08:00:00Z");
  const engine = await startEngine(t, { clock });
  const { accountId } = await orderReadyAccount(engine);
  const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
  const promoted = (offering: string, promotion: string) => ({
    billingAccount: { id: accountId },
    productOrderItem: [
      {
        id: "1",
        action: "add",
        productOffering: { id: offering },
        itemPrice: [{ priceAlteration: [{ productOfferingPrice: { id: promotion } }] }],
      },
    ],
  });
  const rejected = async (body: object, code: string) => {
    const placed = await engine.request("POST", ORDERS, { body });
    t.equal(placed.statusCode, 201, placed.body);
    t.match(placed.json(), { state: "rejected", rejectionReason: [{ code }] }, code);
  };
  await rejected(promoted("plan-postpaid-m", "promo-nope"), "unknown_promotion");
  await rejected(promoted("plan-postpaid-m", "promo-business-pro-10-off-6.eur"), "promotion_not_applicable");
  t.equal(await engine.count("products"), 0, "a rejected order makes no product");

  const placed = await engine.request("POST", ORDERS, { body: promoted("plan-postpaid-m", "promo-m-20-off-3") });
  t.equal(placed.json().state, "acknowledged", placed.body);
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const lineId = (await engine.request("GET", placed.json().href)).json().productOrderItem[0].product.id;
  const line = (await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`)).json();
  t.match(line.productPrice[0].productPriceAlteration, [
    {
      priceType: "discount",
      applicationDuration: 3,
      price: { percentage: 20 },
      productOfferingPrice: { id: "promo-m-20-off-3" },
    },
  ]);

  clock.set("2026-11-01T09:00:00Z");
  const november = (
    await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId, period: "last" } })
  ).json();
  // October 17–31, 15 of 31 days: 19.99 × 15 / 31 = 9.67, 20 % off: 1.93 → 7.74 (cycle 1).
  // November in advance: 19.99, 20 % off: 4.00 → 15.99 (cycle 2). Fees 9.99 and 4.99.
  t.same(
    november.appliedCustomerBillingRate
      .filter((rate: { type: string }) => rate.type === "recurring")
      .map((rate: { amount: { value: string }; discount: { value: string }; promotion: Array<{ id: string }> }) => [
        rate.amount.value,
        rate.discount.value,
        rate.promotion.map((promotion) => promotion.id),
      ]),
    [
      ["9.67", "1.93", ["promo-m-20-off-3"]],
      ["19.99", "4.00", ["promo-m-20-off-3"]],
    ],
  );
  // Gross 7.74 + 15.99 + 9.99 + 4.99 = 38.71; tax round(38.71 × 0.19 / 1.19) = round(6.1806) = 6.18.
  t.same(november.taxIncludedAmount.value, "38.71");
  t.same(november.taxItem[0].taxAmount.value, "6.18");

  // 1 January 2027: December was the third cycle; January in advance is the fourth, at the full price.
  clock.set("2027-01-01T09:00:00Z");
  const january = (
    await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId, period: "last" } })
  ).json();
  t.same(
    january.appliedCustomerBillingRate
      .filter((rate: { type: string }) => rate.type === "recurring")
      .map((rate: { amount: { value: string }; discount: { value: string } }) => [
        rate.amount.value,
        rate.discount.value,
      ]),
    [["19.99", "0.00"]],
  );
  // The promotion ended with 2026: an order now is rejected with the reason.
  await rejected(promoted("plan-postpaid-m", "promo-m-20-off-3"), "promotion_not_valid_now");
});

t.test("usage of a line that ended in an earlier period is billed late, not refused", async (t) => {
  const { chargingEngine, postCdrs, voiceCdr } = await import("../support/charging.js");
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  // 15 March 2026: a postpaid line, a call abroad (outside the allowance), then the line is disconnected.
  const { engine, accountId } = await chargingEngine(t, drivers[0] ?? "pglite");
  const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120, "2026-03-15T10:05:00Z")]);
  t.equal(await engine.app.services.charging.rating.rateOnce("test"), 1);
  engine.clock.set("2026-03-15T12:00:00Z");
  const disconnect = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    body: {
      billingAccount: { id: accountId },
      productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
    },
  });
  t.equal(disconnect.statusCode, 201, disconnect.body);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, disconnect.json().id);
  t.equal((await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`)).json().status, "terminated");

  // 2 April: a late CDR of 15 March, 11:00 (the line was live until 12:00), is rated onto the line as it was then.
  engine.clock.set("2026-04-02T10:00:00Z");
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 60, "2026-03-15T11:00:00Z")]);
  t.equal(await engine.app.services.charging.rating.rateOnce("test"), 1);
  const preview = await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId } });
  t.equal(preview.statusCode, 200, preview.body);
  const usage = (
    preview.json().appliedCustomerBillingRate as Array<Line & { late: boolean; product: { id: string } }>
  ).filter((line) => line.type === "usage");
  t.ok(usage.length > 0, "the March calls are on April's bill");
  t.ok(
    usage.every((line) => line.late && line.product.id === lineId && line.name.includes("late")),
    "labelled late, on the ended line",
  );
});
