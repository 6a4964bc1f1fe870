/**
 * bench/http: CRM reads and writes against the bare Fastify ceiling, measured in the same run.
 *
 * Budget (issue 2, DESIGN.md §9): account list ≥ 0.4 of a bare Fastify hello-world's rate; p99 ≤ 20 ms at
 * half the maximum rate measured in this run, for both list and create.
 *
 * The engine runs in a child process on PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; the
 * local servers by default) with a fresh database, logging at warn so stdout is not what is measured.
 * autocannon runs here with 10 connections for 8 seconds per phase.
 *
 * Two ceilings are measured in the same run: a bare hello-world (no I/O) and a bare server that sends the
 * same SQL statements the engine sends for the list and the create, with no logic between them.
 */
import { loadConfig } from "../src/config.js";
import { freshDatabase, load, startServer, table } from "./support/servers.js";

const adminKey = "bench-admin-key-0123456789abcdefghijklmnop";
const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const SEED_ACCOUNTS = 1_000;
const LIST_URL = "/tmf-api/accountManagement/v4/billingAccount?limit=20&state=active";

export async function benchHttp(): Promise<Record<string, string | number>[]> {
  loadConfig({ DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, BSS_SECRETS_KEY: "0".repeat(64) });
  const database = await freshDatabase(databaseUrl, `bss_bench_http_${process.pid}`);
  const bare = await startServer("bench/support/bare-server.ts", { DATABASE_URL: database.url });
  const engine = await startServer("src/main.ts", {
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: `bench:${process.pid}:`,
    ADMIN_API_KEY: adminKey,
    BSS_SECRETS_KEY: "0".repeat(64),
    LOG_LEVEL: "warn",
    // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
    BSS_RATE_LIMIT_PER_MINUTE: "10000000",
  });
  try {
    const headers = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${engine.base}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
      if (response.status !== 201) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as { id: string };
    };
    const party = await post("/tmf-api/party/v4/individual", { givenName: "Bench", familyName: "Mark" });
    const customer = await post("/tmf-api/customerManagement/v4/customer", {
      name: "Bench",
      engagedParty: { id: party.id, "@referredType": "Individual" },
    });
    const accountBody = JSON.stringify({
      name: "Bench account",
      relatedParty: [{ id: customer.id, "@referredType": "Customer" }],
      currency: "EUR",
      billCycleDay: 15,
      timeZone: "Europe/Berlin",
      taxJurisdiction: "DE",
      creditLimit: { unit: "EUR", value: 150 },
      billLimit: { unit: "EUR", value: 80 },
    });
    for (let i = 0; i < SEED_ACCOUNTS; i++)
      await post("/tmf-api/accountManagement/v4/billingAccount", JSON.parse(accountBody));

    const warm = { duration: 3 };
    const createOptions = (base: string, path: string) => ({
      url: `${base}${path}`,
      method: "POST" as const,
      headers,
      body: accountBody,
    });
    const engineCreate = createOptions(engine.base, "/tmf-api/accountManagement/v4/billingAccount");
    const bareCreate = createOptions(bare.base, "/create");

    await load({ url: `${bare.base}/hello`, ...warm });
    const hello = await load({ url: `${bare.base}/hello` });
    await load({ url: `${bare.base}/list`, ...warm });
    const bareList = await load({ url: `${bare.base}/list` });
    await load({ url: `${engine.base}${LIST_URL}`, headers, ...warm });
    const listMax = await load({ url: `${engine.base}${LIST_URL}`, headers });
    // Lists run before creates so that every list phase pages through the same 1,000 accounts.
    const listHalfRate = Math.max(1, Math.floor(listMax.requestsPerSecond / 2));
    const listHalf = await load({ url: `${engine.base}${LIST_URL}`, headers, overallRate: listHalfRate });
    const bareCreateMax = await load(bareCreate);
    const createMax = await load(engineCreate);
    const createHalfRate = Math.max(1, Math.floor(createMax.requestsPerSecond / 2));
    const createHalf = await load({ ...engineCreate, overallRate: createHalfRate });

    type Result = Awaited<ReturnType<typeof load>>;
    const ratio = (result: Result, ceiling: Result) =>
      (result.requestsPerSecond / ceiling.requestsPerSecond).toFixed(3);
    const row = (phase: string, result: Result, vsHello: string, vsSql: string, goal: string) => ({
      phase,
      "req/s": result.requestsPerSecond,
      "p50 ms": result.p50Ms,
      "p99 ms": result.p99Ms,
      "non-2xx": result.non2xx + result.errors,
      "vs hello": vsHello,
      "vs same SQL": vsSql,
      goal,
    });
    const met = (ok: boolean) => (ok ? "met" : "MISSED");
    return [
      row("ceiling: bare Fastify hello-world", hello, "1.000", "", ""),
      row("ceiling: list SQL, no logic", bareList, ratio(bareList, hello), "1.000", ""),
      row(
        `GET billingAccount list (20 of ${SEED_ACCOUNTS}) max`,
        listMax,
        ratio(listMax, hello),
        ratio(listMax, bareList),
        `≥ 0.4 of hello: ${met(listMax.requestsPerSecond >= 0.4 * hello.requestsPerSecond)}`,
      ),
      row(`GET list at half max (${listHalfRate}/s)`, listHalf, "", "", `p99 ≤ 20 ms: ${met(listHalf.p99Ms <= 20)}`),
      row("ceiling: create SQL, no logic", bareCreateMax, ratio(bareCreateMax, hello), "1.000", ""),
      row("POST billingAccount max", createMax, ratio(createMax, hello), ratio(createMax, bareCreateMax), ""),
      row(`POST at half max (${createHalfRate}/s)`, createHalf, "", "", `p99 ≤ 20 ms: ${met(createHalf.p99Ms <= 20)}`),
    ];
  } finally {
    await engine.stop();
    await bare.stop();
    await database.drop();
  }
}

export function printHttp(rows: Record<string, string | number>[]): void {
  process.stdout.write(`\nbench/http (${new Date().toISOString()}, Node ${process.version})\n${table(rows)}\n`);
}
