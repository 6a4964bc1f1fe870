/**
 * bench/payments: payments allocated through the import endpoint, `POST /api/v1/payments/import` (issue 26,
 * "Performance (bench/payments)"), against invoices of bench/billing's generator, beside the same statements' ceiling.
 *
 * Budget (issue 26): 100,000 payments allocated at ≥ 0.5 of the rate of the same statements with no logic.
 *
 * Set-up: the engine built in this process (buildApp, as bench/bill-run) on a fresh database (BENCH_DATABASE_URL) and
 * Redis (BENCH_REDIS_URL, a key prefix of its own), a ManualClock and a message channel that accepts every message,
 * rate limits off. The generator (bench/support/generate-accounts.ts) writes BENCH_PAYMENTS_ACCOUNTS (10,000; 100,000
 * works) postpaid accounts on 17 March 2027; the clock moves to 1 April 08:00 UTC and one bill run of all of them
 * (`billRuns.start({ billingAccountIds })`, two `work(runId)` loops, as bench/bill-run's run 2) issues their April
 * invoices, whose "bill ready" messages are sent (the bills are `sent`). That engine is closed and the database copied
 * (`create database … template`): the copy is the ceiling's fresh seeded data. Before the copy, the tables the bill
 * run wrote and the import reads and writes are analysed once (VACUUM ANALYZE), as the generator does its own: on a
 * server without autovacuum they would otherwise have no statistics at all (the checks row prints the setting). A second engine on the seeded database,
 * its clock at 8 April 09:00 (before the bills are due), listens on a loopback port.
 *
 * Payments: BENCH_PAYMENTS (100,000), m = ⌈payments ÷ accounts⌉ instalments per account (10 by default), instalment k
 * of every account before instalment k + 1 of any (a lockbox file a day). Each instalment is 90 % of the bill ÷ m
 * (in cents, rounded down), but the last instalment of every fourth account pays the bill's rest plus 5.00 EUR:
 * those bills end settled with 5.00 of unapplied credit, the others partiallyPaid. Accounts of even index name
 * their bill in `paymentItem`; accounts of odd index quote its number in `description` ("Rechnung DE-INV-… Rate k/m").
 * Each payment has its own `idempotencyKey`. They are sent over HTTP (undici's fetch to the listening engine, an
 * admin-made `finance` API key) in requests of BENCH_PAYMENTS_REQUEST (2,000) payments, BENCH_PAYMENTS_CONCURRENCY
 * (2) at a time; no warm-up request. The engine works a request in chunks of 1,000 payments, a transaction each
 * (PaymentsService.recordChunk): the accounts' advisory locks, the idempotency keys already used, the accounts (two
 * statements), the bills named, their open items, then one multi-row insert each of ledger entries and payments,
 * one of allocations (its BEFORE INSERT trigger `allocations_within` locks and checks each row), one UPDATE of the
 * invoices' states (settleMany), the payments read back to be presented, and the outbox events and audit rows
 * (deferred, inserted before COMMIT).
 *
 * Database time (bench/support/db-time.ts): the engine's postgres.js client is wrapped and each chunk
 * (`recordChunk`, wrapped on the service object; the engine's code unchanged) runs inside `measureStatements`: a
 * chunk's database time is the union of its statements' client-side round trips; the third table breaks it down by
 * statement. The wrapper's own cost is in the engine's figures.
 *
 * The ceiling, in the same run, on the copy of the seeded data: the rows the engine wrote, read back by id before the
 * clock starts, written again by bare SQL (postgres.js, prepared statements) in the same chunks of 1,000 payments, a
 * transaction each, the same requests' chunks in the same order and at the same concurrency: the same multi-row
 * inserts of ledger entries, payments and allocations (the trigger runs: it is the table's) and the engine's own
 * UPDATE of the invoices' states (its statement, which works the states out from the allocations, with the chunk's
 * invoices as one array parameter). Not in it: HTTP, JSON, the locks, the reads (keys, accounts, open items, the
 * payments presented), the StateChange and Create events and the audit rows.
 *
 * Checks (the run fails if one does not hold): every payment created exactly once (the answers' counts, rows of
 * payments, keys and payment entries all = the payments sent), each matched as sent (by items or by reference), one
 * allocation each; importing the first request again answers every payment "replayed" and writes no row; Σ
 * allocations per payment ≤ its amount and per invoice ≤ its gross; per account what was paid allocated up to the
 * bill's gross and the rest unapplied, the bills' states following (settled, partiallyPaid); the ledger's identity
 * Σ entries = Σ open amounts − Σ unapplied credit; the ceiling's copy ends with the same rows and states.
 *
 * BENCH_PAYMENTS_KEEP=1 keeps a copy of the database. About 4 minutes on 2 cores with the defaults, most of it the
 * bill run.
 */

