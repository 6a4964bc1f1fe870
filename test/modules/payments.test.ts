import t, { type Test } from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { drivers, type Engine, expectError, startEngine } from "../support/engine.js";
import { activateLine, createBillingAccount, orderReadyAccount } from "../support/fixtures.js";

/**
 * Payments and cash application (issue 26): TMF676 payments allocated to the right bills exactly once, reversals,
 * refunds only from credit, imports, payment methods, and bad input that changes nothing.
 */

const PAYMENTS = "/tmf-api/paymentManagement/v4/payment";
const REFUNDS = "/tmf-api/paymentManagement/v4/refund";
const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";
const BA = "/tmf-api/accountManagement/v4/billingAccount";
const issuePath = (accountId: string) => `/api/v1/billing/accounts/${accountId}/invoices`;
const methodsPath = (accountId: string) => `/api/v1/billing-accounts/${accountId}/payment-methods`;

type Tap = Parameters<typeof startEngine>[0];
type Payment = {
  id: string;
  status: string;
  matchedBy: string;
  totalAmount: { unit: string; value: number };
  unappliedAmount: { value: number };
  paymentItem: Array<{ amount: { value: number }; item: { id: string; name: string; "@referredType": string } }>;
};

/** A German postpaid account billed 44.64 EUR on 1 April 2027 (a Postpaid M line from 17 March). */
async function billedAccount(t: Tap, driver: Engine["driver"]) {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock, driver });
  const { accountId, customerId } = await orderReadyAccount(engine);
  await activateLine(engine, accountId, "plan-postpaid-m");
  clock.set("2027-04-01T08:00:00Z");
  const issued = await engine.request("POST", issuePath(accountId), { key: engine.keys.finance });
  if (issued.statusCode !== 201) throw new Error(issued.body);
  return { engine, clock, accountId, customerId, bill: issued.json() as { id: string; billNo: string } };
}

function pay(accountId: string, value: number, extra: Record<string, unknown> = {}) {
  return {
    totalAmount: { unit: "EUR", value },
    account: { id: accountId },
    paymentMethod: { id: "bankTransfer" },
    ...extra,
  };
}

async function billOf(engine: Engine, id: string) {
  return (await engine.request("GET", `${BILLS}/${id}`)).json() as {
    state: string;
    remainingAmount: { value: number };
    appliedPayment: Array<{ appliedAmount: { value: number }; payment: { id: string } }>;
  };
}

/** The ledger identity: the balance is what bills and debits have open less the unapplied credit. */
async function ledgerHolds(t: Test, engine: Engine, accountId: string) {
  const [row] = await engine.sql(
    `select
       (select coalesce(sum(amount), 0) from receivable_entries where billing_account_id = '${accountId}')::text as balance,
       (select coalesce(sum(i.gross - coalesce((select sum(a.amount) from allocations a where a.invoice_id = i.id), 0)), 0)
          from invoices i where i.billing_account_id = '${accountId}' and i.kind <> 'creditNote')
       + (select coalesce(sum(e.amount - coalesce((select sum(a.amount) from allocations a where a.debit_entry_id = e.id), 0)), 0)
          from receivable_entries e where e.billing_account_id = '${accountId}' and e.amount > 0 and e.invoice_id is null)
       - (select coalesce(sum(-e.amount - coalesce((select sum(a.amount) from allocations a where a.entry_id = e.id), 0)), 0)
          from receivable_entries e where e.billing_account_id = '${accountId}' and e.amount < 0) as open`,
  );
  t.equal(Number(row?.balance), Number(row?.open), `ledger balance ${row?.balance} = open items − unapplied credit`);
}

