/**
 * bench/rating: CDRs rated end to end — POST /api/v1/cdrs in batches of 100 → accepted (committed, on the
 * queue) → rated by two worker processes (balances and allowances updated by the charging step, rated rows
 * committed, entries acknowledged) — beside the bare ceiling of the same statements measured in the same run.
 *
 * Budget (issue, DESIGN.md §9): ≥ 0.5 of the bare ceiling (stretch 0.7); ≥ 20,000 CDRs/s sustained (the figure
 * is printed either way); accept → balance updated p99 ≤ 50 ms at 70 % of the maximum rate. Durability is
 * never traded: the run prints the server's synchronous_commit and fsync, and changes neither.
 *
 * Set-up: PostgreSQL and Redis on loopback (BENCH_DATABASE_URL, BENCH_REDIS_URL), a fresh database and a key
 * prefix of its own. The API runs in a child process; with REDIS_URL set it does not rate (src/main.ts starts
 * the rating loop only in embedded mode), so rating is done by two `src/worker.ts` processes, which split the
 * 16 shards by lease. Seeding goes through the API like a CRM: numbers and SIMs in stock, one customer,
 * BENCH_RATING_ACCOUNTS (256) postpaid accounts with one Postpaid M line each, plus one hot account; the time it
 * takes is printed. CDRs are voice calls of 61–120 s, alternately national (drawn from the 500 bundled
 * minutes until they run out, then charged) and to France (always charged), so every account's spend moves.
 *
 * Phases, each with new cdrIds per request:
 * - ceiling, many accounts: the same client, batch size (100) and connections (10) against bench/support/
 *   bare-server.ts (the ingest statements: one insert of keys, usage and suspense rows; one XADD per record to
 *   its account's shard, pipelined), rated by two bench/support/bare-rating.ts workers (XREADGROUP 500 → one
 *   EVALSHA per account of a trivial script over the same keys → one multi-row INSERT into rated_usage, same
 *   columns, in a transaction → XACK + XDEL). Its rows belong to synthetic accounts the engine does not know.
 * - engine, many accounts: the same load against the engine. "Max rate" is a closed loop of 10 connections for
 *   15 s that pauses while more than 10,000 records wait on the queue (so ingest cannot run ahead of rating and
 *   leave a long drain); CDRs/s end to end = records accepted / (first POST → queue empty), where the queue is
 *   empty only when every record was rated, committed and acknowledged. "accepted/s" is the ingest side alone
 *   over the posting window.
 * - engine, latency at 70 %: an open loop at 70 % of the engine's many-account rate for 10 s. Per CDR,
 *   usage_records.received_at (the API's clock when it took the request, before its insert) → rated_usage.rated_at
 *   (the worker's clock after the charging step applied, i.e. balance and allowances updated, just before the
 *   rated rows are inserted and committed); both clocks are this machine's. So it includes the ingest insert,
 *   the XADD, the wait on the queue and the rating, and leaves out the rated rows' own insert and commit
 *   (milliseconds). The POST round trips' p50/p99 are in the note.
 * - ceiling and engine, hot account: every CDR on one line of one account, so one shard and one worker.
 * - embedded: the engine with no DATABASE_URL/REDIS_URL (PGlite in a temp directory, in-process store and
 *   queue, rating inside the API process), 16 accounts; 10 s of posting (4 connections) then the drain, the
 *   backlog read from the API (stored usage with status guided), since PGlite is not reachable from outside.
 *
 * Ceiling and engine see the same client: HTTP/1.1 without pipelining, 10 connections, batches of 100, the same
 * backlog cap; XADDs pipelined per request and the per-account EVALSHAs one after another in both.
 *
 * Checks (the run fails if one does not hold): every CDR the engine answered as accepted has exactly one rated
 * row and none is in suspense; each account's spend to date in Redis equals the sum of its rated amounts per
 * period (integer micro-units, computed in SQL numeric); each bucket's used units in Redis equal the sum of
 * its draws; the ceiling rated every record it accepted; embedded, every accepted record is rated.
 * A diagnostic row lists PostgreSQL's scans per table per 100 CDRs during the engine's many-account phase, from
 * pg_stat_user_tables (index scans, ON CONFLICT checks included, plus sequential scans; every process, the
 * sweeper included): usage_keys and rated_usage are the two inserts' conflict checks, about one per CDR as in
 * the ceiling; the rest are the rating loop's reads per account and pass. Runtime about 2.5 minutes on 2 cores.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Decimal } from "decimal.js";
import { Redis } from "ioredis";
import postgres from "postgres";
import { Pool } from "undici";
import WebSocket from "ws";
import { simRecord } from "../test/support/fixtures.js";
import { freshDatabase, startServer, table } from "./support/servers.js";

const adminKey = "bench-admin-key-0123456789abcdefghijklmnop";
const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ACCOUNTS = Number(process.env.BENCH_RATING_ACCOUNTS ?? 256);
const EMBEDDED_ACCOUNTS = 16;
const SHARDS = 16;
const BATCH = 100;
const CONNECTIONS = 10;
const MAX_MS = 15_000;
const LATENCY_MS = 10_000;
const HOT_MS = 10_000;
const WARM_MS = 2_000;
const EMBEDDED_MS = 10_000;
const EMBEDDED_CONNECTIONS = 4;
/** Records waiting on the queue above which the closed loop pauses: half a second of work at the goal. */
const BACKLOG_CAP = 10_000;
const DRAIN_TIMEOUT_MS = 120_000;
const SEED_CONCURRENCY = 8;
/** Bill-limit crossings timed from the CDR's POST to the alert frame on a WebSocket client. */
const ALERT_SAMPLES = 100;

