/**
 * bench/orders: add orders end to end (POST acknowledged → fulfilled in the background → GET says completed):
 * orders per second and latency, on PostgreSQL and Redis with the simulated network.
 *
 * Budget (issue 5): p99 ≤ 50 ms at half the maximum rate measured in the same run.
 *
 * Phases of 15 s (at half rate about 250 orders, so p99 is not a single sample). A closed loop of 10 clients finds the maximum (each places an order and polls it every 25 ms until it is
 * done); an open loop at half that rate measures latency where there is headroom. The end-to-end time is the
 * order's own orderDate → completionDate (so the polling interval does not inflate it) plus the POST's round
 * trip; polling every few milliseconds would load the engine with reads and measure the poller instead.
 */

import { simRecord } from "../test/support/fixtures.js";
import { percentile } from "./support/figures.js";
import { freshDatabase, startServer, table } from "./support/servers.js";

const adminKey = "bench-admin-key-0123456789abcdefghijklmnop";
const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const PHASE_MS = 15_000;

export async function benchOrders(): Promise<Record<string, string | number>[]> {
  const database = await freshDatabase(databaseUrl, `bss_bench_orders_${process.pid}`);
  const engine = await startServer("src/main.ts", {
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: `bench:${process.pid}:`,
    BSS_SECRETS_KEY: "0".repeat(64),
    BSS_BODY_LIMIT_BYTES: String(8 * 1_048_576),
    BSS_DB_POOL_MAX: process.env.BENCH_DB_POOL_MAX ?? "10",
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: "warn",
    // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
    BSS_RATE_LIMIT_PER_MINUTE: "10000000",
  });
  const headers = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${engine.base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  try {
    await call("POST", "/api/v1/inventory/number-ranges", { from: "+4915100000000", to: "+4915100099999" });
    for (let batch = 0; batch < 3; batch++) {
      const sims = Array.from({ length: 10_000 }, (_, index) => simRecord(batch * 10_000 + index + 1));
      const imported = await call("POST", "/api/v1/inventory/sim-imports", sims);
      if (imported.status !== 201) throw new Error(`SIM import failed: ${JSON.stringify(imported.body).slice(0, 300)}`);
    }
    const party = await call("POST", "/tmf-api/party/v4/individual", { givenName: "Bench", familyName: "Orders" });
    const customer = await call("POST", "/tmf-api/customerManagement/v4/customer", {
      name: "Bench",
      engagedParty: { id: party.body.id, "@referredType": "Individual" },
    });
    const account = await call("POST", "/tmf-api/accountManagement/v4/billingAccount", {
      name: "Bench",
      relatedParty: [{ id: customer.body.id, "@referredType": "Customer" }],
      currency: "EUR",
      taxJurisdiction: "DE",
      creditLimit: { unit: "EUR", value: 100 },
    });
    const order = {
      billingAccount: { id: account.body.id },
      productOrderItem: [
        { id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } },
        {
          id: "2",
          action: "add",
          productOffering: { id: "addon-data-5gb" },
          productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
        },
      ],
    };
    const one = async (): Promise<{ ms: number; ok: boolean }> => {
      const started = performance.now();
      const placed = await call("POST", "/tmf-api/productOrderingManagement/v4/productOrder", order);
      const postMs = performance.now() - started;
      let current = placed.body;
      while (current.state === "acknowledged" || current.state === "inProgress") {
        await new Promise((resolve) => setTimeout(resolve, 25));
        current = (
          await call(
            "GET",
            `/tmf-api/productOrderingManagement/v4/productOrder/${placed.body.id as string}?fields=state,orderDate,completionDate`,
          )
        ).body;
      }
      const serverMs = Date.parse(String(current.completionDate)) - Date.parse(String(current.orderDate));
      return { ms: postMs + serverMs, ok: current.state === "completed" };
    };
    for (let i = 0; i < 20; i++) await one();

    const closed = async () => {
      const results: Array<{ ms: number; ok: boolean }> = [];
      const end = performance.now() + PHASE_MS;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (performance.now() < end) results.push(await one());
        }),
      );
      return results;
    };
    const open = async (rate: number) => {
      const results: Array<{ ms: number; ok: boolean }> = [];
      const pending: Promise<void>[] = [];
      const started = performance.now();
      for (let index = 0; performance.now() - started < PHASE_MS; index++) {
        const due = started + (index * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        pending.push(one().then((result) => void results.push(result)));
      }
      await Promise.all(pending);
      return results;
    };
    const summarize = (phase: string, results: Array<{ ms: number; ok: boolean }>, goal: string) => {
      const sorted = results.map((result) => result.ms).sort((a, b) => a - b);
      const p99 = percentile(sorted, 99);
      return {
        phase,
        "orders/s": Math.round(results.length / (PHASE_MS / 1000)),
        "p50 ms": percentile(sorted, 50).toFixed(1),
        "p99 ms": p99.toFixed(1),
        "not completed": results.filter((result) => !result.ok).length,
        goal: goal === "" ? "" : `${goal}: ${p99 <= 50 ? "met" : "MISSED"}`,
      };
    };
    const max = await closed();
    const maxRate = max.length / (PHASE_MS / 1000);
    const half = await open(Math.max(1, Math.floor(maxRate / 2)));
    return [
      summarize("add order, end to end, 10 clients (max)", max, ""),
      summarize(`add order, end to end, at half max (${Math.floor(maxRate / 2)}/s)`, half, "p99 ≤ 50 ms"),
    ];
  } finally {
    await engine.stop();
    await database.drop();
  }
}

export function printOrders(rows: Record<string, string | number>[]): void {
  process.stdout.write(`\nbench/orders (${new Date().toISOString()}, Node ${process.version})\n${table(rows)}\n`);
}
