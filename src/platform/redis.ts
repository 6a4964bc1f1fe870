import type { FastifyBaseLogger } from "fastify";
import { Redis } from "ioredis";
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
 */
export function openRedis(url: string, keyPrefix: string, log: FastifyBaseLogger): Redis {
  const client = new Redis(url, {
    keyPrefix,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: REDIS_MAX_RETRIES_PER_REQUEST,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), REDIS_RECONNECT_MAX_DELAY_MS),
    reconnectOnError: () => false,
  });
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
