import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  bigint,
  bigserial,
  boolean,
  check,
  date,
  foreignKey,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";

/**
 * Issued documents and what the customer owes (DESIGN.md §10 "What an invoice is", "Drafts in parallel, numbers in
 * sequence", "Receivables are a ledger"). An issued invoice or credit note never changes: a trigger refuses any
 * change to its number, dates, amounts and lines (migration 0023); only its state and the fields that follow it
 * (sent, the message that told the subscriber) move, beside them. Its lines are exactly `line_count` (a composite key
 * and a position check) and add up to it (checked at commit).
 */

/** Gapless numbers: one row per issuing entity, document kind and year; `last_number` moves under the row's lock. */
export const documentSeries = pgTable(
  "document_series",
  {
    issuerId: text("issuer_id").notNull(),
    /** invoice | creditNote */
    kind: text("kind").notNull(),
    /** The year of the issue date in the issuing entity's zone. */
    year: integer("year").notNull(),
    lastNumber: bigint("last_number", { mode: "number" }).notNull().default(0),
  },
  (table) => [
    primaryKey({ columns: [table.issuerId, table.kind, table.year] }),
    check("document_series_kind_check", sql`${table.kind} in ('invoice', 'creditNote')`),
    check("document_series_last_check", sql`${table.lastNumber} >= 0`),
  ],
);

export interface TaxSubtotalRow {
  category: string;
  rate: string;
  taxable: string;
  tax: string;
  exemptionReason: string | null;
}

/** An issued invoice (cycle, interim, final) or credit note. */
export const invoices = pgTable(
  "invoices",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** cycle | interim | final | creditNote */
    kind: text("kind").notNull(),
    issuerId: text("issuer_id").notNull(),
    /** The seller's name as it was when the document was issued (EN 16931 BT-27). */
    issuerName: text("issuer_name").notNull(),
    year: integer("year").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    /** The series prefix, year and number: "DE-INV-2027-000042". */
    number: text("number").notNull(),
    /** ISO 11649 structured creditor reference for the payment ("RF…"), what cash application matches. */
    paymentReference: text("payment_reference").notNull(),
    /** A credit note's invoice. */
    creditedInvoiceId: uuid("credited_invoice_id"),
    currency: text("currency").notNull(),
    /** The usage period billed (its key, as rated usage's); null for a credit note. */
    usagePeriod: text("usage_period"),
    periodStart: timestamp("period_start", { withTimezone: true, mode: "date" }),
    periodEnd: timestamp("period_end", { withTimezone: true, mode: "date" }),
    advanceStart: timestamp("advance_start", { withTimezone: true, mode: "date" }),
    advanceEnd: timestamp("advance_end", { withTimezone: true, mode: "date" }),
    issueDate: date("issue_date", { mode: "string" }).notNull(),
    dueDate: date("due_date", { mode: "string" }).notNull(),
    /** The account's zone its issue and due dates are local dates in. */
    timeZone: text("time_zone").notNull(),
    issuedAt: timestamp("issued_at", { withTimezone: true, mode: "date" }).notNull(),
    /** Signed: a credit note's amounts are negative. */
    net: moneyColumn("net").notNull(),
    tax: moneyColumn("tax").notNull(),
    gross: moneyColumn("gross").notNull(),
    /** The account summary printed on it (the ledger before it, payments and credits since the last invoice). */
    previousBalance: moneyColumn("previous_balance").notNull(),
    paymentsSince: moneyColumn("payments_since").notNull(),
    creditsSince: moneyColumn("credits_since").notNull(),
    totalDue: moneyColumn("total_due").notNull(),
    reverseCharge: boolean("reverse_charge").notNull(),
    taxes: jsonb("taxes").$type<TaxSubtotalRow[]>().notNull(),
    notes: jsonb("notes").$type<string[]>().notNull(),
    /** Why it was made: a reason for an on-demand bill or a credit note. */
    reason: text("reason"),
    /** validated | sent | partiallyPaid | settled | onHold: kept beside the document, not part of it. */
    state: text("state").notNull(),
    stateChangedAt: timestamp("state_changed_at", { withTimezone: true, mode: "date" }).notNull(),
    sentAt: timestamp("sent_at", { withTimezone: true, mode: "date" }),
    /** The message that tells the subscriber the bill is ready. */
    messageId: uuid("message_id"),
    /** How many lines it has: each line names it with this count, and the lines are checked at commit. */
    lineCount: integer("line_count").notNull(),
  },
  (table) => [
    uniqueIndex("invoices_id_line_count_idx").on(table.id, table.lineCount),
    uniqueIndex("invoices_number_idx").on(table.number),
    // Bank statements are matched by the payment reference printed on the bill.
    index("invoices_payment_reference_idx").on(table.paymentReference),
    // One cycle invoice per account and usage period, or the final bill that takes its place; interim bills are
    // a kind of their own.
    uniqueIndex("invoices_period_idx")
      .on(table.billingAccountId, table.usagePeriod)
      .where(sql`${table.kind} in ('cycle', 'final')`),
    index("invoices_account_idx").on(table.billingAccountId, table.issuedAt),
    index("invoices_credited_idx").on(table.creditedInvoiceId),
    index("invoices_message_idx").on(table.messageId),
    check("invoices_kind_check", sql`${table.kind} in ('cycle', 'interim', 'final', 'creditNote')`),
    check("invoices_state_check", sql`${table.state} in ('validated', 'sent', 'partiallyPaid', 'settled', 'onHold')`),
    check("invoices_credit_note_check", sql`(${table.kind} = 'creditNote') = (${table.creditedInvoiceId} is not null)`),
    check("invoices_total_check", sql`${table.gross} = ${table.net} + ${table.tax}`),
  ],
);

