import fc from "fast-check";
import t from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { drivers, type Engine, startEngine } from "../support/engine.js";
import { createBillingAccount } from "../support/fixtures.js";

/**
 * Cash application as properties (issue 26, "Proof"): random sequences of bills, payments (naming a bill, quoting
 * its number, or neither), reversals, refunds and credit notes against one account, through the engine's own routes.
 * After every sequence: each bill's remaining amount is its total less its allocations and never below zero (and
 * the bill says so), no payment has more allocated than it brought, the ledger's balance is what is open less the
 * unapplied credit, and replaying every payment and refund with its key changes nothing.
 */

const PAYMENTS = "/tmf-api/paymentManagement/v4/payment";
const REFUNDS = "/tmf-api/paymentManagement/v4/refund";
const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";

type Command =
  | { kind: "bill"; cents: number }
  | { kind: "pay"; cents: number; target: "named" | "quoted" | "none"; pick: number }
  | { kind: "reverse"; pick: number }
  | { kind: "refund"; cents: number }
  | { kind: "credit"; pick: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant("bill" as const), cents: fc.integer({ min: 1, max: 20_000 }) }),
  fc.record({
    kind: fc.constant("pay" as const),
    cents: fc.integer({ min: 1, max: 30_000 }),
    target: fc.constantFrom("named" as const, "quoted" as const, "none" as const),
    pick: fc.nat(),
  }),
  fc.record({ kind: fc.constant("reverse" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("refund" as const), cents: fc.integer({ min: 1, max: 10_000 }) }),
  fc.record({ kind: fc.constant("credit" as const), pick: fc.nat() }),
);

const euros = (cents: number) => cents / 100;