type Row = Record<string, string | number>;
interface Line {
  msisdn: string;
  productId: string;
  accountId: string;
}

export async function benchRating(): Promise<Row[]> {
  const database = await freshDatabase(databaseUrl, `bss_bench_rating_${process.pid}`);
  const prefix = `bench:rating:${process.pid}:`;
  const redis = new Redis(redisUrl);
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const running: Array<{ stop(): Promise<void> }> = [];
  const dataDir = mkdtempSync(path.join(tmpdir(), "bss-bench-rating-"));
  const rows: Row[] = [];
  const failures: string[] = [];
  const stop = async (server: { stop(): Promise<void> }) => {
    running.splice(running.indexOf(server), 1);
    await server.stop();
  };
  try {
    const [durability] = await sql`select current_setting('synchronous_commit') as sc, current_setting('fsync') as fs`;
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
    running.push(engine);
    const api = client(engine.base);

    // Seeding, through the API.
    const seedStarted = performance.now();
    const lines = await seedLines(api, ACCOUNTS + 1);
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    const hot = lines[ACCOUNTS] as Line;
    const many = lines.slice(0, ACCOUNTS);
    await api.call("POST", "/api/v1/cdr-sources", { id: "bench-msc", countryCode: "49" });
    const network = (
      await api.call("POST", "/api/v1/api-keys", { name: "bench network", role: "network", cdrSources: ["bench-msc"] })
    ).body.key as string;
    // CDRs start after every line went live (a CDR from before activation would rightly go to suspense).
    const startedAt = new Date().toISOString();

    // The ceiling: the bare ingest server and two bare rating workers, on synthetic accounts of the same shape.
    const fake = (line: Line): Line => ({ msisdn: line.msisdn, productId: randomUUID(), accountId: randomUUID() });
    const bareLines = [...many.map(fake), fake(hot)];
    const barePrefix = `${prefix}bare:`;
    const bare = await startServer("bench/support/bare-server.ts", {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      BARE_REDIS_PREFIX: barePrefix,
      BARE_SHARDS: String(SHARDS),
      BARE_LINES: JSON.stringify(bareLines),
    });
    running.push(bare);
    const bareWorkers = await Promise.all(
      [0, 1].map((index) =>
        startWorker(
          "bench/support/bare-rating.ts",
          {
            DATABASE_URL: database.url,
            REDIS_URL: redisUrl,
            BARE_REDIS_PREFIX: barePrefix,
            BARE_SHARDS: String(SHARDS),
            BARE_WORKERS: "2",
            BARE_WORKER_INDEX: String(index),
          },
          async (output) => output.includes("ready"),
        ),
      ),
    );
    running.push(...bareWorkers);
    const bareQueue = redisQueue(redis, barePrefix, () => {
      for (const worker of bareWorkers) if (!worker.alive()) throw new Error(`a bare worker died: ${worker.stderr()}`);
    });
    const bareTarget = { base: bare.base, path: "/ingest", key: network, source: "bench-bare" };
    const manyNumbers = many.map((line) => line.msisdn);
    const ceilingWarm = await closedLoop(
      { ...bareTarget, tag: "bw", numbers: manyNumbers, startedAt, durationMs: WARM_MS },
      bareQueue,
    );
    const ceilingMany = await closedLoop(
      { ...bareTarget, tag: "bm", numbers: manyNumbers, startedAt, durationMs: MAX_MS },
      bareQueue,
    );
    const ceilingHot = await closedLoop(
      { ...bareTarget, tag: "bh", numbers: [hot.msisdn], startedAt, durationMs: HOT_MS },
      bareQueue,
    );
    // The ceiling must have done all its work too: one rated row per record it accepted.
    const bareAccepted = ceilingWarm.accepted + ceilingMany.accepted + ceilingHot.accepted;
    const [bareRated] = await sql`
      select count(*)::int as n from rated_usage r join usage_records u on u.id = r.usage_id where u.source = 'bench-bare'`;
    if (Number(bareRated?.n) !== bareAccepted || ceilingWarm.failed + ceilingMany.failed + ceilingHot.failed > 0) {
      failures.push(`ceiling: ${bareAccepted} accepted, ${bareRated?.n} rated`);
    }
    for (const worker of bareWorkers) await stop(worker);
    await stop(bare);

    // The engine's two rating workers; ready once they split the shards' leases evenly.
    const workerEnv = {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      BSS_REDIS_KEY_PREFIX: prefix,
      BSS_SECRETS_KEY: "0".repeat(64),
      BSS_MIGRATE_ON_START: "false",
      LOG_LEVEL: "warn",
      // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
      BSS_RATE_LIMIT_PER_MINUTE: "10000000",
    };
    const workers = [await startWorker("src/worker.ts", workerEnv), await startWorker("src/worker.ts", workerEnv)];
    running.push(...workers);
    await leasesSplit(redis, prefix, workers.length);
    const queue = redisQueue(redis, prefix, () => {
      for (const worker of workers) if (!worker.alive()) throw new Error(`a rating worker died: ${worker.stderr()}`);
    });
    const target = { base: engine.base, path: "/api/v1/cdrs", key: network, source: "bench-msc" };
    const warm = await closedLoop({ ...target, tag: "w", numbers: manyNumbers, startedAt, durationMs: WARM_MS }, queue);
    const scansBefore = await tableScans(sql);
    const engineMany = await closedLoop(
      { ...target, tag: "m", numbers: manyNumbers, startedAt, durationMs: MAX_MS },
      queue,
    );
    const scans = await scansSince(sql, scansBefore, engineMany.accepted);
    const offered = Math.round(engineMany.endToEnd * 0.7);
    const latencyStarted = new Date();
    const latency = await openLoop(
      { ...target, tag: "l", numbers: manyNumbers, startedAt, durationMs: LATENCY_MS },
      offered / BATCH,
      queue,
    );
    const perCdr = await acceptToRated(sql, latencyStarted, "l");
    const engineHot = await closedLoop(
      { ...target, tag: "h", numbers: [hot.msisdn], startedAt, durationMs: HOT_MS },
      queue,
    );
    const alerts = await alertLatency(api, engine.base, network, many.slice(0, ALERT_SAMPLES), startedAt);
    const accepted =
      [warm, engineMany, latency, engineHot].reduce((sum, phase) => sum + phase.accepted, 0) + alerts.accepted;
    const failed = [warm, engineMany, latency, engineHot].reduce((sum, phase) => sum + phase.failed, 0);
    if (failed > 0) failures.push(`${failed} engine requests failed or were not fully accepted`);
    const exact = await exactness(sql, redis, prefix, lines, accepted);
    failures.push(...exact.failures);
    for (const worker of workers) await stop(worker);
    await stop(engine);

    // Embedded mode: PGlite and the in-process store and queue, rating in the API process.
    const embedded = await startServer("src/main.ts", {
      DATABASE_URL: "",
      REDIS_URL: "",
      BSS_DATA_DIR: dataDir,
      ADMIN_API_KEY: adminKey,
      LOG_LEVEL: "warn",
      // Limits counted (their cost is in the figures) but never reached by the seeding and the load.
      BSS_RATE_LIMIT_PER_MINUTE: "10000000",
    });
    running.push(embedded);
    const local = client(embedded.base);
    const localLines = await seedLines(local, EMBEDDED_ACCOUNTS);
    await local.call("POST", "/api/v1/cdr-sources", { id: "bench-msc", countryCode: "49" });
    const localKey = (
      await local.call("POST", "/api/v1/api-keys", {
        name: "bench network",
        role: "network",
        cdrSources: ["bench-msc"],
      })
    ).body.key as string;
    const localStartedAt = new Date().toISOString();
    const localQueue = usageStatusQueue(local, "guided");
    const localTarget = { base: embedded.base, path: "/api/v1/cdrs", key: localKey, source: "bench-msc" };
    const localNumbers = localLines.map((line) => line.msisdn);
    const localWarm = await closedLoop(
      { ...localTarget, tag: "w", numbers: localNumbers, startedAt: localStartedAt, durationMs: WARM_MS },
      localQueue,
      EMBEDDED_CONNECTIONS,
    );
    const localRun = await closedLoop(
      { ...localTarget, tag: "e", numbers: localNumbers, startedAt: localStartedAt, durationMs: EMBEDDED_MS },
      localQueue,
      EMBEDDED_CONNECTIONS,
    );
    const localRated = await usageStatusQueue(local, "rated").depth();
    const localSuspended = await usageStatusQueue(local, "recycled").depth();
    const localAccepted = localWarm.accepted + localRun.accepted;
    if (localRated !== localAccepted || localSuspended !== 0 || localWarm.failed + localRun.failed > 0) {
      failures.push(
        `embedded: ${localAccepted} accepted, ${localRated} rated, ${localSuspended} in suspense, ${localWarm.failed + localRun.failed} failed requests`,
      );
    }
    await stop(embedded);

    const ratio = (value: number, ceiling: number) => (ceiling > 0 ? (value / ceiling).toFixed(3) : "-");
    const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : "-");
    const accountsNote = `${ACCOUNTS} accounts, ${CONNECTIONS} conn, batch ${BATCH}`;
    rows.push(
      {
        phase: `ceiling: many accounts (${accountsNote}, 2 bare workers)`,
        "CDRs/s": Math.round(ceilingMany.endToEnd),
        "accepted/s": Math.round(ceilingMany.acceptedRate),
        "p50 ms": ms(ceilingMany.post.p50),
        "p99 ms": ms(ceilingMany.post.p99),
        ratio: "1.000",
        note: describe(ceilingMany),
      },
      {
        phase: `engine: many accounts (${accountsNote}, 2 workers)`,
        "CDRs/s": Math.round(engineMany.endToEnd),
        "accepted/s": Math.round(engineMany.acceptedRate),
        "p50 ms": ms(engineMany.post.p50),
        "p99 ms": ms(engineMany.post.p99),
        ratio: ratio(engineMany.endToEnd, ceilingMany.endToEnd),
        note: describe(engineMany),
      },
      {
        phase: `engine: latency at 70 % (${offered} CDRs/s offered, open loop)`,
        "CDRs/s": Math.round(latency.endToEnd),
        "accepted/s": Math.round(latency.acceptedRate),
        "p50 ms": ms(perCdr.p50),
        "p99 ms": ms(perCdr.p99),
        ratio: "-",
        note: `received → rated per CDR (${perCdr.count}, max ${ms(perCdr.max)} ms); POST p50 ${ms(latency.post.p50)} / p99 ${ms(latency.post.p99)} ms; ${latency.late} sends late`,
      },
      {
        phase: `engine: CDR accepted → alert on a WebSocket client (${alerts.samples.length} crossings, idle)`,
        "CDRs/s": "",
        "accepted/s": "",
        "p50 ms": ms(percentile(alerts.samples, 50)),
        "p99 ms": ms(percentile(alerts.samples, 99)),
        ratio: "-",
        note: `POST of one CDR → bill-limit alert frame: worker step and commit, Redis pub/sub, API process, socket; max ${ms(alerts.samples[alerts.samples.length - 1] ?? Number.NaN)} ms`,
      },
      {
        phase: `ceiling: hot account (1 line, ${CONNECTIONS} conn, batch ${BATCH})`,
        "CDRs/s": Math.round(ceilingHot.endToEnd),
        "accepted/s": Math.round(ceilingHot.acceptedRate),
        "p50 ms": ms(ceilingHot.post.p50),
        "p99 ms": ms(ceilingHot.post.p99),
        ratio: "1.000",
        note: describe(ceilingHot),
      },
      {
        phase: `engine: hot account (1 line, ${CONNECTIONS} conn, batch ${BATCH})`,
        "CDRs/s": Math.round(engineHot.endToEnd),
        "accepted/s": Math.round(engineHot.acceptedRate),
        "p50 ms": ms(engineHot.post.p50),
        "p99 ms": ms(engineHot.post.p99),
        ratio: ratio(engineHot.endToEnd, ceilingHot.endToEnd),
        note: describe(engineHot),
      },
      {
        phase: `embedded: PGlite + in-process (${EMBEDDED_ACCOUNTS} accounts, ${EMBEDDED_CONNECTIONS} conn, batch ${BATCH})`,
        "CDRs/s": Math.round(localRun.endToEnd),
        "accepted/s": Math.round(localRun.acceptedRate),
        "p50 ms": ms(localRun.post.p50),
        "p99 ms": ms(localRun.post.p99),
        ratio: "-",
        note: describe(localRun),
      },
    );
    const goal = (phase: string, met: boolean, figure: string) =>
      rows.push({
        phase,
        "CDRs/s": "",
        "accepted/s": "",
        "p50 ms": "",
        "p99 ms": "",
        ratio: "",
        note: `${met ? "met" : "MISSED"}: ${figure}`,
      });
    const share = ceilingMany.endToEnd > 0 ? engineMany.endToEnd / ceilingMany.endToEnd : 0;
    goal("goal: ≥ 0.5 of the ceiling (stretch 0.7), many accounts", share >= 0.5, `${share.toFixed(3)} of the ceiling`);
    goal(
      "goal: ≥ 20,000 CDRs/s end to end, many accounts",
      engineMany.endToEnd >= 20_000,
      `${Math.round(engineMany.endToEnd)} CDRs/s`,
    );
    goal("goal: accept → balance updated p99 ≤ 50 ms at 70 %", perCdr.p99 <= 50, `p99 ${ms(perCdr.p99)} ms`);
    rows.push({
      phase: "checks",
      "CDRs/s": "",
      "accepted/s": "",
      "p50 ms": "",
      "p99 ms": "",
      ratio: "",
      note:
        failures.length === 0
          ? `ok: ${accepted} accepted = ${exact.rated} rated, 0 in suspense; ceiling ${bareAccepted} = rated; spend = Σ amounts on ${exact.accounts} accounts; used = Σ draws on ${exact.buckets} buckets; embedded ${localAccepted} = ${localRated} rated`
          : `FAILED: ${failures.join("; ")}`,
    });
    rows.push({
      phase: "table scans per 100 CDRs (engine, many accounts, all processes)",
      "CDRs/s": "",
      "accepted/s": "",
      "p50 ms": "",
      "p99 ms": "",
      ratio: "",
      note: scans,
    });
    rows.push({
      phase: "set-up",
      "CDRs/s": "",
      "accepted/s": "",
      "p50 ms": "",
      "p99 ms": "",
      ratio: "",
      note: `seeded ${ACCOUNTS + 1} accounts and lines through the API in ${seedSeconds.toFixed(1)} s; synchronous_commit=${durability?.sc}, fsync=${durability?.fs}`,
    });
    if (failures.length > 0) throw new Error(`bench/rating: checks failed\n${table(rows)}`);
    return rows;
  } finally {
    for (const server of [...running].reverse()) await server.stop().catch(() => undefined);
    await unlinkPrefix(redis, prefix).catch(() => undefined);
    redis.disconnect();
    await sql.end({ timeout: 2 });
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printRating(rows: Row[]): void {
  process.stdout.write(`\nbench/rating (${new Date().toISOString()}, Node ${process.version})\n${table(rows)}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// Load: a closed loop with a backlog cap, an open loop at a fixed rate, both with fresh cdrIds per request.

interface Target {
  base: string;
  path: string;
  key: string;
  source: string;
  /** Starts every cdrId of the phase, so its rows can be found again. */
  tag: string;
  numbers: readonly string[];
  startedAt: string;
  durationMs: number;
}

interface Queue {
  /** Records on the queue not yet rated, committed and acknowledged. */
  depth(): Promise<number>;
  /** How often depth() is asked while posting and draining. */
  intervalMs: number;
}

interface PhaseResult {
  accepted: number;
  failed: number;
  requests: number;
  /** Accepted records / (first POST → queue empty). */
  endToEnd: number;
  /** Accepted records / (first POST → last answer). */
  acceptedRate: number;
  drainMs: number;
  /** Share of the posting window the closed loop spent paused at the backlog cap. */
  throttled: number;
  post: { p50: number; p99: number };
  late: number;
}

let sequence = 0;

function batchBody(target: Target, offset: number): { tag: string; body: string } {
  sequence += 1;
  const tag = `${target.tag}${sequence}`;
  const records = Array.from({ length: BATCH }, (_, index) => ({
    recordType: "voice",
    cdrId: `${tag}-${index}`,
    source: target.source,
    servedMSISDN: target.numbers[(offset + index) % target.numbers.length],
    // Alternately national (bundled minutes first) and to France (always charged).
    calledNumber: index % 2 === 0 ? "+4930123456" : "+33123456789",
    recordOpeningTime: target.startedAt,
    duration: 61 + (index % 60),
  }));
  return { tag, body: JSON.stringify(records) };
}

async function post(pool: Pool, target: Target, offset: number): Promise<{ ms: number; accepted: number }> {
  const { body } = batchBody(target, offset);
  const started = performance.now();
  try {
    const response = await pool.request({
      path: target.path,
      method: "POST",
      headers: { authorization: `Bearer ${target.key}`, "content-type": "application/json" },
      body,
    });
    const answer = (await response.body.json()) as { accepted?: number };
    const ms = performance.now() - started;
    return { ms, accepted: response.statusCode === 200 ? (answer.accepted ?? 0) : -1 };
  } catch {
    return { ms: performance.now() - started, accepted: -1 };
  }
}

/** Polls the queue's depth in the background; `drained()` waits until it is empty. */
function watch(queue: Queue) {
  let depth = 0;
  let stopped = false;
  let failure: unknown = null;
  const loop = (async () => {
    while (!stopped && failure === null) {
      try {
        depth = await queue.depth();
      } catch (error) {
        failure = error;
      }
      await sleep(queue.intervalMs);
    }
  })();
  return {
    depth: () => depth,
    failed: () => failure !== null,
    async drained(): Promise<number> {
      stopped = true;
      await loop;
      if (failure !== null) throw failure;
      const deadline = performance.now() + DRAIN_TIMEOUT_MS;
      while ((await queue.depth()) > 0) {
        if (performance.now() > deadline) throw new Error(`the queue did not drain: ${await queue.depth()} waiting`);
        await sleep(queue.intervalMs);
      }
      return performance.now();
    },
  };
}

async function closedLoop(target: Target, queue: Queue, connections = CONNECTIONS): Promise<PhaseResult> {
  const pool = new Pool(target.base, { connections, pipelining: 1 });
  const watcher = watch(queue);
  const latencies: number[] = [];
  let accepted = 0;
  let failed = 0;
  let requests = 0;
  let throttledMs = 0;
  let offset = 0;
  const first = performance.now();
  const end = first + target.durationMs;
  let lastAnswer = first;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end && !watcher.failed()) {
        if (watcher.depth() > BACKLOG_CAP) {
          const paused = performance.now();
          await sleep(5);
          throttledMs += performance.now() - paused;
          continue;
        }
        offset += BATCH;
        requests += 1;
        const answer = await post(pool, target, offset);
        lastAnswer = performance.now();
        latencies.push(answer.ms);
        if (answer.accepted >= 0) accepted += answer.accepted;
        if (answer.accepted !== BATCH) failed += 1;
      }
    }),
  );
  const drainedAt = await watcher.drained();
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    accepted,
    failed,
    requests,
    endToEnd: accepted / ((drainedAt - first) / 1000),
    acceptedRate: accepted / ((lastAnswer - first) / 1000),
    drainMs: drainedAt - lastAnswer,
    throttled: throttledMs / connections / (lastAnswer - first),
    post: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    late: 0,
  };
}

/** Requests at a fixed rate whatever the answers do (an open loop), so queueing shows up as latency. */
async function openLoop(target: Target, requestsPerSecond: number, queue: Queue): Promise<PhaseResult> {
  const pool = new Pool(target.base, { connections: 32, pipelining: 1 });
  const watcher = watch(queue);
  const latencies: number[] = [];
  const pending: Array<Promise<void>> = [];
  let accepted = 0;
  let failed = 0;
  let late = 0;
  const interval = 1000 / Math.max(requestsPerSecond, 0.1);
  const first = performance.now();
  let lastAnswer = first;
  for (let n = 0; ; n++) {
    const due = first + n * interval;
    if (due >= first + target.durationMs) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -interval) late += 1;
    pending.push(
      post(pool, target, n * BATCH).then((answer) => {
        lastAnswer = performance.now();
        latencies.push(answer.ms);
        if (answer.accepted >= 0) accepted += answer.accepted;
        if (answer.accepted !== BATCH) failed += 1;
      }),
    );
  }
  await Promise.all(pending);
  const drainedAt = await watcher.drained();
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    accepted,
    failed,
    requests: pending.length,
    endToEnd: accepted / ((drainedAt - first) / 1000),
    acceptedRate: accepted / ((lastAnswer - first) / 1000),
    drainMs: drainedAt - lastAnswer,
    throttled: 0,
    post: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    late,
  };
}

function describe(phase: PhaseResult): string {
  return `${phase.accepted} CDRs in ${phase.requests} requests; drain ${(phase.drainMs / 1000).toFixed(1)} s; paused at the backlog cap ${(phase.throttled * 100).toFixed(0)} %`;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Redis shard streams under a prefix: entries are deleted when acknowledged, so their length is the backlog. */
function redisQueue(redis: Redis, prefix: string, alive: () => void): Queue {
  return {
    intervalMs: 25,
    async depth() {
      alive();
      const pipeline = redis.pipeline();
      for (let shard = 0; shard < SHARDS; shard++) pipeline.xlen(`${prefix}usage-queue:{s${shard}}`);
      const results = (await pipeline.exec()) ?? [];
      return results.reduce((sum, [, value]) => sum + Number(value ?? 0), 0);
    },
  };
}

/** Embedded mode: stored usage in a status, counted by the API (its PGlite is not reachable from outside). */
function usageStatusQueue(api: Api, status: string): Queue {
  return {
    intervalMs: 500,
    async depth() {
      const response = await fetch(`${api.base}/tmf-api/usageManagement/v4/usage?status=${status}&limit=1&fields=id`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`usage list: ${response.status}`);
      return Number(response.headers.get("x-total-count"));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Measures and checks in the database and Redis.

/** Per CDR of a phase: received_at (API clock, request taken) → rated_at (worker clock, step applied). */
async function acceptToRated(sql: postgres.Sql, since: Date, tag: string) {
  const [row] = await sql`
    select count(*)::int as count,
      percentile_cont(0.5) within group (order by ms)::float8 as p50,
      percentile_cont(0.99) within group (order by ms)::float8 as p99,
      max(ms)::float8 as max
    from (
      select extract(epoch from (r.rated_at - u.received_at)) * 1000 as ms
      from usage_records u join rated_usage r on r.usage_id = u.id
      where u.received_at >= ${since} and u.source = 'bench-msc' and u.cdr_id like ${`${tag}%`}
    ) t`;
  return {
    count: Number(row?.count ?? 0),
    p50: Number(row?.p50 ?? Number.NaN),
    p99: Number(row?.p99 ?? Number.NaN),
    max: Number(row?.max ?? Number.NaN),
  };
}

/**
 * Every accepted CDR rated once and none in suspense; spend to date in Redis = Σ rated amounts per account and
 * period (micro-units, exact in SQL numeric and BigInt); used units in Redis = Σ draws per bucket.
 */
async function exactness(sql: postgres.Sql, redis: Redis, prefix: string, lines: readonly Line[], accepted: number) {
  const failures: string[] = [];
  const [counts] = await sql`
    select count(*)::int as stored,
      count(r.usage_id)::int as rated,
      count(s.usage_id)::int as suspended
    from usage_records u
    left join rated_usage r on r.usage_id = u.id
    left join usage_suspense s on s.usage_id = u.id
    where u.source = 'bench-msc'`;
  const stored = Number(counts?.stored);
  const rated = Number(counts?.rated);
  const suspended = Number(counts?.suspended);
  if (stored !== accepted || rated !== accepted || suspended !== 0) {
    const reasons = await sql`
      select s.reason, count(*)::int as n from usage_suspense s join usage_records u on u.id = s.usage_id
      where u.source = 'bench-msc' group by 1 order by 2 desc limit 3`;
    const why = reasons.map((row) => `${row.reason} ×${row.n}`).join(", ");
    failures.push(
      `${accepted} accepted, ${stored} stored, ${rated} rated, ${suspended} in suspense${why ? ` (${why})` : ""}`,
    );
  }

  const accounts = [...new Set(lines.map((line) => line.accountId))];
  const spendRows = await sql`
    select r.billing_account_id::text as account, r.spend_period as period,
      (sum(r.amount) * 1000000)::numeric(40, 0)::text as micro
    from rated_usage r join usage_records u on u.id = r.usage_id
    where u.source = 'bench-msc'
    group by 1, 2`;
  const ledger = new Map<string, bigint>(
    spendRows.map((row) => [`${row.account}|${row.period}`, BigInt(row.micro as string)]),
  );
  const spendPipeline = redis.pipeline();
  for (const account of accounts) spendPipeline.hgetall(`${prefix}{acct:${account}}:spend`);
  const spends = ((await spendPipeline.exec()) ?? []).map(([, value]) => value as Record<string, string>);
  const store = new Map<string, bigint>();
  accounts.forEach((account, index) => {
    for (const [period, micro] of Object.entries(spends[index] ?? {})) store.set(`${account}|${period}`, BigInt(micro));
  });
  let spendMismatches = 0;
  for (const key of new Set([...ledger.keys(), ...store.keys()])) {
    if ((ledger.get(key) ?? 0n) !== (store.get(key) ?? 0n)) {
      spendMismatches += 1;
      if (spendMismatches <= 3)
        failures.push(`spend ${key}: ledger ${ledger.get(key) ?? 0n}, Redis ${store.get(key) ?? 0n}`);
    }
  }
  if (ledger.size === 0) failures.push("no spend at all: the CDRs were not charged");

  const drawRows = await sql`
    select d->>'bucketId' as bucket, sum((d->>'units')::bigint)::text as units
    from rated_usage r
    join usage_records u on u.id = r.usage_id
    cross join lateral jsonb_array_elements(r.draws) d
    where u.source = 'bench-msc'
    group by 1`;
  const drawn = new Map<string, bigint>(drawRows.map((row) => [row.bucket as string, BigInt(row.units as string)]));
  const linePipeline = redis.pipeline();
  for (const line of lines) linePipeline.hgetall(`${prefix}{acct:${line.accountId}}:l:${line.productId}`);
  const used = new Map<string, bigint>();
  for (const [, value] of (await linePipeline.exec()) ?? []) {
    for (const [field, units] of Object.entries((value ?? {}) as Record<string, string>)) {
      if (field.startsWith("u:")) used.set(field.slice(2), BigInt(units));
    }
  }
  let bucketMismatches = 0;
  for (const bucket of new Set([...drawn.keys(), ...used.keys()])) {
    if ((drawn.get(bucket) ?? 0n) !== (used.get(bucket) ?? 0n)) {
      bucketMismatches += 1;
      if (bucketMismatches <= 3)
        failures.push(`bucket ${bucket}: Σ draws ${drawn.get(bucket) ?? 0n}, Redis used ${used.get(bucket) ?? 0n}`);
    }
  }
  if (spendMismatches > 3) failures.push(`${spendMismatches} spend mismatches in all`);
  if (bucketMismatches > 3) failures.push(`${bucketMismatches} bucket mismatches in all`);
  return { failures, rated, accounts: accounts.length, buckets: used.size };
}

/** Index and sequential scans per table, from PostgreSQL's statistics for this database. */
async function tableScans(sql: postgres.Sql): Promise<Map<string, number>> {
  // Statistics reach the shared counters up to a second after a transaction ends.
  await sleep(1_500);
  await sql`select pg_stat_clear_snapshot()`;
  const rows = await sql`
    select relname, (coalesce(idx_scan, 0) + coalesce(seq_scan, 0))::bigint::text as scans from pg_stat_user_tables`;
  return new Map(rows.map((row) => [row.relname as string, Number(row.scans)]));
}

/** The tables read most during a phase, as scans per 100 records: where the rating loop's statements go. */
async function scansSince(sql: postgres.Sql, before: Map<string, number>, records: number): Promise<string> {
  const after = await tableScans(sql);
  return [...after]
    .map(([name, scans]) => [name, ((scans - (before.get(name) ?? 0)) * 100) / Math.max(records, 1)] as const)
    .filter(([, per]) => per >= 0.5)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([name, per]) => `${name} ${per.toFixed(1)}`)
    .join(", ");
}

async function unlinkPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
}

// ---------------------------------------------------------------------------------------------------------
// Processes and seeding.

interface Worker {
  stop(): Promise<void>;
  alive(): boolean;
  stderr(): string;
}

/**
 * A process with no HTTP listener (a rating worker), ready when `ready` says so: given its stdout so far, or
 * (without `ready`) at once; the caller then waits for what it needs.
 */
async function startWorker(
  entry: string,
  env: NodeJS.ProcessEnv,
  ready?: (stdout: string) => Promise<boolean>,
): Promise<Worker> {
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the workers too.
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  const child: ChildProcess = spawn(process.execPath, [...extra, "--import", "tsx", entry], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    if (stdout.length < 10_000) stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 60_000;
  while (ready !== undefined && !(await ready(stdout))) {
    if (child.exitCode !== null) throw new Error(`${entry} exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`${entry} did not start: ${stderr}`);
    await sleep(100);
  }
  return {
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until `count` workers hold every shard's lease between them, evenly. */
async function leasesSplit(redis: Redis, prefix: string, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pipeline = redis.pipeline();
    for (let shard = 0; shard < SHARDS; shard++) pipeline.get(`${prefix}lease:{s${shard}}`);
    const holders = ((await pipeline.exec()) ?? []).map(([, value]) => (value as string | null)?.split("|")[0]);
    const held = new Map<string, number>();
    for (const holder of holders) if (holder) held.set(holder, (held.get(holder) ?? 0) + 1);
    if (held.size === count && [...held.values()].every((shards) => shards === SHARDS / count)) return;
    if (Date.now() > deadline)
      throw new Error(`leases not split between ${count} workers: ${JSON.stringify([...held])}`);
    await sleep(100);
  }
}

interface Api {
  base: string;
  call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown>; total: number }>;
}