for (const driver of drivers) {
  t.test(
    `${driver}: payments land on the right bill once; reversal reopens it; refunds only from credit`,
    async (t) => {
      const { engine, accountId, bill } = await billedAccount(t, driver);
      const finance = engine.keys.finance;

      // A partial payment naming the bill, retried with its key: one payment.
      const first = await engine.request("POST", PAYMENTS, {
        key: finance,
        headers: { "idempotency-key": "pay-1" },
        body: pay(accountId, 20, { paymentItem: [{ item: { id: bill.id, "@referredType": "CustomerBill" } }] }),
      });
      t.equal(first.statusCode, 201, first.body);
      const payment = first.json() as Payment;
      t.match(payment, { status: "succeeded", matchedBy: "items", totalAmount: { unit: "EUR", value: 20 } });
      t.same(
        payment.paymentItem.map((item) => [item.item.id, item.item.name, item.amount.value]),
        [[bill.id, bill.billNo, 20]],
      );
      t.equal(first.headers.location, `${PAYMENTS}/${payment.id}`);
      const retry = await engine.request("POST", PAYMENTS, {
        key: finance,
        headers: { "idempotency-key": "pay-1" },
        body: pay(accountId, 20, { paymentItem: [{ item: { id: bill.id, "@referredType": "CustomerBill" } }] }),
      });
      t.equal(retry.statusCode, 201);
      t.equal(retry.headers["idempotent-replayed"], "true");
      t.equal(retry.json().id, payment.id);
      t.equal(await engine.count("payments"), 1, "a retry records nothing");
      expectError(
        t,
        await engine.request("POST", PAYMENTS, {
          key: finance,
          headers: { "idempotency-key": "pay-1" },
          body: pay(accountId, 21),
        }),
        409,
        "idempotency_key_reused",
      );
      let current = await billOf(engine, bill.id);
      t.equal(current.state, "partiallyPaid");
      t.equal(current.remainingAmount.value, 24.64);
      t.same(
        current.appliedPayment.map((applied) => [applied.payment.id, applied.appliedAmount.value]),
        [[payment.id, 20]],
      );

      // The same reference again (an instalment) with no key is a second payment: references never deduplicate.
      // Its description quotes the bill's number; 30 pays the 24.64 left and 5.36 stays as credit.
      const second = await engine.request("POST", PAYMENTS, {
        key: finance,
        body: pay(accountId, 30, { description: `Rechnung ${bill.billNo} Rest` }),
      });
      t.equal(second.statusCode, 201, second.body);
      t.match(second.json(), { matchedBy: "reference", unappliedAmount: { value: 5.36 } });
      current = await billOf(engine, bill.id);
      t.equal(current.state, "settled");
      t.equal(current.remainingAmount.value, 0);
      await ledgerHolds(t, engine, accountId);
      const balance = (await engine.request("GET", `${BA}/${accountId}`)).json().accountBalance;
      t.match(balance, [{ amount: { value: -5.36 } }], "the account is in credit");

      // Refunds: never above the credit; 2.00 of the 5.36 paid back.
      expectError(
        t,
        await engine.request("POST", REFUNDS, {
          key: finance,
          body: pay(accountId, 5.37),
        }),
        422,
        "refund_exceeds_credit",
        "totalAmount.value",
      );
      const refund = await engine.request("POST", REFUNDS, {
        key: finance,
        headers: { "idempotency-key": "refund-1" },
        body: pay(accountId, 2, { reason: "customer asked" }),
      });
      t.equal(refund.statusCode, 201, refund.body);
      t.match(refund.json(), { "@type": "Refund", status: "completed", totalAmount: { value: 2 }, manual: false });
      t.equal(
        (
          await engine.request("POST", REFUNDS, {
            key: finance,
            headers: { "idempotency-key": "refund-1" },
            body: pay(accountId, 2, { reason: "customer asked" }),
          })
        ).json().id,
        refund.json().id,
        "a refund retried is one refund",
      );
      t.equal((await engine.request("GET", `${PAYMENTS}/${second.json().id}`)).json().unappliedAmount.value, 3.36);
      await ledgerHolds(t, engine, accountId);

      // The first payment comes back (insufficient funds): its 20 is undone, the bill reopens, the 3.36 of credit
      // goes to it, and the catalog's 3.00 fee waits for the next bill.
      const reversed = await engine.request("POST", `/api/v1/payments/${payment.id}/reversal`, {
        key: finance,
        body: { reasonCode: "AM04", note: "Rücklastschrift" },
      });
      t.equal(reversed.statusCode, 200, reversed.body);
      t.match(reversed.json(), {
        status: "reversed",
        paymentItem: [],
        unappliedAmount: { value: 0 },
        reversal: { reasonCode: "AM04", reason: "insufficient funds" },
      });
      current = await billOf(engine, bill.id);
      t.equal(current.state, "partiallyPaid");
      t.equal(current.remainingAmount.value, 16.64, "44.64 − 24.64 − 3.36");
      t.same(
        await engine.sql(
          "select source, source_id, amount::text as amount, billed_at from one_time_charges where source = 'reversal'",
        ),
        [{ source: "reversal", source_id: payment.id, amount: "3.000000", billed_at: null }],
      );
      await ledgerHolds(t, engine, accountId);
      expectError(
        t,
        await engine.request("POST", `/api/v1/payments/${payment.id}/reversal`, {
          key: finance,
          body: { reasonCode: "AM04" },
        }),
        409,
        "already_reversed",
      );
      expectError(
        t,
        await engine.request("POST", "/api/v1/payments/00000000-0000-7000-8000-000000000000/reversal", {
          key: finance,
          body: { reasonCode: "MD06" },
        }),
        404,
        "not_found",
      );
      expectError(
        t,
        await engine.request("POST", `/api/v1/payments/${second.json().id}/reversal`, {
          key: finance,
          body: { reasonCode: "XX99" },
        }),
        400,
        "invalid_field",
      );

      // Allocations and payments never change but as the engine writes them.
      for (const statement of [
        "update allocations set amount = 1",
        "delete from allocations",
        `update payments set amount = 1 where id = '${payment.id}'`,
        `update payments set status = 'succeeded' where id = '${payment.id}'`,
        "delete from payments",
      ]) {
        await t.rejects(engine.sql(statement), statement);
      }
      // No allocation exceeds its bill, even written by hand.
      const overdone = await engine
        .sql(
          `insert into allocations (id, billing_account_id, invoice_id, entry_id, amount, at)
         values (gen_random_uuid(), '${accountId}', '${bill.id}', '${second.json().id}', 100, now())`,
        )
        .then(
          () => "written",
          (error: Error) => String(error.cause ?? error),
        );
      t.match(overdone, /exceeds/);
    },
  );
}

