import type { FastifyBaseLogger } from "fastify";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import {
  REDIS_COMMAND_TIMEOUT_MS,
  REDIS_CONNECT_TIMEOUT_MS,
  REDIS_MAX_RETRIES_PER_REQUEST,
  REDIS_RECONNECT_MAX_DELAY_MS,
} from "../shared/limits.js";

/**
 * The Redis client with every policy spelled out: bounded connect and command timeouts, a bounded
 * number of retries per command, and no offline queue, so a Redis outage fails requests fast (503)
 * instead of letting them pile up in memory. Reconnection continues forever with capped backoff.
 * With `cluster`, the URL is one node of a Redis Cluster: the client learns the others and routes each command
 * by its key's slot (every multi-key command of the engine stays in one hash tag: an account, a shard).
 */
export function openRedis(url: string, keyPrefix: string, log: FastifyBaseLogger, cluster = false): Redis {
  const backoff = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 10), REDIS_RECONNECT_MAX_DELAY_MS);
  const options: RedisOptions = {
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: REDIS_MAX_RETRIES_PER_REQUEST,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    retryStrategy: backoff,
    reconnectOnError: () => false,
  };
  const client = cluster
    ? (new Cluster([url], {
        keyPrefix,
        redisOptions: options,
        enableOfflineQueue: false,
        enableReadyCheck: true,
        clusterRetryStrategy: backoff,
      }) as unknown as Redis)
    : new Redis(url, { ...options, keyPrefix });
  let lastState = "";
  const report = (state: string, err?: Error) => {
    if (state === lastState) return;
    lastState = state;
    if (err) log.error({ err }, `redis ${state}`);
    else log.info(`redis ${state}`);
  };
  client.on("ready", () => report("ready"));
  client.on("error", (err: Error) => report("error", err));
  client.on("end", () => report("closed"));
  return client;
}

/** Waits until the client is ready or the timeout passes; readiness reports the outcome either way. */
export async function waitForRedis(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === "ready") return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once("ready", onReady);
  });
}

/**
 * A second connection like `client` (its own socket: a subscriber, a blocking reader), with some options changed;
 * a Cluster client duplicates as a Cluster, its node options under `redisOptions`.
 */
export function duplicateRedis(client: Redis, changes: Partial<RedisOptions>): Redis {
  const cluster = client as unknown;
  if (cluster instanceof Cluster) {
    const { keyPrefix, enableOfflineQueue, ...node } = changes;
    const options = cluster.options;
    return cluster.duplicate([], {
      ...options,
      ...(keyPrefix === undefined ? {} : { keyPrefix }),
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      redisOptions: { ...options.redisOptions, ...node },
    }) as unknown as Redis;
  }
  return client.duplicate(changes);
}

/** Whether a client opened by openRedis talks to a Redis Cluster (its type says Redis either way). */
export function isCluster(client: Redis): boolean {
  return (client as unknown) instanceof Cluster;
}
