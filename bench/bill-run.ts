/**
 * bench/bill-run: the generator of postpaid accounts (bench/support/generate-accounts.ts, issue 25) and bill runs over
 * them, worked by the engine in this process: invoices per second, batch times, and the database time per invoice
 * when invoices are issued by a run's batches (issue 24's goal: one account's monthly invoice in ≤ 5 ms of database
 * time), beside the same accounts issued one call at a time.
 *
 * Set-up: the engine built in this process (buildApp, as bench/invoices) on a fresh database (BENCH_DATABASE_URL) and
 * Redis (BENCH_REDIS_URL, a key prefix of its own), a ManualClock at 17 March 2027 09:00 UTC and a message channel
 * that accepts every message. The generator writes BENCH_BILL_RUN_ACCOUNTS (100,000) accounts in bulk: each a
 * customer, a postpaid account (cycle day 1, Europe/Berlin, EUR, DE), a Postpaid M line with the Data 5 GB add-on
 * ordered on 17 March, the activation and SIM fees, and March's usage: 15 summaries of 2 rated rows each. Their
 * April invoice has 21 lines: per product March prorated and April in advance (4), the two fees, 15 usage lines.
 * Before any run, a spread sample of BENCH_BILL_RUN_SAMPLE (50) accounts is composed by the engine's own
 * `invoices.prepare` (what a run's batch calls) and must give those 21 lines.
 *
 * The clock then moves to 1 April 08:00 UTC and the accounts are used in disjoint slices of BENCH_BILL_RUN (10,000):
 *   1. a run of named accounts (`billRuns.start({ billingAccountIds })`, each billed for its last ended period),
 *      worked by one `billRuns.work(runId)` loop, as the engine's loop works it;
 *   2. a second run of the next slice worked by two concurrent `work(runId)` loops in this process;
 *   3. the ceiling: the rows run 1's batches wrote, written again by bare SQL, set-based, a batch of the same size a
 *      transaction: a number block (an upsert of a series row), then server-side copies (insert … select by primary
 *      key, so no values are encoded and nothing composed) of the invoices, their lines, ledger entries, messages and
 *      events into look-alike tables (`like … including all` plus the same foreign keys: the same indexes, checks
 *      and key checks), and the billed marks of the third slice's usage summaries and one-time charges (updates of
 *      the real tables). Neither reads of the inputs, nor locks, nor the run's own bookkeeping (claims, item states,
 *      the audit row) are in it;
 *   4. BENCH_BILL_RUN_SINGLE (200, after 20 warm) accounts of the next slice issued one at a time with
 *      `invoices.issueCycle`, as bench/invoices measures it, for the same shape of invoice on the same database.
 * The batch size is the engine's (BSS_BILL_RUN_BATCH, 200 by default); the pool the engine's (BSS_DB_POOL_MAX, 10).
 *
 * Database time (bench/support/db-time.ts): the engine's postgres.js client is wrapped, and for this bench the bill run
 * service's own batch step (`processBatch`, one claimed batch: the accounts' reads and drafts in parallel, then the one
 * transaction that issues them) and its claim are each run inside `measureStatements` (the engine's code unchanged;
 * the two methods are wrapped on the service object). A batch's database time is the union of its statements'
 * client-side round trips (driver asked → result back, pipelined or pooled statements overlapping once); its
 * transaction's is the part from BEGIN to COMMIT. Per invoice, amortised: a batch's time divided by the invoices it
 * issued. The "your bill is ready" deliveries a batch starts after its commit (not awaited by the run) are not in
 * it; their statements still load the database while later batches run. The select 1 row is one round trip through
 * the same client, the least any statement costs.
 *
 * Checks (the run fails if one does not hold): both runs completed, each account of them invoiced once, nothing
 * pending or failed; one cycle invoice per account billed (runs and single calls), each with 21 lines; numbers
 * DE-INV-2027-000001… without gaps; one ledger entry per invoice with its gross, the ledger's sum the sum of the
 * grosses; every summary and one-time charge of the accounts invoiced (and of the ceiling's slice) billed, the others
 * not; summaries still equal their rated rows (test/support's check); every bill message sent.
 *
 * BENCH_BILL_RUN_KEEP=1 keeps a copy of the database. About 5½ minutes on 2 cores with the defaults: generating
 * 100,000 accounts (5.8 million rows) about 75 s, the two runs about 2 and 1½ minutes, the rest under a minute.
 */

