import t from "tap";
import { proratedUnits } from "../../src/modules/charging/buckets.service.js";
import { billPeriod, localMidnightUtc, rollingPeriod } from "../../src/shared/calendar.js";

t.test("local midnight is found on DST change days too", async (t) => {
  t.equal(
    new Date(localMidnightUtc("Europe/Berlin", { year: 2025, month: 3, day: 30 })).toISOString(),
    "2025-03-29T23:00:00.000Z",
  );
  t.equal(
    new Date(localMidnightUtc("Europe/Berlin", { year: 2025, month: 10, day: 26 })).toISOString(),
    "2025-10-25T22:00:00.000Z",
  );
  t.equal(
    new Date(localMidnightUtc("America/New_York", { year: 2026, month: 3, day: 8 })).toISOString(),
    "2026-03-08T05:00:00.000Z",
  );
  t.equal(
    new Date(localMidnightUtc("UTC", { year: 2026, month: 2, day: 28 })).toISOString(),
    "2026-02-28T00:00:00.000Z",
  );
});

t.test("bill periods: the clamped cycle day at local midnight, an event always inside its own period", async (t) => {
  const late = billPeriod(Date.parse("2025-03-29T22:30:00Z"), 30, "Europe/Berlin");
  t.same(
    [late.key, new Date(late.startMs).toISOString(), new Date(late.endMs).toISOString()],
    ["2025-02-28", "2025-02-27T23:00:00.000Z", "2025-03-29T23:00:00.000Z"],
    "cycle day 30: February's period ends at local midnight of 30 March, on the DST day",
  );
  const next = billPeriod(Date.parse("2025-03-29T23:30:00Z"), 30, "Europe/Berlin");
  t.equal(next.key, "2025-03-30");
  const first = billPeriod(Date.parse("2026-03-15T10:00:00Z"), 1, "Europe/Berlin");
  t.same([first.key, new Date(first.endMs).toISOString()], ["2026-03-01", "2026-03-31T22:00:00.000Z"]);
  const rolling = rollingPeriod(Date.parse("2026-04-20T00:00:00Z"), Date.parse("2026-03-15T10:00:00Z"), 30);
  t.equal(new Date(rolling.startMs).toISOString(), "2026-04-14T10:00:00.000Z");
});

t.test("a bill-cycle allowance is prorated by the local days left in the first period", async (t) => {
  const allowance = { id: "data", service: "data" as const, units: 31_000, period: "billCycle" as const };
  const march = billPeriod(Date.parse("2026-03-20T10:00:00Z"), 1, "Europe/Berlin");
  // 00:30 on 15 March in Berlin is still 14 March in UTC: the local date counts, 17 of 31 days.
  t.equal(proratedUnits(allowance, march, Date.parse("2026-03-14T23:30:00Z"), "Europe/Berlin"), 17_000);
  t.equal(proratedUnits(allowance, march, march.startMs, "Europe/Berlin"), 31_000, "from the first day: all of it");
  t.equal(proratedUnits(allowance, march, march.startMs - 1, "Europe/Berlin"), 31_000, "started before: all of it");
  // The last day of the period: 1 of 31 days; 10 units × 1 / 31 round down to nothing (no bucket).
  const lastDay = Date.parse("2026-03-31T12:00:00Z");
  t.equal(proratedUnits(allowance, march, lastDay, "Europe/Berlin"), 1_000);
  t.equal(proratedUnits({ ...allowance, units: 10 }, march, lastDay, "Europe/Berlin"), 0);
  // A 30-day allowance starts at activation: never prorated.
  const rolling = { ...allowance, period: "30days" as const };
  t.equal(proratedUnits(rolling, march, Date.parse("2026-03-15T10:00:00Z"), "Europe/Berlin"), 31_000);
  // Exact beyond 2^32: 40 GiB × 17 / 31.
  t.equal(
    proratedUnits({ ...allowance, units: 42_949_672_960 }, march, Date.parse("2026-03-15T10:00:00Z"), "Europe/Berlin"),
    23_553_046_461,
  );
});
