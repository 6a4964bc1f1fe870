/**
 * charging: the rating loop and what it moves (DESIGN.md §3, §4 steps 3–8): rating workers and their shard leases,
 * the charging store, allowance buckets, thresholds and alerts, balances and top-ups (TMF654), reconciliation, and
 * the usage summaries billing reads. Owns allowance_buckets, rated_usage, usage_summaries, balance_operations,
 * charging_thresholds and threshold_crossings. Reads the rating queue and writes suspense through the usage
 * module's service; reaches lines only through the subscriptions service.
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { AlertSink } from "../../platform/alerts.js";
import { SYSTEM_ACTOR } from "../../platform/audit.js";
import type { Broadcast } from "../../platform/broadcast.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import type { CatalogService } from "../catalog/index.js";
import type { CustomerServices } from "../customers/index.js";
import type { SubscriptionsService } from "../subscriptions/index.js";
import type { UsageQueue, UsageService } from "../usage/index.js";
import { balancesRoutes } from "./balances.routes.js";
import { BalancesService } from "./balances.service.js";
import { BucketsService } from "./buckets.service.js";
import type { ShardLeases } from "./leases.js";
import { RatingService } from "./rating.service.js";
import { ReconcileService } from "./reconcile.service.js";
import { SelfCareService, selfCareRoutes } from "./self-care.js";
import type { ChargingStore } from "./store/charging-store.js";
import { ratedView, UsageSummaries } from "./summaries.js";
import { ThresholdTable } from "./thresholds.js";

export interface ChargingDeps extends ServiceDeps {
  subscriptions: SubscriptionsService;
  catalog: CatalogService;
  customers: CustomerServices;
  store: ChargingStore;
  /** Shard leases for a worker: Redis leases with fencing tokens, or every shard for the one embedded process. */
  leases: (workerId: string) => ShardLeases;
  /** A fencing token above every lease token handed out so far (reconciliation's new epoch). */
  newEpoch: () => Promise<number>;
  broadcast: Broadcast;
  queue: UsageQueue;
  /** The usage module's service: records that cannot be rated go to its suspense. */
  usage: UsageService;
  /** Threshold crossings raise subscriber alerts (the notifications module). */
  alerts: AlertSink;
  log: FastifyBaseLogger;
}

export async function createChargingModule(deps: ChargingDeps) {
  const buckets = new BucketsService({
    clock: deps.clock,
    database: deps.database,
    store: deps.store,
    products: (db, accountId, offeringId) => deps.subscriptions.productsOn(db, accountId, offeringId),
    activeAmong: (db, productIds, accountIds) => deps.subscriptions.activeAmong(db, productIds, accountIds),
  });
  const thresholds = new ThresholdTable(deps.database);
  const balances = new BalancesService({ ...deps, thresholds });
  const reconcile = new ReconcileService(deps);
  const selfCare = new SelfCareService({ ...deps, balances });
  // Raising the credit limit (or removing it) lifts postpaid credit barring; lowering it below spend bars (§5).
  deps.customers.onBillingAccountChange((before, after) => {
    const changed =
      before !== null &&
      (before.creditLimit === null) !==
        (after.creditLimit === null ||
          (before.creditLimit !== null && after.creditLimit !== null && !before.creditLimit.equals(after.creditLimit)));
    if (!changed) return;
    balances.reviewCreditBarring(SYSTEM_ACTOR, after.id).catch((error: unknown) => {
      deps.log.error({ err: error, billingAccountId: after.id }, "lifting credit barring failed");
    });
  });
  const rating = new RatingService({
    ...deps,
    suspense: deps.usage,
    buckets,
    thresholds,
    // Credit barring (DESIGN.md §5): the event that crossed is charged, then the line (for a postpaid credit
    // limit, every live line of the account) is barred through subscriptions, which pushes it to the network.
    // A barring that fails is an error of the batch: it is not acknowledged, the replay answers the same crossing,
    // and barring is tried again. A crossing is acted on only while it still holds (a replay after a top-up
    // must not bar the line again).
    onBarring: async (crossings) => {
      for (const crossing of crossings) {
        const creditLimit = crossing.key.startsWith("credit-limit:");
        const state = await deps.store.read(crossing.billingAccountId);
        const stillHolds = creditLimit
          ? await balances.overCreditLimit(crossing.billingAccountId, state)
          : (state.lines.get(crossing.productId)?.balance ?? 0n) < 0n;
        if (!stillHolds) continue;
        const targets = creditLimit
          ? (await deps.subscriptions.liveLines(deps.database.db, crossing.billingAccountId)).map((line) => line.id)
          : [crossing.productId];
        const reason = creditLimit
          ? "barred: the account reached its credit limit"
          : "barred: the prepaid balance is used up";
        for (const productId of targets)
          await deps.subscriptions.setBarring(SYSTEM_ACTOR, productId, "credit", true, reason);
      }
    },
  });

  // The guiding index: loaded now, kept current by line events from this process and the others, and reloaded
  // on a timer in case a broadcast was lost (a miss is checked in PostgreSQL anyway).
  // A line that activates gets its allowance buckets at once (rating grants them later otherwise).
  deps.subscriptions.onLineChange((productIds) => {
    for (const productId of productIds) {
      rating.grantLine(productId).catch((error: unknown) => {
        deps.log.error({ err: error, productId }, "granting a line's buckets failed; rating grants them later");
      });
    }
  });

  return {
    services: {
      rating,
      /** The rating queue the loop reads (the usage module fills it). */
      queue: deps.queue,
      buckets,
      balances,
      store: deps.store,
      leases: deps.leases,
      reconcile,
      /** What billing reads of rated usage: summaries per account and period, and the rows behind one. */
      summaries: new UsageSummaries(deps.database),
      /**
       * Credit barring of postpaid lines is for a bill period: once the next period has begun, its spend restarts
       * and the accounts barred for credit are reviewed (the hourly job; a period begins at a local midnight).
       */
      async reviewCreditBarring(): Promise<{ accounts: number }> {
        const accounts = await deps.subscriptions.accountsWithBarring(deps.database.db, "credit");
        for (const accountId of accounts) {
          await balances.reviewCreditBarring(SYSTEM_ACTOR, accountId, "unbarred: a new bill period began");
        }
        return { accounts: accounts.length };
      },
    },
    routes: async (app: FastifyInstance) => {
      await app.register(balancesRoutes(balances));
      await app.register(selfCareRoutes(selfCare));
    },
    stop() {},
  };
}

export type { SpendCredit, SummarisedRow, UnbilledUsage, UsageSummaries, UsageSummary } from "./summaries.js";
export { ratedView };
