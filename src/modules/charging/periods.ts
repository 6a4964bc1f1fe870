import { billingDayOfMonth, formatLocalDate, type LocalDate, localDate } from "../../shared/time.js";
import { offsetMs } from "../rating/local-time.js";

export interface Period {
  /** The local date the period starts on (bill periods), or its start instant (rolling periods). */
  key: string;
  startMs: number;
  endMs: number;
}

const DAY_MS = 86_400_000;

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
  return guess;
}

function previousMonth(date: LocalDate): { year: number; month: number } {
  return date.month === 1 ? { year: date.year - 1, month: 12 } : { year: date.year, month: date.month - 1 };
}

function nextMonth(date: LocalDate): { year: number; month: number } {
  return date.month === 12 ? { year: date.year + 1, month: 1 } : { year: date.year, month: date.month + 1 };
}

/**
 * The bill period holding an instant: from the account's (clamped) bill cycle day, at local midnight in its
 * zone, to the next one. Spend to date and bill-cycle allowances count in it.
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
  const startMonth = today.day >= thisMonthDay ? { year: today.year, month: today.month } : previousMonth(today);
  const start: LocalDate = {
    ...startMonth,
    day: billingDayOfMonth(billCycleDay, startMonth.year, startMonth.month),
  };
  const endMonth = nextMonth(start);
  const end: LocalDate = { ...endMonth, day: billingDayOfMonth(billCycleDay, endMonth.year, endMonth.month) };
  return {
    key: formatLocalDate(start),
    startMs: localMidnightUtc(timeZone, start),
    endMs: localMidnightUtc(timeZone, end),
  };
}

/** A rolling period of `days` days anchored at an instant (a prepaid plan's "30 days" from activation). */
export function rollingPeriod(atMs: number, anchorMs: number, days: number): Period {
  const length = days * DAY_MS;
  const index = Math.floor((atMs - anchorMs) / length);
  const startMs = anchorMs + index * length;
  return { key: new Date(startMs).toISOString(), startMs, endMs: startMs + length };
}
