/**
 * charging: CDR ingestion and guiding (this module's first part), suspense, the rating queue, and, as the
 * loop grows, rating, balances and reconciliation (DESIGN.md §3, §4). Owns cdr_sources, usage_keys,
 * usage_records and usage_suspense. Reaches lines only through the subscriptions service.
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { AlertSink } from "../../platform/alerts.js";
import { SYSTEM_ACTOR } from "../../platform/audit.js";
import type { Broadcast } from "../../platform/broadcast.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { LINE_INDEX_RELOAD_MS } from "../../shared/limits.js";
import type { CatalogService } from "../catalog/index.js";
import type { CustomerServices } from "../customers/index.js";
import type { SubscriptionsService } from "../subscriptions/index.js";
import { balancesRoutes } from "./balances.routes.js";
import { BalancesService } from "./balances.service.js";
import { BucketsService } from "./buckets.service.js";
import { chargingRoutes } from "./charging.routes.js";
import { IngestService } from "./ingest.service.js";
import type { ShardLeases } from "./leases.js";
import { LineIndex } from "./line-index.js";
import { RatingService } from "./rating.service.js";
import { ReconcileService } from "./reconcile.service.js";
import { SelfCareService, selfCareRoutes } from "./self-care.js";
import { SourcesService } from "./sources.service.js";
import type { ChargingStore } from "./store/charging-store.js";
import { UsageSummaries } from "./summaries.js";
import { ThresholdTable } from "./thresholds.js";
import { UsageService } from "./usage.service.js";
import type { UsageQueue } from "./usage-queue.js";

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
  /** Threshold crossings raise subscriber alerts (the notifications module). */
  alerts: AlertSink;
  log: FastifyBaseLogger;
}

const LINES_CHANNEL = "line-changed";

export async function createChargingModule(deps: ChargingDeps) {
  const lines = new LineIndex(deps.subscriptions);
  const sources = new SourcesService(deps);
  const ingest = new IngestService({ ...deps, sources, lines });
  const usage = new UsageService({ ...deps, lines, ingest });
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
        for (const productId of targets) await deps.subscriptions.setBarring(SYSTEM_ACTOR, productId, "credit", reason);
      }
    },
  });

  // The guiding index: loaded now, kept current by line events from this process and the others, and reloaded
  // on a timer in case a broadcast was lost (a miss is checked in PostgreSQL anyway).
  const refresh = (productIds: string[]) =>
    lines.refresh(deps.database.db, productIds).catch((error: unknown) => {
      deps.log.error({ err: error }, "guiding index refresh failed; the next reload repairs it");
    });
  deps.subscriptions.onLineChange((productIds) => {
    void refresh(productIds);
    // A line that went live gets its balance and this period's buckets at once.
    for (const productId of productIds) {
      rating.grantLine(productId).catch((error: unknown) => {
        deps.log.error({ err: error, productId }, "granting a line's buckets failed; rating grants them later");
      });
    }
    deps.broadcast.publish(LINES_CHANNEL, productIds.join(",")).catch(() => {});
  });
  await deps.broadcast.subscribe(LINES_CHANNEL, (message) => {
    void refresh(message.split(",").filter((id) => id !== ""));
  });
  // Listeners first, then the load: a change made while it runs is applied on top of it.
  await lines.loadAll(deps.database.db);
  const reload = setInterval(() => {
    lines.loadAll(deps.database.db).catch((error: unknown) => {
      deps.log.error({ err: error }, "guiding index reload failed");
    });
  }, LINE_INDEX_RELOAD_MS);
  reload.unref();

  return {
    services: {
      ingest,
      usage,
      sources,
      lines,
      queue: deps.queue,
      rating,
      buckets,
      balances,
      store: deps.store,
      leases: deps.leases,
      reconcile,
      /** What billing reads of rated usage: summaries per account and period, and the rows behind one. */
      summaries: new UsageSummaries(deps.database),
    },
    routes: async (app: FastifyInstance) => {
      await app.register(chargingRoutes({ ingest, usage, sources }));
      await app.register(balancesRoutes(balances));
      await app.register(selfCareRoutes(selfCare));
    },
    stop() {
      clearInterval(reload);
    },
  };
}
