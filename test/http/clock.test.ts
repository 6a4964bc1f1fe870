import t from "tap";
import { loadConfig } from "../../src/config.js";
import { postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, everyCase, expectError, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";

/**
 * The test clock over HTTP (DESIGN.md §10 "A test clock for operators"): read it, move it forward by a duration or
 * to an instant, each crossed day's jobs run once with that day as their business date; every bad request is a
 * clear error that moves nothing; without the flag the routes do not exist.
 */

const CLOCK = "/api/v1/admin/clock";
const DAY_MS = 86_400_000;

t.test(
  "without BSS_TEST_CLOCK the clock routes do not exist; the flag is refused with a server database",
  async (t) => {
    const engine = await startEngine(t);
    t.equal((await engine.request("GET", CLOCK)).statusCode, 404);
    t.equal((await engine.request("POST", CLOCK, { body: { advance: "P1D" } })).statusCode, 404);
    t.equal((await engine.request("GET", "/api/v1/admin/jobs")).statusCode, 200, "the jobs list always exists");
    t.throws(
      () =>
        loadConfig({
          BSS_TEST_CLOCK: "true",
          DATABASE_URL: "postgres://x@127.0.0.1/db",
          BSS_SECRETS_KEY: "a".repeat(64),
        }),
      /BSS_TEST_CLOCK=true with DATABASE_URL is refused/,
    );
    t.equal(
      loadConfig({
        BSS_TEST_CLOCK: "true",
        BSS_ALLOW_TEST_CLOCK_WITH_SERVER: "true",
        DATABASE_URL: "postgres://x@127.0.0.1/db",
        BSS_SECRETS_KEY: "a".repeat(64),
      }).testClock,
      true,
    );
  },
);

for (const driver of drivers) {
  t.test(`${driver}: the clock moves forward, running each crossed day's jobs once`, async (t) => {
    const engine = await startEngine(t, { driver, testClock: true });
    const read = async () => (await engine.request("GET", CLOCK)).json() as { now: string; offsetSeconds: number };
    const before = await read();
    t.equal(before.offsetSeconds, 0, "no offset before the first move");
    t.ok(Math.abs(Date.parse(before.now) - Date.now()) < 5_000, "business time is the wall clock");
    await engine.app.scheduler.tick();

    const moved = await engine.request("POST", CLOCK, { body: { advance: "P1M" } });
    t.equal(moved.statusCode, 200, moved.body);
    const body = moved.json();
    const previous = new Date(body.previous);
    const expected = new Date(previous);
    expected.setUTCMonth(previous.getUTCMonth() + 1);
    if (expected.getUTCDate() !== previous.getUTCDate()) expected.setUTCDate(0); // a month end clamps
    t.equal(body.now, expected.toISOString(), "a calendar month later");
    t.same(body.drained, { rated: 0, suspense: 0 });
    const purges = body.ran.filter((run: { job: string }) => run.job === "ws-ticket-purge");
    const firstDay = Math.floor(Date.parse(body.previous) / DAY_MS) + 1;
    const crossed = Math.floor(Date.parse(body.now) / DAY_MS) - firstDay + 1;
    t.ok(crossed >= 28 && crossed <= 31, `${crossed} days crossed`);
    t.same(
      purges.map((run: { slot: string; outcome: string }) => `${run.slot} ${run.outcome}`),
      Array.from({ length: crossed }, (_, i) => `${new Date((firstDay + i) * DAY_MS).toISOString().slice(0, 10)} done`),
      "the daily job ran once for each crossed day, in order",
    );
    t.ok(
      body.ran.every((run: { outcome: string }) => run.outcome === "done"),
      "every job of every day done",
    );
    const after = await read();
    t.ok(after.offsetSeconds >= crossed * 86_400 - 86_400, `the offset is a month (${after.offsetSeconds} s)`);
    t.ok(Date.parse(after.now) >= Date.parse(body.now), "and business time stays there");
    const outcomes = await engine.sql<{ slot: string; outcome: { day: string } }>(
      "select slot, outcome from job_runs where job = 'ws-ticket-purge' order by slot",
    );
    for (const row of outcomes.slice(1)) {
      t.equal(row.outcome.day, `${row.slot}T00:00:00.000Z`, `the ${row.slot} run had its own business date`);
    }

    const to = new Date(Date.parse(after.now) + 2 * DAY_MS).toISOString();
    const movedTo = await engine.request("POST", CLOCK, { body: { to } });
    t.equal(movedTo.statusCode, 200, movedTo.body);
    t.equal(movedTo.json().now, to);
    const jobs = (await engine.request("GET", "/api/v1/admin/jobs")).json();
    const purge = jobs.find((job: { name: string }) => job.name === "ws-ticket-purge");
    t.equal(purge.lastDoneSlot, to.slice(0, 10), "the jobs list shows the last slot done");
    t.ok(purge.runs.length > 0 && purge.runs.every((run: { state: string }) => run.state === "done"));
  });

  if (everyCase(driver))
    t.test(`${driver}: bad moves are refused and move nothing`, async (t) => {
      const engine = await startEngine(t, { driver, testClock: true });
      const offset = async () => (await engine.request("GET", CLOCK)).json().offsetSeconds as number;
      const cases: Array<[unknown, number, string]> = [
        [{ advance: "P1X" }, 400, "advance"],
        [{ advance: "P" }, 400, "advance"],
        [{ advance: "-P1D" }, 400, "advance"],
        [{ to: "2027-02-30" }, 400, "to"],
        [{ to: "yesterday" }, 400, "to"],
        [{ advance: "P1D", to: "2030-01-01T00:00:00Z" }, 400, ""],
        [{}, 400, ""],
        [{ advance: 1 }, 400, "advance"],
        [{ advance: "P1D", extra: true }, 400, ""],
        [{ to: "2020-01-01T00:00:00Z" }, 409, ""],
        [{ advance: "PT0S" }, 409, ""],
        [{ advance: "P2Y" }, 422, ""],
        [{ advance: "P367D" }, 422, ""],
      ];
      for (const [body, status, field] of cases) {
        const answer = await engine.request("POST", CLOCK, { body });
        t.equal(answer.statusCode, status, `${JSON.stringify(body)} → ${status}: ${answer.body}`);
        if (field !== "") t.match(answer.json(), { "@type": "Error" }, "a TMF error body");
        if (field !== "") t.match(answer.body, field, `names ${field}`);
      }
      t.equal(
        (await engine.request("POST", CLOCK, { rawBody: "{not json", headers: { "content-type": "application/json" } }))
          .statusCode,
        400,
      );
      t.equal(
        (await engine.request("POST", CLOCK, { key: engine.keys.crm, body: { advance: "P1D" } })).statusCode,
        403,
        "admins only",
      );
      t.equal(await offset(), 0, "nothing moved");

      await engine.sql("update engine_clock set moving_since = now() where id = 1");
      await expectError(t, await engine.request("POST", CLOCK, { body: { advance: "P1D" } }), 409, "clock_moving");
      await engine.sql("update engine_clock set moving_since = null where id = 1");
      t.equal(await offset(), 0, "a move in progress: nothing moved");
    });

  if (everyCase(driver))
    t.test(`${driver}: accepted CDRs are drained first; with nobody to rate them the move is a 503`, async (t) => {
      const engine = await startEngine(t, { driver, testClock: true });
      const { accountId } = await orderReadyAccount(engine);
      await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
      const { msisdn } = await activateLine(engine, accountId);
      // After the activation (business time is the wall clock here), so the line held the number.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const at = new Date().toISOString();
      await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 60, at), voiceCdr(msisdn, "+33123456789", 90, at)]);
      await expectError(t, await engine.request("POST", CLOCK, { body: { advance: "P1D" } }), 503, "no_rating_worker");
      t.equal((await engine.request("GET", CLOCK)).json().offsetSeconds, 0, "nothing moved");
      // A rating loop in this process (as the embedded engine runs one) drains the queue during the move.
      const { startRatingLoop, RatingService } = await import("../../src/modules/charging/rating.service.js");
      const charging = engine.app.services.charging;
      const loop = startRatingLoop(
        charging.rating,
        charging.leases("test"),
        engine.app.log,
        RatingService.jobs({ ...charging, usage: engine.app.services.usage.usage }),
      );
      t.teardown(() => loop.stop());
      const moved = await engine.request("POST", CLOCK, { body: { advance: "P1D" } });
      t.equal(moved.statusCode, 200, moved.body);
      const { drained } = moved.json();
      t.ok(drained.rated >= 0 && drained.rated <= 2 && drained.suspense === 0, `drained ${JSON.stringify(drained)}`);
      t.equal(await engine.count("rated_usage"), 2, "both CDRs rated before the clock moved");
      await loop.stop();
    });
}