/** A document's lines, in order; a credit note's lines name the lines they credit. */
export const invoiceLines = pgTable(
  "invoice_lines",
  {
    id: uuid("id").primaryKey(),
    invoiceId: uuid("invoice_id").notNull(),
    /** The invoice's line count: (invoice_id, line_count) references the invoice, and position < line_count. */
    lineCount: integer("line_count").notNull(),
    position: integer("position").notNull(),
    /** What the line is within the account's bills (`recurring:…`, `usage:…`). */
    key: text("key").notNull(),
    /** recurring | oneTime | usage | credit | unused */
    kind: text("kind").notNull(),
    productId: uuid("product_id"),
    priceId: text("price_id"),
    /** The one-time charge it bills: each is billed once. */
    oneTimeChargeId: uuid("one_time_charge_id"),
    /** The usage summary it bills, rows fromSeq…toSeq of it. */
    usageSummaryId: uuid("usage_summary_id"),
    fromSeq: bigint("from_seq", { mode: "number" }),
    toSeq: bigint("to_seq", { mode: "number" }),
    name: text("name").notNull(),
    periodStart: timestamp("period_start", { withTimezone: true, mode: "date" }),
    periodEnd: timestamp("period_end", { withTimezone: true, mode: "date" }),
    days: integer("days"),
    basisDays: integer("basis_days"),
    /** As priced (with tax when tax_included), before promotions; signed. */
    amount: moneyColumn("amount").notNull(),
    discount: moneyColumn("discount").notNull(),
    charge: moneyColumn("charge").notNull(),
    net: moneyColumn("net").notNull(),
    lineTax: moneyColumn("line_tax").notNull(),
    taxIncluded: boolean("tax_included").notNull(),
    taxClass: text("tax_class").notNull(),
    taxCategory: text("tax_category").notNull(),
    taxRate: numeric("tax_rate", { precision: 9, scale: 6 }).notNull(),
    exemptionReason: text("exemption_reason"),
    late: boolean("late").notNull(),
    usage: jsonb("usage").$type<{
      service: string;
      zone: string | null;
      usagePeriod: string;
      quantity: number;
      chargedUnits: number;
    } | null>(),
    promotions: jsonb("promotions").$type<Array<{ id: string; name: string; amount: string }>>().notNull(),
    /** A credit note's line: the invoice line it credits. */
    creditedLineId: uuid("credited_line_id"),
  },
  (table) => [
    // A document has exactly line_count lines, at positions 0…line_count−1: none can be added after it is issued.
    foreignKey({ columns: [table.invoiceId, table.lineCount], foreignColumns: [invoices.id, invoices.lineCount] }),
    uniqueIndex("invoice_lines_position_idx").on(table.invoiceId, table.position),
    check("invoice_lines_position_check", sql`${table.position} >= 0 and ${table.position} < ${table.lineCount}`),
    uniqueIndex("invoice_lines_one_time_charge_idx").on(table.oneTimeChargeId),
    index("invoice_lines_credited_idx").on(table.creditedLineId),
    index("invoice_lines_product_idx").on(table.productId),
  ],
);

