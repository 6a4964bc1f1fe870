import { sql } from "drizzle-orm";
import { bigint, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { outboxEvents } from "../../platform/outbox.tables.js";

/** Hub subscriptions (TMF630 `POST {api}/hub`): a callback, an optional filter, a signing secret (sealed). */
export const hubSubscriptions = pgTable(
  "hub_subscriptions",
  {
    id: uuid("id").primaryKey(),
    api: text("api").notNull(),
    callback: text("callback").notNull(),
    query: text("query"),
    sealedSecret: text("sealed_secret").notNull(),
    status: text("status").notNull(),
    parkedReason: text("parked_reason"),
    createdBy: uuid("created_by"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    check("hub_subscriptions_status_check", sql`${table.status} in ('active', 'parked')`),
    index("hub_subscriptions_api_idx").on(table.api),
  ],
);

/** One row per event and subscription: where delivery stands. */
export const hubDeliveries = pgTable(
  "hub_deliveries",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    subscriptionId: uuid("subscription_id")
      .notNull()
      .references(() => hubSubscriptions.id, { onDelete: "cascade" }),
    outboxId: bigint("outbox_id", { mode: "number" })
      .notNull()
      .references(() => outboxEvents.id),
    status: text("status").notNull(),
    attempts: integer("attempts").notNull(),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, mode: "date" }).notNull(),
    lockedUntil: timestamp("locked_until", { withTimezone: true, mode: "date" }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    deliveredAt: timestamp("delivered_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    uniqueIndex("hub_deliveries_once_idx").on(table.subscriptionId, table.outboxId),
    index("hub_deliveries_due_idx").on(table.status, table.nextAttemptAt),
    check("hub_deliveries_status_check", sql`${table.status} in ('pending', 'sending', 'delivered', 'failed')`),
  ],
);

/** The delivery log: every attempt with its outcome. */
export const hubDeliveryAttempts = pgTable(
  "hub_delivery_attempts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: bigint("delivery_id", { mode: "number" })
      .notNull()
      .references(() => hubDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    attemptedAt: timestamp("attempted_at", { withTimezone: true, mode: "date" }).notNull(),
    statusCode: integer("status_code"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
  },
  (table) => [index("hub_delivery_attempts_delivery_idx").on(table.deliveryId)],
);

export type HubSubscriptionRow = typeof hubSubscriptions.$inferSelect;
export type HubDeliveryRow = typeof hubDeliveries.$inferSelect;

/** Every customer-facing message (SMS, e-mail) and what became of it; agents read it per customer. */
export const customerMessages = pgTable(
  "customer_messages",
  {
    id: uuid("id").primaryKey(),
    customerId: uuid("customer_id").notNull(),
    channel: text("channel").notNull(),
    recipient: text("recipient").notNull(),
    subject: text("subject"),
    body: text("body").notNull(),
    reason: text("reason").notNull(),
    status: text("status").notNull(),
    attempts: integer("attempts").notNull(),
    lastError: text("last_error"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    sentAt: timestamp("sent_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    index("customer_messages_customer_idx").on(table.customerId, table.createdAt),
    check("customer_messages_channel_check", sql`${table.channel} in ('sms', 'email')`),
    check("customer_messages_status_check", sql`${table.status} in ('pending', 'sent', 'failed', 'undelivered')`),
  ],
);

/**
 * Alerts to subscribers: threshold crossings and barring changes, one row per alert, once (dedupe_key). The id
 * orders them for a reconnecting client's replay. published_at: handed to live delivery (API processes' WebSocket
 * hubs); messaged_at: handed to the message channel. A relay repeats whichever a crash left undone.
 */
export const alerts = pgTable(
  "alerts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    dedupeKey: text("dedupe_key").notNull(),
    kind: text("kind").notNull(),
    billingAccountId: uuid("billing_account_id").notNull(),
    productId: uuid("product_id"),
    /** The alert as drafted (threshold, value, period, message): what subscribers read. */
    body: jsonb("body").notNull(),
    raisedAt: timestamp("raised_at", { withTimezone: true, mode: "date" }).notNull(),
    publishedAt: timestamp("published_at", { withTimezone: true, mode: "date" }),
    messagedAt: timestamp("messaged_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    uniqueIndex("alerts_dedupe_idx").on(table.dedupeKey),
    index("alerts_account_idx").on(table.billingAccountId, table.id),
    index("alerts_unpublished_idx").on(table.id).where(sql`${table.publishedAt} is null`),
    index("alerts_unmessaged_idx").on(table.id).where(sql`${table.messagedAt} is null`),
  ],
);

export type AlertRow = typeof alerts.$inferSelect;

/**
 * Single-use tickets for `/api/v1/ws` (browsers cannot send an Authorization header on a WebSocket): obtained
 * with an API key, valid for seconds, consumed by the first connection that presents it. Only a hash is stored.
 */
export const wsTickets = pgTable(
  "ws_tickets",
  {
    id: uuid("id").primaryKey(),
    ticketHash: text("ticket_hash").notNull(),
    keyId: uuid("key_id").notNull(),
    role: text("role").notNull(),
    /** The one account whose alerts the connection receives; null: every account's (staff only). */
    billingAccountId: uuid("billing_account_id"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    usedAt: timestamp("used_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    uniqueIndex("ws_tickets_hash_idx").on(table.ticketHash),
    index("ws_tickets_expiry_idx").on(table.expiresAt),
  ],
);
