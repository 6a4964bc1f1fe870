import t from "tap";
import { POISON_DELIVERIES } from "../../src/modules/charging/rating.service.js";
import { hasServers } from "../support/engine.js";
import {
  calls,
  checkInvariants,
  faultSystem,
  post,
  ratedOrSuspended,
  readyWorkers,
  replayMatches,
  report,
  stopWorkers,
  waitFor,
  worker,
} from "../support/faults.js";

/**
 * DESIGN.md §5: duplicates flooded in parallel, 10,000 CDRs on one line from many connections, and a poison
 * record, with two worker processes rating; each ends with the fault checks and a replay.
 */

const skip = !hasServers && "needs PostgreSQL and Redis";

t.test("duplicates flooded in parallel are accepted once and rated once", { skip }, async (t) => {
  const { engine, lines } = await faultSystem(t);
  const { workers, accepted: warm } = await readyWorkers(engine, lines, 2);
  t.teardown(() => stopWorkers(workers));
  const batch = calls(lines, 100, "dup");
  // 24 senders post the same 100 records at once, three times each.
  const answers = await Promise.all(
    Array.from({ length: 24 }, async () => {
      let accepted = 0;
      for (let round = 0; round < 3; round++) accepted += (await post(engine, batch)).accepted;
      return accepted;
    }),
  );
  const accepted = answers.reduce((sum, count) => sum + count, 0);
  t.equal(accepted, 100, "7,200 copies: each record accepted once");
  const drainMs = await waitFor("rating", async () => (await ratedOrSuspended(engine)) >= warm + accepted);
  await stopWorkers(workers);
  const { rated } = await checkInvariants(t, engine, warm + accepted);
  const replayMs = await replayMatches(t, engine);
  report(
    t,
    `fault duplicate-flood: 24 senders × 3 × 100 same records → ${accepted} accepted, ${rated - warm} rated once ` +
      `(${drainMs} ms); 0 lost, 0 charged twice; replay ${replayMs} ms`,
  );
});

t.test("10,000 CDRs on one line from many connections", { skip }, async (t) => {
  const { engine, lines } = await faultSystem(t, { accounts: 2 });
  const { workers, accepted: warm } = await readyWorkers(engine, lines, 2);
  t.teardown(() => stopWorkers(workers));
  const line = lines[0] as (typeof lines)[number];
  const started = Date.now();
  // 10 senders, 10 batches of 100 each, all for the same line.
  const answers = await Promise.all(
    Array.from({ length: 10 }, async (_, sender) => {
      let accepted = 0;
      for (let batch = 0; batch < 10; batch++)
        accepted += (await post(engine, calls([line], 100, `hot${sender}-`))).accepted;
      return accepted;
    }),
  );
  const accepted = answers.reduce((sum, count) => sum + count, 0);
  t.equal(accepted, 10_000);
  await waitFor("rating", async () => (await ratedOrSuspended(engine)) >= warm + accepted, 90_000);
  const elapsed = Date.now() - started;
  await stopWorkers(workers);
  const { rated } = await checkInvariants(t, engine, warm + accepted);
  const [spend] = await engine.sql<{ rows: number; amount: string }>(
    "select count(*)::int as rows, sum(amount)::text as amount from rated_usage where product_id = $1",
    [line.lineId],
  );
  t.ok(Number(spend?.rows) >= 10_000, "every one of them is a rated row of the line");
  const replayMs = await replayMatches(t, engine);
  report(
    t,
    `fault hot-line: 10,000 CDRs on one line from 10 connections → ${rated - warm} rated in ${elapsed} ms ` +
      `(accept and rate), line total ${spend?.amount} EUR; ledger = Redis; replay ${replayMs} ms`,
  );
});

t.test("a poison record goes to suspense after bounded deliveries; the rest is rated", { skip }, async (t) => {
  const { engine, lines } = await faultSystem(t);
  const poisoned = lines[2] as (typeof lines)[number];
  // Every worker's charging step fails for this account (an injected fault: a record the loop cannot apply).
  const workers = [worker(engine, `poison:${poisoned.accountId}`), worker(engine, `poison:${poisoned.accountId}`)];
  t.teardown(() => stopWorkers(workers));
  let accepted = 0;
  for (let batch = 0; batch < 3; batch++) accepted += (await post(engine, calls(lines, 40, "poison"))).accepted;
  const started = Date.now();
  await waitFor("rating and suspense", async () => (await ratedOrSuspended(engine)) >= accepted, 90_000);
  const settledMs = Date.now() - started;
  await stopWorkers(workers);
  const { rated, suspended } = await checkInvariants(t, engine, accepted);
  const reasons = await engine.sql<{ reason: string; message: string; product_id: string }>(
    `select s.reason, s.message, u.product_id::text from usage_suspense s join usage_records u on u.id = s.usage_id`,
  );
  t.equal(suspended, 30, "the poisoned line's 30 records are in suspense");
  t.ok(
    reasons.every(
      (row) =>
        row.reason === "rating_failed" &&
        row.product_id === poisoned.lineId &&
        row.message.includes(`rating failed ${POISON_DELIVERIES} times`),
    ),
    "with the reason, after the bounded number of deliveries",
  );
  t.equal(rated, accepted - 30, "every other record is rated");
  const replayMs = await replayMatches(t, engine);
  report(
    t,
    `fault poison: ${accepted} accepted; the poisoned account's ${suspended} records in suspense (rating_failed after ` +
      `${POISON_DELIVERIES} deliveries) in ${settledMs} ms, the other ${rated} rated; replay (suspense stays) ${replayMs} ms`,
  );
});
