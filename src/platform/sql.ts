import { and, eq, gt, gte, inArray, lt, lte, type SQL, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { AppError } from "./errors.js";
import { isUuid, type ListRequest, type RangeOperator } from "./tmf.js";

const RANGE = { gt, gte, lt, lte } satisfies Record<RangeOperator, unknown>;
const NUMBER = /^-?\d{1,15}(\.\d{1,15})?$/;

/** Whether a filter value can be compared with the column at all (a word with a UUID or integer column cannot). */
function comparable(column: PgColumn, value: string): boolean {
  if (column.columnType === "PgUUID") return isUuid(value);
  if (column.dataType === "number") return NUMBER.test(value);
  if (column.dataType === "date") return !Number.isNaN(Date.parse(value));
  return true;
}

/**
 * The conditions of a list query (API.md, TMF630) as SQL: each attribute equals one of its values, ranges
 * bound dates and numbers, everything ANDs. `columns` maps each attribute the route offers (dotted for
 * references) to its column; an id that is not one of the engine's matches nothing (never a cast error).
 */
export function listFilters(
  columns: Readonly<Record<string, PgColumn>>,
  request: Pick<ListRequest, "filters"> & Partial<Pick<ListRequest, "ranges">>,
  extra: readonly (SQL | undefined)[] = [],
): SQL | undefined {
  const conditions: SQL[] = extra.filter((condition): condition is SQL => condition !== undefined);
  const columnOf = (attribute: string) => {
    const column = columns[attribute];
    if (column === undefined) {
      throw new AppError("bad_request", "invalid_parameter", `${attribute}: cannot be filtered on here`, attribute);
    }
    return column;
  };
  for (const [attribute, given] of Object.entries(request.filters)) {
    const column = columnOf(attribute);
    // A date column compares with dates (the values were checked as ISO 8601 when the query was read).
    const values = given
      .filter((value) => comparable(column, value))
      .map((value) => (column.dataType === "date" ? new Date(value) : value));
    if (values.length === 0) conditions.push(sql`false`);
    else conditions.push(values.length === 1 ? eq(column, values[0]) : inArray(column, values));
  }
  for (const range of request.ranges ?? []) {
    const column = columnOf(range.attribute);
    const value = column.dataType === "date" ? new Date(range.value) : range.value;
    conditions.push(RANGE[range.op](column, value));
  }
  return conditions.length === 0 ? undefined : and(...conditions);
}

/** Ids as a list of uuid parameters, `in (…)`: each statement planned for the ids it has. */
export function uuidList(ids: readonly string[]): SQL {
  return sql.join(
    ids.map((id) => sql`${id}::uuid`),
    sql`, `,
  );
}