import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { Redis } from "ioredis";
import postgres from "postgres";
import { buildApp } from "../src/app.js";
import { SYSTEM_ACTOR } from "../src/platform/audit.js";
import { ManualClock } from "../src/platform/clock.js";
import { RecordingChannel } from "../test/support/recording-channel.js";
import { excerpt, label } from "./invoices.js";
import { measureStatements, type TimedStatement, timeStatementsOf } from "./support/db-time.js";
import { busyShare, machineCpu, percentile, stats } from "./support/figures.js";
import { generateAccounts } from "./support/generate-accounts.js";
import { benchConfig, freshDatabase, table } from "./support/servers.js";

const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ACCOUNTS = Number(process.env.BENCH_PAYMENTS_ACCOUNTS ?? 10_000);
const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 100_000);
const REQUEST = Number(process.env.BENCH_PAYMENTS_REQUEST ?? 2_000);
const CONCURRENCY = Number(process.env.BENCH_PAYMENTS_CONCURRENCY ?? 2);
/** The engine's chunk (IMPORT_CHUNK in payments.service.ts): payments per transaction. */
const CHUNK = 1_000;
const ORDERED_AT = "2027-03-17T09:00:00Z";
const ISSUED_AT = "2027-04-01T08:00:00Z";
const PAID_AT = "2027-04-08T09:00:00Z";
/** What the last instalment of every fourth account pays above its bill, in cents. */
const OVERPAID = 500;
const GOAL = 0.5;

type Row = Record<string, string | number>;

interface Bill {
  accountId: string;
  invoiceId: string;
  number: string;
  grossCents: number;
}

interface ImportItem {
  account: { id: string };
  totalAmount: { unit: string; value: string };
  paymentMethod: { id: string };
  paymentItem?: Array<{ item: { id: string } }>;
  description: string;
  idempotencyKey: string;
}

interface ImportAnswer {
  created: number;
  replayed: number;
  rejected: number;
  results: Array<{
    index: number;
    outcome: string;
    payment?: { id: string };
    error?: { code: string; message: string };
  }>;
}

interface Chunk {
  payments: number;
  wallMs: number;
  dbMs: number;
  statements: TimedStatement[];
}

/** The payment service's chunk step, as this bench wraps it (a private method of the engine's object). */
interface PaymentsInternals {
  recordChunk(actor: unknown, requests: readonly unknown[]): Promise<unknown[]>;
}

const cents = (value: number) => `${Math.floor(value / 100)}.${String(value % 100).padStart(2, "0")}`;

