/**
 * Fast local time for rating: the UTC offset of a zone is looked up once per quarter hour of UTC time
 * (every zone changes its offset on a quarter-hour boundary) and cached, so an event costs a map lookup and
 * some arithmetic instead of an Intl formatting call.
 */
const QUARTER_HOUR_MS = 900_000;
const CACHE_LIMIT = 100_000;

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

const DAY_MS = 86_400_000;

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
