import { sql } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { AlertDraft, AlertSink } from "../../platform/alerts.js";
import type { Clock } from "../../platform/clock.js";
import { type Database, type Db, queryRows } from "../../platform/database.js";
import { crashPoint, poisoned } from "../../platform/faults.js";
import { cyclePeriod } from "../../shared/calendar.js";
import {
  RATING_ACCOUNT_CONCURRENCY,
  RATING_SHARD_CONCURRENCY,
  RECONCILE_SETTLE_MS,
  SWEEP_AFTER_SECONDS,
  SWEEP_INTERVAL_MS,
} from "../../shared/limits.js";
import { Money, toMicro } from "../../shared/money.js";
import type { CatalogService, CompiledTariff, Offering } from "../catalog/index.js";
import type { CustomerServices } from "../customers/index.js";
import { destinationOf, priceEvent, RatingError, type RatingEvent, roamingZoneOf } from "../rating/index.js";
import type { LineForRating, Product, SubscriptionsService } from "../subscriptions/index.js";
import type { QueuedUsage, QueueEntry, UsageQueue, UsageService } from "../usage/index.js";
import type { BucketsService } from "./buckets.service.js";
import type { BucketRow } from "./charging.tables.js";
import type { ShardLeases } from "./leases.js";
import type { AccountState, ChargeEvent, ChargingStore, Crossing, Draw, Threshold } from "./store/charging-store.js";
import { recordRated } from "./summaries.js";
import { balanceThresholds, creditLimitThreshold, crossingAlert, type ThresholdTable } from "./thresholds.js";

/** A record handed out this many times without being rated goes to suspense (a poison record). */
export const POISON_DELIVERIES = 5;

/** The step refused this worker's fencing token: another worker holds the shard's lease now. */
export class FencedError extends Error {
  constructor(readonly fence: number) {
    super(`fenced: the account has seen token ${fence}`);
  }
}

/** How many times an account's batch is re-read and re-priced after another writer moved its state. */
const REPRICE_ATTEMPTS = 8;
type Profile = NonNullable<Awaited<ReturnType<CustomerServices["chargingProfile"]>>>;

/** What a rated event stores: the ledger row, also kept with the dedupe mark so a replay writes the same row. */
export interface RatedResult {
  usageId: string;
  billingAccountId: string;
  productId: string;
  startedAt: string;
  tariffId: string;
  tariffVersion: number;
  recordType: string;
  destination: string | null;
  roaming: string;
  quantity: number;
  allowanceUnits: number;
  chargedUnits: number;
  draws: Draw[];
  amount: string;
  currency: string;
  prepaid: boolean;
  spendPeriod: string;
}

export interface Suspended {
  usageId: string;
  reason: string;
  message: string;
}

export interface RatingDeps {
  database: Database;
  clock: Clock;
  store: ChargingStore;
  queue: UsageQueue;
  /** Records that cannot be rated go to the usage module's suspense, in the rating transaction. */
  suspense: Pick<UsageService, "suspend">;
  catalog: CatalogService;
  customers: CustomerServices;
  subscriptions: SubscriptionsService;
  buckets: BucketsService;
  thresholds: ThresholdTable;
  /** Crossings raise alerts in the transaction that records them. */
  alerts: AlertSink;
  log: FastifyBaseLogger;
  /** Called after commit with the lines a crossing says must be barred. */
  onBarring?: (bar: Array<{ productId: string; billingAccountId: string; key: string }>) => Promise<void>;
}

/** A crossing as rating records it: with its account, line and the alert it raises. */
type RatedCrossing = Crossing & { billingAccountId: string; productId: string | null; alert: AlertDraft };

interface Batch {
  profiles: Map<string, Profile>;
  lines: Map<string, LineForRating>;
}

interface Prepared {
  usage: QueuedUsage;
  line: { plan: Product; addons: Product[] };
  tariff: { compiled: CompiledTariff; version: number };
  event: RatingEvent;
  covering: BucketRow[];
  spendPeriod: string;
}

/**
 * The rating loop's worker (DESIGN.md §4, steps 3–4): read a batch from a shard, price each account's events in
 * order with the pure pricer against the state the store holds, apply them with one atomic step per account
 * (re-reading and re-pricing if another writer moved the state), then write the ledger rows, crossings and
 * suspense rows in one idempotent transaction, and only then acknowledge. A crash anywhere replays safely: the
 * step answers stored results for events it has seen, and the inserts conflict harmlessly.
 */
export class RatingService {
  /** The fencing token this worker writes with (leases hand out larger ones). */
  fence = 1;
  /** Per account, the state this worker's last step left (see kept/keep); bounded. */
  private readonly states = new Map<string, { state: AccountState; holders: Set<string> }>();

