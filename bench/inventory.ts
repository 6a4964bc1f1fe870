/**
 * bench/inventory: number reservations per second and their latency, beside the same SQL with no logic, and
 * a contention run.
 *
 * Budget (issue 4): report reservations/s and p99; 50 concurrent reservations for the last 10 numbers give
 * exactly 10 successes, 40 clean failures and no number twice.
 *
 * The engine runs in a child process on PostgreSQL and Redis with a fresh database seeded with 100,000
 * numbers (and 100,000 more for the bare server); autocannon, 10 connections, 8 s per phase.
 */
import { freshDatabase, load, startServer, table } from "./support/servers.js";

const adminKey = "bench-admin-key-0123456789abcdefghijklmnop";
const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

export async function benchInventory(): Promise<Record<string, string | number>[]> {
  const database = await freshDatabase(databaseUrl, `bss_bench_inventory_${process.pid}`);
  const engine = await startServer("src/main.ts", {
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: `bench:${process.pid}:`,
    BSS_SECRETS_KEY: "0".repeat(64),
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: "warn",
    // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
    BSS_RATE_LIMIT_PER_MINUTE: "10000000",
  });
  const bare = await startServer("bench/support/bare-server.ts", { DATABASE_URL: database.url });
  const headers = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${engine.base}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  try {
    for (const [from, to] of [
      ["+4915100000000", "+4915100099999"],
      ["+4916100000000", "+4916100099999"],
    ]) {
      const seeded = await post("/api/v1/inventory/number-ranges", { from, to });
      if (seeded.status !== 201) throw new Error(`seeding failed: ${JSON.stringify(seeded.body)}`);
    }
    const reserve = {
      url: `${engine.base}/api/v1/inventory/reservations`,
      method: "POST" as const,
      headers,
      body: JSON.stringify({ "@type": "MSISDN", valuePattern: "+49151*" }),
    };
    await load({ ...reserve, duration: 2 });
    const bareMax = await load({ url: `${bare.base}/reserve`, method: "POST" });
    const max = await load(reserve);
    const halfRate = Math.max(1, Math.floor(max.requestsPerSecond / 2));
    const half = await load({ ...reserve, overallRate: halfRate });

    const contention = await post("/api/v1/inventory/number-ranges", { from: "+4917900000000", to: "+4917900000009" });
    if (contention.status !== 201) throw new Error("contention range failed");
    const attempts = await Promise.all(
      Array.from({ length: 50 }, () =>
        post("/api/v1/inventory/reservations", { "@type": "MSISDN", valuePattern: "+49179*" }),
      ),
    );
    const won = attempts.filter((attempt) => attempt.status === 201);
    const clean = attempts.filter((attempt) => attempt.status === 409 && attempt.body.code === "not_available");
    const distinct = new Set(won.map((attempt) => (attempt.body.resource as { value: string }).value)).size;

    const row = (phase: string, result: Awaited<ReturnType<typeof load>>, ratio: string, note: string) => ({
      phase,
      "req/s": result.requestsPerSecond,
      "p50 ms": result.p50Ms,
      "p99 ms": result.p99Ms,
      "non-2xx": result.non2xx + result.errors,
      "vs same SQL": ratio,
      note,
    });
    return [
      row("ceiling: reservation SQL, no logic", bareMax, "1.000", ""),
      row(
        "POST reservation, any +49151 number",
        max,
        (max.requestsPerSecond / bareMax.requestsPerSecond).toFixed(3),
        "",
      ),
      row(`POST reservation at half max (${halfRate}/s)`, half, "", ""),
      {
        phase: "contention: 50 concurrent for the last 10",
        "req/s": "",
        "p50 ms": "",
        "p99 ms": "",
        "non-2xx": 50 - won.length,
        "vs same SQL": "",
        note: `${won.length} reserved, ${clean.length} refused cleanly, ${distinct} distinct numbers: ${
          won.length === 10 && clean.length === 40 && distinct === 10 ? "as required" : "WRONG"
        }`,
      },
    ];
  } finally {
    await engine.stop();
    await bare.stop();
    await database.drop();
  }
}

export function printInventory(rows: Record<string, string | number>[]): void {
  process.stdout.write(`\nbench/inventory (${new Date().toISOString()}, Node ${process.version})\n${table(rows)}\n`);
}