t.test("bad input changes nothing", async (t) => {
  const { engine, accountId, bill } = await billedAccount(t, drivers[0] as Engine["driver"]);
  const finance = engine.keys.finance;
  const other = await createBillingAccount(engine);
  const cases: Array<[string, unknown, number, string, string?, string?]> = [
    [
      "wrong currency",
      pay(accountId, 10, { totalAmount: { unit: "GBP", value: 10 } }),
      422,
      "currency_mismatch",
      "totalAmount.unit",
    ],
    ["zero", pay(accountId, 0), 400, "invalid_amount", "totalAmount.value"],
    ["negative", pay(accountId, -5), 400, "invalid_amount", "totalAmount.value"],
    ["a tenth of a cent", pay(accountId, 1.001), 400, "invalid_amount", "totalAmount.value"],
    ["a string amount", pay(accountId, 10, { totalAmount: { unit: "EUR", value: "10" } }), 400, "invalid_field"],
    ["no payment method", { totalAmount: { unit: "EUR", value: 1 }, account: { id: accountId } }, 400, "invalid_field"],
    [
      "an unknown method",
      pay(accountId, 1, { paymentMethod: { id: "bitcoin" } }),
      422,
      "unknown_payment_method",
      "paymentMethod.id",
    ],
    ["an unknown account", pay("00000000-0000-7000-8000-000000000000", 1), 404, "not_found"],
    [
      "another account's bill",
      pay(other.id, 1, { paymentItem: [{ item: { id: bill.id } }] }),
      422,
      "unknown_bill",
      "paymentItem[0].item.id",
    ],
    [
      "items above the payment",
      pay(accountId, 5, { paymentItem: [{ item: { id: bill.id }, amount: { unit: "EUR", value: 6 } }] }),
      422,
      "items_exceed_payment",
      "paymentItem",
    ],
  ];
  for (const [name, body, status, code, field] of cases) {
    t.test(name, async (t) => {
      expectError(t, await engine.request("POST", PAYMENTS, { key: finance, body }), status, code, field);
    });
  }
  expectError(
    t,
    await engine.request("POST", PAYMENTS, {
      key: finance,
      rawBody: "{not json",
      headers: { "content-type": "application/json" },
    }),
    400,
    "malformed_json",
  );
  // A subscriber pays its own account, and another's is unknown to it.
  const own = await engine.subscriberKey(accountId);
  const mine = await engine.request("POST", PAYMENTS, { key: own, body: pay(accountId, 1) });
  t.equal(mine.statusCode, 201, mine.body);
  expectError(t, await engine.request("POST", PAYMENTS, { key: own, body: pay(other.id, 1) }), 404, "not_found");
  expectError(
    t,
    await engine.request("GET", `${PAYMENTS}/${mine.json().id}`, { key: await engine.subscriberKey(other.id) }),
    404,
    "not_found",
  );
  t.equal(await engine.count("payments"), 1, "only the subscriber's own payment");
  t.equal(await engine.count("receivable_entries", "kind = 'payment'"), 1);

  // A prepaid account's money is a top-up, not a payment.
  const prepaid = await createBillingAccount(engine, { accountType: "prepaid", creditLimit: undefined });
  expectError(
    t,
    await engine.request("POST", PAYMENTS, { key: finance, body: pay(prepaid.id, 5) }),
    422,
    "prepaid_account",
    "account.id",
  );
  // Refund of more than any credit, and a refund when there is none.
  expectError(
    t,
    await engine.request("POST", REFUNDS, { key: finance, body: pay(other.id, 1) }),
    422,
    "refund_exceeds_credit",
  );
  t.equal(await engine.count("refunds"), 0);
});

