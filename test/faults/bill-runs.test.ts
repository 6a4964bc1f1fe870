import type { ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import postgres from "postgres";
import t, { type Test } from "tap";
import { RatingService, startRatingLoop } from "../../src/modules/charging/rating.service.js";
import { spawnWorker } from "../support/charging.js";
import { type Engine, hasServers, startEngine } from "../support/engine.js";
import { report, waitFor } from "../support/faults.js";
import { activateLine, billingAccountBody, orderReadyAccount } from "../support/fixtures.js";
import { startThrowawayPostgres } from "../support/services.js";

/**
 * Bill runs on real processes (issue 25's fault tests): a cycle of postpaid accounts on the test clock (shared by
 * every process through PostgreSQL), a run started through the API and worked by `npm run worker` processes (their
 * bill run loops), which are killed at each named crash point, run two at once, or see PostgreSQL restarted under
 * them. After each, the run is completed and every account is billed once for the period: one cycle invoice each,
 * numbers gapless from 1, the ledger equal to the invoices, every one-time charge and every rated call on exactly
 * one invoice, each run item settled once.
 */

const RUNS = "/api/v1/bill-runs";
const BA = "/tmf-api/accountManagement/v4/billingAccount";
const ACCOUNTS = 20;
/** Accounts claimed at a time: five batches a run. */
const BATCH = 4;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const skip = !hasServers && "needs PostgreSQL and Redis";

type Run = {
  id: string;
  state: string;
  total: number;
  done: number;
  invoiced: number;
  failed: number;
  pending: number;
  invoicedAmount: Array<{ unit: string; value: string }>;
};

interface Cycle {
  engine: Engine;
  /** The accounts of the cycle, in the order runs claim them (by id). */
  accounts: string[];
  billCycleDay: number;
  /** The local date the billed periods end on, and the key (start date) of those periods. */
  periodEnd: string;
  usagePeriod: string;
  /** The year of the invoices' numbers. */
  year: number;
}

/**
 * An engine on PostgreSQL and the test clock, made ready for bill run work by worker processes. The scheduler's bill
 * run jobs are put out of the way first (their last slot marked done far ahead): moving the clock runs each crossed
 * day's jobs in this process, whose daily job would start and bill the cycle itself. So a run here is the API's and
 * its work is the worker processes' bill run loops'. A trigger records which process settled each run item (its
 * connections' application name when the item left pending) and whose claim it was then.
 */
async function billingEngine(t: Test, servers?: { pgUrl: string }): Promise<Engine> {
  const engine = await startEngine(t, {
    testClock: true,
    env: { BSS_BILL_RUN_BATCH: String(BATCH) },
    ...(servers === undefined ? {} : { servers }),
  });
  await engine.sql(
    `insert into scheduled_jobs (job, first_slot, last_done_slot, updated_at)
       select job, '9000-01-01', '9000-01-01', now() from unnest(array['bill-runs', 'bill-run-work']) as job
     on conflict (job) do update set last_done_slot = excluded.last_done_slot`,
  );
  await engine.sql("create table test_settled (billing_account_id uuid not null, settler text, claimant text)");
  await engine.sql(
    `create function test_settled() returns trigger language plpgsql as $$ begin
       if old.state = 'pending' and new.state <> 'pending' then
         insert into test_settled values (new.billing_account_id, current_setting('application_name'), old.lease_owner);
       end if;
       return new;
     end $$`,
  );
  await engine.sql(
    "create trigger test_settled after update on bill_run_items for each row execute function test_settled()",
  );
  return engine;
}

/**
 * ACCOUNTS postpaid accounts on one cycle day, each with a Postpaid M line (its activation and SIM fees waiting as
 * one-time charges) and a rated call to France, ordered in the period that ends on `periodEnd`; business time is
 * then moved past that end. The cycle day is the one two days on (at most a few days), so the moves cross few
 * midnights.
 */
async function orderCycle(engine: Engine): Promise<Cycle> {
  const now = Date.parse(((await engine.request("GET", "/api/v1/admin/clock")).json() as { now: string }).now);
  let end = new Date(now + 2 * DAY_MS);
  if (end.getUTCDate() > 28) end = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 1));
  const endMs = Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate());
  const billCycleDay = end.getUTCDate();
  const periodEnd = new Date(endMs).toISOString().slice(0, 10);
  const usagePeriod = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 1, billCycleDay))
    .toISOString()
    .slice(0, 10);

  // The stock and a customer with a mobile number (bills are messaged); its own account is prepaid, in no run.
  const { customerId } = await orderReadyAccount(engine, {
    sims: ACCOUNTS,
    numbers: ["+4915100000000", "+4915100000099"],
    accountType: "prepaid",
  });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const accounts: string[] = [];
  const msisdns: string[] = [];
  for (let index = 0; index < ACCOUNTS; index++) {
    const account = await engine.request("POST", BA, {
      body: billingAccountBody(customerId, { name: `Cycle ${index}`, billCycleDay }),
    });
    if (account.statusCode !== 201) throw new Error(account.body);
    const id = account.json().id as string;
    accounts.push(id);
    msisdns.push((await activateLine(engine, id)).msisdn);
  }

  // A call to France on every line the day before the period ends, rated here before the clock moves on.
  await moveClock(engine, new Date(endMs - 12 * HOUR_MS));
  const loop = startRatingLoop(
    engine.app.services.charging.rating,
    engine.app.services.charging.leases(`test-${process.pid}`),
    engine.app.log,
    RatingService.jobs({ ...engine.app.services.charging, usage: engine.app.services.usage.usage }, engine.config),
  );
  const calls = msisdns.map((msisdn, index) => ({
    recordType: "voice",
    cdrId: `bill-run-${index}`,
    source: "msc-1",
    servedMSISDN: msisdn,
    calledNumber: "+33123456789",
    recordOpeningTime: new Date(endMs - 13 * HOUR_MS).toISOString(),
    duration: 60 + index * 10,
  }));
  try {
    const posted = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: calls });
    if (posted.statusCode !== 200 || posted.json().accepted !== ACCOUNTS) throw new Error(posted.body);
    await waitFor("the calls rated", async () => (await engine.count("rated_usage")) === ACCOUNTS);
  } finally {
    await loop.stop();
  }

  // The period has ended (Berlin's midnight) and business time stands at 08:00 UTC on its end date.
  await moveClock(engine, new Date(endMs + 8 * HOUR_MS));
  return { engine, accounts: [...accounts].sort(), billCycleDay, periodEnd, usagePeriod, year: end.getUTCFullYear() };
}

