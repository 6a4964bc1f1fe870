import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import { duplicateRedis } from "./redis.js";

/**
 * Messages to every process of the engine (cache invalidation now, alert fan-out later): Redis pub/sub when
 * Redis is configured, an in-process emitter in embedded mode. Delivery is best effort, so receivers also
 * re-check what they cache on a timer.
 */
export interface Broadcast {
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  close(): Promise<void>;
}

export function inProcessBroadcast(): Broadcast {
  const emitter = new EventEmitter();
  return {
    async publish(channel, message) {
      emitter.emit(channel, message);
    },
    async subscribe(channel, handler) {
      emitter.on(channel, handler);
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

/** Channel names carry the key prefix by hand: ioredis applies keyPrefix to keys, not to channels. */
export function redisBroadcast(client: Redis, prefix: string): Broadcast {
  let subscriber: Redis | null = null;
  const handlers = new Map<string, Array<(message: string) => void>>();
  return {
    async publish(channel, message) {
      await client.publish(`${prefix}${channel}`, message);
    },
    async subscribe(channel, handler) {
      if (subscriber === null) {
        // A subscribed connection can do nothing else, so it is a second connection. It queues its SUBSCRIBE
        // until connected (and ioredis re-subscribes after a reconnect), so start-up does not wait for Redis.
        subscriber = duplicateRedis(client, { keyPrefix: "", enableOfflineQueue: true });
        subscriber.on("error", () => {});
        subscriber.on("message", (name: string, message: string) => {
          for (const listener of handlers.get(name) ?? []) listener(message);
        });
      }
      const name = `${prefix}${channel}`;
      handlers.set(name, [...(handlers.get(name) ?? []), handler]);
      subscriber.subscribe(name).catch(() => {
        // Redis is down: receivers re-check on their timer until the subscription is back.
      });
    },
    async close() {
      if (subscriber !== null) await subscriber.quit().catch(() => subscriber?.disconnect());
    },
  };
}