/**
 * The receivables ledger: every invoice, credit note, payment, refund, reversal, write-off and fee is a signed entry
 * of a billing account (positive: the customer owes more); the account's balance is their sum. Entries never change.
 */
export const receivableEntries = pgTable(
  "receivable_entries",
  {
    id: uuid("id").primaryKey(),
    /** The order entries were written in (the account summary reads "since the last invoice" by it). */
    seq: bigserial("seq", { mode: "number" }).notNull(),
    billingAccountId: uuid("billing_account_id").notNull(),
    kind: text("kind").notNull(),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    /** The invoice or credit note the entry is. */
    invoiceId: uuid("invoice_id").references(() => invoices.id),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
    description: text("description").notNull(),
  },
  (table) => [
    uniqueIndex("receivable_entries_seq_idx").on(table.seq),
    uniqueIndex("receivable_entries_document_idx").on(table.invoiceId).where(sql`${table.invoiceId} is not null`),
    index("receivable_entries_account_idx").on(table.billingAccountId, table.seq),
    // What cash application reads per batch: the debit entries that are not bills (fees, refunds, reversals).
    index("receivable_entries_debits_idx")
      .on(table.billingAccountId)
      .where(sql`${table.amount} > 0 and ${table.invoiceId} is null`),
    check(
      "receivable_entries_kind_check",
      sql`${table.kind} in ('invoice', 'creditNote', 'payment', 'refund', 'reversal', 'writeOff', 'fee')`,
    ),
  ],
);

/**
 * What settles an open item: an amount of a crediting entry (a credit note's, a payment's) applied to an invoice or
 * to a debit entry of the ledger (a fee, a refund, a payment's reversal). Never more than either side has (a trigger
 * checks both under their rows' locks, migrations 0023 and 0026). Allocations never change; a reversed payment's are
 * undone by allocations of the opposite amount that name the one they undo (`reverses`).
 */
export const allocations = pgTable(
  "allocations",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    invoiceId: uuid("invoice_id").references(() => invoices.id),
    debitEntryId: uuid("debit_entry_id").references(() => receivableEntries.id),
    entryId: uuid("entry_id")
      .notNull()
      .references(() => receivableEntries.id),
    amount: moneyColumn("amount").notNull(),
    /** The allocation this one undoes (its amount is the opposite). */
    reverses: uuid("reverses").references((): AnyPgColumn => allocations.id),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    check(
      "allocations_amount_check",
      sql`${table.amount} <> 0 and (${table.amount} > 0) = (${table.reverses} is null)`,
    ),
    check("allocations_target_check", sql`(${table.invoiceId} is null) <> (${table.debitEntryId} is null)`),
    index("allocations_invoice_idx").on(table.invoiceId),
    index("allocations_debit_idx").on(table.debitEntryId),
    index("allocations_entry_idx").on(table.entryId),
    uniqueIndex("allocations_reverses_idx").on(table.reverses),
  ],
);

