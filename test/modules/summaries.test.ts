import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import t from "tap";
import { RECORD_RATED_SQL, recordRated } from "../../src/modules/charging/summaries.js";
import { hasServers, startEngine } from "../support/engine.js";
import { waitFor } from "../support/faults.js";

/**
 * The one statement that writes rated rows with their usage summaries, under a race: two transactions rating the
 * same record at once (a zombie worker beside its successor). The second waits on the first's summary row, then
 * finds the record inserted: it reports that it inserted fewer rows than it counted, which `recordRated` turns into
 * `RatedRace`, so its transaction rolls back and the loop retries — the summary never counts the record twice.
 */
t.test(
  "two transactions rating the same record: the second counts none of it",
  { skip: hasServers ? false : "needs PostgreSQL (two sessions)" },
  async (t) => {
    const engine = await startEngine(t, { driver: "postgres" });
    const url = engine.config.databaseUrl as string;
    const first = postgres(url, { max: 1, onnotice: () => {} });
    const second = postgres(url, { max: 1, onnotice: () => {} });
    t.teardown(async () => {
      await first.end();
      await second.end();
    });
    const row = {
      usageId: "019cf000-0000-7000-8000-0000000000a1",
      billingAccountId: "019cf000-0000-7000-8000-0000000000b1",
      productId: "019cf000-0000-7000-8000-0000000000c1",
      startedAt: "2026-03-15T10:00:00Z",
      tariffId: "tariff",
      tariffVersion: 1,
      recordType: "voice",
      destination: "national",
      roaming: "home",
      quantity: 60,
      allowanceUnits: 0,
      chargedUnits: 60,
      draws: [],
      amount: "0.10",
      currency: "EUR",
      prepaid: false,
      spendPeriod: "2026-03-01",
    };
    const at = "2026-03-15T10:00:05Z";
    let racing: Promise<void> | undefined;
    await first.begin(async (tx) => {
      const [mine] = await tx.unsafe(RECORD_RATED_SQL, [tx.json([row] as never) as never, at]);
      t.same(mine, { fresh: 1, inserted: 1 });
      // The second starts while the first holds its rows, and waits on the summary row's lock.
      racing = drizzle(second).transaction((other) => recordRated(other, [row], at));
      racing.catch(() => {});
      await waitFor(
        "the second transaction to wait on the first",
        async () => {
          // Asked from a third session: inside a transaction pg_stat_activity keeps its first snapshot.
          const [waiting] = await engine.sql<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
          );
          return (waiting?.n ?? 0) > 0;
        },
        10_000,
      );
    });
    await t.rejects(
      racing as Promise<void>,
      { name: "RatedRace", message: /inserted by another transaction/ },
      "the second reports the race, and its transaction rolls back",
    );
    const [summary] = await first`select last_seq::int as n, quantity::int as q from usage_summaries`;
    t.same(summary, { n: 1, q: 60 }, "the summary counts the record once");
    t.equal(await engine.count("rated_usage"), 1);
  },
);