  constructor(private readonly deps: RatingDeps) {}

  /**
   * One pass over the shards this worker holds (all of them when no leases are given), each with its lease's
   * fencing token: first the entries handed out before and not acknowledged (a dead worker's, or a failed pass),
   * then new ones; rated, committed, acknowledged. A shard whose writes are fenced is given up without
   * acknowledging anything. Returns how many entries were acknowledged.
   */
  async rateOnce(
    consumer: string,
    count = 500,
    held: ReadonlyMap<number, number> | null = null,
    onFenced: (shard: number) => void = () => {},
  ): Promise<number> {
    let total = 0;
    const shards = [
      ...(held ?? new Map(Array.from({ length: this.deps.queue.shards }, (_, shard) => [shard, this.fence] as const))),
    ];
    // Shards are independent (their accounts are disjoint): a few are worked at once, so a pass takes about as
    // long as its slowest shard rather than the sum of all of them.
    let next = 0;
    const work = async (): Promise<void> => {
      while (next < shards.length) {
        const [shard, token] = shards[next++] as [number, number];
        // Entries handed out before come first; while they fill a batch, nothing newer is read, so an account's
        // records stay in order.
        const claimed = await this.deps.queue.claim(shard, consumer, count);
        const entries =
          claimed.length >= count ? claimed : [...claimed, ...(await this.deps.queue.read(shard, consumer, count, 0))];
        if (entries.length === 0) continue;
        try {
          const done = await this.rate(entries, token);
          if (done.length > 0) crashPoint("after-commit");
          await this.deps.queue.ack(shard, done);
          total += done.length;
        } catch (error) {
          if (!(error instanceof FencedError)) throw error;
          this.deps.log.warn({ shard, token, fence: error.fence }, "lease lost: another worker writes this shard now");
          onFenced(shard);
        }
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(RATING_SHARD_CONCURRENCY, shards.length) }, work),
    );
    const failed = results.find((result) => result.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    return total;
  }

  /**
   * Rates entries with a fencing token and answers the ids that may be acknowledged: every entry of an account
   * whose step applied and committed; an account that fails keeps its entries for the next pass, until an entry
   * has been handed out POISON_DELIVERIES times and goes to suspense with the error (a poison record).
   */
  async rate(entries: readonly QueueEntry[], fence = this.fence): Promise<string[]> {
    const byAccount = new Map<string, QueueEntry[]>();
    for (const entry of entries) {
      const list = byAccount.get(entry.usage.billingAccountId) ?? [];
      list.push(entry);
      byAccount.set(entry.usage.billingAccountId, list);
    }
    const rated: RatedResult[] = [];
    const crossings: RatedCrossing[] = [];
    const suspended: Suspended[] = [];
    const done: string[] = [];
    // Accounts are independent (one step each, on their own keys): a few are rated at once, so one account's
    // round trips to PostgreSQL and Redis overlap another's. Each account's events stay in order.
    const accounts = [...byAccount];
    const batch = await this.batchOf(entries);
    let next = 0;
    let stepped = 0;
    let fenced: FencedError | null = null;
    const rateNext = async (): Promise<void> => {
      while (fenced === null && next < accounts.length) {
        const [accountId, group] = accounts[next++] as [string, QueueEntry[]];
        try {
          await rateGroup(accountId, group);
        } catch (error) {
          if (!(error instanceof FencedError)) throw error;
          fenced = error;
        }
      }
    };
    const rateGroup = async (accountId: string, group: QueueEntry[]): Promise<void> => {
      // A record on the queue twice (a resent XADD, a sweep) is rated once: the step deduplicates, this keeps order.
      const usages = [...new Map(group.map((entry) => [entry.usage.usageId, entry.usage])).values()];
      try {
        const outcome = await this.rateAccount(accountId, usages, fence, batch);
        stepped += 1;
        if (stepped < accounts.length) crashPoint("mid-batch");
        rated.push(...outcome.rated);
        crossings.push(...outcome.crossings);
        suspended.push(...outcome.suspended);
        done.push(...group.map((entry) => entry.id));
      } catch (error) {
        if (error instanceof FencedError) throw error;
        // One record may be the cause: each is tried alone, so the others go on and only the poison one waits.
        for (const entry of group) {
          try {
            const alone = await this.rateAccount(accountId, [entry.usage], fence, batch);
            rated.push(...alone.rated);
            crossings.push(...alone.crossings);
            suspended.push(...alone.suspended);
            done.push(entry.id);
          } catch (single) {
            if (single instanceof FencedError) throw single;
            const deliveries = entry.deliveries ?? 1;
            this.deps.log.error(
              { err: single, accountId, usageId: entry.usage.usageId, deliveries },
              deliveries >= POISON_DELIVERIES ? "a poison record goes to suspense" : "rating a record failed; retried",
            );
            if (deliveries < POISON_DELIVERIES) continue;
            const message = single instanceof Error ? single.message : String(single);
            suspended.push({
              usageId: entry.usage.usageId,
              reason: "rating_failed",
              message: `rating failed ${deliveries} times: ${message}`.slice(0, 500),
            });
            done.push(entry.id);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RATING_ACCOUNT_CONCURRENCY, accounts.length) }, rateNext));
    if (fenced !== null) throw fenced;
    crashPoint("after-step");
    await this.record(rated, crossings, suspended);
    const barring = crossings
      .filter((crossing) => crossing.key.startsWith("credit-limit:") || crossing.key.startsWith("balance-exhausted:"))
      .map((crossing) => ({
        key: crossing.key,
        billingAccountId: crossing.billingAccountId,
        productId: crossing.productId ?? "",
      }));
    if (barring.length > 0 && this.deps.onBarring) await this.deps.onBarring(barring);
    return done;
  }

