import { and, eq, inArray, sql } from "drizzle-orm";
import { type Db, queryRows } from "../../platform/database.js";
import { uuidList } from "../../platform/sql.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId, newId } from "../../shared/ids.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { allocations, allocationTotals, invoices, receivableEntries } from "./billing.tables.js";

/**
 * Cash application (DESIGN.md §10 "Receivables are a ledger"): which open items a crediting entry (a payment, a
 * credit note's remainder) settles, and in what order. The order is the law's where the payer did not say: BGB § 367
 * applies a payment to costs before the principal, so fees (reminder fees, entries of their own) come before bills;
 * bills oldest first (due date, then the order they were written), a bill on hold (disputed) only when named. What
 * is left stays as the account's unapplied credit and is used first on the next bill. The planning is pure; the
 * reads and writes around it are set-based (a batch of accounts per statement).
 */

/**
 * Something the account owes: an invoice (not a credit note) or a debit entry of the ledger that is not an invoice:
 * a fee (a cost, settled first), or a refund or reversal left open when the payment behind it was undone.
 */
export interface OpenItem {
  kind: "invoice" | "entry";
  /** A fee: a cost, which BGB § 367 settles before the principal. */
  cost: boolean;
  /** The invoice's id, or the entry's. */
  id: string;
  billingAccountId: string;
  currency: string;
  /** What is still open, in minor units; planning lowers it. */
  open: MinorAmount;
  dueDate: string;
  seq: number;
  number: string | null;
  paymentReference: string | null;
  onHold: boolean;
}

/** A crediting entry with money left to apply. */
export interface Credit {
  entryId: string;
  billingAccountId: string;
  available: MinorAmount;
  seq: number;
}

export interface PlannedAllocation {
  entryId: string;
  billingAccountId: string;
  kind: "invoice" | "entry";
  targetId: string;
  amount: MinorAmount;
}

/** The order open items are settled in when the payer named none: fees first (BGB § 367), then bills oldest first. */
export function defaultOrder(items: readonly OpenItem[]): OpenItem[] {
  return items
    .filter((item) => !item.onHold && item.open.isPositive())
    .sort((a, b) => Number(b.cost) - Number(a.cost) || a.dueDate.localeCompare(b.dueDate) || a.seq - b.seq);
}

/**
 * Applies as much of a credit as `items` (in that order) have open, each at most `caps` of its id when given;
 * lowers the items' open amounts and the credit's available amount. Pure but for those two.
 */
export function applyCredit(
  credit: Credit,
  items: readonly OpenItem[],
  caps?: ReadonlyMap<string, MinorAmount>,
): PlannedAllocation[] {
  const planned: PlannedAllocation[] = [];
  for (const item of items) {
    if (!credit.available.isPositive()) break;
    let amount = item.open.lt(credit.available) ? item.open : credit.available;
    const cap = caps?.get(item.id);
    if (cap?.lt(amount)) amount = cap;
    if (!amount.isPositive()) continue;
    item.open = item.open.minus(amount);
    credit.available = credit.available.minus(amount);
    planned.push({
      entryId: credit.entryId,
      billingAccountId: credit.billingAccountId,
      kind: item.kind,
      targetId: item.id,
      amount,
    });
  }
  return planned;
}

/**
 * The open items whose bill number or payment reference a payer's text quotes (a transfer's remittance line):
 * compared without spaces and case, in the order they are quoted.
 */
export function quotedItems(text: string, items: readonly OpenItem[]): OpenItem[] {
  const haystack = text.replace(/\s+/g, "").toUpperCase();
  if (haystack.length === 0) return [];
  return items
    .flatMap((item) => {
      const positions = [item.number, item.paymentReference]
        .filter((needle): needle is string => needle !== null && needle.length > 0)
        .map((needle) => haystack.indexOf(needle.replace(/\s+/g, "").toUpperCase()))
        .filter((position) => position >= 0);
      return positions.length === 0 ? [] : [{ item, position: Math.min(...positions) }];
    })
    .sort((a, b) => a.position - b.position)
    .map((found) => found.item);
}