import { loadavg } from "node:os";
import { sql as drizzleSql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import postgres from "postgres";
import { buildApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { SYSTEM_ACTOR } from "../src/platform/audit.js";
import { ManualClock } from "../src/platform/clock.js";
import { cyclePeriod } from "../src/shared/calendar.js";
import { RecordingChannel } from "../test/support/recording-channel.js";
import { describeProblems, SUMMARY_CHECK, type SummaryProblems } from "../test/support/summaries.js";
import { excerpt, label } from "./invoices.js";
import { measureStatements, type TimedStatement, timeStatementsOf } from "./support/db-time.js";
import { busyShare, machineCpu, percentile } from "./support/figures.js";
import { type GeneratedAccounts, generateAccounts } from "./support/generate-accounts.js";
import { freshDatabase, table } from "./support/servers.js";

const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ACCOUNTS = Number(process.env.BENCH_BILL_RUN_ACCOUNTS ?? 100_000);
const RUN = Number(process.env.BENCH_BILL_RUN ?? 10_000);
const SAMPLE = Number(process.env.BENCH_BILL_RUN_SAMPLE ?? 50);
const SINGLE = Number(process.env.BENCH_BILL_RUN_SINGLE ?? 200);
const SINGLE_WARM = 20;
const ORDERED_AT = "2027-03-17T09:00:00Z";
const ISSUED_AT = "2027-04-01T08:00:00Z";
const GOAL_MS = 5;
/** Per invoice: 2 products × (March prorated + April in advance), activation and SIM fees; then the usage lines. */
const CHARGE_LINES = 6;

type Row = Record<string, string | number>;

interface Batch {
  claimed: number;
  invoiced: number;
  wallMs: number;
  dbMs: number;
  txMs: number;
  txWallMs: number;
  statements: number;
  txStatements: number;
  roundTrips: number;
  timed: TimedStatement[];
}

interface RunFigures {
  label: string;
  runId: string;
  startMs: number;
  workMs: number;
  /** From work() returning until every bill message was sent (deliveries run after each batch, not awaited). */
  messagesLagMs: number;
  /** This process's CPU time during the work, ms, and the machine's busy share then (all cores, %). */
  nodeCpuMs: number;
  machineBusy: number;
  load: string;
  invoiced: number;
  batches: Batch[];
  claims: number[];
}

interface BatchResult {
  invoiced: number;
  nothing: number;
  failed: number;
}

/** The bill run service's batch step and claim, as this bench wraps them (private methods of the engine's object). */
interface RunsInternals {
  processBatch(run: unknown, claimed: readonly unknown[]): Promise<BatchResult>;
  claim(runId: string): Promise<unknown[]>;
}

export async function benchBillRun(): Promise<Row[][]> {
  const needed = 3 * RUN + SINGLE_WARM + SINGLE;
  if (ACCOUNTS < needed) {
    throw new Error(`bench/bill-run: ${ACCOUNTS} accounts; its four slices need ${needed} (3 × BENCH_BILL_RUN + 220)`);
  }
  const database = await freshDatabase(databaseUrl, `bss_bench_bill_run_${process.pid}`);
  const prefix = `bench:${process.pid}:bill-run:`;
  const clock = new ManualClock(ORDERED_AT);
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: prefix,
    BSS_SECRETS_KEY: "0".repeat(64),
    BSS_MIGRATE_ON_START: "true",
    BSS_CATALOG_REFRESH_SECONDS: "0",
    BSS_RATE_LIMIT_PER_MINUTE: "0",
    LOG_LEVEL: "silent",
    ...(process.env.BSS_BILL_RUN_BATCH ? { BSS_BILL_RUN_BATCH: process.env.BSS_BILL_RUN_BATCH } : {}),
  });
  const app = await buildApp(config, {
    clock,
    logger: false,
    messageChannel: new RecordingChannel(),
    orderFulfilment: "manual",
    billRunWork: "manual",
  });
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const loadBefore = loadavg()[0] ?? 0;
    const machineBefore = machineCpu();
    const generated = await generateAccounts(app, database.url, { count: ACCOUNTS });
    const generating = { busy: busyShare(machineBefore, machineCpu()), loadBefore, loadAfter: loadavg()[0] ?? 0 };
    const slice = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, index) => generated.accountId(from + index));
    const runA = slice(0, RUN);
    const runB = slice(RUN, 2 * RUN);
    const ceilingAccounts = slice(2 * RUN, 3 * RUN);
    const singles = slice(3 * RUN, 3 * RUN + SINGLE_WARM + SINGLE);

    clock.set(ISSUED_AT);
    const sampleStarted = performance.now();
    const sampleFailures = await verifySample(app, generated);
    const sampleSeconds = (performance.now() - sampleStarted) / 1000;
    if (sampleFailures.length > 0) {
      throw new Error(
        `bench/bill-run: the generated accounts do not compose as expected: ${sampleFailures.join("; ")}`,
      );
    }
    const settings = await sql`select current_setting('synchronous_commit') as sc, current_setting('fsync') as fs`;

    timeStatementsOf(app.database.db);
    const ping = async () => (await measureStatements(() => app.database.db.execute(drizzleSql`select 1`))).dbMs;
    for (let i = 0; i < 100; i++) await ping();
    const pings: number[] = [];
    for (let i = 0; i < 200; i++) pings.push(await ping());

    const runs = app.services.billRuns;
    const internals = runs as unknown as RunsInternals;
    let batches: Batch[] = [];
    let claims: number[] = [];
    const processBatch = internals.processBatch.bind(runs);
    const claim = internals.claim.bind(runs);
    internals.processBatch = async (run, claimed) => {
      const measured = await measureStatements(() => processBatch(run, claimed));
      batches.push(batchOf(claimed.length, measured.result.invoiced, measured));
      return measured.result;
    };
    internals.claim = async (runId) => {
      const measured = await measureStatements(() => claim(runId));
      if (measured.result.length > 0) claims.push(measured.dbMs);
      return measured.result;
    };
    const billRun = async (label: string, accounts: string[], loops: number): Promise<RunFigures> => {
      batches = [];
      claims = [];
      const startedAt = performance.now();
      const { run } = await runs.start(SYSTEM_ACTOR, { billingAccountIds: accounts });
      const workStarted = performance.now();
      const cpu = process.cpuUsage();
      const machine = machineCpu();
      const settled = await Promise.all(Array.from({ length: loops }, () => runs.work(run.id)));
      const workMs = performance.now() - workStarted;
      const used = process.cpuUsage(cpu);
      const machineBusy = busyShare(machine, machineCpu());
      const load = loadavg()[0]?.toFixed(1) ?? "?";
      const waited = performance.now();
      await waitForMessages(sql);
      const messagesLagMs = performance.now() - waited;
      return {
        label,
        runId: run.id,
        startMs: workStarted - startedAt,
        workMs,
        messagesLagMs,
        nodeCpuMs: (used.user + used.system) / 1000,
        machineBusy,
        load,
        invoiced: settled.reduce((sum, totals) => sum + totals.invoiced, 0),
        batches,
        claims,
      };
    };
    const one = await billRun("one work() loop", runA, 1);
    const two = await billRun("two concurrent work() loops", runB, 2);

    const ceiling = await bareIssue(sql, one.runId, ceilingAccounts, config.billRunBatch);

    const { invoices } = app.services;
    const singleRuns: Array<{ dbMs: number; wallMs: number; statements: number; timed: TimedStatement[] }> = [];
    const singlePings: number[] = [];
    for (const [index, accountId] of singles.entries()) {
      if (index >= SINGLE_WARM) for (let i = 0; i < 5; i++) singlePings.push(await ping());
      const measured = await measureStatements(() => invoices.issueCycle(SYSTEM_ACTOR, accountId, {}));
      if (measured.result.status !== "issued") throw new Error(`issueCycle ${accountId}: ${measured.result.status}`);
      if (index >= SINGLE_WARM) {
        singleRuns.push({
          dbMs: measured.dbMs,
          wallMs: measured.wallMs,
          statements: measured.statements.length,
          timed: measured.statements,
        });
      }
    }
    await waitForMessages(sql);

    const checkStarted = performance.now();
    const failures = await check(sql, generated, [one, two], {
      invoiced: [...runA, ...runB, ...singles],
      ceiling: ceilingAccounts,
    });
    const checkSeconds = (performance.now() - checkStarted) / 1000;
    const rows = figures({
      generated,
      runs: [one, two],
      ceiling,
      pings,
      singleRuns,
      singlePings,
      settings: { sc: String(settings[0]?.sc), fs: String(settings[0]?.fs) },
      batchSize: config.billRunBatch,
      poolMax: config.dbPoolMax,
      sampleSeconds,
      checkSeconds,
      failures,
    });
    const generatorRows = generatorTable(generated, sampleSeconds, generating);
    const breakdown = statementBreakdown(
      one.batches.map((batch) => ({ dbMs: batch.dbMs, statements: batch.timed })),
      "per batch",
    );
    const singleBreakdown = statementBreakdown(
      singleRuns.map((run) => ({ dbMs: run.dbMs, statements: run.timed })),
      "per issue",
    );
    if (failures.length > 0) {
      throw new Error(`bench/bill-run: checks failed: ${failures.join("; ")}\n${table(generatorRows)}\n${table(rows)}`);
    }
    return [generatorRows, rows, breakdown, singleBreakdown];
  } finally {
    await sql.end({ timeout: 2 });
    await app.close();
    if (process.env.BENCH_BILL_RUN_KEEP) {
      const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
      const name = new URL(database.url).pathname.slice(1);
      await admin.unsafe(`drop database if exists "${name}_kept"`);
      await admin.unsafe(`create database "${name}_kept" template "${name}"`);
      await admin.end();
      process.stderr.write(`kept a copy of the database: ${name}_kept\n`);
    }
    await database.drop();
    const redis = new Redis(redisUrl);
    const keys = await redis.keys(`${prefix}*`);
    for (const key of keys) await redis.del(key);
    redis.disconnect();
  }
}