  /** What a batch's accounts and lines are, read once for the whole batch (two reads instead of two per account). */
  private async batchOf(entries: readonly QueueEntry[]): Promise<Batch> {
    const db = this.deps.database.db;
    const [profiles, lines] = await Promise.all([
      this.deps.customers.chargingProfiles(
        db,
        entries.map((entry) => entry.usage.billingAccountId),
      ),
      this.deps.subscriptions.linesForRating(
        db,
        entries.map((entry) => entry.usage.productId),
      ),
    ]);
    return { profiles, lines };
  }

  private async rateAccount(accountId: string, usages: QueuedUsage[], fence: number, batch: Batch) {
    const db = this.deps.database.db;
    const suspended: Suspended[] = [];
    const profile = batch.profiles.get(accountId);
    if (profile === undefined) {
      return {
        rated: [],
        crossings: [],
        suspended: usages.map((usage) => ({
          usageId: usage.usageId,
          reason: "no_account",
          message: "the account is gone",
        })),
      };
    }
    const snapshot = await this.deps.catalog.snapshot();
    const offerings = offeringsOf(snapshot);
    const bucketCache = new Map<string, BucketRow[]>();
    const prepared: Prepared[] = [];
    for (const usage of usages) {
      const line = batch.lines.get(usage.productId);
      if (line === undefined) {
        suspended.push({
          usageId: usage.usageId,
          reason: "no_line",
          message: `line ${usage.productId} does not exist`,
        });
        continue;
      }
      // Suspension and termination stop rating: an event from while the line was not active waits in suspense.
      const status = statusAt(line.history, usage.startedAtMs);
      if (status !== "active") {
        suspended.push({
          usageId: usage.usageId,
          reason: status === "suspended" ? "line_suspended" : "line_not_active",
          message: `the line was ${status ?? "not yet created"} at ${new Date(usage.startedAtMs).toISOString()}`,
        });
        continue;
      }
      const tariff = this.tariffOf(line.plan, offerings, snapshot.tariffs);
      if (tariff === null) {
        suspended.push({
          usageId: usage.usageId,
          reason: "no_tariff",
          message: `plan ${line.plan.offeringId} has no tariff in ${line.plan.currency}`,
        });
        continue;
      }
      const event = ratingEvent(usage);
      try {
        const covering = await this.covering(db, profile, line, offerings, tariff.compiled, event, bucketCache);
        prepared.push({
          usage,
          line,
          tariff,
          event,
          covering,
          spendPeriod: cyclePeriod(usage.startedAtMs, profile.cycle).key,
        });
      } catch (error) {
        if (!(error instanceof RatingError)) throw error;
        suspended.push({ usageId: usage.usageId, reason: error.code, message: error.message });
      }
    }
    if (prepared.length === 0) return { rated: [], crossings: [], suspended };

    // The lines and bucket holders the step reads and writes; the account itself always, so a shared bucket made
    // by another process since (which this one's bucket rows do not show yet) is seen at once.
    const holders = [
      ...new Set([
        accountId,
        ...prepared.flatMap((item) => [item.line.plan.id, ...item.covering.map((bucket) => bucket.productId)]),
      ]),
    ];
    const usageIds = prepared.map((item) => item.usage.usageId);
    // The state this worker left after its last step on the account, if it covers these events: priced against
    // without a read; the step's version check (and its strict check of applied marks) refuses it if anyone else
    // has written since, and then the state is read.
    let kept = this.kept(accountId, holders, prepared);
    for (let attempt = 0; ; attempt++) {
      let state: AccountState;
      let applied: Set<string>;
      const strict = kept !== undefined;
      if (kept !== undefined) {
        state = kept;
        applied = new Set();
        kept = undefined;
      } else {
        // Records the store has applied already (a replay after a failed commit or a crash) are not priced again:
        // their draws are in the state, and the step answers their stored result.
        ({ state, applied } = await this.deps.store.readForRating(accountId, holders, usageIds));
        if (this.deps.buckets.stale(state)) {
          // The store holds a bucket this worker has not seen (a rollover another one made): cover again.
          const again = new Map<string, BucketRow[]>();
          for (const item of prepared) {
            item.covering = await this.covering(
              db,
              profile,
              item.line,
              offerings,
              item.tariff.compiled,
              item.event,
              again,
            );
          }
        }
        // Lines and buckets the store does not hold yet are granted first (activation, a new period).
        let granted = false;
        const grantedLines = new Set<string>();
        for (const item of prepared) {
          if (!state.lines.has(item.line.plan.id) && !grantedLines.has(item.line.plan.id)) {
            await this.deps.store.grant(accountId, {
              productId: item.line.plan.id,
              balance: profile.accountType === "prepaid" ? 0n : null,
              buckets: [],
            });
            grantedLines.add(item.line.plan.id);
            granted = true;
          }
          for (const bucket of item.covering) {
            if (state.lines.get(bucket.productId)?.buckets.some((candidate) => candidate.id === bucket.id)) continue;
            await this.deps.buckets.grant(profile, bucket);
            granted = true;
          }
        }
        if (granted) ({ state, applied } = await this.deps.store.readForRating(accountId, holders, usageIds));
      }

      const planned = new Map<string, number>();
      const built = new Map<string, RatedResult>();
      const events: ChargeEvent[] = [];
      const failed = new Set<string>();
      for (const item of prepared) {
        if (applied.has(item.usage.usageId)) {
          events.push({
            usageId: item.usage.usageId,
            productId: item.line.plan.id,
            period: item.spendPeriod,
            draws: [],
            charge: 0n,
            prepaid: false,
            result: "",
            known: true,
          });
          continue;
        }
        // The store's grant counts adjustments, shares and rollovers; the table holds the grant as created.
        const remaining = item.covering.map((bucket) => {
          const stored = state.lines.get(bucket.productId)?.buckets.find((candidate) => candidate.id === bucket.id);
          const used = (stored?.used ?? 0) + (planned.get(bucket.id) ?? 0);
          return { bucket, left: Math.max(0, (stored?.granted ?? bucket.granted) - used) };
        });
        const available = remaining.reduce((sum, entry) => sum + entry.left, 0);
        let priced: ReturnType<typeof priceEvent>;
        try {
          priced = priceEvent(item.tariff.compiled, item.event, available);
        } catch (error) {
          if (!(error instanceof RatingError)) throw error;
          suspended.push({ usageId: item.usage.usageId, reason: error.code, message: error.message });
          failed.add(item.usage.usageId);
          continue;
        }
        // Buckets that end first are drawn first.
        let toDraw = priced.allowanceUnits;
        const draws: Draw[] = [];
        for (const { bucket, left } of remaining) {
          if (toDraw === 0) break;
          const units = Math.min(left, toDraw);
          if (units > 0) {
            draws.push(
              bucket.productId === item.line.plan.id
                ? { bucketId: bucket.id, units }
                : { bucketId: bucket.id, units, holder: bucket.productId },
            );
            planned.set(bucket.id, (planned.get(bucket.id) ?? 0) + units);
            toDraw -= units;
          }
        }
        const prepaid = profile.accountType === "prepaid";
        const result: RatedResult = {
          usageId: item.usage.usageId,
          billingAccountId: accountId,
          productId: item.line.plan.id,
          startedAt: new Date(item.usage.startedAtMs).toISOString(),
          tariffId: item.tariff.compiled.id,
          tariffVersion: item.tariff.version,
          recordType: item.usage.recordType,
          destination: priced.destination,
          roaming: priced.roaming,
          quantity: priced.quantity,
          allowanceUnits: priced.allowanceUnits,
          chargedUnits: priced.chargedUnits,
          draws,
          amount: priced.total.toFixed(),
          currency: priced.currency,
          prepaid,
          spendPeriod: item.spendPeriod,
        };
        events.push({
          usageId: item.usage.usageId,
          productId: item.line.plan.id,
          period: item.spendPeriod,
          draws,
          charge: toMicro(priced.total),
          prepaid,
          result: JSON.stringify(result),
        });
        built.set(item.usage.usageId, result);
      }
      if (events.length === 0) return { rated: [], crossings: [], suspended };
      const thresholds = await this.thresholds(
        profile,
        prepared.filter((item) => !failed.has(item.usage.usageId)),
        state,
      );
      if (poisoned(accountId)) throw new Error("injected fault: a poison record (BSS_FAULT)");
      const answer = await this.deps.store.step({
        accountId,
        fence,
        version: state.version,
        events,
        thresholds,
        strict,
      });
      if (answer.status !== "applied") this.states.delete(accountId);
      if (answer.status === "version_mismatch" && attempt < REPRICE_ATTEMPTS) {
        // Another writer (a top-up, a grant) moved the state: drop this attempt's suspense and re-price.
        for (let i = suspended.length - 1; i >= 0; i--)
          if (failed.has((suspended[i] as Suspended).usageId)) suspended.splice(i, 1);
        continue;
      }
      if (answer.status === "fenced") throw new FencedError(answer.fence);
      if (answer.status !== "applied") {
        throw new Error(`charging step for account ${accountId} not applied: ${JSON.stringify(answer)}`);
      }
      this.keep(accountId, holders, state, events, answer.outcomes, answer.version);
      const productOf = new Map(events.map((event) => [event.usageId, event.productId]));
      const watched = new Map(thresholds.map((threshold) => [threshold.key, threshold]));
      const serviceOf = new Map(prepared.flatMap((item) => item.covering.map((bucket) => [bucket.id, bucket.service])));
      return {
        // A fresh event's row is the one built here; a replayed one's comes from the store's mark.
        rated: answer.outcomes.map(
          (outcome) =>
            (outcome.duplicate ? undefined : built.get(outcome.usageId)) ?? (JSON.parse(outcome.result) as RatedResult),
        ),
        crossings: answer.outcomes.flatMap((outcome) =>
          outcome.crossings.map((crossing): RatedCrossing => {
            const threshold = watched.get(crossing.key);
            const productId = crossing.key.startsWith("credit-limit:")
              ? null
              : (productOf.get(crossing.usageId) ?? null);
            const service = crossing.key.startsWith("allowance:")
              ? serviceOf.get(crossing.key.split(":")[1] as string)
              : undefined;
            return {
              ...crossing,
              billingAccountId: accountId,
              productId,
              alert: crossingAlert(crossing, threshold, profile, productId, service),
            };
          }),
        ),
        suspended,
      };
    }
  }

