import { and, count, eq, gt, inArray, isNull, ne, or } from "drizzle-orm";
import type { Db } from "../../platform/database.js";
import { tableRepository } from "../../platform/table-repository.js";
import { apiKeys } from "./access.tables.js";

export const apiKeyRows = tableRepository(apiKeys, {
  role: apiKeys.role,
  name: apiKeys.name,
  billingAccountId: apiKeys.billingAccountId,
});

export async function findByHash(db: Db, secretHash: string) {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.secretHash, secretHash));
  return row;
}

/** A key works at `now`: not revoked and not expired. */
const worksAt = (now: Date) =>
  and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)));

export async function countKeys(db: Db): Promise<number> {
  const [row] = await db.select({ total: count() }).from(apiKeys);
  return row?.total ?? 0;
}

/** Admin keys that still work at `now`, other than `exceptId`. */
export async function countOtherLiveAdmins(db: Db, exceptId: string, now: Date): Promise<number> {
  const [row] = await db
    .select({ total: count() })
    .from(apiKeys)
    .where(and(eq(apiKeys.role, "admin"), ne(apiKeys.id, exceptId), worksAt(now)));
  return row?.total ?? 0;
}

export async function liveKeyNamed(db: Db, name: string) {
  const [row] = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.name, name), isNull(apiKeys.revokedAt)));
  return row;
}

/** The ids among `ids` of keys that still work at `now`. */
export async function liveKeyIds(db: Db, ids: readonly string[], now: Date): Promise<string[]> {
  const rows = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(inArray(apiKeys.id, [...ids]), worksAt(now)));
  return rows.map((row) => row.id);
}
