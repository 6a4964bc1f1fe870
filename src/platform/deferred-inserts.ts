import type { PgTable } from "drizzle-orm/pg-core";
import type { Db } from "./database.js";

/**
 * Rows a transaction writes for the record (audit rows, outbox events) are collected while it works and
 * inserted together, one statement per table, just before it commits: same transaction, same atomicity, a
 * fraction of the round trips. Outside a transaction opened through Database.transaction they are inserted
 * at once.
 */
const pending = new WeakMap<object, Map<PgTable, Record<string, unknown>[]>>();

export function openDeferred(tx: Db): void {
  pending.set(tx, new Map());
}

export async function insertDeferred(tx: Db, table: PgTable, row: Record<string, unknown>): Promise<void> {
  const buffer = pending.get(tx);
  if (buffer === undefined) {
    await tx.insert(table).values(row as never);
    return;
  }
  const rows = buffer.get(table) ?? [];
  rows.push(row);
  buffer.set(table, rows);
}

/** Writes what the transaction collected; called by Database.transaction after the work, before commit. */
export async function flushDeferred(tx: Db): Promise<void> {
  const buffer = pending.get(tx);
  pending.delete(tx);
  if (buffer === undefined) return;
  for (const [table, rows] of buffer) {
    if (rows.length > 0) await tx.insert(table).values(rows as never);
  }
}
