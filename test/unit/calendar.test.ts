import fc from "fast-check";
import t from "tap";
import {
  addMonths,
  addMonthsUtc,
  billPeriod,
  daysInMonth,
  daysLeft,
  localDate,
  localDayNumber,
  nextBillDate,
  periodDays,
  prorateByDays,
  proratedAmount,
  prorateUnits,
} from "../../src/shared/calendar.js";
import { Money } from "../../src/shared/money.js";

const d = (year: number, month: number, day: number) => ({ year, month, day });

t.test("month arithmetic clamps to the target month's last day", async (t) => {
  const cases: Array<[ReturnType<typeof d>, number, ReturnType<typeof d>, string]> = [
    [d(2026, 1, 31), 1, d(2026, 2, 28), "31 January + 1 month: 28 February"],
    [d(2028, 1, 31), 1, d(2028, 2, 29), "in a leap year: 29 February"],
    [d(2028, 2, 29), 24, d(2030, 2, 28), "29 February 2028 + 24 months: 28 February 2030, not 1 March"],
    [d(2028, 2, 29), 48, d(2032, 2, 29), "+ 48 months: a leap year again"],
    [d(2026, 3, 31), -1, d(2026, 2, 28), "back one month from 31 March"],
    [d(2026, 12, 15), 1, d(2027, 1, 15), "across the year"],
    [d(2027, 1, 15), -13, d(2025, 12, 15), "back across two years"],
    [d(2026, 5, 31), 1, d(2026, 6, 30), "31 May + 1 month: 30 June"],
    [d(2100, 1, 29), 1, d(2100, 2, 28), "2100 is no leap year"],
    [d(2000, 1, 30), 1, d(2000, 2, 29), "2000 is one"],
  ];
  for (const [from, months, expected, name] of cases) t.same(addMonths(from, months), expected, name);
  t.equal(
    addMonthsUtc(new Date("2028-02-29T13:45:00Z"), 24).toISOString(),
    "2030-02-28T13:45:00.000Z",
    "an instant keeps its time of day",
  );
});

t.test("adding months never overflows into the next month (property)", async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1900, max: 2200 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 31 }),
      fc.integer({ min: -600, max: 600 }),
      (year, month, wanted, months) => {
        const day = Math.min(wanted, daysInMonth(year, month));
        const result = addMonths({ year, month, day }, months);
        const index = year * 12 + month - 1 + months;
        return (
          result.year * 12 + result.month - 1 === index &&
          result.day === Math.min(day, daysInMonth(result.year, result.month))
        );
      },
    ),
  );
});

t.test("next bill date: cycle day 31 in February, in a leap year, and on the day itself", async (t) => {
  t.same(nextBillDate(31, d(2027, 2, 10)), d(2027, 2, 28));
  t.same(nextBillDate(31, d(2028, 2, 10)), d(2028, 2, 29));
  t.same(nextBillDate(15, d(2026, 3, 15)), d(2026, 3, 15), "today is the cycle day");
  t.same(nextBillDate(15, d(2026, 12, 16)), d(2027, 1, 15), "into next year");
  t.same(nextBillDate(31, d(2026, 3, 31)), d(2026, 3, 31));
  t.same(nextBillDate(30, d(2027, 1, 31)), d(2027, 2, 28), "the day after, into a short month");
});

t.test("bill periods: cycle day 31 through February and a leap year, DST days count once", async (t) => {
  const feb = billPeriod(Date.parse("2027-03-10T12:00:00Z"), 31, "Europe/Berlin");
  t.equal(feb.key, "2027-02-28", "cycle day 31: the period from 28 February");
  t.equal(periodDays(feb, "Europe/Berlin"), 31, "28 February to 31 March: 31 days");
  const leap = billPeriod(Date.parse("2028-02-10T12:00:00Z"), 31, "Europe/Berlin");
  t.same([leap.key, periodDays(leap, "Europe/Berlin")], ["2028-01-31", 29], "31 January to 29 February 2028");
  const dst = billPeriod(Date.parse("2026-03-20T12:00:00Z"), 1, "Europe/Berlin");
  t.equal(periodDays(dst, "Europe/Berlin"), 31, "March with its 23-hour day still has 31 days");
  t.equal(dst.endMs - dst.startMs, 31 * 86_400_000 - 3_600_000, "and is an hour short of 31 × 24 hours");
  const october = billPeriod(Date.parse("2026-10-20T12:00:00Z"), 1, "Europe/Berlin");
  t.equal(periodDays(october, "Europe/Berlin"), 31, "October with its 25-hour day too");
  t.equal(
    daysLeft(october, Date.parse("2026-10-25T22:30:00Z"), "Europe/Berlin"),
    7,
    "22:30 UTC on the DST day is 23:30 on the 25th in Berlin: the 25th to the 31st, 7 days",
  );
  t.equal(
    daysLeft(october, Date.parse("2026-10-25T23:30:00Z"), "Europe/Berlin"),
    6,
    "an hour later it is the 26th in Berlin: 6 days",
  );
  t.equal(daysLeft(october, october.startMs - 1, "Europe/Berlin"), 31, "from before the period: all of it");
});

