/**
 * bench/invoices: issuing one account's cycle invoice on PostgreSQL — InvoicesService.issueCycle, which composes the
 * bill and writes it (invoice, lines, receivables entry, usage summaries' marks, one-time charges billed, the
 * subscriber's message) in one transaction, then delivers the message and answers the bill.
 *
 * Budget (issue 24): one account's monthly invoice (10 lines, 20 usage summaries) in ≤ 5 ms of database time.
 *
 * Set-up: the engine built in this process (buildApp, as test/support/engine.ts does) on a fresh database
 * (BENCH_DATABASE_URL) and Redis (BENCH_REDIS_URL, a key prefix of its own), with a ManualClock and a message channel
 * that accepts every message. Accounts go in through the front door like a CRM's: per account a customer with a
 * mobile contact, a postpaid account (cycle day 1, Europe/Berlin, DE) and two line orders placed on 17 March 2027
 * and fulfilled — Postpaid M with the Data 5 GB add-on, and Postpaid M alone. Their first invoice has 10 lines
 * besides usage: per line March prorated and April in advance for each recurring price (plan 2 + 2, add-on 2) and
 * the SIM and activation fees (2 + 2). Usage: 20 summaries per account (10 per line: voice to six destinations
 * and roaming, SMS national and international, data), 10 rated rows each, written by the engine's own
 * `recordRated` (the rating transaction's statement), every one charged: each summary is a usage line, 30 lines.
 * The clock then moves to 1 April 08:00 and each account's invoice is issued with
 * `app.services.invoices.issueCycle(SYSTEM_ACTOR, accountId, {})`, one at a time: BENCH_INVOICES_WARM (20) first,
 * not measured, then BENCH_INVOICES (200).
 *
 * Database time (bench/support/db-time.ts): the engine's postgres.js client is wrapped for the run, and every
 * statement of one issue (the reads before the transaction, BEGIN … COMMIT, the delivery and the answer after it)
 * is timed from the driver being asked to run it until its result is back in the engine: a client-side round
 * trip on loopback. Per issue the union of those intervals is its database time (pipelined statements overlap
 * once). The ceiling row is one `select 1` round trip through the same client: the least any statement costs
 * (five before each measured issue, so both see the same machine); the round-trips row counts two for each
 * statement with parameters sent unprepared, as drizzle sends them (postgres.js then asks the server for the
 * parameter types before it binds them), and multiplies by the ceiling: what the round trips alone cost. The
 * second table breaks the database time down by statement text, each statement with its own share (pipelined ones
 * split what they overlap). BENCH_INVOICES_TRACE=1 adds the median issue statement by statement;
 * BENCH_INVOICES_PREPARED=1 is a labelled what-if with every statement prepared (not the engine as it is);
 * BENCH_INVOICES_KEEP=1 keeps a copy of the database (EXPLAIN). About 40 s on 2 cores, most of it seeding.
 *
 * Checks (the run fails if one does not hold): every issue answered "issued"; each account has exactly one invoice
 * with 30 lines (line_count and rows); numbers DE-INV-2027-000001…N without gaps; one receivables entry per
 * invoice, its amount the invoice's gross, and the ledger's sum the sum of the grosses; every summary billed to
 * its last row, every one-time charge billed; summaries still equal their rated rows (test/support's check).
 */