  /** The state kept after this worker's last step on an account, if it holds every line and bucket these need. */
  private kept(accountId: string, holders: readonly string[], prepared: Prepared[]): AccountState | undefined {
    const entry = this.states.get(accountId);
    if (entry === undefined || !holders.every((holder) => entry.holders.has(holder))) return undefined;
    const usable = prepared.every(
      (item) =>
        entry.state.lines.has(item.line.plan.id) &&
        item.covering.every((bucket) =>
          entry.state.lines.get(bucket.productId)?.buckets.some((candidate) => candidate.id === bucket.id),
        ),
    );
    return usable ? entry.state : undefined;
  }

  /**
   * After an applied step: the state it left, computed from the state priced against and the events applied (the
   * same arithmetic as the step), kept for the account's next batch. A step that answered a stored result (a
   * replay) is not followed: the next batch reads.
   */
  private keep(
    accountId: string,
    holders: readonly string[],
    state: AccountState,
    events: ChargeEvent[],
    outcomes: ReadonlyArray<{ usageId: string; duplicate: boolean; crossings: Crossing[] }>,
    version: number,
  ): void {
    this.states.delete(accountId);
    if (outcomes.some((outcome) => outcome.duplicate)) return;
    const byId = new Map(events.map((event) => [event.usageId, event]));
    for (const outcome of outcomes) {
      const event = byId.get(outcome.usageId);
      if (event === undefined) return;
      for (const draw of event.draws) {
        const bucket = state.lines
          .get(draw.holder ?? event.productId)
          ?.buckets.find((candidate) => candidate.id === draw.bucketId);
        if (bucket === undefined) return;
        bucket.used += draw.units;
      }
      const line = state.lines.get(event.productId);
      if (event.prepaid && line?.balance !== null && line?.balance !== undefined) line.balance -= event.charge;
      state.spend.set(event.period, (state.spend.get(event.period) ?? 0n) + event.charge);
      for (const crossing of outcome.crossings) state.crossed.add(crossing.key);
    }
    state.version = version;
    if (this.states.size >= 50_000) this.states.clear();
    this.states.set(accountId, { state, holders: new Set(holders) });
  }

