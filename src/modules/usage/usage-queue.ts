import type { Redis } from "ioredis";
import { duplicateRedis, isCluster, waitForRedis } from "../../platform/redis.js";
import { REDIS_CONNECT_TIMEOUT_MS } from "../../shared/limits.js";
import type { Direction, Service } from "../catalog/index.js";

/** What a rating worker needs of a guided record, so it rates from the queue without reading PostgreSQL. */
export interface QueuedUsage {
  usageId: string;
  billingAccountId: string;
  productId: string;
  source: string;
  cdrId: string;
  recordType: Service;
  direction: Direction;
  startedAtMs: number;
  calledNumber: string | null;
  visitedNetwork: string | null;
  ratingGroup: number | null;
  duration: number | null;
  volumeUplink: number | null;
  volumeDownlink: number | null;
  messages: number | null;
}

export interface QueueEntry {
  /** The entry's id in its shard (a stream id with Redis). */
  id: string;
  shard: number;
  usage: QueuedUsage;
  /** How many times the entry has been handed out (claimed entries only; a new one is on its first). */
  deliveries?: number;
}

/**
 * The rating queue (DESIGN.md §2, §4): K shards by billing account, so one account's records stay in order
 * and a shard can be leased to one worker. Two implementations obey this contract: Redis streams with a
 * consumer group per shard, and an in-process queue for embedded mode. PostgreSQL stays the queue of record;
 * this is the fast path to the workers.
 */
export interface UsageQueue {
  readonly kind: "redis" | "in-process";
  readonly shards: number;
  shardOf(billingAccountId: string): number;
  /** Appends records to their accounts' shards, in the order given. */
  enqueue(items: readonly QueuedUsage[]): Promise<void>;
  /** Up to `count` entries of a shard not yet delivered to any consumer, waiting up to `blockMs` for some. */
  read(shard: number, consumer: string, count: number, blockMs: number): Promise<QueueEntry[]>;
  /**
   * Takes over every entry of a shard that was handed out and not acknowledged — a dead worker's, or this
   * worker's own from a failed pass — for `consumer`, with how often each was handed out. The lease holder of
   * a shard calls it before reading new entries.
   */
  claim(shard: number, consumer: string, count: number): Promise<QueueEntry[]>;
  /** Entries rated and committed: removed from the shard. */
  ack(shard: number, ids: readonly string[]): Promise<void>;
  /** Entries in a shard not yet acknowledged (delivered or not). */
  depth(shard: number): Promise<number>;
  close(): Promise<void>;
}