/** The open items of accounts (invoices and debit entries with something open), per account. */
export async function openItemsOf(tx: Db, billingAccountIds: readonly string[]): Promise<Map<string, OpenItem[]>> {
  const ids = [...new Set(billingAccountIds)].filter(isId);
  const byAccount = new Map<string, OpenItem[]>();
  if (ids.length === 0) return byAccount;
  const rows = await queryRows<{
    kind: "invoice" | "entry";
    cost: boolean;
    id: string;
    billing_account_id: string;
    currency: string;
    open: string;
    due_date: string;
    seq: string | number;
    number: string | null;
    payment_reference: string | null;
    on_hold: boolean;
  }>(
    tx,
    sql`select 'invoice' as kind, false as cost, i.id, i.billing_account_id, i.currency,
          (i.gross - coalesce(t.applied, 0))::text as open,
          i.due_date::text as due_date, e.seq, i.number, i.payment_reference, i.state = 'onHold' as on_hold
        from ${invoices} i join ${receivableEntries} e on e.invoice_id = i.id
        left join ${allocationTotals} t on t.side = 'target' and t.id = i.id
        where i.billing_account_id in (${uuidList(ids)}) and i.kind <> 'creditNote'
        union all
        select 'entry', e.kind = 'fee', e.id, e.billing_account_id, e.currency,
          (e.amount - coalesce(t.applied, 0))::text,
          (e.at at time zone 'UTC')::date::text, e.seq, null, null, false
        from ${receivableEntries} e left join ${allocationTotals} t on t.side = 'target' and t.id = e.id
        where e.billing_account_id in (${uuidList(ids)}) and e.amount > 0 and e.invoice_id is null`,
  );
  for (const row of rows) {
    const open = MinorAmount.parse(row.open, currencyMinorUnits(row.currency));
    if (!open.isPositive()) continue;
    const list = byAccount.get(row.billing_account_id) ?? [];
    list.push({
      kind: row.kind,
      cost: row.cost,
      id: row.id,
      billingAccountId: row.billing_account_id,
      currency: row.currency,
      open,
      dueDate: row.due_date,
      seq: Number(row.seq),
      number: row.number,
      paymentReference: row.payment_reference,
      onHold: row.on_hold,
    });
    byAccount.set(row.billing_account_id, list);
  }
  return byAccount;
}

/** The crediting entries of accounts with money left to apply (unapplied credit), oldest first, per account. */
export async function creditsOf(tx: Db, billingAccountIds: readonly string[]): Promise<Map<string, Credit[]>> {
  const ids = [...new Set(billingAccountIds)].filter(isId);
  const byAccount = new Map<string, Credit[]>();
  if (ids.length === 0) return byAccount;
  const rows = await queryRows<{
    id: string;
    billing_account_id: string;
    currency: string;
    available: string;
    seq: string | number;
  }>(
    tx,
    sql`select id, billing_account_id, currency, available::text as available, seq from (
          select e.id, e.billing_account_id, e.currency, e.seq,
            -e.amount - coalesce(t.applied, 0) as available
          from ${receivableEntries} e left join ${allocationTotals} t on t.side = 'credit' and t.id = e.id
          where e.billing_account_id in (${uuidList(ids)}) and e.amount < 0) credits
        where available > 0 order by seq`,
  );
  for (const row of rows) {
    const list = byAccount.get(row.billing_account_id) ?? [];
    list.push({
      entryId: row.id,
      billingAccountId: row.billing_account_id,
      available: MinorAmount.parse(row.available, currencyMinorUnits(row.currency)),
      seq: Number(row.seq),
    });
    byAccount.set(row.billing_account_id, list);
  }
  return byAccount;
}

/** Writes planned allocations in one statement (the database checks each against both sides). */
export async function writeAllocations(tx: Db, planned: readonly PlannedAllocation[], at: Date): Promise<void> {
  if (planned.length === 0) return;
  const stamp = at.getTime();
  for (let start = 0; start < planned.length; start += 2000) {
    await tx.insert(allocations).values(
      planned.slice(start, start + 2000).map((allocation) => ({
        id: newId(stamp),
        billingAccountId: allocation.billingAccountId,
        invoiceId: allocation.kind === "invoice" ? allocation.targetId : null,
        debitEntryId: allocation.kind === "entry" ? allocation.targetId : null,
        entryId: allocation.entryId,
        amount: allocation.amount.toMoney(),
        at,
      })),
    );
  }
}