  /** The loop's own periodic work, from the engine's services (renewal and reconciliation are scheduled jobs). */
  static jobs(
    charging: {
      usage: { sweep(queue: UsageQueue, afterSeconds: number): Promise<number> };
      queue: UsageQueue;
      store: ChargingStore;
      reconcile: { run(mode: "check" | "rebuild", only?: readonly string[]): Promise<unknown> };
    },
    sweeping: { sweepAfterSeconds: number; sweepIntervalSeconds: number } = {
      sweepAfterSeconds: SWEEP_AFTER_SECONDS,
      sweepIntervalSeconds: SWEEP_INTERVAL_MS / 1000,
    },
  ): LoopJobs {
    return {
      sweepIntervalMs: sweeping.sweepIntervalSeconds * 1000,
      sweep: () => charging.usage.sweep(charging.queue, sweeping.sweepAfterSeconds),
      initialized: () => charging.store.initialized(),
      rebuild: () => charging.reconcile.run("rebuild"),
    };
  }

  /**
   * The hourly reconciliation job: compares the store with the ledger and rebuilds the accounts that differ.
   * Answers how many accounts it compared and rebuilt.
   */
  static async reconcileJob(
    reconcile: {
      run(
        mode: "check" | "rebuild",
        only?: readonly string[],
      ): Promise<{ accounts: number; mismatched: Array<{ accountId: string; differences: readonly string[] }> }>;
    },
    log: FastifyBaseLogger,
    settleMs = RECONCILE_SETTLE_MS,
  ): Promise<{ accounts: number; rebuilt: number }> {
    const report = await reconcile.run("check");
    if (report.mismatched.length === 0) return { accounts: report.accounts, rebuilt: 0 };
    // A batch whose step has applied in the store and whose rated rows are not committed yet shows as a difference
    // for a moment; rebuilding such an account from the ledger would drop the step's effect from the store while
    // its rows still commit. Only differences that are still the same once the loop has had time to commit are
    // rebuilt.
    await settle(settleMs);
    const again = await reconcile.run(
      "check",
      report.mismatched.map((item) => item.accountId),
    );
    const before = new Map(report.mismatched.map((item) => [item.accountId, JSON.stringify(item.differences)]));
    const lasting = again.mismatched.filter((item) => before.get(item.accountId) === JSON.stringify(item.differences));
    if (lasting.length === 0) return { accounts: report.accounts, rebuilt: 0 };
    log.warn({ mismatched: lasting }, "reconcile: the store differs from the ledger; rebuilding those accounts");
    await reconcile.run(
      "rebuild",
      lasting.map((item) => item.accountId),
    );
    return { accounts: report.accounts, rebuilt: lasting.length };
  }

