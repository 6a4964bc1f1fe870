import { sql } from "drizzle-orm";
import { type Db, queryRows } from "../../platform/database.js";
import { uuidList } from "../../platform/sql.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId } from "../../shared/ids.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { documentSeries, receivableEntries } from "./billing.tables.js";

/**
 * The receivables ledger and the number series (DESIGN.md §10 "Receivables are a ledger", "Drafts in parallel,
 * numbers in sequence"): what an account owes is the sum of its entries; the summary on a bill reads them by their
 * order of writing.
 */

/**
 * The next `count` numbers of a series, in the caller's transaction: the series row is created or moved on by
 * `count` under its row lock, held to commit, so numbers are gapless (a rolled back issue gives its numbers back)
 * and a batch takes its numbers in one statement. Answers the first of them.
 */
export async function nextNumbers(
  tx: Db,
  issuerId: string,
  kind: "invoice" | "creditNote",
  year: number,
  count: number,
): Promise<number> {
  const [row] = await queryRows<{ last_number: string | number }>(
    tx,
    sql`insert into ${documentSeries} (issuer_id, kind, year, last_number) values (${issuerId}, ${kind}, ${year}, ${count})
        on conflict (issuer_id, kind, year) do update set last_number = ${documentSeries}.last_number + ${count}
        returning last_number`,
  );
  if (row === undefined) throw new Error(`series ${issuerId}/${kind}/${year} gave no numbers`);
  return Number(row.last_number) - count + 1;
}

/**
 * The account summary a new invoice prints, per account: the balance after its last invoice, the payments (refunds
 * and reversals netted in) and the credits (credit notes, write-offs, fees netted in) written since, all positive
 * when they reduce what is owed. previous − payments − credits + the new invoice = the ledger's balance with it.
 * Accounts with no entries are absent (all zero).
 */
export async function accountSummaries(
  tx: Db,
  billingAccountIds: readonly string[],
): Promise<Map<string, { previous: string; payments: string; credits: string }>> {
  const ids = billingAccountIds.filter(isId);
  const summaries = new Map<string, { previous: string; payments: string; credits: string }>();
  if (ids.length === 0) return summaries;
  const rows = await queryRows<{ billing_account_id: string; previous: string; payments: string; credits: string }>(
    tx,
    sql`with entries as (
          select billing_account_id, kind, amount, seq from ${receivableEntries}
          where billing_account_id in (${uuidList(ids)})),
        last as (
          select billing_account_id, coalesce(max(seq) filter (where kind = 'invoice'), 0) as seq
          from entries group by billing_account_id)
        select e.billing_account_id,
          coalesce(sum(e.amount) filter (where e.seq <= l.seq), 0)::text as previous,
          coalesce(-sum(e.amount) filter (where e.seq > l.seq and e.kind in ('payment', 'refund', 'reversal')), 0)::text as payments,
          coalesce(-sum(e.amount) filter (where e.seq > l.seq and e.kind not in ('payment', 'refund', 'reversal')), 0)::text as credits
        from entries e join last l on l.billing_account_id = e.billing_account_id
        group by e.billing_account_id`,
  );
  for (const row of rows) {
    summaries.set(row.billing_account_id, { previous: row.previous, payments: row.payments, credits: row.credits });
  }
  return summaries;
}

/** The ledger balances of accounts, in their currency (absent: no entries yet). */
export async function balancesOf(
  db: Db,
  billingAccountIds: readonly string[],
): Promise<Map<string, { amount: MinorAmount; currency: string }>> {
  const ids = billingAccountIds.filter(isId);
  const balances = new Map<string, { amount: MinorAmount; currency: string }>();
  if (ids.length === 0) return balances;
  const rows = await queryRows<{ billing_account_id: string; currency: string; balance: string }>(
    db,
    sql`select billing_account_id, currency, sum(amount)::text as balance from ${receivableEntries}
        where billing_account_id in (${uuidList(ids)}) group by billing_account_id, currency`,
  );
  for (const row of rows) {
    balances.set(row.billing_account_id, {
      amount: MinorAmount.parse(row.balance, currencyMinorUnits(row.currency)),
      currency: row.currency,
    });
  }
  return balances;
}
