import t from "tap";
import { orderReadyAccount } from "../support/fixtures.js";
import { clockEngine } from "../support/scenario.js";

/**
 * Money in over three bill cycles on the test clock, through the API only (issue 26): a bill, a partial payment,
 * an overpayment that leaves credit, the next bill using the credit first, a chargeback that reopens what it paid
 * and adds the catalog's fee to the following bill, and the credit left at the end refunded to nothing owed.
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";
const PAYMENTS = "/tmf-api/paymentManagement/v4/payment";
const RATES = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate";

/** Cents of a JSON amount, exactly (amounts have at most two decimals here). */
const cents = (value: number) => Math.round(value * 100);
const euros = (amount: number) => amount / 100;

t.test("bill, part-payment, overpayment, credit used, chargeback with its fee, refund of the rest", async (t) => {
  const { engine, api, moveTo, waitForOrder } = await clockEngine(t, { start: "2027-01-17T08:59:00Z" });
  const finance = engine.keys.finance;
  const issue = async (accountId: string) => {
    const answer = await engine.request("POST", `/api/v1/billing/accounts/${accountId}/invoices`, { key: finance });
    if (answer.statusCode !== 200 && answer.statusCode !== 201) throw new Error(answer.body);
    return answer.json();
  };
  const bill = (id: string) => api("GET", `${BILLS}/${id}`);
  const pay = (accountId: string, amount: number, extra: Record<string, unknown> = {}) =>
    api(
      "POST",
      PAYMENTS,
      {
        totalAmount: { unit: "EUR", value: euros(amount) },
        account: { id: accountId },
        paymentMethod: { id: "bankTransfer" },
        ...extra,
      },
      finance,
    );
  const balance = async (accountId: string) =>
    cents(
      (await api("GET", `/tmf-api/accountManagement/v4/billingAccount/${accountId}`)).accountBalance[0].amount.value,
    );

  // 17 January 2027 (the engine's test clock starts there, BSS_TEST_CLOCK_START): Postpaid M ordered.
  const clock = await api("GET", "/api/v1/admin/clock");
  t.ok(
    Date.parse(clock.now) >= Date.parse("2027-01-17T08:59:00Z") &&
      Date.parse(clock.now) < Date.parse("2027-01-17T09:00:00Z"),
    `business time starts where configured (${clock.now})`,
  );
  await moveTo("2027-01-17T09:00:00Z");
  const { accountId } = await orderReadyAccount(engine);
  const order = await api("POST", ORDERS, {
    billingAccount: { id: accountId },
    productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
  });
  await waitForOrder(order.id);

  // 1 February: the first bill. 5 February: 20.00 paid naming it.
  await moveTo("2027-02-01T08:00:00Z");
  const first = await issue(accountId);
  const firstTotal = cents(first.amountDue.value);
  t.ok(firstTotal > 2000, `the first bill is ${euros(firstTotal)}`);
  await moveTo("2027-02-05T10:00:00Z");
  const part = await pay(accountId, 2000, {
    paymentItem: [{ item: { id: first.id, "@referredType": "CustomerBill" } }],
  });
  t.match(await bill(first.id), { state: "partiallyPaid", remainingAmount: { value: euros(firstTotal - 2000) } });

  // 10 February: the rest and 15.00 more, quoting the bill's payment reference: settled, 15.00 of credit.
  await moveTo("2027-02-10T10:00:00Z");
  const over = await pay(accountId, firstTotal - 2000 + 1500, { description: `Zahlung ${first.paymentReference}` });
  t.match(over, { matchedBy: "reference", unappliedAmount: { value: 15 } });
  t.match(await bill(first.id), { state: "settled", remainingAmount: { value: 0 } });
  t.equal(await balance(accountId), -1500, "15.00 in credit");

  // 1 March: the second bill uses the credit first.
  await moveTo("2027-03-01T08:00:00Z");
  const second = await issue(accountId);
  const secondTotal = cents(second.amountDue.value);
  t.match(await bill(second.id), { state: "partiallyPaid", remainingAmount: { value: euros(secondTotal - 1500) } });
  t.equal(cents(second.totalDue.value), secondTotal - 1500, "the bill's account summary shows the credit");
  t.equal((await api("GET", `${PAYMENTS}/${over.id}`)).unappliedAmount.value, 0);

  // 3 March: the overpayment is charged back: both bills reopen by what it paid, and a fee waits.
  await moveTo("2027-03-03T10:00:00Z");
  const back = await api("POST", `/api/v1/payments/${over.id}/reversal`, { reasonCode: "CHARGEBACK" }, finance);
  t.match(back, { status: "reversed", paymentItem: [], reversal: { reasonCode: "CHARGEBACK" } });
  t.match(await bill(first.id), { state: "partiallyPaid", remainingAmount: { value: euros(firstTotal - 2000) } });
  t.match(await bill(second.id), { state: /^(validated|sent)$/, remainingAmount: { value: euros(secondTotal) } });
  t.equal(await balance(accountId), firstTotal - 2000 + secondTotal);
  t.match((await api("GET", `${PAYMENTS}/${part.id}`)).status, "succeeded", "the other payment stands");

  // 5 March: everything paid with 40.00 over; 1 April: the third bill carries the fee and is settled by credit.
  await moveTo("2027-03-05T10:00:00Z");
  const catchUp = await pay(accountId, firstTotal - 2000 + secondTotal + 4000);
  t.match(catchUp, { matchedBy: "oldest", unappliedAmount: { value: 40 } });
  t.equal((await bill(first.id)).state, "settled");
  t.equal((await bill(second.id)).state, "settled");
  await moveTo("2027-04-01T08:00:00Z");
  const third = await issue(accountId);
  const lines = await api("GET", `${RATES}?bill.id=${third.id}`);
  t.ok(
    lines.some(
      (line: { name: string; taxIncludedAmount: { value: number } }) =>
        /Returned payment/.test(line.name) && line.taxIncludedAmount.value === 3,
    ),
    "the chargeback fee is a line of the next bill",
  );
  const thirdTotal = cents(third.amountDue.value);
  t.match(await bill(third.id), { state: "settled", remainingAmount: { value: 0 } });
  const left = 4000 - thirdTotal;
  t.equal(await balance(accountId), -left, `${euros(left)} of credit left`);

  // The rest is refunded: nothing owed either way.
  const refund = await api(
    "POST",
    "/tmf-api/paymentManagement/v4/refund",
    {
      totalAmount: { unit: "EUR", value: euros(left) },
      account: { id: accountId },
      paymentMethod: { id: "bankTransfer" },
    },
    finance,
  );
  t.match(refund, { status: "completed", totalAmount: { value: euros(left) } });
  t.equal(await balance(accountId), 0);
  const events = await engine.sql(
    "select event_type, count(*)::int as n from outbox_events where api = 'paymentManagement' group by event_type order by event_type",
  );
  t.same(events, [
    { event_type: "PaymentCreateEvent", n: 3 },
    { event_type: "PaymentStateChangeEvent", n: 1 },
    { event_type: "RefundCreateEvent", n: 1 },
  ]);
});

