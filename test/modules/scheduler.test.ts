import t from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { nextSlot, Scheduler, slotOf, slotStart } from "../../src/platform/scheduler.js";
import { drivers, everyCase, startEngine } from "../support/engine.js";

/**
 * The scheduler (DESIGN.md §10 "Time and schedules"): each (job, slot) runs once, in order, with its slot as its
 * business time; missed slots are caught up (every one, or the latest for housekeeping); a failure is recorded and
 * retried before anything later; two schedulers on one database (two processes) never run a slot twice; a slot
 * whose runner died is taken over once its lease lapses.
 */

const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;

t.test("slots: UTC days, hours and minutes that sort in time order", async (t) => {
  const at = new Date("2027-01-31T23:59:30Z");
  t.equal(slotOf("day", at), "2027-01-31");
  t.equal(slotOf("hour", at), "2027-01-31T23");
  t.equal(slotOf("minute", at), "2027-01-31T23:59");
  t.equal(nextSlot("day", "2027-01-31"), "2027-02-01");
  t.equal(nextSlot("hour", "2027-12-31T23"), "2028-01-01T00");
  t.equal(nextSlot("minute", "2028-02-28T23:59"), "2028-02-29T00:00");
  t.equal(slotStart("2027-02-01T05").toISOString(), "2027-02-01T05:00:00.000Z");
  t.ok("2027-01-31T23" < "2027-02-01T00", "text order is time order");
});

