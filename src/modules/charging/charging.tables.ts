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
 * The network elements that send CDRs, by the name they put in `source`. Each says how its numbers are
 * written (country code, national and international prefixes) and which zone its zone-less times are in
 * (Asterisk), so every number is normalized to E.164 the same way for every element.
 */
export const cdrSources = pgTable(
  "cdr_sources",
  {
    id: text("id").primaryKey(),
    description: text("description"),
    countryCode: text("country_code").notNull(),
    nationalPrefix: text("national_prefix").notNull(),
    internationalPrefix: text("international_prefix").notNull(),
    /** How digits without any prefix are read: already international (3GPP), or national (many PBXs). */
    bareNumbers: text("bare_numbers").notNull().default("international"),
    timeZone: text("time_zone").notNull(),
    status: text("status").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    check("cdr_sources_status_check", sql`${table.status} in ('active', 'disabled')`),
    check("cdr_sources_bare_numbers_check", sql`${table.bareNumbers} in ('international', 'national')`),
    check("cdr_sources_country_code_check", sql`${table.countryCode} ~ '^[1-9][0-9]{0,2}$'`),
  ],
);

/**
 * The idempotency keys of accepted CDRs, narrow and unpartitioned (DESIGN.md §4, step 8): `(source, cdrId)`
 * exists once, with the digest of the record first accepted under it, so a retry is a duplicate and the same
 * id with another payload is a conflict. Usage tables can be partitioned by month without losing this.
 */
export const usageKeys = pgTable(
  "usage_keys",
  {
    source: text("source").notNull(),
    cdrId: text("cdr_id").notNull(),
    usageId: uuid("usage_id").notNull(),
    digest: text("digest").notNull(),
  },
  (table) => [primaryKey({ columns: [table.source, table.cdrId] })],
);

/**
 * Every accepted CDR, normalized (TMF635 usage as received). Guided records carry their line and account;
 * the status is derived from the rows that exist (suspense, later rated usage), never updated in place on the
 * hot path. Per-CDR rows are exempt from the audit log and the outbox (DESIGN.md §4, step 8).
 */
export const usageRecords = pgTable(
  "usage_records",
  {
    id: uuid("id").primaryKey(),
    source: text("source").notNull(),
    cdrId: text("cdr_id").notNull(),
    format: text("format").notNull(),
    /** Null, with `direction` and `startedAt`, only for a record kept as `body` (a usage without characteristics). */
    recordType: text("record_type"),
    servedMsisdn: text("served_msisdn"),
    servedImsi: text("served_imsi"),
    calledNumber: text("called_number"),
    direction: text("direction"),
    visitedNetwork: text("visited_network"),
    ratingGroup: bigint("rating_group", { mode: "number" }),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }),
    duration: integer("duration"),
    volumeUplink: bigint("volume_uplink", { mode: "number" }),
    volumeDownlink: bigint("volume_downlink", { mode: "number" }),
    messages: integer("messages"),
    chargeable: boolean("chargeable").notNull(),
    note: text("note"),
    productId: uuid("product_id"),
    billingAccountId: uuid("billing_account_id"),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull(),
    guidedAt: timestamp("guided_at", { withTimezone: true, mode: "date" }),
    /**
     * A TMF635 usage sent without characteristics, as received: it names no CDR fields, so it is kept in suspense
     * (`missing_characteristics`) with its body, deduplicated on the body's digest, and never guided.
     */
    body: jsonb("body"),
  },
  (table) => [
    check(
      "usage_records_readable_check",
      sql`(${table.body} is null) = (${table.recordType} is not null and ${table.direction} is not null and ${table.startedAt} is not null)`,
    ),
    check("usage_records_type_check", sql`${table.recordType} in ('voice', 'sms', 'data')`),
    check("usage_records_format_check", sql`${table.format} in ('native', 'tmf635', 'freeswitch', 'asterisk')`),
    check("usage_records_direction_check", sql`${table.direction} in ('outgoing', 'incoming')`),
    check("usage_records_guided_check", sql`(${table.productId} is null) = (${table.billingAccountId} is null)`),
    index("usage_records_account_idx").on(table.billingAccountId, table.startedAt),
    index("usage_records_product_idx").on(table.productId, table.startedAt),
    index("usage_records_received_idx").on(table.receivedAt),
  ],
);

/**
 * CDRs that could not be guided or rated, with the reason (DESIGN.md §4, step 5). A row stays after it is
 * resolved (re-guided), so the record keeps its history; the open ones are what operations works through.
 */
export const usageSuspense = pgTable(
  "usage_suspense",
  {
    usageId: uuid("usage_id").primaryKey(),
    reason: text("reason").notNull(),
    message: text("message").notNull(),
    since: timestamp("since", { withTimezone: true, mode: "date" }).notNull(),
    attempts: integer("attempts").notNull(),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true, mode: "date" }).notNull(),
    resolvedAt: timestamp("resolved_at", { withTimezone: true, mode: "date" }),
    resolution: text("resolution"),
  },
  (table) => [
    check("usage_suspense_resolution_check", sql`(${table.resolvedAt} is null) = (${table.resolution} is null)`),
    index("usage_suspense_open_idx").on(table.reason, table.usageId).where(sql`${table.resolvedAt} is null`),
  ],
);

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
     * The summary this row is counted in and its sequence number there (1, 2, …), set by the transaction that
     * inserts the row; billed when `seq` is at most the summary's `billed_seq` (never updated row by row).
     */
    summaryId: uuid("summary_id"),
    seq: bigint("seq", { mode: "number" }),
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
export type CdrSourceRow = typeof cdrSources.$inferSelect;
export type UsageRow = typeof usageRecords.$inferSelect;
export type SuspenseRow = typeof usageSuspense.$inferSelect;
