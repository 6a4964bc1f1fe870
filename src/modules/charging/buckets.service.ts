import { createHash } from "node:crypto";
import { and, eq, like, sql } from "drizzle-orm";
import type { Clock } from "../../platform/clock.js";
import { type Database, type Db, queryRows } from "../../platform/database.js";
import {
  type BillCycle,
  cycleAt,
  cyclePeriod,
  daysLeft,
  type Period,
  periodDays,
  prorateUnits,
  prorationBasis,
  rollingPeriod,
} from "../../shared/calendar.js";
import { newId } from "../../shared/ids.js";
import { RENEW_CANDIDATE_PAGE } from "../../shared/limits.js";
import type { Allowance, Offering } from "../catalog/index.js";
import type { Product } from "../subscriptions/index.js";
import { allowanceBuckets, type BucketRow, balanceOperations } from "./charging.tables.js";
import { type AccountState, type ChargingStore, operationMark } from "./store/charging-store.js";

export interface AccountCycle {
  id: string;
  /** The account's bill cycle (a change of cycle day or zone included): bill-cycle allowances follow its periods. */
  cycle: BillCycle;
  currency: string;
  accountType: "prepaid" | "postpaid";
}

/** The period of an allowance at an instant: the bill period, or 30 days rolling from the line's activation. */
export function allowancePeriod(
  period: "billCycle" | "30days",
  atMs: number,
  account: Pick<AccountCycle, "cycle">,
  line: Product,
): Period {
  if (period === "30days") return rollingPeriod(atMs, (line.activatedAt ?? line.createdAt).getTime(), 30);
  return cyclePeriod(atMs, account.cycle);
}

/**
 * What an allowance grants in a period for a product that started at `fromMs`: all of it, or — a bill-cycle
 * allowance whose product started during the period — the share of the period's local calendar days left from
 * the start day (inclusive), rounded down to whole units. Rolling periods start at activation, so never partly.
 * The share is of `basis`'s days: a transition period after a change of cycle is prorated against the new cycle's
 * full period that ends with it (prorationBasis), as billing prorates its charges; any other period is its own.
 */
export function proratedUnits(
  allowance: Allowance,
  period: Period,
  fromMs: number,
  timeZone: string,
  basis: Period = period,
): number {
  if (allowance.period !== "billCycle") return allowance.units;
  const days = daysLeft(period, fromMs, timeZone);
  const totalDays = periodDays(basis, timeZone);
  return days >= totalDays ? allowance.units : prorateUnits(allowance.units, days, totalDays);
}

/** proratedUnits of a bill-cycle period of the account, counted in the zone in effect at its start. */
function accountProratedUnits(allowance: Allowance, period: Period, fromMs: number, account: AccountCycle): number {
  const timeZone = cycleAt(period.startMs, account.cycle).timeZone;
  return proratedUnits(allowance, period, fromMs, timeZone, prorationBasis(period, account.cycle));
}