function batchOf(
  claimed: number,
  invoiced: number,
  measured: { wallMs: number; dbMs: number; statements: TimedStatement[] },
): Batch {
  const statements = measured.statements;
  const begin = statements.findIndex((statement) => statement.text === "BEGIN");
  const commit = statements.findIndex((statement) => statement.text === "COMMIT");
  const inTx = begin >= 0 && commit >= begin ? statements.slice(begin, commit + 1) : [];
  return {
    claimed,
    invoiced,
    wallMs: measured.wallMs,
    dbMs: measured.dbMs,
    txMs: inTx.reduce((sum, statement) => sum + statement.ownMs, 0),
    txWallMs: inTx.length === 0 ? 0 : (inTx.at(-1)?.endMs ?? 0) - (inTx[0]?.startMs ?? 0),
    statements: statements.length,
    txStatements: inTx.length,
    roundTrips: statements.reduce((sum, statement) => sum + statement.roundTrips, 0),
    // A copy: the deliveries the batch starts after its commit push their statements to the same list later.
    timed: [...statements],
  };
}

/** A spread sample of the generated accounts composed by the engine (`invoices.prepare`, as a run's batch does). */
async function verifySample(app: FastifyInstance, generated: GeneratedAccounts): Promise<string[]> {
  const failures: string[] = [];
  const db = app.database.db;
  const nowMs = Date.parse(ISSUED_AT);
  const expected = CHARGE_LINES + generated.summaries;
  for (let i = 0; i < SAMPLE; i++) {
    const n = Math.floor((i * (generated.count - 1)) / Math.max(1, SAMPLE - 1));
    const id = generated.accountId(n);
    const account = await app.services.customers.accountForBilling(db, id);
    if (account === undefined) {
      failures.push(`account ${n} (${id}) not found`);
      continue;
    }
    const usagePeriod = cyclePeriod(cyclePeriod(nowMs, account.cycle).startMs - 1, account.cycle);
    const prepared = await app.services.invoices.prepare(db, account, null, {
      kind: "cycle",
      usagePeriod,
      advancePeriod: cyclePeriod(usagePeriod.endMs, account.cycle),
      issueMs: nowMs,
    });
    if ("nothing" in prepared) {
      failures.push(`account ${n}: nothing to bill (${prepared.nothing})`);
      continue;
    }
    const kinds = new Map<string, number>();
    for (const line of prepared.lines) kinds.set(line.kind, (kinds.get(line.kind) ?? 0) + 1);
    const shape = JSON.stringify(Object.fromEntries([...kinds].sort()));
    const wanted = JSON.stringify({ oneTime: 2, recurring: 4, usage: generated.summaries });
    if (usagePeriod.key !== generated.usagePeriod || prepared.lines.length !== expected || shape !== wanted) {
      failures.push(`account ${n}: period ${usagePeriod.key}, ${prepared.lines.length} lines ${shape}`);
    }
    if (prepared.usageMarks.length !== generated.summaries) {
      failures.push(`account ${n}: ${prepared.usageMarks.length} usage marks`);
    }
  }
  return failures;
}

