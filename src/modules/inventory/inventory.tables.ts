import { sql } from "drizzle-orm";
import { check, customType, index, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

/**
 * Numbers and ICCIDs are ASCII digits: the C collation orders them as digits and lets the btree index serve
 * prefix searches (`+49151*`) and `order by value` together.
 */
const digitsText = customType<{ data: string; driverData: string }>({ dataType: () => 'text collate "C"' });

/**
 * SIM cards and numbers (TMF639 resources). One table, so reservation and listing work the same for both;
 * checks keep each type's columns and states consistent, and unique indexes make a number or a SIM (ICCID,
 * IMSI) exist once. Reserved and assigned rows carry who holds them, so a conditional update cannot hand one
 * resource to two holders.
 */
export const inventoryResources = pgTable(
  "inventory_resources",
  {
    id: uuid("id").primaryKey(),
    type: text("type").notNull(),
    /** The MSISDN in E.164, or the SIM's ICCID. */
    value: digitsText("value").notNull(),
    imsi: text("imsi"),
    category: text("category"),
    sealedSecrets: text("sealed_secrets"),
    batch: text("batch"),
    state: text("state").notNull(),
    reservationId: uuid("reservation_id"),
    reservedUntil: timestamp("reserved_until", { withTimezone: true, mode: "date" }),
    assignedTo: text("assigned_to"),
    quarantineUntil: timestamp("quarantine_until", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [
    uniqueIndex("inventory_resources_value_idx").on(table.type, table.value),
    uniqueIndex("inventory_resources_imsi_idx").on(table.imsi),
    uniqueIndex("inventory_resources_reservation_idx").on(table.reservationId),
    index("inventory_resources_free_idx").on(table.type, table.state, table.value),
    check("inventory_resources_type_check", sql`${table.type} in ('SIMCard', 'MSISDN')`),
    check(
      "inventory_resources_state_check",
      sql`(${table.type} = 'SIMCard' and ${table.state} in ('available', 'reserved', 'assigned', 'blocked', 'retired'))
        or (${table.type} = 'MSISDN' and ${table.state} in ('available', 'reserved', 'assigned', 'quarantine'))`,
    ),
    check(
      "inventory_resources_sim_columns_check",
      sql`(${table.type} = 'SIMCard') = (${table.imsi} is not null and ${table.sealedSecrets} is not null and ${table.category} is null)`,
    ),
    check(
      "inventory_resources_msisdn_value_check",
      sql`${table.type} <> 'MSISDN' or ${table.value} ~ '^\\+[1-9][0-9]{6,14}$'`,
    ),
    check(
      "inventory_resources_reserved_check",
      sql`(${table.state} = 'reserved') = (${table.reservationId} is not null and ${table.reservedUntil} is not null)`,
    ),
    check("inventory_resources_assigned_check", sql`${table.state} <> 'assigned' or ${table.assignedTo} is not null`),
    check(
      "inventory_resources_quarantine_check",
      sql`(${table.state} = 'quarantine') = (${table.quarantineUntil} is not null)`,
    ),
  ],
);

export type InventoryRow = typeof inventoryResources.$inferSelect;
