import { RoundingMode as Modes, Money, type RoundingMode } from "./money.js";

/**
 * The engine's one calendar (DESIGN.md §10 "One bill period function"): time zones, local dates and day numbers,
 * month arithmetic, bill and rolling periods, and proration by days. Pure: no clock, no I/O; business time comes
 * from the caller. Rating, charging, orders and billing all count days here, so a bill period, an allowance's
 * prorated share and an invoice's prorated charge can never disagree about which day an instant falls on.
 *
 * Zone offsets are looked up once per quarter hour of UTC time (every zone changes its offset on a quarter-hour
 * boundary) and cached, so the rating hot path pays a map lookup instead of an Intl formatting call per event.
 */

const DAY_MS = 86_400_000;
const QUARTER_HOUR_MS = 900_000;
/** Entries each cache holds before it is emptied (bounded memory on a long-running worker). */
const CACHE_LIMIT = 100_000;

export interface LocalDate {
  year: number;
  /** 1–12 */
  month: number;
  day: number;
}

/** A bill or rolling period: its key and the UTC instants it starts (inclusive) and ends (exclusive). */
export interface Period {
  /** The local date the period starts on (bill periods), or its start instant (rolling periods). */
  key: string;
  startMs: number;
  endMs: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Time zones

const canonicalZones = new Map<string, string | null>();

/** The canonical IANA name of a time zone, or null when the runtime does not know it. Answers are cached. */
export function canonicalTimeZone(name: string): string | null {
  // Offsets ("+01:00") and paths are not zones an account lives in.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/.test(name)) return null;
  const cached = canonicalZones.get(name);
  if (cached !== undefined) return cached;
  let canonical: string | null;
  try {
    canonical = new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    // RangeError: the runtime has no such zone; the caller reports it as a field error.
    canonical = null;
  }
  // The pattern bounds the key space only loosely, so only known zones are remembered.
  if (canonical !== null) canonicalZones.set(name, canonical);
  return canonical;
}

const offsetCaches = new Map<string, Map<number, number>>();
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

function computeOffsetMs(timeZone: string, utcMs: number): number {
  const parts = formatterFor(timeZone).formatToParts(new Date(utcMs));
  const get = (type: string) => Number(parts.find((part) => part.type === type)?.value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"));
  const truncated = utcMs - (((utcMs % 60_000) + 60_000) % 60_000);
  return asUtc - truncated;
}

/** The zone's offset from UTC at an instant, in milliseconds. */
export function offsetMs(timeZone: string, utcMs: number): number {
  let cache = offsetCaches.get(timeZone);
  if (cache === undefined) {
    cache = new Map();
    offsetCaches.set(timeZone, cache);
  }
  const bucket = Math.floor(utcMs / QUARTER_HOUR_MS);
  let offset = cache.get(bucket);
  if (offset === undefined) {
    offset = computeOffsetMs(timeZone, bucket * QUARTER_HOUR_MS);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(bucket, offset);
  }
  return offset;
}

// ---------------------------------------------------------------------------------------------------------------
// Local dates and day numbers

export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** The day number (days since 1970-01-01) of a calendar date: day arithmetic without zones. */
export function dayNumber(date: LocalDate): number {
  return Date.UTC(date.year, date.month - 1, date.day) / DAY_MS;
}

/** The calendar date of a day number. */
export function dateOfDayNumber(day: number): LocalDate {
  const date = new Date(day * DAY_MS);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

/** The calendar date of an instant in a time zone. */
export function localDate(instant: Date, timeZone: string): LocalDate {
  return dateOfDayNumber(localDayNumber(instant.getTime(), timeZone));
}

/** The local calendar day of an instant in a zone, as a day number (two map lookups: the offset is cached). */
export function localDayNumber(ms: number, timeZone: string): number {
  return Math.floor((ms + offsetMs(timeZone, ms)) / DAY_MS);
}

/** A "YYYY-MM-DD" text as a calendar date (check it with isCalendarDate where it comes from outside). */
export function parseLocalDate(text: string): LocalDate {
  const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number];
  return { year, month, day };
}

export function formatLocalDate(date: LocalDate): string {
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  return `${pad(date.year, 4)}-${pad(date.month, 2)}-${pad(date.day, 2)}`;
}

/** A calendar date "YYYY-MM-DD" that exists (no 30 February). */
export function isCalendarDate(text: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

export interface LocalMoment {
  /** "YYYY-MM-DD" in the zone. */
  date: string;
  /** 0 = Monday … 6 = Sunday. */
  weekday: number;
  /** Milliseconds since local midnight. */
  msOfDay: number;
  /** The UTC instant of the local midnight that starts this day. */
  dayStartUtcMs: number;
}

/** Where an instant falls on the local wall clock: its date, weekday and time of day (the pricer's time bands). */
export function localMoment(timeZone: string, utcMs: number): LocalMoment {
  const offset = offsetMs(timeZone, utcMs);
  const localMs = utcMs + offset;
  const localDayStart = Math.floor(localMs / DAY_MS) * DAY_MS;
  const day = new Date(localDayStart);
  const date = `${String(day.getUTCFullYear()).padStart(4, "0")}-${String(day.getUTCMonth() + 1).padStart(2, "0")}-${String(day.getUTCDate()).padStart(2, "0")}`;
  return {
    date,
    weekday: (day.getUTCDay() + 6) % 7,
    msOfDay: localMs - localDayStart,
    dayStartUtcMs: localDayStart - offset,
  };
}

/** The UTC instant at which the local wall clock of `moment`'s day shows `msOfDay` (DST-aware). */
export function utcAtLocal(timeZone: string, moment: LocalMoment, msOfDay: number): number {
  const localMs = moment.dayStartUtcMs + offsetMs(timeZone, moment.dayStartUtcMs) + msOfDay;
  let guess = localMs - offsetMs(timeZone, moment.dayStartUtcMs);
  // Across a DST change the offset at the target differs from the one at midnight; one correction settles it.
  const corrected = localMs - offsetMs(timeZone, guess);
  if (corrected !== guess) guess = corrected;
  return guess;
}

/** The UTC instant of local midnight starting a calendar date in a zone (DST-aware). */
export function localMidnightUtc(timeZone: string, date: LocalDate): number {
  // The wall clock reads `local` at the instant u where u + offset(u) = local; the offset at midnight can differ
  // from the offset at noon on a DST change day, so it is settled by iterating (twice suffices).
  const local = Date.UTC(date.year, date.month - 1, date.day);
  let guess = local - offsetMs(timeZone, local);
  for (let i = 0; i < 2; i++) {
    const next = local - offsetMs(timeZone, guess);
    if (next === guess) break;
    guess = next;
  }
  // Where summer time starts at midnight (Cairo, Beirut, Gaza…) the day has no 00:00: the iteration alternates
  // between an instant of the day before and the clock change itself, which is the day's first instant.
  if (localDayNumber(guess, timeZone) < local / 86_400_000) guess = local - offsetMs(timeZone, guess);
  return guess;
}

// ---------------------------------------------------------------------------------------------------------------
// Months

/** The bill cycle day in a given month: days 29–31 fall on the month's last day when it is shorter. */
export function billingDayOfMonth(billCycleDay: number, year: number, month: number): number {
  return Math.min(billCycleDay, daysInMonth(year, month));
}

/**
 * `months` calendar months after a date (before, when negative), clamped to the target month's last day:
 * 31 January + 1 month is 28 (or 29) February, 29 February 2028 + 24 months is 28 February 2030.
 */
export function addMonths(date: LocalDate, months: number): LocalDate {
  const index = date.year * 12 + (date.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = index - year * 12 + 1;
  return { year, month, day: Math.min(date.day, daysInMonth(year, month)) };
}

/** An instant `months` calendar months later in UTC, the time of day kept and the day clamped (contract terms). */
export function addMonthsUtc(instant: Date, months: number): Date {
  const date = addMonths(
    { year: instant.getUTCFullYear(), month: instant.getUTCMonth() + 1, day: instant.getUTCDate() },
    months,
  );
  const timeOfDayMs = ((instant.getTime() % DAY_MS) + DAY_MS) % DAY_MS;
  return new Date(dayNumber(date) * DAY_MS + timeOfDayMs);
}

/**
 * The next bill date on or after a local date: this month's clamped cycle day if it has not passed, else
 * next month's. A cycle day of 31 bills on 28 or 29 February and 30 April.
 */
export function nextBillDate(billCycleDay: number, today: LocalDate): LocalDate {
  const thisMonth = billingDayOfMonth(billCycleDay, today.year, today.month);
  if (today.day <= thisMonth) return { year: today.year, month: today.month, day: thisMonth };
  const next = addMonths({ ...today, day: 1 }, 1);
  return { ...next, day: billingDayOfMonth(billCycleDay, next.year, next.month) };
}

// ---------------------------------------------------------------------------------------------------------------
// Periods

/**
 * The bill period holding an instant: from the account's (clamped) bill cycle day, at local midnight in its
 * zone, to the next one. Spend to date, bill-cycle allowances and (with the billing issues) invoices count in it.
 */
export function billPeriod(atMs: number, billCycleDay: number, timeZone: string): Period {
  // Rating asks this for every event; most fall in the period asked for last (zone dates are costly to compute).
  const key = `${billCycleDay}|${timeZone}`;
  const last = lastBillPeriods.get(key);
  if (last !== undefined && last.startMs <= atMs && atMs < last.endMs) return last;
  const period = computeBillPeriod(atMs, billCycleDay, timeZone);
  if (lastBillPeriods.size >= 10_000) lastBillPeriods.clear();
  lastBillPeriods.set(key, period);
  return period;
}

const lastBillPeriods = new Map<string, Period>();

function computeBillPeriod(atMs: number, billCycleDay: number, timeZone: string): Period {
  const today = localDate(new Date(atMs), timeZone);
  const thisMonthDay = billingDayOfMonth(billCycleDay, today.year, today.month);
  const startMonth = today.day >= thisMonthDay ? today : addMonths({ ...today, day: 1 }, -1);
  const start: LocalDate = {
    year: startMonth.year,
    month: startMonth.month,
    day: billingDayOfMonth(billCycleDay, startMonth.year, startMonth.month),
  };
  const endMonth = addMonths({ ...start, day: 1 }, 1);
  const end: LocalDate = { ...endMonth, day: billingDayOfMonth(billCycleDay, endMonth.year, endMonth.month) };
  return {
    key: formatLocalDate(start),
    startMs: localMidnightUtc(timeZone, start),
    endMs: localMidnightUtc(timeZone, end),
  };
}

/**
 * An account's bill cycle over time (DESIGN.md §10): the cycle day and zone in effect, and, after a change, the
 * ones in effect before it until the instant the change took effect (a period boundary of the old cycle).
 */
export interface BillCycle {
  billCycleDay: number;
  timeZone: string;
  previous?: { billCycleDay: number; timeZone: string; untilMs: number } | null;
}

/**
 * The bill period holding an instant under an account's cycle. Before a change took effect the old cycle's periods
 * hold; the period starting where the change took effect runs to the first boundary of the new cycle after it (the
 * one prorated transition period), keyed by its start's date in the new zone; from there the new cycle's periods.
 * A change whose first new boundary coincides with the old one has no transition period.
 */
export function cyclePeriod(atMs: number, cycle: BillCycle): Period {
  const previous = cycle.previous;
  if (previous === undefined || previous === null) return billPeriod(atMs, cycle.billCycleDay, cycle.timeZone);
  if (atMs < previous.untilMs) return billPeriod(atMs, previous.billCycleDay, previous.timeZone);
  const period = billPeriod(atMs, cycle.billCycleDay, cycle.timeZone);
  if (period.startMs >= previous.untilMs) return period;
  return {
    key: formatLocalDate(localDate(new Date(previous.untilMs), cycle.timeZone)),
    startMs: previous.untilMs,
    endMs: period.endMs,
  };
}

/**
 * The cycle day and zone in effect at an instant: the previous ones before the change took effect, else the current.
 * A period's days are counted in the zone in effect at its start (a transition period's in the new zone).
 */
export function cycleAt(atMs: number, cycle: BillCycle): { billCycleDay: number; timeZone: string } {
  const previous = cycle.previous;
  if (previous !== undefined && previous !== null && atMs < previous.untilMs) {
    return { billCycleDay: previous.billCycleDay, timeZone: previous.timeZone };
  }
  return { billCycleDay: cycle.billCycleDay, timeZone: cycle.timeZone };
}

/**
 * The period a transition period is prorated against: the new cycle's full period that ends where it ends (its
 * days are the denominator of the transition period's charges). Any other period is its own basis.
 */
export function prorationBasis(period: Period, cycle: BillCycle): Period {
  const previous = cycle.previous;
  if (previous === undefined || previous === null || period.startMs !== previous.untilMs) return period;
  const full = billPeriod(period.startMs, cycle.billCycleDay, cycle.timeZone);
  return full.endMs === period.endMs ? full : period;
}

/** A rolling period of `days` days anchored at an instant (a prepaid plan's "30 days" from activation). */
export function rollingPeriod(atMs: number, anchorMs: number, days: number): Period {
  const length = days * DAY_MS;
  const index = Math.floor((atMs - anchorMs) / length);
  const startMs = anchorMs + index * length;
  return { key: new Date(startMs).toISOString(), startMs, endMs: startMs + length };
}

/** The local calendar days of a period in a zone (28–31 for a bill period; 23- and 25-hour days count as one). */
export function periodDays(period: Period, timeZone: string): number {
  return localDayNumber(period.endMs, timeZone) - localDayNumber(period.startMs, timeZone);
}

/** The local calendar days of a period from an instant inside it (its day inclusive) to the period's end. */
export function daysLeft(period: Period, fromMs: number, timeZone: string): number {
  return localDayNumber(period.endMs, timeZone) - localDayNumber(Math.max(fromMs, period.startMs), timeZone);
}

// ---------------------------------------------------------------------------------------------------------------
// Proration (DESIGN.md §10): by days, the days of a piece over the days of the period that holds it

/** Whole units for `days` of a period of `totalDays`, rounded down (allowances: a unit is never granted in part). */
export function prorateUnits(units: number, days: number, totalDays: number): number {
  return Number((BigInt(units) * BigInt(days)) / BigInt(totalDays));
}

/**
 * A price split into pieces of a period by days: each piece is `price × days / totalDays` rounded once to
 * `decimals` places with `mode` (half-up for invoices), except the last, which takes the remainder, so the pieces
 * of a whole period always add up to its price exactly. `pieceDays` must add up to `totalDays`.
 */
export function prorateByDays(
  price: Money,
  pieceDays: readonly number[],
  totalDays: number,
  decimals: number,
  mode: RoundingMode = "halfUp",
): Money[] {
  const sum = pieceDays.reduce((total, days) => total + days, 0);
  if (sum !== totalDays || pieceDays.some((days) => !Number.isInteger(days) || days < 0) || totalDays <= 0) {
    throw new Error(`proration pieces ${pieceDays.join("+")} do not make a period of ${totalDays} days`);
  }
  const pieces: Money[] = [];
  let assigned = new Money(0);
  pieceDays.forEach((days, index) => {
    const piece =
      index === pieceDays.length - 1
        ? price.minus(assigned)
        : price.times(days).dividedBy(totalDays).toDecimalPlaces(decimals, Modes[mode]);
    assigned = assigned.plus(piece);
    pieces.push(piece);
  });
  return pieces;
}

/** One piece of `days` out of `totalDays` (a partial first or last period), rounded once. */
export function proratedAmount(
  price: Money,
  days: number,
  totalDays: number,
  decimals: number,
  mode: RoundingMode = "halfUp",
): Money {
  if (days >= totalDays) return price;
  return price.times(days).dividedBy(totalDays).toDecimalPlaces(decimals, Modes[mode]);
}

// ---------------------------------------------------------------------------------------------------------------
// ISO 8601 durations (the test clock's "advance")

export interface Duration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  seconds: number;
}

/** `P1Y2M3DT4H5M6S`, `P2W`, `PT36H`…: whole numbers only; null when malformed or empty (`P`, `PT`). */
export function parseIsoDuration(text: string): Duration | null {
  const match =
    /^P(?:(\d{1,4})Y)?(?:(\d{1,5})M)?(?:(\d{1,5})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?$/.exec(
      text,
    );
  if (match === null || text === "P" || text.endsWith("T")) return null;
  const [years, months, weeks, days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  return {
    years: years ?? 0,
    months: months ?? 0,
    weeks: weeks ?? 0,
    days: days ?? 0,
    hours: hours ?? 0,
    minutes: minutes ?? 0,
    seconds: seconds ?? 0,
  };
}

/** An instant plus a duration: calendar years and months first (clamped to the month's end), then exact time. */
export function addDuration(instant: Date, duration: Duration): Date {
  const months = addMonthsUtc(instant, duration.years * 12 + duration.months);
  const ms =
    ((duration.weeks * 7 + duration.days) * 24 * 3600 +
      duration.hours * 3600 +
      duration.minutes * 60 +
      duration.seconds) *
    1000;
  return new Date(months.getTime() + ms);
}
