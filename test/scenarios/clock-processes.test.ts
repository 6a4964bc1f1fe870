import { type ChildProcess, spawn } from "node:child_process";
import t from "tap";
import { postCdrs, spawnWorker, voiceCdr } from "../support/charging.js";
import { type Engine, hasServers, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";
import { freePort } from "../support/services.js";

/**
 * The engine clock and the scheduler on real processes (DESIGN.md §10): two API processes (this one and `npm
 * start`) and rating workers on PostgreSQL and Redis. A worker killed in the middle of a job leaves its slot to
 * another process, which finishes it once; the clock is moved a month forward through the second API; every
 * process then reads the new business time, each day's job ran once, in order, with its own business date, and
 * every CDR accepted before the move was rated first.
 */

const DAY_MS = 86_400_000;

/** The settings a child process of this engine needs (spawnWorker adds the database and Redis itself). */
function childEnv(engine: Engine, extra: Record<string, string>): Record<string, string> {
  const config = engine.config;
  return {
    DATABASE_URL: config.databaseUrl as string,
    REDIS_URL: config.redisUrl as string,
    BSS_REDIS_KEY_PREFIX: config.redisKeyPrefix,
    BSS_SECRETS_KEY: config.secretsKey?.toString("hex") as string,
    BSS_MIGRATE_ON_START: "false",
    BSS_TEST_CLOCK: "true",
    BSS_ALLOW_TEST_CLOCK_WITH_SERVER: "true",
    BSS_JOB_LEASE_SECONDS: "2",
    BSS_LEASE_SECONDS: "3",
    LOG_LEVEL: "error",
    ...extra,
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function stopped(child: ChildProcess): Promise<unknown> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", resolve));
}

t.test(
  "two API processes and workers: a job killed mid-run is finished once; a month moved through one API",
  { skip: !hasServers && "needs PostgreSQL and Redis" },
  async (t) => {
    const engine = await startEngine(t, { testClock: true, env: { BSS_JOB_LEASE_SECONDS: "2" } });
    const { accountId } = await orderReadyAccount(engine);
    await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
    const { msisdn } = await activateLine(engine, accountId);
    // The charging store built from the ledger before any worker starts (a worker that died holding the rebuild
    // turn would otherwise keep the others waiting for it to lapse).
    await engine.app.services.charging.reconcile.run("rebuild");

    // A worker that kills itself after its first job's work, before the slot is recorded as done.
    const crashing = spawnWorker(engine, "fatal", childEnv(engine, { BSS_FAULT: "crash:mid-job" }), "pipe");
    t.teardown(() => crashing.child.kill("SIGKILL"));
    await stopped(crashing.child);
    t.equal(crashing.child.signalCode, "SIGKILL", "the worker died in the middle of a job");
    const [orphan] = await engine.sql<{ job: string; slot: string; owner: string }>(
      "select job, slot, owner from job_runs where state = 'running'",
    );
    t.ok(orphan, "it left its slot claimed and not done");

    // The second API process and a worker that stays.
    const port = await freePort();
    const api = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, ...childEnv(engine, { PORT: String(port), HOST: "127.0.0.1" }) },
      stdio: ["ignore", "ignore", "inherit"],
      detached: true,
    });
    t.teardown(async () => {
      if (api.exitCode === null) process.kill(-(api.pid as number), "SIGTERM");
      await stopped(api);
    });
    const worker = spawnWorker(engine, "error", childEnv(engine, {}));
    t.teardown(async () => {
      if (worker.child.exitCode === null) worker.child.kill("SIGTERM");
      await worker.exited;
    });
    const base = `http://127.0.0.1:${port}`;
    const call = async (method: string, url: string, body?: unknown) => {
      const response = await fetch(`${base}${url}`, {
        method,
        headers: { authorization: `Bearer ${engine.keys.admin}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    await waitFor("the second API process", () =>
      fetch(`${base}/ready`).then(
        (response) => response.ok,
        () => false,
      ),
    );

    // The dead worker's slot is taken over once its lease lapses, and finished once.
    await waitFor("the orphaned slot finished", async () => {
      await engine.app.scheduler.tick();
      const [row] = await engine.sql<{ state: string }>("select state from job_runs where job = $1 and slot = $2", [
        orphan?.job,
        orphan?.slot,
      ]);
      return row?.state === "done";
    });
    const [finished] = await engine.sql<{ attempts: number; owner: string }>(
      "select attempts, owner from job_runs where job = $1 and slot = $2",
      [orphan?.job, orphan?.slot],
    );
    t.equal(finished?.attempts, 2, "run again once by the process that took it over");
    t.not(finished?.owner, orphan?.owner, "by another process");

    // The worker is up (it rated a warm-up CDR); then CDRs accepted just before the move, which the move waits for.
    await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 61, new Date().toISOString())]);
    await waitFor("the worker to rate a warm-up CDR", async () => (await engine.count("rated_usage")) === 1);
    const at = new Date().toISOString();
    const cdrs = Array.from({ length: 20 }, () => voiceCdr(msisdn, "+33123456789", 61, at));
    await postCdrs(engine, cdrs);
    const moved = await call("POST", "/api/v1/admin/clock", { advance: "P1M" });
    t.equal(moved.status, 200, JSON.stringify(moved.body));
    t.equal(await engine.count("rated_usage"), 21, "every CDR accepted before the move was rated first");
    const movedNow = Date.parse(moved.body.now as string);
    const previous = Date.parse(moved.body.previous as string);

    // Every process reads the new business time.
    t.equal(Date.parse((await call("GET", "/api/v1/admin/clock")).body.now as string) >= movedNow, true, "API 2");
    await waitFor(
      "this process to take the new time",
      async () =>
        Date.parse(((await engine.request("GET", "/api/v1/admin/clock")).json() as { now: string }).now) >= movedNow,
      5_000,
    );
    t.pass("API 1 reads the new time");
    // The worker's clock: a CDR of the new business day is accepted (API 1) and rated at the new time (worker).
    const later = voiceCdr(msisdn, "+33123456789", 61, new Date(movedNow + 1_000).toISOString());
    await postCdrs(engine, [later]);
    await waitFor(
      "the worker to rate the CDR of the new month",
      async () => (await engine.count("rated_usage")) === 22,
    );
    const [lastRated] = await engine.sql<{ rated_at: Date }>("select max(rated_at) as rated_at from rated_usage");
    t.ok(new Date(lastRated?.rated_at as Date).getTime() >= movedNow, "the worker rated it at the new business time");

    // Each crossed day's job ran once, in order, with that day as its business date.
    const purges = await engine.sql<{ slot: string; attempts: number; outcome: { day: string } }>(
      "select slot, attempts, outcome from job_runs where job = 'ws-ticket-purge' order by slot",
    );
    const firstDay = Math.floor(previous / DAY_MS) + 1;
    const lastDay = Math.floor(movedNow / DAY_MS);
    const crossed = purges.filter((row) => Date.parse(`${row.slot}T00:00:00Z`) >= firstDay * DAY_MS);
    t.same(
      crossed.map((row) => row.slot),
      Array.from({ length: lastDay - firstDay + 1 }, (_, i) =>
        new Date((firstDay + i) * DAY_MS).toISOString().slice(0, 10),
      ),
      "every crossed day, in order, none missing",
    );
    t.ok(
      crossed.every((row) => row.attempts === 1 && row.outcome.day === `${row.slot}T00:00:00.000Z`),
      "each once, each with its own business date",
    );
  },
);