for (const driver of drivers) {
  t.test(`${driver}: every slot once, in order, with its business date; catch-up and failures`, async (t) => {
    const clock = new ManualClock("2027-01-10T10:00:00Z");
    const engine = await startEngine(t, { driver, clock });
    const scheduler = new Scheduler({ database: engine.app.database, clock, log: silent, owner: "a" });
    const days: string[] = [];
    let hours = 0;
    let failNext = false;
    scheduler.register({
      name: "test-daily",
      every: "day",
      catchUp: "each",
      async run(businessTime, slot) {
        if (failNext) {
          failNext = false;
          throw new Error("the tax table is missing");
        }
        days.push(`${slot}@${businessTime.toISOString()}`);
        return { day: slot };
      },
    });
    scheduler.register({
      name: "test-hourly",
      every: "hour",
      catchUp: "latest",
      async run() {
        hours += 1;
        return { hours };
      },
    });

    const first = await scheduler.tick();
    t.same(
      first.map((run) => `${run.job} ${run.slot} ${run.outcome}`),
      ["test-daily 2027-01-10 done", "test-hourly 2027-01-10T10 done"],
      "the first tick runs the current slots",
    );
    t.same(await scheduler.tick(), [], "a second tick in the same slots runs nothing");

    clock.set("2027-01-13T15:30:00Z");
    const caughtUp = await scheduler.tick();
    t.same(
      caughtUp.filter((run) => run.job === "test-daily").map((run) => run.slot),
      ["2027-01-11", "2027-01-12", "2027-01-13"],
      "missed days caught up in order",
    );
    t.same(days.slice(1), [
      "2027-01-11@2027-01-11T00:00:00.000Z",
      "2027-01-12@2027-01-12T00:00:00.000Z",
      "2027-01-13@2027-01-13T00:00:00.000Z",
    ]);
    t.same(
      caughtUp.filter((run) => run.job === "test-hourly").map((run) => run.slot),
      ["2027-01-13T15"],
      "housekeeping runs only its latest slot",
    );

    failNext = true;
    clock.set("2027-01-15T01:00:00Z");
    const failing = await scheduler.tick();
    t.same(
      failing.filter((run) => run.job === "test-daily").map((run) => `${run.slot} ${run.outcome}`),
      ["2027-01-14 failed"],
      "a failure stops that job's later slots",
    );
    const listed = await engine.request("GET", "/api/v1/admin/jobs");
    t.equal(listed.statusCode, 200, listed.body);
    const retried = await scheduler.tick();
    t.same(
      retried.filter((run) => run.job === "test-daily").map((run) => `${run.slot} ${run.outcome}`),
      ["2027-01-14 done", "2027-01-15 done"],
      "the failed slot is retried first on the next tick, then the next",
    );
    const runs = await scheduler.runsOf("test-daily");
    t.same(
      runs.map((run) => [run.slot, run.state, run.attempts]),
      [
        ["2027-01-10", "done", 1],
        ["2027-01-11", "done", 1],
        ["2027-01-12", "done", 1],
        ["2027-01-13", "done", 1],
        ["2027-01-14", "done", 2],
        ["2027-01-15", "done", 1],
      ],
    );
    const described = await scheduler.describe();
    const daily = described.find((job) => job.name === "test-daily");
    t.equal(daily?.lastDoneSlot, "2027-01-15");
    t.equal(daily?.nextDueSlot, "2027-01-16");
  });

  if (everyCase(driver))
    t.test(`${driver}: two schedulers on one database run each slot once`, async (t) => {
      const clock = new ManualClock("2027-03-01T00:00:00Z");
      const engine = await startEngine(t, { driver, clock });
      const ran: string[] = [];
      const make = (owner: string) => {
        const scheduler = new Scheduler({ database: engine.app.database, clock, log: silent, owner });
        scheduler.register({
          name: "test-once",
          every: "day",
          catchUp: "each",
          async run(_businessTime, slot) {
            ran.push(`${slot} ${owner}`);
            await new Promise((resolve) => setTimeout(resolve, 5));
            return {};
          },
        });
        return scheduler;
      };
      const a = make("a");
      const b = make("b");
      await a.tick();
      clock.set("2027-03-31T12:00:00Z");
      await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
      await Promise.all([a.tick(), b.tick()]);
      const slots = ran.map((entry) => entry.split(" ")[0]);
      t.equal(slots.length, 31, "31 days, 31 runs");
      t.same([...new Set(slots)].sort(), slots.slice().sort(), "no slot ran twice");
      t.same(slots, slots.slice().sort(), "in order");
    });

  if (everyCase(driver))
    t.test(`${driver}: a slot whose runner died is taken over when its lease lapses, and done once`, async (t) => {
      const clock = new ManualClock("2027-05-01T08:00:00Z");
      const engine = await startEngine(t, { driver, clock });
      const ran: string[] = [];
      const scheduler = new Scheduler({ database: engine.app.database, clock, log: silent, owner: "survivor" });
      scheduler.register({
        name: "test-takeover",
        every: "day",
        catchUp: "each",
        async run(_businessTime, slot) {
          ran.push(slot);
          return {};
        },
      });
      // A runner that claimed the day and died: its lease is still live for now.
      await engine.sql(
        "insert into scheduled_jobs (job, first_slot, updated_at) values ('test-takeover', '2027-05-01', now())",
      );
      await engine.sql(
        `insert into job_runs (job, slot, state, attempts, owner, started_at, lease_until)
       values ('test-takeover', '2027-05-01', 'running', 1, 'dead', now(), now() + interval '1 hour')`,
      );
      t.same(await scheduler.tick(), [], "a live lease is left alone");
      await engine.sql(`update job_runs set lease_until = now() - interval '1 second' where owner = 'dead'`);
      const taken = await scheduler.tick();
      t.same(
        taken.map((run) => `${run.slot} ${run.outcome}`),
        ["2027-05-01 done"],
        "taken over after the lease lapsed",
      );
      const [row] = await engine.sql<{ owner: string; attempts: number; state: string }>(
        `select owner, attempts, state from job_runs where job = 'test-takeover'`,
      );
      t.same(row, { owner: "survivor", attempts: 2, state: "done" });
      t.same(await scheduler.tick(), [], "and not run again");
      t.same(ran, ["2027-05-01"]);
    });
}