async function moveClock(engine: Engine, to: Date): Promise<void> {
  const moved = await engine.request("POST", "/api/v1/admin/clock", { body: { to: to.toISOString() } });
  if (moved.statusCode !== 200) throw new Error(`clock move: ${moved.statusCode} ${moved.body}`);
}

function startRun(cycle: Cycle) {
  return cycle.engine.request("POST", RUNS, {
    key: cycle.engine.keys.finance,
    body: { billCycleDay: cycle.billCycleDay, periodEnd: cycle.periodEnd },
  });
}

async function getRun(engine: Engine, id: string): Promise<Run> {
  return (await engine.request("GET", `${RUNS}/${id}`, { key: engine.keys.finance })).json() as Run;
}

interface BillWorker {
  child: ChildProcess;
  /** How its claims name it. */
  owner: string;
  /** Its connections' application name. */
  name: string;
  dead(): boolean;
}

let workers = 0;

/**
 * `npm run worker` on this engine's servers and test clock, looking for bill run work every 100 ms; its database
 * connections carry a name of its own (the settling process in test_settled).
 */
function billWorker(t: Test, engine: Engine, options: { fault?: string; leaseSeconds?: number } = {}): BillWorker {
  workers += 1;
  const name = `bill-worker-${workers}`;
  const { child } = spawnWorker(
    engine,
    "fatal",
    {
      DATABASE_URL: `${engine.config.databaseUrl}?application_name=${name}`,
      BSS_TEST_CLOCK: "true",
      BSS_ALLOW_TEST_CLOCK_WITH_SERVER: "true",
      BSS_BILL_RUN_BATCH: String(BATCH),
      BSS_BILL_RUN_LOOP_MS: "100",
      BSS_BILL_RUN_LEASE_SECONDS: String(options.leaseSeconds ?? 2),
      ...(options.fault === undefined ? {} : { BSS_FAULT: options.fault }),
    },
    "pipe",
  );
  // A worker's errors, kept for the failure message.
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.once("exit", (code) => {
    if (code !== 0 && code !== null && stderr !== "") process.stderr.write(`worker exited ${code}: ${stderr}\n`);
  });
  const dead = () => child.exitCode !== null || child.signalCode !== null;
  t.teardown(async () => {
    if (!dead()) child.kill("SIGTERM");
    await exited;
  });
  return { child, owner: `${hostname()}-${child.pid}`, name, dead };
}