t.test("imports: each payment its own outcome; importing again records nothing twice", async (t) => {
  const { engine, accountId, bill } = await billedAccount(t, drivers[0] as Engine["driver"]);
  const item = (value: string, key: string, extra: Record<string, unknown> = {}) => ({
    account: { id: accountId },
    totalAmount: { unit: "EUR", value },
    paymentMethod: { id: "bankTransfer" },
    idempotencyKey: key,
    ...extra,
  });
  const body = {
    payments: [
      item("10.00", "lockbox-1", { description: `ref ${bill.billNo}` }),
      item("5.00", "lockbox-2", { account: { id: "00000000-0000-7000-8000-000000000000" } }),
      item("10.00", "lockbox-1", { description: `ref ${bill.billNo}` }),
      item("1.005", "lockbox-3"),
      item("40.00", "lockbox-4"),
    ],
  };
  const answer = await engine.request("POST", "/api/v1/payments/import", { key: engine.keys.finance, body });
  t.equal(answer.statusCode, 200, answer.body);
  const result = answer.json();
  t.match(result, { created: 2, replayed: 1, rejected: 2 });
  t.same(
    result.results.map((entry: { outcome: string; error?: { code: string } }) => [entry.outcome, entry.error?.code]),
    [
      ["created", undefined],
      ["rejected", "not_found"],
      ["replayed", undefined],
      ["rejected", "invalid_amount"],
      ["created", undefined],
    ],
  );
  t.equal(result.results[0].payment.matchedBy, "reference");
  t.equal(result.results[4].payment.unappliedAmount.value, 5.36, "40 − 34.64 open");
  const again = (await engine.request("POST", "/api/v1/payments/import", { key: engine.keys.finance, body })).json();
  t.match(again, { created: 0, replayed: 3, rejected: 2 });
  t.equal(await engine.count("payments"), 2);
  t.equal((await billOf(engine, bill.id)).state, "settled");
  await ledgerHolds(t, engine, accountId);
  expectError(
    t,
    await engine.request("POST", "/api/v1/payments/import", { key: engine.keys.crm, body }),
    403,
    "role_not_allowed",
  );
});

