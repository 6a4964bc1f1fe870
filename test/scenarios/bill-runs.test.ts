import t from "tap";
import { billingAccountBody, createCustomer, orderReadyAccount } from "../support/fixtures.js";
import { clockEngine } from "../support/scenario.js";

/**
 * Three months of bill cycles on the test clock, through the API only (issue 25): accounts on cycle days 1, 15 and
 * 31, lines activated, an add-on, a line ended and its final bill; the daily jobs start and work the runs as the
 * clock crosses each day. Every postpaid account is billed once per period: a query checks that every line was
 * charged exactly once for each period it was live, and nothing after it ended.
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const BA = "/tmf-api/accountManagement/v4/billingAccount";

t.test("three months of cycles on days 1, 15 and 31", async (t) => {
  const { engine, api, moveTo, waitForOrder } = await clockEngine(t, { start: "2027-01-10T08:59:00Z" });

  // Sunday 10 January 2027: three German accounts order a line each.
  await moveTo("2027-01-10T09:00:00Z");
  await orderReadyAccount(engine, { sims: 5, numbers: ["+4915100000000", "+4915100000099"] });
  const accounts: Record<string, string> = {};
  const lines: Record<string, string> = {};
  for (const day of [1, 15, 31]) {
    const customer = await createCustomer(engine);
    accounts[day] = (await api("POST", BA, billingAccountBody(customer.id, { billCycleDay: day }))).id;
    const order = await api("POST", ORDERS, {
      billingAccount: { id: accounts[day] },
      productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
    });
    lines[day] = (await waitForOrder(order.id)).productOrderItem[0].product.id;
  }

  // 20 January: an add-on on the day-1 account's line. 5 February: the day-15 account's line ends.
  await moveTo("2027-01-20T09:00:00Z");
  const addon = await api("POST", ORDERS, {
    billingAccount: { id: accounts[1] },
    productOrderItem: [
      {
        id: "1",
        action: "add",
        productOffering: { id: "addon-data-5gb" },
        product: { productRelationship: [{ relationshipType: "reliesOn", product: { id: lines[1] } }] },
      },
    ],
  });
  const addonId = (await waitForOrder(addon.id)).productOrderItem[0].product.id as string;
  await moveTo("2027-02-05T09:00:00Z");
  const end = await api("POST", ORDERS, {
    billingAccount: { id: accounts[15] },
    productOrderItem: [{ id: "1", action: "delete", product: { id: lines[15] } }],
  });
  await waitForOrder(end.id);

  // On to 20 April, in one move: every day's jobs run in order (runs, final bills).
  await moveTo("2027-04-20T09:00:00Z");

  const bills = await engine.sql<{ billing_account_id: string; kind: string; usage_period: string; number: string }>(
    "select billing_account_id, kind, usage_period, number from invoices order by number",
  );
  const periodsOf = (day: number) =>
    bills
      .filter((bill) => bill.billing_account_id === accounts[day])
      .map((bill) => [bill.kind, bill.usage_period])
      .sort();
  t.same(
    periodsOf(1),
    [
      ["cycle", "2027-01-01"],
      ["cycle", "2027-02-01"],
      ["cycle", "2027-03-01"],
    ],
    "day 1: January, February and March, each on the 1st after",
  );
  t.same(
    periodsOf(15),
    [
      ["cycle", "2026-12-15"],
      ["final", "2027-01-15"],
    ],
    "day 15: the period of the activation, then the final bill of the period its line ended in; nothing after",
  );
  t.same(
    periodsOf(31),
    [
      ["cycle", "2026-12-31"],
      ["cycle", "2027-01-31"],
      ["cycle", "2027-02-28"],
    ],
    "day 31: periods from the last day of months without a 31st too",
  );
  t.same(
    bills.map((bill) => bill.number),
    bills.map((_bill, index) => `DE-INV-2027-${String(index + 1).padStart(6, "0")}`),
    "numbers gapless",
  );

  // Every recurring price charged once per period: no period twice, none missing while live, none after the end.
  const charged = await engine.sql<{ product_id: string; period_start: Date; days: number; count: string }>(
    `select l.product_id, l.period_start, sum(l.days)::int as days, count(*)::text as count
     from invoice_lines l join invoices i on i.id = l.invoice_id
     where l.kind = 'recurring' group by l.product_id, l.period_start order by l.product_id, l.period_start`,
  );
  t.same(
    charged.filter((row) => row.count !== "1"),
    [],
    "no price charged twice for a period",
  );
  const periodsCharged = (productId: string) =>
    charged.filter((row) => row.product_id === productId).map((row) => new Date(row.period_start).toISOString());
  // The day-1 line: January (from the 10th), February, March in advance, and April in advance on 1 April.
  t.same(periodsCharged(lines[1] as string), [
    "2026-12-31T23:00:00.000Z",
    "2027-01-31T23:00:00.000Z",
    "2027-02-28T23:00:00.000Z",
    "2027-03-31T22:00:00.000Z",
  ]);
  // The add-on bills in advance too: 20–31 January (on 1 February), then February, March and April in advance.
  t.same(periodsCharged(addonId), [
    "2026-12-31T23:00:00.000Z",
    "2027-01-31T23:00:00.000Z",
    "2027-02-28T23:00:00.000Z",
    "2027-03-31T22:00:00.000Z",
  ]);
  // The day-15 line: its first period (from the 10th) and the next in advance; the final bill credits the rest.
  t.same(periodsCharged(lines[15] as string), ["2026-12-14T23:00:00.000Z", "2027-01-14T23:00:00.000Z"]);
  const credited = await engine.sql<{ kind: string; days: number }>(
    `select l.kind, l.days from invoice_lines l join invoices i on i.id = l.invoice_id where i.kind = 'final'`,
  );
  t.same(credited, [{ kind: "unused", days: 10 }], "5–14 February come back on the final bill");
  t.equal(
    await engine.count("invoice_lines", "product_id = $1 and period_start >= '2027-02-14T23:00:00Z'", [lines[15]]),
    0,
    "nothing charged after the line ended",
  );

  // The runs the jobs started all completed; TMF666 shows each account's balance as its invoices' sum.
  const runs = (await api("GET", "/api/v1/bill-runs?limit=100")) as Array<{ state: string }>;
  t.ok(runs.length >= 9, `${runs.length} runs`);
  t.ok(
    runs.every((run) => run.state === "completed"),
    "every run completed",
  );
  for (const day of [1, 15, 31]) {
    const [sum] = await engine.sql<{ total: string }>(
      "select coalesce(sum(gross), 0)::text as total from invoices where billing_account_id = $1",
      [accounts[day]],
    );
    const account = await api("GET", `${BA}/${accounts[day]}`);
    t.equal(account.accountBalance[0].amount.value, Number(sum?.total), `day ${day}: balance = invoices`);
  }
});