/** Every "your bill is ready" message sent (a run delivers them after each batch's commit, not awaited). */
async function waitForMessages(sql: postgres.Sql): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [row] = await sql`select count(*)::int as pending from customer_messages where status = 'pending'`;
    if (row?.pending === 0) return;
    if (Date.now() > deadline) throw new Error(`${row?.pending} bill messages still pending after 2 minutes`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Ceiling {
  invoices: number;
  ms: number;
  batchMs: number[];
}

/**
 * The ceiling: run 1's rows written again set-based by bare SQL, batch by batch as run 1 issued them (by number),
 * into look-alike tables, with the billed marks of another slice's summaries and charges.
 */
async function bareIssue(sql: postgres.Sql, runId: string, accounts: string[], batchSize: number): Promise<Ceiling> {
  const copied = ["invoices", "invoice_lines", "receivable_entries", "customer_messages", "outbox_events"];
  for (const name of copied) await sql.unsafe(`create table bare_${name} (like ${name} including all)`);
  // Their foreign keys too (`like` copies none), to the look-alike of the table referenced when there is one.
  const keys = await sql<{ name: string; table: string; definition: string }[]>`
    select conname as name, conrelid::regclass::text as table, pg_get_constraintdef(oid) as definition
    from pg_constraint where contype = 'f' and conrelid::regclass::text = any(${copied})`;
  for (const key of keys) {
    const definition = key.definition.replace(/REFERENCES (\w+)\(/, (whole, target: string) =>
      copied.includes(target) ? `REFERENCES bare_${target}(` : whole,
    );
    await sql.unsafe(`alter table bare_${key.table} add constraint bare_${key.name} ${definition}`);
  }
  await sql.unsafe(
    "create table bare_series (issuer_id text, kind text, year int, last_number bigint, primary key (issuer_id, kind, year))",
  );
  // What to copy, per batch, read before the clock starts: primary keys.
  const issued = await sql<{ id: string; message_id: string | null }[]>`
    select i.id, i.message_id from invoices i join bill_run_items b on b.invoice_id = i.id
    where b.run_id = ${runId} order by i.seq`;
  const batches: Array<{
    invoices: string[];
    lines: string[];
    entries: string[];
    messages: string[];
    events: string[];
    accounts: string[];
  }> = [];
  for (let from = 0; from < issued.length; from += batchSize) {
    const part = issued.slice(from, from + batchSize);
    const ids = part.map((row) => row.id);
    const lines = await sql<{ id: string }[]>`select id from invoice_lines where invoice_id = any(${ids}::uuid[])`;
    const entries = await sql<
      { id: string }[]
    >`select id from receivable_entries where invoice_id = any(${ids}::uuid[])`;
    const events = await sql<{ id: string }[]>`
      select id::text as id from outbox_events where resource_type = 'customerBill' and resource_id = any(${ids}::text[])`;
    batches.push({
      invoices: ids,
      lines: lines.map((row) => row.id),
      entries: entries.map((row) => row.id),
      messages: part.flatMap((row) => (row.message_id === null ? [] : [row.message_id])),
      events: events.map((row) => row.id),
      accounts: accounts.slice(from, from + batchSize),
    });
  }
  const batchMs: number[] = [];
  const started = performance.now();
  for (const batch of batches) {
    const batchStarted = performance.now();
    await sql.begin(async (tx) => {
      await tx`insert into bare_series values ('DE', 'invoice', 2027, ${batch.invoices.length})
        on conflict (issuer_id, kind, year) do update set last_number = bare_series.last_number + excluded.last_number
        returning last_number`;
      await tx`insert into bare_invoices select * from invoices where id = any(${batch.invoices}::uuid[])`;
      await tx`insert into bare_invoice_lines select * from invoice_lines where id = any(${batch.lines}::uuid[])`;
      await tx`insert into bare_receivable_entries overriding system value
        select * from receivable_entries where id = any(${batch.entries}::uuid[])`;
      await tx`insert into bare_customer_messages select * from customer_messages where id = any(${batch.messages}::uuid[])`;
      await tx`insert into bare_outbox_events overriding system value
        select * from outbox_events where id = any(${batch.events}::bigint[])`;
      await tx`update usage_summaries set billed_seq = last_seq where billing_account_id = any(${batch.accounts}::uuid[])`;
      await tx`update one_time_charges set billed_at = ${ISSUED_AT}::timestamptz
        where billing_account_id = any(${batch.accounts}::uuid[]) and billed_at is null`;
    });
    batchMs.push(performance.now() - batchStarted);
  }
  return { invoices: issued.length, ms: performance.now() - started, batchMs };
}

async function check(
  sql: postgres.Sql,
  generated: GeneratedAccounts,
  runs: RunFigures[],
  accounts: { invoiced: string[]; ceiling: string[] },
): Promise<string[]> {
  const failures: string[] = [];
  const lines = CHARGE_LINES + generated.summaries;
  const n = accounts.invoiced.length;
  for (const run of runs) {
    const [state] = await sql`select state, total from bill_runs where id = ${run.runId}`;
    const items = await sql`select state, count(*)::int as n, count(invoice_id)::int as with_invoice
      from bill_run_items where run_id = ${run.runId} group by state order by state`;
    const invoiced = items.find((row) => row.state === "invoiced");
    if (
      state?.state !== "completed" ||
      items.length !== 1 ||
      invoiced?.n !== RUN ||
      invoiced?.with_invoice !== RUN ||
      run.invoiced !== RUN
    ) {
      failures.push(`run ${run.label}: ${state?.state}, items ${JSON.stringify(items)}, work() said ${run.invoiced}`);
    }
  }
  const [perAccount] = await sql`
    select count(*)::int as invoices, count(distinct billing_account_id)::int as accounts,
      count(*) filter (where billing_account_id <> all(${accounts.invoiced}::uuid[]))::int as strangers,
      count(*) filter (where line_count <> ${lines} or kind <> 'cycle' or usage_period <> ${generated.usagePeriod})::int as off
    from invoices`;
  if (
    perAccount?.invoices !== n ||
    perAccount?.accounts !== n ||
    perAccount?.strangers !== 0 ||
    perAccount?.off !== 0
  ) {
    failures.push(`invoices ${JSON.stringify(perAccount)} for ${n} accounts billed`);
  }
  const [lineRows] = await sql`
    select count(*)::int as off from invoices i
    where (select count(*) from invoice_lines l where l.invoice_id = i.id) <> ${lines}
      or (select count(*) from invoice_lines l where l.invoice_id = i.id and l.kind = 'usage') <> ${generated.summaries}`;
  if (lineRows?.off !== 0) failures.push(`${lineRows?.off} invoices without ${lines} lines`);
  const [numbers] = await sql`
    select count(*)::int as n, min(seq)::int as first, max(seq)::int as last, count(distinct seq)::int as distinct_seq,
      count(*) filter (where number <> 'DE-INV-2027-' || lpad(seq::text, 6, '0'))::int as misnumbered
    from invoices`;
  if (numbers?.first !== 1 || numbers?.last !== n || numbers?.distinct_seq !== n || numbers?.misnumbered !== 0) {
    failures.push(`numbers ${JSON.stringify(numbers)}`);
  }
  const [ledger] = await sql`
    select (select sum(gross) from invoices)::text as gross, (select sum(amount) from receivable_entries)::text as ledger,
      (select count(*) from invoices i where (select count(*) from receivable_entries e
        where e.invoice_id = i.id and e.kind = 'invoice' and e.amount = i.gross) <> 1)::int as unmatched`;
  if (ledger?.gross !== ledger?.ledger || ledger?.unmatched !== 0 || ledger?.gross === null) {
    failures.push(`ledger ${JSON.stringify(ledger)}`);
  }
  const billedAccounts = [...accounts.invoiced, ...accounts.ceiling];
  const [billed] = await sql`
    select
      (select count(*) from usage_summaries where billed_seq = last_seq)::int as summaries_billed,
      (select count(*) from usage_summaries where billed_seq = last_seq
         and billing_account_id <> all(${billedAccounts}::uuid[]))::int as summaries_billed_elsewhere,
      (select count(*) from one_time_charges where billed_at is not null)::int as charges_billed,
      (select count(*) from one_time_charges where billed_at is not null
         and billing_account_id <> all(${billedAccounts}::uuid[]))::int as charges_billed_elsewhere,
      (select count(*) from customer_messages where reason = 'bill.ready' and status <> 'sent')::int as messages_unsent,
      (select count(*) from customer_messages where reason = 'bill.ready')::int as messages`;
  if (
    billed?.summaries_billed !== billedAccounts.length * generated.summaries ||
    billed?.summaries_billed_elsewhere !== 0 ||
    billed?.charges_billed !== billedAccounts.length * 2 ||
    billed?.charges_billed_elsewhere !== 0 ||
    billed?.messages_unsent !== 0 ||
    billed?.messages !== n
  ) {
    failures.push(`billed marks and messages ${JSON.stringify(billed)} for ${billedAccounts.length} accounts`);
  }
  const [problems] = await sql.unsafe<SummaryProblems[]>(SUMMARY_CHECK);
  const problem = describeProblems(problems);
  if (problem !== null) failures.push(problem);
  return failures;
}

function stats(values: number[], digits: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50).toFixed(digits),
    p95: percentile(sorted, 95).toFixed(digits),
    mean: (sorted.reduce((sum, v) => sum + v, 0) / Math.max(1, sorted.length)).toFixed(digits),
  };
}