async function stopWorker(worker: BillWorker): Promise<void> {
  if (worker.dead()) return;
  const exited = new Promise((resolve) => worker.child.once("exit", resolve));
  worker.child.kill("SIGTERM");
  await exited;
}

async function waitForCompleted(engine: Engine, id: string): Promise<number> {
  return waitFor("the run completed", async () => (await getRun(engine, id)).state !== "running", 60_000);
}

/**
 * Run items settled per process (the trigger's record, by worker name), how many were settled with no claim on them
 * and how many more than once.
 */
async function settledBy(engine: Engine): Promise<{ workers: Map<string, number>; unclaimed: number; twice: number }> {
  const rows = await engine.sql<{ settler: string; n: number }>(
    "select settler, count(*)::int as n from test_settled group by settler",
  );
  const [twice] = await engine.sql<{ n: number }>(
    `select count(*)::int as n from (select billing_account_id from test_settled group by billing_account_id
       having count(*) > 1) d`,
  );
  return {
    workers: new Map(rows.map((row) => [row.settler, row.n])),
    unclaimed: await engine.count("test_settled", "claimant is null"),
    twice: twice?.n ?? 0,
  };
}

async function itemsOf(engine: Engine, where: string, params: unknown[] = []): Promise<number> {
  return engine.count("bill_run_items", where, params);
}

/**
 * The run's outcome: completed with every account done; one cycle invoice per account for the period, no other
 * document; numbers gapless from 1 and the series at N (no number taken and lost); one ledger entry per invoice of
 * its gross; every one-time charge billed, on one line; every rated call billed once (each summary's rows on one
 * line, its mark at its last row); every item invoiced with its account's invoice, settled once; one bill message
 * per invoice. Answers the invoiced total.
 */
