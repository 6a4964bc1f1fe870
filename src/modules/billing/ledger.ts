import { sql } from "drizzle-orm";
import { type Db, queryRows } from "../../platform/database.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId } from "../../shared/ids.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { documentSeries, receivableEntries } from "./billing.tables.js";
import type { ReceivablesInput } from "./compose.js";

/**
 * The receivables ledger and the number series (DESIGN.md §10 "Receivables are a ledger", "Drafts in parallel,
 * numbers in sequence"): what an account owes is the sum of its entries; the summary on a bill reads them by their
 * order of writing.
 */

/**
 * The next number of a series, in the caller's transaction: the series row is created at 1 or moved on by one under
 * its row lock, held to commit, so numbers are gapless (a rolled back issue gives its number back).
 */
export async function nextNumber(tx: Db, issuerId: string, kind: "invoice" | "creditNote", year: number) {
  const [row] = await queryRows<{ last_number: string | number }>(
    tx,
    sql`insert into ${documentSeries} (issuer_id, kind, year, last_number) values (${issuerId}, ${kind}, ${year}, 1)
        on conflict (issuer_id, kind, year) do update set last_number = ${documentSeries}.last_number + 1
        returning last_number`,
  );
  if (row === undefined) throw new Error(`series ${issuerId}/${kind}/${year} gave no number`);
  return Number(row.last_number);
}

/**
 * The account summary a new invoice prints: the balance after the account's last invoice, the payments (refunds and
 * reversals netted in) and the credits (credit notes, write-offs, fees netted in) written since, all positive when
 * they reduce what is owed. previous − payments − credits + the new invoice = the ledger's balance with it.
 */
export async function accountSummary(tx: Db, billingAccountId: string, decimals: number): Promise<ReceivablesInput> {
  const [row] = await queryRows<{ previous: string; payments: string; credits: string }>(
    tx,
    sql`with entries as (select kind, amount, seq from ${receivableEntries} where billing_account_id = ${billingAccountId}),
             last as (select coalesce(max(seq), 0) as seq from entries where kind = 'invoice')
        select coalesce(sum(amount) filter (where entries.seq <= last.seq), 0)::text as previous,
               coalesce(-sum(amount) filter (where entries.seq > last.seq and kind in ('payment', 'refund', 'reversal')), 0)::text as payments,
               coalesce(-sum(amount) filter (where entries.seq > last.seq and kind not in ('payment', 'refund', 'reversal')), 0)::text as credits
        from entries, last`,
  );
  const text = (value: string | undefined) => MinorAmount.parse(value ?? "0", decimals).toFixed();
  return { previousBalance: text(row?.previous), paymentsSince: text(row?.payments), creditsSince: text(row?.credits) };
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
        where billing_account_id in (${sql.join(
          ids.map((id) => sql`${id}::uuid`),
          sql`, `,
        )}) group by billing_account_id, currency`,
  );
  for (const row of rows) {
    balances.set(row.billing_account_id, {
      amount: MinorAmount.parse(row.balance, currencyMinorUnits(row.currency)),
      currency: row.currency,
    });
  }
  return balances;
}
