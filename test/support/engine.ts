import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { Redis } from "ioredis";
import postgres from "postgres";
import type { Test } from "tap";
import { buildApp } from "../../src/app.js";
import { type Config, loadConfig } from "../../src/config.js";
import type { MessageChannel } from "../../src/modules/notifications/message-channel.js";
import type { Provisioning } from "../../src/modules/provisioning/provisioning.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import type { Role } from "../../src/platform/auth.js";
import { type Clock, ManualClock } from "../../src/platform/clock.js";
import { healingClient, queryRows } from "../../src/platform/database.js";
import { describeProblems, SUMMARY_CHECK, type SummaryProblems } from "./summaries.js";
import { armExitWatchdog, within } from "./watchdog.js";

/**
 * Starts the engine for one test file: its own PostgreSQL database cloned from the run's migrated
 * template and its own Redis key prefix (tap runs files in parallel), or the embedded engines when the
 * runner found no servers. Requests go through app.inject(), so no port is opened.
 */

export type Driver = "postgres" | "pglite";

/** What the test runner found; absent values mean embedded mode. */
export const services = {
  pgUrl: process.env.BSS_TEST_PG_URL,
  template: process.env.BSS_TEST_TEMPLATE,
  redisUrl: process.env.BSS_TEST_REDIS_URL,
  runId: process.env.BSS_TEST_RUN_ID ?? String(process.pid),
};

/** The run's migrated PGlite data directory (see run-tests.ts), read once per test process. */
let pgliteSeed: Promise<Blob | undefined> | null = null;
function loadPgliteSeed(): Promise<Blob | undefined> {
  const file = process.env.BSS_TEST_PGLITE_SEED;
  pgliteSeed ??=
    file === undefined || file === "" ? Promise.resolve(undefined) : readFile(file).then((b) => new Blob([b]));
  return pgliteSeed;
}

export const hasServers =
  services.pgUrl !== undefined && services.template !== undefined && services.redisUrl !== undefined;

/** Drivers the module tests run on: both where PostgreSQL exists (DESIGN.md §6), else PGlite alone. */
export const drivers: Driver[] = hasServers ? ["postgres", "pglite"] : ["pglite"];

/** BSS_TEST_EVERY_DRIVER=true: every case of every module test on both drivers (see `everyCase`). */
export const EVERY_DRIVER = process.env.BSS_TEST_EVERY_DRIVER === "true";

/**
 * Whether a module test's further cases run on this driver. PostgreSQL runs every case. Embedded PGlite (the engine
 * `npm start` runs; two to three times slower per case in a test process) runs each file's first case, the module's
 * path end to end (the rating file: its first three, the in-process charging store's crossings; balances and
 * allowances: every case), and the embedded scenarios run wholly on it; BSS_TEST_EVERY_DRIVER=true runs every case on both
 * (before a release, or after a change to SQL that PGlite might take differently). Without a PostgreSQL server,
 * PGlite is the only driver and runs everything.
 */
export function everyCase(driver: Driver): boolean {
  return driver !== "pglite" || EVERY_DRIVER || !hasServers;
}

interface TapLike {
  teardown(fn: () => unknown): void;
  comment(...message: unknown[]): void;
}

