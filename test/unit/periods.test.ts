import t from "tap";
import { proratedUnits } from "../../src/modules/charging/buckets.service.js";
import { billCycleOf, planCycleChange, type StoredCycle } from "../../src/modules/customers/customers.rules.js";
import {
  type BillCycle,
  billPeriod,
  cycleAt,
  cyclePeriod,
  localMidnightUtc,
  periodDays,
  proratedAmount,
  prorationBasis,
  rollingPeriod,
} from "../../src/shared/calendar.js";
import { Money } from "../../src/shared/money.js";

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

// ---------------------------------------------------------------------------------------------------------------
// A change of bill cycle (DESIGN.md §10): at the old cycle's next boundary, with one prorated transition period

const iso = (ms: number) => new Date(ms).toISOString();
const span = (period: { key: string; startMs: number; endMs: number }) => [
  period.key,
  iso(period.startMs),
  iso(period.endMs),
];
/** The cycle after a change from `from` to `to` asked for at `atIso` by an account with lines. */
function changed(from: { billCycleDay: number; timeZone: string }, to: typeof from, atIso: string): BillCycle {
  const row = { ...from, previousBillCycleDay: null, previousTimeZone: null, cycleChangedAt: null };
  const plan = planCycleChange(row, to, Date.parse(atIso), false);
  if (plan === null || "refusal" in plan) throw new Error(`no change planned: ${JSON.stringify(plan)}`);
  return billCycleOf(plan.columns);
}

t.test("day 1 → 15 mid-month: March as before, 1–15 April the transition period, then the 15th", async (t) => {
  const berlin = "Europe/Berlin";
  const cycle = changed(
    { billCycleDay: 1, timeZone: berlin },
    { billCycleDay: 15, timeZone: berlin },
    "2026-03-10T10:00:00Z",
  );
  t.same(cycle.previous, { billCycleDay: 1, timeZone: berlin, untilMs: Date.parse("2026-03-31T22:00:00Z") });
  const march = cyclePeriod(Date.parse("2026-03-20T10:00:00Z"), cycle);
  t.same(span(march), ["2026-03-01", "2026-02-28T23:00:00.000Z", "2026-03-31T22:00:00.000Z"], "the old cycle");
  t.same(span(cyclePeriod(Date.parse("2026-03-31T21:59:59.999Z"), cycle)), span(march), "to the last instant");
  const transition = cyclePeriod(Date.parse("2026-04-05T10:00:00Z"), cycle);
  t.same(span(transition), ["2026-04-01", "2026-03-31T22:00:00.000Z", "2026-04-14T22:00:00.000Z"]);
  t.same(span(cyclePeriod(Date.parse("2026-03-31T22:00:00Z"), cycle)), span(transition), "from the boundary itself");
  const basis = prorationBasis(transition, cycle);
  t.same(span(basis), ["2026-03-15", "2026-03-14T23:00:00.000Z", "2026-04-14T22:00:00.000Z"], "15 March – 15 April");
  t.equal(periodDays(transition, berlin), 14);
  t.equal(periodDays(basis, berlin), 31);
  t.equal(proratedAmount(new Money("9.99"), 14, 31, 2).toFixed(2), "4.51", "9.99 × 14 / 31, half-up");
  const april = cyclePeriod(Date.parse("2026-04-20T10:00:00Z"), cycle);
  t.same(span(april), ["2026-04-15", "2026-04-14T22:00:00.000Z", "2026-05-14T22:00:00.000Z"], "then the new cycle");
  t.same(span(cyclePeriod(transition.endMs, cycle)), span(april), "periods follow each other without a gap");
  t.equal(prorationBasis(april, cycle), april, "a full period is its own basis");
  t.equal(prorationBasis(march, cycle), march);
  // Allowances share the arithmetic: 30,000 units × 14 / 31 for a line active through the transition period.
  const allowance = { id: "voice", service: "voice" as const, units: 30_000, period: "billCycle" as const };
  t.equal(proratedUnits(allowance, transition, Date.parse("2026-03-01T00:00:00Z"), berlin, basis), 13_548);
  t.equal(proratedUnits(allowance, april, Date.parse("2026-03-01T00:00:00Z"), berlin), 30_000);
});

