import { hostname } from "node:os";
import { buildApp } from "./app.js";
import { loadConfigOrExit } from "./config.js";
import { startBillRunLoop } from "./modules/billing/index.js";
import { RatingService, startRatingLoop } from "./modules/charging/rating.service.js";
import { describeFailure } from "./platform/errors.js";
import { armFault } from "./platform/faults.js";
import { startScheduling } from "./platform/scheduler.js";
import { exitOnSignals } from "./platform/shutdown.js";

/**
 * `npm run worker`: a rating worker (DESIGN.md §2) — the same engine as the API, built the same way, with no
 * HTTP listener. It rates the queue's shards until SIGTERM, then finishes the batch in hand and exits. Workers
 * need PostgreSQL and Redis; in embedded mode the API process rates in-process instead.
 */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (config.redisUrl === undefined || config.databaseUrl === undefined) {
    process.stderr.write(
      "a rating worker needs DATABASE_URL and REDIS_URL; without them `npm start` rates in the API process\n",
    );
    process.exit(2);
  }
  armFault(config.fault);
  const app = await buildApp(config);
  const consumer = `${hostname()}-${process.pid}`;
  const loop = startRatingLoop(
    app.services.charging.rating,
    app.services.charging.leases(consumer),
    app.log,
    RatingService.jobs({ ...app.services.charging, usage: app.services.usage.usage }, config),
  );
  const scheduling = startScheduling(app.scheduler, app.log);
  const billing = startBillRunLoop(app.services.billRuns, app.log, config.billRunLoopMs);
  app.log.info({ consumer, shards: config.ratingShards }, "rating worker started");
  exitOnSignals({
    log: app.log,
    timeoutMs: config.shutdownTimeoutMs,
    stopping: "rating worker stopping after the batch in hand",
    stop: async () => {
      await scheduling.stop();
      await billing.stop();
      await loop.stop();
      await app.close();
    },
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed to start: ${describeFailure(error)}\n`);
  process.exit(1);
});
