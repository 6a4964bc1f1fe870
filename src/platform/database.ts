import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { type SQL, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { DB_CONNECT_TIMEOUT_SECONDS, DB_IDLE_TIMEOUT_SECONDS } from "../shared/limits.js";
import { flushDeferred, openDeferred } from "./deferred-inserts.js";

/**
 * The database handle every repository takes. A transaction is a Db too, so repositories never know
 * whether they run inside one; services own transactions (STYLE.md). On PGlite a query on the root
 * handle while a transaction is open waits forever, so callers pass the transaction handle down.
 */
export type Db = PgDatabase<PgQueryResultHKT>;

export interface Database {
  readonly kind: "postgres" | "pglite";
  readonly db: Db;
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  migrate(): Promise<void>;
  close(): Promise<void>;
  stats(): { poolMax: number; transactionsInFlight: number };
}

export interface DatabaseOptions {
  /** PostgreSQL URL; undefined selects PGlite. */
  databaseUrl: string | undefined;
  /** PGlite's directory, or "memory://" for a throwaway in-memory database. */
  dataDir: string;
  poolMax: number;
  /**
   * An in-memory PGlite starts from this data directory (a tarball from PGlite's dumpDataDir) instead of an empty
   * cluster: the test runner migrates one and every test engine loads it, which is several times faster than
   * initialising and migrating each one. Ignored for PostgreSQL and for PGlite on disk.
   */
  seed?: Blob | undefined;
  /** Who opens an embedded data folder, as its lock file names it to anyone else who tries ("the server on port 3000"). */
  holder?: string | undefined;
}

/**
 * An embedded data folder is open in another process: a second PGlite on the same folder would corrupt it
 * (STYLE.md), so command-line tools and a second server refuse, naming who holds it.
 */
export class DataFolderInUse extends Error {
  override name = "DataFolderInUse";
}

const LOCK_FILE = "engine.lock";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but is another user's; ESRCH: it is gone.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the data folder's lock file (created exclusively; a lock whose process is gone is stale and replaced)
 * and answers how to give it back. Held for as long as the database is open.
 */
function lockDataFolder(dataDir: string, holder: string): () => void {
  const file = path.join(dataDir, LOCK_FILE);
  // `since` is for a person reading the file (wall time); the lock itself is the file and its live pid.
  const mine = JSON.stringify({ pid: process.pid, holder, since: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, mine, { flag: "wx" });
      return () => {
        try {
          if (readFileSync(file, "utf8") === mine) rmSync(file, { force: true });
        } catch {
          // Already gone (someone removed the folder): nothing to give back.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      let held: { pid?: number; holder?: string } = {};
      try {
        held = JSON.parse(readFileSync(file, "utf8")) as typeof held;
      } catch {
        // A lock file cut short by a crash while it was written: treated as stale.
      }
      if (typeof held.pid === "number" && held.pid !== process.pid && isAlive(held.pid)) {
        throw new DataFolderInUse(
          `the embedded data folder ${dataDir} is in use by ${held.holder ?? "another process"} (pid ${held.pid}); ` +
            "stop it first, or do this through its API",
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new DataFolderInUse(`could not take the lock of the embedded data folder ${dataDir}`);
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../migrations", import.meta.url));

/** Any fixed number works; it only has to be the same in every process that migrates. */
const MIGRATION_LOCK_KEY = 7_201_442_117;
const STATEMENT_TIMEOUT_MS = 30_000;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl === undefined
    ? openPglite(options.dataDir, options.seed, options.holder ?? `process ${process.pid}`)
    : openPostgres(options.databaseUrl, options.poolMax);
}

/** Work to run once a transaction has committed (cache updates, notices to other processes). */
const committed = new WeakMap<object, Array<() => void>>();

/**
 * Runs `work` after `tx` commits; never if it rolls back. On a handle that is not a transaction opened through
 * Database.transaction the write is already committed, so it runs at once.
 */
export function afterCommit(tx: Db, work: () => void): void {
  const hooks = committed.get(tx);
  if (hooks === undefined) work();
  else hooks.push(work);
}

function withTransactionCount(base: Omit<Database, "transaction" | "stats">, poolMax: number): Database {
  let inFlight = 0;
  return {
    ...base,
    async transaction(work) {
      inFlight += 1;
      const hooks: Array<() => void> = [];
      let result: Awaited<ReturnType<typeof work>>;
      try {
        result = await base.db.transaction(async (raw) => {
          const tx = raw as unknown as Db;
          openDeferred(tx);
          committed.set(tx, hooks);
          const value = await work(tx);
          await flushDeferred(tx);
          return value;
        });
      } finally {
        inFlight -= 1;
      }
      // The transaction has committed: a failing hook must not make it look failed, nor stop the others.
      for (const hook of hooks) {
        try {
          hook();
        } catch (error) {
          process.emitWarning(`after-commit work failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return result;
    },
    stats: () => ({ poolMax, transactionsInFlight: inFlight }),
  };
}

/**
 * Errors that mean the connection was dead before the statement ran: the server ended it (57P01 admin_shutdown,
 * 57P02 crash_shutdown) or its socket had closed. postgres.js drops such a connection from its pool.
 */
const DEAD_CONNECTION = new Set([
  "57P01",
  "57P02",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
]);
const READ_ONLY_STATEMENT = /^\s*select\b/i;
/** A replaced pool's statements in flight get this long to finish before its sockets are destroyed. */
const RETIRED_POOL_GRACE_SECONDS = 5;

function deadConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && DEAD_CONNECTION.has(code);
}

/**
 * A postgres.js pool that heals after PostgreSQL dropped its connections (a restart ends every one). postgres.js
 * 3.4 can keep such a connection in its pool for good (porsager/postgres#1130, #1199: a query on it never
 * settles), so on the first dead-connection error the whole pool is replaced by a fresh one (same settings and
 * type parsers) and the old one is ended in the background. A statement outside a transaction that only reads
 * (`select`) then runs once more, on the fresh pool; a write is never re-run (it may have committed before its
 * connection died) and neither is a transaction: their callers get the error (a 503) and retry.
 */
/** postgres.js's `socket` option (not in its typings): the connection it should use instead of opening one. */
export type SocketOption = { socket: (options: { host: string[]; port: number[]; path?: string }) => Socket };

export function healingClient(open: (extra: SocketOption) => postgres.Sql): {
  sql: postgres.Sql;
  current(): postgres.Sql;
} {
  // Each pool's sockets, so a retired pool's can be destroyed: its end() may never settle (the same bug).
  const socketsOf = new WeakMap<postgres.Sql, Set<Socket>>();
  const openTracked = () => {
    const sockets = new Set<Socket>();
    const sql = open({
      socket: (options) => {
        const socket = new Socket();
        sockets.add(socket);
        // postgres.js treats a socket it is given as connected (its own connect timer never runs): this one
        // fails a connection that is not up within DB_CONNECT_TIMEOUT_SECONDS the way postgres.js's timer would.
        const timer = setTimeout(() => {
          socket.destroy(Object.assign(new Error("connecting to PostgreSQL timed out"), { code: "CONNECT_TIMEOUT" }));
        }, DB_CONNECT_TIMEOUT_SECONDS * 1000);
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => {
          clearTimeout(timer);
          sockets.delete(socket);
        });
        // Writes made before the connection is up are buffered by the socket; errors reach postgres.js's listener.
        if (options.path) socket.connect(options.path);
        else socket.connect(Number(options.port[0]), options.host[0] as string);
        return socket;
      },
    });
    socketsOf.set(sql, sockets);
    return sql;
  };
  let current = openTracked();
  const retire = (failed: postgres.Sql) => {
    if (failed !== current) return;
    const next = openTracked();
    Object.assign(next.options.parsers, failed.options.parsers);
    Object.assign(next.options.serializers, failed.options.serializers);
    current = next;
    failed.end({ timeout: RETIRED_POOL_GRACE_SECONDS }).catch(() => {});
    setTimeout(
      () => {
        for (const socket of socketsOf.get(failed) ?? []) socket.destroy();
      },
      RETIRED_POOL_GRACE_SECONDS * 1000 + 1000,
    ).unref();
  };
  const unsafe = (query: string, params?: unknown[], options?: object) => {
    type Pending = ReturnType<postgres.Sql["unsafe"]>;
    const attempt = async <T>(shape: (pending: Pending) => PromiseLike<T>) => {
      const client = current;
      try {
        return await shape(client.unsafe(query, params as never[], options as never));
      } catch (error) {
        if (!deadConnection(error)) throw error;
        retire(client);
        if (!READ_ONLY_STATEMENT.test(query)) throw error;
        return await shape(current.unsafe(query, params as never[], options as never));
      }
    };
    // postgres.js queries are lazy: drizzle awaits one or asks for `.values()`; either form is retried.
    return {
      values: () => attempt((pending) => pending.values()),
      // biome-ignore lint/suspicious/noThenProperty: a thenable, as the postgres.js query it stands for
      then: (resolve: (value: unknown) => unknown, reject: (reason: unknown) => unknown) =>
        attempt((pending) => pending).then(resolve, reject),
    };
  };
  const begin = (...args: unknown[]) => {
    const client = current;
    return (client.begin as (...a: unknown[]) => Promise<unknown>)(...args).catch((error: unknown) => {
      if (deadConnection(error)) retire(client);
      throw error;
    });
  };
  const sql = new Proxy(current, {
    get: (_target, property) => {
      if (property === "unsafe") return unsafe;
      if (property === "begin") return begin;
      return Reflect.get(current, property, current);
    },
  });
  return { sql, current: () => current };
}

function openPostgres(url: string, poolMax: number): Database {
  const pool = healingClient((extra) =>
    postgres(url, {
      ...(extra as object),
      max: poolMax,
      idle_timeout: DB_IDLE_TIMEOUT_SECONDS,
      connect_timeout: DB_CONNECT_TIMEOUT_SECONDS,
      onnotice: () => {},
      connection: { application_name: "bss", statement_timeout: STATEMENT_TIMEOUT_MS },
    }),
  );
  const db = drizzlePostgres(pool.sql) as unknown as Db;
  return withTransactionCount(
    {
      kind: "postgres",
      db,
      async ping() {
        await pool.sql.unsafe("select 1");
      },
      async migrate() {
        // The advisory lock must be held by the connection that runs the migrations, so this client
        // has exactly one connection; two engines starting together then migrate one after the other.
        const single = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: DB_CONNECT_TIMEOUT_SECONDS });
        try {
          await single`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
          await migratePostgres(drizzlePostgres(single), { migrationsFolder: MIGRATIONS_FOLDER });
          await single`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
        } finally {
          await single.end({ timeout: 5 });
        }
      },
      async close() {
        await pool.current().end({ timeout: 5 });
      },
    },
    poolMax,
  );
}

async function openPglite(dataDir: string, seed: Blob | undefined, holder: string): Promise<Database> {
  const inMemory = dataDir.startsWith("memory://");
  const directory = inMemory ? dataDir : path.join(dataDir, "pglite");
  if (!inMemory) mkdirSync(directory, { recursive: true });
  const unlock = inMemory ? () => undefined : lockDataFolder(dataDir, holder);
  let client: PGlite;
  try {
    client = await PGlite.create(
      inMemory && seed !== undefined ? { dataDir: directory, loadDataDir: seed } : { dataDir: directory },
    );
  } catch (error) {
    unlock();
    throw error;
  }
  const db = drizzlePglite(client) as unknown as Db;
  return withTransactionCount(
    {
      kind: "pglite",
      db,
      async ping() {
        await db.execute(sql`select 1`);
      },
      async migrate() {
        // PGlite has one session and one owning process; no lock is needed.
        await migratePglite(drizzlePglite(client), { migrationsFolder: MIGRATIONS_FOLDER });
      },
      async close() {
        try {
          await client.close();
        } finally {
          unlock();
        }
      },
    },
    1,
  );
}

/** Rows of a raw SQL query, whichever driver ran it (postgres.js answers an array, PGlite an object with rows). */
export async function queryRows<T>(db: Db, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as T[] | { rows: T[] };
  return Array.isArray(result) ? result : result.rows;
}
