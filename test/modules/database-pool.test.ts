import postgres from "postgres";
import t from "tap";
import { healingClient } from "../../src/platform/database.js";
import { hasServers, services } from "../support/engine.js";

/**
 * Issue 20, finding 10: PostgreSQL ends pooled connections (a restart, pg_terminate_backend); the next statement
 * on one fails, and postgres.js 3.4 may keep the dead connection for good. The healing pool replaces itself and
 * runs a read once more; a write is not re-run.
 */

const skip = !hasServers && "needs PostgreSQL";

async function terminateAll(admin: postgres.Sql, pool: postgres.Sql, connections: number): Promise<void> {
  const rows = await Promise.all(
    Array.from({ length: connections }, () => pool.unsafe<{ pid: number }[]>("select pg_backend_pid() as pid")),
  );
  for (const pid of new Set(rows.map((row) => row[0]?.pid))) {
    await admin.unsafe("select pg_terminate_backend($1)", [pid as number]);
  }
}

/**
 * Ends the pool's only connection while a read runs on it, so the read meets the dead connection for certain
 * (ended while idle, postgres.js may notice the close before the next statement and nothing fails).
 */
async function terminateDuringRead(admin: postgres.Sql, pool: postgres.Sql): Promise<Promise<unknown>> {
  const [row] = await pool.unsafe<{ pid: number }[]>("select pg_backend_pid() as pid");
  const pid = row?.pid as number;
  const read = Promise.resolve(pool.unsafe("select pg_sleep(0.6) as slept, 'marker-read' as marker"));
  read.catch(() => {});
  for (;;) {
    const [active] = await admin.unsafe<{ n: number }[]>(
      "select count(*)::int as n from pg_stat_activity where pid = $1 and state = 'active' and query like '%marker-read%'",
      [pid],
    );
    if (active?.n) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  await admin.unsafe("select pg_terminate_backend($1)", [pid]);
  return read;
}

t.test("reads after the server ended the pooled connections answer; writes report the error", { skip }, async (t) => {
  const url = services.pgUrl as string;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));

  // The unhealed driver: a read on the connection the server ended fails.
  const raw = postgres(url, { max: 1, onnotice: () => {} });
  await t.rejects(
    terminateDuringRead(admin, raw),
    { code: /ECONNRESET|CONNECTION_CLOSED|57P01/ },
    "plain postgres.js fails",
  );
  // Not awaited: ending a pool holding a reset connection never settles (porsager/postgres#1130).
  raw.end({ timeout: 1 }).catch(() => {});

  let opened = 0;
  const pool = healingClient((extra) => {
    opened += 1;
    return postgres(url, { max: 1, onnotice: () => {}, ...(extra as object) });
  });
  t.teardown(() => pool.current().end({ timeout: 1 }));
  for (let round = 0; round < 3; round++) {
    // Ended while idle: the next reads answer whether or not postgres.js noticed first.
    await terminateAll(admin, pool.sql, 1);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => pool.sql.unsafe<{ n: number }[]>("select $1::int as n", [i])),
    );
    t.same(
      answers.map((rows) => rows[0]?.n),
      [0, 1, 2, 3, 4, 5],
      `round ${round}: every read answered`,
    );
    // Ended under a running read: the read fails on the dead pool and answers from a fresh one.
    const before = opened;
    t.same(
      await terminateDuringRead(admin, pool.sql),
      [{ slept: "", marker: "marker-read" }],
      `round ${round}: the read running when its connection ended answered`,
    );
    t.ok(opened > before, `round ${round}: the pool was replaced`);
  }

  t.same(await pool.sql.unsafe("select 1 as one"), [{ one: 1 }], "the pool works on");
});

t.test(
  "a dead connection: a read runs once more on a fresh pool, a write and a transaction are not re-run",
  async (t) => {
    const calls: string[] = [];
    let pools = 0;
    // A stand-in for postgres.js: the 1st, 3rd and 4th statements meet a connection the server had reset.
    const failing = new Set([1, 3, 4]);
    const fake = () => {
      const pool = ++pools;
      const fail = () => Promise.reject(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
      const unsafe = (query: string) => {
        calls.push(`${pool}: ${query}`);
        const result = failing.has(calls.length) ? fail() : Promise.resolve([{ pool }]);
        return Object.assign(result, { values: () => result });
      };
      const begin = () => {
        calls.push(`${pool}: begin`);
        return fail();
      };
      return {
        unsafe,
        begin,
        options: { parsers: {}, serializers: {} },
        end: () => Promise.resolve(),
      } as unknown as postgres.Sql;
    };
    const healing = healingClient(fake);
    t.same(await healing.sql.unsafe("select 1"), [{ pool: 2 }], "the read answered from the fresh pool");
    await t.rejects(Promise.resolve(healing.sql.unsafe("update t set x = 1")), { code: "ECONNRESET" });
    await t.rejects(
      healing.sql.begin(async () => {}),
      { code: "ECONNRESET" },
    );
    t.same(calls, ["1: select 1", "2: select 1", "2: update t set x = 1", "3: begin"], "nothing else was re-run");
    t.equal(pools, 4, "each dead connection replaced its pool");
  },
);