t.test("a zone change: the transition period runs to the new zone's first boundary", async (t) => {
  const cycle = changed(
    { billCycleDay: 1, timeZone: "Europe/Berlin" },
    { billCycleDay: 1, timeZone: "America/New_York" },
    "2026-03-10T10:00:00Z",
  );
  // Midnight of 1 April in Berlin is 18:00 on 31 March in New York: six hours to New York's midnight, one local day.
  const transition = cyclePeriod(Date.parse("2026-04-01T01:00:00Z"), cycle);
  t.same(span(transition), ["2026-03-31", "2026-03-31T22:00:00.000Z", "2026-04-01T04:00:00.000Z"]);
  const basis = prorationBasis(transition, cycle);
  t.same(span(basis), ["2026-03-01", "2026-03-01T05:00:00.000Z", "2026-04-01T04:00:00.000Z"]);
  t.equal(periodDays(transition, "America/New_York"), 1);
  t.equal(periodDays(basis, "America/New_York"), 31);
  t.same(cycleAt(transition.startMs, cycle), { billCycleDay: 1, timeZone: "America/New_York" });
  t.same(cycleAt(transition.startMs - 1, cycle), { billCycleDay: 1, timeZone: "Europe/Berlin" });
  t.same(span(cyclePeriod(Date.parse("2026-04-02T00:00:00Z"), cycle)), [
    "2026-04-01",
    "2026-04-01T04:00:00.000Z",
    "2026-05-01T04:00:00.000Z",
  ]);
});

t.test("a change whose new boundary coincides with the old one has no transition period", async (t) => {
  // Day 30 → 31 on 30 April: April's cycle day 31 is its 30th, so the new cycle starts exactly where the old ends.
  const cycle = changed(
    { billCycleDay: 30, timeZone: "UTC" },
    { billCycleDay: 31, timeZone: "UTC" },
    "2026-04-10T00:00:00Z",
  );
  t.equal(cycle.previous?.untilMs, Date.parse("2026-04-30T00:00:00Z"));
  const may = cyclePeriod(Date.parse("2026-05-05T00:00:00Z"), cycle);
  t.same(span(may), ["2026-04-30", "2026-04-30T00:00:00.000Z", "2026-05-31T00:00:00.000Z"]);
  t.same(span(prorationBasis(may, cycle)), span(may), "a whole period, prorated against itself");
  t.same(span(cyclePeriod(Date.parse("2026-04-29T00:00:00Z"), cycle)), [
    "2026-03-30",
    "2026-03-30T00:00:00.000Z",
    "2026-04-30T00:00:00.000Z",
  ]);
  // Berlin → Paris keep the same midnights: nothing but the zone's name changes.
  const paris = changed(
    { billCycleDay: 1, timeZone: "Europe/Berlin" },
    { billCycleDay: 1, timeZone: "Europe/Paris" },
    "2026-03-10T10:00:00Z",
  );
  const april = cyclePeriod(Date.parse("2026-04-05T00:00:00Z"), paris);
  t.same(span(april), ["2026-04-01", "2026-03-31T22:00:00.000Z", "2026-04-30T22:00:00.000Z"]);
  t.same(span(prorationBasis(april, paris)), span(april));
});