import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { sql as drizzleSql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import postgres from "postgres";
import { buildApp } from "../src/app.js";
import type { InvoicesService } from "../src/modules/billing/index.js";
import type { RatedResult } from "../src/modules/charging/rating.service.js";
import { recordRated } from "../src/modules/charging/summaries.js";
import { SYSTEM_ACTOR } from "../src/platform/audit.js";
import { ManualClock } from "../src/platform/clock.js";
import { billPeriod } from "../src/shared/calendar.js";
import { simRecord } from "../test/support/fixtures.js";
import { RecordingChannel } from "../test/support/recording-channel.js";
import { describeProblems, SUMMARY_CHECK, type SummaryProblems } from "../test/support/summaries.js";
import { measureStatements, type TimedStatement, timeStatementsOf } from "./support/db-time.js";
import { percentile } from "./support/figures.js";
import { benchConfig, freshDatabase, table } from "./support/servers.js";

const databaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const MEASURED = Number(process.env.BENCH_INVOICES ?? 200);
const WARM = Number(process.env.BENCH_INVOICES_WARM ?? 20);
const SEED_CONCURRENCY = 8;
const ORDERED_AT = "2027-03-17T09:00:00Z";
const ISSUED_AT = "2027-04-01T08:00:00Z";
const USAGE_PERIOD = billPeriod(Date.parse("2027-03-20T12:00:00Z"), 1, "Europe/Berlin");
const CHARGE_LINES = 10;
const SUMMARIES = 20;
const ROWS_PER_SUMMARY = 10;
const GOAL_MS = 5;
/** BENCH_INVOICES_PREPARED=1: a what-if, every statement sent prepared (bench/support/db-time.ts); labelled so. */
const WHAT_IF_PREPARED = process.env.BENCH_INVOICES_PREPARED === "1";
/** Per line: (record type, destination, roaming), each its own summary key. */
const USAGE_KINDS: ReadonlyArray<[string, string | null, string, number]> = [
  ["voice", "national", "home", 0.09],
  ["voice", "national-mobile", "home", 0.09],
  ["voice", "premium", "home", 0.99],
  ["voice", "international-eu", "home", 0.19],
  ["voice", "international-na", "home", 0.29],
  ["voice", "international-world", "home", 0.99],
  ["voice", null, "eu", 0.05],
  ["sms", "national-mobile", "home", 0.09],
  ["sms", null, "home", 0.19],
  ["data", null, "home", 0.02],
];

export async function benchInvoices(): Promise<Record<string, string | number>[][]> {
  const database = await freshDatabase(databaseUrl, `bss_bench_invoices_${process.pid}`);
  const prefix = `bench:${process.pid}:invoices:`;
  const clock = new ManualClock(ORDERED_AT);
  const config = benchConfig(database.url, redisUrl, prefix);
  const app = await buildApp(config, {
    clock,
    logger: false,
    messageChannel: new RecordingChannel(),
    orderFulfilment: "manual",
  });
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const total = WARM + MEASURED;
    const seedStarted = performance.now();
    const accounts = await seedAccounts(app, total);
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    const settings = await sql`select current_setting('synchronous_commit') as sc, current_setting('fsync') as fs`;

    timeStatementsOf(app.database.db, { prepared: WHAT_IF_PREPARED });
    clock.set(ISSUED_AT);
    // buildApp decorates services with the invoices service; AppServices does not declare it (yet).
    const { invoices } = app.services as typeof app.services & { invoices: InvoicesService };
    const issue = (accountId: string) => measureStatements(() => invoices.issueCycle(SYSTEM_ACTOR, accountId, {}));
    const statuses = new Map<string, number>();
    const count = (status: string) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    for (const accountId of accounts.slice(0, WARM)) count((await issue(accountId)).result.status);
    // The ceiling: one round trip through the same client and pool, a statement that does nothing.
    const ping = async () => (await measureStatements(() => app.database.db.execute(drizzleSql`select 1`))).dbMs;
    for (let i = 0; i < 100; i++) await ping();
    const pings: number[] = [];
    const runs: Array<{ wallMs: number; dbMs: number; statements: TimedStatement[] }> = [];
    for (const accountId of accounts.slice(WARM)) {
      for (let i = 0; i < 5; i++) pings.push(await ping());
      const run = await issue(accountId);
      count(run.result.status);
      runs.push(run);
    }

    const failures = await check(sql, accounts, statuses);
    const rows = figures(runs, pings, String(settings[0]?.sc), String(settings[0]?.fs), seedSeconds, failures);
    const breakdown = statementBreakdown(runs);
    // BENCH_INVOICES_TRACE=1 prints the statements of the median issue in order, as a third table.
    const trace = process.env.BENCH_INVOICES_TRACE ? [medianIssue(runs)] : [];
    if (failures.length > 0) {
      throw new Error(`bench/invoices: checks failed: ${failures.join("; ")}\n${table(rows)}\n${table(breakdown)}`);
    }
    return [rows, breakdown, ...trace];
  } finally {
    await sql.end({ timeout: 2 });
    await app.close();
    // BENCH_INVOICES_KEEP=1 keeps a copy of the database for a look at the statements (EXPLAIN) after the run.
    if (process.env.BENCH_INVOICES_KEEP) {
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

/** Accounts with two active lines each (orders through the API) and 20 usage summaries; their ids. */
async function seedAccounts(app: FastifyInstance, total: number): Promise<string[]> {
  await app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const key = (await app.services.access.create(SYSTEM_ACTOR, { name: "bench admin", role: "admin" })).key;
  const call = async (method: string, url: string, body?: unknown) => {
    const response = await app.inject({
      method: method as "POST",
      url,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    if (response.statusCode >= 300) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
    return response.json() as Record<string, unknown>;
  };
  const lines = 2 * total;
  await call("POST", "/api/v1/inventory/number-ranges", {
    from: "+4915100000000",
    to: `+49151${String(lines - 1).padStart(8, "0")}`,
  });
  for (let from = 0; from < lines; from += 1_000) {
    const batch = Array.from({ length: Math.min(1_000, lines - from) }, (_, index) => simRecord(from + index + 1));
    await call("POST", "/api/v1/inventory/sim-imports", batch);
  }
  const one = async (index: number): Promise<string> => {
    const party = await call("POST", "/tmf-api/party/v4/individual", { givenName: "Bench", familyName: `No ${index}` });
    const customer = await call("POST", "/tmf-api/customerManagement/v4/customer", {
      name: `Bench ${index}`,
      engagedParty: { id: party.id, "@referredType": "Individual" },
      contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+4915799999999" } }],
    });
    const account = await call("POST", "/tmf-api/accountManagement/v4/billingAccount", {
      name: `Bench ${index}`,
      relatedParty: [{ id: customer.id, "@referredType": "Customer" }],
      accountType: "postpaid",
      currency: "EUR",
      billCycleDay: 1,
      timeZone: "Europe/Berlin",
      taxJurisdiction: "DE",
      creditLimit: { unit: "EUR", value: 500 },
    });
    const accountId = account.id as string;
    for (const items of [
      [
        { id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } },
        {
          id: "2",
          action: "add",
          productOffering: { id: "addon-data-5gb" },
          productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
        },
      ],
      [{ id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } }],
    ]) {
      const order = await call("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
        billingAccount: { id: accountId },
        productOrderItem: items,
      });
      await app.services.orders.fulfil(SYSTEM_ACTOR, order.id as string);
    }
    return accountId;
  };
  const accounts: string[] = new Array(total);
  let next = 0;
  await Promise.all(
    Array.from({ length: SEED_CONCURRENCY }, async () => {
      for (let index = next++; index < total; index = next++) accounts[index] = await one(index);
    }),
  );

  // Usage: the engine's own statement for rated rows and their summaries, a few thousand rows at a time.
  const plans = await app.database.db.execute(
    drizzleSql`select id::text, billing_account_id::text as account, status from products where kind = 'plan'
      order by billing_account_id, id`,
  );
  const byAccount = new Map<string, string[]>();
  for (const row of plans as unknown as Array<{ id: string; account: string; status: string }>) {
    if (row.status !== "active") throw new Error(`line ${row.id} is ${row.status}, not active`);
    byAccount.set(row.account, [...(byAccount.get(row.account) ?? []), row.id]);
  }
  const rated: RatedResult[] = [];
  const startMs = Date.parse("2027-03-18T07:00:00Z");
  for (const accountId of accounts) {
    const productIds = byAccount.get(accountId) ?? [];
    if (productIds.length !== 2) throw new Error(`account ${accountId} has ${productIds.length} lines, not 2`);
    for (const productId of productIds) {
      for (const [kind, [recordType, destination, roaming, price]] of USAGE_KINDS.entries()) {
        for (let n = 0; n < ROWS_PER_SUMMARY; n++) {
          const quantity = recordType === "voice" ? 60 + 17 * n : recordType === "sms" ? 1 : 1_048_576 * (n + 1);
          const units = recordType === "data" ? n + 1 : recordType === "voice" ? Math.ceil(quantity / 60) : 1;
          rated.push({
            usageId: randomUUID(),
            billingAccountId: accountId,
            productId,
            startedAt: new Date(startMs + (kind * ROWS_PER_SUMMARY + n) * 3_600_000).toISOString(),
            tariffId: "tariff-de-eur",
            tariffVersion: 1,
            recordType,
            destination,
            roaming,
            quantity,
            allowanceUnits: 0,
            chargedUnits: quantity,
            draws: [],
            amount: (units * price).toFixed(2),
            currency: "EUR",
            prepaid: false,
            spendPeriod: USAGE_PERIOD.key,
          });
        }
      }
    }
  }
  for (let from = 0; from < rated.length; from += 4_000) {
    const batch = rated.slice(from, from + 4_000);
    await app.database.transaction((tx) => recordRated(tx, batch, ORDERED_AT));
  }
  return accounts;
}

async function check(sql: postgres.Sql, accounts: string[], statuses: Map<string, number>): Promise<string[]> {
  const failures: string[] = [];
  const n = accounts.length;
  if (statuses.get("issued") !== n) failures.push(`answers ${JSON.stringify(Object.fromEntries(statuses))}`);
  const [perAccount] = await sql`
    select count(distinct billing_account_id)::int as accounts, count(*)::int as invoices,
      count(*) filter (where line_count <> ${CHARGE_LINES + SUMMARIES})::int as wrong_count
    from invoices where kind = 'cycle'`;
  if (perAccount?.accounts !== n || perAccount?.invoices !== n || perAccount?.wrong_count !== 0) {
    failures.push(`invoices ${JSON.stringify(perAccount)} for ${n} accounts`);
  }
  const [lines] = await sql`
    select count(*)::int as invoices_off from invoices i
    where (select count(*) from invoice_lines l where l.invoice_id = i.id) <> ${CHARGE_LINES + SUMMARIES}
      or (select count(*) from invoice_lines l where l.invoice_id = i.id and l.kind = 'usage') <> ${SUMMARIES}`;
  if (lines?.invoices_off !== 0) failures.push(`${lines?.invoices_off} invoices without 10 + 20 lines`);
  const numbers = (await sql`select number from invoices order by seq`).map((row) => row.number as string);
  const expected = Array.from({ length: n }, (_, i) => `DE-INV-2027-${String(i + 1).padStart(6, "0")}`);
  if (numbers.join() !== expected.join()) failures.push(`numbers not DE-INV-2027-000001…${n}: ${numbers.slice(0, 3)}…`);
  const [ledger] = await sql`
    select (select sum(gross) from invoices)::text as gross, (select sum(amount) from receivable_entries)::text as ledger,
      (select count(*) from invoices i where (select count(*) from receivable_entries e
        where e.invoice_id = i.id and e.kind = 'invoice' and e.amount = i.gross) <> 1)::int as unmatched`;
  if (ledger?.gross !== ledger?.ledger || ledger?.unmatched !== 0 || ledger?.gross === null) {
    failures.push(`ledger ${JSON.stringify(ledger)}`);
  }
  const [billed] = await sql`
    select (select count(*) from usage_summaries where billed_seq <> last_seq)::int as summaries,
      (select count(*) from usage_summaries)::int as all_summaries,
      (select count(*) from one_time_charges where billed_at is null)::int as charges`;
  if (billed?.summaries !== 0 || billed?.charges !== 0 || billed?.all_summaries !== n * SUMMARIES) {
    failures.push(`left unbilled ${JSON.stringify(billed)}`);
  }
  const [problems] = await sql.unsafe<SummaryProblems[]>(SUMMARY_CHECK);
  const problem = describeProblems(problems);
  if (problem !== null) failures.push(problem);
  return failures;
}

function figures(
  runs: Array<{ wallMs: number; dbMs: number; statements: TimedStatement[] }>,
  pings: number[],
  synchronousCommit: string,
  fsync: string,
  seedSeconds: number,
  failures: string[],
): Record<string, string | number>[] {
  const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
  const row = (measure: string, values: number[], digits: number, goal = "") => {
    const s = sorted(values);
    return {
      measure,
      p50: percentile(s, 50).toFixed(digits),
      p95: percentile(s, 95).toFixed(digits),
      p99: percentile(s, 99).toFixed(digits),
      mean: (s.reduce((sum, v) => sum + v, 0) / Math.max(1, s.length)).toFixed(digits),
      goal,
    };
  };
  const db = sorted(runs.map((run) => run.dbMs));
  const statements = runs.map((run) => run.statements.length);
  const trips = runs.map((run) => run.statements.reduce((sum, statement) => sum + statement.roundTrips, 0));
  const dbP50 = percentile(db, 50);
  const share = runs.reduce((sum, run) => sum + run.dbMs, 0) / runs.reduce((sum, run) => sum + run.wallMs, 0);
  return [
    row("ceiling: one round trip, select 1 (ms)", pings, 3),
    row(
      `database time per issue, ms (${runs.length} accounts, 10 lines + 20 usage summaries)${WHAT_IF_PREPARED ? " WHAT-IF: statements prepared" : ""}`,
      db,
      2,
      `≤ ${GOAL_MS} ms p50: ${dbP50 <= GOAL_MS ? "met" : "MISSED"}`,
    ),
    row(
      "wall time of issueCycle, ms",
      runs.map((run) => run.wallMs),
      2,
    ),
    row("statements per issue (BEGIN and COMMIT included)", statements, 0),
    row(
      "network round trips per issue (2 for a statement with parameters sent unprepared)",
      trips,
      0,
      `× select 1 p50: ${(percentile(sorted(trips), 50) * percentile(sorted(pings), 50)).toFixed(2)} ms of round trips alone`,
    ),
    row(
      "database share of wall time, %",
      runs.map((run) => (100 * run.dbMs) / run.wallMs),
      1,
      `overall ${(100 * share).toFixed(1)} %`,
    ),
    {
      measure: `method: client round trip per statement (driver asked → result back), union per issue; synchronous_commit=${synchronousCommit}, fsync=${fsync}; seeding ${seedSeconds.toFixed(1)} s`,
      p50: "",
      p95: "",
      p99: "",
      mean: "",
      goal: failures.length === 0 ? "checks: all passed" : `checks FAILED: ${failures.length}`,
    },
  ];
}

/**
 * Per statement text: how many per issue, the p50 of its own time (bench/support/db-time.ts: pipelined
 * statements split the time they overlap), its mean own time per issue and its share of the database time.
 */
function statementBreakdown(
  runs: Array<{ dbMs: number; statements: TimedStatement[] }>,
): Record<string, string | number>[] {
  const byText = new Map<string, number[]>();
  const trips = new Map<string, number>();
  for (const run of runs) {
    for (const statement of run.statements) {
      const times = byText.get(statement.text) ?? [];
      times.push(statement.ownMs);
      byText.set(statement.text, times);
      trips.set(statement.text, statement.roundTrips);
    }
  }
  const totalMs = runs.reduce((sum, run) => sum + run.dbMs, 0);
  return [...byText.entries()]
    .map(([text, times]) => ({ text, times, sum: times.reduce((s, ms) => s + ms, 0) }))
    .sort((a, b) => b.sum - a.sum)
    .map(({ text, times, sum }) => ({
      statement: label(text),
      "per issue": (times.length / runs.length).toFixed(2),
      "round trips": trips.get(text) ?? 1,
      "p50 ms": percentile(
        [...times].sort((a, b) => a - b),
        50,
      ).toFixed(3),
      "ms/issue": (sum / runs.length).toFixed(3),
      share: `${((100 * sum) / totalMs).toFixed(1)} %`,
      sql: excerpt(text),
    }));
}

/** The statements of the issue with the median database time, in the order they were sent. */
function medianIssue(runs: Array<{ dbMs: number; statements: TimedStatement[] }>): Record<string, string | number>[] {
  const run = [...runs].sort((a, b) => a.dbMs - b.dbMs)[Math.floor(runs.length / 2)];
  const first = run?.statements[0]?.startMs ?? 0;
  return (run?.statements ?? []).map((statement, index) => ({
    "#": index + 1,
    "sent at ms": (statement.startMs - first).toFixed(3),
    "round trip ms": (statement.endMs - statement.startMs).toFixed(3),
    "own ms": statement.ownMs.toFixed(3),
    statement: label(statement.text),
    sql: excerpt(statement.text),
  }));
}

/** The statement's text, unquoted, on one line and cut short. */
export function excerpt(text: string): string {
  const flat = text.replace(/"/g, "").replace(/\s+/g, " ").trim();
  return flat.length > 110 ? `${flat.slice(0, 107)}...` : flat;
}

/** A statement's kind: its verb and the tables it names. */
export function label(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  if (/^[A-Z ]+$/.test(flat)) return flat;
  const verb = (/^\w+/.exec(flat)?.[0] ?? "?").toLowerCase();
  const tables = [...flat.matchAll(/\b(?:from|join|into|update)\s+"?([a-z_]+)"?/gi)].map((m) => m[1] as string);
  const lock = /pg_advisory_xact_lock/.test(flat) ? " pg_advisory_xact_lock" : "";
  const forUpdate = /\bfor update\b/i.test(flat) ? " for update" : "";
  return `${verb}${lock} ${[...new Set(tables)].join(", ")}${forUpdate}`.trim();
}

export function printInvoices([rows, breakdown, trace]: Record<string, string | number>[][]): void {
  process.stdout.write(
    `\nbench/invoices (${new Date().toISOString()}, Node ${process.version}, PostgreSQL on loopback, load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(" ")})\n${table(rows ?? [])}\n\nstatements of one issue, by their own time\n${table(breakdown ?? [])}\n${
      trace === undefined ? "" : `\nthe issue with the median database time, statement by statement\n${table(trace)}\n`
    }`,
  );
}
