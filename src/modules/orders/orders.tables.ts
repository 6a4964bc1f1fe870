import { sql } from "drizzle-orm";
import { boolean, check, index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

export interface OrderItemRecord {
  id: string;
  action: "add" | "delete";
  state: string;
  offeringId?: string;
  offeringVersion?: number;
  offeringName?: string;
  /** Add-ons of a new line: the plan item of the same line. */
  reliesOn?: string;
  /**
   * Add-ons to a line the account already has: that line's plan product (TMF622 `product.productRelationship`
   * reliesOn). An item has this or `reliesOn`, never both.
   */
  lineId?: string;
  /** The catalog promotions the item gets (TMF622 itemPrice[].priceAlteration[].productOfferingPrice). */
  promotionIds?: string[];
  /** Chosen or given number and SIM of a new line; the line's product once created, or the product to end. */
  msisdn?: string;
  iccid?: string;
  productId?: string;
}

export interface RejectionReason {
  code: string;
  reason: string;
  orderItemId?: string;
}

/** What fulfilment has done so far, so that a failure or a cancellation can undo exactly that. */
export interface SagaProgress {
  lines: Array<{
    itemId: string;
    numberReservation?: string;
    simReservation?: string;
    msisdn?: string;
    iccid?: string;
    imsi?: string;
    numberCategory?: string;
    productId?: string;
    addonIds?: string[];
    activated?: boolean;
  }>;
  /**
   * Add-ons to lines the account already has, created pending activation (with the step that creates new lines'
   * products): undone by aborting them. Absent on orders stored before add-ons could be added to existing lines.
   */
  addons?: Array<{ itemId: string; lineId: string; productId: string; msisdn: string }>;
}

/** TMF622 product orders with their items, fulfilment progress and idempotency key. */
export const productOrders = pgTable(
  "product_orders",
  {
    id: uuid("id").primaryKey(),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash").notNull(),
    billingAccountId: uuid("billing_account_id").notNull(),
    customerId: uuid("customer_id"),
    state: text("state").notNull(),
    items: jsonb("items").$type<OrderItemRecord[]>().notNull(),
    rejection: jsonb("rejection").$type<RejectionReason[]>().notNull(),
    progress: jsonb("progress").$type<SagaProgress>().notNull(),
    failureReason: text("failure_reason"),
    cancelRequested: boolean("cancel_requested").notNull(),
    cancellationReason: text("cancellation_reason"),
    createdBy: uuid("created_by"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
    completedAt: timestamp("completed_at", { withTimezone: true, mode: "date" }),
  },
  (table) => [
    uniqueIndex("product_orders_idempotency_idx").on(table.idempotencyKey),
    index("product_orders_account_idx").on(table.billingAccountId),
    index("product_orders_state_idx").on(table.state, table.updatedAt),
    check(
      "product_orders_state_check",
      sql`${table.state} in ('acknowledged', 'rejected', 'inProgress', 'completed', 'failed', 'cancelled')`,
    ),
  ],
);

/** TMF622 cancelProductOrder requests. */
export const cancelProductOrders = pgTable("cancel_product_orders", {
  id: uuid("id").primaryKey(),
  orderId: uuid("order_id")
    .notNull()
    .references(() => productOrders.id),
  state: text("state").notNull(),
  reason: text("reason"),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
});

export type ProductOrderRow = typeof productOrders.$inferSelect;
