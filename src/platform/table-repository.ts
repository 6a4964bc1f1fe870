import { asc, count, eq, type SQL } from "drizzle-orm";
import type { PgColumn, PgTable, PgTableWithColumns, TableConfig } from "drizzle-orm/pg-core";
import type { Db } from "./database.js";
import { listFilters } from "./sql.js";
import type { ListRequest } from "./tmf.js";

type TableWithId<C extends TableConfig> = PgTableWithColumns<C> & { id: PgColumn };

/**
 * Ids are time-ordered UUIDs (shared/ids.ts), so ordering by id is creation order.
 *
 * The SQL every resource table needs (insert, find by id with an optional row lock, filtered and paged
 * list with its total, update, delete), written once. Repositories add their own queries beside it.
 */
export function tableRepository<C extends TableConfig>(
  table: TableWithId<C>,
  filterColumns: Readonly<Record<string, PgColumn>>,
) {
  type Row = TableWithId<C>["$inferSelect"];
  type Insert = TableWithId<C>["$inferInsert"];
  const anyTable = table as unknown as PgTable;
  return {
    async insert(db: Db, values: Insert): Promise<Row> {
      const [row] = await db
        .insert(anyTable)
        .values(values as never)
        .returning();
      return row as Row;
    },
    /** With `lock`, the row stays locked until the caller's transaction ends (read → compute → write). */
    async find(db: Db, id: string, lock = false): Promise<Row | undefined> {
      const query = db.select().from(anyTable).where(eq(table.id, id));
      const [row] = lock ? await query.for("update") : await query;
      return row as Row | undefined;
    },
    /**
     * The page and the total are two queries sent together. A window `count(*) over ()` would make it one
     * round trip but forces PostgreSQL to read every matching row in full; a plain count reads the index.
     */
    async list(db: Db, request: ListRequest, scope?: SQL): Promise<{ rows: Row[]; total: number }> {
      const where = listFilters({ id: table.id, ...filterColumns }, request, [scope]);
      const [rows, counted] = await Promise.all([
        db.select().from(anyTable).where(where).orderBy(asc(table.id)).offset(request.offset).limit(request.limit),
        db.select({ total: count() }).from(anyTable).where(where),
      ]);
      return { rows: rows as Row[], total: counted[0]?.total ?? 0 };
    },
    async update(db: Db, id: string, values: Partial<Insert>): Promise<Row> {
      const [row] = await db
        .update(anyTable)
        .set(values as never)
        .where(eq(table.id, id))
        .returning();
      return row as Row;
    },
    async remove(db: Db, id: string): Promise<boolean> {
      const deleted = await db.delete(anyTable).where(eq(table.id, id)).returning({ id: table.id });
      return deleted.length > 0;
    },
  };
}