/**
 * Uses the accounts' unapplied credit on what they owe (after a bill is issued, a fee charged, a payment reversed):
 * oldest credit first, in the default order. Answers the allocations written (their invoices' states follow).
 */
export async function applyUnappliedCredit(
  tx: Db,
  billingAccountIds: readonly string[],
  at: Date,
): Promise<PlannedAllocation[]> {
  const credits = await creditsOf(tx, billingAccountIds);
  if (credits.size === 0) return [];
  const items = await openItemsOf(tx, [...credits.keys()]);
  const planned: PlannedAllocation[] = [];
  for (const [accountId, accountCredits] of credits) {
    const ordered = defaultOrder(items.get(accountId) ?? []);
    if (ordered.length === 0) continue;
    for (const credit of accountCredits) planned.push(...applyCredit(credit, ordered));
  }
  await writeAllocations(tx, planned, at);
  return planned;
}

/** The invoices planned allocations touched (their states follow from what is applied). */
export function invoicesTouched(planned: readonly PlannedAllocation[]): string[] {
  return [...new Set(planned.filter((item) => item.kind === "invoice").map((item) => item.targetId))];
}

/** A new entry of the ledger (a payment, a refund, a reversal, a fee): signed, positive when it is owed. */
export interface NewEntry {
  id: string;
  billingAccountId: string;
  kind: "payment" | "refund" | "reversal" | "fee" | "writeOff";
  amount: MinorAmount;
  currency: string;
  at: Date;
  description: string;
}

/** Writes ledger entries in multi-row statements. */
export async function writeEntries(tx: Db, entries: readonly NewEntry[]): Promise<void> {
  for (let start = 0; start < entries.length; start += 2000) {
    await tx.insert(receivableEntries).values(
      entries.slice(start, start + 2000).map((entry) => ({
        id: entry.id,
        billingAccountId: entry.billingAccountId,
        kind: entry.kind,
        amount: entry.amount.toMoney(),
        currency: entry.currency,
        invoiceId: null,
        at: entry.at,
        description: entry.description.slice(0, 500),
      })),
    );
  }
}