t.test("local dates come from the zone, not UTC", async (t) => {
  t.same(localDate(new Date("2026-03-14T23:30:00Z"), "Europe/Berlin"), d(2026, 3, 15));
  t.same(localDate(new Date("2026-03-15T03:30:00Z"), "America/New_York"), d(2026, 3, 14));
  t.same(localDate(new Date("2026-06-30T23:59:59Z"), "UTC"), d(2026, 6, 30));
  t.equal(
    localDayNumber(Date.parse("2026-03-29T22:00:00Z"), "Europe/Berlin") -
      localDayNumber(Date.parse("2026-03-28T23:00:00Z"), "Europe/Berlin"),
    1,
    "the DST day is one day",
  );
});

t.test("proration by days: the last piece takes the remainder", async (t) => {
  const price = new Money("10.00");
  t.same(
    prorateByDays(price, [10, 10, 11], 31, 2).map(String),
    ["3.23", "3.23", "3.54"],
    "10.00 over 31 days in three pieces adds up to 10.00",
  );
  t.same(prorateByDays(price, [31], 31, 2).map(String), ["10"], "one whole piece is the price");
  t.same(prorateByDays(price, [0, 31], 31, 2).map(String), ["0", "10"], "an empty piece is zero");
  t.equal(proratedAmount(new Money("29.99"), 17, 31, 2).toString(), "16.45", "29.99 × 17 / 31 = 16.446… half-up");
  t.equal(proratedAmount(new Money("0.05"), 15, 30, 2).toString(), "0.03", "half a cent rounds up (half-up)");
  t.equal(proratedAmount(new Money("9.99"), 31, 31, 2).toString(), "9.99");
  t.throws(() => prorateByDays(price, [10, 10], 31, 2), /do not make a period of 31 days/);
  t.equal(prorateUnits(31_000, 17, 31), 17_000, "units round down");
  t.equal(prorateUnits(10, 1, 31), 0);
});

t.test("prorated pieces of a whole period always add up to its price (property)", async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 100_000_000 }),
      fc.integer({ min: 28, max: 31 }),
      fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 4 }),
      (cents, totalDays, cuts) => {
        const sorted = [...new Set(cuts.filter((cut) => cut < totalDays))].sort((a, b) => a - b);
        const pieces = [...sorted, totalDays].map((cut, index, all) => cut - (index === 0 ? 0 : (all[index - 1] ?? 0)));
        const price = new Money(cents).dividedBy(100);
        const amounts = prorateByDays(price, pieces, totalDays, 2);
        const sum = amounts.reduce((total, amount) => total.plus(amount), new Money(0));
        return sum.equals(price) && amounts.every((amount) => amount.decimalPlaces() <= 2);
      },
    ),
  );
});

t.test("a day whose midnight does not exist (summer time at 00:00) starts at the clock change", async (t) => {
  // Cairo, 25 April 2025: 00:00 (UTC+2) jumps to 01:00 (UTC+3) at 22:00Z on the 24th, the first instant of the 25th.
  const { cyclePeriod, localMidnightUtc } = await import("../../src/shared/calendar.js");
  t.equal(
    new Date(localMidnightUtc("Africa/Cairo", { year: 2025, month: 4, day: 25 })).toISOString(),
    "2025-04-24T22:00:00.000Z",
  );
  const cycle = { billCycleDay: 25, timeZone: "Africa/Cairo" };
  const current = cyclePeriod(Date.parse("2025-04-10T10:00:00Z"), cycle);
  const next = cyclePeriod(current.endMs, cycle);
  t.equal(current.key, "2025-03-25");
  t.equal(next.key, "2025-04-25", "the period after it starts on the 25th, not the same period again");
  t.equal(next.startMs, current.endMs);
  // São Paulo, 4 November 2018: the same at 03:00Z.
  t.equal(
    new Date(localMidnightUtc("America/Sao_Paulo", { year: 2018, month: 11, day: 4 })).toISOString(),
    "2018-11-04T03:00:00.000Z",
  );
});
