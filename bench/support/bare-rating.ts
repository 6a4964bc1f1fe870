import { Redis } from "ioredis";
import postgres from "postgres";
import { RECORD_RATED_SQL } from "../../src/modules/charging/summaries.js";

/**
 * The bare rating worker bench/rating compares the engine's workers with: the statements a rating pass runs,
 * with the same batch size and the same sequencing, and no logic between them. Per shard it owns (shard %
 * BARE_WORKERS = BARE_WORKER_INDEX; the engine's workers split the shards by lease):
 *
 *   XREADGROUP COUNT 500 (non-blocking) → per account, one EVALSHA of a trivial script touching the same keys
 *   the engine's charging step touches (state, spend, dedupe marks, crossings, the line), storing a dedupe mark
 *   with the rated row per event → the engine's own statement that inserts the rated rows with their usage
 *   summaries (src/modules/charging/summaries.ts, in a transaction) → MULTI XACK + XDEL.
 *
 * A pass over its shards that found nothing sleeps 50 ms, like the engine's loop. Every record costs the same
 * fixed amount, so the spend moved is exact integer micro-units. It prints "ready" once its groups exist.
 */
const shards = Number(process.env.BARE_SHARDS ?? 16);
const workers = Number(process.env.BARE_WORKERS ?? 2);
const index = Number(process.env.BARE_WORKER_INDEX ?? 0);
const prefix = process.env.BARE_REDIS_PREFIX ?? "bare:";
const BATCH = 500;
const IDLE_MS = 50;
const GROUP = "rating";
const AMOUNT = "0.58";
const AMOUNT_MICRO = 580_000n;
const PERIOD = "bare-period";

const sql = postgres(process.env.DATABASE_URL as string, { max: 10, onnotice: () => {} });
const redis = new Redis(process.env.REDIS_URL as string);
const reader = new Redis(process.env.REDIS_URL as string);

// KEYS: s, spend, d, x, the line. ARGV: period, micro-units, units, then (usage id, stored result) pairs.
const STEP = `
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SCARD', KEYS[4])
redis.call('HINCRBY', KEYS[5], 'u:bucket', ARGV[3])
return 1`;

const stream = (shard: number) => `${prefix}usage-queue:{s${shard}}`;
const mine = Array.from({ length: shards }, (_, shard) => shard).filter((shard) => shard % workers === index);

interface Row {
  id: string;
  billing_account_id: string;
  product_id: string;
  started_at: string;
  record_type: string;
  duration: number;
}

for (const shard of mine) {
  try {
    await redis.xgroup("CREATE", stream(shard), GROUP, "0", "MKSTREAM");
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith("BUSYGROUP"))) throw error;
  }
}
const sha = (await redis.script("LOAD", STEP)) as string;
process.stdout.write("ready\n");

let stopping = false;
const consumer = `bare-${process.pid}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function pass(): Promise<number> {
  let total = 0;
  for (const shard of mine) {
    const reply = (await reader.call(
      "XREADGROUP",
      "GROUP",
      GROUP,
      consumer,
      "COUNT",
      BATCH,
      "STREAMS",
      stream(shard),
      ">",
    )) as Array<[string, Array<[string, string[]]>]> | null;
    const messages = reply?.[0]?.[1] ?? [];
    if (messages.length === 0) continue;
    const ids: string[] = [];
    const byAccount = new Map<string, Row[]>();
    for (const [id, fields] of messages) {
      ids.push(id);
      const row = JSON.parse(fields[1] as string) as Row;
      const list = byAccount.get(row.billing_account_id) ?? [];
      list.push(row);
      byAccount.set(row.billing_account_id, list);
    }
    const now = new Date().toISOString();
    const rated: Array<Record<string, unknown>> = [];
    for (const [account, rows] of byAccount) {
      const tag = `${prefix}{acct:${account}}`;
      const marks: string[] = [];
      for (const row of rows) {
        const result = {
          usageId: row.id,
          billingAccountId: account,
          productId: row.product_id,
          startedAt: row.started_at,
          tariffId: "tariff-de-eur",
          tariffVersion: 1,
          recordType: row.record_type,
          destination: "international-eu",
          roaming: "home",
          quantity: row.duration,
          allowanceUnits: 0,
          chargedUnits: row.duration,
          draws: [],
          amount: AMOUNT,
          currency: "EUR",
          prepaid: false,
          spendPeriod: PERIOD,
        };
        rated.push(result);
        marks.push(row.id, JSON.stringify(result));
      }
      await redis.evalsha(
        sha,
        5,
        `${tag}:s`,
        `${tag}:spend`,
        `${tag}:d`,
        `${tag}:x`,
        `${tag}:l:${rows[0]?.product_id}`,
        PERIOD,
        (AMOUNT_MICRO * BigInt(rows.length)).toString(),
        String(rows.length),
        ...marks,
      );
    }
    await sql.begin(async (tx) => {
      // The engine's statement: the rated rows inserted with their usage summaries (issue 22).
      await tx.unsafe(RECORD_RATED_SQL, [tx.json(rated as never) as never, now]);
    });
    await redis
      .multi()
      .xack(stream(shard), GROUP, ...ids)
      .xdel(stream(shard), ...ids)
      .exec();
    total += ids.length;
  }
  return total;
}

const done = (async () => {
  while (!stopping) {
    if ((await pass()) === 0) await sleep(IDLE_MS);
  }
})();

process.on("SIGTERM", () => {
  stopping = true;
  done
    .then(() => sql.end({ timeout: 2 }))
    .then(() => {
      redis.disconnect();
      reader.disconnect();
      process.exit(0);
    });
});
