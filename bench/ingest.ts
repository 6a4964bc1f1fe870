/**
 * bench/ingest: accepted CDRs per second through POST /api/v1/cdrs for batches of 1, 100 and 1,000, with
 * p50/p99 per request, beside the bare ceiling: the same statements (one insert of keys, usage and suspense
 * rows; one XADD per record, pipelined) with the same batch sizes and connections, in the same run.
 *
 * Budget (issue 6): ≥ 0.6 of the ceiling; stretch 30,000 CDRs/s in batches of 100.
 *
 * The engine runs in a child process on PostgreSQL and Redis with a fresh database; 20 active lines on 10
 * accounts (ordered through the API), a registered source, every record guided and enqueued. Each request
 * carries new cdrIds, so every record is a real insert; the stored count is checked against the answers.
 */

import { Redis } from "ioredis";
import postgres from "postgres";
import { simRecord } from "../test/support/fixtures.js";
import { freshDatabase, load, startServer, table } from "./support/servers.js";

const adminKey = "bench-admin-key-0123456789abcdefghijklmnop";
const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const LINES = 20;
const PHASES = [
  { batch: 1, connections: 10 },
  { batch: 100, connections: 10 },
  { batch: 1000, connections: 4 },
];

export async function benchIngest(): Promise<Record<string, string | number>[]> {
  const database = await freshDatabase(databaseUrl, `bss_bench_ingest_${process.pid}`);
  const prefix = `bench:${process.pid}:`;
  const engine = await startServer("src/main.ts", {
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: prefix,
    BSS_SECRETS_KEY: "0".repeat(64),
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: "warn",
    // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
    BSS_RATE_LIMIT_PER_MINUTE: "10000000",
  });
  let bare: Awaited<ReturnType<typeof startServer>> | null = null;
  const redis = new Redis(redisUrl);
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const call = async (method: string, path: string, body?: unknown, key = adminKey) => {
    const response = await fetch(`${engine.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const clearStreams = async () => {
    const keys = await redis.keys(`${prefix}*usage-queue*`);
    if (keys.length > 0) await redis.del(...keys);
  };
  try {
    const lines = await seedLines(call);
    const msisdns = lines.map((line) => line.msisdn);
    // The ceiling writes the same rows: the same lines and accounts, so its index pages are as hot as ours.
    bare = await startServer("bench/support/bare-server.ts", {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      BARE_REDIS_PREFIX: `${prefix}bare:`,
      BARE_LINES: JSON.stringify(lines),
    });
    await call("POST", "/api/v1/cdr-sources", { id: "bench-msc", countryCode: "49" });
    const network = (
      await call("POST", "/api/v1/api-keys", { name: "bench network", role: "network", cdrSources: ["bench-msc"] })
    ).body.key as string;
    const startedAt = new Date().toISOString();
    // One template per batch size; each request swaps in a fresh request number, so every cdrId is new.
    const template = (batch: number) =>
      JSON.stringify(
        Array.from({ length: batch }, (_, index) => ({
          recordType: "voice",
          cdrId: `@@-${index}`,
          source: "bench-msc",
          servedMSISDN: msisdns[index % msisdns.length],
          calledNumber: "+4930123456",
          recordOpeningTime: startedAt,
          duration: 61,
        })),
      );
    let sequence = 0;
    const run = (url: string, key: string, batch: number, connections: number, tag: string) => {
      const body = template(batch);
      return load({
        url,
        connections,
        requests: [
          {
            method: "POST",
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
            setupRequest: (request) => {
              sequence += 1;
              return { ...request, body: body.replaceAll("@@", `${tag}${sequence}`) };
            },
          },
        ],
      });
    };

    const rows: Record<string, string | number>[] = [];
    // BENCH_INGEST_BATCHES=1,100 runs only those phases (for profiling one of them).
    const only = process.env.BENCH_INGEST_BATCHES?.split(",").map(Number);
    for (const { batch, connections } of PHASES.filter((phase) => !only || only.includes(phase.batch))) {
      await run(`${engine.base}/api/v1/cdrs`, network, batch, connections, `w${batch}-`).catch(() => undefined);
      const ceiling = await run(`${(bare as { base: string }).base}/ingest`, network, batch, connections, `b${batch}-`);
      await clearStreams();
      const before = await storedCount(sql);
      const result = await run(`${engine.base}/api/v1/cdrs`, network, batch, connections, `e${batch}-`);
      // autocannon stops counting with requests still in flight; let them finish before counting rows.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const stored = (await storedCount(sql)) - before;
      const queued = await queuedCount(redis, prefix);
      await clearStreams();
      const engineRate = result.requestsPerSecond * batch;
      const ceilingRate = ceiling.requestsPerSecond * batch;
      rows.push({
        phase: `ceiling: same statements, batch ${batch}, ${connections} conn`,
        "CDRs/s": ceilingRate,
        "req/s": ceiling.requestsPerSecond,
        "p50 ms": ceiling.p50Ms,
        "p99 ms": ceiling.p99Ms,
        "non-2xx": ceiling.non2xx + ceiling.errors,
        ratio: "1.000",
        check: "",
      });
      rows.push({
        phase: `POST /api/v1/cdrs, batch ${batch}, ${connections} conn`,
        "CDRs/s": engineRate,
        "req/s": result.requestsPerSecond,
        "p50 ms": result.p50Ms,
        "p99 ms": result.p99Ms,
        "non-2xx": result.non2xx + result.errors,
        ratio: (engineRate / ceilingRate).toFixed(3),
        check: `${stored} stored, ${queued} queued${stored === queued ? "" : " MISMATCH"}`,
      });
    }
    return rows;
  } finally {
    await clearStreams().catch(() => undefined);
    redis.disconnect();
    await sql.end({ timeout: 2 });
    await engine.stop();
    await bare?.stop();
    await database.drop();
  }
}

async function storedCount(sql: postgres.Sql): Promise<number> {
  // The engine's records only: the ceiling's bare server writes to the same table under other ids.
  const [row] = await sql`select count(*)::int as total from usage_records where cdr_id like 'e%'`;
  return (row?.total as number) ?? 0;
}

async function queuedCount(redis: Redis, prefix: string): Promise<number> {
  let total = 0;
  for (const key of await redis.keys(`${prefix}usage-queue:*`)) total += await redis.xlen(key);
  return total;
}

type Call = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; body: Record<string, unknown> }>;

/** Lines through the front door: numbers and SIMs in stock, ten accounts, two line orders each, all completed. */
async function seedLines(call: Call): Promise<Array<{ msisdn: string; productId: string; accountId: string }>> {
  await call("POST", "/api/v1/inventory/number-ranges", { from: "+4915100000000", to: "+4915100000999" });
  await call(
    "POST",
    "/api/v1/inventory/sim-imports",
    Array.from({ length: LINES }, (_, index) => simRecord(index + 1)),
  );
  const party = await call("POST", "/tmf-api/party/v4/individual", { givenName: "Bench", familyName: "Ingest" });
  const customer = await call("POST", "/tmf-api/customerManagement/v4/customer", {
    name: "Bench",
    engagedParty: { id: party.body.id, "@referredType": "Individual" },
  });
  const orders: string[] = [];
  for (let account = 0; account < LINES / 2; account++) {
    const created = await call("POST", "/tmf-api/accountManagement/v4/billingAccount", {
      name: `Bench ${account}`,
      relatedParty: [{ id: customer.body.id, "@referredType": "Customer" }],
      currency: "EUR",
      taxJurisdiction: "DE",
      creditLimit: { unit: "EUR", value: 100 },
    });
    for (let line = 0; line < 2; line++) {
      const placed = await call("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
        billingAccount: { id: created.body.id },
        productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
      });
      orders.push(placed.body.id as string);
    }
  }
  for (const id of orders) {
    for (let attempt = 0; ; attempt++) {
      const order = await call("GET", `/tmf-api/productOrderingManagement/v4/productOrder/${id}?fields=state`);
      if (order.body.state === "completed") break;
      if (attempt > 400 || order.body.state === "failed") throw new Error(`order ${id} did not complete`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  const products = await call("GET", "/tmf-api/productInventory/v4/product?status=active&limit=1000");
  type Listed = {
    id: string;
    billingAccount: { id: string };
    productCharacteristic: { name: string; value: string }[];
  };
  const lines = (products.body as unknown as Listed[]).map((product) => ({
    msisdn: product.productCharacteristic.find((c) => c.name === "msisdn")?.value ?? "",
    productId: product.id,
    accountId: product.billingAccount.id,
  }));
  if (lines.length !== LINES) throw new Error(`expected ${LINES} active lines, found ${lines.length}`);
  return lines;
}

export function printIngest(rows: Record<string, string | number>[]): void {
  process.stdout.write(`\nbench/ingest (${new Date().toISOString()}, Node ${process.version})\n${table(rows)}\n`);
}