/**
 * What is applied so far, per open item (`target`: an invoice or a debit entry) and per crediting entry (`credit`),
 * kept by the allocations trigger in the same statement (migration 0026): the check that no allocation exceeds
 * either side reads one row under its lock instead of summing a growing table, and cash application reads what is
 * open by key.
 */
export const allocationTotals = pgTable(
  "allocation_totals",
  {
    /** target | credit */
    side: text("side").notNull(),
    id: uuid("id").notNull(),
    applied: moneyColumn("applied").notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.side, table.id] }),
    check("allocation_totals_side_check", sql`${table.side} in ('target', 'credit')`),
    check("allocation_totals_applied_check", sql`${table.applied} >= 0`),
  ],
);

/** TMF678 customerBillOnDemand: a request for an interim bill and what came of it. */
export const billRequests = pgTable(
  "bill_requests",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    name: text("name"),
    description: text("description"),
    /** done | rejected (the request is answered in the same call). */
    state: text("state").notNull(),
    invoiceId: uuid("invoice_id").references(() => invoices.id),
    /** Why no bill was made (nothing to bill). */
    reason: text("reason"),
    idempotencyKey: text("idempotency_key"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    index("bill_requests_account_idx").on(table.billingAccountId),
    uniqueIndex("bill_requests_key_idx")
      .on(table.billingAccountId, table.idempotencyKey)
      .where(sql`${table.idempotencyKey} is not null`),
    check("bill_requests_state_check", sql`${table.state} in ('done', 'rejected')`),
  ],
);

/**
 * A bill run (DESIGN.md §10): every account of a cycle day whose usage period ends on `period_end` (a local date,
 * exclusive), or the accounts named, billed once each. One run per cycle day and period end (unique).
 */
export const billRuns = pgTable(
  "bill_runs",
  {
    id: uuid("id").primaryKey(),
    /** cycle (a cycle day and period end) | accounts (named accounts, each its last ended period) */
    kind: text("kind").notNull(),
    billCycleDay: integer("bill_cycle_day"),
    periodEnd: date("period_end", { mode: "string" }),
    /** running | completed (every account invoiced or with nothing to bill) | completedWithFailures */
    state: text("state").notNull(),
    total: integer("total").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "date" }),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("bill_runs_cycle_idx").on(table.billCycleDay, table.periodEnd).where(sql`${table.kind} = 'cycle'`),
    index("bill_runs_state_idx").on(table.state),
    check("bill_runs_kind_check", sql`${table.kind} in ('cycle', 'accounts')`),
    check("bill_runs_state_check", sql`${table.state} in ('running', 'completed', 'completedWithFailures')`),
    check(
      "bill_runs_cycle_check",
      sql`(${table.kind} = 'cycle') = (${table.billCycleDay} is not null and ${table.periodEnd} is not null)`,
    ),
  ],
);

/** One account of a run: claimed in batches (a lease), then invoiced, skipped (nothing to bill) or failed. */
export const billRunItems = pgTable(
  "bill_run_items",
  {
    runId: uuid("run_id")
      .notNull()
      .references(() => billRuns.id),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** The usage period billed: the local date (account's zone) it ends on, and that instant (claimed from then). */
    periodEnd: date("period_end", { mode: "string" }).notNull(),
    dueAt: timestamp("due_at", { withTimezone: true, mode: "date" }).notNull(),
    /** pending | invoiced | nothing | failed */
    state: text("state").notNull(),
    attempts: integer("attempts").notNull().default(0),
    leaseOwner: text("lease_owner"),
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "date" }),
    invoiceId: uuid("invoice_id"),
    amount: moneyColumn("amount"),
    currency: text("currency"),
    code: text("code"),
    reason: text("reason"),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.runId, table.billingAccountId] }),
    index("bill_run_items_pending_idx").on(table.runId, table.state, table.dueAt),
    check("bill_run_items_state_check", sql`${table.state} in ('pending', 'invoiced', 'nothing', 'failed')`),
  ],
);
