/**
 * usage: the CDRs the network sends, apart from charging them (DESIGN.md §3, §4 steps 1–2, 5, 7): the registered
 * CDR sources, ingestion of the native, TMF635, FreeSWITCH and Asterisk formats, guiding a record to its line,
 * suspense and re-guiding, the rating queue and the sweeper that refills it, and TMF635 usage. Owns cdr_sources,
 * usage_keys, usage_records and usage_suspense. Knows of rating only what the charging module answers through
 * `RatedView` (wired in app.ts); reaches lines only through the subscriptions service.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Broadcast } from "../../platform/broadcast.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { LINE_INDEX_RELOAD_MS } from "../../shared/limits.js";
import type { SubscriptionsService } from "../subscriptions/index.js";
import { IngestService } from "./ingest.service.js";
import { LineIndex } from "./line-index.js";
import { SourcesService } from "./sources.service.js";
import { usageRoutes } from "./usage.routes.js";
import { type RatedView, UsageService } from "./usage.service.js";
import type { UsageQueue } from "./usage-queue.js";

export interface UsageModuleDeps extends ServiceDeps {
  subscriptions: SubscriptionsService;
  broadcast: Broadcast;
  queue: UsageQueue;
  /** Whether a record is rated or billed, and how it was rated: the charging module's answer. */
  rated: RatedView;
  log: FastifyBaseLogger;
}

const LINES_CHANNEL = "line-changed";

export async function createUsageModule(deps: UsageModuleDeps) {
  const lines = new LineIndex(deps.subscriptions);
  const sources = new SourcesService(deps);
  const ingest = new IngestService({ ...deps, sources, lines });
  const usage = new UsageService({ ...deps, lines, ingest });

  // The guiding index follows line changes: this process's own at once, other processes' over the broadcast,
  // and a reload on a timer in case a message was missed.
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
  await lines.loadAll(deps.database.db);
  const reload = setInterval(() => {
    lines.loadAll(deps.database.db).catch((error: unknown) => {
      deps.log.error({ err: error }, "guiding index reload failed");
    });
  }, LINE_INDEX_RELOAD_MS);
  reload.unref();

  return {
    services: { ingest, usage, sources, lines, queue: deps.queue },
    routes: usageRoutes({ ingest, usage, sources }),
    stop() {
      clearInterval(reload);
    },
  };
}

// What other modules may use: the services and the types they speak in.
export type { IngestService } from "./ingest.service.js";
export type { LineIndex } from "./line-index.js";
export type { SourcesService } from "./sources.service.js";
export type { RatedView, Rating, UsageService } from "./usage.service.js";
export type { QueuedUsage, QueueEntry, UsageQueue } from "./usage-queue.js";
