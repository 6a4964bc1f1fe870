import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";

/**
 * Allowance buckets: one per line, product (plan or add-on), allowance and period, granted when the line
 * activates and when a new period starts. What is used lives in the charging store and in the draws of the
 * rated rows; the grant is here.
 */
export const allowanceBuckets = pgTable(
  "allowance_buckets",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    productId: uuid("product_id").notNull(),
    sourceProductId: uuid("source_product_id").notNull(),
    offeringId: text("offering_id").notNull(),
    allowanceId: text("allowance_id").notNull(),
    service: text("service").notNull(),
    destinations: jsonb("destinations").$type<string[] | null>(),
    roaming: jsonb("roaming").$type<string[] | null>(),
    granted: bigint("granted", { mode: "number" }).notNull(),
    periodStart: timestamp("period_start", { withTimezone: true, mode: "date" }).notNull(),
    periodEnd: timestamp("period_end", { withTimezone: true, mode: "date" }).notNull(),
    /** One bucket for every line of the account (TMF654 isShared); `productId` is then the account's id. */
    shared: boolean("shared").notNull().default(false),
    /** A rollover bucket: the unused units of this bucket, carried into the next period. */
    rolledFrom: uuid("rolled_from"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    // One bucket per line (or account, when shared), offering, allowance and period; one rollover per bucket.
    uniqueIndex("allowance_buckets_period_idx")
      .on(table.productId, table.sourceProductId, table.offeringId, table.allowanceId, table.periodStart)
      .where(sql`${table.rolledFrom} is null and not ${table.shared}`),
    uniqueIndex("allowance_buckets_shared_idx")
      .on(table.productId, table.offeringId, table.allowanceId, table.periodStart)
      .where(sql`${table.rolledFrom} is null and ${table.shared}`),
    uniqueIndex("allowance_buckets_rollover_idx").on(table.rolledFrom).where(sql`${table.rolledFrom} is not null`),
    index("allowance_buckets_line_idx").on(table.productId, table.periodStart),
    index("allowance_buckets_end_idx").on(table.periodEnd),
    check("allowance_buckets_period_check", sql`${table.periodEnd} > ${table.periodStart}`),
    check("allowance_buckets_granted_check", sql`${table.granted} > 0`),
  ],
);

/**
 * The ledger row of a charge (DESIGN.md §2): one per rated CDR, written in one idempotent batch after the
 * charging step. The amount is the event's total, rounded once; draws say which buckets covered what.
 */
export const ratedUsage = pgTable(
  "rated_usage",
  {
    usageId: uuid("usage_id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    productId: uuid("product_id").notNull(),
    ratedAt: timestamp("rated_at", { withTimezone: true, mode: "date" }).notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull(),
    tariffId: text("tariff_id").notNull(),
    tariffVersion: integer("tariff_version").notNull(),
    recordType: text("record_type").notNull(),
    destination: text("destination"),
    roaming: text("roaming").notNull(),
    quantity: bigint("quantity", { mode: "number" }).notNull(),
    allowanceUnits: bigint("allowance_units", { mode: "number" }).notNull(),
    chargedUnits: bigint("charged_units", { mode: "number" }).notNull(),
    draws: jsonb("draws").$type<Array<{ bucketId: string; units: number }>>().notNull(),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    prepaid: boolean("prepaid").notNull(),
    spendPeriod: text("spend_period").notNull(),
    /**
     * The summary this row is counted in and its sequence number there (1, 2, …), written with the row by the
     * statement that inserts it; billed when `seq` is at most the summary's `billed_seq` (never updated row by row).
     */
    summaryId: uuid("summary_id").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
  },
  (table) => [
    check("rated_usage_amount_check", sql`${table.amount} >= 0`),
    index("rated_usage_account_idx").on(table.billingAccountId, table.spendPeriod),
    index("rated_usage_product_idx").on(table.productId, table.startedAt),
    uniqueIndex("rated_usage_summary_seq_idx").on(table.summaryId, table.seq),
  ],
);

/**
 * What billing reads of rated usage (DESIGN.md §10): one row per (account, usage period, line, service,
 * destination zone), upserted by the rating transaction with the totals of its rated rows, which it numbers
 * 1…`last_seq`. An invoice records the highest number it billed (`billed_seq`); rows rated after it (late CDRs)
 * have higher numbers and are the difference. Prepaid lines are summarised too (revenue reports), flagged.
 */
export const usageSummaries = pgTable(
  "usage_summaries",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id").notNull(),
    /** The bill period the usage counts in (its key, as rated rows' `spend_period`). */
    usagePeriod: text("usage_period").notNull(),
    productId: uuid("product_id").notNull(),
    service: text("service").notNull(),
    /** The destination zone the tariff rated to; empty when the tariff names none. */
    zone: text("zone").notNull(),
    prepaid: boolean("prepaid").notNull(),
    currency: text("currency").notNull(),
    quantity: bigint("quantity", { mode: "number" }).notNull(),
    chargedUnits: bigint("charged_units", { mode: "number" }).notNull(),
    amount: moneyColumn("amount").notNull(),
    lastSeq: bigint("last_seq", { mode: "number" }).notNull(),
    billedSeq: bigint("billed_seq", { mode: "number" }).notNull().default(0),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("usage_summaries_key_idx").on(
      table.billingAccountId,
      table.usagePeriod,
      table.productId,
      table.service,
      table.zone,
    ),
    check("usage_summaries_billed_check", sql`${table.billedSeq} between 0 and ${table.lastSeq}`),
  ],
);