/** Bills by id: their account and kind (a payment names bills; credit notes are not paid). */
export async function billsOf(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, { id: string; billingAccountId: string; kind: string }>> {
  const wanted = [...new Set(ids)].filter(isId);
  if (wanted.length === 0) return new Map();
  const rows = await db
    .select({ id: invoices.id, billingAccountId: invoices.billingAccountId, kind: invoices.kind })
    .from(invoices)
    .where(inArray(invoices.id, wanted));
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * Undoes every standing allocation of a crediting entry (a reversed payment's) by allocations of the opposite
 * amount that name them; answers the invoices they had paid (their states follow).
 */
export async function undoAllocations(tx: Db, entryId: string, at: Date): Promise<string[]> {
  const standing = await tx
    .select()
    .from(allocations)
    .where(
      and(
        eq(allocations.entryId, entryId),
        sql`${allocations.reverses} is null`,
        sql`not exists (select 1 from ${allocations} undo where undo.reverses = ${allocations.id})`,
      ),
    );
  if (standing.length === 0) return [];
  await tx.insert(allocations).values(
    standing.map((allocation) => ({
      id: newId(at.getTime()),
      billingAccountId: allocation.billingAccountId,
      invoiceId: allocation.invoiceId,
      debitEntryId: allocation.debitEntryId,
      entryId: allocation.entryId,
      amount: allocation.amount.negated(),
      reverses: allocation.id,
      at,
    })),
  );
  return standing.flatMap((allocation) => (allocation.invoiceId === null ? [] : [allocation.invoiceId]));
}

/** What crediting entries stand applied to, net of undone allocations: per entry, each bill or debit entry. */
export async function standingAllocations(
  db: Db,
  entryIds: readonly string[],
): Promise<
  Map<
    string,
    Array<{
      invoiceId: string | null;
      number: string | null;
      debitEntryId: string | null;
      debitKind: string | null;
      amount: string;
    }>
  >
> {
  const ids = [...new Set(entryIds)].filter(isId);
  const byEntry = new Map<
    string,
    Array<{
      invoiceId: string | null;
      number: string | null;
      debitEntryId: string | null;
      debitKind: string | null;
      amount: string;
    }>
  >();
  if (ids.length === 0) return byEntry;
  const rows = await queryRows<{
    entry_id: string;
    invoice_id: string | null;
    debit_entry_id: string | null;
    amount: string;
    number: string | null;
    debit_kind: string | null;
  }>(
    db,
    sql`select a.entry_id, a.invoice_id, a.debit_entry_id, sum(a.amount)::text as amount, i.number,
          d.kind as debit_kind
        from ${allocations} a
        left join ${invoices} i on i.id = a.invoice_id
        left join ${receivableEntries} d on d.id = a.debit_entry_id
        where a.entry_id in (${uuidList(ids)})
        group by a.entry_id, a.invoice_id, a.debit_entry_id, i.number, d.kind
        having sum(a.amount) <> 0
        order by min(a.at), a.entry_id`,
  );
  for (const row of rows) {
    const list = byEntry.get(row.entry_id) ?? [];
    list.push({
      invoiceId: row.invoice_id,
      number: row.number,
      debitEntryId: row.debit_entry_id,
      debitKind: row.debit_kind,
      amount: row.amount,
    });
    byEntry.set(row.entry_id, list);
  }
  return byEntry;
}

/** An open bill as a collection (a direct debit file) sees it. */
export interface CollectibleBill {
  id: string;
  billingAccountId: string;
  number: string;
  paymentReference: string;
  issuerId: string;
  /** What is still open, decimal text. */
  open: string;
}

/** Bills (not credit notes, not on hold) in `currency` due by `dueBy` with something still open, oldest first. */
export async function openBillsDueBy(db: Db, dueBy: string, currency: string): Promise<CollectibleBill[]> {
  const rows = await queryRows<{
    id: string;
    billing_account_id: string;
    number: string;
    payment_reference: string;
    issuer_id: string;
    open: string;
  }>(
    db,
    sql`select i.id, i.billing_account_id, i.number, i.payment_reference, i.issuer_id,
          (i.gross - coalesce(t.applied, 0))::text as open
        from ${invoices} i left join ${allocationTotals} t on t.side = 'target' and t.id = i.id
        where i.kind <> 'creditNote' and i.state <> 'onHold' and i.currency = ${currency}
          and i.due_date <= ${dueBy}::date and i.gross - coalesce(t.applied, 0) > 0
        order by i.due_date, i.id`,
  );
  return rows.map((row) => ({
    id: row.id,
    billingAccountId: row.billing_account_id,
    number: row.number,
    paymentReference: row.payment_reference,
    issuerId: row.issuer_id,
    open: row.open,
  }));
}

/** A bill a remittance text may name. */
export interface QuotedBill {
  id: string;
  billingAccountId: string;
  number: string;
  paymentReference: string;
  currency: string;
}

/** Bills (not credit notes) whose payment reference or number is one of `tokens` (a statement's remittance words). */
export async function billsQuoted(db: Db, tokens: readonly string[]): Promise<QuotedBill[]> {
  const wanted = [...new Set(tokens)].filter((token) => token.length >= 4 && token.length <= 64);
  if (wanted.length === 0) return [];
  const list = JSON.stringify(wanted);
  return (
    db
      .select({
        id: invoices.id,
        billingAccountId: invoices.billingAccountId,
        number: invoices.number,
        paymentReference: invoices.paymentReference,
        currency: invoices.currency,
      })
      .from(invoices)
      // Each side by its own index (an OR of the two would read every bill).
      .where(
        sql`${invoices.kind} <> 'creditNote' and ${invoices.id} in (
        select id from ${invoices} where payment_reference = any(select jsonb_array_elements_text(${list}::jsonb))
        union select id from ${invoices} where number = any(select jsonb_array_elements_text(${list}::jsonb)))`,
      )
  );
}
