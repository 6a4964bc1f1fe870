import t from "tap";
import { waitFor } from "../support/faults.js";
import { orderReadyAccount } from "../support/fixtures.js";
import { RecordingChannel } from "../support/recording-channel.js";
import { clockEngine } from "../support/scenario.js";

/**
 * A bill cycle on the test clock, through the API only (issue 24), as an operator would run it in acceptance tests:
 * the engine as `npm start` runs it (embedded, its own rating loop, the test clock moved by the admin route), a line
 * ordered on the 17th, usage over the allowance, an add-on on the 20th, the invoice on the 1st checked line by line,
 * late CDRs of that period rated on the 3rd and found on the next invoice labelled late, a credit note for one line,
 * numbers gapless across kinds, and the ledger's balance equal to invoices less credit notes.
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";
const RATES = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate";
const USAGE = "/tmf-api/usageManagement/v4/usage";

type Rate = {
  id: string;
  type: string;
  name: string;
  late: boolean;
  taxIncludedAmount: { value: number };
  product?: { id: string };
  characteristic: Array<{ name: string; value: unknown }>;
};

/** Cents of a JSON amount, exactly (amounts have at most two decimals here). */
const cents = (value: number) => Math.round(value * 100);

t.test("a month of a postpaid line, billed on the test clock through the API", async (t) => {
  const channel = new RecordingChannel();
  const { engine, api, moveTo, waitForOrder } = await clockEngine(t, {
    messageChannel: channel,
    start: "2027-01-17T08:59:00Z",
  });
  const issue = (accountId: string) =>
    engine.request("POST", `/api/v1/billing/accounts/${accountId}/invoices`, { key: engine.keys.finance });
  const linesOf = async (billId: string): Promise<Rate[]> => api("GET", `${RATES}?bill.id=${billId}`);

  // Sunday 17 January 2027, 10:00 in Berlin: a German account orders Postpaid M.
  await moveTo("2027-01-17T09:00:00Z");
  const { accountId } = await orderReadyAccount(engine);
  await api("POST", "/api/v1/cdr-sources", { id: "msc-1", countryCode: "49" });
  const order = await api("POST", ORDERS, {
    billingAccount: { id: accountId },
    productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
  });
  const completed = await waitForOrder(order.id);
  const lineId = completed.productOrderItem[0].product.id as string;
  const msisdn = (
    completed.productOrderItem[0].product.productCharacteristic as Array<{ name: string; value: string }>
  ).find((entry) => entry.name === "msisdn")?.value as string;

  // Monday 18 January: 510 minutes of national calls (10 over the 500 included) and a call to France.
  await moveTo("2027-01-18T12:00:00Z");
  const cdr = (id: string, called: string, seconds: number, at: string) => ({
    recordType: "voice",
    cdrId: id,
    source: "msc-1",
    servedMSISDN: msisdn,
    calledNumber: called,
    recordOpeningTime: at,
    duration: seconds,
  });
  const accepted = await api(
    "POST",
    "/api/v1/cdrs",
    [
      cdr("c-1", "+4930123456", 30_000, "2027-01-18T06:00:00Z"),
      cdr("c-2", "+4930123456", 600, "2027-01-18T11:00:00Z"),
      cdr("c-3", "+33123456789", 120, "2027-01-18T11:30:00Z"),
    ],
    engine.keys.network,
  );
  t.equal(accepted.accepted, 3);

  // Wednesday 20 January: an add-on on the line.
  await moveTo("2027-01-20T09:00:00Z");
  const addon = await api("POST", ORDERS, {
    billingAccount: { id: accountId },
    productOrderItem: [
      {
        id: "1",
        action: "add",
        productOffering: { id: "addon-international-100" },
        product: { productRelationship: [{ relationshipType: "reliesOn", product: { id: lineId } }] },
      },
    ],
  });
  const addonOrder = await waitForOrder(addon.id);
  const addonId = addonOrder.productOrderItem[0].product.id as string;

  // The 1st of February: January's invoice.
  await moveTo("2027-02-01T08:00:00Z");
  // Crossing midnight, the daily bill-runs job billed the account (cycle day 1): its calls are billed.
  const rated = (await api("GET", USAGE)) as Array<{
    id: string;
    status: string;
    ratedProductUsage: Array<{ taxExcludedRatingAmount: { value: number }; isBilled: boolean }>;
  }>;
  t.same(
    rated.map((usage) => usage.status),
    ["billed", "billed", "billed"],
    "every call rated and billed (TMF635)",
  );
  const usageCents = rated.reduce(
    (sum, usage) => sum + usage.ratedProductUsage.reduce((s, r) => s + cents(r.taxExcludedRatingAmount.value), 0),
    0,
  );
  t.ok(usageCents > 0, "the calls over the allowance and abroad cost money");

  // Asked for it, finance gets the invoice the run issued.
  const first = await issue(accountId);
  t.equal(first.statusCode, 200, first.body);
  const january = first.json();
  t.match(january, { billNo: "DE-INV-2027-000001", billDate: "2027-01-31T23:00:00.000Z", usagePeriod: "2027-01-01" });
  const lines = await linesOf(january.id);
  const recurring = lines.filter((line) => line.type === "recurring");
  // Postpaid M 19.99 with VAT: 17–31 January is 15 of 31 days (9.67), February in advance (19.99).
  // International 100 at 7.99, billed in arrears: 20–31 January, 12 of 31 days (3.09).
  t.same(
    recurring.map((line) => [line.product?.id, cents(line.taxIncludedAmount.value)]).sort(),
    [
      [addonId, 309],
      [lineId, 1999],
      [lineId, 967],
    ].sort(),
    "the plan prorated from its first day and in advance, the add-on from its first day",
  );
  const fees = lines.filter((line) => line.type === "oneTime");
  t.same(fees.map((line) => [line.name, cents(line.taxIncludedAmount.value)]).sort(), [
    ["Activation", 999],
    ["SIM card", 499],
  ]);
  const usageLines = lines.filter((line) => line.type === "usage");
  t.equal(
    usageLines.reduce((sum, line) => sum + cents(line.taxIncludedAmount.value), 0),
    usageCents,
    "the usage lines add up to the rated calls",
  );
  t.ok(
    usageLines.every((line) => !line.late),
    "January's usage on January's invoice",
  );
  const total = lines.reduce((sum, line) => sum + cents(line.taxIncludedAmount.value), 0);
  t.equal(cents(january.taxIncludedAmount.value), total, "the lines add up to the invoice");
  t.ok(
    rated.every((usage) => usage.ratedProductUsage.every((r) => r.isBilled)),
    "TMF635: the calls are billed",
  );
  // The run tells the subscriber after its commit, without holding itself up.
  await waitFor("the bill message", async () =>
    channel.sent.some((message) => message.body.includes("DE-INV-2027-000001")),
  );
  t.equal((await api("GET", `/tmf-api/customerBillManagement/v4/customerBill/${january.id}`)).state, "sent");

  // Wednesday 3 February: a national call of Thursday 28 January reaches the engine late; January's minutes
  // were used up, so it costs money, and it is rated onto January.
  await moveTo("2027-02-03T10:00:00Z");
  await api("POST", "/api/v1/cdrs", [cdr("c-4", "+4930123456", 300, "2027-01-28T11:00:00Z")], engine.keys.network);

  // A credit note for the SIM card line of January's invoice.
  const sim = fees.find((line) => line.name === "SIM card") as Rate;
  const credit = await engine.request("POST", `/api/v1/billing/invoices/${january.id}/credit-notes`, {
    key: engine.keys.finance,
    body: { reason: "the SIM card was replaced free of charge", lines: [{ id: sim.id }] },
  });
  t.equal(credit.statusCode, 201, credit.body);
  t.match(credit.json(), { billNo: "DE-CN-2027-000001", amountDue: { value: -4.99 } });

  // The 1st of March: February's invoice carries the late call, labelled late, and the account summary.
  await moveTo("2027-03-01T08:00:00Z");
  const second = await issue(accountId);
  t.equal(second.statusCode, 200, second.body);
  const february = second.json();
  t.equal(february.billNo, "DE-INV-2027-000002", "gapless");
  const late = (await linesOf(february.id)).filter((line) => line.type === "usage");
  t.equal(late.length, 1);
  t.ok(late[0]?.late && /late/.test(late[0].name), "the late call, labelled late");
  t.equal(cents(february.previousBalance.value), cents(january.totalDue.value));
  t.equal(cents(february.creditsSince.value), 499, "the credit note since the last invoice");

  // Numbers gapless per series; the ledger's balance is the invoices less the credit note, and TMF666 shows it.
  const bills = (await api("GET", `${BILLS}?billingAccount.id=${accountId}`)) as Array<{
    billNo: string;
    category: string;
    taxIncludedAmount: { value: number };
  }>;
  t.same(bills.map((bill) => bill.billNo).sort(), ["DE-CN-2027-000001", "DE-INV-2027-000001", "DE-INV-2027-000002"]);
  const owed = bills.reduce((sum, bill) => sum + cents(bill.taxIncludedAmount.value), 0);
  const account = await api("GET", `/tmf-api/accountManagement/v4/billingAccount/${accountId}`);
  t.equal(cents(account.accountBalance[0].amount.value), owed, "balance = invoices − credit notes");
  t.equal(cents(february.totalDue.value), owed, "the bill's total due is the ledger's balance");
});