/**
 * Top-ups, adjustments and allowance moves: the ledger rows of money and units that are not a charge. Amounts are signed (a debit
 * adjustment is negative); a bucket adjustment moves units, not money. The key makes a retried request apply once.
 */
export const balanceOperations = pgTable(
  "balance_operations",
  {
    id: uuid("id").primaryKey(),
    kind: text("kind").notNull(),
    billingAccountId: uuid("billing_account_id").notNull(),
    productId: uuid("product_id"),
    bucketId: uuid("bucket_id"),
    amount: moneyColumn("amount"),
    units: bigint("units", { mode: "number" }),
    currency: text("currency").notNull(),
    reason: text("reason"),
    idempotencyKey: text("idempotency_key").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    // allowance: a line's share of a shared bucket; rollover: units carried out of a bucket into its rollover.
    check("balance_operations_kind_check", sql`${table.kind} in ('topup', 'adjustment', 'allowance', 'rollover')`),
    check("balance_operations_what_check", sql`(${table.amount} is null) <> (${table.units} is null)`),
    uniqueIndex("balance_operations_key_idx").on(table.billingAccountId, table.idempotencyKey),
    index("balance_operations_product_idx").on(table.productId),
  ],
);

/** Alert thresholds (DESIGN.md §5): what the charging step watches for every account, line and bucket. */
export const chargingThresholds = pgTable(
  "charging_thresholds",
  {
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    /** Percent for bill_limit_percent and allowance_percent; an amount for spend_amount and low_balance. */
    value: moneyColumn("value").notNull(),
    /** Amount thresholds apply to accounts in this currency. */
    currency: text("currency"),
  },
  (table) => [
    check(
      "charging_thresholds_kind_check",
      sql`${table.kind} in ('bill_limit_percent', 'spend_amount', 'allowance_percent', 'low_balance')`,
    ),
    check(
      "charging_thresholds_currency_check",
      sql`(${table.kind} in ('spend_amount', 'low_balance')) = (${table.currency} is not null)`,
    ),
  ],
);

/**
 * Each threshold crossed, with the event that crossed it. A key names a threshold and its period; it is
 * crossed once, except balance keys (re-armed by a top-up) and credit-limit keys (re-armed by a credit), which may
 * cross again with another event.
 */
export const thresholdCrossings = pgTable(
  "threshold_crossings",
  {
    key: text("key").notNull(),
    kind: text("kind").notNull(),
    billingAccountId: uuid("billing_account_id").notNull(),
    productId: uuid("product_id"),
    usageId: uuid("usage_id").notNull(),
    /** The metric after the crossing event: micro-units of money, or units of a bucket. */
    value: text("value").notNull(),
    crossedAt: timestamp("crossed_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.key, table.usageId] }),
    uniqueIndex("threshold_crossings_once_idx")
      .on(table.key)
      .where(sql`${table.kind} not in ('low-balance', 'balance-exhausted', 'credit-limit')`),
    index("threshold_crossings_account_idx").on(table.billingAccountId, table.crossedAt),
  ],
);

export type BucketRow = typeof allowanceBuckets.$inferSelect;
export type RatedRow = typeof ratedUsage.$inferSelect;
export type SummaryRow = typeof usageSummaries.$inferSelect;
