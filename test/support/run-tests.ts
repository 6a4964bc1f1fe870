import { spawn } from "node:child_process";
import postgres from "postgres";
import { openDatabase } from "../../src/platform/database.js";
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

  let summary = "";
  const code = await new Promise<number>((resolve) => {
    const tap = spawn(process.execPath, ["node_modules/tap/dist/esm/run.mjs", ...process.argv.slice(2)], {
      env,
      stdio: ["inherit", "pipe", "inherit"],
    });
    tap.stdout.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk);
      const match = /# (\{ total: [^}]*\})/.exec(chunk.toString());
      if (match) summary = match[1] ?? "";
    });
    tap.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
  });
  // tap's own closing line is "# { total: N, pass: N, … }"; restate it in the plain form CI reads.
  const count = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(summary)?.[1] ?? 0);
  process.stdout.write(
    `\ntests: ${count("pass")} passed, ${count("fail")} failed, ${count("skip") + count("todo")} skipped\n`,
  );
  if (summary === "") say("tap printed no summary line");

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