function generatorTable(
  generated: GeneratedAccounts,
  sampleSeconds: number,
  machine: { busy: number; loadBefore: number; loadAfter: number },
): Row[] {
  const bulk = generated.seconds.bulk;
  const rows: Row[] = Object.entries(generated.rows).map(([name, count]) => ({
    written: name,
    rows: count,
    "per account": (count / generated.count).toFixed(0),
    seconds: "",
    "rows/s": "",
  }));
  return [
    ...rows,
    {
      written: `all, in bulk (${generated.count.toLocaleString("en")} accounts, ${generated.summaries} summaries × ${generated.ratedPerSummary} rated rows each)`,
      rows: generated.totalRows,
      "per account": (generated.totalRows / generated.count).toFixed(0),
      seconds: bulk.toFixed(1),
      "rows/s": Math.round(generated.totalRows / bulk),
    },
    {
      written: "the prototype account through the API (order fulfilled, usage by recordRated)",
      rows: "",
      "per account": "",
      seconds: generated.seconds.prototype.toFixed(1),
      "rows/s": "",
    },
    {
      written: "VACUUM ANALYZE of the tables written",
      rows: "",
      "per account": "",
      seconds: generated.seconds.vacuum.toFixed(1),
      "rows/s": "",
    },
    {
      written: `generator in all (machine ${machine.busy.toFixed(0)} % busy; load ${machine.loadBefore.toFixed(1)} before, ${machine.loadAfter.toFixed(1)} after)`,
      rows: generated.totalRows,
      "per account": "",
      seconds: generated.seconds.total.toFixed(1),
      "rows/s": `${Math.round(generated.count / generated.seconds.total)} accounts/s`,
    },
    {
      written: `sample of ${SAMPLE} accounts composed by invoices.prepare: ${CHARGE_LINES + generated.summaries} lines each`,
      rows: "",
      "per account": "",
      seconds: sampleSeconds.toFixed(1),
      "rows/s": "passed",
    },
  ];
}