/** A bucket id derived from another (a rollover's), the same on every retry. */
function derivedId(seed: string): string {
  const hex = createHash("sha256").update(seed).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The buckets holding a line's events at an instant, in draw order: its own and its account's shared ones whose
 * period holds it, and rollover buckets whose source period holds it (a late event of the period before uses
 * what was carried over, as it would have before the carry).
 */
function covering(rows: BucketRow[], lineId: string, atMs: number): BucketRow[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  const holds = (row: BucketRow | undefined) =>
    row !== undefined && row.periodStart.getTime() <= atMs && row.periodEnd.getTime() > atMs;
  return rows
    .filter((row) => holds(row) || (row.rolledFrom !== null && holds(byId.get(row.rolledFrom))))
    .sort(drawOrder(lineId));
}

/** A regular bucket's identity: holder, offering, allowance and period (and, not shared, the product it is for). */
function bucketKey(row: Wanted["row"] | BucketRow): string {
  return `${row.productId}/${row.shared ? "" : row.sourceProductId}/${row.offeringId}/${row.allowanceId}/${(row.periodStart as Date).getTime()}`;
}

/** A wanted bucket's settling identity: holder, source product, offering, allowance and period. */
function settledKey(row: Wanted["row"] | BucketRow): string {
  return `${row.productId}/${row.sourceProductId}/${row.offeringId}/${row.allowanceId}/${(row.periodStart as Date).getTime()}`;
}

/** Buckets that may cover an event are drawn in this order: the first to end, rollover, the line's own, then by id. */
function drawOrder(lineId: string) {
  return (a: BucketRow, b: BucketRow) =>
    a.periodEnd.getTime() - b.periodEnd.getTime() ||
    Number(b.rolledFrom !== null) - Number(a.rolledFrom !== null) ||
    Number(b.productId === lineId) - Number(a.productId === lineId) ||
    a.id.localeCompare(b.id);
}

interface Wanted {
  row: typeof allowanceBuckets.$inferInsert;
  allowance: Allowance;
  /** The product whose allowance it is (a line's plan or add-on). */
  source: Product;
}

/**
 * Allowance buckets (DESIGN.md §2): per line, or per account when the allowance is shared; one per allowance and
 * period, created the first time a period is needed (activation, the first event of a period, the renewal job)
 * and never twice (unique indexes). Creating a period's bucket also settles the period before it: a bucket that
 * rolls over moves its unused units, up to the cap, into a rollover bucket. A line that joins a shared bucket
 * adds its share. Every move is applied to the charging store once (a once-mark) and written to the ledger
 * (`balance_operations`), so reconciliation rebuilds the same grants.
 */
export class BucketsService {
  /**
   * Buckets this process has created and settled (shares, rollover): later batches skip the statements. Bounded,
   * and only an optimisation — every step of it is idempotent.
   */
  private readonly settled = new Set<string>();
  /** Bucket rows by holder, as this process last read them: refreshed when it makes one, or the store shows one. */
  private readonly known = new Map<string, Map<string, BucketRow>>();

  constructor(
    private readonly deps: {
      clock: Clock;
      database: Database;
      store: ChargingStore;
      /** The products (lines and add-ons) of an account on an offering, terminated ones included. */
      products: (db: Db, accountId: string, offeringId: string) => Promise<Product[]>;
      /** Which products are active, and which (account|offering) pairs have an active product (subscriptions). */
      activeAmong: (
        db: Db,
        productIds: readonly string[],
        accountIds: readonly string[],
      ) => Promise<{ products: Set<string>; accountOfferings: Set<string> }>;
    },
  ) {}

  /**
   * The buckets that may cover a line's events at `atMs` — its own and its account's shared ones, in draw order —
   * with what is missing created, settled and granted in the store. With a cache (one per batch), events of the
   * same line and periods cost the database once.
   */
  async ensure(
    db: Db,
    account: AccountCycle,
    line: { plan: Product; addons: Product[] },
    offerings: ReadonlyMap<string, Offering>,
    atMs: number,
    cache?: Map<string, BucketRow[]>,
    reread = false,
  ): Promise<BucketRow[]> {
    const periods = this.periods(account, line, offerings, atMs);
    const key = [
      line.plan.id,
      ...periods.map(({ product, allowance, period }) => `${product.id}/${allowance.id}/${period.startMs}`),
    ].join("|");
    const cached = cache?.get(key);
    if (cached !== undefined) return cached;
    const wanted = this.wanted(account, line, periods);
    const fresh = wanted.filter(({ row }) => !this.settled.has(settledKey(row)));
    if (fresh.length > 0) {
      await db
        .insert(allowanceBuckets)
        .values(fresh.map(({ row }) => row))
        .onConflictDoNothing();
      await this.settle(db, account, fresh);
      if (this.settled.size + fresh.length > 100_000) this.settled.clear();
      for (const { row } of fresh) this.settled.add(settledKey(row));
      this.known.delete(line.plan.id);
      this.known.delete(account.id);
    }
    const [own, shared] = await Promise.all([this.rowsOf(db, line.plan.id), this.rowsOf(db, account.id, true)]);
    // A wanted bucket this process has not seen (made by another one since): read the holder again.
    const seen = (row: Wanted["row"]) =>
      [...(row.shared ? shared : own).values()].some(
        (bucket) => bucket.rolledFrom === null && bucketKey(bucket) === bucketKey(row),
      );
    if (!wanted.every(({ row }) => seen(row))) {
      if (reread) throw new Error(`the buckets of line ${line.plan.id} at ${new Date(atMs).toISOString()} are missing`);
      this.known.delete(line.plan.id);
      this.known.delete(account.id);
      return this.ensure(db, account, line, offerings, atMs, cache, true);
    }
    const rows = covering([...own.values(), ...shared.values()], line.plan.id, atMs);
    cache?.set(key, rows);
    return rows;
  }

  /**
   * After a read of the store: a holder whose state has a bucket this process has not seen (a rollover made by
   * another worker) is read again at its next use. Answers whether any was.
   */
  stale(state: AccountState): boolean {
    let stale = false;
    for (const [holder, line] of state.lines) {
      const rows = this.known.get(holder);
      if (rows !== undefined && line.buckets.some((bucket) => !rows.has(bucket.id))) {
        this.known.delete(holder);
        stale = true;
      }
    }
    return stale;
  }

  /** Every bucket row of a holder (a line, or an account's shared ones), as this process last read them. */
  private async rowsOf(db: Db, holder: string, shared = false): Promise<Map<string, BucketRow>> {
    let rows = this.known.get(holder);
    if (rows === undefined) {
      const read = await db
        .select()
        .from(allowanceBuckets)
        .where(
          shared
            ? and(eq(allowanceBuckets.productId, holder), eq(allowanceBuckets.shared, true))
            : eq(allowanceBuckets.productId, holder),
        );
      rows = new Map(read.map((row) => [row.id, row]));
      if (this.known.size >= 50_000) this.known.clear();
      this.known.set(holder, rows);
    }
    return rows;
  }

  /** The allowances of a line's products that hold at `atMs`, each with its period then. */
  private periods(
    account: AccountCycle,
    line: { plan: Product; addons: Product[] },
    offerings: ReadonlyMap<string, Offering>,
    atMs: number,
  ): Array<{ product: Product; allowance: Allowance; period: Period }> {
    const out: Array<{ product: Product; allowance: Allowance; period: Period }> = [];
    for (const product of [line.plan, ...line.addons]) {
      // An add-on counts from its own activation until it ends.
      if (product.activatedAt === null) continue;
      const from = product.activatedAt.getTime();
      if (atMs < from || (product.terminatedAt !== null && atMs >= product.terminatedAt.getTime())) continue;
      for (const allowance of offerings.get(product.offeringId)?.allowances ?? []) {
        out.push({ product, allowance, period: allowancePeriod(allowance.period, atMs, account, product) });
      }
    }
    return out;
  }

  /** The rows a line's products want for those periods. */
  private wanted(
    account: AccountCycle,
    line: { plan: Product; addons: Product[] },
    periods: Array<{ product: Product; allowance: Allowance; period: Period }>,
  ): Wanted[] {
    const wanted: Wanted[] = [];
    const now = this.deps.clock.now();
    for (const { product, allowance, period } of periods) {
      const granted = accountProratedUnits(allowance, period, (product.activatedAt as Date).getTime(), account);
      if (granted <= 0) continue;
      const shared = allowance.shared === true;
      wanted.push({
        allowance,
        source: product,
        row: {
          id: newId(now.getTime()),
          billingAccountId: account.id,
          productId: shared ? account.id : line.plan.id,
          sourceProductId: product.id,
          offeringId: product.offeringId,
          allowanceId: allowance.id,
          service: allowance.service,
          destinations: allowance.destinations ?? null,
          roaming: allowance.roaming ?? null,
          granted,
          periodStart: new Date(period.startMs),
          periodEnd: new Date(period.endMs),
          shared,
          rolledFrom: null,
          createdAt: now,
        },
      });
    }
    return wanted;
  }

  /**
   * Settles wanted buckets: a shared bucket gets the share of every line of the account on its offering that is
   * active in the period (not only the lines that happen to have events), and a bucket that rolls over is rolled
   * from the period before it into itself and, when it was made late (a late event of a period whose successor
   * exists), from itself into its successor — so what rolls never depends on which process saw what first.
   */
  private async settle(db: Db, account: AccountCycle, wanted: Wanted[]): Promise<void> {
    for (const { row, allowance } of wanted) {
      if (!row.shared && allowance.rolloverMaxUnits === undefined) continue;
      const [current] = await this.regular(db, row, row.periodStart as Date, "start");
      if (current === undefined) continue;
      if (row.shared) await this.share(db, account, current, allowance);
      if (allowance.rolloverMaxUnits === undefined) continue;
      const [previous] = await this.regular(db, row, current.periodStart, "end");
      if (previous !== undefined) await this.roll(db, account, previous, current, allowance.rolloverMaxUnits);
      const [next] = await this.regular(db, row, current.periodEnd, "start");
      if (next !== undefined) await this.roll(db, account, current, next, allowance.rolloverMaxUnits);
    }
  }

  /** Every active line's share of a shared bucket, once each (the line that made it is in its grant already). */
  private async share(db: Db, account: AccountCycle, pool: BucketRow, allowance: Allowance): Promise<void> {
    const period = { key: "", startMs: pool.periodStart.getTime(), endMs: pool.periodEnd.getTime() };
    // The shares already in the ledger, in one read (a large shared account must not cost a read per line).
    const recorded = new Set(
      (
        await db
          .select({ key: balanceOperations.idempotencyKey })
          .from(balanceOperations)
          .where(
            and(
              eq(balanceOperations.billingAccountId, account.id),
              like(balanceOperations.idempotencyKey, `allowance:${pool.id}:%`),
            ),
          )
      ).map((row) => row.key),
    );
    for (const product of await this.deps.products(db, account.id, pool.offeringId)) {
      if (product.id === pool.sourceProductId || product.activatedAt === null) continue;
      if (recorded.has(`allowance:${pool.id}:${product.id}`)) continue;
      const from = product.activatedAt.getTime();
      if (from >= period.endMs || (product.terminatedAt !== null && product.terminatedAt.getTime() <= period.startMs))
        continue;
      const units = accountProratedUnits(allowance, period, from, account);
      if (units <= 0) continue;
      await this.move(db, account, pool, `allowance:${pool.id}:${product.id}`, async (mark) => {
        const applied = await this.deps.store.adjust({
          accountId: account.id,
          id: mark,
          productId: pool.productId,
          bucket: { bucketId: pool.id, delta: units },
          rearm: [],
        });
        if (applied.status === "refused") throw new Error(`sharing bucket ${pool.id}: ${applied.reason}`);
        return { units, productId: product.id };
      });
    }
  }

  /** Rolls a bucket's unused units (up to the cap) into a rollover bucket valid in its successor's period. */
  private async roll(db: Db, account: AccountCycle, from: BucketRow, into: BucketRow, cap: number): Promise<void> {
    const to = derivedId(`rollover:${from.id}`);
    await this.move(db, account, from, `rollover:${from.id}`, async (mark, tx) => {
      const moved = await this.deps.store.rollover({
        accountId: account.id,
        id: mark,
        holder: from.productId,
        from: from.id,
        to,
        cap,
      });
      if (moved.status === "refused") throw new Error(`rolling bucket ${from.id} over: ${moved.reason}`);
      if (moved.units > 0) {
        await tx
          .insert(allowanceBuckets)
          .values({
            ...from,
            id: to,
            granted: moved.units,
            periodStart: into.periodStart,
            periodEnd: into.periodEnd,
            rolledFrom: from.id,
            createdAt: this.deps.clock.now(),
          })
          .onConflictDoNothing();
      }
      return { units: -moved.units, productId: from.sourceProductId };
    });
  }

  /** The regular (not rollover) bucket of a wanted row's holder and allowance starting, or ending, at an instant. */
  private regular(db: Db, row: Wanted["row"], at: Date, edge: "start" | "end"): Promise<BucketRow[]> {
    return db
      .select()
      .from(allowanceBuckets)
      .where(
        and(
          eq(allowanceBuckets.productId, row.productId as string),
          eq(allowanceBuckets.offeringId, row.offeringId),
          eq(allowanceBuckets.allowanceId, row.allowanceId),
          eq(allowanceBuckets.shared, row.shared as boolean),
          row.shared ? undefined : eq(allowanceBuckets.sourceProductId, row.sourceProductId),
          sql`${allowanceBuckets.rolledFrom} is null`,
          eq(edge === "start" ? allowanceBuckets.periodStart : allowanceBuckets.periodEnd, at),
        ),
      )
      .limit(1);
  }

  /**
   * Moves units into or out of a bucket once: the store applies the move under a once-mark (so a retry, or a
   * second worker, gets the same answer), then the ledger row follows with what the store moved. A crash between
   * them is finished by the next call; reconciliation rebuilds the store from the ledger rows.
   */
  private async move(
    db: Db,
    account: AccountCycle,
    bucket: BucketRow,
    key: string,
    apply: (mark: string, tx: Db) => Promise<{ units: number; productId: string }>,
  ): Promise<void> {
    const [recorded] = await db
      .select({ id: balanceOperations.id })
      .from(balanceOperations)
      .where(and(eq(balanceOperations.billingAccountId, account.id), eq(balanceOperations.idempotencyKey, key)));
    if (recorded === undefined) {
      await this.grant(account, bucket);
      const mark = operationMark(account.id, key);
      await this.deps.database.transaction(async (tx) => {
        const { units, productId } = await apply(mark, tx);
        await tx
          .insert(balanceOperations)
          .values({
            id: newId(this.deps.clock.now().getTime()),
            kind: key.slice(0, key.indexOf(":")),
            billingAccountId: account.id,
            productId,
            bucketId: bucket.id,
            units,
            currency: account.currency,
            reason: key.startsWith("rollover:") ? "unused units carried into the next period" : "a line's share",
            idempotencyKey: key,
            createdAt: this.deps.clock.now(),
          })
          .onConflictDoNothing();
      });
    }
  }

  /** Puts a bucket (and its holder) in the store if it is not there yet. */
  async grant(account: AccountCycle, bucket: BucketRow): Promise<void> {
    const shared = bucket.productId === account.id;
    await this.deps.store.grant(account.id, {
      productId: bucket.productId,
      balance: !shared && account.accountType === "prepaid" ? 0n : null,
      buckets: [{ id: bucket.id, granted: bucket.granted }],
    });
  }

  /**
   * Holders whose bucket's period ended in the last 35 days without a successor while its product (or, shared, a
   * product of the account on the same offering) is still active: the lines or accounts the renewal job gives their new period's
   * buckets, so a rollover and a fresh allowance show before the first event of the period.
   */
  async due(
    db: Db,
    nowMs: number,
    limit: number,
  ): Promise<Array<{ holder: string; accountId: string; shared: boolean }>> {
    const now = new Date(nowMs).toISOString();
    const due = new Map<string, { holder: string; accountId: string; shared: boolean }>();
    // Ended buckets of products that ended too stay without a successor for the whole window; the candidates are
    // paged through in holder order until `limit` holders with an active product are found, so they never crowd
    // out the ones that are due.
    let after = "";
    for (;;) {
      const page = await queryRows<{
        holder: string;
        accountId: string;
        shared: boolean;
        sourceProductId: string;
        offeringId: string;
      }>(
        db,
        sql`select b.product_id::text as holder, b.billing_account_id::text as "accountId", b.shared,
              b.source_product_id::text as "sourceProductId", b.offering_id as "offeringId"
            from allowance_buckets b
            where b.period_end <= ${now}::timestamptz and b.period_end > ${now}::timestamptz - interval '35 days'
              and b.rolled_from is null and b.product_id::text > ${after}
              and not exists (select 1 from allowance_buckets n
                where n.product_id = b.product_id and n.offering_id = b.offering_id and n.allowance_id = b.allowance_id
                  and (b.shared or n.source_product_id = b.source_product_id)
                  and n.rolled_from is null and n.period_start >= b.period_end)
            order by b.product_id
            limit ${RENEW_CANDIDATE_PAGE}`,
      );
      if (page.length === 0) break;
      const active = await this.deps.activeAmong(
        db,
        page.map((row) => row.sourceProductId),
        page.filter((row) => row.shared).map((row) => row.accountId),
      );
      for (const row of page) {
        const stillSold = row.shared
          ? active.accountOfferings.has(`${row.accountId}|${row.offeringId}`)
          : active.products.has(row.sourceProductId);
        if (stillSold && due.size < limit) {
          due.set(row.holder, { holder: row.holder, accountId: row.accountId, shared: row.shared });
        }
      }
      const last = page[page.length - 1]?.holder ?? after;
      if (due.size >= limit || page.length < RENEW_CANDIDATE_PAGE) break;
      // A holder's rows may straddle two pages: the next page starts after the last whole holder.
      after = page.some((row) => row.holder !== last) ? previousHolder(page, last) : last;
    }
    return [...due.values()].sort((a, b) => a.holder.localeCompare(b.holder));
  }
}

/** The last holder of a page before `last` (the page's final holder, whose rows may go on in the next page). */
function previousHolder(page: ReadonlyArray<{ holder: string }>, last: string): string {
  for (let index = page.length - 1; index >= 0; index--) {
    const holder = page[index]?.holder as string;
    if (holder !== last) return holder;
  }
  return last;
}
