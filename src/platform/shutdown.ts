import type { FastifyBaseLogger } from "fastify";

/**
 * Graceful shutdown, written once for the API server and the rating worker: on the first SIGTERM or SIGINT,
 * `stop` runs (the process's own order: background loops, the batch in hand, then the app with its pools);
 * the process exits 0 when it has finished, 1 when it failed or outlived `timeoutMs`. A second signal is ignored
 * while the first is being served.
 */
export function exitOnSignals(options: {
  log: FastifyBaseLogger;
  timeoutMs: number;
  /** What the log says the process is doing while it stops. */
  stopping: string;
  stop: () => Promise<void>;
}): void {
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    options.log.info({ signal }, options.stopping);
    const timer = setTimeout(() => {
      options.log.error("shutdown timed out; exiting");
      process.exit(1);
    }, options.timeoutMs);
    timer.unref();
    options.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        options.log.error({ err: error }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}