export interface RequestOptions {
  key?: string | null;
  body?: unknown;
  /** Sent as is, with no JSON encoding. */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

export interface Engine {
  app: FastifyInstance;
  config: Config;
  clock: ManualClock;
  driver: Driver;
  keys: Record<Exclude<Role, "subscriber">, string>;
  request(method: string, url: string, options?: RequestOptions): Promise<LightMyRequestResponse>;
  /** Issues a subscriber key bound to a billing account. */
  subscriberKey(billingAccountId: string): Promise<string>;
  /** Runs SQL against this file's database (assertions on stored rows). */
  sql<T = Record<string, unknown>>(query: string, params?: unknown[]): Promise<T[]>;
  /** Rows in a table, optionally filtered by a WHERE clause. */
  count(table: string, where?: string, params?: unknown[]): Promise<number>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function startEngine(
  t: TapLike,
  options: {
    driver?: Driver;
    clock?: ManualClock;
    env?: Record<string, string>;
    messageChannel?: MessageChannel;
    provisioning?: Provisioning;
    orderFulfilment?: "background" | "manual";
    billRunWork?: "background" | "manual";
    /** Servers of the test's own (fault tests kill them): a database is made there and migrated at start. */
    servers?: { pgUrl?: string; redisUrl?: string };
    /** The engine's own test clock (BSS_TEST_CLOCK) instead of an injected one; `clock` is then not the engine's. */
    testClock?: boolean;
    /** false: skip the closing check of usage summaries (a test that leaves the database unreachable). */
    summaryCheck?: boolean;
  } = {},
): Promise<Engine> {
  armExitWatchdog();
  const driver = options.driver ?? (hasServers ? "postgres" : "pglite");
  const clock = options.clock ?? new ManualClock("2026-03-15T10:00:00Z");
  const suffix = randomBytes(4).toString("hex");
  const env: Record<string, string> = {
    LOG_LEVEL: "silent",
    BSS_CATALOG_REFRESH_SECONDS: "0",
    // Test receivers listen on loopback; production refuses internal callbacks unless allowed like this.
    BSS_CALLBACK_ALLOW: "127.0.0.1",
    // Tests call fast with one key per role; the rate-limit test sets its own limits.
    BSS_RATE_LIMIT_PER_MINUTE: "0",
    ...(options.testClock ? { BSS_TEST_CLOCK: "true", BSS_ALLOW_TEST_CLOCK_WITH_SERVER: "true" } : {}),
    ...options.env,
  };
  let dropDatabase: (() => Promise<void>) | null = null;

  if (driver === "postgres") {
    const own = options.servers;
    if (!hasServers && own === undefined)
      throw new Error("postgres driver requested but the runner found no PostgreSQL");
    const pgUrl = own?.pgUrl ?? (services.pgUrl as string);
    const redisUrl = own?.redisUrl ?? (services.redisUrl as string);
    const name = `bss_t_${services.runId}_${suffix}`;
    const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(own ? `create database "${name}"` : `create database "${name}" template "${services.template}"`);
    await admin.end();
    env.DATABASE_URL = withDatabase(pgUrl, name);
    env.BSS_SECRETS_KEY = randomBytes(32).toString("hex");
    env.REDIS_URL = redisUrl;
    env.BSS_REDIS_KEY_PREFIX = `t:${suffix}:`;
    env.BSS_MIGRATE_ON_START = own ? "true" : "false";
    dropDatabase = async () => {
      const cleanup = postgres(pgUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      await cleanup.unsafe(`drop database if exists "${name}" with (force)`).catch(() => undefined);
      await cleanup.end({ timeout: 1 });
      const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
      redis.on("error", () => {});
      const keys = await redis.keys(`t:${suffix}:*`).catch(() => [] as string[]);
      // One key per DEL: on a cluster node the keys of one call must share a slot.
      for (const key of keys) await redis.del(key).catch(() => 0);
      redis.disconnect();
    };
  } else {
    env.BSS_DATA_DIR = "memory://";
  }

  const config = { ...loadConfig(env), dataDir: env.BSS_DATA_DIR ?? "memory://" };
  const seed = driver === "pglite" ? await loadPgliteSeed() : undefined;
  const app = await buildApp(config, {
    ...(seed === undefined ? {} : { pgliteSeed: seed }),
    ...(options.testClock ? {} : { clock: clock as Clock }),
    logger: false,
    ...(options.messageChannel ? { messageChannel: options.messageChannel } : {}),
    ...(options.provisioning ? { provisioning: options.provisioning } : {}),
    orderFulfilment: options.orderFulfilment ?? "manual",
    billRunWork: options.billRunWork ?? "manual",
  });
  // The test's own reads go through the same healing pool as the engine's (they run right after server faults).
  let sqlClient: ReturnType<typeof healingClient> | null = null;
  t.teardown(async () => {
    // Every test's rated usage ends summarised exactly (issue 22); tests that take the database away opt out.
    if (options.summaryCheck !== false) {
      const { sql: rawSql } = await import("drizzle-orm");
      const [problems] = await queryRows<SummaryProblems>(app.database.db, rawSql.raw(SUMMARY_CHECK));
      const problem = describeProblems(problems);
      if (problem !== null) {
        await app.close();
        throw new Error(problem);
      }
    }
    await within("closing the engine", 30_000, app.close());
    await within(
      "closing the test's SQL client",
      10_000,
      sqlClient?.current().end({ timeout: 1 }) ?? Promise.resolve(),
    );
    await within("dropping the test's database and keys", 30_000, dropDatabase?.() ?? Promise.resolve());
  });

  const keys = {} as Engine["keys"];
  for (const role of ["admin", "crm", "network", "finance"] as const) {
    // The test network key is a mediation platform's: it sends for every source.
    const sources = role === "network" ? { cdrSources: ["*"] } : {};
    keys[role] = (await app.services.access.create(SYSTEM_ACTOR, { name: `test ${role}`, role, ...sources })).key;
  }

  const engine: Engine = {
    app,
    config,
    clock,
    driver,
    keys,
    async request(method, url, requestOptions = {}) {
      const headers: Record<string, string> = { ...requestOptions.headers };
      const key = requestOptions.key === undefined ? keys.admin : requestOptions.key;
      if (key !== null) headers.authorization = `Bearer ${key}`;
      let payload: string | Buffer | undefined;
      if (requestOptions.rawBody !== undefined) payload = requestOptions.rawBody;
      else if (requestOptions.body !== undefined) {
        payload = JSON.stringify(requestOptions.body);
        headers["content-type"] ??= "application/json";
      }
      return app.inject({
        method: method as "GET",
        url,
        headers,
        ...(payload === undefined ? {} : { payload }),
        ...(requestOptions.query ? { query: requestOptions.query } : {}),
      });
    },
    async subscriberKey(billingAccountId) {
      const created = await app.services.access.create(SYSTEM_ACTOR, {
        name: `subscriber ${billingAccountId} ${randomBytes(2).toString("hex")}`,
        role: "subscriber",
        billingAccountId,
      });
      return created.key;
    },
    async count(table, where, params = []) {
      const rows = await engine.sql<{ total: number }>(
        `select count(*)::int as total from ${table}${where ? ` where ${where}` : ""}`,
        params,
      );
      return rows[0]?.total ?? 0;
    },
    async sql(query, params = []) {
      if (driver === "postgres") {
        sqlClient ??= healingClient((extra) =>
          postgres(env.DATABASE_URL as string, { max: 1, onnotice: () => {}, ...(extra as object) }),
        );
        return (await sqlClient.sql.unsafe(query, params as never[])) as never;
      }
      const { sql: rawSql } = await import("drizzle-orm");
      const result = await app.database.db.execute(rawSql.raw(inline(query, params)));
      return (result as unknown as { rows: never[] }).rows;
    },
  };
  return engine;
}

/** PGlite through drizzle takes no parameters here; test queries pass only ids and plain strings. */
function inline(query: string, params: unknown[]): string {
  return query.replace(/\$(\d+)/g, (_match, index: string) => {
    const value = params[Number(index) - 1];
    return `'${String(value).replace(/'/g, "''")}'`;
  });
}

export function json<T = Record<string, unknown>>(response: LightMyRequestResponse): T {
  return response.json() as T;
}

/** Asserts a TM Forum error body: status, code, reason, message and, when given, the field. */
export function expectError(
  t: Test,
  response: { statusCode: number; json(): unknown },
  status: number,
  code: string,
  field?: string,
) {
  t.equal(response.statusCode, status, `status ${status}`);
  const body = response.json() as Record<string, unknown>;
  t.equal(body.status, String(status), "status echoed as a string");
  t.equal(body.code, code, `code ${code}`);
  t.type(body.reason, "string", "has a reason");
  t.type(body.message, "string", "has a message");
  t.equal(body["@type"], "Error");
  if (field !== undefined) t.equal(body.field, field, `names field ${field}`);
}
