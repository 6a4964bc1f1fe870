import { spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";
import postgres from "postgres";
import { MIGRATIONS_FOLDER, openDatabase } from "../../src/platform/database.js";
import {
  canReachPostgres,
  canReachRedis,
  startThrowawayPostgres,
  startThrowawayRedis,
  type Throwaway,
} from "./services.js";

/**
 * `npm test`: finds PostgreSQL and Redis (configured, then the machine's own, then throwaway servers from
 * installed binaries), builds one migrated template database, and runs tap with the addresses in the
 * environment. With neither server to be had it runs on the embedded engines and says so loudly; CI sets
 * BSS_TEST_REQUIRE_SERVICES=1 (or CI=true) to make that a failure instead.
 *
 * Files run in parallel (each has its own database and key prefix), one job per core plus one, since much of a
 * test's time is spent waiting on PostgreSQL and Redis. The fault files own servers and worker processes and run
 * one at a time (test/support/faults.ts takes a lock); the runner spreads them through the list so they never fill
 * every job slot. At the end it prints the slowest files and their times, read from tap's raw output.
 */
const requireServices = process.env.BSS_TEST_REQUIRE_SERVICES === "1" || process.env.CI === "true";
const runId = process.pid;
const throwaways: Throwaway[] = [];

function say(message: string): void {
  process.stderr.write(`[test-runner] ${message}\n`);
}

async function locate(
  name: string,
  candidates: (string | undefined)[],
  reach: (url: string) => Promise<boolean>,
  startThrowaway: () => Promise<Throwaway | null>,
): Promise<string | null> {
  for (const url of candidates) {
    if (url !== undefined && url !== "" && (await reach(url))) {
      say(`${name}: using ${url.replace(/\/\/[^@]*@/, "//")}`);
      return url;
    }
  }
  say(`${name}: none reachable; trying a throwaway server from installed binaries`);
  const throwaway = await startThrowaway();
  if (throwaway === null) return null;
  throwaways.push(throwaway);
  say(`${name}: throwaway server at ${throwaway.url}`);
  return throwaway.url;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Databases left by runs that died (their runner pid is gone) are dropped; live runs are left alone. */
async function dropStaleDatabases(admin: postgres.Sql): Promise<void> {
  const rows = await admin<{ datname: string }[]>`select datname from pg_database where datname like 'bss\\_%'`;
  for (const { datname } of rows) {
    const match = /^bss_(?:tpl|t)_(\d+)/.exec(datname);
    if (match && !isAlive(Number(match[1]))) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Each file's time in a recent full run (ms), kept in the repository: what the order below is computed from. */
const TIMES_FILE = "test/support/file-times.json";

/**
 * Files in the order tap should start them: the longest first (longest processing time first keeps the last job
 * from starting a long file when the others are done), by the times of a recent full run; a file not timed yet
 * counts as a minute, so it starts early. `BSS_TEST_RECORD_TIMES=1` rewrites the times after a full run.
 */
function orderedTestFiles(): string[] {
  const all = (readdirSync("test", { recursive: true }) as string[])
    .filter((file) => file.endsWith(".test.ts"))
    .map((file) => path.join("test", file).replaceAll(path.sep, "/"))
    .sort();
  let times: Record<string, number> = {};
  try {
    times = JSON.parse(readFileSync(TIMES_FILE, "utf8")) as Record<string, number>;
  } catch {
    // No times recorded: every file counts the same and the order is by name.
  }
  const weight = (file: string) => times[file] ?? 60_000;
  return all.sort((a, b) => weight(b) - weight(a) || (a < b ? -1 : 1));
}

/** Every file's time in a run (ms), from tap's raw output, less the time a fault file waited for the fault lock. */
function fileTimes(rawTap: string, waits: string): Array<{ file: string; ms: number; ok: boolean }> {
  const waited = new Map<string, number>();
  for (const line of waits.split("\n")) {
    const [file, ms] = line.split(" ");
    if (file !== undefined && ms !== undefined) waited.set(file, Number(ms));
  }
  const times: Array<{ file: string; ms: number; ok: boolean }> = [];
  for (const match of rawTap.matchAll(/^(not )?ok \d+ - (\S+\.test\.ts)\b.*# time=([\d.]+)ms/gm)) {
    const file = match[2] as string;
    times.push({ file, ms: Number(match[3]) - (waited.get(file) ?? 0), ok: match[1] === undefined });
  }
  return times;
}

/**
 * The ten slowest files of a run, from tap's raw TAP output (its top-level lines carry each file's time), less
 * the time a fault file waited for the fault lock (test/support/faults.ts writes it to `waits`, one line per file).
 */
function slowestFiles(times: Array<{ file: string; ms: number; ok: boolean }>): string {
  if (times.length === 0) return "";
  times.sort((a, b) => b.ms - a.ms);
  const total = times.reduce((sum, entry) => sum + entry.ms, 0);
  const lines = times
    .slice(0, 10)
    .map((entry) => `  ${(entry.ms / 1000).toFixed(1).padStart(7)} s  ${entry.file}${entry.ok ? "" : "  (failed)"}`);
  return `\nslowest test files (of ${times.length}, ${(total / 1000).toFixed(0)} s of file time in all):\n${lines.join("\n")}\n`;
}

/**
 * Every failed assertion of a run with its diagnostics (the YAML block tap writes under it), from the raw TAP
 * output, for runs whose reporter is silent (CI). Bounded, so a run that fails everywhere stays readable.
 */
function failuresOf(rawTap: string): string {
  const lines = rawTap.split("\n");
  const out: string[] = [];
  let failures = 0;
  for (let index = 0; index < lines.length && failures < 50; index++) {
    const line = lines[index] as string;
    const match = /^(\s*)not ok /.exec(line);
    if (match === null) continue;
    failures += 1;
    out.push(line);
    const indent = (match[1] ?? "").length;
    for (let next = index + 1; next < lines.length && next - index <= 60; next++) {
      const following = lines[next] as string;
      if (following.trim() !== "" && following.length - following.trimStart().length <= indent) break;
      out.push(following);
    }
  }
  return out.length === 0 ? "" : `\nfailures:\n${out.join("\n")}\n`;
}

/** An in-memory PGlite migrated once for the run, dumped to a file every PGlite test engine starts from. */
async function buildPgliteSeed(file: string): Promise<void> {
  const client = await PGlite.create("memory://");
  try {
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
    const dump = await client.dumpDataDir("none");
    writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  } finally {
    await client.close();
  }
}

/** BSS_TEST_SERVICES=embedded runs the suite on the embedded engines on purpose (as a machine without servers would). */
const forceEmbedded = process.env.BSS_TEST_SERVICES === "embedded";

async function main(): Promise<number> {
  if (forceEmbedded && requireServices) {
    say("FAIL: BSS_TEST_SERVICES=embedded contradicts BSS_TEST_REQUIRE_SERVICES/CI");
    return 1;
  }
  const pgUrl = forceEmbedded
    ? null
    : await locate(
        "PostgreSQL",
        [process.env.TEST_DATABASE_URL, "postgres://postgres@127.0.0.1:5432/postgres"],
        canReachPostgres,
        startThrowawayPostgres,
      );
  const redisUrl = forceEmbedded
    ? null
    : await locate("Redis", [process.env.TEST_REDIS_URL, "redis://127.0.0.1:6379"], canReachRedis, startThrowawayRedis);
  const env: NodeJS.ProcessEnv = { ...process.env, BSS_TEST_RUN_ID: String(runId) };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  let template: string | null = null;
  let admin: postgres.Sql | null = null;
  if (pgUrl === null || redisUrl === null) {
    const missing = [pgUrl === null ? "PostgreSQL" : null, redisUrl === null ? "Redis" : null]
      .filter(Boolean)
      .join(" and ");
    if (requireServices) {
      say(`FAIL: ${missing} not available and BSS_TEST_REQUIRE_SERVICES/CI is set`);
      return 1;
    }
    say("");
    say("*****************************************************************************************");
    say(`  ${missing} NOT AVAILABLE: running on the embedded engines (PGlite, in-process store).`);
    say("  Tests that need the real servers are SKIPPED. Install PostgreSQL and Redis for a full run.");
    say("*****************************************************************************************");
    say("");
  }
  if (pgUrl !== null) {
    admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
    await dropStaleDatabases(admin);
    template = `bss_tpl_${runId}`;
    await admin.unsafe(`create database "${template}"`);
    const database = await openDatabase({ databaseUrl: withDatabase(pgUrl, template), dataDir: "", poolMax: 1 });
    await database.migrate();
    await database.close();
    env.BSS_TEST_PG_URL = pgUrl;
    env.BSS_TEST_TEMPLATE = template;
  }
  if (redisUrl !== null) env.BSS_TEST_REDIS_URL = redisUrl;
  const seedFile = path.join(tmpdir(), `bss-pglite-seed-${runId}.tar`);
  const rawTapFile = path.join(tmpdir(), `bss-tap-${runId}.tap`);
  const waitsFile = path.join(tmpdir(), `bss-waits-${runId}.txt`);
  writeFileSync(waitsFile, "");
  env.BSS_TEST_WAITS_FILE = waitsFile;
  await buildPgliteSeed(seedFile);
  env.BSS_TEST_PGLITE_SEED = seedFile;

  // Arguments name files (or tap options): run those as asked; otherwise every test file, ordered.
  const args = process.argv.slice(2);
  const namesFiles = args.some((arg) => !arg.startsWith("-"));
  // Two files more than cores: a third of the suite's file time is waiting (servers restarting, workers polling,
  // sockets), which other files fill. On this 2-core machine 4 jobs ran the suite in 426 s; with 3, .ci/run took
  // 573 s in all on 2026-12-07.
  const jobs = Number(process.env.BSS_TEST_JOBS ?? availableParallelism() + 2);
  // On a terminal tap's terse reporter draws progress; elsewhere (CI, a log file) it prints nothing useful, so the
  // run is silent and the runner prints the failures itself from the raw TAP output.
  const interactive = process.stdout.isTTY === true && process.env.CI !== "true";
  const tapArgs = [
    `--jobs=${jobs}`,
    `--output-file=${rawTapFile}`,
    ...(interactive ? [] : ["--reporter=silent"]),
    ...args,
    ...(namesFiles ? [] : orderedTestFiles()),
  ];
  say(`tap with ${jobs} jobs`);

  const code = await new Promise<number>((resolve) => {
    const tap = spawn(process.execPath, ["node_modules/tap/dist/esm/run.mjs", ...tapArgs], {
      env,
      stdio: ["inherit", "inherit", "inherit"],
    });
    tap.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
  });
  let rawTap = "";
  try {
    rawTap = readFileSync(rawTapFile, "utf8");
  } catch {
    // tap wrote no raw output (it failed before running a file): there is nothing to time or count.
  }
  if (!interactive) process.stdout.write(failuresOf(rawTap));
  const times = fileTimes(rawTap, readFileSync(waitsFile, "utf8"));
  process.stdout.write(slowestFiles(times));
  if (process.env.BSS_TEST_RECORD_TIMES === "1" && !namesFiles && times.length > 0) {
    const sorted = [...times].sort((a, b) => (a.file < b.file ? -1 : 1));
    writeFileSync(
      TIMES_FILE,
      `${JSON.stringify(Object.fromEntries(sorted.map((entry) => [entry.file, Math.round(entry.ms)])), null, 2)}\n`,
    );
    say(`file times written to ${TIMES_FILE}`);
  }
  // tap's closing line in its raw output is "# { total: N, pass: N, … }"; restated in the plain form CI reads, last.
  const summary = /^# (\{ total: [^}]*\})/m.exec(rawTap)?.[1] ?? "";
  const count = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(summary)?.[1] ?? 0);
  process.stdout.write(
    `\ntests: ${count("pass")} passed, ${count("fail")} failed, ${count("skip") + count("todo")} skipped\n`,
  );
  if (summary === "") say("tap wrote no summary line");
  rmSync(rawTapFile, { force: true });
  rmSync(waitsFile, { force: true });
  rmSync(seedFile, { force: true });

  if (admin !== null && template !== null) {
    await admin.unsafe(`drop database if exists "${template}" with (force)`);
    // Test files drop their own databases; a file that crashed may have left one behind.
    const leftovers = await admin<
      { datname: string }[]
    >`select datname from pg_database where datname like ${`bss_t_${runId}_%`}`;
    for (const { datname } of leftovers) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    await admin.end({ timeout: 5 });
  }
  return code;
}

main()
  .then(async (code) => {
    await Promise.all(throwaways.map((throwaway) => throwaway.stop()));
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    say(`runner failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await Promise.all(throwaways.map((throwaway) => throwaway.stop()));
    process.exit(1);
  });
