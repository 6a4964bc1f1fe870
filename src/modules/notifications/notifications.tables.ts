import { sql } from "drizzle-orm";
import { bigint, check, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
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
