import t from "tap";
import { hasServers } from "../support/engine.js";
import { report, serverFault } from "../support/faults.js";
import { startThrowawayPostgres } from "../support/services.js";

/**
 * DESIGN.md §5: PostgreSQL stopped for a few seconds under load. Ingestion answers 503 while it is down and the
 * network element retries; workers retry their passes; nothing that was answered as accepted is lost.
 */
const postgres = hasServers ? await startThrowawayPostgres() : null;

t.test(
  "PostgreSQL stopped under load: 503, retried, nothing accepted lost",
  { skip: postgres === null && "needs the PostgreSQL binaries and Redis" },
  async (t) => {
    if (postgres === null) return;
    t.teardown(() => postgres.stop());
    let downMs = 0;
    const outcome = await serverFault(t, { pgUrl: postgres.url }, async () => {
      const stoppedAt = Date.now();
      await postgres.restart(4_000);
      downMs = Date.now() - stoppedAt;
    });
    t.ok(outcome.refused > 0, `ingestion answered 503 while PostgreSQL was down (${outcome.refused} batches, retried)`);
    report(
      t,
      `fault postgres-stop: PostgreSQL down ${downMs} ms under load; ${outcome.refused} batches answered 503 and ` +
        `retried; ${outcome.accepted} accepted, all rated ${outcome.recoveryMs} ms after the stop; ${outcome.rated} ` +
        `rated, ${outcome.suspended} in suspense, 0 lost, 0 charged twice; replay ${outcome.replayMs} ms`,
    );
  },
);
