/**
 * charging: CDR ingestion and guiding (this module's first part), suspense, the rating queue, and, as the
 * loop grows, rating, balances and reconciliation (DESIGN.md §3, §4). Owns cdr_sources, usage_keys,
 * usage_records and usage_suspense. Reaches lines only through the subscriptions service.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Broadcast } from "../../platform/broadcast.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { LINE_INDEX_RELOAD_MS } from "../../shared/limits.js";
import type { SubscriptionsService } from "../subscriptions/subscriptions.service.js";
import { chargingRoutes } from "./charging.routes.js";
import { IngestService } from "./ingest.service.js";
import { LineIndex } from "./line-index.js";
import { SourcesService } from "./sources.service.js";
import { UsageService } from "./usage.service.js";
import type { UsageQueue } from "./usage-queue.js";

export interface ChargingDeps extends ServiceDeps {
  subscriptions: SubscriptionsService;
  broadcast: Broadcast;
  queue: UsageQueue;
  log: FastifyBaseLogger;
}

const LINES_CHANNEL = "line-changed";

export async function createChargingModule(deps: ChargingDeps) {
  const lines = new LineIndex(deps.subscriptions);
  const sources = new SourcesService(deps);
  const ingest = new IngestService({ ...deps, sources, lines });
  const usage = new UsageService({ ...deps, lines, ingest });

  // The guiding index: loaded now, kept current by line events from this process and the others, and reloaded
  // on a timer in case a broadcast was lost (a miss is checked in PostgreSQL anyway).
  const refresh = (productIds: string[]) =>
    lines.refresh(deps.database.db, productIds).catch((error: unknown) => {
      deps.log.error({ err: error }, "guiding index refresh failed; the next reload repairs it");
    });
  deps.subscriptions.onLineChange((productIds) => {
    void refresh(productIds);
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
    services: { ingest, usage, sources, lines, queue: deps.queue },
    routes: chargingRoutes({ ingest, usage, sources }),
    stop() {
      clearInterval(reload);
    },
  };
}