/** FNV-1a over the account id: stable across processes and restarts, so an account always has one shard. */
export function shardOf(billingAccountId: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < billingAccountId.length; i += 1) {
    hash ^= billingAccountId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

const GROUP = "rating";

/**
 * Redis streams, one per shard, each with its own hash tag so shards spread over a cluster. Keys carry the
 * engine's prefix by hand: ioredis's keyPrefix does not reach the key of XGROUP, so this queue uses its own
 * unprefixed connections (one for writes and acks, one for blocking reads, which hold their connection).
 */
export function redisUsageQueue(client: Redis, prefix: string, shards: number): UsageQueue {
  const writer = duplicateRedis(client, { keyPrefix: "" });
  const clustered = isCluster(client);
  writer.on("error", () => {});
  let reader: Redis | null = null;
  const groups = new Set<number>();
  const key = (shard: number) => `${prefix}usage-queue:{s${shard}}`;
  // The queue's own connections start connecting when it is created; a command waits for them (bounded), then
  // fails fast like every other Redis command of the engine.
  const connected = async (connection: Redis) => {
    if (connection.status !== "ready" && !(await waitForRedis(connection, REDIS_CONNECT_TIMEOUT_MS))) {
      throw new Error("the rating queue's Redis connection is not ready");
    }
    return connection;
  };

  /** Runs a group command; if Redis lost the stream and its group (a restart without data), makes them again once. */
  const withGroup = async <T>(shard: number, command: () => Promise<T>): Promise<T> => {
    await ensureGroup(shard);
    try {
      return await command();
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith("NOGROUP"))) throw error;
      groups.delete(shard);
      await ensureGroup(shard);
      return command();
    }
  };

  const ensureGroup = async (shard: number) => {
    if (groups.has(shard)) return;
    try {
      await (await connected(writer)).xgroup("CREATE", key(shard), GROUP, "0", "MKSTREAM");
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith("BUSYGROUP"))) throw error;
    }
    groups.add(shard);
  };

  return {
    kind: "redis",
    shards,
    shardOf: (account) => shardOf(account, shards),
    async enqueue(items) {
      if (items.length === 0) return;
      // One pipeline in the given order; on a cluster, which routes a pipeline to one node, one per shard, all at
      // once, each in the given order.
      const groups = new Map<number, QueuedUsage[]>();
      for (const item of items) {
        const shard = clustered ? shardOf(item.billingAccountId, shards) : 0;
        groups.set(shard, [...(groups.get(shard) ?? []), item]);
      }
      const connection = await connected(writer);
      const results = await Promise.all(
        [...groups.values()].map((queued) => {
          const pipeline = connection.pipeline();
          for (const item of queued)
            pipeline.xadd(key(shardOf(item.billingAccountId, shards)), "*", "d", JSON.stringify(item));
          return pipeline.exec();
        }),
      );
      const failed = results.flatMap((result) => result ?? []).find(([error]) => error !== null);
      if (failed) throw failed[0];
    },
    async read(shard, consumer, count, blockMs) {
      if (reader === null) {
        reader = duplicateRedis(client, { keyPrefix: "", commandTimeout: undefined });
        reader.on("error", () => {});
      }
      const args: Array<string | number> = ["GROUP", GROUP, consumer, "COUNT", count];
      if (blockMs > 0) args.push("BLOCK", blockMs);
      args.push("STREAMS", key(shard), ">");
      const connection = await connected(reader);
      const reply = await withGroup(
        shard,
        async () => (await connection.call("XREADGROUP", ...args)) as Array<[string, Array<[string, string[]]>]> | null,
      );
      const entries: QueueEntry[] = [];
      for (const [, messages] of reply ?? []) {
        for (const [id, fields] of messages) {
          entries.push({ id, shard, usage: JSON.parse(fields[1] ?? "null") as QueuedUsage });
        }
      }
      return entries;
    },
    async claim(shard, consumer, count) {
      const connection = await connected(writer);
      const reply = await withGroup(
        shard,
        async () =>
          (await connection.call("XAUTOCLAIM", key(shard), GROUP, consumer, 0, "0-0", "COUNT", count)) as [
            string,
            Array<[string, string[] | null]>,
          ],
      );
      const claimed = (reply[1] ?? []).filter(([, fields]) => fields !== null) as Array<[string, string[]]>;
      if (claimed.length === 0) return [];
      const pending = (await connection.call("XPENDING", key(shard), GROUP, "-", "+", count, consumer)) as Array<
        [string, string, number, number]
      >;
      const deliveries = new Map(pending.map(([id, , , times]) => [id, Number(times)]));
      return claimed.map(([id, fields]) => ({
        id,
        shard,
        usage: JSON.parse(fields[1] ?? "null") as QueuedUsage,
        deliveries: deliveries.get(id) ?? 1,
      }));
    },
    async ack(shard, ids) {
      if (ids.length === 0) return;
      await writer
        .multi()
        .xack(key(shard), GROUP, ...ids)
        .xdel(key(shard), ...ids)
        .exec();
    },
    async depth(shard) {
      return (await connected(writer)).xlen(key(shard));
    },
    async close() {
      writer.disconnect();
      reader?.disconnect();
    },
  };
}

/**
 * The embedded queue: per shard, entries waiting and entries delivered but not acknowledged. It lives and dies
 * with the process; what it held is still in PostgreSQL, the queue of record.
 */
export function inProcessUsageQueue(shards: number): UsageQueue {
  const waiting: QueueEntry[][] = Array.from({ length: shards }, () => []);
  const deliveries = new Map<string, number>();
  const delivered: Array<Map<string, QueueEntry>> = Array.from({ length: shards }, () => new Map());
  const waiters: Array<Array<() => void>> = Array.from({ length: shards }, () => []);
  let sequence = 0;
  return {
    kind: "in-process",
    shards,
    shardOf: (account) => shardOf(account, shards),
    async enqueue(items) {
      for (const usage of items) {
        const shard = shardOf(usage.billingAccountId, shards);
        sequence += 1;
        (waiting[shard] as QueueEntry[]).push({ id: `${Date.now()}-${sequence}`, shard, usage });
        for (const wake of (waiters[shard] as Array<() => void>).splice(0)) wake();
      }
    },
    async read(shard, _consumer, count, blockMs) {
      const queue = waiting[shard] as QueueEntry[];
      if (queue.length === 0 && blockMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, blockMs);
          (waiters[shard] as Array<() => void>).push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      const taken = queue.splice(0, count);
      for (const entry of taken) {
        (delivered[shard] as Map<string, QueueEntry>).set(entry.id, entry);
        deliveries.set(entry.id, 1);
      }
      return taken;
    },
    async claim(shard, _consumer, count) {
      const entries = [...(delivered[shard] as Map<string, QueueEntry>).values()].slice(0, count);
      return entries.map((entry) => {
        const times = (deliveries.get(entry.id) ?? 1) + 1;
        deliveries.set(entry.id, times);
        return { ...entry, deliveries: times };
      });
    },
    async ack(shard, ids) {
      for (const id of ids) {
        (delivered[shard] as Map<string, QueueEntry>).delete(id);
        deliveries.delete(id);
      }
    },
    async depth(shard) {
      return (waiting[shard] as QueueEntry[]).length + (delivered[shard] as Map<string, QueueEntry>).size;
    },
    async close() {
      for (const list of waiters) for (const wake of list.splice(0)) wake();
    },
  };
}
