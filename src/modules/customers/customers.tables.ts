import { sql } from "drizzle-orm";
import { boolean, check, date, index, jsonb, pgTable, smallint, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { moneyColumn } from "../../platform/columns.js";
import type { AccountContact, ContactMedium, Identification } from "./customers.schemas.js";

const timestamps = {
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
};

export const individuals = pgTable(
  "individuals",
  {
    id: uuid("id").primaryKey(),
    givenName: text("given_name").notNull(),
    familyName: text("family_name").notNull(),
    middleName: text("middle_name"),
    title: text("title"),
    gender: text("gender"),
    birthDate: date("birth_date", { mode: "string" }),
    nationality: text("nationality"),
    status: text("status").notNull(),
    contactMedium: jsonb("contact_medium").$type<ContactMedium[]>().notNull(),
    identifications: jsonb("identifications").$type<Identification[]>().notNull(),
    ...timestamps,
  },
  (table) => [
    check("individuals_status_check", sql`${table.status} in ('initialized', 'validated', 'deceased')`),
    index("individuals_family_name_idx").on(table.familyName),
  ],
);

export const organizations = pgTable(
  "organizations",
  {
    id: uuid("id").primaryKey(),
    tradingName: text("trading_name").notNull(),
    name: text("name"),
    isLegalEntity: boolean("is_legal_entity"),
    organizationType: text("organization_type"),
    status: text("status").notNull(),
    contactMedium: jsonb("contact_medium").$type<ContactMedium[]>().notNull(),
    identifications: jsonb("identifications").$type<Identification[]>().notNull(),
    ...timestamps,
  },
  (table) => [
    check("organizations_status_check", sql`${table.status} in ('initialized', 'validated', 'closed')`),
    index("organizations_trading_name_idx").on(table.tradingName),
  ],
);

export const customers = pgTable(
  "customers",
  {
    id: uuid("id").primaryKey(),
    name: text("name").notNull(),
    status: text("status").notNull(),
    statusReason: text("status_reason"),
    individualId: uuid("individual_id").references(() => individuals.id, { onDelete: "restrict" }),
    organizationId: uuid("organization_id").references(() => organizations.id, { onDelete: "restrict" }),
    contactMedium: jsonb("contact_medium").$type<ContactMedium[]>().notNull(),
    validFrom: timestamp("valid_from", { withTimezone: true, mode: "date" }),
    validTo: timestamp("valid_to", { withTimezone: true, mode: "date" }),
    ...timestamps,
  },
  (table) => [
    check("customers_status_check", sql`${table.status} in ('initialized', 'approved', 'suspended', 'closed')`),
    // A customer is exactly one party: a person or an organization.
    check("customers_one_party_check", sql`(${table.individualId} is null) <> (${table.organizationId} is null)`),
    index("customers_individual_idx").on(table.individualId),
    index("customers_organization_idx").on(table.organizationId),
  ],
);

export const billingAccounts = pgTable(
  "billing_accounts",
  {
    id: uuid("id").primaryKey(),
    customerId: uuid("customer_id")
      .notNull()
      .references(() => customers.id, { onDelete: "restrict" }),
    name: text("name").notNull(),
    description: text("description"),
    accountType: text("account_type").notNull(),
    state: text("state").notNull(),
    currency: text("currency").notNull(),
    /**
     * The bill cycle (DESIGN.md §10): the cycle day and zone in effect from `cycle_changed_at` on (always, when that
     * is null), and the ones in effect before it. A change made while the account has lines takes effect at the
     * old cycle's next period boundary, so until then these hold the pending cycle and `previous_*` the one in
     * effect; one change back is remembered (customers.rules.ts, planCycleChange).
     */
    billCycleDay: smallint("bill_cycle_day").notNull(),
    paymentTermsDays: smallint("payment_terms_days").notNull(),
    timeZone: text("time_zone").notNull(),
    previousBillCycleDay: smallint("previous_bill_cycle_day"),
    previousTimeZone: text("previous_time_zone"),
    cycleChangedAt: timestamp("cycle_changed_at", { withTimezone: true, mode: "date" }),
    /** A business account's VAT identification number, as written ("DE123456789"); format checked on write. */
    vatId: text("vat_id"),
    taxJurisdiction: text("tax_jurisdiction").notNull(),
    creditLimit: moneyColumn("credit_limit"),
    billLimit: moneyColumn("bill_limit"),
    contacts: jsonb("contacts").$type<AccountContact[]>().notNull(),
    ...timestamps,
  },
  (table) => [
    check("billing_accounts_type_check", sql`${table.accountType} in ('prepaid', 'postpaid')`),
    check("billing_accounts_state_check", sql`${table.state} in ('active', 'suspended', 'closed')`),
    check("billing_accounts_currency_check", sql`${table.currency} ~ '^[A-Z]{3}$'`),
    check("billing_accounts_cycle_day_check", sql`${table.billCycleDay} between 1 and 31`),
    check(
      "billing_accounts_previous_cycle_day_check",
      sql`${table.previousBillCycleDay} is null or ${table.previousBillCycleDay} between 1 and 31`,
    ),
    // The cycle before a change exists with the instant the change took (or takes) effect, or not at all.
    check(
      "billing_accounts_previous_cycle_check",
      sql`(${table.previousBillCycleDay} is null) = (${table.previousTimeZone} is null) and (${table.previousBillCycleDay} is null) = (${table.cycleChangedAt} is null)`,
    ),
    check(
      "billing_accounts_vat_id_check",
      sql`${table.vatId} is null or ${table.vatId} ~ '^[A-Z]{2}[0-9A-Z+*]{2,14}$'`,
    ),
    check("billing_accounts_terms_check", sql`${table.paymentTermsDays} between 0 and 365`),
    check("billing_accounts_credit_limit_check", sql`${table.creditLimit} is null or ${table.creditLimit} >= 0`),
    check("billing_accounts_bill_limit_check", sql`${table.billLimit} is null or ${table.billLimit} > 0`),
    // Credit and bill limits are postpaid concepts; a prepaid account spends its balance instead.
    check(
      "billing_accounts_prepaid_limits_check",
      sql`${table.accountType} = 'postpaid' or (${table.creditLimit} is null and ${table.billLimit} is null)`,
    ),
    index("billing_accounts_customer_idx").on(table.customerId),
  ],
);

export type IndividualRow = typeof individuals.$inferSelect;
export type OrganizationRow = typeof organizations.$inferSelect;
export type CustomerRow = typeof customers.$inferSelect;
export type BillingAccountRow = typeof billingAccounts.$inferSelect;
