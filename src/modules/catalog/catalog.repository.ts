import { and, desc, eq, isNull } from "drizzle-orm";
import type { Db } from "../../platform/database.js";
import { catalogEntities, catalogPublications } from "./catalog.tables.js";

export async function currentEntities(db: Db) {
  return db.select().from(catalogEntities).where(isNull(catalogEntities.validTo));
}

export async function entityVersion(db: Db, kind: string, id: string, version: number) {
  const [row] = await db
    .select()
    .from(catalogEntities)
    .where(and(eq(catalogEntities.kind, kind), eq(catalogEntities.id, id), eq(catalogEntities.version, version)));
  return row;
}

export async function latestPublication(db: Db) {
  const [row] = await db.select().from(catalogPublications).orderBy(desc(catalogPublications.id)).limit(1);
  return row;
}

export async function insertPublication(db: Db, values: typeof catalogPublications.$inferInsert) {
  const [row] = await db.insert(catalogPublications).values(values).returning();
  return row as typeof catalogPublications.$inferSelect;
}

export async function closeVersion(db: Db, kind: string, id: string, at: Date) {
  await db
    .update(catalogEntities)
    .set({ validTo: at })
    .where(and(eq(catalogEntities.kind, kind), eq(catalogEntities.id, id), isNull(catalogEntities.validTo)));
}

export async function insertVersions(db: Db, rows: Array<typeof catalogEntities.$inferInsert>) {
  if (rows.length > 0) await db.insert(catalogEntities).values(rows);
}