async function checkBilledOnce(t: Test, cycle: Cycle, runId: string): Promise<string> {
  const { engine, accounts } = cycle;
  const run = await getRun(engine, runId);
  t.match(
    run,
    { state: "completed", total: ACCOUNTS, done: ACCOUNTS, invoiced: ACCOUNTS, failed: 0, pending: 0 },
    "the run completed: done = total",
  );

  const invoices = await engine.sql<{ account: string; usage_period: string; number: string; gross: string }>(
    `select billing_account_id::text as account, usage_period, number, gross::text from invoices
     where kind = 'cycle' order by seq`,
  );
  t.equal(await engine.count("invoices"), ACCOUNTS, "no other document issued");
  t.same(invoices.map((row) => row.account).sort(), accounts, "exactly one cycle invoice per account");
  t.same([...new Set(invoices.map((row) => row.usage_period))], [cycle.usagePeriod], "all for the period billed");
  t.same(
    invoices.map((row) => row.number),
    Array.from({ length: ACCOUNTS }, (_, index) => `DE-INV-${cycle.year}-${String(index + 1).padStart(6, "0")}`),
    "numbers gapless from 1",
  );
  const series = await engine.sql<{ last_number: number }>(
    "select last_number::int from document_series where kind = 'invoice'",
  );
  t.same(
    series.map((row) => row.last_number),
    [ACCOUNTS],
    "the series stands at N: no number taken and lost",
  );

  const [ledger] = await engine.sql<{ ledger: string; invoiced: string; unmatched: number; entries: number }>(
    `select (select sum(amount) from receivable_entries)::text as ledger, (select sum(gross) from invoices)::text as invoiced,
       (select count(*) from receivable_entries)::int as entries,
       (select count(*) from invoices i where (select count(*) from receivable_entries r
          where r.invoice_id = i.id and r.amount = i.gross) <> 1)::int as unmatched`,
  );
  t.equal(ledger?.entries, ACCOUNTS, "one ledger entry per invoice");
  t.equal(ledger?.unmatched, 0, "each of its invoice's gross");
  t.equal(Number(ledger?.ledger), Number(ledger?.invoiced), "ledger = invoices");
  t.same(
    run.invoicedAmount.map((entry) => [entry.unit, Number(entry.value)]),
    [["EUR", Number(ledger?.invoiced)]],
    "the run's invoiced amount = the invoices (each account counted once)",
  );

  const [charges] = await engine.sql<{ total: number; billed: number; lines: number; distinct: number }>(
    `select (select count(*) from one_time_charges)::int as total,
       (select count(*) from one_time_charges where billed_at is not null)::int as billed,
       (select count(*) from invoice_lines where one_time_charge_id is not null)::int as lines,
       (select count(distinct one_time_charge_id) from invoice_lines)::int as distinct`,
  );
  t.equal(charges?.total, 2 * ACCOUNTS, "an activation and a SIM fee per line");
  t.equal(charges?.billed, charges?.total, "every one-time charge marked billed");
  t.equal(charges?.lines, charges?.total, "each on one invoice line");
  t.equal(charges?.distinct, charges?.total, "none on two");

  const [usage] = await engine.sql<{ summaries: number; marked: number; once: number }>(
    `select count(*)::int as summaries, count(*) filter (where s.billed_seq = s.last_seq)::int as marked,
       count(*) filter (where l.rows = s.last_seq and l.lines = 1)::int as once
     from usage_summaries s
     left join (select usage_summary_id, sum(to_seq - from_seq + 1) as rows, count(*) as lines from invoice_lines
                where usage_summary_id is not null group by usage_summary_id) l on l.usage_summary_id = s.id`,
  );
  t.equal(usage?.summaries, ACCOUNTS, "a usage summary per line (its call)");
  t.equal(usage?.marked, ACCOUNTS, "every summary marked billed to its last row");
  t.equal(usage?.once, ACCOUNTS, "every summary's rows on exactly one invoice line");

  const items = await engine.sql<{ state: string; n: number }>(
    "select state, count(*)::int as n from bill_run_items where run_id = $1 group by state",
    [runId],
  );
  t.same(items, [{ state: "invoiced", n: ACCOUNTS }], "no item pending or failed");
  t.equal(
    await itemsOf(
      engine,
      "run_id = $1 and invoice_id = (select id from invoices i where i.billing_account_id = bill_run_items.billing_account_id)",
      [runId],
    ),
    ACCOUNTS,
    "each item names its account's invoice",
  );
  t.equal(
    await itemsOf(engine, "run_id = $1 and (amount is null or reason is not null)", [runId]),
    0,
    "each item with its invoice's amount, none taken for one invoiced before the run",
  );
  const settled = await settledBy(engine);
  t.equal(
    [...settled.workers.values()].reduce((sum, n) => sum + n, 0),
    ACCOUNTS,
    "each item settled once, by a worker",
  );
  t.equal(settled.unclaimed, 0, "under a claim");
  t.equal(settled.twice, 0, "none settled twice");
  t.equal(
    await engine.count("customer_messages", "subject like 'Your bill %'"),
    ACCOUNTS,
    "one bill message per invoice",
  );
  return ledger?.invoiced ?? "0";
}

