import t from "tap";
import { hasServers, startEngine } from "../support/engine.js";
import { report, serverFault } from "../support/faults.js";
import { startThrowawayPostgres } from "../support/services.js";

/**
 * DESIGN.md §5: PostgreSQL stopped for a few seconds under load. Ingestion answers 503 while it is down and the
 * network element retries; workers retry their passes; nothing that was answered as accepted is lost.
 */
const postgres = hasServers ? await startThrowawayPostgres() : null;
t.teardown(() => postgres?.stop());

t.test(
  "PostgreSQL stopped under load: 503, retried, nothing accepted lost",
  { skip: postgres === null && "needs the PostgreSQL binaries and Redis" },
  async (t) => {
    if (postgres === null) return;
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

t.test(
  "reads right after a PostgreSQL restart answer without a 5xx (stale pooled connections are not reused)",
  { skip: postgres === null && "needs the PostgreSQL binaries and Redis" },
  async (t) => {
    if (postgres === null) return;
    const engine = await startEngine(t, { servers: { pgUrl: postgres.url } });
    const list = () => engine.request("GET", "/tmf-api/accountManagement/v4/billingAccount");
    // Fill the pool with idle connections, as a busy API has.
    const warm = await Promise.all(Array.from({ length: 10 }, list));
    t.same(
      warm.map((answer) => answer.statusCode),
      Array(10).fill(200),
    );
    await postgres.restart(500);
    const after = await Promise.all(Array.from({ length: 10 }, list));
    t.same(
      after.map((answer) => answer.statusCode),
      Array(10).fill(200),
      "every read after the restart answered",
    );
    t.equal((await list()).statusCode, 200);
  },
);