t.test("a change to day 31 across February: the transition ends on February's last day", async (t) => {
  for (const [year, lastDay, transitionDays] of [
    [2026, 28, 13],
    [2028, 29, 14],
  ] as const) {
    const cycle = changed(
      { billCycleDay: 15, timeZone: "UTC" },
      { billCycleDay: 31, timeZone: "UTC" },
      `${year}-02-01T00:00:00Z`,
    );
    const transition = cyclePeriod(Date.parse(`${year}-02-20T00:00:00Z`), cycle);
    t.same(span(transition), [`${year}-02-15`, `${year}-02-15T00:00:00.000Z`, `${year}-02-${lastDay}T00:00:00.000Z`]);
    const basis = prorationBasis(transition, cycle);
    t.same(span(basis), [`${year}-01-31`, `${year}-01-31T00:00:00.000Z`, `${year}-02-${lastDay}T00:00:00.000Z`]);
    t.equal(periodDays(transition, "UTC"), transitionDays);
    t.equal(periodDays(basis, "UTC"), lastDay);
    t.same(span(cyclePeriod(Date.parse(`${year}-03-10T00:00:00Z`), cycle)), [
      `${year}-02-${lastDay}`,
      `${year}-02-${lastDay}T00:00:00.000Z`,
      `${year}-03-31T00:00:00.000Z`,
    ]);
  }
});

t.test("repeated changes: a pending one is replaced or cancelled; a past one is remembered for a while", async (t) => {
  const berlin = "Europe/Berlin";
  const plain = {
    billCycleDay: 1,
    timeZone: berlin,
    previousBillCycleDay: null,
    previousTimeZone: null,
    cycleChangedAt: null,
  };
  const at = (text: string) => Date.parse(text);
  t.equal(planCycleChange(plain, { billCycleDay: 1, timeZone: berlin }, at("2026-03-10T00:00:00Z"), false), null);
  t.same(
    planCycleChange(plain, { billCycleDay: 15, timeZone: berlin }, at("2026-03-10T00:00:00Z"), true),
    {
      columns: { ...plain, billCycleDay: 15 },
    },
    "nothing hangs on the account: at once, no history",
  );
  const first = planCycleChange(plain, { billCycleDay: 15, timeZone: berlin }, at("2026-03-10T00:00:00Z"), false);
  const pending = (first as { columns: StoredCycle }).columns;
  const boundary = new Date("2026-03-31T22:00:00Z");
  t.same(pending, {
    billCycleDay: 15,
    timeZone: berlin,
    previousBillCycleDay: 1,
    previousTimeZone: berlin,
    cycleChangedAt: boundary,
  });
  for (const atOnce of [false, true]) {
    t.same(
      planCycleChange(pending, { billCycleDay: 20, timeZone: berlin }, at("2026-03-20T00:00:00Z"), atOnce),
      {
        columns: { ...pending, billCycleDay: 20 },
      },
      "a second request before the boundary replaces the pending cycle; the boundary stays",
    );
  }
  t.same(
    planCycleChange(pending, { billCycleDay: 1, timeZone: berlin }, at("2026-03-20T00:00:00Z"), false),
    {
      columns: plain,
    },
    "asking for the cycle in effect cancels the change",
  );
  // The transition period ends on 15 April (14 April 22:00 UTC); the change is remembered 90 days more.
  for (const [when, atOnce] of [
    ["2026-04-02T00:00:00Z", false],
    ["2026-05-20T00:00:00Z", false],
    ["2026-07-13T21:59:59Z", true],
  ] as const) {
    const refused = planCycleChange(pending, { billCycleDay: 20, timeZone: berlin }, at(when), atOnce);
    t.match(refused, { refusal: /2026-04-01.*2026-07-14/ }, `refused at ${when}`);
  }
  t.same(
    planCycleChange(pending, { billCycleDay: 20, timeZone: berlin }, at("2026-07-13T22:00:00Z"), false),
    {
      columns: {
        billCycleDay: 20,
        timeZone: berlin,
        previousBillCycleDay: 15,
        previousTimeZone: berlin,
        cycleChangedAt: new Date("2026-07-14T22:00:00Z"),
      },
    },
    "then the cycle in effect becomes the one remembered",
  );
  t.same(planCycleChange(pending, { billCycleDay: 20, timeZone: berlin }, at("2026-07-13T22:00:00Z"), true), {
    columns: { ...plain, billCycleDay: 20 },
  });
});