for (const point of ["bill-after-drafts", "bill-after-numbering", "bill-mid-batch"] as const) {
  t.test(`a worker killed at ${point}: another resumes the run; every account billed once`, { skip }, async (t) => {
    const engine = await billingEngine(t);
    // The worker starts while the cycle is ordered; it finds the run once it is started.
    const crashing = billWorker(t, engine, { fault: `crash:${point}` });
    const cycle = await orderCycle(engine);
    const started = await startRun(cycle);
    t.equal(started.statusCode, 201, started.body);
    const run = started.json() as Run;
    t.match(run, { state: "running", total: ACCOUNTS, pending: ACCOUNTS });

    await waitFor(`the worker to kill itself at ${point}`, async () => crashing.dead(), 60_000);
    t.equal(crashing.child.signalCode, "SIGKILL", `the worker died at ${point}`);
    const diedAt = Date.now();
    const invoicesAtCrash = await engine.count("invoices");
    const leftClaimed = await itemsOf(engine, "state = 'pending' and lease_owner = $1", [crashing.owner]);
    if (point === "bill-mid-batch") {
      t.equal(invoicesAtCrash, BATCH, "its first batch committed, the next not claimed");
      t.equal(leftClaimed, 0, "nothing left claimed");
    } else {
      t.equal(invoicesAtCrash, 0, "its batch wrote nothing");
      t.equal(leftClaimed, BATCH, "its claim of a batch left to lapse");
      t.equal(await engine.count("document_series"), 0, "no number taken (those taken went back with it)");
    }
    t.equal((await getRun(engine, run.id)).state, "running", "the run waits for another process");

    const healthy = billWorker(t, engine);
    await waitForCompleted(engine, run.id);
    const recoveryMs = Date.now() - diedAt;
    await stopWorker(healthy);
    const invoiced = await checkBilledOnce(t, cycle, run.id);
    const settled = (await settledBy(engine)).workers;
    const byKilled = settled.get(crashing.name) ?? 0;
    t.equal(byKilled, point === "bill-mid-batch" ? BATCH : 0, "the killed worker settled what it committed");
    t.equal(settled.get(healthy.name), ACCOUNTS - byKilled, "the other worker settled the rest");
    report(
      t,
      `fault crash:${point} (bill run): ${ACCOUNTS} accounts in batches of ${BATCH}; at the kill ${invoicesAtCrash} ` +
        `invoiced, ${leftClaimed} claimed and left; completed by another worker ${recoveryMs} ms after ` +
        `(its start and the lease lapse included); one invoice per account, numbers gapless, ledger = ` +
        `invoices = ${invoiced} EUR`,
    );
  });
}

t.test(
  "the same run started twice at once is one run; two workers work it together, one taking over a claim that outlived its lease",
  { skip },
  async (t) => {
    const engine = await billingEngine(t);
    const workers = [billWorker(t, engine, { leaseSeconds: 120 }), billWorker(t, engine, { leaseSeconds: 120 })];
    const cycle = await orderCycle(engine);
    const { accounts } = cycle;

    // The first account's lock held here: the worker that claims the first batch waits in its transaction while
    // the other claims and settles every other batch.
    const held = postgres(engine.config.databaseUrl as string, { max: 1, onnotice: () => {} });
    t.teardown(() => held.end({ timeout: 1 }));
    const lockKey = `bill:${accounts[0]}`;
    await held`select pg_advisory_lock(hashtextextended(${lockKey}, 0))`;
    const lockWaiters = () =>
      engine.count(
        "pg_locks",
        "locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())",
      );

    const answers = await Promise.all([startRun(cycle), startRun(cycle)]);
    t.same(answers.map((answer) => answer.statusCode).sort(), [200, 201], "one created, one answered as existing");
    const [first, second] = answers.map((answer) => answer.json() as Run);
    t.equal(first?.id, second?.id, "the same run");
    t.equal(await engine.count("bill_runs"), 1, "one run");
    t.equal(await itemsOf(engine, "true"), ACCOUNTS, "each account in it once");
    const runId = first?.id as string;

    await waitFor(
      "every batch but the held one settled, the held one's worker waiting",
      async () => (await itemsOf(engine, "state = 'invoiced'")) === ACCOUNTS - BATCH && (await lockWaiters()) === 1,
      60_000,
    );
    const [claim] = await engine.sql<{ owner: string; n: number }>(
      "select lease_owner as owner, count(*)::int as n from bill_run_items where state = 'pending' group by 1",
    );
    t.equal(claim?.n, BATCH, "the held batch is one worker's claim");
    const waiting = workers.find((worker) => worker.owner === claim?.owner);
    const other = workers.find((worker) => worker !== waiting);
    if (waiting === undefined || other === undefined) throw new Error(`no worker holds the batch: ${claim?.owner}`);

    // Its batch outlives its lease (made to lapse here rather than waited for): the other worker takes the batch
    // over and waits on the same lock behind it. Let go, the first issues the invoices; the other finds them.
    await engine.sql("update bill_run_items set lease_until = now() - interval '1 second' where state = 'pending'");
    await waitFor(
      "the other worker to take the batch over",
      async () =>
        (await itemsOf(engine, "state = 'pending' and lease_owner = $1 and attempts = 2", [other.owner])) === BATCH &&
        (await lockWaiters()) === 2,
      60_000,
    );
    await held`select pg_advisory_unlock(hashtextextended(${lockKey}, 0))`;
    await waitForCompleted(engine, runId);
    await Promise.all(workers.map(stopWorker));

    const invoiced = await checkBilledOnce(t, cycle, runId);
    const settled = (await settledBy(engine)).workers;
    t.equal(settled.get(waiting.name), BATCH, "the worker that waited settled its batch");
    t.equal(settled.get(other.name), ACCOUNTS - BATCH, "the other settled the rest meanwhile");
    report(
      t,
      `fault bill run, two workers: started twice at once, one run; ${BATCH} and ${ACCOUNTS - BATCH} accounts ` +
        `settled by each worker, one batch claimed by both (its first claim outlived its lease); one invoice per ` +
        `account, numbers gapless, ledger = invoices = ${invoiced} EUR`,
    );
  },
);