  /**
   * Grants a line its balance (prepaid) and the buckets of the current period when it goes live, so its
   * buckets show before the first event; the renewal job and rating grant later periods.
   */
  async grantLine(productId: string): Promise<void> {
    const db = this.deps.database.db;
    const line = await this.deps.subscriptions.lineForRating(db, productId);
    if (line === undefined || line.plan.status !== "active") return;
    const profile = await this.deps.customers.chargingProfile(db, line.plan.billingAccountId);
    if (profile === undefined) return;
    const snapshot = await this.deps.catalog.snapshot();
    const offerings = offeringsOf(snapshot);
    const buckets = await this.deps.buckets.ensure(db, profile, line, offerings, this.deps.clock.now().getTime());
    // The line and its own buckets at once (nobody sees the line without them); shared ones beside.
    await this.deps.store.grant(profile.id, {
      productId,
      balance: profile.accountType === "prepaid" ? 0n : null,
      buckets: buckets
        .filter((bucket) => bucket.productId === productId)
        .map((bucket) => ({ id: bucket.id, granted: bucket.granted })),
    });
    for (const bucket of buckets) if (bucket.productId !== productId) await this.deps.buckets.grant(profile, bucket);
  }

  /**
   * The renewal job: lines (and accounts, for shared buckets) whose allowance period ended get the new period's
   * buckets, with the rollover of the old ones, before their first event. Answers how many lines were renewed.
   */
  async renew(limit = 500): Promise<number> {
    const db = this.deps.database.db;
    const due = await this.deps.buckets.due(db, this.deps.clock.now().getTime(), limit);
    const lines = new Set<string>();
    for (const { holder, accountId, shared } of due) {
      if (!shared) lines.add(holder);
      else for (const line of await this.deps.subscriptions.liveLines(db, accountId)) lines.add(line.id);
    }
    let renewed = 0;
    for (const productId of lines) {
      try {
        await this.grantLine(productId);
        renewed += 1;
      } catch (error) {
        // One line that cannot be renewed now (it is retried next run) does not hold up the others.
        this.deps.log.error({ err: error, productId }, "renewing a line's allowance period failed");
      }
    }
    return renewed;
  }