function figures(input: {
  generated: GeneratedAccounts;
  runs: RunFigures[];
  ceiling: Ceiling;
  pings: number[];
  singleRuns: Array<{ dbMs: number; wallMs: number; statements: number; timed: TimedStatement[] }>;
  singlePings: number[];
  settings: { sc: string; fs: string };
  batchSize: number;
  poolMax: number;
  sampleSeconds: number;
  checkSeconds: number;
  failures: string[];
}): Row[] {
  const { runs, ceiling, generated } = input;
  const ceilingRate = (ceiling.invoices * 1000) / ceiling.ms;
  const lines = CHARGE_LINES + generated.summaries;
  const row = (measure: string, value: string | number, s: ReturnType<typeof stats> | null, ratio = "", goal = "") => ({
    measure,
    value,
    p50: s?.p50 ?? "",
    p95: s?.p95 ?? "",
    mean: s?.mean ?? "",
    ratio,
    goal,
  });
  const out: Row[] = [
    row(
      `ceiling: run 1's rows written again by bare SQL, set-based, ${input.batchSize} a transaction; invoices/s (batch ms)`,
      Math.round(ceilingRate),
      stats(ceiling.batchMs, 1),
      "1.00",
    ),
  ];
  for (const [index, run] of runs.entries()) {
    const rate = (run.invoiced * 1000) / run.workMs;
    out.push(
      row(
        `run ${index + 1}: ${RUN.toLocaleString("en")} named accounts (${lines} lines each), ${run.label}; invoices/s (batch wall ms)`,
        Math.round(rate),
        stats(
          run.batches.map((batch) => batch.wallMs),
          1,
        ),
        (rate / ceilingRate).toFixed(2),
        `work ${(run.workMs / 1000).toFixed(1)} s (Node CPU ${((100 * run.nodeCpuMs) / run.workMs).toFixed(0)} % of a core, machine ${run.machineBusy.toFixed(0)} % busy, load ${run.load}), start() ${(run.startMs / 1000).toFixed(2)} s, ${run.batches.length} batches, last message sent ${(run.messagesLagMs / 1000).toFixed(1)} s after`,
      ),
    );
  }
  out.push(row("ceiling: one round trip, select 1 (ms)", "", stats(input.pings, 3)));
  for (const [index, run] of runs.entries()) {
    const b = run.batches;
    const invoiced = b.reduce((sum, batch) => sum + batch.invoiced, 0);
    const db = b.reduce((sum, batch) => sum + batch.dbMs, 0);
    const tx = b.reduce((sum, batch) => sum + batch.txMs, 0);
    const perInvoice = db / invoiced;
    const tag = `run ${index + 1}`;
    out.push(
      row(
        `${tag}: database time per batch, ms (reads and drafts, then the transaction)`,
        "",
        stats(
          b.map((batch) => batch.dbMs),
          1,
        ),
        "",
        `${((100 * db) / b.reduce((sum, batch) => sum + batch.wallMs, 0)).toFixed(0)} % of batch wall time`,
      ),
      row(
        `${tag}: database time per batch transaction (BEGIN … COMMIT), ms`,
        "",
        stats(
          b.map((batch) => batch.txMs),
          1,
        ),
        "",
        `transaction wall p50 ${
          stats(
            b.map((batch) => batch.txWallMs),
            1,
          ).p50
        } ms`,
      ),
      row(
        `${tag}: database time per invoice, amortised (a batch's ÷ its invoices), ms`,
        perInvoice.toFixed(2),
        stats(
          b.map((batch) => batch.dbMs / Math.max(1, batch.invoiced)),
          2,
        ),
        "",
        `≤ ${GOAL_MS} ms: ${perInvoice <= GOAL_MS ? "met" : "MISSED"}`,
      ),
      row(
        `${tag}: of which the transaction, per invoice amortised, ms`,
        (tx / invoiced).toFixed(2),
        stats(
          b.map((batch) => batch.txMs / Math.max(1, batch.invoiced)),
          2,
        ),
      ),
      row(
        `${tag}: statements per batch (BEGIN and COMMIT included; the claim apart) / in its transaction`,
        "",
        {
          p50: `${
            stats(
              b.map((batch) => batch.statements),
              0,
            ).p50
          } / ${
            stats(
              b.map((batch) => batch.txStatements),
              0,
            ).p50
          }`,
          p95: `${
            stats(
              b.map((batch) => batch.statements),
              0,
            ).p95
          } / ${
            stats(
              b.map((batch) => batch.txStatements),
              0,
            ).p95
          }`,
          mean: `${
            stats(
              b.map((batch) => batch.statements),
              0,
            ).mean
          } / ${
            stats(
              b.map((batch) => batch.txStatements),
              0,
            ).mean
          }`,
        },
        "",
        `round trips p50 ${
          stats(
            b.map((batch) => batch.roundTrips),
            0,
          ).p50
        }; claim p50 ${stats(run.claims, 2).p50} ms`,
      ),
    );
  }
  const single = input.singleRuns;
  const singleDb = stats(
    single.map((run) => run.dbMs),
    2,
  );
  out.push(
    row(
      `single call: invoices.issueCycle one account at a time (${single.length} accounts, same shape), database time per issue, ms`,
      "",
      singleDb,
      "",
      `≤ ${GOAL_MS} ms p50: ${Number(singleDb.p50) <= GOAL_MS ? "met" : "MISSED"}`,
    ),
    row(
      "single call: wall time per issue, ms / statements per issue",
      "",
      {
        p50: `${
          stats(
            single.map((run) => run.wallMs),
            2,
          ).p50
        } / ${
          stats(
            single.map((run) => run.statements),
            0,
          ).p50
        }`,
        p95: `${
          stats(
            single.map((run) => run.wallMs),
            2,
          ).p95
        } / ${
          stats(
            single.map((run) => run.statements),
            0,
          ).p95
        }`,
        mean: `${
          stats(
            single.map((run) => run.wallMs),
            2,
          ).mean
        } / ${
          stats(
            single.map((run) => run.statements),
            0,
          ).mean
        }`,
      },
      "",
      `select 1 p50 meanwhile ${stats(input.singlePings, 3).p50} ms`,
    ),
    row(
      `method: batch ${input.batchSize}, pool ${input.poolMax}; database time = union of client round trips per batch (driver asked → result back); synchronous_commit=${input.settings.sc}, fsync=${input.settings.fs}`,
      "",
      null,
      "",
      input.failures.length === 0
        ? `checks: all passed (${input.checkSeconds.toFixed(1)} s)`
        : `checks FAILED: ${input.failures.length}`,
    ),
  );
  return out;
}

