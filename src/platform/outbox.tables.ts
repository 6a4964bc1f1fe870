import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * The outbox: every state change writes its TM Forum event here in the same transaction as the change, so an
 * event exists exactly when the change does. Hub delivery reads it in id order.
 */
export const outboxEvents = pgTable(
  "outbox_events",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: uuid("event_id").notNull().unique(),
    eventType: text("event_type").notNull(),
    /** The TMF API the event belongs to ("party", "accountManagement", …), which hubs subscribe per. */
    api: text("api").notNull(),
    resourceType: text("resource_type").notNull(),
    resourceId: text("resource_id").notNull(),
    eventTime: timestamp("event_time", { withTimezone: true, mode: "date" }).notNull(),
    payload: jsonb("payload").notNull(),
    /** When hub fan-out took the event; a row-level mark, since ids commit out of order and a cursor would skip. */
    dispatchedAt: timestamp("dispatched_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    index("outbox_events_resource_idx").on(table.resourceType, table.resourceId),
    index("outbox_events_undispatched_idx").on(table.id).where(sql`${table.dispatchedAt} is null`),
  ],
);