// The test's own PostgreSQL, which it restarts (the run's shared server is left alone).
const server = hasServers ? await startThrowawayPostgres() : null;
t.teardown(() => server?.stop());

t.test(
  "PostgreSQL restarted mid-run: the run completes afterwards; every account billed once",
  { skip: server === null && "needs the PostgreSQL binaries and Redis" },
  async (t) => {
    if (server === null) return;
    const engine = await billingEngine(t, { pgUrl: server.url });
    const worker = billWorker(t, engine);
    const cycle = await orderCycle(engine);

    // An account of the third batch held here, so the run stands part-way when PostgreSQL goes: two batches
    // invoiced, the third claimed by the worker and in its hands.
    const held = postgres(engine.config.databaseUrl as string, { max: 1, onnotice: () => {} });
    await held`select pg_advisory_lock(hashtextextended(${`bill:${cycle.accounts[2 * BATCH]}`}, 0))`;
    const started = await startRun(cycle);
    t.equal(started.statusCode, 201, started.body);
    const runId = (started.json() as Run).id;
    await waitFor(
      "two batches invoiced, the third claimed",
      async () =>
        (await itemsOf(engine, "state = 'invoiced'")) === 2 * BATCH &&
        (await itemsOf(engine, "state = 'pending' and lease_owner is not null")) === BATCH,
      60_000,
    );
    const stoppedAt = Date.now();
    // A fast shutdown (every session ended, the worker's transaction in hand with it), started again at once: the
    // worker's pool reconnects under postgres.js's backoff (3^n/100 s up to 20 s, n counting the pool's failed
    // connection attempts), which after a one-second outage keeps it away ~18 s; after this one, about nothing.
    await server.restart(0);
    const downMs = Date.now() - stoppedAt;
    // Its session (and the lock) ended with the server; the worker's claim of the third batch lapses in 2 s.
    await held.end({ timeout: 1 }).catch(() => undefined);
    await waitForCompleted(engine, runId);
    const recoveryMs = Date.now() - stoppedAt;
    t.notOk(worker.dead(), "the worker lived through it");
    await stopWorker(worker);

    const invoiced = await checkBilledOnce(t, cycle, runId);
    t.equal(
      (await settledBy(engine)).workers.get(worker.name),
      ACCOUNTS,
      "the same worker went on once PostgreSQL was back",
    );
    report(
      t,
      `fault postgres-restart (bill run): PostgreSQL down ${downMs} ms with ${2 * BATCH} of ${ACCOUNTS} accounts ` +
        `invoiced and a batch claimed; completed ${recoveryMs} ms after the stop; one invoice per account, numbers ` +
        `gapless, ledger = invoices = ${invoiced} EUR`,
    );
  },
);