  private tariffOf(
    plan: Product,
    offerings: ReadonlyMap<string, Offering>,
    tariffs: Awaited<ReturnType<CatalogService["snapshot"]>>["tariffs"],
  ): { compiled: CompiledTariff; version: number } | null {
    const tariffId = offerings.get(plan.offeringId)?.tariffs?.[plan.currency];
    const entry = tariffId === undefined ? undefined : tariffs.get(tariffId);
    return entry === undefined ? null : { compiled: entry.compiled, version: entry.info.version };
  }

  /** The buckets that may cover an event (DESIGN.md §4 convention): outgoing, its service, zone and destination. */
  private async covering(
    db: Db,
    profile: Profile,
    line: { plan: Product; addons: Product[] },
    offerings: ReadonlyMap<string, Offering>,
    tariff: CompiledTariff,
    event: RatingEvent,
    cache: Map<string, BucketRow[]>,
  ): Promise<BucketRow[]> {
    const roaming = roamingZoneOf(tariff, event.visitedNetwork);
    const destination = destinationOf(tariff, event.calledNumber);
    const buckets = await this.deps.buckets.ensure(db, profile, line, offerings, event.startMs, cache);
    if (event.direction === "incoming") return [];
    return buckets.filter(
      (bucket) =>
        bucket.service === event.service &&
        (roaming === "home" ? bucket.roaming === null : (bucket.roaming ?? []).includes(roaming)) &&
        (event.service === "data" ||
          bucket.destinations === null ||
          (destination !== null && bucket.destinations.includes(destination))),
    );
  }

  /** The thresholds the step watches for these events, from the threshold table and the account's limits. */
  private async thresholds(profile: Profile, items: Prepared[], state: AccountState): Promise<Threshold[]> {
    const table = await this.deps.thresholds.rows();
    const out: Threshold[] = [];
    const periods = new Set(items.map((item) => item.spendPeriod));
    for (const period of periods) {
      if (profile.accountType === "postpaid") {
        if (profile.billLimit !== null) {
          for (const row of table.filter((row) => row.kind === "bill_limit_percent")) {
            out.push({
              key: `bill-limit:${profile.id}:${period}:${row.value}%`,
              metric: "spend",
              direction: "up",
              value: toMicro(profile.billLimit.mul(row.value).div(100)),
              period,
            });
          }
        }
        if (profile.creditLimit !== null) out.push(creditLimitThreshold(profile.id, period, profile.creditLimit));
      }
      for (const row of table.filter((row) => row.kind === "spend_amount" && row.currency === profile.currency)) {
        out.push({
          key: `spend-amount:${profile.id}:${period}:${row.value}`,
          metric: "spend",
          direction: "up",
          value: toMicro(new Money(row.value)),
          period,
        });
      }
    }
    const lineIds = new Set(items.map((item) => item.line.plan.id));
    if (profile.accountType === "prepaid") {
      for (const productId of lineIds) {
        out.push(...balanceThresholds(productId, profile.currency, table));
      }
    }
    const buckets = new Map(items.flatMap((item) => item.covering.map((bucket) => [bucket.id, bucket] as const)));
    for (const bucket of buckets.values()) {
      const granted =
        state.lines.get(bucket.productId)?.buckets.find((candidate) => candidate.id === bucket.id)?.granted ??
        bucket.granted;
      for (const row of table.filter((row) => row.kind === "allowance_percent")) {
        out.push({
          key: `allowance:${bucket.id}:${row.value}%`,
          metric: "bucket",
          direction: "up",
          value: BigInt(new Money(granted).mul(row.value).div(100).ceil().toFixed()),
          productId: bucket.productId,
          bucketId: bucket.id,
        });
      }
    }
    return out;
  }

