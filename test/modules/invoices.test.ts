import t from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { drivers, type Engine, expectError, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";
import { RecordingChannel } from "../support/recording-channel.js";

/**
 * Issuing invoices (issue 24): numbered without gaps, never changed, an entry in the receivables ledger, read as
 * TMF678 bills and lines; credit notes; the bill a subscriber is told about.
 */

const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";
const RATES = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate";
const ON_DEMAND = "/tmf-api/customerBillManagement/v4/customerBillOnDemand";
const BA = "/tmf-api/accountManagement/v4/billingAccount";
const issuePath = (accountId: string) => `/api/v1/billing/accounts/${accountId}/invoices`;

type Bill = {
  id: string;
  billNo: string;
  state: string;
  category: string;
  amountDue: { unit: string; value: number };
  remainingAmount: { value: number };
  taxIncludedAmount: { value: number };
  taxExcludedAmount: { value: number };
  taxItem: Array<{ taxCategory: string; taxRate: number; taxAmount: { value: number } }>;
  previousBalance: { value: number };
  totalDue: { value: number };
  paymentReference: string;
};
type Rate = { id: string; type: string; name: string; late: boolean; taxIncludedAmount: { value: number } };

/** A German postpaid account with a Postpaid M line ordered on 17 March 2027, in Berlin. */
async function accountWithLine(t: Tap, driver: Engine["driver"]) {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const channel = new RecordingChannel();
  const engine = await startEngine(t, { clock, driver, messageChannel: channel });
  const { accountId, customerId } = await orderReadyAccount(engine);
  const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
  return { engine, clock, channel, accountId, customerId, lineId, msisdn };
}
type Tap = Parameters<typeof startEngine>[0];

async function linesOf(engine: Engine, billId: string): Promise<Rate[]> {
  const answer = await engine.request("GET", RATES, { query: { "bill.id": billId } });
  if (answer.statusCode !== 200) throw new Error(answer.body);
  return answer.json();
}

for (const driver of drivers) {
  t.test(`${driver}: the cycle invoice is issued once, numbered, immutable and in the ledger`, async (t) => {
    const { engine, clock, channel, accountId } = await accountWithLine(t, driver);
    clock.set("2027-04-01T08:00:00Z");

    // Asked twice at once: one invoice; the other call answers it.
    const [first, second] = await Promise.all([
      engine.request("POST", issuePath(accountId), { key: engine.keys.finance }),
      engine.request("POST", issuePath(accountId), { key: engine.keys.finance }),
    ]);
    t.same([first.statusCode, second.statusCode].sort(), [200, 201], `${first.body} ${second.body}`);
    const bill = first.json() as Bill;
    t.equal(second.json().id, bill.id, "the same invoice");
    t.equal(await engine.count("invoices"), 1);
    t.match(bill, {
      billNo: "DE-INV-2027-000001",
      category: "normal",
      runType: "onCycle",
      // TMF678 date-times: the start of 1 and 15 April in Berlin.
      billDate: "2027-03-31T22:00:00.000Z",
      paymentDueDate: "2027-04-14T22:00:00.000Z",
      usagePeriod: "2027-03-01",
      billingAccount: { id: accountId },
      relatedParty: [{ id: "telco-de", name: "Telco Deutschland GmbH", role: "issuer" }],
    });
    t.match(bill.paymentReference, /^RF\d{2}DEINV2027000001$/, "an ISO 11649 reference from the number");
    // The preview's bill, now issued: 9.67 (15 of 31 days) + 19.99 (April) + 9.99 + 4.99 = 44.64, VAT 7.13.
    t.same(bill.amountDue, { unit: "EUR", value: 44.64 });
    t.same(bill.taxItem, [{ taxCategory: "S", taxRate: 0.19, taxAmount: { unit: "EUR", value: 7.13 } }]);
    t.equal(bill.taxExcludedAmount.value, 37.51);
    t.equal(bill.remainingAmount.value, 44.64);
    t.equal(bill.totalDue.value, 44.64, "nothing owed before");
    const lines = await linesOf(engine, bill.id);
    t.same(
      lines.map((line) => [line.type, line.taxIncludedAmount.value]),
      [
        ["recurring", 9.67],
        ["recurring", 19.99],
        ["oneTime", 9.99],
        ["oneTime", 4.99],
      ],
    );

    // The subscriber is told (its mobile number: the customer has no e-mail), and the bill is then "sent".
    const told = channel.sent.filter((message) => /is ready/.test(message.body));
    t.equal(told.length, 1);
    t.match(told[0]?.body, /DE-INV-2027-000001 of 44\.64 EUR is ready\. Please pay by 2027-04-15 quoting RF/);
    t.equal((await engine.request("GET", `${BILLS}/${bill.id}`)).json().state, "sent");

    // Asked again: the same invoice, 200; the one-time charges are billed and the preview no longer shows them.
    const again = await engine.request("POST", issuePath(accountId), { key: engine.keys.finance });
    t.equal(again.statusCode, 200);
    t.equal(again.json().id, bill.id);
    t.equal(await engine.count("one_time_charges", "billed_at is null"), 0);

    // The ledger: one entry, the account's balance is TMF666 accountBalance, and an account owing money stays open.
    t.same(await engine.sql("select kind, amount::text as amount from receivable_entries"), [
      { kind: "invoice", amount: "44.640000" },
    ]);
    const account = (await engine.request("GET", `${BA}/${accountId}`)).json();
    t.match(account.accountBalance, [{ balanceType: "receivable", amount: { unit: "EUR", value: 44.64 } }]);

    // Nothing about an issued invoice changes by SQL: its amounts, its lines, its entry; nor is a line added.
    for (const statement of [
      `update invoices set gross = 1, net = 1, tax = 0 where id = '${bill.id}'`,
      `update invoices set number = 'X' where id = '${bill.id}'`,
      `delete from invoices where id = '${bill.id}'`,
      `update invoice_lines set net = 0 where invoice_id = '${bill.id}'`,
      `delete from invoice_lines where invoice_id = '${bill.id}'`,
      `update receivable_entries set amount = 0`,
      `insert into invoice_lines (id, invoice_id, line_count, position, key, kind, name, amount, discount, charge, net,
         line_tax, tax_included, tax_class, tax_category, tax_rate, late, promotions)
       values (gen_random_uuid(), '${bill.id}', 4, 4, 'x', 'oneTime', 'x', 1, 0, 1, 1, 0, false, 'vat-standard', 'S',
         0.19, false, '[]')`,
    ]) {
      await t.rejects(engine.sql(statement), statement.slice(0, 40));
    }
    t.same(
      (await engine.sql<{ gross: string }>("select gross::text as gross from invoices"))[0]?.gross,
      "44.640000",
      "unchanged",
    );
  });
}

t.test("holding a bill, reading as a subscriber, and closing an account that owes", async (t) => {
  const { engine, clock, accountId, lineId } = await accountWithLine(t, drivers[0] ?? "pglite");
  clock.set("2027-04-01T08:00:00Z");
  const bill = (await engine.request("POST", issuePath(accountId), { key: engine.keys.finance })).json() as Bill;

  // A dispute puts it on hold; it comes back to the state its delivery gives; nothing else is a client's to change.
  const hold = await engine.request("PATCH", `${BILLS}/${bill.id}`, { body: { state: "onHold" } });
  t.equal(hold.statusCode, 200, hold.body);
  t.equal(hold.json().state, "onHold");
  expectError(
    t,
    await engine.request("PATCH", `${BILLS}/${bill.id}`, { body: { state: "settled" } }),
    409,
    "illegal_transition",
  );
  const released = await engine.request("PATCH", `${BILLS}/${bill.id}`, { body: { state: "sent" } });
  t.equal(released.json().state, "sent", released.body);
  const amounts = await engine.request("PATCH", `${BILLS}/${bill.id}`, { body: { amountDue: { value: 1 } } });
  t.equal(amounts.statusCode, 400, amounts.body);
  t.equal((await engine.request("GET", `${BILLS}/${bill.id}`)).json().amountDue.value, 44.64, "unchanged");
  const events = await engine.sql<{ event_type: string }>(
    "select event_type from outbox_events where api = 'customerBillManagement' order by event_time, event_id",
  );
  t.same(
    events.map((event) => event.event_type),
    [
      "CustomerBillCreateEvent",
      "CustomerBillStateChangeEvent",
      "CustomerBillStateChangeEvent",
      "CustomerBillStateChangeEvent",
    ],
    "created, sent, on hold, released",
  );

  // The subscriber reads its own bill and lines; another account's are 404.
  const own = await engine.subscriberKey(accountId);
  t.equal((await engine.request("GET", `${BILLS}/${bill.id}`, { key: own })).statusCode, 200);
  t.equal((await engine.request("GET", BILLS, { key: own })).json().length, 1);
  const other = await orderReadyAccount(engine, { numbers: ["+4915100000100", "+4915100000109"] });
  const stranger = await engine.subscriberKey(other.accountId);
  expectError(t, await engine.request("GET", `${BILLS}/${bill.id}`, { key: stranger }), 404, "not_found");
  t.same((await engine.request("GET", BILLS, { key: stranger })).json(), []);
  const [line] = await linesOf(engine, bill.id);
  expectError(t, await engine.request("GET", `${RATES}/${line?.id}`, { key: stranger }), 404, "not_found");
  t.match((await engine.request("GET", `${RATES}/${line?.id}`, { key: own })).json(), {
    bill: { id: bill.id },
    product: { id: lineId },
    productPrice: { id: "price-postpaid-m-monthly" },
    appliedTax: [{ taxCategory: "S", taxRate: 0.19 }],
  });

  // Closing: its line is disconnected, yet it owes 44.64: refused, naming the amount.
  await engine.sql("update products set status = 'terminated', terminated_at = now()");
  const close = await engine.request("PATCH", `${BA}/${accountId}`, { body: { state: "closed" } });
  expectError(t, close, 409, "account_not_closable");
  t.match(close.json().message, /owes 44\.64 EUR/);
});

t.test("a credit note for one line: its own series, tax in proportion, never more than is left", async (t) => {
  const { engine, clock, accountId } = await accountWithLine(t, drivers[0] ?? "pglite");
  clock.set("2027-04-01T08:00:00Z");
  const bill = (await engine.request("POST", issuePath(accountId), { key: engine.keys.finance })).json() as Bill;
  const lines = await linesOf(engine, bill.id);
  const sim = lines.find((line) => line.name === "SIM card") as Rate;
  const creditPath = `/api/v1/billing/invoices/${bill.id}/credit-notes`;

  const note = await engine.request("POST", creditPath, {
    key: engine.keys.finance,
    body: { reason: "SIM never arrived", lines: [{ id: sim.id }] },
  });
  t.equal(note.statusCode, 201, note.body);
  const credit = note.json() as Bill & { creditedBill: { id: string } };
  t.match(credit, { billNo: "DE-CN-2027-000001", category: "creditNote", creditedBill: { id: bill.id } });
  // 4.99 with VAT: its net 4.19 (as allocated on the invoice), tax round(7.13 × 4.19 / 37.51) = 0.80.
  t.same(credit.amountDue, { unit: "EUR", value: -4.99 });
  t.same(credit.taxItem, [{ taxCategory: "S", taxRate: 0.19, taxAmount: { unit: "EUR", value: -0.8 } }]);
  const after = (await engine.request("GET", `${BILLS}/${bill.id}`)).json();
  t.equal(after.remainingAmount.value, 39.65, "applied to the invoice");
  t.equal(after.state, "partiallyPaid");
  t.match(after.appliedCredit, [
    { appliedAmount: { value: 4.99 }, kind: "creditNote", customerBill: { id: credit.id } },
  ]);

  // Again for the same line: nothing left; a line of another document: refused; nothing written either time.
  const documents = await engine.count("invoices");
  expectError(
    t,
    await engine.request("POST", creditPath, {
      key: engine.keys.finance,
      body: { reason: "again", lines: [{ id: sim.id }] },
    }),
    422,
    "credit_exceeds_line",
  );
  const [creditLine] = await linesOf(engine, credit.id);
  expectError(
    t,
    await engine.request("POST", creditPath, {
      key: engine.keys.finance,
      body: { reason: "wrong line", lines: [{ id: creditLine?.id }] },
    }),
    422,
    "line_not_on_invoice",
  );
  expectError(
    t,
    await engine.request("POST", creditPath, {
      key: engine.keys.finance,
      body: { reason: "too much", lines: [{ id: lines[0]?.id, amount: { unit: "EUR", value: "100.00" } }] },
    }),
    422,
    "credit_exceeds_line",
  );
  t.equal(await engine.count("invoices"), documents, "nothing issued");

  // The rest of the invoice: every line's remainder; the rate's tax is what is left of it, so the credits add up.
  const rest = await engine.request("POST", creditPath, { key: engine.keys.finance, body: { reason: "goodwill" } });
  t.equal(rest.statusCode, 201, rest.body);
  t.equal(rest.json().billNo, "DE-CN-2027-000002", "gapless");
  t.equal(rest.json().amountDue.value, -39.65);
  t.equal(rest.json().taxItem[0].taxAmount.value, -6.33, "7.13 − 0.80");
  t.equal((await engine.request("GET", `${BILLS}/${bill.id}`)).json().state, "settled");
  const balance = await engine.sql<{ balance: string }>("select sum(amount)::text as balance from receivable_entries");
  t.equal(Number(balance[0]?.balance), 0, "ledger: the invoice less its credit notes");
  // Nothing left at all now.
  expectError(
    t,
    await engine.request("POST", creditPath, { key: engine.keys.finance, body: { reason: "more" } }),
    422,
    "nothing_to_credit",
  );
});

t.test("bad requests write nothing", async (t) => {
  const { engine, clock, accountId } = await accountWithLine(t, drivers[0] ?? "pglite");
  clock.set("2027-04-01T08:00:00Z");
  const issue = (body: unknown, key = engine.keys.finance, id = accountId) =>
    engine.request("POST", issuePath(id), { key, body });
  expectError(t, await issue({ periodEnd: "2027-05-01" }), 422, "period_not_ended");
  expectError(t, await issue({ periodEnd: "2027-03-15" }), 422, "not_a_period_end");
  expectError(t, await issue({ periodEnd: "1 April" }), 400, "invalid_field");
  expectError(t, await issue({ period: "last" }), 400, "invalid_field");
  expectError(t, await issue({}, engine.keys.crm), 403, "role_not_allowed");
  expectError(t, await issue({}, engine.keys.finance, "00000000-0000-7000-8000-000000000000"), 404, "not_found");
  const prepaid = await orderReadyAccount(engine, {
    accountType: "prepaid",
    numbers: ["+4915100000200", "+4915100000209"],
  });
  expectError(t, await issue({}, engine.keys.finance, prepaid.accountId), 422, "prepaid_account");
  t.equal(await engine.count("invoices"), 0);
  t.equal(await engine.count("receivable_entries"), 0);

  // An account with nothing to bill in the period gets no invoice: 200 with the reason.
  const empty = await orderReadyAccount(engine, { numbers: ["+4915100000300", "+4915100000309"] });
  const nothing = await issue({}, engine.keys.finance, empty.accountId);
  t.equal(nothing.statusCode, 200, nothing.body);
  t.match(nothing.json(), { invoiced: false, usagePeriod: "2027-03-01", reason: /Nothing to bill/ });
  t.equal(await engine.count("invoices"), 0);
  t.equal(await engine.count("document_series"), 0, "no number taken");
});

t.test("an interim bill on demand; the cycle invoice then bills the rest", async (t) => {
  const { postCdrs, voiceCdr } = await import("../support/charging.js");
  const { engine, clock, accountId, msisdn } = await accountWithLine(t, drivers[0] ?? "pglite");
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  // A call abroad (France, outside the allowance) on 20 March.
  clock.set("2027-03-20T10:00:00Z");
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120, "2027-03-20T09:30:00Z")]);
  t.equal(await engine.app.services.charging.rating.rateOnce("test"), 1);

  const asked = await engine.request("POST", ON_DEMAND, {
    key: engine.keys.crm,
    headers: { "idempotency-key": "interim-1" },
    body: { billingAccount: { id: accountId }, name: "Moving out" },
  });
  t.equal(asked.statusCode, 201, asked.body);
  t.match(asked.json(), {
    state: "done",
    billingAccount: { id: accountId },
    customerBill: { name: "DE-INV-2027-000001" },
  });
  const replay = await engine.request("POST", ON_DEMAND, {
    key: engine.keys.crm,
    headers: { "idempotency-key": "interim-1" },
    body: { billingAccount: { id: accountId }, name: "Moving out" },
  });
  t.equal(replay.statusCode, 201);
  t.equal(replay.headers["idempotent-replayed"], "true");
  t.equal(replay.json().id, asked.json().id, "the same request");
  const interim = (await engine.request("GET", `${BILLS}/${asked.json().customerBill.id}`)).json();
  t.equal(interim.category, "interim");
  const interimLines = await linesOf(engine, interim.id);
  t.same(
    interimLines.map((line) => line.type).sort(),
    ["oneTime", "oneTime", "usage"],
    "usage and one-time charges to date; recurring charges wait for the cycle",
  );
  const usageLine = interimLines.find((line) => line.type === "usage") as Rate;
  const itemised = await engine.request("GET", `${RATES}/${usageLine.id}/usage`);
  t.equal(itemised.statusCode, 200, itemised.body);
  t.equal(itemised.json().items.length, 1, "the call behind the line");

  // A second call on 25 March, then the cycle invoice on 1 April: March's recurring charges and only the new call.
  clock.set("2027-03-25T10:00:00Z");
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 60, "2027-03-25T09:30:00Z")]);
  t.equal(await engine.app.services.charging.rating.rateOnce("test"), 1);
  clock.set("2027-04-01T08:00:00Z");
  const cycle = (await engine.request("POST", issuePath(accountId), { key: engine.keys.finance })).json() as Bill;
  t.equal(cycle.billNo, "DE-INV-2027-000002", "one series for every kind of invoice");
  const cycleLines = await linesOf(engine, cycle.id);
  t.same(
    cycleLines.map((line) => [line.type, line.late]),
    [
      ["recurring", false],
      ["recurring", false],
      ["usage", false],
    ],
  );
  const usage = await engine.request("GET", `${RATES}/${cycleLines[2]?.id}/usage`);
  t.equal(usage.json().items.length, 1, "the second call only");

  // A late CDR of 28 March, rated on 3 April: the next invoice bills it, labelled late.
  clock.set("2027-04-03T10:00:00Z");
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 60, "2027-03-28T09:30:00Z")]);
  t.equal(await engine.app.services.charging.rating.rateOnce("test"), 1);
  clock.set("2027-05-01T08:00:00Z");
  const may = (await engine.request("POST", issuePath(accountId), { key: engine.keys.finance })).json() as Bill;
  const mayLines = await linesOf(engine, may.id);
  const late = mayLines.filter((line) => line.type === "usage");
  t.equal(late.length, 1);
  t.ok(late[0]?.late && /late/.test(late[0].name), "labelled late");
  t.equal(may.previousBalance.value, cycle.totalDue.value, "the previous balance is the last invoice's total due");
});
