import t from "tap";
import { hasServers } from "../support/engine.js";
import { report, serverFault } from "../support/faults.js";
import { startThrowawayRedis } from "../support/services.js";

/**
 * DESIGN.md §5, §4 step 7: Redis killed under load and restarted empty (no persistence). Ingestion goes on
 * (PostgreSQL is the queue of record); a worker finds the store uninitialized and rebuilds it from the ledger
 * under a new fencing epoch; the sweeper puts the records the lost streams held back on the queue.
 */
const redis = hasServers ? await startThrowawayRedis() : null;

t.test(
  "Redis killed and restarted empty under load: rebuilt, nothing lost",
  { skip: redis === null && "needs redis-server and PostgreSQL" },
  async (t) => {
    if (redis === null) return;
    t.teardown(() => redis.stop());
    const outcome = await serverFault(t, { redisUrl: redis.url }, () => redis.restart(1_000));
    report(
      t,
      `fault redis-restart: ${outcome.accepted} accepted under load (${outcome.refused} batches refused), Redis ` +
        `down 1 s and back empty; all rated ${outcome.recoveryMs} ms after the kill; ${outcome.rated} rated, ` +
        `${outcome.suspended} in suspense, 0 lost, 0 charged twice; replay ${outcome.replayMs} ms`,
    );
  },
);
