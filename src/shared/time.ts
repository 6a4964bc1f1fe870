/** Calendar helpers. Business time always comes from an injected clock, never from Date.now() here. */

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

export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** The bill cycle day in a given month: days 29–31 fall on the month's last day when it is shorter. */
export function billingDayOfMonth(billCycleDay: number, year: number, month: number): number {
  return Math.min(billCycleDay, daysInMonth(year, month));
}

export interface LocalDate {
  year: number;
  /** 1–12 */
  month: number;
  day: number;
}

/** Building an Intl.DateTimeFormat costs tens of microseconds; one per zone is kept. */
const dateFormats = new Map<string, Intl.DateTimeFormat>();

function dateFormatFor(timeZone: string): Intl.DateTimeFormat {
  let format = dateFormats.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "numeric", day: "numeric" });
    dateFormats.set(timeZone, format);
  }
  return format;
}

/** The calendar date of an instant in a time zone. */
export function localDate(instant: Date, timeZone: string): LocalDate {
  const parts = dateFormatFor(timeZone).formatToParts(instant);
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { year: part("year"), month: part("month"), day: part("day") };
}

/**
 * The next bill date on or after a local date: this month's clamped cycle day if it has not passed, else
 * next month's. A cycle day of 31 bills on 28 or 29 February and 30 April.
 */
export function nextBillDate(billCycleDay: number, today: LocalDate): LocalDate {
  const thisMonth = billingDayOfMonth(billCycleDay, today.year, today.month);
  if (today.day <= thisMonth) return { year: today.year, month: today.month, day: thisMonth };
  const year = today.month === 12 ? today.year + 1 : today.year;
  const month = today.month === 12 ? 1 : today.month + 1;
  return { year, month, day: billingDayOfMonth(billCycleDay, year, month) };
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
