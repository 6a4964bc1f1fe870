import { sql } from "drizzle-orm";
import type { AlertDraft } from "../../platform/alerts.js";
import { type Database, queryRows } from "../../platform/database.js";
import { THRESHOLD_CACHE_TTL_MS } from "../../shared/limits.js";
import { fromMicro, Money, toMicro } from "../../shared/money.js";
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

/** The unit an allowance of each service counts (TMF654 Quantity units). */
export const SERVICE_UNITS = { voice: "second", sms: "message", data: "byte" } as const;
const SERVICE_NAME: Record<string, string> = { voice: "voice ", sms: "SMS ", data: "data " };

/** An amount as people read it: at least two decimals, never rounded away. */
function shown(amount: Money): string {
  return amount.toFixed(Math.max(2, amount.decimalPlaces()));
}

/** Thresholds that re-arm (a top-up, a credit) may alert again with another event; the others alert once. */
const REARMING = new Set(["low-balance", "balance-exhausted", "credit-limit"]);

/**
 * The alert a crossing raises (DESIGN.md §5): once per threshold and period, or once per crossing event for the
 * thresholds that re-arm, which the dedupe key says. The threshold is the one the step watched; `service` is
 * the crossed bucket's service, for allowance thresholds.
 */
export function crossingAlert(
  crossing: { key: string; usageId: string; value: bigint },
  threshold: Threshold | undefined,
  account: { id: string; currency: string; billLimit: Money | null },
  productId: string | null,
  service: string | undefined,
): AlertDraft {
  const kindOf = crossing.key.slice(0, crossing.key.indexOf(":"));
  const parts = crossing.key.split(":");
  const label = parts[parts.length - 1] as string;
  const percent = label.endsWith("%") ? label.slice(0, -1) : undefined;
  const money = (micro: bigint) => ({ amount: fromMicro(micro).toFixed(), units: account.currency });
  // Spend keys name their period (kind:account:period:value); a threshold the step no longer watched (a replay
  // after the limit changed) still alerts, with what the key says.
  const period = threshold?.period ?? (parts.length === 4 ? parts[2] : undefined);
  const limit = threshold?.value;
  const base = {
    dedupeKey: REARMING.has(kindOf) ? `crossing:${crossing.key}:${crossing.usageId}` : `crossing:${crossing.key}`,
    billingAccountId: account.id,
    productId,
    usageId: crossing.usageId,
    ...(period === undefined ? {} : { period }),
  };
  const spent = shown(fromMicro(crossing.value));
  const cur = account.currency;
  switch (kindOf) {
    case "bill-limit":
      return {
        ...base,
        kind: "billLimit",
        ...(limit === undefined
          ? {}
          : { threshold: { ...money(limit), ...(percent === undefined ? {} : { percent }) } }),
        value: money(crossing.value),
        message: `You have used ${percent}% of your bill limit of ${shown(account.billLimit ?? new Money(0))} ${cur} for ${period}: ${spent} ${cur} so far.`,
      };
    case "spend-amount":
      return {
        ...base,
        kind: "spendAmount",
        threshold: money(toMicro(new Money(label))),
        value: money(crossing.value),
        message: `Your spend for ${period} has passed ${shown(new Money(label))} ${cur}: ${spent} ${cur} so far.`,
      };
    case "credit-limit":
      return {
        ...base,
        kind: "creditLimit",
        threshold: money(toMicro(new Money(label))),
        value: money(crossing.value),
        message: `Your spend for ${period} (${spent} ${cur}) reached your credit limit of ${shown(new Money(label))} ${cur}; your lines are barred until it is paid or the limit is raised.`,
      };
    case "low-balance":
      return {
        ...base,
        kind: "lowBalance",
        threshold: money(toMicro(new Money(label))),
        value: money(crossing.value),
        message: `Your prepaid balance is ${spent} ${cur}, below ${shown(new Money(label))} ${cur}. Top up to keep using your line.`,
      };
    case "balance-exhausted":
      return {
        ...base,
        kind: "balanceExhausted",
        threshold: money(0n),
        value: money(crossing.value),
        message: `Your prepaid balance is used up (${spent} ${cur}); your line is barred until you top up.`,
      };
    default: {
      // allowance:<bucket>:<percent>%
      const units: string = SERVICE_UNITS[service as keyof typeof SERVICE_UNITS] ?? "unit";
      return {
        ...base,
        kind: "allowance",
        bucketId: parts[1] as string,
        ...(limit === undefined
          ? {}
          : { threshold: { amount: limit.toString(), units, ...(percent === undefined ? {} : { percent }) } }),
        value: { amount: crossing.value.toString(), units },
        message: `You have used ${percent}% of your ${SERVICE_NAME[service ?? ""] ?? ""}allowance (${crossing.value} ${units}s).`,
      };
    }
  }
}