/**
 * Per statement text: how many per batch (or issue), the p50 of its own time (bench/support/db-time.ts: pipelined or
 * pooled statements split the time they overlap), its mean own time per batch and its share of the database time.
 */
function statementBreakdown(units: Array<{ dbMs: number; statements: TimedStatement[] }>, per: string): Row[] {
  const byText = new Map<string, number[]>();
  for (const unit of units) {
    for (const statement of unit.statements) {
      const times = byText.get(statement.text) ?? [];
      times.push(statement.ownMs);
      byText.set(statement.text, times);
    }
  }
  const totalMs = units.reduce((sum, unit) => sum + unit.dbMs, 0);
  return [...byText.entries()]
    .map(([text, times]) => ({ text, times, sum: times.reduce((s, ms) => s + ms, 0) }))
    .sort((a, b) => b.sum - a.sum)
    .slice(0, 25)
    .map(({ text, times, sum }) => ({
      statement: label(text),
      [per]: (times.length / units.length).toFixed(2),
      "p50 ms": percentile(
        [...times].sort((a, b) => a - b),
        50,
      ).toFixed(3),
      [`ms ${per}`]: (sum / units.length).toFixed(2),
      share: `${((100 * sum) / totalMs).toFixed(1)} %`,
      sql: excerpt(text),
    }));
}

export function printBillRun([generator, rows, breakdown, single]: Row[][]): void {
  process.stdout.write(
    `\nbench/bill-run (${new Date().toISOString()}, Node ${process.version}, PostgreSQL on loopback, load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(
        " ",
      )})\n\nthe generator (bench/support/generate-accounts.ts)\n${table(generator ?? [])}\n\nbill runs\n${table(
      rows ?? [],
    )}\n\nrun 1: statements of a batch by their own database time (the 25 largest)\n${table(
      breakdown ?? [],
    )}\n\nsingle calls: statements of an issue by their own database time (the 25 largest)\n${table(single ?? [])}\n`,
  );
}
