import type { Redis } from "ioredis";

/**
 * Shard leases (DESIGN.md §2): each shard of the rating queue is held by one worker at a time. A lease carries a
 * fencing token from one counter that only grows; the charging step refuses a token lower than the highest
 * that has written to an account, so a worker that lost its lease (paused, partitioned) cannot write after
 * the next holder has. Workers announce themselves with a heartbeat and each holds about its fair share.
 */
export interface ShardLeases {
  readonly workerId: string;
  /** Heartbeat, renew, rebalance, acquire: the shards held after this call, each with its fencing token. */
  refresh(): Promise<Map<number, number>>;
  /** Forgets a shard whose writes were fenced: another worker holds it now. */
  drop(shard: number): void;
  releaseAll(): Promise<void>;
  /** Whether this worker may do a once-per-interval job (the sweeper) now: one worker wins each interval. */
  turn(job: string, intervalMs: number): Promise<boolean>;
}

/**
 * Whether any rating worker's heartbeat is live: the "workers" set that `refresh` keeps, scored with the wall-clock
 * instant each heartbeat expires (a lease, so wall time, not business time).
 */
export async function redisWorkersAlive(client: Redis): Promise<boolean> {
  return (await client.zcount("workers", `(${Date.now()}`, "+inf")) > 0;
}

/** One process holds every shard (embedded mode): there is nobody to share with. */
export function soleShardLeases(shards: number, workerId = "embedded"): ShardLeases {
  const held = new Map(Array.from({ length: shards }, (_, shard) => [shard, 1] as const));
  return {
    workerId,
    async refresh() {
      return new Map(held);
    },
    drop() {},
    async releaseAll() {},
    async turn() {
      return true;
    },
  };
}

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type LeaseCommands = Redis & {
  bssLeaseRenew(key: string, value: string, ttlMs: number): Promise<number>;
  bssLeaseRelease(key: string, value: string): Promise<number>;
};

export function redisShardLeases(client: Redis, shards: number, workerId: string, ttlMs: number): ShardLeases {
  const redis = client as LeaseCommands;
  redis.defineCommand("bssLeaseRenew", { lua: RENEW, numberOfKeys: 1 });
  redis.defineCommand("bssLeaseRelease", { lua: RELEASE, numberOfKeys: 1 });
  const held = new Map<number, number>();
  const leaseKey = (shard: number) => `lease:{s${shard}}`;
  const leaseValue = (token: number) => `${workerId}|${token}`;

  return {
    workerId,
    async refresh() {
      const now = Date.now();
      await redis
        .multi()
        .zadd("workers", now + ttlMs, workerId)
        .zremrangebyscore("workers", "-inf", now)
        .exec();
      const live = Math.max(1, await redis.zcard("workers"));
      const fair = Math.ceil(shards / live);
      for (const [shard, token] of [...held]) {
        if ((await redis.bssLeaseRenew(leaseKey(shard), leaseValue(token), ttlMs)) !== 1) held.delete(shard);
      }
      for (const [shard, token] of [...held].sort(([a], [b]) => b - a)) {
        if (held.size <= fair) break;
        await redis.bssLeaseRelease(leaseKey(shard), leaseValue(token));
        held.delete(shard);
      }
      const start = Math.floor(Math.random() * shards);
      for (let i = 0; i < shards && held.size < fair; i++) {
        const shard = (start + i) % shards;
        if (held.has(shard) || (await redis.exists(leaseKey(shard))) === 1) continue;
        const token = await redis.incr("lease-token");
        if ((await redis.set(leaseKey(shard), leaseValue(token), "PX", ttlMs, "NX")) === "OK") held.set(shard, token);
      }
      return new Map(held);
    },
    drop(shard) {
      held.delete(shard);
    },
    async turn(job, intervalMs) {
      return (await redis.set(`turn:${job}`, workerId, "PX", intervalMs, "NX")) === "OK";
    },
    async releaseAll() {
      for (const [shard, token] of held) await redis.bssLeaseRelease(leaseKey(shard), leaseValue(token)).catch(() => 0);
      held.clear();
      await redis.zrem("workers", workerId).catch(() => 0);
    },
  };
}
