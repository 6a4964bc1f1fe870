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
  uuid,
} from "drizzle-orm/pg-core";

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

export type CdrSourceRow = typeof cdrSources.$inferSelect;
export type UsageRow = typeof usageRecords.$inferSelect;
export type SuspenseRow = typeof usageSuspense.$inferSelect;
