import { sql } from "drizzle-orm";
import { boolean, check, index, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";
import { receivableEntries } from "../billing/billing.tables.js";

/**
 * Money in and out of the receivables ledger (DESIGN.md §10 "Receivables are a ledger"): payments, their reversals,
 * refunds, and the ways an account pays. Each payment and refund is one ledger entry (its `entry_id`); what a payment
 * settled is its allocations. A payment never changes but for its status and the reversal that undid it.
 */

/** How a billing account pays: bank transfer, SEPA direct debit (with a mandate), a card token from a provider. */
export const paymentMethods = pgTable(
  "payment_methods",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** bankTransfer | directDebit | card */
    kind: text("kind").notNull(),
    name: text("name"),
    isDefault: boolean("is_default").notNull().default(false),
    /** The payer's account (bank transfer: optional, matched on statements; direct debit: the debited account). */
    iban: text("iban"),
    bic: text("bic"),
    accountHolder: text("account_holder"),
    /** Direct debit: the SEPA mandate reference the debits quote. */
    mandateReference: text("mandate_reference"),
    /** Card: the provider and its token (never a card number), with what may be shown. */
    provider: text("provider"),
    token: text("token"),
    brand: text("brand"),
    lastFour: text("last_four"),
    /** Card expiry, YYYY-MM. */
    expiry: text("expiry"),
    /** active | removed (a removed method stays for the payments that name it). */
    state: text("state").notNull().default("active"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    index("payment_methods_account_idx").on(table.billingAccountId),
    // One default per account.
    uniqueIndex("payment_methods_default_idx")
      .on(table.billingAccountId)
      .where(sql`${table.isDefault} and ${table.state} = 'active'`),
    check("payment_methods_kind_check", sql`${table.kind} in ('bankTransfer', 'directDebit', 'card')`),
    check("payment_methods_state_check", sql`${table.state} in ('active', 'removed')`),
    check("payment_methods_debit_check", sql`${table.kind} <> 'directDebit' or ${table.iban} is not null`),
    check(
      "payment_methods_card_check",
      sql`${table.kind} <> 'card' or (${table.provider} is not null and ${table.token} is not null)`,
    ),
  ],
);

/** A payment received: one ledger entry (negative: it reduces what is owed), allocated to open items. */
export const payments = pgTable(
  "payments",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** Its ledger entry; none while it is pending (a direct debit before its collection date moved no money). */
    entryId: uuid("entry_id").references(() => receivableEntries.id),
    /** Positive: what was received. */
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    /** A stored method of the account, or none when the payment names only a kind (a lockbox file's transfer). */
    paymentMethodId: uuid("payment_method_id").references(() => paymentMethods.id),
    /** bankTransfer | directDebit | card | cash | cheque */
    methodKind: text("method_kind").notNull(),
    /** The value date (TMF676 paymentDate). */
    paymentDate: timestamp("payment_date", { withTimezone: true, mode: "date" }).notNull(),
    name: text("name"),
    description: text("description"),
    channel: text("channel"),
    correlatorId: text("correlator_id"),
    authorizationCode: text("authorization_code"),
    /** How its allocations were chosen: items (named bills), reference (found in the description), oldest. */
    matchedBy: text("matched_by").notNull(),
    /** pending (a direct debit not yet collected) | succeeded | reversed */
    status: text("status").notNull(),
    statusDate: timestamp("status_date", { withTimezone: true, mode: "date" }).notNull(),
    /** The reversal (chargeback, returned debit): its entry, reason code and text. */
    reversalEntryId: uuid("reversal_entry_id").references(() => receivableEntries.id),
    reversalReason: text("reversal_reason"),
    reversalNote: text("reversal_note"),
    idempotencyKey: text("idempotency_key"),
    /** A hash of what the first request with the key asked (a reused key with another request is refused). */
    requestHash: text("request_hash"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("payments_entry_idx").on(table.entryId),
    // A payment is its ledger entry: one id for both.
    check("payments_id_check", sql`${table.entryId} is null or ${table.id} = ${table.entryId}`),
    check("payments_pending_check", sql`(${table.status} = 'pending') = (${table.entryId} is null)`),
    uniqueIndex("payments_key_idx").on(table.idempotencyKey).where(sql`${table.idempotencyKey} is not null`),
    index("payments_account_idx").on(table.billingAccountId, table.createdAt),
    check("payments_amount_check", sql`${table.amount} > 0`),
    check("payments_status_check", sql`${table.status} in ('pending', 'succeeded', 'reversed')`),
    check(
      "payments_method_check",
      sql`${table.methodKind} in ('bankTransfer', 'directDebit', 'card', 'cash', 'cheque')`,
    ),
    check("payments_matched_check", sql`${table.matchedBy} in ('items', 'reference', 'oldest', 'none')`),
    check(
      "payments_reversal_check",
      sql`(${table.status} = 'reversed') = (${table.reversalEntryId} is not null and ${table.reversalReason} is not null)`,
    ),
  ],
);

/**
 * Money paid back from an account's unapplied credit (never more): one ledger entry (positive), settled by
 * allocations from the credits it draws on. `requested` until finance reports it paid out (an account closed with
 * credit asks for one to its payment method, or for a manual refund when it has none).
 */
export const refunds = pgTable(
  "refunds",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    entryId: uuid("entry_id")
      .notNull()
      .references(() => receivableEntries.id),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    paymentMethodId: uuid("payment_method_id").references(() => paymentMethods.id),
    /** bankTransfer | directDebit | card | cash | cheque; null: no method to pay it to (a manual refund). */
    methodKind: text("method_kind"),
    /** The payment whose credit it pays back first, if one was named. */
    paymentId: uuid("payment_id").references(() => payments.id),
    name: text("name"),
    description: text("description"),
    reason: text("reason"),
    /** requested | completed */
    status: text("status").notNull(),
    statusDate: timestamp("status_date", { withTimezone: true, mode: "date" }).notNull(),
    /** Requested without a method to pay it to: finance pays it by hand. */
    manual: boolean("manual").notNull().default(false),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("refunds_entry_idx").on(table.entryId),
    check("refunds_id_check", sql`${table.id} = ${table.entryId}`),
    uniqueIndex("refunds_key_idx").on(table.idempotencyKey).where(sql`${table.idempotencyKey} is not null`),
    index("refunds_account_idx").on(table.billingAccountId, table.createdAt),
    check("refunds_amount_check", sql`${table.amount} > 0`),
    check("refunds_status_check", sql`${table.status} in ('requested', 'completed')`),
  ],
);