t.test("a SEPA direct debit: pre-notified, pending, collected by the daily job on its date", async (t) => {
  // The line is ordered on the last day of January (each day the clock crosses runs that day's jobs).
  const { engine, api, moveTo, waitForOrder } = await clockEngine(t, { start: "2027-01-31T08:59:00Z" });
  const finance = engine.keys.finance;
  await moveTo("2027-01-31T09:00:00Z");
  const { accountId, customerId } = await orderReadyAccount(engine);
  const order = await api("POST", ORDERS, {
    billingAccount: { id: accountId },
    productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
  });
  await waitForOrder(order.id);
  await api("POST", `/api/v1/billing-accounts/${accountId}/mandates`, {
    reference: "SCENARIO-1",
    signatureDate: "2027-01-31",
    debtorName: "Ada Lovelace",
    iban: "DE02120300000000202051",
  });

  // 1 February: the cycle bill (the bill run's job), then a file collecting it on the 16th.
  await moveTo("2027-02-01T08:00:00Z");
  const [bill] = await api("GET", `${BILLS}?billingAccount.id=${accountId}`);
  t.ok(bill, "the bill run issued the cycle bill");
  const file = await api("POST", "/api/v1/payments/direct-debits", { collectionDate: "2027-02-16" }, finance);
  t.equal(file.transactions, 1);
  const [debit] = await api("GET", `${PAYMENTS}?account.id=${accountId}`, undefined, finance);
  t.match(debit, { status: "pending", paymentItem: [{ item: { id: bill.id } }] });
  const notices = await engine.sql<{ body: string }>(
    "select body from customer_messages where customer_id = $1 and reason = 'directDebit.prenotification'",
    [customerId],
  );
  t.match(notices, [{ body: /on 2027-02-16 \(mandate SCENARIO-1/ }], "the debtor was pre-notified");

  // 15 February: still pending; 16 February: the daily job collects it and the bill is settled.
  await moveTo("2027-02-15T12:00:00Z");
  t.equal((await api("GET", `${PAYMENTS}/${debit.id}`, undefined, finance)).status, "pending");
  await moveTo("2027-02-16T12:00:00Z");
  t.match(await api("GET", `${PAYMENTS}/${debit.id}`, undefined, finance), {
    status: "succeeded",
    paymentItem: [{ item: { id: bill.id } }],
    unappliedAmount: { value: 0 },
  });
  t.match(await api("GET", `${BILLS}/${bill.id}`), { state: "settled", remainingAmount: { value: 0 } });
});
