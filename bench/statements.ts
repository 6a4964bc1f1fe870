/**
 * bench/statements: camt.053 bank statements imported and matched through `POST /api/v1/payments/statements` (issue
 * 27, "Performance"), against bills of bench/billing's generator, beside the same statements' ceiling.
 *
 * Budget (issue 27): a 50,000-entry camt.053 statement imported and matched at ≥ 0.5 of the same statements' ceiling,
 * with flat memory; entries/s and peak RSS printed.
 *
 * `npm run bench:statements [-- --entries N --first N --unmatched-every N --summaries N]` (or BENCH_STATEMENTS_ENTRIES,
 * BENCH_STATEMENTS_FIRST, BENCH_STATEMENTS_UNMATCHED_EVERY, BENCH_STATEMENTS_SUMMARIES). Defaults: a first statement of
 * 10,000 entries, then the main one of 50,000, every 50th entry of each unmatched (2 %); `--first 0` skips the first.
 * BENCH_STATEMENTS_PROFILE=file.cpuprofile writes a CPU profile of this process during the main import.
 *
 * Set-up, as bench/payments: the engine built in this process (buildApp) on a fresh database (BENCH_DATABASE_URL) and
 * Redis (BENCH_REDIS_URL, a key prefix of its own), a ManualClock, a message channel that accepts every message, rate
 * limits off. The generator (bench/support/generate-accounts.ts) writes one postpaid account per matched entry of both
 * statements (58,800 with the defaults) on 17 March 2027, each with one usage summary and its rated row (`--summaries`,
 * 1…15; bench/payments keeps the generator's 15: what a bill is made of does not matter to its payment, and 15 would
 * write four times the rows); one bill run of all of them on 1 April 08:00 UTC (two
 * `work(runId)` loops) issues their April bills, whose "bill ready" messages are sent (the bills are `sent`, each
 * with its ISO 11649 payment reference). The tables the import reads and writes are analysed once (VACUUM ANALYZE),
 * that engine closed and the database copied (`create database … template`): the copy is the ceiling's. A second
 * engine on the seeded database, its clock at 8 April 09:00, listens on a loopback port with the default timeouts
 * (the statement route lifts the socket's idle timeout while it applies, which takes longer than 30 s here).
 *
 * Statements: entry i of a statement pays bill i in full (its gross, booked 8 April) and quotes the bill's payment
 * reference as a structured creditor reference (RmtInf/Strd/CdtrRefInf, type SCOR), with the payer's name and an IBAN
 * the engine does not know; every 50th entry instead quotes a well-formed RF reference no bill has (unmatched, to the
 * worklist). Each entry is camtEntry's XML (test/support/bank-files.ts), rendered once with placeholders and filled
 * in per entry (camtEntry itself costs about 0.08 ms an entry, CPU this process would take from the engine); the file
 * is generated lazily, 100 entries a piece, and streamed as the request body (undici's fetch, `duplex: "half"`, a
 * `finance` API key). The answer (every entry's outcome, streamed by the engine) is read as it arrives and its
 * outcomes counted without keeping it. Time: from the request to the answer's last byte. The first statement (bills
 * 0…9,799) runs first, then the main one (the next 49,000 bills), then the main one again (every entry `duplicate`).
 *
 * Inside the engine (the engine's code unchanged): its postgres.js client wrapped (bench/support/db-time.ts) and the
 * service's private steps wrapped on its object: `stage` (a staging insert per 1,000 entries read) and `applyChunk`
 * (500 staged entries per transaction: the staged rows read back and claimed, billsQuoted, the IBANs on file, lockAccounts, then
 * writePayments — its own lock, idempotency keys, accounts, bills, openItemsOf, ledger entries, payments,
 * allocations, settleMany, the payments presented, events and audit rows — and the outcomes' UPDATE), each apply chunk
 * inside `measureStatements` for its database time and statements (kept by kind, not by text). Peak RSS: this process
 * (engine and client) sampled every 100 ms during each import, also per 10,000 entries staged and applied; the client
 * keeps neither the file nor the answer. Beside it the heap in use after a full collection (the bench turns on
 * --expose-gc for itself) before and after each import: what the engine keeps, apart from what it churns.
 *
 * The ceiling, in the same run, on the copy: the engine's rows read back by id before its clock starts and written
 * again by bare postgres.js, one transaction per 500 entries in the same order, no logic between the statements: the
 * staging insert (multi-row, ON CONFLICT (account, bank_ref) WHERE duplicate_of IS NULL DO NOTHING RETURNING id), the
 * bills by quoted token (billsQuoted's statement), the IBANs on file (accountsByIban's two statements), the accounts'
 * advisory locks (lockAccounts' statement), their open items (openItemsOf's statement), the inserts of ledger entries,
 * payments and allocations (its trigger runs: it is the table's), the invoices' states (settleMany's statement) and the
 * outcomes (writeResolutions' UPDATE … FROM jsonb_to_recordset); the statement's row inserted and completed. The
 * re-import's ceiling: per 1,000 entries the staging insert (nothing inserted), the originals' select and the
 * duplicate rows' insert. Not in the ceiling: HTTP, XML, JSON, the staged rows read back and claimed, the second lock, the keys,
 * accounts and bills read by writePayments, the payments presented, events and audit rows, the answer's pages.
 *
 * Checks (the run fails if one does not hold): every entry's outcome as planned (matched, or unmatched for the
 * planned ones) in the streamed answer and in the statement's counts; one payment per matched entry, allocated in full
 * to its bill, the bills settled, the others still sent; the main statement imported again answers every entry
 * `duplicate` and writes no payment, entry or allocation; the ceiling's copy ends with the same rows and states.
 *
 * BENCH_STATEMENTS_KEEP=1 keeps a copy of the database. With the defaults about 9 minutes on 2 cores, most of it the
 * bill run of 58,800 accounts.
 */

import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { composeIBAN } from "ibantools";
import { Redis } from "ioredis";
import postgres from "postgres";
import { buildApp } from "../src/app.js";
import { STATEMENTS_PATH } from "../src/modules/payments/statements.service.js";
import { SYSTEM_ACTOR } from "../src/platform/audit.js";
import { ManualClock } from "../src/platform/clock.js";
import { creditorReference } from "../src/shared/creditor-reference.js";
import { camtEntry, camtParts } from "../test/support/bank-files.js";
import { RecordingChannel } from "../test/support/recording-channel.js";
import { excerpt, label } from "./invoices.js";
import { measureStatements, type TimedStatement, timeStatementsOf } from "./support/db-time.js";
import { busyShare, machineCpu, percentile, stats } from "./support/figures.js";
import { generateAccounts } from "./support/generate-accounts.js";
import { benchConfig, freshDatabase, table } from "./support/servers.js";

