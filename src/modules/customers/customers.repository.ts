import { and, asc, count, eq, inArray, ne, or } from "drizzle-orm";
import type { Db } from "../../platform/database.js";
import { tableRepository } from "../../platform/table-repository.js";
import { billingAccounts, customers, individuals, organizations } from "./customers.tables.js";

/** SQL of the customers module. Every function takes the handle (root or transaction) to run on. */

export const individualRows = tableRepository(individuals, {
  status: individuals.status,
  givenName: individuals.givenName,
  familyName: individuals.familyName,
  nationality: individuals.nationality,
});

export const organizationRows = tableRepository(organizations, {
  status: organizations.status,
  tradingName: organizations.tradingName,
  organizationType: organizations.organizationType,
});

export const customerRows = tableRepository(customers, {
  status: customers.status,
  name: customers.name,
});

export const billingAccountRows = tableRepository(billingAccounts, {
  state: billingAccounts.state,
  accountType: billingAccounts.accountType,
  currency: billingAccounts.currency,
  name: billingAccounts.name,
  taxJurisdiction: billingAccounts.taxJurisdiction,
  "relatedParty.id": billingAccounts.customerId,
  lastModified: billingAccounts.updatedAt,
});

export interface AccountSummary {
  id: string;
  name: string;
  customerId: string;
  state: string;
}

export async function accountsOfCustomers(db: Db, customerIds: readonly string[]): Promise<AccountSummary[]> {
  if (customerIds.length === 0) return [];
  return db
    .select({
      id: billingAccounts.id,
      name: billingAccounts.name,
      customerId: billingAccounts.customerId,
      state: billingAccounts.state,
    })
    .from(billingAccounts)
    .where(inArray(billingAccounts.customerId, [...customerIds]))
    .orderBy(billingAccounts.createdAt);
}

export async function countOpenAccounts(db: Db, customerId: string): Promise<number> {
  const [row] = await db
    .select({ total: count() })
    .from(billingAccounts)
    .where(and(eq(billingAccounts.customerId, customerId), ne(billingAccounts.state, "closed")));
  return row?.total ?? 0;
}

export async function countAccounts(db: Db, customerId: string): Promise<number> {
  const [row] = await db
    .select({ total: count() })
    .from(billingAccounts)
    .where(eq(billingAccounts.customerId, customerId));
  return row?.total ?? 0;
}

export async function countCustomersOfParty(db: Db, party: { individualId?: string; organizationId?: string }) {
  const condition =
    party.individualId !== undefined
      ? eq(customers.individualId, party.individualId)
      : eq(customers.organizationId, party.organizationId ?? "");
  const [row] = await db.select({ total: count() }).from(customers).where(condition);
  return row?.total ?? 0;
}

export async function customerNames(db: Db, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ id: customers.id, name: customers.name })
    .from(customers)
    .where(inArray(customers.id, [...new Set(ids)]));
  return new Map(rows.map((row) => [row.id, row.name]));
}

export async function partyNames(
  db: Db,
  individualIds: readonly string[],
  organizationIds: readonly string[],
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  if (individualIds.length > 0) {
    const rows = await db
      .select({ id: individuals.id, givenName: individuals.givenName, familyName: individuals.familyName })
      .from(individuals)
      .where(inArray(individuals.id, [...new Set(individualIds)]));
    for (const row of rows) names.set(row.id, `${row.givenName} ${row.familyName}`);
  }
  if (organizationIds.length > 0) {
    const rows = await db
      .select({ id: organizations.id, tradingName: organizations.tradingName })
      .from(organizations)
      .where(inArray(organizations.id, [...new Set(organizationIds)]));
    for (const row of rows) names.set(row.id, row.tradingName);
  }
  return names;
}

/** The oldest customer that is not closed whose engaged party is this individual or organization. */
export async function customerOfParty(db: Db, partyId: string) {
  const [row] = await db
    .select({ id: customers.id })
    .from(customers)
    .where(
      and(
        or(eq(customers.individualId, partyId), eq(customers.organizationId, partyId)),
        ne(customers.status, "closed"),
      ),
    )
    .orderBy(asc(customers.id))
    .limit(1);
  return row;
}
