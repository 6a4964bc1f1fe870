import t from "tap";
import { billPeriod, localMidnightUtc, rollingPeriod } from "../../src/modules/charging/periods.js";

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
