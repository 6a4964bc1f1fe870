import t from "tap";
import { hasServers } from "../support/engine.js";
import {
  checkInvariants,
  faultSystem,
  ratedOrSuspended,
  readyWorkers,
  replayMatches,
  report,
  sleep,
  steadyLoad,
  stopWorkers,
  waitFor,
} from "../support/faults.js";
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
    const { engine, lines } = await faultSystem(t, { servers: { pgUrl: postgres.url } });
    const { workers, accepted: warm } = await readyWorkers(engine, lines, 2);
    t.teardown(() => stopWorkers(workers));
    const load = steadyLoad(engine, lines, "pg");
    await sleep(2_000);
    const stoppedAt = Date.now();
    await postgres.restart(4_000);
    const downMs = Date.now() - stoppedAt;
    await sleep(2_000);
    const loaded = await load.stop();
    const accepted = warm + loaded.accepted;
    const refused = loaded.refused;
    const drainMs = await waitFor(
      "every accepted CDR rated",
      async () => (await ratedOrSuspended(engine)) >= accepted,
      60_000,
    );
    await stopWorkers(workers);
    const { rated, suspended } = await checkInvariants(t, engine, accepted);
    const replayMs = await replayMatches(t, engine);
    report(
      t,
      `fault postgres-stop: PostgreSQL down ${downMs} ms under load; ${refused} batches answered 503 and retried; ` +
        `${accepted} accepted, all rated ${drainMs} ms after the load stopped; ${rated} rated, ${suspended} in suspense, ` +
        `0 lost, 0 charged twice; replay ${replayMs} ms`,
    );
  },
);
