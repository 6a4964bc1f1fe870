import { Redis } from "ioredis";
import t from "tap";
import { hasServers } from "../support/engine.js";
import {
  calls,
  checkInvariants,
  faultSystem,
  post,
  ratedOrSuspended,
  readyWorkers,
  replayMatches,
  report,
  stopWorkers,
  waitFor,
} from "../support/faults.js";
import { startThrowawayRedisCluster } from "../support/services.js";

/**
 * DESIGN.md §8: the whole loop on a local three-node Redis Cluster (BSS_REDIS_CLUSTER): ingestion onto the
 * shards' streams, two worker processes holding leases and applying charging steps (one slot per account),
 * top-ups, alerts over pub/sub; it ends with ledger = Redis and a replay, not with a look at key slots.
 */

const cluster = hasServers ? await startThrowawayRedisCluster() : null;

t.test(
  "the rating loop on a three-node Redis Cluster",
  { skip: cluster === null && "needs redis-server with cluster support and PostgreSQL" },
  async (t) => {
    if (cluster === null) return;
    t.teardown(() => cluster.stop());
    const { engine, lines } = await faultSystem(t, {
      servers: { redisUrl: cluster.url },
      env: { BSS_REDIS_CLUSTER: "true", BSS_RATING_SHARDS: "6" },
    });
    const { workers, accepted: warm } = await readyWorkers(engine, lines, 2);
    t.teardown(() => stopWorkers(workers));
    let accepted = warm;
    const started = Date.now();
    for (let batch = 0; batch < 10; batch++)
      accepted += (await post(engine, calls(lines, 50, `cluster${batch}-`))).accepted;
    await waitFor("rating", async () => (await ratedOrSuspended(engine)) >= accepted, 60_000);
    const elapsed = Date.now() - started;
    await stopWorkers(workers);
    const { rated } = await checkInvariants(t, engine, accepted);
    // The keys really are spread: every node holds some of the engine's keys.
    const perNode: number[] = [];
    for (const node of cluster.nodes) {
      const redis = new Redis(node);
      perNode.push((await redis.keys(`${engine.config.redisKeyPrefix}*`)).length);
      redis.disconnect();
    }
    t.ok(
      perNode.every((count) => count > 0),
      `every node holds part of the state (${perNode.join(", ")} keys)`,
    );
    const replayMs = await replayMatches(t, engine, cluster.nodes);
    report(
      t,
      `fault redis-cluster: 3 nodes, 6 shards, 2 workers; ${accepted} accepted, ${rated} rated in ${elapsed} ms; ` +
        `keys per node ${perNode.join("/")}; ledger = Redis; replay ${replayMs} ms`,
    );
  },
);
