import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";
import { billingAccounts } from "../customers/customers.tables.js";
import type { BoughtPrice, BoughtPromotion, BoughtTerm, Product } from "./products.js";

/**
 * Installed products (TMF637): one plan product per line, add-ons under it. A live line holds its number and
 * SIM; partial unique indexes make the database refuse a second live line with the same number or SIM.
 */
export const products = pgTable(
  "products",
  {
    id: uuid("id").primaryKey(),
    billingAccountId: uuid("billing_account_id")
      .notNull()
      .references(() => billingAccounts.id),
    customerId: uuid("customer_id").notNull(),
    offeringId: text("offering_id").notNull(),
    offeringVersion: integer("offering_version").notNull(),
    name: text("name").notNull(),
    kind: text("kind").notNull(),
    parentId: uuid("parent_id").references((): AnyPgColumn => products.id),
    status: text("status").notNull(),
    msisdn: text("msisdn"),
    iccid: text("iccid"),
    currency: text("currency").notNull(),
    prices: jsonb("prices").$type<BoughtPrice[]>().notNull(),
    term: jsonb("term").$type<BoughtTerm | null>(),
    /** The promotions the order gave it (TMF622 priceAlteration), with their first cycle once it is active. */
    promotions: jsonb("promotions").$type<BoughtPromotion[]>().notNull().default([]),
    orderId: uuid("order_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
    activatedAt: timestamp("activated_at", { withTimezone: true, mode: "date" }),
    terminatedAt: timestamp("terminated_at", { withTimezone: true, mode: "date" }),
    /**
     * Why the line is barred on the network (DESIGN.md §10 "Barring has reasons"): each reason is set and lifted on
     * its own, and the network is unbarred only when none is left. Barring does not change the status.
     */
    barringReasons: text("barring_reasons").array().notNull().default(sql`'{}'::text[]`),
  },
  (table) => [
    check(
      "products_status_check",
      sql`${table.status} in ('created', 'pendingActive', 'active', 'suspended', 'pendingTerminate', 'terminated', 'aborted')`,
    ),
    check("products_kind_check", sql`${table.kind} in ('plan', 'addon')`),
    check(
      "products_barring_reasons_check",
      sql`${table.barringReasons} <@ array['credit', 'dunning', 'fraud', 'customerRequest']::text[]`,
    ),
    check(
      "products_line_check",
      sql`(${table.kind} = 'plan') = (${table.msisdn} is not null and ${table.iccid} is not null)`,
    ),
    uniqueIndex("products_live_msisdn_idx")
      .on(table.msisdn)
      .where(sql`${table.kind} = 'plan' and ${table.status} not in ('terminated', 'aborted')`),
    uniqueIndex("products_live_iccid_idx")
      .on(table.iccid)
      .where(sql`${table.kind} = 'plan' and ${table.status} not in ('terminated', 'aborted')`),
    index("products_account_idx").on(table.billingAccountId),
    index("products_parent_idx").on(table.parentId),
  ],
);

/** Every status a product went through, dated, with the reason and the order that caused it. */
export const productHistory = pgTable(
  "product_history",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    productId: uuid("product_id")
      .notNull()
      .references(() => products.id),
    at: timestamp("at", { withTimezone: true, mode: "date" }).notNull(),
    fromStatus: text("from_status"),
    toStatus: text("to_status").notNull(),
    reason: text("reason").notNull(),
    orderId: uuid("order_id"),
    /**
     * Why a suspended product is suspended (billing charges a suspended product or not by it): set on every row that
     * leaves the product suspended — the suspension itself, and a later change of a suspended line (barring) that
     * carries its reason on — and null on every other row. The values are the catalog's SUSPENSION_REASONS (why a
     * product is suspended: a price says which reasons it still charges).
     */
    suspensionReason: text("suspension_reason"),
  },
  (table) => [
    index("product_history_product_idx").on(table.productId),
    check(
      "product_history_suspension_reason_check",
      sql`(${table.toStatus} = 'suspended') = (${table.suspensionReason} is not null) and (${table.suspensionReason} is null or ${table.suspensionReason} in ('customerRequest', 'dunning', 'nonRenewal', 'fraud'))`,
    ),
  ],
);

/** One-time charges waiting for the next invoice; the unique key makes each charge exist once per order. */
export const oneTimeCharges = pgTable(
  "one_time_charges",
  {
    id: uuid("id").primaryKey(),
    /** What the charge is for: an order's fees, or a fee for a service (reconnection, reversal, termination…). */
    source: text("source").notNull().default("order"),
    /** The id of the source (the order, the payment reversed, the line reconnected…). */
    sourceId: text("source_id").notNull(),
    /** The product it belongs to, when one (a reversal fee belongs to the account). */
    productId: uuid("product_id").references(() => products.id),
    billingAccountId: uuid("billing_account_id").notNull(),
    orderId: uuid("order_id"),
    priceId: text("price_id").notNull(),
    name: text("name").notNull(),
    amount: moneyColumn("amount").notNull(),
    currency: text("currency").notNull(),
    taxClass: text("tax_class").notNull(),
    /** Whether `amount` includes tax; charges recorded before the term existed are tax-exclusive, the default then. */
    taxIncluded: boolean("tax_included").notNull().default(false),
    offeringVersion: integer("offering_version"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    billedAt: timestamp("billed_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    // Each charge exists once per source, product and price (a retried order or fee records nothing twice).
    unique("one_time_charges_source_key")
      .on(table.source, table.sourceId, table.productId, table.priceId)
      .nullsNotDistinct(),
    check(
      "one_time_charges_source_check",
      sql`${table.source} in ('order', 'fee', 'adjustment', 'reconnection', 'reversal', 'termination')`,
    ),
    index("one_time_charges_account_idx").on(table.billingAccountId),
  ],
);

export type ProductRow = typeof products.$inferSelect;
// The module speaks in Product (products.ts); the row and it must stay the same shape.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const productIsTheRow: Same<ProductRow, Product> = true;
void productIsTheRow;
