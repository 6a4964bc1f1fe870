import { and, asc, eq, gt, inArray, lte } from "drizzle-orm";
import type { Clock } from "../../platform/clock.js";
import type { Db } from "../../platform/database.js";
import { newId } from "../../shared/ids.js";
import type { Offering } from "../catalog/catalog.schemas.js";
import type { ProductRow } from "../subscriptions/subscriptions.tables.js";
import { allowanceBuckets, type BucketRow } from "./charging.tables.js";
import { billPeriod, type Period, rollingPeriod } from "./periods.js";

export interface AccountCycle {
  id: string;
  billCycleDay: number;
  timeZone: string;
}

/** The period of an allowance at an instant: the bill period, or 30 days rolling from the line's activation. */
export function allowancePeriod(
  period: "billCycle" | "30days",
  atMs: number,
  account: AccountCycle,
  line: ProductRow,
): Period {
  if (period === "30days") return rollingPeriod(atMs, (line.activatedAt ?? line.createdAt).getTime(), 30);
  return billPeriod(atMs, account.billCycleDay, account.timeZone);
}

/**
 * Allowance buckets of a line: the plan's and its add-ons' allowances, one bucket per period, created the
 * first time a period is needed (activation, or the first event of a new period) and never twice (unique per
 * product, allowance and period start).
 */
export class BucketsService {
  constructor(private readonly clock: Clock) {}

  /**
   * The line's buckets whose period holds `atMs`, creating the missing ones. With a cache (one per batch),
   * events of the same line and periods cost the database once.
   */
  async ensure(
    db: Db,
    account: AccountCycle,
    line: { plan: ProductRow; addons: ProductRow[] },
    offerings: ReadonlyMap<string, Offering>,
    atMs: number,
    cache?: Map<string, BucketRow[]>,
  ): Promise<BucketRow[]> {
    const wanted: Array<typeof allowanceBuckets.$inferInsert> = [];
    const now = this.clock.now();
    for (const product of [line.plan, ...line.addons]) {
      // An add-on counts from its own activation until it ends.
      const from = (product.activatedAt ?? product.createdAt).getTime();
      if (product.activatedAt === null || atMs < from) continue;
      if (product.terminatedAt !== null && atMs >= product.terminatedAt.getTime()) continue;
      const offering = offerings.get(product.offeringId);
      for (const allowance of offering?.allowances ?? []) {
        const period = allowancePeriod(allowance.period, atMs, account, product);
        wanted.push({
          id: newId(now.getTime()),
          billingAccountId: account.id,
          productId: line.plan.id,
          sourceProductId: product.id,
          offeringId: product.offeringId,
          allowanceId: allowance.id,
          service: allowance.service,
          destinations: allowance.destinations ?? null,
          roaming: allowance.roaming ?? null,
          granted: allowance.units,
          periodStart: new Date(period.startMs),
          periodEnd: new Date(period.endMs),
          createdAt: now,
        });
      }
    }
    const key = [
      line.plan.id,
      ...wanted.map((row) => `${row.sourceProductId}/${row.allowanceId}/${(row.periodStart as Date).getTime()}`),
    ].join("|");
    const cached = cache?.get(key);
    if (cached !== undefined) return cached;
    if (wanted.length > 0) await db.insert(allowanceBuckets).values(wanted).onConflictDoNothing();
    const at = new Date(atMs);
    const rows = await db
      .select()
      .from(allowanceBuckets)
      .where(
        and(
          eq(allowanceBuckets.productId, line.plan.id),
          lte(allowanceBuckets.periodStart, at),
          gt(allowanceBuckets.periodEnd, at),
        ),
      )
      .orderBy(asc(allowanceBuckets.periodEnd), asc(allowanceBuckets.id));
    cache?.set(key, rows);
    return rows;
  }

  async ofLines(db: Db, productIds: readonly string[]): Promise<BucketRow[]> {
    if (productIds.length === 0) return [];
    return db
      .select()
      .from(allowanceBuckets)
      .where(inArray(allowanceBuckets.productId, [...productIds]))
      .orderBy(asc(allowanceBuckets.periodStart), asc(allowanceBuckets.id));
  }
}
