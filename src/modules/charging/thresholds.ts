import { sql } from "drizzle-orm";
import { type Database, queryRows } from "../../platform/database.js";
import { THRESHOLD_CACHE_TTL_MS } from "../../shared/limits.js";
import { Money, toMicro } from "../../shared/money.js";
import type { Threshold } from "./store/charging-store.js";

export interface ThresholdRow {
  id: string;
  kind: string;
  value: string;
  currency: string | null;
}

/**
 * The alert threshold table (`charging_thresholds`), read once per THRESHOLD_CACHE_TTL_MS by each process and
 * shared by rating (every account of every batch) and by top-ups and adjustments (re-arming).
 */
export class ThresholdTable {
  #cached: { rows: ThresholdRow[]; untilMs: number } | null = null;

  constructor(private readonly database: Database) {}

  async rows(): Promise<ThresholdRow[]> {
    const nowMs = performance.now();
    if (this.#cached === null || this.#cached.untilMs <= nowMs) {
      const rows = await queryRows<ThresholdRow>(
        this.database.db,
        sql`select id, kind, value::text as value, currency from charging_thresholds order by id`,
      );
      // Values without trailing zeros: they name thresholds in crossing keys ("80%", not "80.000000%").
      this.#cached = {
        rows: rows.map((row) => ({ ...row, value: new Money(row.value).toFixed() })),
        untilMs: nowMs + THRESHOLD_CACHE_TTL_MS,
      };
    }
    return this.#cached.rows;
  }
}

/**
 * A postpaid account's credit limit in a bill period. The limit is part of the key: after a raise (or a credit that
 * re-arms it) crossing again bars again.
 */
export function creditLimitThreshold(accountId: string, period: string, limit: Money): Threshold {
  return {
    key: `credit-limit:${accountId}:${period}:${limit.toFixed()}`,
    metric: "spend",
    direction: "up",
    value: toMicro(limit),
    period,
  };
}

/** A prepaid line's balance thresholds: the low-balance ones of its currency, and the balance falling below zero. */
export function balanceThresholds(productId: string, currency: string, table: readonly ThresholdRow[]): Threshold[] {
  return [
    ...table
      .filter((row) => row.kind === "low_balance" && row.currency === currency)
      .map(
        (row): Threshold => ({
          key: `low-balance:${productId}:${row.value}`,
          metric: "balance",
          direction: "down",
          value: toMicro(new Money(row.value)),
          productId,
        }),
      ),
    { key: `balance-exhausted:${productId}`, metric: "balance", direction: "down", value: 0n, productId },
  ];
}