const argv = process.argv.slice(2);
/** `--name value` or `--name=value` on the command line. */
function flag(name: string): string | undefined {
  const at = argv.indexOf(`--${name}`);
  if (at >= 0) return argv[at + 1];
  return argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ENTRIES = Number(flag("entries") ?? process.env.BENCH_STATEMENTS_ENTRIES ?? 50_000);
const FIRST = Number(flag("first") ?? process.env.BENCH_STATEMENTS_FIRST ?? 10_000);
/** Every n-th entry quotes a reference no bill has (0: none). */
const UNMATCHED_EVERY = Number(flag("unmatched-every") ?? process.env.BENCH_STATEMENTS_UNMATCHED_EVERY ?? 50);
/** The engine's chunks (statements.service.ts): entries per staging insert, entries per apply transaction. */
const STAGE_CHUNK = 1_000;
const APPLY_CHUNK = 500;
/** Entries per piece of the streamed file. */
const PIECE = 100;
const ORDERED_AT = "2027-03-17T09:00:00Z";
const ISSUED_AT = "2027-04-01T08:00:00Z";
const PAID_AT = "2027-04-08T09:00:00Z";
const BOOKED = "2027-04-08";
const OPERATOR_IBAN = "DE89370400440532013000";
/** Usage summaries per generated account (1…15; bench/payments takes the generator's 15): what a bill is made of. */
const SUMMARIES = Number(flag("summaries") ?? process.env.BENCH_STATEMENTS_SUMMARIES ?? 1);
/** Entries per window of the RSS figures (10,000 for 50,000 entries). */
const RSS_WINDOW = Math.max(STAGE_CHUNK, Math.ceil(ENTRIES / 5 / STAGE_CHUNK) * STAGE_CHUNK);
/** BENCH_STATEMENTS_PROFILE=file.cpuprofile: a CPU profile of this process during the main statement's import. */
const PROFILE = process.env.BENCH_STATEMENTS_PROFILE;
const GOAL = 0.5;
const MiB = 1_048_576;

type Row = Record<string, string | number>;

interface Bill {
  /** The generator's index of its account. */
  n: number;
  accountId: string;
  invoiceId: string;
  reference: string;
  grossCents: number;
}

interface StatementPlan {
  name: string;
  messageId: string;
  statementRef: string;
  /** Prefix of the bank references (AcctSvcrRef), one per statement. */
  prefix: string;
  entries: number;
  bills: Bill[];
  matched: number;
  unmatched: number;
  matchedCents: number;
  bytes: number;
}

interface Chunk {
  entries: number;
  wallMs: number;
  dbMs: number;
  /** Each statement's kind (a key of STATEMENT_KINDS) and own database time: the texts themselves are not kept. */
  statements: Array<{ key: string; ownMs: number }>;
}

/** Statement kinds seen, by their label and excerpt (copies: a kept slice would keep a 100 kB statement text alive). */
const STATEMENT_KINDS = new Map<string, { key: string; label: string; sql: string }>();

function kindOf(statement: TimedStatement): { key: string; ownMs: number } {
  // The head names the statement's tables (its IN lists and VALUES come later).
  const head = statement.text.slice(0, 2_000);
  const found = `${label(head)} ${excerpt(head).slice(0, 60)}`;
  let kind = STATEMENT_KINDS.get(found);
  if (kind === undefined) {
    const copy = (text: string) => Buffer.from(text).toString();
    kind = { key: copy(found), label: copy(label(head)), sql: copy(excerpt(head)) };
    STATEMENT_KINDS.set(kind.key, kind);
  }
  return { key: kind.key, ownMs: statement.ownMs };
}

interface Imported {
  plan: StatementPlan;
  ms: number;
  statementId: string;
  outcomes: Record<string, number>;
  counted: Record<string, number>;
  answerBytes: number;
  stageMs: number;
  stages: number;
  chunks: Chunk[];
  rssBefore: number;
  rssPeak: number;
  /** The heap in use after a full collection, before and after the import (what it keeps, not what it churns). */
  heapBefore: number;
  heapAfter: number;
  /** RSS peaks per window of entries staged, then applied, then the answer's rest (MiB). */
  rssWindows: { staging: number[]; applying: number[]; rest: number };
  cpuMs: number;
  machineBusy: number;
}

/** The statements service's steps, as this bench wraps them (private methods of the engine's object). */
interface StatementsInternals {
  stage(statementId: string, entries: readonly unknown[]): Promise<number>;
  applyChunk(actor: unknown, statementId: string, afterSeq: number): Promise<number | null>;
}

/** A full garbage collection (the bench turns on --expose-gc for itself). */
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const mib = (values: number[]) => values.map((value) => (value / MiB).toFixed(0)).join(", ");
const cents = (value: number) => `${Math.floor(value / 100)}.${String(value % 100).padStart(2, "0")}`;
const matchedOf = (entries: number) => entries - (UNMATCHED_EVERY > 0 ? Math.floor(entries / UNMATCHED_EVERY) : 0);
const isUnmatched = (index: number) => UNMATCHED_EVERY > 0 && (index + 1) % UNMATCHED_EVERY === 0;

export async function benchStatements(): Promise<Row[][]> {
  if (!(ENTRIES >= 1 && FIRST >= 0 && UNMATCHED_EVERY >= 0) || UNMATCHED_EVERY === 1) {
    throw new Error("bench/statements: --entries ≥ 1, --first ≥ 0, --unmatched-every 0 or ≥ 2");
  }
  const accounts = matchedOf(FIRST) + matchedOf(ENTRIES);
  const name = `bss_bench_statements_${process.pid}`;
  const ceilingName = `${name}_ceiling`;
  const database = await freshDatabase(databaseUrl, name);
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const ceilingUrl = new URL(database.url);
  ceilingUrl.pathname = `/${ceilingName}`;
  const prefix = `bench:${process.pid}:statements:`;
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
  let sampler: NodeJS.Timeout | null = null;
  const benchStarted = performance.now();
  try {
    // 1. The seeded data: accounts by the generator, their bills by a bill run, the bill messages sent.
    const seedClock = new ManualClock(ORDERED_AT);
    app = await buildApp(config, engineOptions(seedClock));
    const generated = await generateAccounts(app, database.url, {
      count: accounts,
      summaries: SUMMARIES,
      ratedPerSummary: 1,
    });
    seedClock.set(ISSUED_AT);
    const billRunStarted = performance.now();
    const runs = app.services.billRuns;
    const accountIds = Array.from({ length: accounts }, (_, n) => generated.accountId(n));
    const { run } = await runs.start(SYSTEM_ACTOR, { billingAccountIds: accountIds });
    const worked = await Promise.all([runs.work(run.id), runs.work(run.id)]);
    const invoiced = worked.reduce((sum, totals) => sum + totals.invoiced, 0);
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    await waitForMessages(sql);
    const billRunSeconds = (performance.now() - billRunStarted) / 1000;
    const key = (await app.services.access.create(SYSTEM_ACTOR, { name: "bench statements import", role: "finance" }))
      .key;
    const bills = await billsOf(sql, accountIds);
    if (invoiced !== accounts || bills.length !== accounts) {
      throw new Error(`bench/statements: the bill run invoiced ${invoiced} (${bills.length} bills) of ${accounts}`);
    }
    const [before] = await sql`
      select (select count(*) from invoices where state <> 'sent')::int as not_sent,
        (select count(*) from allocations)::int as allocations,
        (select count(*) from payments)::int as payments`;
    if (before?.not_sent !== 0 || before?.allocations !== 0 || before?.payments !== 0) {
      throw new Error(`bench/statements: the seeded bills are not all sent and open: ${JSON.stringify(before)}`);
    }
    // As a database in service would have them (this server may run without autovacuum): analysed once, before both
    // copies.
    for (const table of [
      "invoices",
      "receivable_entries",
      "allocations",
      "allocation_totals",
      "payments",
      "payment_methods",
      "mandates",
      "statement_entries",
      "customer_messages",
    ]) {
      await sql.unsafe(`vacuum (analyze) ${table}`);
    }
    const [settings] = await sql`select current_setting('autovacuum') as autovacuum,
      current_setting('synchronous_commit') as sc, current_setting('fsync') as fs`;
    await app.close();
    app = null;
    await sql.end({ timeout: 5 });
    sql = null;
    // The ceiling's fresh copy (no session may be on the template: retried while the engine's pool winds down).
    const copyStarted = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`create database "${ceilingName}" template "${name}"`);
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const copySeconds = (performance.now() - copyStarted) / 1000;

    // 2. The statements: the first pays bills 0…, the main one the bills after them.
    const firstPlan = FIRST > 0 ? statementPlan("first", "A", FIRST, bills.slice(0, matchedOf(FIRST))) : null;
    const mainPlan = statementPlan("main", "B", ENTRIES, bills.slice(matchedOf(FIRST)));

    // 3. The engine: a second one on the seeded database, listening; the imports over HTTP.
    const payClock = new ManualClock(PAID_AT);
    app = await buildApp(config, engineOptions(payClock));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    sql = postgres(database.url, { max: 2, onnotice: () => {} });
    timeStatementsOf(app.database.db);
    const service = app.services.statements;
    const internals = service as unknown as StatementsInternals;
    let rss = { peak: process.memoryUsage.rss(), window: 0 };
    const newProgress = (plan = 0) => ({
      plan,
      chunks: [] as Chunk[],
      stageMs: 0,
      stages: 0,
      staged: 0,
      applied: 0,
      staging: [] as number[],
      applying: [] as number[],
    });
    let current = newProgress();
    /** Closes the RSS window when `done` entries crossed a multiple of RSS_WINDOW. */
    const windowed = (windows: number[], before: number, done: number) => {
      if (done > before && (Math.floor(done / RSS_WINDOW) > Math.floor(before / RSS_WINDOW) || done === current.plan)) {
        rss.window = Math.max(rss.window, process.memoryUsage.rss());
        windows.push(rss.window);
        rss.window = 0;
      }
    };
    const stage = internals.stage.bind(service);
    internals.stage = async (statementId, entries) => {
      const started = performance.now();
      const staged = await stage(statementId, entries);
      current.stageMs += performance.now() - started;
      current.stages++;
      current.staged += entries.length;
      windowed(current.staging, current.staged - entries.length, current.staged);
      return staged;
    };
    const applyChunk = internals.applyChunk.bind(service);
    internals.applyChunk = async (actor, statementId, afterSeq) => {
      const into = current;
      const measured = await measureStatements(() => applyChunk(actor, statementId, afterSeq));
      if (measured.result !== null) {
        const entries = Math.min(APPLY_CHUNK, measured.result - afterSeq);
        into.chunks.push({
          entries,
          wallMs: measured.wallMs,
          dbMs: measured.dbMs,
          statements: measured.statements.map(kindOf),
        });
        into.applied += entries;
        windowed(into.applying, into.applied - entries, into.applied);
      }
      return measured.result;
    };
    sampler = setInterval(() => {
      const now = process.memoryUsage.rss();
      rss.peak = Math.max(rss.peak, now);
      rss.window = Math.max(rss.window, now);
    }, 100);

    let profiled = false;
    const importStatement = async (plan: StatementPlan): Promise<Imported> => {
      // Each import starts from a checkpoint: none pays for flushing what was written before it.
      await (sql as postgres.Sql).unsafe("checkpoint");
      current = newProgress(plan.entries);
      collectGarbage();
      const heapBefore = process.memoryUsage().heapUsed;
      const rssBefore = process.memoryUsage.rss();
      rss = { peak: rssBefore, window: rssBefore };
      const profiler = plan === mainPlan && PROFILE !== undefined && !profiled ? await startProfile() : null;
      const cpu = process.cpuUsage();
      const machine = machineCpu();
      const started = performance.now();
      const response = await fetch(`${base}${STATEMENTS_PATH}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/xml" },
        body: Readable.from(statementFile(plan)),
        duplex: "half",
      } as unknown as RequestInit);
      if (response.status !== 201 || response.body === null) {
        throw new Error(`import ${plan.name}: ${response.status} ${(await response.text()).slice(0, 500)}`);
      }
      const answer = await readAnswer(response.body);
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      rss.peak = Math.max(rss.peak, process.memoryUsage.rss());
      const rest = Math.max(rss.window, process.memoryUsage.rss());
      collectGarbage();
      const heapAfter = process.memoryUsage().heapUsed;
      if (profiler !== null) {
        profiled = true;
        await profiler.stop(PROFILE as string);
      }
      return {
        plan,
        ms,
        statementId: answer.head.id,
        outcomes: answer.head.outcomes,
        counted: answer.counted,
        answerBytes: answer.bytes,
        stageMs: current.stageMs,
        stages: current.stages,
        chunks: current.chunks,
        rssBefore,
        rssPeak: rss.peak,
        heapBefore,
        heapAfter,
        rssWindows: { staging: current.staging, applying: current.applying, rest },
        cpuMs: (used.user + used.system) / 1000,
        machineBusy: busyShare(machine, machineCpu()),
      };
    };
    const counts = async () =>
      (
        await (sql as postgres.Sql)`
        select (select count(*) from payments)::int as payments, (select count(*) from receivable_entries)::int as entries,
          (select count(*) from allocations)::int as allocations,
          (select count(*) from statement_entries where duplicate_of is null)::int as live_entries`
      )[0];
    const first = firstPlan === null ? null : await importStatement(firstPlan);
    const main = await importStatement(mainPlan);
    const countsBefore = await counts();
    const again = await importStatement(mainPlan);
    const countsAfter = await counts();
    clearInterval(sampler);
    sampler = null;

    // 4. The ceiling: the engine's rows, read back per statement, written again on the copy.
    const firstCeilingPlan = first === null ? null : await ceilingPlan(sql, first.statementId);
    const mainCeilingPlan = await ceilingPlan(sql, main.statementId);
    const againCeilingPlan = await duplicatePlan(sql, again.statementId);
    await app.close();
    app = null;
    ceilingSql = postgres(ceilingUrl.toString(), { max: 1, onnotice: () => {} });
    // JSON parameters go as the text they are (drizzle sets the same on the engine's client): the plan holds them
    // serialised, as the engine serialises them before sending.
    const serializers = ceilingSql.options.serializers as Record<string, (value: unknown) => unknown>;
    serializers["114"] = (value) => value;
    serializers["3802"] = (value) => value;
    await ceilingSql.unsafe("checkpoint");
    const firstCeiling = firstCeilingPlan === null ? null : await bareImport(ceilingSql, firstCeilingPlan);
    await ceilingSql.unsafe("checkpoint");
    const mainCeiling = await bareImport(ceilingSql, mainCeilingPlan);
    const againCeiling = await bareReimport(ceilingSql, againCeilingPlan);

    // 5. Checks.
    const failures = await check({
      sql,
      ceilingSql,
      imports: first === null ? [main] : [first, main],
      again,
      before: countsBefore,
      after: countsAfter,
      accounts,
    });
    const totalSeconds = (performance.now() - benchStarted) / 1000;

    const seed: Row[] = [
      {
        seeded: `generator: ${accounts.toLocaleString("en")} postpaid accounts (bench/support/generate-accounts.ts)`,
        value: generated.totalRows,
        seconds: generated.seconds.total.toFixed(1),
      },
      {
        seeded: "bill run of all of them (two work() loops), bill messages sent",
        value: `${invoiced} bills`,
        seconds: billRunSeconds.toFixed(1),
      },
      { seeded: "the ceiling's copy (create database … template)", value: "", seconds: copySeconds.toFixed(1) },
      ...[firstPlan, mainPlan].flatMap((plan) =>
        plan === null
          ? []
          : [
              {
                seeded: `statement ${plan.name}: ${plan.entries.toLocaleString("en")} entries (${plan.matched} paying a bill in full by its RF reference, ${plan.unmatched} unmatched)`,
                value: `${(plan.bytes / MiB).toFixed(1)} MiB of XML, streamed`,
                seconds: "",
              },
            ],
      ),
    ];
    const rows: Row[] = [];
    const importRows = (imported: Imported, ceiling: BareResult, what: string) => {
      const engineRate = (imported.plan.entries * 1000) / imported.ms;
      const ceilingRate = (ceiling.entries * 1000) / ceiling.ms;
      const ratio = engineRate / ceilingRate;
      const chunkWall = stats(imported.chunks.map((chunk) => chunk.wallMs));
      const chunkDb = stats(imported.chunks.map((chunk) => chunk.dbMs));
      const dbShare =
        (100 * imported.chunks.reduce((sum, chunk) => sum + chunk.dbMs, 0)) /
        Math.max(
          1,
          imported.chunks.reduce((sum, chunk) => sum + chunk.wallMs, 0),
        );
      const applyMs = imported.chunks.reduce((sum, chunk) => sum + chunk.wallMs, 0);
      const ceilingChunks = stats(ceiling.chunkMs);
      rows.push(
        {
          phase: `ceiling: ${what}, same statements, bare SQL, ${APPLY_CHUNK} a transaction`,
          entries: ceiling.entries,
          seconds: (ceiling.ms / 1000).toFixed(1),
          "entries/s": Math.round(ceilingRate),
          ratio: "1.000",
          "chunk p50 ms": ceilingChunks.p50,
          "chunk p99 ms": ceilingChunks.p99,
          "peak RSS MiB": "",
          note: `${ceiling.chunkMs.length} transactions`,
        },
        {
          phase: `engine: ${what}, POST ${STATEMENTS_PATH}, streamed both ways`,
          entries: imported.plan.entries,
          seconds: (imported.ms / 1000).toFixed(1),
          "entries/s": Math.round(engineRate),
          ratio: ratio.toFixed(3),
          "chunk p50 ms": chunkWall.p50,
          "chunk p99 ms": chunkWall.p99,
          "peak RSS MiB": (imported.rssPeak / MiB).toFixed(0),
          note: `${imported.plan.entries === ENTRIES ? `≥ ${GOAL} of the ceiling: ${ratio >= GOAL ? "met" : "MISSED"}; ` : ""}staging ${(imported.stageMs / 1000).toFixed(1)} s (${imported.stages} inserts), applying ${(applyMs / 1000).toFixed(1)} s (${imported.chunks.length} chunks, database ${dbShare.toFixed(0)} %, p50 ${chunkDb.p50} ms of ${chunkWall.p50}), the rest ${((imported.ms - imported.stageMs - applyMs) / 1000).toFixed(1)} s; Node CPU ${((100 * imported.cpuMs) / imported.ms).toFixed(0)} % of a core, machine ${imported.machineBusy.toFixed(0)} % busy; RSS ${(imported.rssBefore / MiB).toFixed(0)} MiB before`,
        },
      );
    };
    if (first !== null && firstCeiling !== null) importRows(first, firstCeiling, `first statement, ${FIRST} entries`);
    importRows(main, mainCeiling, `main statement, ${ENTRIES} entries`);
    const againRate = (again.plan.entries * 1000) / again.ms;
    const againCeilingRate = (againCeiling.entries * 1000) / againCeiling.ms;
    rows.push(
      {
        phase: `ceiling: the main statement again, per ${STAGE_CHUNK}: staging insert, originals, duplicates' insert`,
        entries: againCeiling.entries,
        seconds: (againCeiling.ms / 1000).toFixed(1),
        "entries/s": Math.round(againCeilingRate),
        ratio: "1.000",
        "chunk p50 ms": stats(againCeiling.chunkMs).p50,
        "chunk p99 ms": stats(againCeiling.chunkMs).p99,
        "peak RSS MiB": "",
        note: "",
      },
      {
        phase: "engine: the main statement again (every entry a duplicate)",
        entries: again.plan.entries,
        seconds: (again.ms / 1000).toFixed(1),
        "entries/s": Math.round(againRate),
        ratio: (againRate / againCeilingRate).toFixed(3),
        "chunk p50 ms": "",
        "chunk p99 ms": "",
        "peak RSS MiB": (again.rssPeak / MiB).toFixed(0),
        note: `outcomes ${JSON.stringify(again.counted)}; payments ${countsBefore?.payments} → ${countsAfter?.payments}`,
      },
      {
        phase: "peak RSS of this process (engine and client) per import / whole run",
        entries: "",
        seconds: "",
        "entries/s": "",
        ratio: "",
        "chunk p50 ms": "",
        "chunk p99 ms": "",
        "peak RSS MiB": (process.resourceUsage().maxRSS / 1024).toFixed(0),
        note: [first, main, again]
          .flatMap((imported) =>
            imported === null
              ? []
              : [
                  `${imported.plan.entries.toLocaleString("en")} entries: ${(imported.rssBefore / MiB).toFixed(0)} → peak ${(imported.rssPeak / MiB).toFixed(0)} MiB (+${((imported.rssPeak - imported.rssBefore) / MiB).toFixed(0)}), heap after a full GC ${(imported.heapBefore / MiB).toFixed(0)} → ${(imported.heapAfter / MiB).toFixed(0)} MiB`,
                ],
          )
          .concat(
            `main statement, peak per ${RSS_WINDOW.toLocaleString("en")} entries: staging ${mib(main.rssWindows.staging)}; applying ${mib(main.rssWindows.applying)}; the answer ${mib([main.rssWindows.rest])} MiB`,
          )
          .join("; "),
      },
      {
        phase: "checks",
        entries: "",
        seconds: totalSeconds.toFixed(0),
        "entries/s": "",
        ratio: "",
        "chunk p50 ms": "",
        "chunk p99 ms": "",
        "peak RSS MiB": "",
        note: `${failures.length === 0 ? "all passed" : `FAILED: ${failures.length}`}; the whole bench ${totalSeconds.toFixed(0)} s; autovacuum=${settings?.autovacuum}, synchronous_commit=${settings?.sc}, fsync=${settings?.fs}`,
      },
    );
    const breakdown = statementBreakdown(main.chunks);
    if (failures.length > 0) {
      throw new Error(`bench/statements: checks failed: ${failures.join("; ")}\n${table(seed)}\n${table(rows)}`);
    }
    return [seed, rows, breakdown];
  } finally {
    if (sampler !== null) clearInterval(sampler);
    if (app !== null) await app.close();
    if (sql !== null) await sql.end({ timeout: 2 });
    if (ceilingSql !== null) await ceilingSql.end({ timeout: 2 });
    if (process.env.BENCH_STATEMENTS_KEEP) {
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

// ---------------------------------------------------------------------------------------------------------------
// The statements and their answer

function statementPlan(name: string, prefix: string, entries: number, bills: Bill[]): StatementPlan {
  const matched = matchedOf(entries);
  if (bills.length < matched) throw new Error(`statement ${name}: ${matched} bills wanted, ${bills.length} seeded`);
  const plan: StatementPlan = {
    name,
    messageId: `BENCH-${prefix}-${process.pid}`,
    statementRef: `STMT-${prefix}-${process.pid}`,
    prefix: `S${prefix}`,
    entries,
    bills: bills.slice(0, matched),
    matched,
    unmatched: entries - matched,
    matchedCents: bills.slice(0, matched).reduce((sum, bill) => sum + bill.grossCents, 0),
    bytes: 0,
  };
  for (const piece of statementFile(plan)) plan.bytes += piece.length;
  return plan;
}

/** camtEntry's XML with placeholders: split into literal parts and the names of the values between them. */
const ENTRY_PARTS = camtEntry({
  ref: "@@R@@",
  amount: "@@A@@",
  creditorRef: "@@C@@",
  debtorName: "@@N@@",
  debtorIban: "@@I@@",
  bookingDate: BOOKED,
}).split(/@@([RACNI])@@/);

function entryXml(values: Record<string, string>): string {
  let xml = "";
  for (let i = 0; i < ENTRY_PARTS.length; i++) xml += i % 2 === 0 ? ENTRY_PARTS[i] : values[ENTRY_PARTS[i] as string];
  return xml;
}

/** A payer's IBAN the engine does not know (German, valid check digits). */
function payerIban(n: number): string {
  return composeIBAN({ countryCode: "DE", bban: `50010517${String(n).padStart(10, "0")}` }) ?? OPERATOR_IBAN;
}

/** The statement's file, generated as it is read: the head, the entries a hundred at a time, the tail. */
function* statementFile(plan: StatementPlan): Generator<Buffer> {
  const { head, tail } = camtParts({
    messageId: plan.messageId,
    statementId: plan.statementRef,
    account: OPERATOR_IBAN,
    createdAt: `${BOOKED}T06:00:00`,
  });
  yield Buffer.from(head);
  let bill = 0;
  let piece = "";
  for (let i = 0; i < plan.entries; i++) {
    const ref = `${plan.prefix}-${String(i + 1).padStart(7, "0")}`;
    if (isUnmatched(i)) {
      piece += entryXml({
        R: ref,
        A: "12.34",
        C: creditorReference(`NB${plan.prefix}${i}`),
        N: `Unknown payer ${i}`,
        I: payerIban(900_000_000 + i),
      });
    } else {
      const paid = plan.bills[bill++] as Bill;
      piece += entryXml({
        R: ref,
        A: cents(paid.grossCents),
        C: paid.reference,
        N: `Bench ${paid.n}`,
        I: payerIban(paid.n),
      });
    }
    if ((i + 1) % PIECE === 0) {
      yield Buffer.from(piece);
      piece = "";
    }
  }
  if (piece !== "") yield Buffer.from(piece);
  yield Buffer.from(tail);
}

/** The streamed answer read as it arrives: the statement's head, and every entry's outcome counted (nothing kept). */
async function readAnswer(body: ReadableStream<Uint8Array>): Promise<{
  head: { id: string; outcomes: Record<string, number> };
  counted: Record<string, number>;
  bytes: number;
}> {
  const decoder = new TextDecoder();
  const marker = ',"items":[';
  const outcome = /"outcome":"([a-zA-Z]+)"/g;
  let head: { id: string; outcomes: Record<string, number> } | null = null;
  const counted: Record<string, number> = {};
  let buffer = "";
  let bytes = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    buffer += decoder.decode(chunk, { stream: true });
    if (head === null) {
      const at = buffer.indexOf(marker);
      if (at < 0) continue;
      head = JSON.parse(`${buffer.slice(0, at)}}`) as { id: string; outcomes: Record<string, number> };
      buffer = buffer.slice(at + marker.length);
    }
    // Keep the tail an outcome may be cut in (never one already counted).
    let keep = Math.max(0, buffer.length - 40);
    for (const match of buffer.matchAll(outcome)) {
      const kind = match[1] as string;
      counted[kind] = (counted[kind] ?? 0) + 1;
      keep = Math.max(keep, (match.index ?? 0) + match[0].length);
    }
    buffer = buffer.slice(keep);
  }
  buffer += decoder.decode();
  if (head === null) throw new Error(`the answer had no items: ${buffer.slice(0, 500)}`);
  if (!buffer.endsWith("]}")) throw new Error(`the answer ended unfinished: …${buffer.slice(-200)}`);
  return { head, counted, bytes };
}

// ---------------------------------------------------------------------------------------------------------------
// The ceiling

const STAGED_COLUMNS = [
  "id",
  "statement_id",
  "seq",
  "account",
  "bank_ref",
  "direction",
  "reversal",
  "booking_status",
  "amount",
  "currency",
  "booking_date",
  "value_date",
  "debtor_name",
  "debtor_iban",
  "remittance",
  "creditor_ref",
  "end_to_end_id",
  "return_reason",
  "bank_code",
  "outcome",
  "created_at",
];
const DUPLICATE_COLUMNS = [...STAGED_COLUMNS, "duplicate_of", "detail", "resolved_at"];
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
/** A statement entry as staged (its outcome `staged`), and what became of it. */
const ENTRY_SELECT = `select e.id, e.statement_id, e.seq, e.account, e.bank_ref, e.direction, e.reversal, e.booking_status,
    e.amount::text as amount, e.currency, e.booking_date::text as booking_date, e.value_date::text as value_date,
    e.debtor_name, e.debtor_iban, e.remittance, e.creditor_ref, e.end_to_end_id, e.return_reason, e.bank_code,
    'staged' as outcome, e.created_at, e.outcome as final_outcome, e.detail, e.matched_by, e.payment_id,
    e.billing_account_id, e.candidates, e.resolved_at, e.duplicate_of
  from statement_entries e where e.statement_id = $1 order by e.seq`;

interface CeilingChunk {
  staged: postgres.Row[];
  /** billsQuoted's parameter: the tokens quoted (JSON). */
  tokens: string;
  ibans: string[];
  /** lockAccounts' parameter: the keys of the accounts paid (JSON); openItemsOf's: the accounts. */
  lockKeys: string;
  accounts: string[];
  entries: postgres.Row[];
  payments: postgres.Row[];
  allocations: postgres.Row[];
  invoices: string[];
  /** writeResolutions' parameter (JSON). */
  resolutions: string;
  resolvedAt: string;
}

interface CeilingStatement {
  statement: postgres.Row;
  chunks: CeilingChunk[];
  entries: number;
}

interface BareResult {
  entries: number;
  ms: number;
  chunkMs: number[];
}

/** The engine's rows of a statement per apply chunk (its entries in file order), read before the ceiling's clock. */
async function ceilingPlan(sql: postgres.Sql, statementId: string): Promise<CeilingStatement> {
  const [statement] = await sql`select * from bank_statements where id = ${statementId}`;
  const entries = await sql.unsafe(ENTRY_SELECT, [statementId]);
  const paymentRows = await sql`
    select p.* from payments p join statement_entries e on e.payment_id = p.id
    where e.statement_id = ${statementId} order by e.seq`;
  const ledgerRows = await sql`
    select r.id, r.billing_account_id, r.kind, r.amount::text as amount, r.currency, r.invoice_id, r.at, r.description
    from receivable_entries r join statement_entries e on e.payment_id = r.id
    where e.statement_id = ${statementId} order by e.seq`;
  const allocationRows = await sql`
    select a.id, a.billing_account_id, a.invoice_id, a.debit_entry_id, a.entry_id, a.amount::text as amount,
      a.reverses, a.at
    from allocations a join statement_entries e on e.payment_id = a.entry_id
    where e.statement_id = ${statementId} order by e.seq, a.id`;
  const byPayment = <T extends postgres.Row>(rows: readonly T[], key: string) => {
    const map = new Map<string, T[]>();
    for (const row of rows) map.set(row[key] as string, [...(map.get(row[key] as string) ?? []), row]);
    return map;
  };
  const payments = byPayment(paymentRows, "id");
  const ledger = byPayment(ledgerRows, "id");
  const allocations = byPayment(allocationRows, "entry_id");
  const chunks: CeilingChunk[] = [];
  for (let from = 0; from < entries.length; from += APPLY_CHUNK) {
    const rows = entries.slice(from, from + APPLY_CHUNK);
    const paid = rows.filter((row) => row.payment_id !== null);
    const accounts = [...new Set(paid.map((row) => row.billing_account_id as string))].sort();
    const chunkAllocations = paid.flatMap((row) => allocations.get(row.payment_id) ?? []);
    chunks.push({
      staged: rows.map((row) => Object.fromEntries(STAGED_COLUMNS.map((column) => [column, row[column]]))),
      tokens: JSON.stringify([
        ...new Set(rows.flatMap((row) => (row.creditor_ref === null ? [] : [row.creditor_ref as string]))),
      ]),
      ibans: [...new Set(rows.flatMap((row) => (row.debtor_iban === null ? [] : [row.debtor_iban as string])))],
      lockKeys: JSON.stringify(accounts.map((id) => `bill:${id}`)),
      accounts,
      entries: paid.flatMap((row) => ledger.get(row.payment_id) ?? []),
      payments: paid.flatMap((row) => payments.get(row.payment_id) ?? []),
      allocations: chunkAllocations,
      invoices: [
        ...new Set(chunkAllocations.flatMap((row) => (row.invoice_id === null ? [] : [row.invoice_id as string]))),
      ],
      resolutions: JSON.stringify(
        rows.map((row) => ({
          id: row.id,
          outcome: row.final_outcome,
          detail: row.detail,
          matched_by: row.matched_by,
          payment_id: row.payment_id,
          billing_account_id: row.billing_account_id,
          candidates: row.candidates,
        })),
      ),
      resolvedAt: (rows[0]?.resolved_at as Date | undefined)?.toISOString() ?? PAID_AT,
    });
  }
  return { statement: statement as postgres.Row, chunks, entries: entries.length };
}

/** The re-import's rows per staging chunk: as staged, the originals' keys, the duplicates as the engine wrote them. */
async function duplicatePlan(
  sql: postgres.Sql,
  statementId: string,
): Promise<{
  statement: postgres.Row;
  chunks: Array<{ staged: postgres.Row[]; refs: string; duplicates: postgres.Row[] }>;
}> {
  const [statement] = await sql`select * from bank_statements where id = ${statementId}`;
  const entries = await sql.unsafe(ENTRY_SELECT, [statementId]);
  const chunks: Array<{ staged: postgres.Row[]; refs: string; duplicates: postgres.Row[] }> = [];
  for (let from = 0; from < entries.length; from += STAGE_CHUNK) {
    const rows = entries.slice(from, from + STAGE_CHUNK);
    chunks.push({
      staged: rows.map((row) => Object.fromEntries(STAGED_COLUMNS.map((column) => [column, row[column]]))),
      refs: JSON.stringify(rows.map((row) => ({ account: row.account, ref: row.bank_ref }))),
      duplicates: rows.map((row) =>
        Object.fromEntries(
          DUPLICATE_COLUMNS.map((column) => [column, column === "outcome" ? row.final_outcome : row[column]]),
        ),
      ),
    });
  }
  return { statement: statement as postgres.Row, chunks };
}

/** Numbered parameters $from…, one per value: how drizzle sends an `in (…)` list. */
const params = (count: number, from: number, cast = "") =>
  Array.from({ length: count }, (_, index) => `$${index + from}${cast}`).join(", ");

/** The statement's row, inserted as the engine does on arrival. */
async function bareStatementRow(sql: postgres.Sql, statement: postgres.Row): Promise<void> {
  await sql`insert into bank_statements (id, status, created_at)
    values (${statement.id}, 'receiving', ${statement.created_at as Date})`;
}

async function bareStatementDone(sql: postgres.Sql, statement: postgres.Row): Promise<void> {
  await sql`update bank_statements set statement_ref = ${statement.statement_ref}, account = ${statement.account},
    message_id = ${statement.message_id}, entries = ${statement.entries}, status = ${statement.status},
    completed_at = ${statement.completed_at as Date} where id = ${statement.id}`;
}

/** The ceiling of an import: per apply chunk, one transaction of the same statements with no logic between them. */
async function bareImport(sql: postgres.Sql, plan: CeilingStatement): Promise<BareResult> {
  const paymentColumns = Object.keys(plan.chunks.find((chunk) => chunk.payments.length > 0)?.payments[0] ?? {});
  const chunkMs: number[] = [];
  const started = performance.now();
  await bareStatementRow(sql, plan.statement);
  for (const chunk of plan.chunks) {
    const chunkStarted = performance.now();
    await sql.begin(async (tx) => {
      // stage: the multi-row insert, duplicates skipped by the live (account, bank_ref) index.
      await tx`insert into statement_entries ${tx(chunk.staged, STAGED_COLUMNS)}
        on conflict (account, bank_ref) where duplicate_of is null do nothing returning id`;
      // billsQuoted.
      await tx.unsafe(
        `select id, billing_account_id, number, payment_reference, currency from invoices
        where kind <> 'creditNote' and (payment_reference in (select jsonb_array_elements_text($1::jsonb))
          or number in (select jsonb_array_elements_text($2::jsonb)))`,
        [chunk.tokens, chunk.tokens],
      );
      // accountsByIban: payment methods and mandates.
      if (chunk.ibans.length > 0) {
        await tx.unsafe(
          `select iban, billing_account_id from payment_methods
          where iban in (${params(chunk.ibans.length, 1)}) and state = $${chunk.ibans.length + 1}`,
          [...chunk.ibans, "active"],
        );
        await tx.unsafe(
          `select iban, billing_account_id from mandates where iban in (${params(chunk.ibans.length, 1)})`,
          [...chunk.ibans],
        );
      }
      if (chunk.accounts.length > 0) {
        // lockAccounts.
        await tx.unsafe(
          `select count(pg_advisory_xact_lock(hashtextextended(key, 0)))
          from (select key from jsonb_array_elements_text($1::jsonb) as key order by key) as ordered`,
          [chunk.lockKeys],
        );
        // openItemsOf.
        const n = chunk.accounts.length;
        await tx.unsafe(
          `select 'invoice' as kind, false as cost, i.id, i.billing_account_id, i.currency,
            (i.gross - coalesce(t.applied, 0))::text as open,
            i.due_date::text as due_date, e.seq, i.number, i.payment_reference, i.state = 'onHold' as on_hold
          from invoices i join receivable_entries e on e.invoice_id = i.id
          left join allocation_totals t on t.side = 'target' and t.id = i.id
          where i.billing_account_id in (${params(n, 1, "::uuid")}) and i.kind <> 'creditNote'
          union all
          select 'entry', e.kind = 'fee', e.id, e.billing_account_id, e.currency,
            (e.amount - coalesce(t.applied, 0))::text,
            (e.at at time zone 'UTC')::date::text, e.seq, null, null, false
          from receivable_entries e left join allocation_totals t on t.side = 'target' and t.id = e.id
          where e.billing_account_id in (${params(n, n + 1, "::uuid")}) and e.amount > 0 and e.invoice_id is null`,
          [...chunk.accounts, ...chunk.accounts],
        );
      }
      if (chunk.entries.length > 0) {
        await tx`insert into receivable_entries ${tx(chunk.entries, ENTRY_COLUMNS)}`;
        await tx`insert into payments ${tx(chunk.payments, paymentColumns)}`;
      }
      if (chunk.allocations.length > 0) {
        await tx`insert into allocations ${tx(chunk.allocations, ALLOCATION_COLUMNS)}`;
      }
      if (chunk.invoices.length > 0) {
        // settleMany (nextStates), as the engine sends it: the invoices as a list of parameters.
        await tx.unsafe(
          `with next as (select i.id, case
              when i.kind <> 'creditNote' and coalesce(t.applied, 0) > 0 and coalesce(t.applied, 0) >= i.gross then 'settled'
              when i.kind <> 'creditNote' and coalesce(t.applied, 0) > 0 then 'partiallyPaid'
              when i.sent_at is null then 'validated' else 'sent' end as state
            from invoices i left join allocation_totals t on t.side = 'target' and t.id = i.id
            where i.id in (${params(chunk.invoices.length, 1, "::uuid")}))
          update invoices i set state = next.state, state_changed_at = $${chunk.invoices.length + 1}::timestamptz
          from next where i.id = next.id and i.state <> 'onHold' and i.state <> next.state returning i.id`,
          [...chunk.invoices, chunk.resolvedAt],
        );
      }
      // writeResolutions.
      await tx.unsafe(
        `update statement_entries e set outcome = r.outcome, detail = r.detail,
          matched_by = r.matched_by, payment_id = r.payment_id, billing_account_id = r.billing_account_id,
          candidates = r.candidates, resolved_at = $1::timestamptz
        from jsonb_to_recordset($2::jsonb)
          as r(id uuid, outcome text, detail text, matched_by text, payment_id uuid, billing_account_id uuid, candidates jsonb)
        where e.id = r.id`,
        [chunk.resolvedAt, chunk.resolutions],
      );
    });
    chunkMs.push(performance.now() - chunkStarted);
  }
  await bareStatementDone(sql, plan.statement);
  return { entries: plan.entries, ms: performance.now() - started, chunkMs };
}

/** The re-import's ceiling: per staging chunk the insert (nothing new), the originals, the duplicates' insert. */
async function bareReimport(sql: postgres.Sql, plan: Awaited<ReturnType<typeof duplicatePlan>>): Promise<BareResult> {
  const chunkMs: number[] = [];
  let entries = 0;
  const started = performance.now();
  await bareStatementRow(sql, plan.statement);
  for (const chunk of plan.chunks) {
    const chunkStarted = performance.now();
    await sql`insert into statement_entries ${sql(chunk.staged, STAGED_COLUMNS)}
      on conflict (account, bank_ref) where duplicate_of is null do nothing returning id`;
    await sql.unsafe(
      `select e.id, e.account, e.bank_ref, e.statement_id from statement_entries e
      join jsonb_to_recordset($1::jsonb) as r(account text, ref text) on e.account = r.account and e.bank_ref = r.ref
      where e.duplicate_of is null`,
      [chunk.refs],
    );
    await sql`insert into statement_entries ${sql(chunk.duplicates, DUPLICATE_COLUMNS)}`;
    entries += chunk.staged.length;
    chunkMs.push(performance.now() - chunkStarted);
  }
  await bareStatementDone(sql, plan.statement);
  return { entries, ms: performance.now() - started, chunkMs };
}

// ---------------------------------------------------------------------------------------------------------------
// Seeding, checks, figures

/** The inspector's sampling profiler on this process (the engine and the client). */
async function startProfile(): Promise<{ stop(path: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return {
    async stop(path) {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(path, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Account n's bill (the accounts in the generator's order) with its payment reference. */
async function billsOf(sql: postgres.Sql, accountIds: string[]): Promise<Bill[]> {
  const rows = await sql<{ account: string; id: string; reference: string; gross: string }[]>`
    select billing_account_id as account, id, payment_reference as reference, (gross * 100)::bigint::text as gross
    from invoices where kind = 'cycle'`;
  const byAccount = new Map(rows.map((row) => [row.account, row]));
  return accountIds.flatMap((accountId, n) => {
    const row = byAccount.get(accountId);
    return row === undefined
      ? []
      : [{ n, accountId, invoiceId: row.id, reference: row.reference, grossCents: Number(row.gross) }];
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

async function check(input: {
  sql: postgres.Sql;
  ceilingSql: postgres.Sql;
  imports: Imported[];
  again: Imported;
  before: postgres.Row | undefined;
  after: postgres.Row | undefined;
  accounts: number;
}): Promise<string[]> {
  const { sql, imports, again } = input;
  const failures: string[] = [];
  const expected = (plan: StatementPlan) =>
    JSON.stringify(
      plan.unmatched > 0 ? { matched: plan.matched, unmatched: plan.unmatched } : { matched: plan.matched },
    );
  const sorted = (outcomes: Record<string, number>) =>
    JSON.stringify(Object.fromEntries(Object.entries(outcomes).sort(([a], [b]) => a.localeCompare(b))));
  for (const imported of imports) {
    const want = expected(imported.plan);
    if (sorted(imported.counted) !== want || sorted(imported.outcomes) !== want) {
      failures.push(
        `statement ${imported.plan.name}: answered ${JSON.stringify(imported.counted)}, counts ${JSON.stringify(imported.outcomes)}; expected ${want}`,
      );
    }
    const [rows] = await sql`
      select count(*) filter (where e.outcome = 'matched' and e.matched_by = 'reference' and p.id is not null
          and p.amount = e.amount and t.applied = p.amount and i.state = 'settled' and i.id = a.invoice_id)::int as paid,
        count(*) filter (where e.outcome = 'unmatched' and e.payment_id is null)::int as unmatched
      from statement_entries e left join payments p on p.id = e.payment_id
        left join allocations a on a.entry_id = p.id
        left join allocation_totals t on t.side = 'credit' and t.id = p.id
        left join invoices i on i.payment_reference = e.creditor_ref
      where e.statement_id = ${imported.statementId}`;
    if (rows?.paid !== imported.plan.matched || rows?.unmatched !== imported.plan.unmatched) {
      failures.push(`statement ${imported.plan.name}: rows ${JSON.stringify(rows)} for ${expected(imported.plan)}`);
    }
  }
  const matched = imports.reduce((sum, imported) => sum + imported.plan.matched, 0);
  const matchedCents = imports.reduce((sum, imported) => sum + imported.plan.matchedCents, 0);
  const [totals] = await sql`
    select (select count(*) from payments)::int as payments,
      (select count(*) from receivable_entries where kind = 'payment')::int as entries,
      (select count(*) from allocations)::int as allocations,
      (select (coalesce(sum(amount), 0) * 100)::bigint::text from allocations) as allocated,
      (select count(*) from invoices where state = 'settled')::int as settled,
      (select count(*) from invoices where state = 'sent')::int as sent`;
  if (
    totals?.payments !== matched ||
    totals?.entries !== matched ||
    totals?.allocations !== matched ||
    totals?.allocated !== String(matchedCents) ||
    totals?.settled !== matched ||
    totals?.sent !== input.accounts - matched
  ) {
    failures.push(`totals ${JSON.stringify(totals)}; expected ${matched} payments of ${matchedCents} cents`);
  }
  if (
    sorted(again.counted) !== JSON.stringify({ duplicate: again.plan.entries }) ||
    sorted(again.outcomes) !== JSON.stringify({ duplicate: again.plan.entries }) ||
    JSON.stringify(input.before) !== JSON.stringify(input.after)
  ) {
    failures.push(
      `imported again: answered ${JSON.stringify(again.counted)}, counts ${JSON.stringify(again.outcomes)}; rows ${JSON.stringify(input.before)} → ${JSON.stringify(input.after)}`,
    );
  }
  // The ceiling's copy: the same rows and states.
  const shape = `select (select count(*) from payments)::int as payments, (select count(*) from allocations)::int as allocations,
      (select coalesce(sum(amount), 0) from allocations)::text as allocated,
      (select count(*) from receivable_entries)::int as entries,
      (select count(*) from invoices where state = 'settled')::int as settled,
      (select string_agg(outcome || ' ' || n, ', ' order by outcome)
        from (select outcome, count(*) as n from statement_entries group by outcome) o) as outcomes`;
  const [engine] = await sql.unsafe(shape);
  const [bare] = await input.ceilingSql.unsafe(shape);
  if (JSON.stringify({ ...engine }) !== JSON.stringify({ ...bare })) {
    failures.push(`ceiling's copy ${JSON.stringify(bare)}, engine's ${JSON.stringify(engine)}`);
  }
  return failures;
}

/** Per statement of an apply chunk: how many per chunk, the p50 of its own time, its mean own time per chunk, its share. */
function statementBreakdown(chunks: Chunk[]): Row[] {
  const byKey = new Map<string, number[]>();
  for (const chunk of chunks) {
    for (const statement of chunk.statements) {
      const times = byKey.get(statement.key) ?? [];
      times.push(statement.ownMs);
      byKey.set(statement.key, times);
    }
  }
  const totalMs = chunks.reduce((sum, chunk) => sum + chunk.dbMs, 0);
  const wallMs = chunks.reduce((sum, chunk) => sum + chunk.wallMs, 0);
  const per = Math.max(1, chunks.length);
  const rows: Row[] = [...byKey]
    .map(([key, times]) => ({ kind: STATEMENT_KINDS.get(key), times, sum: times.reduce((s, ms) => s + ms, 0) }))
    .sort((a, b) => b.sum - a.sum)
    .slice(0, 20)
    .map(({ kind, times, sum }) => ({
      statement: kind?.label ?? "?",
      "per chunk": (times.length / per).toFixed(2),
      "p50 ms": percentile(
        [...times].sort((a, b) => a - b),
        50,
      ).toFixed(2),
      "ms per chunk": (sum / per).toFixed(1),
      share: `${((100 * sum) / Math.max(1, totalMs)).toFixed(1)} %`,
      sql: kind?.sql ?? "",
    }));
  rows.push({
    statement: "(outside the database: Node)",
    "per chunk": "",
    "p50 ms": "",
    "ms per chunk": ((wallMs - totalMs) / per).toFixed(1),
    share: `${((100 * (wallMs - totalMs)) / Math.max(1, wallMs)).toFixed(1)} % of wall`,
    sql: "",
  });
  return rows;
}

export function printStatements([seed, rows, breakdown]: Row[][]): void {
  process.stdout.write(
    `\nbench/statements (${new Date().toISOString()}, Node ${process.version}, PostgreSQL on loopback, load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(
        " ",
      )})\n\nseeded\n${table(seed ?? [])}\n\nimport\n${table(rows ?? [])}\n\nstatements of an apply chunk of ${APPLY_CHUNK} (main statement) by their own database time (the 20 largest)\n${table(
      breakdown ?? [],
    )}\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printStatements(await benchStatements());
}
