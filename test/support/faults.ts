import type { ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import postgres from "postgres";
import tap, { type Test } from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { isUnavailable } from "../../src/platform/error-handler.js";
import { spawnWorker } from "./charging.js";
import { type Engine, services, startEngine } from "./engine.js";
import { activateLine, orderReadyAccount } from "./fixtures.js";
import { describeProblems, SUMMARY_CHECK, type SummaryProblems } from "./summaries.js";

/**
 * The fault tests' system (DESIGN.md §5): an engine in the test process (the API: ingestion, balances) on real
 * time, worker processes that may be killed at named crash points, servers the test may own and kill, a network
 * element that retries what was refused, and the checks every fault ends with: every accepted CDR rated once or
 * in suspense, ledger = Redis, each threshold alerted once, and a replay of the stored CDRs into an empty rating
 * state that gives the same rated rows and balances.
 */

/**
 * Fault files run one at a time, beside the other files (the runner spreads them through its list): each starts
 * throwaway servers and worker processes, and two at once on two cores would make their recovery times say more
 * about each other than about the engine. The lock is a PostgreSQL advisory lock on the run's server, held by a
 * connection of this process until its tests end (a crashed file's lock goes with its connection). Waiting for it
 * does not count against the file's time limit; the limit starts again once the lock is held.
 */
async function holdFaultLock(): Promise<void> {
  if (services.pgUrl === undefined) return;
  tap.setTimeout(FAULT_LOCK_WAIT_MS);
  const waitStarted = Date.now();
  const lock = postgres(services.pgUrl, { max: 1, idle_timeout: 0, onnotice: () => {} });
  await lock`select pg_advisory_lock(${FAULT_LOCK_KEY}, ${Number(services.runId) % 2_147_483_647})`;
  tap.setTimeout(FAULT_FILE_LIMIT_MS);
  // The runner subtracts the wait from the file's time in its slowest-files table.
  const waits = process.env.BSS_TEST_WAITS_FILE;
  const file = process.argv[1];
  if (waits !== undefined && file !== undefined) {
    appendFileSync(waits, `${path.relative(process.cwd(), file)} ${Date.now() - waitStarted}\n`);
  }
  tap.teardown(() => lock.end({ timeout: 1 }));
}
const FAULT_LOCK_KEY = 4_711;
const FAULT_LOCK_WAIT_MS = 1_200_000;
const FAULT_FILE_LIMIT_MS = 180_000;
await holdFaultLock();

/** Business time = wall time: the worker processes sweep and rate on the system clock too. */
export class RealClock extends ManualClock {
  override now(): Date {
    return new Date();
  }
}

export interface FaultLine {
  accountId: string;
  lineId: string;
  msisdn: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`'s value, or `otherwise` after `ms`; the timer is cleared either way, so it never keeps the file alive. */
async function within<T, U>(ms: number, promise: Promise<T>, otherwise: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(otherwise), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An engine with `accounts` accounts of one line each: postpaid Postpaid M lines with a 30.00 bill limit (bill
 * limit alerts), prepaid pay-as-you-go lines topped up with 20.00 (low balance, exhausted, barred).
 */
export async function faultSystem(
  t: Test,
  options: { accounts?: number; servers?: { pgUrl?: string; redisUrl?: string }; env?: Record<string, string> } = {},
): Promise<{ engine: Engine; lines: FaultLine[] }> {
  const engine = await startEngine(t, {
    driver: "postgres",
    clock: new RealClock(new Date()),
    // Two shards for four accounts: at least two accounts share a shard, so a batch holds several accounts.
    env: { BSS_RATING_SHARDS: "2", ...options.env },
    ...(options.servers ? { servers: options.servers } : {}),
  });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const lines: FaultLine[] = [];
  for (let i = 0; i < (options.accounts ?? 4); i++) {
    const prepaid = i % 2 === 1;
    const { accountId } = await orderReadyAccount(engine, {
      numbers: [`+4915100007${i}00`, `+4915100007${i}09`],
      sims: i === 0 ? 10 : 0,
      accountType: prepaid ? "prepaid" : "postpaid",
    });
    if (!prepaid) {
      const patched = await engine.request("PATCH", `/tmf-api/accountManagement/v4/billingAccount/${accountId}`, {
        body: { billLimit: { unit: "EUR", value: 30 }, creditLimit: { unit: "EUR", value: 100_000 } },
      });
      if (patched.statusCode !== 200) throw new Error(patched.body);
    }
    const line = await activateLine(engine, accountId, prepaid ? "plan-prepaid-payg" : "plan-postpaid-m");
    if (prepaid) {
      const topUp = await engine.request("POST", "/tmf-api/prepayBalanceManagement/v4/topupBalance", {
        key: engine.keys.crm,
        headers: { "idempotency-key": `fault-${line.lineId}` },
        body: { amount: { amount: 20, units: "EUR" }, product: { id: line.lineId } },
      });
      if (topUp.statusCode !== 201) throw new Error(topUp.body);
    }
    lines.push({ accountId, lineId: line.lineId, msisdn: line.msisdn });
  }
  // CDRs carry times a second in the past: after every activation.
  await sleep(1_200);
  return { engine, lines };
}

let sequence = 0;

/** `count` voice CDRs over the lines in turn: two of three to France (charged), one national (allowance first). */
export function calls(lines: readonly FaultLine[], count: number, tag: string) {
  const at = new Date(Date.now() - 1_000).toISOString();
  return Array.from({ length: count }, (_, index) => {
    sequence += 1;
    const line = lines[index % lines.length] as FaultLine;
    return {
      recordType: "voice",
      cdrId: `${tag}-${process.pid}-${sequence}`,
      source: "msc-1",
      servedMSISDN: line.msisdn,
      calledNumber: sequence % 3 === 0 ? "+4930123456" : "+33123456789",
      recordOpeningTime: at,
      duration: 30 + (sequence % 9) * 20,
    };
  });
}

/**
 * A network element: posts a batch until it is answered, retrying after a 503 (a dependency down) or a
 * refused connection, as switches do. Answers the outcome counts and how many times it was refused.
 */
export async function post(engine: Engine, records: readonly unknown[]) {
  let refused = 0;
  for (;;) {
    const answer = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: records });
    if (answer.statusCode === 200) {
      const body = answer.json() as { accepted: number; duplicate?: number; duplicates?: number };
      return { accepted: body.accepted, refused };
    }
    if (answer.statusCode !== 503) throw new Error(`ingest answered ${answer.statusCode}: ${answer.body}`);
    refused += 1;
    await sleep(100);
  }
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  // A check that meets a connection the restarted server dropped is asked again, like any client would.
  while (!(await check().catch((error: unknown) => (isUnavailable(error) ? false : Promise.reject(error))))) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
  return Date.now() - started;
}

export async function ratedOrSuspended(engine: Engine): Promise<number> {
  const [row] = await engine.sql<{ n: number }>(
    `select ((select count(*) from rated_usage) + (select count(*) from usage_suspense where resolved_at is null))::int as n`,
  );
  return row?.n ?? 0;
}

/** `npm run worker` with this engine's servers and fast sweeping, optionally with a crash point or fault. */
export function worker(
  engine: Engine,
  fault?: string,
): { child: ChildProcess; exited: Promise<NodeJS.Signals | number | null> } {
  const { child } = spawnWorker(
    engine,
    "fatal",
    {
      BSS_SWEEP_AFTER_SECONDS: "2",
      BSS_SWEEP_INTERVAL_SECONDS: "1",
      // A dead worker's shards free up after this; production's 15 s would make recovery mostly waiting.
      BSS_LEASE_SECONDS: "3",
      ...(fault === undefined ? {} : { BSS_FAULT: fault }),
    },
    "pipe",
  );
  // A worker's errors, kept for the failure message of the test that started it.
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  child.once("exit", (code) => {
    if (code !== 0 && code !== null && stderr !== "") process.stderr.write(`worker exited ${code}: ${stderr}\n`);
  });
  return {
    child,
    exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code))),
  };
}

export async function stopWorkers(workers: ReadonlyArray<ReturnType<typeof worker>>): Promise<void> {
  for (const running of workers) if (running.child.exitCode === null) running.child.kill("SIGTERM");
  await Promise.all(workers.map((running) => running.exited));
}

/**
 * The checks after a fault: every accepted CDR stored once and rated exactly once or in suspense (none lost,
 * none charged twice: one rated row per record, spend and balances = the ledger), ledger = Redis for every line
 * and account, and one alert per crossing with each once-per-period threshold alerted once.
 */
export async function checkInvariants(
  t: Test,
  engine: Engine,
  accepted: number,
): Promise<{ rated: number; suspended: number }> {
  const [counts] = await engine.sql<{ stored: number; rated: number; suspended: number; lost: number }>(
    `select (select count(*) from usage_records where chargeable and product_id is not null)::int as stored,
       (select count(*) from rated_usage)::int as rated,
       (select count(*) from usage_suspense where resolved_at is null)::int as suspended,
       (select count(*) from usage_records u where u.chargeable and u.product_id is not null
          and not exists (select 1 from rated_usage r where r.usage_id = u.id)
          and not exists (select 1 from usage_suspense s where s.usage_id = u.id and s.resolved_at is null))::int as lost`,
  );
  t.equal(counts?.stored, accepted, "every accepted CDR stored once");
  t.equal(counts?.lost, 0, "nothing lost: every accepted CDR is rated or in suspense");
  t.equal((counts?.rated ?? 0) + (counts?.suspended ?? 0), accepted, "rated exactly once or in suspense");
  const report = await engine.app.services.charging.reconcile.run("check");
  t.same(report.mismatched, [], "ledger = Redis for every line and account (nothing charged twice)");
  const [alerting] = await engine.sql<{ crossings: number; alerts: number; twice: number }>(
    `select (select count(*) from threshold_crossings)::int as crossings,
       (select count(*) from alerts where kind not in ('lineBarred', 'lineUnbarred'))::int as alerts,
       (select count(*) from (select 1 from alerts where kind in ('billLimit', 'spendAmount', 'allowance')
          group by billing_account_id, kind, body->>'period', body->>'bucketId', body->'threshold'->>'percent',
            body->'threshold'->>'amount'
          having count(*) > 1) d)::int as twice`,
  );
  t.equal(alerting?.alerts, alerting?.crossings, "one alert per crossing");
  t.equal(alerting?.twice, 0, "each threshold alerted once per period");
  const [summaries] = await engine.sql<SummaryProblems>(SUMMARY_CHECK);
  t.equal(describeProblems(summaries), null, "usage summaries = the sums of their rated rows, numbered without gaps");
  return { rated: counts?.rated ?? 0, suspended: counts?.suspended ?? 0 };
}

/** Every rated row and every account's state, comparable across runs. */
async function snapshot(engine: Engine) {
  const rows = await engine.sql<Record<string, string>>(
    `select usage_id::text, product_id::text, amount::text, quantity::text, allowance_units::text,
       charged_units::text, draws::text, spend_period from rated_usage order by usage_id`,
  );
  const accounts = await engine.sql<{ id: string }>(
    "select distinct billing_account_id::text as id from products where kind = 'plan' order by 1",
  );
  const states: unknown[] = [];
  for (const { id } of accounts) {
    const state = await engine.app.services.charging.store.read(id);
    states.push({
      account: id,
      spend: [...state.spend].sort().map(([period, micro]) => [period, micro.toString()]),
      lines: [...state.lines.values()]
        .sort((a, b) => a.productId.localeCompare(b.productId))
        .map((line) => ({
          productId: line.productId,
          balance: line.balance?.toString() ?? null,
          buckets: line.buckets.map((bucket) => ({ id: bucket.id, granted: bucket.granted, used: bucket.used })),
        })),
    });
  }
  return { rows, states };
}

/**
 * Replays the stored CDRs into an empty rating state: the rated rows, crossings and every Redis key of the
 * engine are removed (the inputs stay: accounts, lines, top-ups, the stored CDRs), a fresh worker rebuilds the
 * store from the ledger and its sweeper enqueues every stored record again in acceptance order; the rated rows
 * and every account's balances, spend and buckets must come out the same. Answers how long the replay took.
 */
export async function replayMatches(
  t: Test,
  engine: Engine,
  nodes: readonly string[] = [engine.config.redisUrl as string],
): Promise<number> {
  const before = await snapshot(engine);
  await engine.sql("delete from threshold_crossings");
  await engine.sql("delete from rated_usage");
  await engine.sql("delete from usage_summaries");
  for (const node of nodes) {
    const redis = new Redis(node);
    const keys = await redis.keys(`${engine.config.redisKeyPrefix}*`);
    for (const key of keys) await redis.del(key);
    redis.disconnect();
  }
  const started = Date.now();
  const replaying = worker(engine);
  try {
    await waitFor("the replay", async () => (await engine.count("rated_usage")) >= before.rows.length, 90_000);
  } finally {
    await stopWorkers([replaying]);
  }
  const after = await snapshot(engine);
  t.equal(after.rows.length, before.rows.length, "replay: as many rated rows");
  t.same(after.rows, before.rows, "replay: the same rated rows");
  t.same(after.states, before.states, "replay: the same balances, spend and buckets");
  const [summaries] = await engine.sql<SummaryProblems>(SUMMARY_CHECK);
  t.equal(describeProblems(summaries), null, "replay: usage summaries = the sums of their rated rows");
  return Date.now() - started;
}

/** A fault's outcome, as a test comment, and appended to the file BSS_FAULT_REPORT names (the terse reporter
 * hides comments): recovery times and counts for the record. */
export function report(t: Test, text: string): void {
  t.comment(text);
  const file = process.env.BSS_FAULT_REPORT;
  if (file !== undefined && file !== "") appendFileSync(file, `${new Date().toISOString()} ${text}\n`);
}

/** Entries of every shard not yet acknowledged. */
export async function queueDepth(engine: Engine): Promise<number> {
  const queue = engine.app.services.charging.queue;
  let total = 0;
  for (let shard = 0; shard < queue.shards; shard++) total += await queue.depth(shard);
  return total;
}

/**
 * A worker killed at a named crash point under load, then a new worker: it takes the dead worker's shards when
 * their leases expire, claims what was handed out and not acknowledged, and rates it again (the store answers
 * the stored result of what was applied; the inserts conflict with what was committed).
 */
export async function crashScenario(t: Test, point: "after-step" | "after-commit" | "mid-batch"): Promise<void> {
  const { engine, lines } = await faultSystem(t);
  let accepted = 0;
  for (let batch = 0; batch < 4; batch++) accepted += (await post(engine, calls(lines, 50, point))).accepted;
  const crashing = worker(engine, `crash:${point}`);
  t.teardown(() => stopWorkers([crashing]));
  const ended = await within(60_000, crashing.exited, "still running");
  t.equal(ended, "SIGKILL", `the worker killed itself at ${point}`);
  const diedAt = Date.now();
  const depth = await queueDepth(engine);
  const committed = await engine.count("rated_usage");
  const replayed = committed - (accepted - depth);
  t.ok(depth > 0, `the crash left entries unacknowledged (${depth})`);
  // Load goes on while nobody rates.
  for (let batch = 0; batch < 2; batch++) accepted += (await post(engine, calls(lines, 50, `${point}-after`))).accepted;
  const recovering = worker(engine);
  t.teardown(() => stopWorkers([recovering]));
  await waitFor("recovery", async () => (await ratedOrSuspended(engine)) >= accepted, 90_000);
  const recoveryMs = Date.now() - diedAt;
  await stopWorkers([recovering]);
  const { rated, suspended } = await checkInvariants(t, engine, accepted);
  const replayMs = await replayMatches(t, engine);
  report(
    t,
    `fault crash:${point}: ${accepted} accepted; at the crash ${committed} committed, ${depth} unacknowledged ` +
      `(${replayed} of them committed already, replayed harmlessly); recovered in ${recoveryMs} ms ` +
      `(lease expiry included); ${rated} rated, ${suspended} in suspense, 0 lost, 0 charged twice; replay ${replayMs} ms`,
  );
}

/**
 * Load from a network element while a fault happens: a batch of 20 every 50 ms until stopped, each retried
 * until answered. Answers how many records were accepted and how many times a batch was refused.
 */
export function steadyLoad(engine: Engine, lines: readonly FaultLine[], tag: string) {
  let running = true;
  let accepted = 0;
  let refused = 0;
  const done = (async () => {
    for (let batch = 0; running; batch++) {
      const answer = await post(engine, calls(lines, 20, `${tag}${batch}`));
      accepted += answer.accepted;
      refused += answer.refused;
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { accepted, refused };
    },
  };
}

export { sleep };

/**
 * `count` workers, ready: a warm-up batch is posted and waited for until rated, so a fault that follows hits
 * running workers, not ones still starting. Answers the workers and how many records the warm-up accepted.
 */
export async function readyWorkers(engine: Engine, lines: readonly FaultLine[], count: number) {
  const workers = Array.from({ length: count }, () => worker(engine));
  const { accepted } = await post(engine, calls(lines, 20, "warm"));
  await waitFor(
    "the workers to rate a warm-up batch",
    async () => (await ratedOrSuspended(engine)) >= accepted,
    60_000,
  );
  return { workers, accepted };
}

/**
 * A server taken down under load: two ready workers, a network element sending batches, `fault` run two seconds
 * in, the load stopped a few seconds after it; then every accepted CDR must be rated, and the checks and the
 * replay follow. Answers what the report needs.
 */
export async function serverFault(
  t: Test,
  servers: { pgUrl?: string; redisUrl?: string },
  fault: () => Promise<void>,
): Promise<{
  accepted: number;
  refused: number;
  recoveryMs: number;
  drainMs: number;
  rated: number;
  suspended: number;
  replayMs: number;
}> {
  const { engine, lines } = await faultSystem(t, { servers });
  const { workers, accepted: warm } = await readyWorkers(engine, lines, 2);
  t.teardown(() => stopWorkers(workers));
  const load = steadyLoad(engine, lines, "load");
  await sleep(2_000);
  const faultAt = Date.now();
  await fault();
  await sleep(2_000);
  const loaded = await load.stop();
  const accepted = warm + loaded.accepted;
  const drainMs = await waitFor(
    "every accepted CDR rated",
    async () => (await ratedOrSuspended(engine)) >= accepted,
    60_000,
  );
  const recoveryMs = Date.now() - faultAt;
  await stopWorkers(workers);
  const { rated, suspended } = await checkInvariants(t, engine, accepted);
  const replayMs = await replayMatches(t, engine);
  return { accepted, refused: loaded.refused, recoveryMs, drainMs, rated, suspended, replayMs };
}