t.test("cash application holds its invariants over random sequences", async (t) => {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock, driver: drivers[0] as Engine["driver"] });
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const finance = engine.keys.finance;
  let run = 0;

  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 12 }), async (commands) => {
      run += 1;
      const account = (await createBillingAccount(engine)).id as string;
      const bills: Array<{ id: string; billNo: string }> = [];
      const paid: string[] = [];
      const sent: Array<{ path: string; key: string; body: unknown }> = [];
      for (const [step, item] of commands.entries()) {
        const key = `run-${run}-step-${step}`;
        if (item.kind === "bill") {
          // A one-time charge (tax included) billed now on an interim bill: the engine's own issuing.
          await engine.app.services.subscriptions.recordSourcedCharges(
            engine.app.database.db,
            account,
            { source: "fee", id: key },
            [
              {
                productId: null,
                priceId: "price-test",
                name: "Test charge",
                amount: euros(item.cents).toFixed(2),
                currency: "EUR",
                taxClass: "vat-standard",
                taxIncluded: true,
                offeringVersion: null,
              },
            ],
          );
          const bill = await engine.request("POST", "/tmf-api/customerBillManagement/v4/customerBillOnDemand", {
            key: finance,
            body: { billingAccount: { id: account } },
          });
          if (bill.statusCode !== 201) throw new Error(bill.body);
          const billId = bill.json().customerBill.id as string;
          bills.push({ id: billId, billNo: bill.json().customerBill.name });
        } else if (item.kind === "pay") {
          const bill = bills.length === 0 ? undefined : bills[item.pick % bills.length];
          const body = {
            totalAmount: { unit: "EUR", value: euros(item.cents) },
            account: { id: account },
            paymentMethod: { id: "bankTransfer" },
            ...(bill !== undefined && item.target === "named"
              ? { paymentItem: [{ item: { id: bill.id, "@referredType": "CustomerBill" } }] }
              : {}),
            ...(bill !== undefined && item.target === "quoted" ? { description: `Invoice ${bill.billNo}` } : {}),
          };
          const answer = await engine.request("POST", PAYMENTS, {
            key: finance,
            headers: { "idempotency-key": key },
            body,
          });
          if (answer.statusCode !== 201) throw new Error(answer.body);
          paid.push(answer.json().id);
          sent.push({ path: PAYMENTS, key, body });
        } else if (item.kind === "reverse") {
          const payment = paid.length === 0 ? undefined : paid[item.pick % paid.length];
          if (payment === undefined) continue;
          const answer = await engine.request("POST", `/api/v1/payments/${payment}/reversal`, {
            key: finance,
            body: { reasonCode: "MS02" },
          });
          if (answer.statusCode !== 200 && !(answer.statusCode === 409 && answer.json().code === "already_reversed")) {
            throw new Error(answer.body);
          }
        } else if (item.kind === "refund") {
          const body = {
            totalAmount: { unit: "EUR", value: euros(item.cents) },
            account: { id: account },
            paymentMethod: { id: "bankTransfer" },
          };
          const answer = await engine.request("POST", REFUNDS, {
            key: finance,
            headers: { "idempotency-key": key },
            body,
          });
          if (answer.statusCode === 201) sent.push({ path: REFUNDS, key, body });
          else if (answer.statusCode !== 422 || answer.json().code !== "refund_exceeds_credit")
            throw new Error(answer.body);
        } else {
          const bill = bills.length === 0 ? undefined : bills[item.pick % bills.length];
          if (bill === undefined) continue;
          const answer = await engine.request("POST", `/api/v1/billing/invoices/${bill.id}/credit-notes`, {
            key: finance,
            body: { reason: "property" },
          });
          // A bill credited in full already has nothing left to credit.
          if (answer.statusCode !== 201 && answer.statusCode !== 409 && answer.statusCode !== 422) {
            throw new Error(answer.body);
          }
        }
      }

      // Each bill: remaining = total − allocations ≥ 0, as the bill says.
      const rows = await engine.sql(
        `select i.id, i.gross::text as gross, coalesce(sum(a.amount), 0)::text as applied
         from invoices i left join allocations a on a.invoice_id = i.id
         where i.billing_account_id = $1 and i.kind <> 'creditNote' group by i.id`,
        [account],
      );
      for (const row of rows) {
        const remaining = Number(row.gross) - Number(row.applied);
        if (remaining < 0) return false;
        const shown = (await engine.request("GET", `${BILLS}/${row.id}`)).json().remainingAmount.value;
        if (Math.round(shown * 100) !== Math.round(remaining * 100)) return false;
      }
      // Each payment's allocations within its amount (net of undone ones), and each credit's.
      const [over] = await engine.sql(
        `select count(*)::int as n from receivable_entries e
         where e.billing_account_id = $1 and e.amount < 0
           and coalesce((select sum(a.amount) from allocations a where a.entry_id = e.id), 0) > -e.amount`,
        [account],
      );
      if (over?.n !== 0) return false;
      // The trigger's running totals equal the allocations they sum, on both sides.
      const [drift] = await engine.sql(
        `select count(*)::int as n from allocation_totals t
         where t.applied <> coalesce((select sum(a.amount) from allocations a
           where (t.side = 'target' and coalesce(a.invoice_id, a.debit_entry_id) = t.id)
              or (t.side = 'credit' and a.entry_id = t.id)), 0)`,
      );
      if (drift?.n !== 0) return false;
      // The ledger: balance = Σ open (bills and debit entries) − unapplied credit.
      const [ledger] = await engine.sql(
        `select
           (select coalesce(sum(amount), 0) from receivable_entries where billing_account_id = $1) as balance,
           (select coalesce(sum(i.gross - coalesce((select sum(a.amount) from allocations a where a.invoice_id = i.id), 0)), 0)
              from invoices i where i.billing_account_id = $1 and i.kind <> 'creditNote')
           + (select coalesce(sum(e.amount - coalesce((select sum(a.amount) from allocations a where a.debit_entry_id = e.id), 0)), 0)
              from receivable_entries e where e.billing_account_id = $1 and e.amount > 0 and e.invoice_id is null)
           - (select coalesce(sum(-e.amount - coalesce((select sum(a.amount) from allocations a where a.entry_id = e.id), 0)), 0)
              from receivable_entries e where e.billing_account_id = $1 and e.amount < 0) as open`,
        [account],
      );
      if (Number(ledger?.balance) !== Number(ledger?.open)) return false;
      // Replaying every payment and refund with its key changes nothing.
      const before = await engine.sql(
        "select (select count(*) from receivable_entries) as entries, (select count(*) from allocations) as allocations",
      );
      for (const request of sent) {
        const again = await engine.request("POST", request.path, {
          key: finance,
          headers: { "idempotency-key": request.key },
          body: request.body,
        });
        if (again.headers["idempotent-replayed"] !== "true") return false;
      }
      const after = await engine.sql(
        "select (select count(*) from receivable_entries) as entries, (select count(*) from allocations) as allocations",
      );
      return JSON.stringify(before) === JSON.stringify(after);
    }),
    { numRuns: 25, seed: Number(process.env.PROPERTY_SEED ?? 20261207) },
  );
  // The sequences did what they say: bills, payments, reversals, refunds and credit notes were all written.
  const [written] = await engine.sql(
    `select (select count(*) from invoices where kind = 'interim')::int as bills,
            (select count(*) from invoices where kind = 'creditNote')::int as credits,
            (select count(*) from payments)::int as payments,
            (select count(*) from payments where status = 'reversed')::int as reversed,
            (select count(*) from refunds)::int as refunds,
            (select count(*) from allocations where reverses is not null)::int as undone`,
  );
  t.ok(run >= 25, `${run} sequences held every invariant`);
  for (const [what, total] of Object.entries(written ?? {})) t.ok(Number(total) > 0, `${total} ${what}`);
});