/**
 * How long a crossing takes to reach a subscriber: for each account in turn, its bill limit is set just above its
 * spend to date, one charged CDR is posted, and the time to the alert frame on a WebSocket (an admin ticket
 * following every account, on the API process; the workers are other processes) is taken. Sorted samples.
 */
async function alertLatency(
  api: Api,
  base: string,
  networkKey: string,
  lines: readonly Line[],
  startedAt: string,
): Promise<{ samples: number[]; accepted: number }> {
  const ticket = (await api.call("POST", "/api/v1/ws/tickets", {})).body.ticket as string;
  const socket = new WebSocket(`${base.replace(/^http/, "ws")}/api/v1/ws?ticket=${ticket}`);
  const waiting = new Map<string, () => void>();
  socket.on("message", (data) => {
    const frame = JSON.parse(data.toString()) as { type: string; alert?: { billingAccount: { id: string } } };
    if (frame.type === "alert") waiting.get(frame.alert?.billingAccount.id ?? "")?.();
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const samples: number[] = [];
  let accepted = 0;
  try {
    for (const line of lines) {
      const balance = await api.call("GET", `/tmf-api/prepayBalanceManagement/v4/accumulatedBalance/${line.accountId}`);
      const spend = (balance.body.totalBalance as { amount: number }).amount;
      const patched = await api.call("PATCH", `/tmf-api/accountManagement/v4/billingAccount/${line.accountId}`, {
        billLimit: {
          unit: "EUR",
          value: new Decimal(String(spend)).toDecimalPlaces(2, Decimal.ROUND_UP).plus("0.01").toNumber(),
        },
      });
      if (patched.status !== 200) throw new Error(`bill limit: ${patched.status} ${JSON.stringify(patched.body)}`);
      const arrived = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no alert for ${line.accountId} within 10 s`)), 10_000);
        waiting.set(line.accountId, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const started = performance.now();
      const response = await fetch(`${base}/api/v1/cdrs`, {
        method: "POST",
        headers: { authorization: `Bearer ${networkKey}`, "content-type": "application/json" },
        body: JSON.stringify([
          {
            recordType: "voice",
            cdrId: `alert-${line.accountId}`,
            source: "bench-msc",
            servedMSISDN: line.msisdn,
            calledNumber: "+33123456789",
            recordOpeningTime: startedAt,
            duration: 120,
          },
        ]),
      });
      accepted += ((await response.json()) as { accepted?: number }).accepted ?? 0;
      await arrived;
      samples.push(performance.now() - started);
      waiting.delete(line.accountId);
    }
  } finally {
    socket.close();
  }
  return { samples: samples.sort((a, b) => a - b), accepted };
}

function client(base: string): Api {
  return {
    base,
    async call(method, path, body) {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return {
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
        total: Number(response.headers.get("x-total-count") ?? Number.NaN),
      };
    },
  };
}

/** Runs `task` for 0..count-1 with at most `limit` in flight. */
async function inParallel(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/**
 * Lines through the front door, as a CRM makes them: numbers and SIMs in stock, one customer, `count` postpaid
 * accounts (limits far above what the run spends, so nothing is barred) with one Postpaid M line each, every
 * order completed by the simulated network.
 */
async function seedLines(api: Api, count: number): Promise<Line[]> {
  const must = (answer: { status: number; body: unknown }, what: string) => {
    if (answer.status >= 300) throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
    return answer.body as Record<string, unknown>;
  };
  const last = `+49151${String(count + 9).padStart(8, "0")}`;
  must(await api.call("POST", "/api/v1/inventory/number-ranges", { from: "+4915100000000", to: last }), "numbers");
  must(
    await api.call(
      "POST",
      "/api/v1/inventory/sim-imports",
      Array.from({ length: count }, (_, index) => simRecord(index + 1)),
    ),
    "SIMs",
  );
  const party = must(
    await api.call("POST", "/tmf-api/party/v4/individual", { givenName: "Bench", familyName: "Rating" }),
    "party",
  );
  const customer = must(
    await api.call("POST", "/tmf-api/customerManagement/v4/customer", {
      name: "Bench",
      engagedParty: { id: party.id, "@referredType": "Individual" },
    }),
    "customer",
  );
  await inParallel(count, SEED_CONCURRENCY, async (index) => {
    const account = must(
      await api.call("POST", "/tmf-api/accountManagement/v4/billingAccount", {
        name: `Bench ${index}`,
        relatedParty: [{ id: customer.id, "@referredType": "Customer" }],
        accountType: "postpaid",
        currency: "EUR",
        taxJurisdiction: "DE",
        creditLimit: { unit: "EUR", value: 1_000_000 },
        billLimit: { unit: "EUR", value: 500_000 },
      }),
      "billing account",
    );
    must(
      await api.call("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
        billingAccount: { id: account.id },
        productOrderItem: [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
      }),
      "order",
    );
  });
  const deadline = Date.now() + 180_000;
  while (
    (await api.call("GET", "/tmf-api/productInventory/v4/product?status=active&limit=1&fields=id")).total < count
  ) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} lines went live`);
    await sleep(250);
  }
  type Listed = {
    id: string;
    billingAccount: { id: string };
    productCharacteristic: { name: string; value: string }[];
  };
  const lines: Line[] = [];
  for (let offset = 0; offset < count; offset += 1000) {
    const page = await api.call(
      "GET",
      `/tmf-api/productInventory/v4/product?status=active&limit=1000&offset=${offset}`,
    );
    for (const product of page.body as unknown as Listed[]) {
      lines.push({
        msisdn: product.productCharacteristic.find((c) => c.name === "msisdn")?.value ?? "",
        productId: product.id,
        accountId: product.billingAccount.id,
      });
    }
  }
  if (lines.length !== count || lines.some((line) => line.msisdn === "")) {
    throw new Error(`expected ${count} active lines with numbers, found ${lines.length}`);
  }
  return lines;
}
