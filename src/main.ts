import { buildApp } from "./app.js";
import { loadConfigOrExit } from "./config.js";
import { startBillRunLoop } from "./modules/billing/index.js";
import { RatingService, startRatingLoop } from "./modules/charging/rating.service.js";
import { SYSTEM_ACTOR } from "./platform/audit.js";
import { describeFailure } from "./platform/errors.js";
import { armFault } from "./platform/faults.js";
import { startScheduling } from "./platform/scheduler.js";
import { exitOnSignals } from "./platform/shutdown.js";
import { ALERT_LOOP_INTERVAL_MS, HUB_LOOP_INTERVAL_MS, ORDER_RECOVERY_INTERVAL_MS } from "./shared/limits.js";

/** The API server process: configuration, the engine, the bootstrap key, listening, graceful shutdown. */
async function main(): Promise<void> {
  const config = loadConfigOrExit();

  armFault(config.fault);
  const app = await buildApp(config);
  const bootstrap = await app.services.access.ensureBootstrapKey(SYSTEM_ACTOR, config.adminApiKey);
  if (bootstrap.generated !== null) {
    // Printed once, to the terminal only: the logger would (rightly) redact it.
    process.stderr.write(
      `\n  First start: an admin API key was generated. It is shown once; store it now.\n\n    ${bootstrap.generated}\n\n` +
        `  Use it as 'Authorization: Bearer <key>'. Set ADMIN_API_KEY before the first start to choose your own.\n\n`,
    );
  } else if (bootstrap.created) {
    app.log.info("ADMIN_API_KEY stored as the first admin key");
  }

  const published = await app.services.catalog.publishIfEmpty(SYSTEM_ACTOR, config.catalogDir);
  if (published !== null) {
    app.log.info({ ...published, catalogDir: config.catalogDir }, "first start: default catalog published");
  }

  // Background work of the API process; not started by buildApp, so tests drive it step by step.
  const background = startBackgroundLoops(app);
  const scheduling = startScheduling(app.scheduler, app.log);
  const billing = startBillRunLoop(app.services.billRuns, app.log, config.billRunLoopMs);
  // Embedded mode has no workers: the API process rates its in-process queue itself (DESIGN.md §7).
  const rating =
    config.redisUrl === undefined
      ? startRatingLoop(
          app.services.charging.rating,
          app.services.charging.leases("embedded"),
          app.log,
          RatingService.jobs({ ...app.services.charging, usage: app.services.usage.usage }, config),
        )
      : null;

  exitOnSignals({
    log: app.log,
    timeoutMs: config.shutdownTimeoutMs,
    stopping: "shutting down: draining in-flight requests",
    stop: async () => {
      background.stop();
      await scheduling.stop();
      await billing.stop();
      await rating?.stop();
      await app.close();
    },
  });

  await app.listen({ port: config.port, host: config.host });
  app.log.info(
    {
      database: config.databaseUrl === undefined ? `embedded PGlite in ${config.dataDir}` : "PostgreSQL",
      redis: config.redisUrl === undefined ? "in-process" : "Redis",
    },
    `engine listening; API docs at http://${config.host}:${config.port}/docs`,
  );
}

/**
 * Background work of the API process: hub delivery and the alert relay every second, expired WebSocket tickets
 * purged every ten minutes, inventory expiry (reservations, quarantine)
 * every ten, and recovery of orders an earlier process left unfinished. Each loop runs one pass at a time; a failed pass is logged and retried on the next tick.
 */
function startBackgroundLoops(app: Awaited<ReturnType<typeof buildApp>>): { stop(): void } {
  const loop = (name: string, intervalMs: number, pass: () => Promise<unknown>) => {
    let running = false;
    return setInterval(() => {
      if (running) return;
      running = true;
      pass()
        .catch((error: unknown) => app.log.error({ err: error }, `${name} pass failed`))
        .finally(() => {
          running = false;
        });
    }, intervalMs);
  };
  const timers = [
    loop("hub delivery", HUB_LOOP_INTERVAL_MS, () => app.services.hubs.deliverOnce()),
    // Alerts a raiser could not publish or message (it died after its commit), and messages left pending.
    loop("alert relay", ALERT_LOOP_INTERVAL_MS, async () => {
      await app.services.alerts.relay();
      await app.services.messages.deliverPending();
    }),
    loop("order recovery", ORDER_RECOVERY_INTERVAL_MS, () => app.services.orders.recover(SYSTEM_ACTOR)),
  ];
  return {
    stop() {
      for (const timer of timers) clearInterval(timer);
    },
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${describeFailure(error)}\n`);
  process.exit(1);
});