  /** Rated rows, crossings and suspense rows in one transaction, each insert idempotent. */
  private async record(rated: RatedResult[], crossings: RatedCrossing[], suspended: Suspended[]): Promise<void> {
    if (rated.length === 0 && crossings.length === 0 && suspended.length === 0) return;
    const now = this.deps.clock.now().toISOString();
    await this.deps.database.transaction(async (tx) => {
      // Rated rows with their usage summaries, in one statement; a row rated before adds nothing.
      await recordRated(tx, rated, now);
      if (crossings.length > 0) {
        const rows = crossings.map((crossing) => ({
          key: crossing.key,
          kind: crossing.key.split(":")[0],
          account: crossing.billingAccountId,
          product: crossing.productId,
          usage: crossing.usageId,
          value: crossing.value.toString(),
        }));
        await this.deps.alerts.record(
          tx,
          crossings.map((crossing) => crossing.alert),
        );
        await queryRows(
          tx,
          sql`insert into threshold_crossings (key, kind, billing_account_id, product_id, usage_id, value, crossed_at)
              select x.key, x.kind, x.account, x.product, x.usage, x.value, ${now}::timestamptz
              from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
                as x(key text, kind text, account uuid, product uuid, usage uuid, value text)
              on conflict do nothing`,
        );
      }
      await this.deps.suspense.suspend(tx, suspended, now);
    });
  }
}

const offeringContents = new WeakMap<object, ReadonlyMap<string, Offering>>();

/** A catalog snapshot's offerings by id, built once per published snapshot rather than once per account. */
function offeringsOf(snapshot: Awaited<ReturnType<CatalogService["snapshot"]>>): ReadonlyMap<string, Offering> {
  let contents = offeringContents.get(snapshot);
  if (contents === undefined) {
    contents = new Map([...snapshot.offerings].map(([id, versioned]) => [id, versioned.content]));
    offeringContents.set(snapshot, contents);
  }
  return contents;
}

/** A line's status at an instant, from its dated history (the last change at or before it). */
export function statusAt(history: ReadonlyArray<{ atMs: number; status: string }>, atMs: number): string | null {
  let status: string | null = null;
  for (const entry of history) {
    if (entry.atMs > atMs) break;
    status = entry.status;
  }
  return status;
}

export function ratingEvent(usage: QueuedUsage): RatingEvent {
  const quantity =
    usage.recordType === "voice"
      ? (usage.duration ?? 0)
      : usage.recordType === "sms"
        ? (usage.messages ?? 1)
        : (usage.volumeUplink ?? 0) + (usage.volumeDownlink ?? 0);
  return {
    service: usage.recordType,
    direction: usage.direction,
    startMs: usage.startedAtMs,
    quantity,
    ...(usage.calledNumber?.startsWith("+") ? { calledNumber: usage.calledNumber } : {}),
    ...(usage.visitedNetwork !== null ? { visitedNetwork: usage.visitedNetwork } : {}),
  };
}

/**
 * Runs rating passes until stopped: a pass over every shard, then a short pause when nothing was waiting.
 * A failed pass is logged and retried after a second; nothing is acknowledged that was not committed.
 */
export interface LoopJobs {
  /** How often one worker (by lease) runs the sweeper. */
  sweepIntervalMs: number;
  sweep(): Promise<number>;
  /** Whether the store holds the ledger's state (false after Redis came back empty). */
  initialized(): Promise<boolean>;
  /** Rebuilds the whole store from the ledger and marks it initialized. */
  rebuild(): Promise<unknown>;
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rating loops running in this process (the embedded engine's; a test clock's drain asks whether one runs). */
let loopsRunning = 0;
export function ratingLoopsRunning(): number {
  return loopsRunning;
}

export function startRatingLoop(
  rating: RatingService,
  leases: ShardLeases,
  log: FastifyBaseLogger,
  jobs: LoopJobs,
  idleMs = 50,
): { stop(): Promise<void> } {
  let stopping = false;
  let nextSweepMs = 0;
  loopsRunning += 1;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const done = (async () => {
    while (!stopping) {
      try {
        // An empty store (Redis restarted without its data) is rebuilt by one worker; the others wait for it
        // rather than write into state that is about to be replaced.
        if (!(await jobs.initialized())) {
          if (await leases.turn("rebuild", 60_000)) {
            log.warn("the charging store is empty: rebuilding it from the ledger");
            await jobs.rebuild();
          } else await sleep(200);
          continue;
        }
        if (Date.now() >= nextSweepMs) {
          nextSweepMs = Date.now() + jobs.sweepIntervalMs;
          if (await leases.turn("sweeper", jobs.sweepIntervalMs)) {
            const swept = await jobs.sweep();
            if (swept > 0) log.warn({ swept }, "sweeper: accepted records that never reached the queue were enqueued");
          }
        }
        const held = await leases.refresh();
        const rated = await rating.rateOnce(leases.workerId, 500, held, (shard) => leases.drop(shard));
        if (rated === 0) await sleep(idleMs);
      } catch (error) {
        log.error({ err: error }, "rating pass failed; retrying");
        await sleep(1_000);
      }
    }
  })();
  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      await done;
      loopsRunning -= 1;
      await leases.releaseAll().catch(() => undefined);
    },
  };
}
