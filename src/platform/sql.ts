import { and, eq, inArray, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";

/** Equality filters of a list query (API.md): each named field equals one of its values; fields AND. */
export function equalityFilters(
  columns: Readonly<Record<string, PgColumn>>,
  filters: Readonly<Record<string, readonly string[]>>,
  extra: readonly (SQL | undefined)[] = [],
): SQL | undefined {
  const conditions: SQL[] = extra.filter((condition): condition is SQL => condition !== undefined);
  for (const [name, values] of Object.entries(filters)) {
    const column = columns[name];
    if (column === undefined || values.length === 0) continue;
    conditions.push(values.length === 1 ? eq(column, values[0]) : inArray(column, [...values]));
  }
  return conditions.length === 0 ? undefined : and(...conditions);
}
