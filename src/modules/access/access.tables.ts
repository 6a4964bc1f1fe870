import { sql } from "drizzle-orm";
import { check, index, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { billingAccounts } from "../customers/customers.tables.js";

/** API keys: only a SHA-256 of the secret is stored; the prefix identifies a key in lists and logs. */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    prefix: text("prefix").notNull(),
    secretHash: text("secret_hash").notNull(),
    role: text("role").notNull(),
    billingAccountId: uuid("billing_account_id").references(() => billingAccounts.id, { onDelete: "restrict" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    createdBy: uuid("created_by"),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }),
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
    /** Network keys: the CDR sources the key may send records for; `{*}`, any (a mediation platform). */
    cdrSources: text("cdr_sources").array(),
  },
  (table) => [
    uniqueIndex("api_keys_secret_hash_idx").on(table.secretHash),
    // Names identify keys to operators; two live keys may not share one.
    uniqueIndex("api_keys_live_name_idx").on(table.name).where(sql`${table.revokedAt} is null`),
    index("api_keys_billing_account_idx").on(table.billingAccountId),
    check("api_keys_role_check", sql`${table.role} in ('admin', 'crm', 'network', 'finance', 'subscriber')`),
    // A subscriber key is bound to one billing account; staff keys to none.
    check(
      "api_keys_subscriber_binding_check",
      sql`(${table.role} = 'subscriber') = (${table.billingAccountId} is not null)`,
    ),
    // A network key names the sources it sends for; other keys send none.
    check("api_keys_network_sources_check", sql`(${table.role} = 'network') = (${table.cdrSources} is not null)`),
  ],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
