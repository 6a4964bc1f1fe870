import { sql } from "drizzle-orm";
import {
  boolean,
  check,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";
import { payments } from "./payments.tables.js";

/**
 * The banks' own files (DESIGN.md §10 "Bank formats are the real ones"): SEPA direct debit mandates, the pain.008
 * files built from them and each debit in them, and the camt.053 statements read back with every entry's outcome.
 */

/** A SEPA direct debit mandate (EPC SDD Core rulebook): the debtor's signed permission to collect from an IBAN. */
export const mandates = pgTable(
  "mandates",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** The unique mandate reference (UMR) the debits quote: at most 35 characters of the SEPA character set. */
    reference: text("reference").notNull(),
    signatureDate: date("signature_date", { mode: "string" }).notNull(),
    debtorName: text("debtor_name").notNull(),
    iban: text("iban").notNull(),
    bic: text("bic"),
    /** first: its next debit is a FRST; recurring: RCUR. */
    sequence: text("sequence").notNull(),
    /** active | lapsed (unused for 36 months) | revoked */
    status: text("status").notNull(),
    statusDate: timestamp("status_date", { withTimezone: true, mode: "date" }).notNull(),
    /** The collection date of its latest debit: 36 months after it (or the signature) the mandate lapses. */
    lastCollectionDate: date("last_collection_date", { mode: "string" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("mandates_reference_idx").on(table.reference),
    index("mandates_account_idx").on(table.billingAccountId),
    index("mandates_iban_idx").on(table.iban),
    check("mandates_sequence_check", sql`${table.sequence} in ('first', 'recurring')`),
    check("mandates_status_check", sql`${table.status} in ('active', 'lapsed', 'revoked')`),
  ],
);

/** One pain.008 file as built: stored with its hash so every download is the same bytes. */
export const directDebitFiles = pgTable(
  "direct_debit_files",
  {
    id: uuid("id").primaryKey(),
    /** GrpHdr/MsgId. */
    messageId: text("message_id").notNull(),
    collectionDate: date("collection_date", { mode: "string" }).notNull(),
    transactions: integer("transactions").notNull(),
    controlSum: moneyColumn("control_sum").notNull(),
    /** What was left out and why (a lapsed mandate, an issuer without a creditor identifier…). */
    skipped: jsonb("skipped").notNull(),
    xml: text("xml").notNull(),
    sha256: text("sha256").notNull(),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("direct_debit_files_message_idx").on(table.messageId),
    uniqueIndex("direct_debit_files_key_idx").on(table.idempotencyKey).where(sql`${table.idempotencyKey} is not null`),
  ],
);

/** One debit of a file: a pending payment (its id) for one bill, settled at the collection date or returned. */
export const directDebits = pgTable(
  "direct_debits",
  {
    id: uuid("id")
      .primaryKey()
      .references(() => payments.id),
    fileId: uuid("file_id")
      .notNull()
      .references(() => directDebitFiles.id),
    mandateId: uuid("mandate_id")
      .notNull()
      .references(() => mandates.id),
    billingAccountId: uuid("billing_account_id").notNull(),
    invoiceId: uuid("invoice_id").notNull(),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    /** FRST | RCUR */
    sequenceType: text("sequence_type").notNull(),
    collectionDate: date("collection_date", { mode: "string" }).notNull(),
    /** PmtId/EndToEndId: the payment id's 32 hex digits (a return quotes it). */
    endToEndId: text("end_to_end_id").notNull(),
    /** pending | collected | returned */
    status: text("status").notNull(),
    statusDate: timestamp("status_date", { withTimezone: true, mode: "date" }).notNull(),
    returnReason: text("return_reason"),
  },
  (table) => [
    uniqueIndex("direct_debits_e2e_idx").on(table.endToEndId),
    // A bill is in at most one debit not yet collected or returned.
    uniqueIndex("direct_debits_pending_idx").on(table.invoiceId).where(sql`${table.status} = 'pending'`),
    index("direct_debits_due_idx").on(table.collectionDate).where(sql`${table.status} = 'pending'`),
    check("direct_debits_sequence_check", sql`${table.sequenceType} in ('FRST', 'RCUR')`),
    check("direct_debits_status_check", sql`${table.status} in ('pending', 'collected', 'returned')`),
    check("direct_debits_amount_check", sql`${table.amount} > 0`),
  ],
);

/** A camt.053 statement as received: entries staged while the file streams in, applied once it parsed whole. */
export const bankStatements = pgTable(
  "bank_statements",
  {
    id: uuid("id").primaryKey(),
    /** Stmt/Id and the account it is of (IBAN, else the bank's other identifier). */
    statementRef: text("statement_ref"),
    account: text("account"),
    messageId: text("message_id"),
    /**
     * receiving (streaming in) | staged (read whole, being applied) | applied | rejected (a file that did not read
     * whole: nothing of it applied)
     */
    status: text("status").notNull(),
    entries: integer("entries").notNull().default(0),
    error: text("error"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    completedAt: timestamp("completed_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    check("bank_statements_status_check", sql`${table.status} in ('receiving', 'staged', 'applied', 'rejected')`),
  ],
);

/** One credit or debit of a statement (a batch booking's transactions each their own) and what became of it. */
export const statementEntries = pgTable(
  "statement_entries",
  {
    id: uuid("id").primaryKey(),
    statementId: uuid("statement_id")
      .notNull()
      .references(() => bankStatements.id),
    /** Its position in the file. */
    seq: integer("seq").notNull(),
    account: text("account").notNull(),
    /** The bank's own reference (AcctSvcrRef, else NtryRef): the key an entry is deduplicated by. */
    bankRef: text("bank_ref").notNull(),
    /** An earlier entry with the same bank reference: this one is a duplicate and applies nothing. */
    duplicateOf: uuid("duplicate_of"),
    /** CRDT | DBIT */
    direction: text("direction").notNull(),
    /** RvslInd: the bank reversed an earlier booking. */
    reversal: boolean("reversal").notNull().default(false),
    /** BOOK, PDNG, INFO… (only booked entries apply). */
    bookingStatus: text("booking_status").notNull(),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    bookingDate: date("booking_date", { mode: "string" }),
    valueDate: date("value_date", { mode: "string" }),
    debtorName: text("debtor_name"),
    debtorIban: text("debtor_iban"),
    /** Unstructured remittance lines, joined. */
    remittance: text("remittance"),
    /** A structured creditor reference (RF…), where the payer gave one. */
    creditorRef: text("creditor_ref"),
    endToEndId: text("end_to_end_id"),
    /** A return's reason code (RtrInf/Rsn/Cd). */
    returnReason: text("return_reason"),
    /** Bank transaction code Domain/Family/SubFamily, e.g. PMNT/IDDT/UPDD for a returned direct debit. */
    bankCode: text("bank_code"),
    /** staged | matched | collected | returned | unmatched | ambiguous | assigned | ignored | duplicate */
    outcome: text("outcome").notNull(),
    /** Why: how it matched, or what stopped it. */
    detail: text("detail"),
    matchedBy: text("matched_by"),
    paymentId: uuid("payment_id"),
    billingAccountId: uuid("billing_account_id"),
    /** Ambiguous: the accounts it could belong to. */
    candidates: jsonb("candidates"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    resolvedAt: timestamp("resolved_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    // Importing a statement twice applies nothing twice: one live entry per bank reference of an account.
    uniqueIndex("statement_entries_ref_idx").on(table.account, table.bankRef).where(sql`${table.duplicateOf} is null`),
    uniqueIndex("statement_entries_seq_idx").on(table.statementId, table.seq),
    index("statement_entries_worklist_idx")
      .on(table.createdAt)
      .where(sql`${table.outcome} in ('unmatched', 'ambiguous')`),
    check("statement_entries_direction_check", sql`${table.direction} in ('CRDT', 'DBIT')`),
    check(
      "statement_entries_outcome_check",
      sql`${table.outcome} in ('staged', 'matched', 'collected', 'returned', 'unmatched', 'ambiguous', 'assigned', 'ignored', 'duplicate')`,
    ),
    check("statement_entries_amount_check", sql`${table.amount} > 0`),
  ],
);
