import { AsyncLocalStorage } from "node:async_hooks";
import type { Db } from "../../src/platform/database.js";

/**
 * Database time of a piece of engine work, measured in the engine's own process: the engine's drizzle handle is
 * given a thin wrapper around its postgres.js client (bench only; the engine's code is unchanged), and every
 * statement sent while the work runs is timed from the moment the driver is asked to run it until its result
 * reaches the caller. That is a client-side round trip on loopback: postgres.js encoding the parameters, the
 * server's parsing, planning and execution, the result on the wire and postgres.js decoding it; not the engine's
 * (nor drizzle's) code before or after. Transactions are
 * timed too: BEGIN from `begin()` to the engine's callback starting (postgres.js sends `begin` and waits for it
 * first), COMMIT from the callback's end to `begin()` settling (postgres.js sends `commit` and waits for it).
 *
 * Only statements sent within the async context of `measureStatements` count (AsyncLocalStorage), so background
 * work of the engine (another module's timers) never lands in a measurement. A piece of work's database time is
 * the union of its statements' intervals: statements sent together (Promise.all) and answered in one pipeline
 * count the time they overlap once, and each statement's own share (`ownMs`) is the part of the union it adds.
 */

export interface TimedStatement {
  /** The SQL text as sent (placeholders, not values), or BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE. */
  text: string;
  startMs: number;
  endMs: number;
  /**
   * Its own share of the database time: from when it was sent (or, while a statement sent before it was still
   * unanswered, from that one's answer: pipelined statements are answered in order) to its answer. The shares of
   * a piece of work add up to its database time.
   */
  ownMs: number;
  /**
   * Network round trips it takes: postgres.js sends a statement with parameters that is not prepared on its
   * connection (drizzle asks for unnamed ones) as Parse and Describe, waits for the parameter types, then sends
   * Bind and Execute: two. A prepared one, or one without parameters, one (the first use of a prepared statement
   * on a connection takes two as well; counted as one).
   */
  roundTrips: number;
}

export interface Measured<T> {
  result: T;
  wallMs: number;
  /** The union of the statements' intervals within the work's wall time (the sum of their `ownMs`). */
  dbMs: number;
  statements: TimedStatement[];
}

const current = new AsyncLocalStorage<TimedStatement[]>();

type Pending = PromiseLike<unknown> & { values(): PromiseLike<unknown> };
type Client = Record<PropertyKey, unknown> & ((...args: unknown[]) => unknown);

/**
 * Installs the timing wrapper on a PostgreSQL engine's drizzle handle (its session's postgres.js client).
 * `prepared`: a what-if, never the default: every statement is sent as a named prepared statement (postgres.js
 * `prepare: true`, kept per connection) instead of the unnamed one drizzle asks for, which postgres.js sends in two
 * round trips when it has parameters (Parse and Describe, then Bind and Execute) and the server parses and plans
 * every time.
 */
export function timeStatementsOf(db: Db, options: { prepared?: boolean } = {}): void {
  const session = (db as unknown as { session?: { client?: Client } }).session;
  if (session?.client === undefined) throw new Error("not a drizzle postgres-js handle: nothing to time");
  session.client = instrument(session.client, options.prepared === true);
}

/** Runs `work` and answers its wall time, its database time and its statements. */
export async function measureStatements<T>(work: () => Promise<T>): Promise<Measured<T>> {
  const statements: TimedStatement[] = [];
  const started = performance.now();
  // Awaited inside the context: a lazy query (drizzle's) is sent when it is awaited.
  const result = await current.run(statements, async () => await work());
  const ended = performance.now();
  // In the order they were sent; each one's own time starts where the time already counted ends.
  statements.sort((a, b) => a.startMs - b.startMs);
  let counted = started;
  let dbMs = 0;
  for (const statement of statements) {
    const end = Math.min(ended, statement.endMs);
    statement.ownMs = Math.max(0, end - Math.max(statement.startMs, counted));
    dbMs += statement.ownMs;
    counted = Math.max(counted, end);
  }
  return { result, wallMs: ended - started, dbMs, statements };
}

function instrument(client: Client, prepared: boolean): Client {
  return new Proxy(client, {
    get(target, property) {
      if (property === "unsafe") {
        return (query: string, params?: unknown[], options?: { prepare?: boolean }) =>
          timed(
            query,
            () =>
              (target.unsafe as (...a: unknown[]) => Pending)(
                query,
                params,
                prepared ? { ...options, prepare: true } : options,
              ),
            (params?.length ?? 0) > 0 && !prepared && options?.prepare !== true ? 2 : 1,
          );
      }
      if (property === "begin" || property === "savepoint") {
        return (...args: unknown[]) => transaction(target, property, args, prepared);
      }
      return Reflect.get(target, property, target);
    },
    apply(target, self, args) {
      // A tagged-template statement (drizzle sends none; counted should the engine ever do so); sql(value) helpers
      // are not statements and pass through.
      const strings = args[0];
      if (Array.isArray(strings) && "raw" in strings) {
        return timed(strings.join("$?"), () => Reflect.apply(target, self, args) as Pending);
      }
      return Reflect.apply(target, self, args);
    },
  });
}

function timed(text: string, make: () => Pending, roundTrips = 1): Pending {
  const log = current.getStore();
  const pending = make();
  if (log === undefined) return pending;
  const run = (start: () => PromiseLike<unknown>) => {
    const startMs = performance.now();
    return Promise.resolve(start()).then(
      (value) => {
        log.push({ text, startMs, endMs: performance.now(), ownMs: 0, roundTrips });
        return value;
      },
      (error: unknown) => {
        log.push({ text, startMs, endMs: performance.now(), ownMs: 0, roundTrips });
        throw error;
      },
    );
  };
  return {
    values: () => run(() => pending.values()),
    // biome-ignore lint/suspicious/noThenProperty: a thenable, as the postgres.js query it stands for
    then: (resolve, reject) => run(() => pending).then(resolve, reject),
  };
}

function transaction(
  target: Client,
  kind: "begin" | "savepoint",
  args: unknown[],
  prepared: boolean,
): Promise<unknown> {
  const log = current.getStore();
  const work = args[args.length - 1] as (tx: Client) => unknown;
  const head = args.slice(0, -1);
  const open = target[kind] as (...a: unknown[]) => Promise<unknown>;
  if (log === undefined) return open(...head, (tx: Client) => work(instrument(tx, prepared)));
  const asked = performance.now();
  let bodyEnd = 0;
  return open(...head, async (tx: Client) => {
    const text = kind === "begin" ? "BEGIN" : "SAVEPOINT";
    log.push({ text, startMs: asked, endMs: performance.now(), ownMs: 0, roundTrips: 1 });
    try {
      return await work(instrument(tx, prepared));
    } finally {
      bodyEnd = performance.now();
    }
  }).then(
    (value) => {
      const text = kind === "begin" ? "COMMIT" : "RELEASE SAVEPOINT";
      log.push({ text, startMs: bodyEnd, endMs: performance.now(), ownMs: 0, roundTrips: 1 });
      return value;
    },
    (error: unknown) => {
      if (bodyEnd > 0) {
        log.push({ text: "ROLLBACK", startMs: bodyEnd, endMs: performance.now(), ownMs: 0, roundTrips: 1 });
      }
      throw error;
    },
  );
}