export async function benchPayments(): Promise<Row[][]> {
  if (ACCOUNTS < 4 || PAYMENTS < 1 || REQUEST < 1 || REQUEST > 10_000) {
    throw new Error("bench/payments: BENCH_PAYMENTS_ACCOUNTS ≥ 4, BENCH_PAYMENTS ≥ 1, BENCH_PAYMENTS_REQUEST 1…10,000");
  }
  const name = `bss_bench_payments_${process.pid}`;
  const ceilingName = `${name}_ceiling`;
  const database = await freshDatabase(databaseUrl, name);
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const ceilingUrl = new URL(database.url);
  ceilingUrl.pathname = `/${ceilingName}`;
  const prefix = `bench:${process.pid}:payments:`;
  const config = benchConfig(database.url, redisUrl, prefix);
  const engineOptions = (clock: ManualClock) => ({
    clock,
    logger: false as const,
    messageChannel: new RecordingChannel(),
    orderFulfilment: "manual" as const,
    billRunWork: "manual" as const,
  });
  let app: Awaited<ReturnType<typeof buildApp>> | null = null;
  let sql: postgres.Sql | null = null;
  let ceilingSql: postgres.Sql | null = null;
  try {
    // 1. The seeded data: accounts by the generator, their invoices by a bill run, the bill messages sent.
    const seedClock = new ManualClock(ORDERED_AT);
    app = await buildApp(config, engineOptions(seedClock));
    const generated = await generateAccounts(app, database.url, { count: ACCOUNTS });
    seedClock.set(ISSUED_AT);
    const billRunStarted = performance.now();
    const runs = app.services.billRuns;
    const accountIds = Array.from({ length: ACCOUNTS }, (_, n) => generated.accountId(n));
    const { run } = await runs.start(SYSTEM_ACTOR, { billingAccountIds: accountIds });
    const worked = await Promise.all([runs.work(run.id), runs.work(run.id)]);
    const invoiced = worked.reduce((sum, totals) => sum + totals.invoiced, 0);
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    await waitForMessages(sql);
    const billRunSeconds = (performance.now() - billRunStarted) / 1000;
    const key = (await app.services.access.create(SYSTEM_ACTOR, { name: "bench payments import", role: "finance" }))
      .key;
    const bills = await billsOf(sql, accountIds);
    if (invoiced !== ACCOUNTS || bills.length !== ACCOUNTS) {
      throw new Error(`bench/payments: the bill run invoiced ${invoiced} (${bills.length} bills) of ${ACCOUNTS}`);
    }
    const [before] = await sql`
      select (select count(*) from invoices where state <> 'sent')::int as not_sent,
        (select count(*) from receivable_entries where invoice_id is null)::int as other_entries,
        (select count(*) from allocations)::int as allocations`;
    if (before?.not_sent !== 0 || before?.other_entries !== 0 || before?.allocations !== 0) {
      throw new Error(`bench/payments: the seeded bills are not all sent and open: ${JSON.stringify(before)}`);
    }
    // As a database in service would have them (the generator analyses its own tables; this server may run without
    // autovacuum): the tables the bill run wrote and the import reads and writes, analysed once, before both copies.
    for (const name of ["invoices", "receivable_entries", "allocations", "payments", "customer_messages"]) {
      await sql.unsafe(`vacuum (analyze) ${name}`);
    }
    const [settings] = await sql`select current_setting('autovacuum') as autovacuum,
      current_setting('synchronous_commit') as sc, current_setting('fsync') as fs`;
    await app.close();
    app = null;
    await sql.end({ timeout: 5 });
    sql = null;
    // The ceiling's fresh copy (no session may be on the template: retried while the engine's pool winds down).
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`create database "${ceilingName}" template "${name}"`);
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }

    // 2. The payments to import.
    const instalments = Math.ceil(PAYMENTS / ACCOUNTS);
    const items: ImportItem[] = [];
    const paidCents = new Array<number>(ACCOUNTS).fill(0);
    const byItems = { items: 0, reference: 0 };
    for (let p = 0; p < PAYMENTS; p++) {
      const k = Math.floor(p / ACCOUNTS);
      const n = p % ACCOUNTS;
      const bill = bills[n] as Bill;
      const instalment = Math.floor((bill.grossCents * 9) / (10 * instalments));
      const amount =
        k === instalments - 1 && n % 4 === 0
          ? bill.grossCents - (instalments - 1) * instalment + OVERPAID
          : Math.max(1, instalment);
      paidCents[n] = (paidCents[n] ?? 0) + amount;
      const rate = `Rate ${k + 1}/${instalments}`;
      const named = n % 2 === 0;
      if (named) byItems.items++;
      else byItems.reference++;
      items.push({
        account: { id: bill.accountId },
        totalAmount: { unit: "EUR", value: cents(amount) },
        paymentMethod: { id: "bankTransfer" },
        ...(named ? { paymentItem: [{ item: { id: bill.invoiceId } }] } : {}),
        description: named ? rate : `Rechnung ${bill.number} ${rate}`,
        idempotencyKey: `bench-payments-${n}-${k}`,
      });
    }
    const requests: ImportItem[][] = [];
    for (let from = 0; from < items.length; from += REQUEST) requests.push(items.slice(from, from + REQUEST));

    // 3. The engine: a second one on the seeded database, listening; the import over HTTP.
    const payClock = new ManualClock(PAID_AT);
    app = await buildApp(config, engineOptions(payClock));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    timeStatementsOf(app.database.db);
    const chunks: Chunk[] = [];
    const service = app.services.payments;
    const internals = service as unknown as PaymentsInternals;
    const recordChunk = internals.recordChunk.bind(service);
    internals.recordChunk = async (actor, chunk) => {
      const measured = await measureStatements(() => recordChunk(actor, chunk));
      chunks.push({
        payments: chunk.length,
        wallMs: measured.wallMs,
        dbMs: measured.dbMs,
        statements: [...measured.statements],
      });
      return measured.result;
    };
    const post = async (body: ImportItem[]): Promise<{ answer: ImportAnswer; ms: number }> => {
      const started = performance.now();
      const response = await fetch(`${base}/api/v1/payments/import`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ payments: body }),
      });
      const text = await response.text();
      const ms = performance.now() - started;
      if (response.status !== 200) throw new Error(`import: ${response.status} ${text.slice(0, 500)}`);
      return { answer: JSON.parse(text) as ImportAnswer, ms };
    };

    const answers: ImportAnswer[] = new Array(requests.length);
    const latencies: number[] = [];
    let peakRss = process.memoryUsage.rss();
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 50);
    // Both phases start from a checkpoint: neither pays for flushing what was written before it (the seeding, or the
    // other phase's 100,000 payments), which on this disk stalls writers for seconds.
    await (sql as postgres.Sql).unsafe("checkpoint");
    const cpu = process.cpuUsage();
    const machine = machineCpu();
    const engineStarted = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let r = next++; r < requests.length; r = next++) {
          const { answer, ms } = await post(requests[r] as ImportItem[]);
          answers[r] = answer;
          latencies.push(ms);
        }
      }),
    );
    const engineMs = performance.now() - engineStarted;
    const used = process.cpuUsage(cpu);
    const machineBusy = busyShare(machine, machineCpu());
    clearInterval(sampler);
    const load = loadavg()[0]?.toFixed(1) ?? "?";
    const measuredChunks = [...chunks];

    // The first request again: every payment replayed, no row written.
    const counts = async () =>
      (
        await (sql as postgres.Sql)`
        select (select count(*) from payments)::int as payments, (select count(*) from receivable_entries)::int as entries,
          (select count(*) from allocations)::int as allocations`
      )[0];
    const countsBefore = await counts();
    const replay = await post(requests[0] as ImportItem[]);
    const countsAfter = await counts();

    // 4. The ceiling: the engine's rows, read by id per chunk, written again on the copy.
    const plan = await ceilingPlan(sql, requests, answers);
    await app.close();
    app = null;
    ceilingSql = postgres(ceilingUrl.toString(), { max: CONCURRENCY, onnotice: () => {} });
    await ceilingSql.unsafe("checkpoint");
    const ceiling = await bareImport(ceilingSql, plan, payClock.now());

    // 5. Checks.
    const failures = await check({
      sql,
      ceilingSql,
      answers,
      bills,
      paidCents,
      byItems,
      replay: { answer: replay.answer, size: requests[0]?.length ?? 0, before: countsBefore, after: countsAfter },
    });
    const created = answers.reduce((sum, answer) => sum + answer.created, 0);
    const engineRate = (created * 1000) / engineMs;
    const ceilingRate = (ceiling.payments * 1000) / ceiling.ms;
    const ratio = engineRate / ceilingRate;
    const sorted = [...latencies].sort((a, b) => a - b);
    const chunkDb = measuredChunks.reduce((sum, chunk) => sum + chunk.dbMs, 0);
    const chunkWall = measuredChunks.reduce((sum, chunk) => sum + chunk.wallMs, 0);
    const seed: Row[] = [
      {
        seeded: `generator: ${ACCOUNTS.toLocaleString("en")} postpaid accounts (bench/support/generate-accounts.ts)`,
        value: generated.totalRows,
        seconds: generated.seconds.total.toFixed(1),
      },
      {
        seeded: "bill run of all of them (two work() loops), bill messages sent",
        value: `${invoiced} invoices`,
        seconds: billRunSeconds.toFixed(1),
      },
      {
        seeded: `payments: ${instalments} instalments per account, ${REQUEST} a request, ${CONCURRENCY} concurrent`,
        value: `${PAYMENTS} payments, gross of a bill ${cents(bills[0]?.grossCents ?? 0)} EUR`,
        seconds: "",
      },
    ];
    const rows: Row[] = [
      {
        phase: `ceiling: same inserts and state UPDATE, bare SQL, ${CHUNK} a transaction, ${CONCURRENCY} concurrent`,
        payments: ceiling.payments,
        seconds: (ceiling.ms / 1000).toFixed(1),
        "payments/s": Math.round(ceilingRate),
        ratio: "1.000",
        "p50 ms": percentile(
          [...ceiling.requestMs].sort((a, b) => a - b),
          50,
        ).toFixed(0),
        "p99 ms": percentile(
          [...ceiling.requestMs].sort((a, b) => a - b),
          99,
        ).toFixed(0),
        note: `per ${REQUEST} payments (its chunks)`,
      },
      {
        phase: `engine: POST /api/v1/payments/import, ${REQUEST} a request, ${CONCURRENCY} concurrent`,
        payments: created,
        seconds: (engineMs / 1000).toFixed(1),
        "payments/s": Math.round(engineRate),
        ratio: ratio.toFixed(3),
        "p50 ms": percentile(sorted, 50).toFixed(0),
        "p99 ms": percentile(sorted, 99).toFixed(0),
        note: `≥ ${GOAL} of the ceiling: ${ratio >= GOAL ? "met" : "MISSED"}; Node CPU ${((100 * (used.user + used.system)) / 1000 / engineMs).toFixed(0)} % of a core, machine ${machineBusy.toFixed(0)} % busy, load ${load}`,
      },
      {
        phase: `engine: chunks of ${CHUNK} (recordChunk), database time / wall time`,
        payments: measuredChunks.reduce((sum, chunk) => sum + chunk.payments, 0),
        seconds: "",
        "payments/s": "",
        ratio: "",
        "p50 ms": `${stats(measuredChunks.map((chunk) => chunk.dbMs)).p50} / ${stats(measuredChunks.map((chunk) => chunk.wallMs)).p50}`,
        "p99 ms": `${stats(measuredChunks.map((chunk) => chunk.dbMs)).p99} / ${stats(measuredChunks.map((chunk) => chunk.wallMs)).p99}`,
        note: `database ${((100 * chunkDb) / Math.max(1, chunkWall)).toFixed(0)} % of the chunks' wall time; ${stats(measuredChunks.map((chunk) => chunk.statements.length)).p50} statements a chunk (p50)`,
      },
      {
        phase: "engine: the first request again (replay)",
        payments: replay.answer.replayed,
        seconds: (replay.ms / 1000).toFixed(2),
        "payments/s": Math.round((replay.answer.replayed * 1000) / replay.ms),
        ratio: "",
        "p50 ms": replay.ms.toFixed(0),
        "p99 ms": "",
        note: `created ${replay.answer.created}, rejected ${replay.answer.rejected}`,
      },
      {
        phase: "peak RSS of this process (engine and load generator) during the import / whole run",
        payments: "",
        seconds: "",
        "payments/s": "",
        ratio: "",
        "p50 ms": "",
        "p99 ms": "",
        note: `${(peakRss / 1048576).toFixed(0)} MiB / ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
      },
      {
        phase: "checks",
        payments: "",
        seconds: "",
        "payments/s": "",
        ratio: "",
        "p50 ms": "",
        "p99 ms": "",
        note: `${failures.length === 0 ? "all passed" : `FAILED: ${failures.length}`}; autovacuum=${settings?.autovacuum}, synchronous_commit=${settings?.sc}, fsync=${settings?.fs}`,
      },
    ];
    const breakdown = statementBreakdown(measuredChunks);
    if (failures.length > 0) {
      throw new Error(`bench/payments: checks failed: ${failures.join("; ")}\n${table(seed)}\n${table(rows)}`);
    }
    return [seed, rows, breakdown];
  } finally {
    if (app !== null) await app.close();
    if (sql !== null) await sql.end({ timeout: 2 });
    if (ceilingSql !== null) await ceilingSql.end({ timeout: 2 });
    if (process.env.BENCH_PAYMENTS_KEEP) {
      await admin.unsafe(`drop database if exists "${name}_kept"`);
      await admin.unsafe(`create database "${name}_kept" template "${name}"`);
      process.stderr.write(`kept a copy of the database: ${name}_kept\n`);
    }
    await admin.unsafe(`drop database if exists "${ceilingName}" with (force)`);
    await admin.end();
    await database.drop();
    const redis = new Redis(redisUrl);
    const keys = await redis.keys(`${prefix}*`);
    for (const key of keys) await redis.del(key);
    redis.disconnect();
  }
}

/** Account n's bill (the accounts in the generator's order). */
async function billsOf(sql: postgres.Sql, accountIds: string[]): Promise<Bill[]> {
  const rows = await sql<{ account: string; id: string; number: string; gross: string }[]>`
    select billing_account_id as account, id, number, (gross * 100)::bigint::text as gross
    from invoices where kind = 'cycle'`;
  const byAccount = new Map(rows.map((row) => [row.account, row]));
  return accountIds.flatMap((accountId) => {
    const row = byAccount.get(accountId);
    return row === undefined
      ? []
      : [{ accountId, invoiceId: row.id, number: row.number, grossCents: Number(row.gross) }];
  });
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

type Values = postgres.Row;

interface CeilingChunk {
  entries: Values[];
  payments: Values[];
  allocations: Values[];
  invoices: string[];
}

const ENTRY_COLUMNS = ["id", "billing_account_id", "kind", "amount", "currency", "invoice_id", "at", "description"];
const ALLOCATION_COLUMNS = [
  "id",
  "billing_account_id",
  "invoice_id",
  "debit_entry_id",
  "entry_id",
  "amount",
  "reverses",
  "at",
];

/** The engine's rows per request and chunk (its payments in the order sent), read before the ceiling's clock starts. */
async function ceilingPlan(
  sql: postgres.Sql,
  requests: ImportItem[][],
  answers: ImportAnswer[],
): Promise<CeilingChunk[][]> {
  const plan: CeilingChunk[][] = [];
  for (const [r, request] of requests.entries()) {
    const answer = answers[r] as ImportAnswer;
    const chunks: CeilingChunk[] = [];
    for (let from = 0; from < request.length; from += CHUNK) {
      const ids = answer.results
        .slice(from, from + CHUNK)
        .flatMap((result) => (result.payment === undefined ? [] : [result.payment.id]));
      const entries = await sql`
        select id, billing_account_id, kind, amount::text as amount, currency, invoice_id, at, description
        from receivable_entries where id = any(${ids}::uuid[]) order by seq`;
      const payments = await sql`select * from payments where id = any(${ids}::uuid[]) order by id`;
      const allocations = await sql`
        select id, billing_account_id, invoice_id, debit_entry_id, entry_id, amount::text as amount, reverses, at
        from allocations where entry_id = any(${ids}::uuid[]) order by id`;
      chunks.push({
        entries: [...entries],
        payments: payments.map((row) => ({ ...row, amount: String(row.amount) })),
        allocations: [...allocations],
        invoices: [...new Set(allocations.flatMap((row) => (row.invoice_id === null ? [] : [row.invoice_id])))],
      });
    }
    plan.push(chunks);
  }
  return plan;
}

/** The ceiling: each chunk's rows written again in one transaction by prepared bare SQL, requests as the engine's. */
async function bareImport(
  sql: postgres.Sql,
  plan: CeilingChunk[][],
  now: Date,
): Promise<{ payments: number; ms: number; requestMs: number[] }> {
  const paymentColumns = Object.keys(plan[0]?.[0]?.payments[0] ?? {});
  const requestMs: number[] = [];
  let payments = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let r = next++; r < plan.length; r = next++) {
        const requestStarted = performance.now();
        for (const chunk of plan[r] as CeilingChunk[]) {
          await sql.begin(async (tx) => {
            await tx`insert into receivable_entries ${tx(chunk.entries, ENTRY_COLUMNS)}`;
            await tx`insert into payments ${tx(chunk.payments, paymentColumns)}`;
            if (chunk.allocations.length > 0) {
              await tx`insert into allocations ${tx(chunk.allocations, ALLOCATION_COLUMNS)}`;
            }
            if (chunk.invoices.length > 0) {
              // settleMany's statement (invoices.service.ts) as the engine sends it: unprepared, the chunk's invoices
              // as a list of parameters, so each execution is planned for its ids (a prepared statement over an
              // array parameter goes generic and scans every allocation: a ceiling slower than the engine).
              const list = chunk.invoices.map((_, index) => `$${index + 2}::uuid`).join(", ");
              await tx.unsafe(
                `with next as (
                  select i.id, case
                    when i.kind <> 'creditNote' and coalesce(sum(a.amount), 0) > 0 and coalesce(sum(a.amount), 0) >= i.gross then 'settled'
                    when i.kind <> 'creditNote' and coalesce(sum(a.amount), 0) > 0 then 'partiallyPaid'
                    when i.sent_at is null then 'validated' else 'sent' end as state
                  from invoices i left join allocations a on a.invoice_id = i.id
                  where i.id in (${list}) group by i.id)
                update invoices i set state = next.state, state_changed_at = $1::timestamptz
                from next where i.id = next.id and i.state <> 'onHold' and i.state <> next.state returning i.id`,
                [now.toISOString(), ...chunk.invoices],
              );
            }
          });
          payments += chunk.payments.length;
        }
        requestMs.push(performance.now() - requestStarted);
      }
    }),
  );
  return { payments, ms: performance.now() - started, requestMs };
}

async function check(input: {
  sql: postgres.Sql;
  ceilingSql: postgres.Sql;
  answers: ImportAnswer[];
  bills: Bill[];
  paidCents: number[];
  byItems: { items: number; reference: number };
  replay: {
    answer: ImportAnswer;
    size: number;
    before: postgres.Row | undefined;
    after: postgres.Row | undefined;
  };
}): Promise<string[]> {
  const { sql, answers, bills, paidCents } = input;
  const failures: string[] = [];
  const sum = (pick: (answer: ImportAnswer) => number) => answers.reduce((total, answer) => total + pick(answer), 0);
  const created = sum((answer) => answer.created);
  const rejected = answers.flatMap((answer) => answer.results.filter((result) => result.outcome !== "created"));
  if (created !== PAYMENTS || rejected.length > 0) {
    failures.push(
      `answers: ${created} created of ${PAYMENTS}; ${rejected.length} not created, e.g. ${JSON.stringify(rejected[0])}`,
    );
  }
  const [rows] = await sql`
    select (select count(*) from payments)::int as payments,
      (select count(distinct idempotency_key) from payments)::int as keys,
      (select count(*) from receivable_entries where kind = 'payment')::int as entries,
      (select count(*) from allocations)::int as allocations,
      (select count(*) from payments where matched_by = 'items')::int as by_items,
      (select count(*) from payments where matched_by = 'reference')::int as by_reference`;
  if (
    rows?.payments !== PAYMENTS ||
    rows?.keys !== PAYMENTS ||
    rows?.entries !== PAYMENTS ||
    rows?.allocations !== PAYMENTS ||
    rows?.by_items !== input.byItems.items ||
    rows?.by_reference !== input.byItems.reference
  ) {
    failures.push(`rows ${JSON.stringify(rows)} for ${PAYMENTS} payments (${JSON.stringify(input.byItems)})`);
  }
  const { replay } = input;
  if (
    replay.answer.replayed !== replay.size ||
    replay.answer.created !== 0 ||
    replay.answer.rejected !== 0 ||
    JSON.stringify(replay.before) !== JSON.stringify(replay.after)
  ) {
    failures.push(
      `replay: ${replay.answer.replayed} replayed, ${replay.answer.created} created, ${replay.answer.rejected} rejected of ${replay.size}; rows ${JSON.stringify(replay.before)} → ${JSON.stringify(replay.after)}`,
    );
  }
  const [within] = await sql`
    select
      (select count(*) from payments p
        where (select coalesce(sum(a.amount), 0) from allocations a where a.entry_id = p.entry_id) > p.amount)::int as payments_over,
      (select count(*) from invoices i
        where (select coalesce(sum(a.amount), 0) from allocations a where a.invoice_id = i.id) > i.gross)::int as invoices_over`;
  if (within?.payments_over !== 0 || within?.invoices_over !== 0)
    failures.push(`allocations ${JSON.stringify(within)}`);
  // What each account paid, allocated up to its bill and the rest unapplied; the bills' states following.
  let allocatedCents = 0;
  let unappliedCents = 0;
  let settled = 0;
  for (const [n, bill] of bills.entries()) {
    const paid = paidCents[n] ?? 0;
    allocatedCents += Math.min(paid, bill.grossCents);
    unappliedCents += Math.max(0, paid - bill.grossCents);
    if (paid >= bill.grossCents) settled++;
  }
  const [totals] = await sql`
    select (select (coalesce(sum(amount), 0) * 100)::bigint::text from allocations) as allocated,
      (select (coalesce(sum(-e.amount - coalesce((select sum(a.amount) from allocations a where a.entry_id = e.id), 0)), 0)
        * 100)::bigint::text from receivable_entries e where e.amount < 0) as unapplied,
      (select count(*) from invoices where state = 'settled')::int as settled,
      (select count(*) from invoices where state = 'partiallyPaid')::int as partially_paid`;
  if (
    totals?.allocated !== String(allocatedCents) ||
    totals?.unapplied !== String(unappliedCents) ||
    totals?.settled !== settled ||
    totals?.partially_paid !== bills.length - settled
  ) {
    failures.push(
      `totals ${JSON.stringify(totals)}; expected allocated ${allocatedCents}, unapplied ${unappliedCents}, settled ${settled}`,
    );
  }
  // The ledger's identity: Σ entries = Σ open amounts (bills and debit entries) − Σ unapplied credit.
  const [ledger] = await sql`
    select (select coalesce(sum(amount), 0) from receivable_entries)::text as entries,
      ((select coalesce(sum(i.gross - coalesce((select sum(a.amount) from allocations a where a.invoice_id = i.id), 0)), 0)
          from invoices i where i.kind <> 'creditNote')
       + (select coalesce(sum(e.amount - coalesce((select sum(a.amount) from allocations a where a.debit_entry_id = e.id), 0)), 0)
          from receivable_entries e where e.amount > 0 and e.invoice_id is null)
       - (select coalesce(sum(-e.amount - coalesce((select sum(a.amount) from allocations a where a.entry_id = e.id), 0)), 0)
          from receivable_entries e where e.amount < 0 and e.invoice_id is null))::text as open_less_credit`;
  if (ledger?.entries !== ledger?.open_less_credit) failures.push(`ledger ${JSON.stringify(ledger)}`);
  // The ceiling's copy: the same rows and states.
  const shape = `select (select count(*) from payments)::int as payments, (select count(*) from allocations)::int as allocations,
      (select coalesce(sum(amount), 0) from allocations)::text as allocated,
      (select count(*) from receivable_entries)::int as entries,
      (select count(*) from invoices where state = 'settled')::int as settled,
      (select count(*) from invoices where state = 'partiallyPaid')::int as partially_paid`;
  const [engine] = await sql.unsafe(shape);
  const [bare] = await input.ceilingSql.unsafe(shape);
  if (JSON.stringify({ ...engine }) !== JSON.stringify({ ...bare })) {
    failures.push(`ceiling's copy ${JSON.stringify(bare)}, engine's ${JSON.stringify(engine)}`);
  }
  return failures;
}

/** Per statement text: how many per chunk, the p50 of its own time, its mean own time per chunk, its share. */
function statementBreakdown(chunks: Chunk[]): Row[] {
  const byText = new Map<string, number[]>();
  for (const chunk of chunks) {
    for (const statement of chunk.statements) {
      const times = byText.get(statement.text) ?? [];
      times.push(statement.ownMs);
      byText.set(statement.text, times);
    }
  }
  // Statement texts that differ only by their number of rows or parameters are one statement.
  const byLabel = new Map<string, { times: number[]; text: string }>();
  for (const [text, times] of byText) {
    const key = `${label(text)} ${excerpt(text).slice(0, 60)}`;
    const entry = byLabel.get(key) ?? { times: [], text };
    entry.times.push(...times);
    byLabel.set(key, entry);
  }
  const totalMs = chunks.reduce((sum, chunk) => sum + chunk.dbMs, 0);
  return [...byLabel.values()]
    .map(({ text, times }) => ({ text, times, sum: times.reduce((s, ms) => s + ms, 0) }))
    .sort((a, b) => b.sum - a.sum)
    .slice(0, 20)
    .map(({ text, times, sum }) => ({
      statement: label(text),
      "per chunk": (times.length / chunks.length).toFixed(2),
      "p50 ms": percentile(
        [...times].sort((a, b) => a - b),
        50,
      ).toFixed(2),
      "ms per chunk": (sum / chunks.length).toFixed(1),
      share: `${((100 * sum) / totalMs).toFixed(1)} %`,
      sql: excerpt(text),
    }));
}

export function printPayments([seed, rows, breakdown]: Row[][]): void {
  process.stdout.write(
    `\nbench/payments (${new Date().toISOString()}, Node ${process.version}, PostgreSQL on loopback, load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(
        " ",
      )})\n\nseeded\n${table(seed ?? [])}\n\nimport\n${table(rows ?? [])}\n\nstatements of a chunk of ${CHUNK} by their own database time (the 20 largest)\n${table(
      breakdown ?? [],
    )}\n`,
  );
}