t.test("payment methods, the next bill using credit, and a closing account's credit refunded", async (t) => {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock, driver: drivers[0] as Engine["driver"] });
  const { accountId } = await orderReadyAccount(engine);
  const crm = engine.keys.crm;
  expectError(
    t,
    await engine.request("POST", methodsPath(accountId), {
      key: crm,
      body: { kind: "bankTransfer", iban: "DE89370400440532013001" },
    }),
    400,
    "invalid_iban",
    "iban",
  );
  expectError(
    t,
    await engine.request("POST", methodsPath(accountId), { key: crm, body: { kind: "directDebit" } }),
    400,
    "missing_field",
    "iban",
  );
  expectError(
    t,
    await engine.request("POST", methodsPath(accountId), {
      key: crm,
      body: { kind: "card", provider: "psp", token: "tok", iban: "DE89370400440532013000" },
    }),
    400,
    "invalid_field",
  );
  const debit = await engine.request("POST", methodsPath(accountId), {
    key: crm,
    body: {
      kind: "directDebit",
      iban: "de89 3704 0044 0532 0130 00",
      mandateReference: "MANDATE-1",
      accountHolder: "Erika Mustermann",
    },
  });
  t.equal(debit.statusCode, 201, debit.body);
  t.match(debit.json(), { kind: "directDebit", isDefault: true, iban: "DE89**************3000" });
  const card = await engine.request("POST", methodsPath(accountId), {
    key: crm,
    body: { kind: "card", provider: "psp", token: "tok_123", brand: "visa", lastFour: "4242", expiry: "2029-12" },
  });
  t.match(card.json(), { kind: "card", isDefault: false });
  t.match(
    (
      await engine.request("PATCH", `${methodsPath(accountId)}/${card.json().id}`, {
        key: crm,
        body: { isDefault: true },
      })
    ).json(),
    { isDefault: true },
  );
  t.same(
    (
      (await engine.request("GET", methodsPath(accountId), { key: crm })).json() as Array<{
        kind: string;
        isDefault: boolean;
      }>
    ).map((method) => [method.kind, method.isDefault]),
    [
      ["directDebit", false],
      ["card", true],
    ],
  );
  const stranger = await engine.subscriberKey((await createBillingAccount(engine)).id);
  expectError(t, await engine.request("GET", methodsPath(accountId), { key: stranger }), 404, "not_found");
  t.equal(
    (await engine.request("DELETE", `${methodsPath(accountId)}/${card.json().id}`, { key: crm })).statusCode,
    204,
  );
  t.match((await engine.request("GET", methodsPath(accountId), { key: crm })).json(), [
    { kind: "directDebit", isDefault: true },
  ]);

  // A payment with nothing to pay stays as credit; the next bill uses it first.
  const advance = await engine.request("POST", PAYMENTS, {
    key: engine.keys.finance,
    body: { ...pay(accountId, 50), paymentMethod: { id: debit.json().id } },
  });
  t.match(advance.json(), {
    matchedBy: "none",
    unappliedAmount: { value: 50 },
    paymentMethod: { id: debit.json().id },
  });
  await activateLine(engine, accountId, "plan-postpaid-m");
  clock.set("2027-04-01T08:00:00Z");
  const bill = (await engine.request("POST", issuePath(accountId), { key: engine.keys.finance })).json();
  t.match(bill, { state: "settled", remainingAmount: { value: 0 }, totalDue: { value: -5.36 } });
  t.equal((await engine.request("GET", `${PAYMENTS}/${advance.json().id}`)).json().unappliedAmount.value, 5.36);

  // Closing needs the line gone; the 5.36 of credit is then asked back to the default method.
  const [line] = await engine.sql("select id from products where billing_account_id = $1", [accountId]);
  await engine.sql("update products set status = 'terminated' where id = $1", [line?.id]);
  const closed = await engine.request("PATCH", `${BA}/${accountId}`, { body: { state: "closed" } });
  t.equal(closed.statusCode, 200, closed.body);
  const refunds = (await engine.request("GET", REFUNDS, { key: engine.keys.finance })).json();
  t.match(refunds, [
    { status: "requested", manual: false, totalAmount: { value: 5.36 }, paymentMethod: { id: debit.json().id } },
  ]);
  const paidOut = await engine.request("POST", `/api/v1/refunds/${refunds[0].id}/completion`, {
    key: engine.keys.finance,
  });
  t.match(paidOut.json(), { status: "completed" });
  t.match((await engine.request("GET", `${BA}/${accountId}`)).json().accountBalance, [{ amount: { value: 0 } }]);

  // Money that still arrives for the closed account is recorded and asked back the same way.
  const late = await engine.request("POST", PAYMENTS, { key: engine.keys.finance, body: pay(accountId, 7) });
  t.equal(late.statusCode, 201, late.body);
  t.match(late.json(), { unappliedAmount: { value: 0 } });
  const requested = (
    await engine.request("GET", REFUNDS, { key: engine.keys.finance, query: { status: "requested" } })
  ).json();
  t.match(requested, [{ totalAmount: { value: 7 }, paymentMethod: { id: debit.json().id } }]);
  t.match((await engine.request("GET", `${BA}/${accountId}`)).json().accountBalance, [{ amount: { value: 0 } }]);
});
