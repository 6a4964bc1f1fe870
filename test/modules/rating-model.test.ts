import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Decimal } from "decimal.js";
import fc from "fast-check";
import t from "tap";
import { CDR_MAX_AGE_DAYS } from "../../src/shared/limits.js";
import { drivers, type Engine, startEngine } from "../support/engine.js";
import { billingAccountBody, createCustomer, orderReadyAccount, simRecord } from "../support/fixtures.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";

/**
 * Rating against a reference model (DESIGN.md §4 conventions, §5 invariants). Each run builds a postpaid account
 * with three lines (Postpaid M with the International 100 add-on, two Postpaid L sharing their data) and a
 * prepaid account with one line (Prepaid S), then fast-check drives a sequence of commands against the real engine
 * (CDRs over HTTP, the rating service's own queue passes, TMF654 and SQL to read back) and against a model written
 * here in plain decimal arithmetic:
 *
 *   - CDRs (voice national/mobile/EU, SMS, data) one by one, in batches, sized to run allowances out exactly or
 *     by one increment, late ones (offline charging, into periods already rolled over), and SMS/data on the very
 *     second a bill or 30-day period starts;
 *   - an earlier CDR again, unchanged (duplicate) or changed (conflict);
 *   - prepaid top-ups with a new key, no key, a repeated key (answered, not applied) and a reused key (refused);
 *   - adjustments: prepaid credits and debits, postpaid credits and debits of spend to date, bucket units (own,
 *     rollover or shared buckets), including refused ones;
 *   - the clock moving to later working days or into the next bill period, with or without events there, and
 *     the renewal job;
 *   - a rating worker dying after it read a batch, after it committed but before it acknowledged (plus the
 *     entries queued again), or at its first COMMIT; another worker claims its pending entries;
 *   - reconciliation: ledger = store, and a rebuild from the ledger changes nothing.
 *
 * After every command the queue is drained and everything observable is compared, exactly: prepaid balances and
 * accumulated balances, postpaid spend to date, every allowance bucket from the TMF654 bucket API (granted,
 * remaining, validity, status), every rated row (amount, allowance and charged units, quantity, draws per
 * bucket), the count and sums of rated rows per line and spend period, ledger operations, and that nothing went
 * to suspense. A failure lists every command run and every difference.
 *
 * The model imports nothing from src/: tariff figures, allowances and calendar rules are written out below from
 * the catalog files they come from (a separate test checks those files still say so).
 *
 * Knobs: BSS_MODEL_RUNS (runs per driver, default 10), BSS_MODEL_TIME_BUDGET_MS (no new run starts after it, per
 * driver), BSS_MODEL_SHRINK=1 (let fast-check shrink a failure; slow), BSS_MODEL_SEED and BSS_MODEL_PATH (replay a
 * reported failure), BSS_MODEL_ALLOWANCES (below).
 */

// ------------------------------------------------------------------------------------------------------------
// Allowance semantics. The engine's allowances are changing (proration, shared buckets, rollover); the model
// knows both the old and the new rules. ENGINE_ALLOWANCE_SEMANTICS says which new rules the engine has today;
// BSS_MODEL_ALLOWANCES=proration,shared,rollover (or "all", or "none") overrides it for a run.
// ------------------------------------------------------------------------------------------------------------

const ENGINE_ALLOWANCE_SEMANTICS = { proration: true, shared: true, rollover: true };

type SemanticsName = keyof typeof ENGINE_ALLOWANCE_SEMANTICS;
const SEMANTICS: Record<SemanticsName, boolean> = (() => {
  const override = process.env.BSS_MODEL_ALLOWANCES;
  if (override === undefined || override === "") return { ...ENGINE_ALLOWANCE_SEMANTICS };
  const names = new Set(override.split(",").map((name) => name.trim()));
  const all = names.has("all");
  return {
    proration: all || names.has("proration"),
    shared: all || names.has("shared"),
    rollover: all || names.has("rollover"),
  };
})();

/** Runs per driver and commands per run: fewer, longer sequences (each run builds two accounts and four lines). */
const NUM_RUNS = Number(process.env.BSS_MODEL_RUNS ?? 10);
const MAX_COMMANDS = 30;
/** A run in progress finishes, but no new one starts after this long (per driver): the machine may be busy. */
const TIME_BUDGET_MS = Number(process.env.BSS_MODEL_TIME_BUDGET_MS ?? 16_000);

/** What the runs exercised, printed at the end: evidence that the allowance edges and the money path were hit. */
const newCoverage = () => ({
  runs: 0,
  commands: 0,
  longest: 0,
  kinds: new Map<string, number>(),
  events: { free: 0, allowanceOnly: 0, partlyCovered: 0, moneyOnly: 0 },
  buckets: { rollover: 0, shared: 0, prorated: 0, exhausted: 0 },
});
let coverage = newCoverage();

// ------------------------------------------------------------------------------------------------------------
// The model's figures, from the catalog.
// ------------------------------------------------------------------------------------------------------------

/** Exact decimals: far more precision than any amount here needs, so only the named roundings round. */
const D = Decimal.clone({ precision: 60, rounding: Decimal.ROUND_HALF_UP, toExpNeg: -60, toExpPos: 60 });
type D = InstanceType<typeof D>;

type Service = "voice" | "sms" | "data";

/**
 * Every CDR starts in the tariff's `peak` band (catalog/tariffs/tariff-de-eur.json, timeBands[id=peak]:
 * mon–fri 07:00–19:00 Europe/Berlin, not on `holidays`) and voice calls end before 19:00, so one band applies to
 * each event and the model needs no band logic: runs start at 08:00 local on a working day, each CDR moves the
 * clock one minute, and a call lasts at most four hours.
 */
const TARIFF_ZONE = "Europe/Berlin";
/** catalog/tariffs/tariff-de-eur.json, `holidays`. */
const HOLIDAYS = new Set([
  "2026-01-01",
  "2026-04-03",
  "2026-04-06",
  "2026-05-01",
  "2026-05-14",
  "2026-05-25",
  "2026-10-03",
  "2026-12-25",
  "2026-12-26",
  "2027-01-01",
]);

/**
 * Voice at peak, catalog/tariffs/tariff-de-eur.json rates[id=national-peak] and rates[id=mobile-peak]:
 * `connectionFee`, steps[0] {from 0, price, per 60, increment 60} (the first minute is charged whole), steps[1]
 * {from 60, same price, per 60, increment 1}, rounding halfUp to 2 decimals. Destinations by longest prefix
 * (destinations[]): +49 national, +4915 national-mobile.
 */
const VOICE_PEAK = {
  national: { calledNumber: "+4930123456", connectionFee: "0.05", pricePerMinute: "0.09" },
  "national-mobile": { calledNumber: "+4915199999999", connectionFee: "0.05", pricePerMinute: "0.19" },
} as const;
/** rates[id=international-eu]: price 0.29 per 60 s in 30 s increments, minimumCharge 0.10, halfUp 2; any band. */
const VOICE_EU = { calledNumber: "+33123456789", pricePerMinute: "0.29", incrementSeconds: 30, minimumCharge: "0.10" };
/** rates[id=sms-national] (destination national-mobile) 0.09 and rates[id=sms-international] (any other) 0.19 per message. */
const SMS_PRICE = { "national-mobile": "0.09", other: "0.19" } as const;
/** rates[id=data-home]: 0.49 per 1,048,576 bytes in 1,024-byte increments, rounding `up` to 2 decimals. */
const DATA_HOME = { price: "0.49", per: 1_048_576, increment: 1024 };

interface AllowanceSpec {
  id: string;
  service: Service;
  units: number;
  period: "billCycle" | "30days";
  destinations?: readonly string[];
  roaming?: readonly string[];
  shared?: boolean;
  rolloverMaxUnits?: number;
}

/** catalog/offerings/plans.json and addons.json, each offering's `allowances`. */
const OFFERINGS: Record<string, readonly AllowanceSpec[]> = {
  "plan-postpaid-m": [
    {
      id: "voice",
      service: "voice",
      units: 30_000,
      period: "billCycle",
      destinations: ["national", "national-mobile"],
    },
    { id: "sms", service: "sms", units: 100, period: "billCycle" },
    { id: "data", service: "data", units: 10_737_418_240, period: "billCycle", rolloverMaxUnits: 10_737_418_240 },
  ],
  "plan-postpaid-l": [
    {
      id: "voice",
      service: "voice",
      units: 180_000,
      period: "billCycle",
      destinations: ["national", "national-mobile"],
    },
    { id: "sms", service: "sms", units: 1000, period: "billCycle" },
    {
      id: "data",
      service: "data",
      units: 42_949_672_960,
      period: "billCycle",
      shared: true,
      rolloverMaxUnits: 21_474_836_480,
    },
    { id: "roaming-data", service: "data", units: 5_368_709_120, period: "billCycle", roaming: ["eu"] },
  ],
  "plan-prepaid-s": [
    { id: "voice", service: "voice", units: 12_000, period: "30days", destinations: ["national", "national-mobile"] },
    { id: "sms", service: "sms", units: 50, period: "30days" },
    { id: "data", service: "data", units: 3_221_225_472, period: "30days" },
  ],
  "addon-international-100": [
    {
      id: "voice-international",
      service: "voice",
      units: 6000,
      period: "billCycle",
      destinations: ["international-eu", "international-na"],
    },
  ],
};

/** The lines of every run: a postpaid account (test/support/fixtures.ts: bill cycle day 1, Europe/Berlin) with three, a prepaid one with one. */
const LINES = [
  { name: "M", plan: "plan-postpaid-m", addons: ["addon-international-100"], account: "postpaid" },
  { name: "L1", plan: "plan-postpaid-l", addons: [], account: "postpaid" },
  { name: "L2", plan: "plan-postpaid-l", addons: [], account: "postpaid" },
  { name: "S", plan: "plan-prepaid-s", addons: [], account: "prepaid" },
] as const;
type AccountKind = "postpaid" | "prepaid";
/** The postpaid account's credit limit (test/support/fixtures.ts, billingAccountBody: creditLimit 100 EUR). */
const CREDIT_LIMIT = "100";
const ACCOUNT_ZONE = "Europe/Berlin";
const DAY_MS = 86_400_000;
const ROLLING_PERIOD_MS = 30 * DAY_MS;

// ------------------------------------------------------------------------------------------------------------
// Calendar, in the model's own terms (Intl for the zone's offset, nothing else).
// ------------------------------------------------------------------------------------------------------------

interface LocalDay {
  year: number;
  month: number;
  day: number;
}

const wallFormats = new Map<string, Intl.DateTimeFormat>();
function wallClock(zone: string, ms: number): LocalDay & { hour: number; minute: number; second: number } {
  let format = wallFormats.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    wallFormats.set(zone, format);
  }
  const parts = format.formatToParts(new Date(ms));
  const part = (type: string) => Number(parts.find((candidate) => candidate.type === type)?.value);
  return {
    year: part("year"),
    month: part("month"),
    day: part("day"),
    hour: part("hour"),
    minute: part("minute"),
    second: part("second"),
  };
}

/** The UTC instant at which the zone's wall clock reads `hour`:00 on a day (no DST change happens at 00:00 or 08:00 here). */
function wallToUtc(zone: string, day: LocalDay, hour: number): number {
  const wall = Date.UTC(day.year, day.month - 1, day.day, hour);
  const offset = (utc: number) => {
    const w = wallClock(zone, utc);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(utc / 1000) * 1000;
  };
  const guess = wall - offset(wall);
  return wall - offset(guess);
}

function addDays(day: LocalDay, days: number): LocalDay {
  const date = new Date(Date.UTC(day.year, day.month - 1, day.day + days));
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

const isoDay = (day: LocalDay) =>
  `${day.year}-${String(day.month).padStart(2, "0")}-${String(day.day).padStart(2, "0")}`;

/** The first working day (mon–fri, not a tariff holiday) on or after a day: the peak band exists on it. */
function workingDay(day: LocalDay): LocalDay {
  let candidate = day;
  for (;;) {
    const weekday = new Date(Date.UTC(candidate.year, candidate.month - 1, candidate.day)).getUTCDay();
    if (weekday !== 0 && weekday !== 6 && !HOLIDAYS.has(isoDay(candidate))) return candidate;
    candidate = addDays(candidate, 1);
  }
}

/** The last working day on or before a day. */
function workingDayBefore(day: LocalDay): LocalDay {
  let candidate = day;
  while (isoDay(workingDay(candidate)) !== isoDay(candidate)) candidate = addDays(candidate, -1);
  return candidate;
}

const workingMorning = (day: LocalDay) => wallToUtc(TARIFF_ZONE, workingDay(day), 8);

interface ModelPeriod {
  key: string;
  startMs: number;
  endMs: number;
  /** Local calendar days of a bill period. */
  days: number;
}

/** Bill cycle day 1: the local calendar month. */
function billPeriodOf(ms: number): ModelPeriod {
  const today = wallClock(ACCOUNT_ZONE, ms);
  const start = { year: today.year, month: today.month, day: 1 };
  const end = today.month === 12 ? { year: today.year + 1, month: 1, day: 1 } : { ...start, month: today.month + 1 };
  return {
    key: isoDay(start),
    startMs: wallToUtc(ACCOUNT_ZONE, start, 0),
    endMs: wallToUtc(ACCOUNT_ZONE, end, 0),
    days: new Date(Date.UTC(today.year, today.month, 0)).getUTCDate(),
  };
}

/** 30 days (of 86,400 s) at a time from the line's activation instant. */
function rollingPeriodOf(ms: number, anchorMs: number): ModelPeriod {
  const startMs = anchorMs + Math.floor((ms - anchorMs) / ROLLING_PERIOD_MS) * ROLLING_PERIOD_MS;
  return { key: new Date(startMs).toISOString(), startMs, endMs: startMs + ROLLING_PERIOD_MS, days: 30 };
}

// ------------------------------------------------------------------------------------------------------------
// The model.
// ------------------------------------------------------------------------------------------------------------

type CdrKind = "voice-national" | "voice-mobile" | "voice-eu" | "sms-national" | "sms-eu" | "data";
interface CdrSpec {
  kind: CdrKind;
  /** Seconds, messages or bytes. */
  quantity: number;
}

interface ModelBucket {
  seq: number;
  /** A shared bucket's lines whose share it holds. */
  sharers?: Set<string>;
  account: AccountKind;
  /** The line's name, or "account" for a bucket shared by the account's lines. */
  owner: string;
  offering: string;
  allowance: string;
  service: Service;
  destinations: readonly string[] | null;
  roaming: boolean;
  /** A rollover bucket's source period: a late event of that period may still use what was carried over. */
  rollover: { fromStartMs: number; fromEndMs: number } | null;
  /** A regular bucket whose unused units have been rolled (or found to be nothing to roll). */
  rolled: boolean;
  startMs: number;
  endMs: number;
  granted: number;
  used: number;
}

interface ModelLine {
  name: string;
  /** The plan and its add-ons, activated together. */
  offerings: readonly string[];
  account: AccountKind;
  activatedMs: number;
  /** Prepaid balance (null for postpaid lines). */
  balance: D | null;
}

interface Priced {
  destination: string | null;
  allowanceUnits: number;
  chargedUnits: number;
  amount: D;
}

interface ModelEvent {
  cdrId: string;
  line: string;
  body: Record<string, unknown>;
  quantity: number;
  amount: D;
  allowanceUnits: number;
  chargedUnits: number;
  draws: string[];
  spendPeriod: string;
}

interface Model {
  clockMs: number;
  lines: ModelLine[];
  buckets: ModelBucket[];
  /** Line/allowance/period triples whose buckets exist (granted at activation or by the first event of a period). */
  ensured: Set<string>;
  /** Postpaid spend to date by bill period (charges − credits + debits). */
  spend: Map<string, D>;
  events: ModelEvent[];
  topUps: Array<{ key: string; amount: D }>;
  operations: { topup: number; adjustment: number };
  nextSeq: number;
  /** Lines barred on the network for credit, and the bar/unbar calls each line's network element received. */
  barred: Set<string>;
  network: Map<string, string[]>;
  /** Bill periods whose credit-limit threshold fired and was not re-armed; whether S's balance-exhausted did. */
  creditLimitCrossed: Set<string>;
  balanceExhausted: boolean;
  /** Crossings of the events rated since the last settlement (the worker acts on them after its commit). */
  crossings: { creditLimit: boolean; balanceExhausted: boolean };
}

const lineOf = (m: Model, name: string) => m.lines.find((line) => line.name === name) as ModelLine;

/** floor(units × remainingDays / periodDays), remainingDays counted from the activation's local date inclusive. */
function proratedUnits(units: number, period: ModelPeriod, activatedMs: number): number {
  const activation = wallClock(ACCOUNT_ZONE, activatedMs);
  const remainingDays = period.days - activation.day + 1;
  return Math.floor((units * remainingDays) / period.days);
}

/**
 * The line's buckets for the periods holding `atMs`, made where missing: at activation and at the first event
 * of a new period. With the new semantics a bill-cycle allowance is prorated in the activation period, a shared
 * one adds each line's units to the account's one bucket, and a successor bucket takes over min(unused, cap)
 * of its predecessor (the bucket of the period just before) into a rollover bucket.
 */
function ensureBuckets(m: Model, line: ModelLine, atMs: number): void {
  for (const offering of line.offerings) {
    for (const spec of OFFERINGS[offering] ?? []) ensureBucket(m, line, offering, spec, atMs);
  }
}

function ensureBucket(m: Model, line: ModelLine, offering: string, spec: AllowanceSpec, atMs: number): void {
  const period = spec.period === "30days" ? rollingPeriodOf(atMs, line.activatedMs) : billPeriodOf(atMs);
  const shareOf = (of: ModelLine) =>
    SEMANTICS.proration && spec.period === "billCycle" && of.activatedMs >= period.startMs
      ? proratedUnits(spec.units, period, of.activatedMs)
      : spec.units;
  const units = shareOf(line);
  // Nothing granted (a first period too short for one unit): no bucket, no share, nothing settled.
  if (units === 0) return;
  const owner = SEMANTICS.shared && spec.shared === true ? "account" : line.name;
  const same = (bucket: ModelBucket) =>
    bucket.account === line.account &&
    bucket.owner === owner &&
    bucket.offering === offering &&
    bucket.allowance === spec.id &&
    bucket.rollover === null;
  const mark = `${line.name}/${offering}/${spec.id}/${period.startMs}`;
  if (m.ensured.has(mark)) return;
  m.ensured.add(mark);
  if (units < spec.units) coverage.buckets.prorated += 1;
  let current = m.buckets.find((bucket) => same(bucket) && bucket.startMs === period.startMs);
  if (current === undefined) {
    current = newBucket(m, line, offering, spec, owner, period, units, null);
    current.sharers = new Set([line.name]);
    m.buckets.push(current);
  }
  if (owner === "account") {
    // A shared bucket holds the share of every line of the account on the offering activated by now (and before
    // the period ends), whichever line met the period first.
    for (const other of m.lines) {
      if (other.account !== line.account || !other.offerings.includes(offering)) continue;
      if (other.activatedMs > m.clockMs || other.activatedMs >= period.endMs || current.sharers?.has(other.name))
        continue;
      const share = shareOf(other);
      if (share === 0) continue;
      current.granted += share;
      current.sharers?.add(other.name);
    }
  }
  if (!SEMANTICS.rollover || spec.rolloverMaxUnits === undefined) return;
  // A bucket rolls into its successor as soon as both exist: from the period before into this one, and from this
  // one into the next when this one was made late.
  const cap = spec.rolloverMaxUnits;
  const roll = (from: ModelBucket | undefined, into: ModelBucket | undefined) => {
    if (from === undefined || into === undefined || from.rolled) return;
    from.rolled = true;
    const moved = Math.min(Math.max(0, from.granted - from.used), cap);
    if (moved === 0) return;
    from.granted -= moved;
    m.buckets.push(
      newBucket(m, line, offering, spec, owner, { ...period, startMs: into.startMs, endMs: into.endMs }, moved, {
        fromStartMs: from.startMs,
        fromEndMs: from.endMs,
      }),
    );
  };
  const at = current;
  roll(
    m.buckets.find((bucket) => same(bucket) && bucket.endMs === at.startMs),
    at,
  );
  roll(
    at,
    m.buckets.find((bucket) => same(bucket) && bucket.startMs === at.endMs),
  );
}

function newBucket(
  m: Model,
  line: ModelLine,
  offering: string,
  spec: AllowanceSpec,
  owner: string,
  period: ModelPeriod,
  granted: number,
  rollover: ModelBucket["rollover"],
): ModelBucket {
  m.nextSeq += 1;
  return {
    seq: m.nextSeq,
    account: line.account,
    owner,
    offering,
    allowance: spec.id,
    service: spec.service,
    destinations: spec.destinations ?? null,
    roaming: spec.roaming !== undefined,
    rollover,
    rolled: false,
    startMs: period.startMs,
    endMs: period.endMs,
    granted,
    used: 0,
  };
}

/**
 * Buckets that may cover an event, in drawing order: earliest period end first, then rollover before regular,
 * then the line's own before shared. The line's own and its account's shared buckets of the event's service and
 * destination whose period holds the event; with rollover, also a rollover bucket whose source period holds it (a
 * late CDR of a period already rolled over still has its period's unused units, part of them now carried).
 */
function covering(m: Model, line: ModelLine, service: Service, destination: string | null, atMs: number) {
  return m.buckets
    .filter(
      (bucket) =>
        bucket.account === line.account &&
        (bucket.owner === line.name || bucket.owner === "account") &&
        bucket.service === service &&
        !bucket.roaming &&
        ((bucket.startMs <= atMs && atMs < bucket.endMs) ||
          (bucket.rollover !== null && bucket.rollover.fromStartMs <= atMs && atMs < bucket.rollover.fromEndMs)) &&
        (service !== "voice" ||
          bucket.destinations === null ||
          (destination !== null && bucket.destinations.includes(destination))),
    )
    .sort(
      (a, b) =>
        a.endMs - b.endMs ||
        Number(b.rollover !== null) - Number(a.rollover !== null) ||
        Number(a.owner === "account") - Number(b.owner === "account") ||
        a.seq - b.seq,
    );
}

const roundHalfUp = (amount: D) => amount.toDecimalPlaces(2, Decimal.ROUND_HALF_UP);
const roundUp = (amount: D) => amount.toDecimalPlaces(2, Decimal.ROUND_UP);
const FREE = (destination: string | null, allowanceUnits: number): Priced => ({
  destination,
  allowanceUnits,
  chargedUnits: 0,
  amount: new D(0),
});

/**
 * A peak national call: the allowance covers whole increments from the start (the first 60 s as one), a fully
 * covered call costs nothing, otherwise the rest is charged from where the allowance ran out plus the fee.
 */
function priceVoicePeak(destination: "national" | "national-mobile", seconds: number, available: number): Priced {
  const rate = VOICE_PEAK[destination];
  if (seconds === 0) return FREE(destination, 0);
  const afterFirstMinute = Math.max(0, seconds - 60);
  let coveredTo = 0;
  if (available >= 60) {
    if (available - 60 >= afterFirstMinute) return FREE(destination, 60 + afterFirstMinute);
    coveredTo = available;
  }
  const chargedUnits = coveredTo === 0 ? 60 + afterFirstMinute : seconds - coveredTo;
  const amount = new D(chargedUnits).times(rate.pricePerMinute).div(60).plus(rate.connectionFee);
  return { destination, allowanceUnits: coveredTo, chargedUnits, amount: roundHalfUp(amount) };
}

/**
 * A call to the EU, in 30 s increments from the start: only an international add-on's allowance covers it, in
 * whole increments; the rest pays at least the minimum charge; there is no connection fee.
 */
function priceVoiceEu(seconds: number, available: number): Priced {
  const increment = VOICE_EU.incrementSeconds;
  const inIncrements = Math.ceil(seconds / increment) * increment;
  if (available >= inIncrements) return FREE("international-eu", inIncrements);
  const covered = Math.floor(available / increment) * increment;
  const chargedUnits = Math.ceil((seconds - covered) / increment) * increment;
  let amount = new D(chargedUnits).times(VOICE_EU.pricePerMinute).div(60);
  if (amount.lt(VOICE_EU.minimumCharge)) amount = new D(VOICE_EU.minimumCharge);
  return { destination: "international-eu", allowanceUnits: covered, chargedUnits, amount: roundHalfUp(amount) };
}

function priceSms(destination: string, messages: number, available: number): Priced {
  const covered = Math.min(messages, available);
  if (covered === messages) return FREE(destination, messages);
  const price = destination === "national-mobile" ? SMS_PRICE["national-mobile"] : SMS_PRICE.other;
  const chargedUnits = messages - covered;
  return { destination, allowanceUnits: covered, chargedUnits, amount: roundHalfUp(new D(chargedUnits).times(price)) };
}

/** Data: whole 1 KiB increments from the allowance, the rest at the per-MiB price, rounded up to the cent. */
function priceData(bytes: number, available: number): Priced {
  const inIncrements = Math.ceil(bytes / DATA_HOME.increment) * DATA_HOME.increment;
  if (available >= inIncrements) return FREE(null, inIncrements);
  const covered = Math.floor(available / DATA_HOME.increment) * DATA_HOME.increment;
  const chargedUnits = Math.ceil((bytes - covered) / DATA_HOME.increment) * DATA_HOME.increment;
  const amount = new D(chargedUnits).times(DATA_HOME.price).div(DATA_HOME.per);
  return { destination: null, allowanceUnits: covered, chargedUnits, amount: roundUp(amount) };
}

function serviceOf(kind: CdrKind): Service {
  return kind.startsWith("voice") ? "voice" : kind.startsWith("sms") ? "sms" : "data";
}

function destinationOf(kind: CdrKind): string | null {
  if (kind === "voice-national") return "national";
  if (kind === "voice-mobile" || kind === "sms-national") return "national-mobile";
  if (kind === "voice-eu" || kind === "sms-eu") return "international-eu";
  return null;
}

/** One CDR through the model: buckets for its period, allowances first, money for the rest, rounding once. */
function rateInModel(
  m: Model,
  lineName: string,
  spec: CdrSpec,
  atMs: number,
  cdrId: string,
  body: Record<string, unknown>,
) {
  const line = lineOf(m, lineName);
  ensureBuckets(m, line, atMs);
  const service = serviceOf(spec.kind);
  const destination = destinationOf(spec.kind);
  const candidates = covering(m, line, service, destination, atMs);
  const available = candidates.reduce((sum, bucket) => sum + Math.max(0, bucket.granted - bucket.used), 0);
  const priced =
    spec.kind === "voice-national"
      ? priceVoicePeak("national", spec.quantity, available)
      : spec.kind === "voice-mobile"
        ? priceVoicePeak("national-mobile", spec.quantity, available)
        : spec.kind === "voice-eu"
          ? priceVoiceEu(spec.quantity, available)
          : spec.kind === "data"
            ? priceData(spec.quantity, available)
            : priceSms(destination ?? "", spec.quantity, available);
  const draws: string[] = [];
  let toDraw = priced.allowanceUnits;
  for (const bucket of candidates) {
    if (toDraw === 0) break;
    const units = Math.min(Math.max(0, bucket.granted - bucket.used), toDraw);
    if (units === 0) continue;
    bucket.used += units;
    toDraw -= units;
    draws.push(`${labelOf(bucket)}:${units}`);
  }
  if (toDraw !== 0) throw new Error(`model: ${toDraw} allowance units found no bucket`);
  const spendPeriod = billPeriodOf(atMs).key;
  // The event that crosses a limit is charged in full (offline usage already happened); each threshold fires
  // once until re-armed: the prepaid balance falling below zero, the period's spend reaching the credit limit.
  if (line.balance !== null) {
    const before = line.balance;
    line.balance = before.minus(priced.amount);
    if (!m.balanceExhausted && !before.isNegative() && line.balance.isNegative()) {
      m.balanceExhausted = true;
      m.crossings.balanceExhausted = true;
    }
  } else {
    const before = m.spend.get(spendPeriod) ?? new D(0);
    const after = before.plus(priced.amount);
    m.spend.set(spendPeriod, after);
    if (!m.creditLimitCrossed.has(spendPeriod) && before.lt(CREDIT_LIMIT) && after.gte(CREDIT_LIMIT)) {
      m.creditLimitCrossed.add(spendPeriod);
      m.crossings.creditLimit = true;
    }
  }
  m.events.push({
    cdrId,
    line: lineName,
    body,
    quantity: spec.quantity,
    amount: priced.amount,
    allowanceUnits: priced.allowanceUnits,
    chargedUnits: priced.chargedUnits,
    draws,
    spendPeriod,
  });
}

/** Bars or unbars a line for credit; answers its name when that changed anything (the network was told). */
function setBarred(m: Model, name: string, barred: boolean): string[] {
  if (m.barred.has(name) === barred) return [];
  if (barred) m.barred.add(name);
  else m.barred.delete(name);
  m.network.set(name, [...(m.network.get(name) ?? []), barred ? "bar" : "unbar"]);
  return [name];
}

/**
 * After its commit the worker acts on the crossings of what it rated, if they still hold: the credit limit (the
 * current bill period's spend at or over it) bars every line of the account; a prepaid balance below zero bars
 * the line. Answers the lines whose barring changed.
 */
function settleBarring(m: Model): string[] {
  const changed: string[] = [];
  if (m.crossings.creditLimit && (m.spend.get(billPeriodOf(m.clockMs).key) ?? new D(0)).gte(CREDIT_LIMIT)) {
    for (const line of m.lines) if (line.account === "postpaid") changed.push(...setBarred(m, line.name, true));
  }
  if (m.crossings.balanceExhausted && (lineOf(m, "S").balance ?? new D(0)).isNegative()) {
    changed.push(...setBarred(m, "S", true));
  }
  m.crossings = { creditLimit: false, balanceExhausted: false };
  return changed;
}

/** Money into S (a top-up, an adjustment): the balance thresholds re-arm at or above them; back at zero, unbarred. */
function prepaidMoneyIn(m: Model, applied: boolean): string[] {
  const balance = lineOf(m, "S").balance ?? new D(0);
  if (applied && !balance.isNegative()) m.balanceExhausted = false;
  return balance.isNegative() ? [] : setBarred(m, "S", false);
}

/** A postpaid money adjustment: spend under the credit limit again re-arms it and lifts the barring of every line. */
function postpaidAdjusted(m: Model): string[] {
  const period = billPeriodOf(m.clockMs).key;
  if ((m.spend.get(period) ?? new D(0)).gte(CREDIT_LIMIT)) return [];
  m.creditLimitCrossed.delete(period);
  return m.lines.filter((line) => line.account === "postpaid").flatMap((line) => setBarred(m, line.name, false));
}

function bucketLabel(owner: string, offering: string, allowance: string, rollover: boolean, startMs: number): string {
  return `${owner} ${offering} ${allowance}${rollover ? " rollover" : ""} from ${new Date(startMs).toISOString()}`;
}

const labelOf = (bucket: ModelBucket) =>
  bucketLabel(bucket.owner, bucket.offering, bucket.allowance, bucket.rollover !== null, bucket.startMs);

/** What the engine should show, flattened to comparable strings. */
function expected(m: Model): Map<string, string> {
  const out = new Map<string, string>();
  const prepaid = lineOf(m, "S");
  out.set("balance S", fixed(prepaid.balance ?? new D(0)));
  out.set("accumulated prepaid", fixed(prepaid.balance ?? new D(0)));
  out.set("accumulated postpaid", fixed(m.spend.get(billPeriodOf(m.clockMs).key) ?? new D(0)));
  addAll(
    out,
    "bucket",
    m.buckets.map((bucket) => ({
      key: `${labelOf(bucket)} ${bucket.service} to ${new Date(bucket.endMs).toISOString()}`,
      value: `${bucket.endMs <= m.clockMs ? "expired" : "active"} granted=${bucket.granted} remaining=${bucket.granted - bucket.used}`,
    })),
  );
  const totals = new Map<string, { count: number; amount: D; allowance: number; charged: number; quantity: number }>();
  for (const event of m.events) {
    out.set(
      `row ${event.cdrId}`,
      rowText(
        event.line,
        event.spendPeriod,
        fixed(event.amount),
        event.allowanceUnits,
        event.chargedUnits,
        event.quantity,
        event.draws,
      ),
    );
    const key = `rated ${event.line} ${event.spendPeriod}`;
    const total = totals.get(key) ?? { count: 0, amount: new D(0), allowance: 0, charged: 0, quantity: 0 };
    total.count += 1;
    total.amount = total.amount.plus(event.amount);
    total.allowance += event.allowanceUnits;
    total.charged += event.chargedUnits;
    total.quantity += event.quantity;
    totals.set(key, total);
  }
  for (const [key, total] of totals) {
    out.set(
      key,
      totalText(
        total.count,
        fixed(total.amount),
        String(total.allowance),
        String(total.charged),
        String(total.quantity),
      ),
    );
  }
  out.set("operations", `topup=${m.operations.topup} adjustment=${m.operations.adjustment}`);
  out.set("suspense", "0");
  for (const line of m.lines) out.set(`network ${line.name}`, (m.network.get(line.name) ?? []).join(",") || "-");
  return out;
}

const fixed = (amount: D) => amount.toFixed();
const rowText = (
  line: string,
  period: string,
  amount: string,
  allowance: number,
  charged: number,
  quantity: number,
  draws: string[],
) =>
  `${line} ${period} amount=${amount} allowance=${allowance} charged=${charged} quantity=${quantity} draws=[${draws.join(", ")}]`;
const totalText = (count: number, amount: string, allowance: string, charged: string, quantity: string) =>
  `count=${count} amount=${amount} allowance=${allowance} charged=${charged} quantity=${quantity}`;

/** Adds items whose keys may repeat (a rollover bucket and its period's regular one) as key #1, #2 in value order. */
function addAll(out: Map<string, string>, prefix: string, items: Array<{ key: string; value: string }>) {
  const sorted = [...items].sort((a, b) => a.key.localeCompare(b.key) || a.value.localeCompare(b.value));
  let previous = "";
  let ordinal = 0;
  for (const item of sorted) {
    ordinal = item.key === previous ? ordinal + 1 : 1;
    previous = item.key;
    out.set(`${prefix} ${item.key}${ordinal > 1 ? ` #${ordinal}` : ""}`, item.value);
  }
}

// ------------------------------------------------------------------------------------------------------------
// The engine side: driving it, and reading what it shows.
// ------------------------------------------------------------------------------------------------------------

const BALANCES = "/tmf-api/prepayBalanceManagement/v4";

interface Real {
  engine: Engine;
  /** The network the engine provisions lines on: it records every bar and unbar. */
  network: RecordingProvisioning;
  run: string;
  accounts: Record<AccountKind, string>;
  /** Line name → product id and number. */
  lines: Map<string, { id: string; msisdn: string }>;
  /** Product id (or account id) → the model's name for it. */
  names: Map<string, string>;
  /** The rating worker generation; a restart starts a new consumer. */
  worker: number;
  cdrs: number;
  keys: number;
  /** The commands run so far, for the failure message. */
  log: string[];
}

const consumer = (r: Real) => `model-${r.run}-w${r.worker}`;

async function request(r: Real, method: string, url: string, options: Parameters<Engine["request"]>[2] = {}) {
  const answer = await r.engine.request(method, url, options);
  return {
    status: answer.statusCode,
    body: answer.statusCode === 204 ? null : (answer.json() as Record<string, unknown>),
  };
}

function cdrBody(
  r: Real,
  lineName: string,
  spec: CdrSpec,
  atMs: number,
): { cdrId: string; body: Record<string, unknown> } {
  r.cdrs += 1;
  const cdrId = `model-${r.run}-${r.cdrs}`;
  const line = r.lines.get(lineName) as { msisdn: string };
  const base = { cdrId, source: "msc-1", servedMSISDN: line.msisdn, recordOpeningTime: new Date(atMs).toISOString() };
  switch (spec.kind) {
    case "voice-national":
    case "voice-mobile":
    case "voice-eu": {
      const calledNumber =
        spec.kind === "voice-eu"
          ? VOICE_EU.calledNumber
          : VOICE_PEAK[spec.kind === "voice-national" ? "national" : "national-mobile"].calledNumber;
      return { cdrId, body: { ...base, recordType: "voice", calledNumber, duration: spec.quantity } };
    }
    case "sms-national":
    case "sms-eu": {
      const calledNumber = spec.kind === "sms-eu" ? VOICE_EU.calledNumber : VOICE_PEAK["national-mobile"].calledNumber;
      return { cdrId, body: { ...base, recordType: "sms", calledNumber, messages: spec.quantity } };
    }
    case "data": {
      // Uplink and downlink together make the volume.
      const uplink = Math.floor(spec.quantity / 3);
      return {
        cdrId,
        body: { ...base, recordType: "data", dataVolumeUplink: uplink, dataVolumeDownlink: spec.quantity - uplink },
      };
    }
  }
}

async function postCdrBatch(r: Real, bodies: Array<Record<string, unknown>>): Promise<void> {
  const answer = await request(r, "POST", "/api/v1/cdrs", { key: r.engine.keys.network, body: bodies });
  if (answer.status !== 200 || answer.body?.accepted !== bodies.length) {
    throw new Error(`CDRs not all accepted: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

async function queueDepth(engine: Engine): Promise<number> {
  const queue = engine.app.services.charging.queue;
  let depth = 0;
  for (let shard = 0; shard < queue.shards; shard++) depth += await queue.depth(shard);
  return depth;
}

/**
 * Rating passes of the current worker until every shard is empty (the loop's work, run in step), then the
 * barring the worker did after its commits.
 */
async function drain(m: Model, r: Real): Promise<void> {
  await rate(r);
  await lineChanges(m, r, settleBarring(m));
}

/**
 * A line whose state changed (here: barred or unbarred) is granted its current period at once, in the background,
 * as at activation (src/modules/charging/index.ts, onLineChange → grantLine): it may make the line's buckets of a
 * new period, and its share of a shared bucket, before its first event there. The model does the same and waits
 * until the engine shows it, so the next command does not race the background grant.
 */
async function lineChanges(m: Model, r: Real, changed: readonly string[]): Promise<void> {
  if (changed.length === 0) return;
  for (const name of changed) ensureBuckets(m, lineOf(m, name), m.clockMs);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const want = expected(m);
    const got = await observe(r);
    const pending = [...want].some(([key, value]) => key.startsWith("bucket ") && got.get(key) !== value);
    if (!pending || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function rate(r: Real): Promise<void> {
  const rating = r.engine.app.services.charging.rating;
  for (let pass = 0; pass < 12; pass++) {
    await rating.rateOnce(consumer(r));
    if ((await queueDepth(r.engine)) === 0) return;
  }
  throw new Error(`the rating queue did not drain: ${await queueDepth(r.engine)} entries left`);
}

/** Moves the engine's clock and the model's together. */
function setClock(m: Model, r: Real, ms: number): void {
  m.clockMs = ms;
  r.engine.clock.set(new Date(ms));
}

/** One CDR per call to the network API, rated at once; the model rates it the same way. */
async function sendCdr(m: Model, r: Real, lineName: string, spec: CdrSpec): Promise<void> {
  setClock(m, r, m.clockMs + 60_000);
  const { cdrId, body } = cdrBody(r, lineName, spec, m.clockMs);
  rateInModel(m, lineName, spec, m.clockMs, cdrId, body);
  await postCdrBatch(r, [body]);
  await drain(m, r);
}

/** What the engine shows, flattened like the model's expectation. */
async function observe(r: Real): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const name = (id: string) => r.names.get(id) ?? id;
  const bucketItems: Array<{ key: string; value: string }> = [];
  const labels = new Map<string, string>();
  for (const kind of ["postpaid", "prepaid"] as const) {
    const accountId = r.accounts[kind];
    const listed = await request(r, "GET", `${BALANCES}/bucket`, {
      query: { "partyAccount.id": accountId, limit: "1000" },
    });
    if (listed.status !== 200) throw new Error(`bucket list: ${listed.status} ${JSON.stringify(listed.body)}`);
    for (const bucket of listed.body as unknown as ApiBucket[]) {
      if (bucket.usageType === "monetary") {
        out.set(
          `balance ${name(bucket.product?.[0]?.id ?? "")}`,
          new D(String(bucket.remainingValue.amount)).toFixed(),
        );
        continue;
      }
      const owner = bucket.isShared ? "account" : name(bucket.product?.[0]?.id ?? "");
      // "<offering> <allowance>", and " rollover" for a rollover bucket.
      const [offering, allowance, kind] = bucket.name.split(" ");
      const startMs = Date.parse(bucket.validFor?.startDateTime ?? "");
      const label = bucketLabel(owner, offering ?? "", allowance ?? "", kind === "rollover", startMs);
      labels.set(bucket.id, label);
      bucketItems.push({
        key: `${label} ${bucket.usageType} to ${bucket.validFor?.endDateTime}`,
        value: `${bucket.status} granted=${bucket.initialValue?.amount} remaining=${bucket.remainingValue.amount}`,
      });
    }
    const accumulated = await request(r, "GET", `${BALANCES}/accumulatedBalance/${accountId}`);
    const total = (accumulated.body?.totalBalance as { amount: number } | undefined)?.amount;
    out.set(`accumulated ${kind}`, new D(String(total)).toFixed());
  }
  addAll(out, "bucket", bucketItems);

  const accounts = [r.accounts.postpaid, r.accounts.prepaid];
  const rows = await r.engine.sql<{
    cdr_id: string;
    product_id: string;
    spend_period: string;
    amount: string;
    allowance_units: string;
    charged_units: string;
    quantity: string;
    draws: Array<{ bucketId: string; units: number }> | string;
  }>(
    `select u.cdr_id, r.product_id, r.spend_period, r.amount::text as amount, r.allowance_units::text as allowance_units,
            r.charged_units::text as charged_units, r.quantity::text as quantity, r.draws
       from rated_usage r join usage_records u on u.id = r.usage_id
      where r.billing_account_id in ($1, $2)`,
    accounts,
  );
  for (const row of rows) {
    const draws = (typeof row.draws === "string" ? JSON.parse(row.draws) : row.draws) as Array<{
      bucketId: string;
      units: number;
    }>;
    out.set(
      `row ${row.cdr_id}`,
      rowText(
        name(row.product_id),
        row.spend_period,
        new D(row.amount).toFixed(),
        Number(row.allowance_units),
        Number(row.charged_units),
        Number(row.quantity),
        draws.map((draw) => `${labels.get(draw.bucketId) ?? `unknown bucket ${draw.bucketId}`}:${draw.units}`),
      ),
    );
  }
  const totals = await r.engine.sql<{
    product_id: string;
    spend_period: string;
    count: number;
    amount: string;
    allowance: string;
    charged: string;
    quantity: string;
  }>(
    `select product_id, spend_period, count(*)::int as count, sum(amount)::text as amount,
            sum(allowance_units)::text as allowance, sum(charged_units)::text as charged, sum(quantity)::text as quantity
       from rated_usage where billing_account_id in ($1, $2) group by product_id, spend_period`,
    accounts,
  );
  for (const total of totals) {
    out.set(
      `rated ${name(total.product_id)} ${total.spend_period}`,
      totalText(total.count, new D(total.amount).toFixed(), total.allowance, total.charged, total.quantity),
    );
  }
  const [operations] = await r.engine.sql<{ topup: number; adjustment: number }>(
    `select count(*) filter (where kind = 'topup')::int as topup, count(*) filter (where kind = 'adjustment')::int as adjustment
       from balance_operations where billing_account_id in ($1, $2)`,
    accounts,
  );
  out.set("operations", `topup=${operations?.topup} adjustment=${operations?.adjustment}`);
  const [suspense] = await r.engine.sql<{ total: number }>(
    `select count(*)::int as total from usage_suspense s join usage_records u on u.id = s.usage_id
      where u.billing_account_id in ($1, $2)`,
    accounts,
  );
  out.set("suspense", String(suspense?.total));
  for (const [lineName, line] of r.lines) {
    const calls = r.network.calls
      .filter((call) => call.line.productId === line.id && (call.operation === "bar" || call.operation === "unbar"))
      .map((call) => call.operation);
    out.set(`network ${lineName}`, calls.join(",") || "-");
  }
  return out;
}

interface ApiBucket {
  id: string;
  name: string;
  usageType: string;
  isShared: boolean;
  status: string;
  remainingValue: { amount: number };
  initialValue?: { amount: number };
  validFor?: { startDateTime: string; endDateTime: string };
  /** Absent on a shared bucket: it is the account's. */
  product?: Array<{ id: string }>;
}

/** The model and the engine agree on everything observable, or the run fails naming the differences. */
async function compare(m: Model, r: Real, after: string): Promise<void> {
  r.log.push(after);
  if (r.log.length > 2)
    count(
      after
        .split(" ")
        .slice(0, /^(adjust|restart|reconcile)/.test(after) ? 2 : 1)
        .join(" "),
    );
  if ((await queueDepth(r.engine)) !== 0) throw new Error(`after ${after}: the queue is not empty`);
  const want = expected(m);
  const got = await observe(r);
  const differences: string[] = [];
  for (const key of new Set([...want.keys(), ...got.keys()])) {
    const a = want.get(key);
    const b = got.get(key);
    if (a !== b) differences.push(`  ${key}\n    model:  ${a ?? "(none)"}\n    engine: ${b ?? "(none)"}`);
  }
  if (differences.length > 0) {
    throw new Error(
      [
        `the engine differs from the model after command ${r.log.length}: ${after}`,
        `semantics modelled: ${JSON.stringify(SEMANTICS)}`,
        "commands run:",
        ...r.log.map((command, index) => `  ${index + 1}. ${command}`),
        `differences (${differences.length}):`,
        ...differences.slice(0, 40),
        ...(differences.length > 40 ? [`  … and ${differences.length - 40} more`] : []),
      ].join("\n"),
    );
  }
}

// ------------------------------------------------------------------------------------------------------------
// Setup of one run: two accounts, four lines, activated on working days at 08:00.
// ------------------------------------------------------------------------------------------------------------

interface RunSetup {
  /** Days after Monday 2026-03-02 of the first activations (M, L1, S). */
  startDay: number;
  /** Days after that of L2's activation (possibly in the next bill period). */
  secondLineDelay: number;
}

let runs = 0;

function count(kind: string): void {
  coverage.commands += 1;
  coverage.kinds.set(kind, (coverage.kinds.get(kind) ?? 0) + 1);
}

function tally(m: Model, r: Real): void {
  coverage.runs += 1;
  coverage.longest = Math.max(coverage.longest, r.log.length);
  for (const event of m.events) {
    if (event.allowanceUnits > 0 && event.amount.isZero()) coverage.events.allowanceOnly += 1;
    else if (event.allowanceUnits > 0) coverage.events.partlyCovered += 1;
    else if (event.amount.isZero()) coverage.events.free += 1;
    else coverage.events.moneyOnly += 1;
  }
  for (const bucket of m.buckets) {
    if (bucket.rollover !== null) coverage.buckets.rollover += 1;
    if (bucket.owner === "account") coverage.buckets.shared += 1;
    if (bucket.used === bucket.granted) coverage.buckets.exhausted += 1;
  }
}

/** The operator fulfilling orders by hand (the engine is started with manual fulfilment, like the other tests). */
const FULFILMENT_ACTOR = { keyId: null, role: "system", requestId: null, billingAccountId: null };

/** Orders a plan with its add-ons on an account and fulfils the order at once: the line's id and number. */
async function activateLine(engine: Engine, accountId: string, plan: string, addons: readonly string[]) {
  const placed = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    body: {
      billingAccount: { id: accountId },
      productOrderItem: [
        { id: "1", action: "add", productOffering: { id: plan } },
        ...addons.map((addon, index) => ({
          id: String(index + 2),
          action: "add",
          productOffering: { id: addon },
          productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
        })),
      ],
    },
  });
  if (placed.statusCode !== 201 || placed.json().state === "rejected") throw new Error(`order: ${placed.body}`);
  await engine.app.services.orders.fulfil(FULFILMENT_ACTOR, placed.json().id);
  const order = (await engine.request("GET", placed.json().href)).json();
  const product = order.productOrderItem[0].product;
  const msisdn = product.productCharacteristic.find((c: { name: string }) => c.name === "msisdn")?.value as string;
  return { lineId: product.id as string, msisdn };
}

async function waitForGrant(engine: Engine, accountId: string, lineId: string): Promise<void> {
  // Activation grants a line's balance and buckets in the background; the clock must not move before it ran.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await engine.app.services.charging.store.read(accountId)).lines.has(lineId)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`line ${lineId} was never granted`);
}

async function startRun(
  engine: Engine,
  network: RecordingProvisioning,
  setup: RunSetup,
): Promise<{ model: Model; real: Real }> {
  runs += 1;
  const run = `${process.pid}-${randomBytes(3).toString("hex")}`;
  const first = workingDay(addDays({ year: 2026, month: 3, day: 2 }, setup.startDay));
  const second = workingDay(addDays(first, setup.secondLineDelay));
  const model: Model = {
    clockMs: wallToUtc(TARIFF_ZONE, first, 8),
    lines: [],
    buckets: [],
    ensured: new Set(),
    spend: new Map(),
    events: [],
    topUps: [],
    operations: { topup: 0, adjustment: 0 },
    nextSeq: 0,
    barred: new Set(),
    network: new Map(),
    creditLimitCrossed: new Set(),
    balanceExhausted: false,
    crossings: { creditLimit: false, balanceExhausted: false },
  };
  const real: Real = {
    engine,
    network,
    run,
    accounts: { postpaid: "", prepaid: "" },
    lines: new Map(),
    names: new Map(),
    worker: 1,
    cdrs: 0,
    keys: 0,
    log: [],
  };
  setClock(model, real, model.clockMs);
  // Four numbers and SIMs of this run's own.
  const base = 20_000_000 + runs * 4;
  await engine.request("POST", "/api/v1/inventory/number-ranges", {
    body: { from: `+49152${base}`, to: `+49152${base + 3}` },
  });
  await engine.request("POST", "/api/v1/inventory/sim-imports", {
    body: [0, 1, 2, 3].map((index) => simRecord(100_000 + runs * 4 + index)),
  });
  const customer = await createCustomer(engine, {
    contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+4915799999999" } }],
  });
  for (const kind of ["postpaid", "prepaid"] as const) {
    const body = billingAccountBody(
      customer.id,
      kind === "postpaid" ? {} : { accountType: "prepaid", creditLimit: undefined },
    );
    const created = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", { body });
    if (created.statusCode !== 201) throw new Error(`billing account: ${created.body}`);
    real.accounts[kind] = created.json().id as string;
    real.names.set(real.accounts[kind], `account ${kind}`);
  }
  for (const spec of LINES) {
    if (spec.name === "L2") setClock(model, real, wallToUtc(TARIFF_ZONE, second, 8));
    const activated = await activateLine(engine, real.accounts[spec.account], spec.plan, spec.addons);
    await waitForGrant(engine, real.accounts[spec.account], activated.lineId);
    real.lines.set(spec.name, { id: activated.lineId, msisdn: activated.msisdn });
    real.names.set(activated.lineId, spec.name);
    const line: ModelLine = {
      name: spec.name,
      offerings: [spec.plan, ...spec.addons],
      account: spec.account,
      activatedMs: model.clockMs,
      balance: spec.account === "prepaid" ? new D(0) : null,
    };
    model.lines.push(line);
    ensureBuckets(model, line, model.clockMs);
  }
  real.log.push(
    `setup: M, L1 and S activated ${isoDay(first)} 08:00, L2 ${isoDay(second)} 08:00 (Europe/Berlin); semantics ${JSON.stringify(SEMANTICS)}`,
  );
  // Every line meets the period the commands start in (L2 may have been activated in the next bill period).
  for (const spec of LINES) await sendCdr(model, real, spec.name, { kind: "sms-national", quantity: 1 });
  await compare(model, real, "one SMS on every line");
  return { model, real };
}

// ------------------------------------------------------------------------------------------------------------
// Commands.
// ------------------------------------------------------------------------------------------------------------

type Cmd = fc.AsyncCommand<Model, Real>;
const specText = (spec: CdrSpec) => `${spec.kind} ${spec.quantity}`;

class CdrCommand implements Cmd {
  constructor(
    readonly line: number,
    readonly spec: CdrSpec,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const name = (LINES[this.line] ?? LINES[0]).name;
    await sendCdr(m, r, name, this.spec);
    await compare(m, r, this.toString());
  }
  toString = () => `cdr ${(LINES[this.line] ?? LINES[0]).name} ${specText(this.spec)}`;
}

/**
 * The most one record carries here: a four-hour call (so it stays in the peak band), 100 messages and 1 TiB (the
 * API's own limits per record and per volume field).
 */
const QUANTITY_CAP: Record<Service, number> = { voice: 14_400, sms: 100, data: 1_099_511_627_776 };

/** Records one edge command may split its quantity into (each at most QUANTITY_CAP, one minute apart). */
const EDGE_RECORDS_MAX = 8;

/**
 * Usage sized to what the line has left: the allowance it may draw for that service and destination (its own,
 * rollover and shared buckets) plus an offset around the edges that matter — used up exactly, one unit or one
 * increment over or under, the first-minute edge of a national call. What one record cannot carry is split into
 * up to EDGE_RECORDS_MAX records sent in one request (many events), so big allowances run out too.
 */
class EdgeCdrCommand implements Cmd {
  quantities: number[] = [];
  constructor(
    readonly line: number,
    readonly kind: CdrKind,
    readonly offset: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const name = (LINES[this.line] ?? LINES[0]).name;
    const line = lineOf(m, name);
    const service = serviceOf(this.kind);
    ensureBuckets(m, line, m.clockMs + 60_000);
    const available = covering(m, line, service, destinationOf(this.kind), m.clockMs + 60_000).reduce(
      (sum, bucket) => sum + Math.max(0, bucket.granted - bucket.used),
      0,
    );
    const cap = QUANTITY_CAP[service];
    let total = Math.min(cap * EDGE_RECORDS_MAX, Math.max(service === "voice" ? 0 : 1, available + this.offset));
    this.quantities = [];
    do {
      this.quantities.push(Math.min(cap, total));
      total -= Math.min(cap, total);
    } while (total > 0);
    const bodies: Array<Record<string, unknown>> = [];
    for (const quantity of this.quantities) {
      setClock(m, r, m.clockMs + 60_000);
      const spec = { kind: this.kind, quantity };
      const { cdrId, body } = cdrBody(r, name, spec, m.clockMs);
      rateInModel(m, name, spec, m.clockMs, cdrId, body);
      bodies.push(body);
    }
    await postCdrBatch(r, bodies);
    await drain(m, r);
    await compare(m, r, this.toString());
  }
  toString = () =>
    `edge cdr ${(LINES[this.line] ?? LINES[0]).name} ${this.kind} left${this.offset < 0 ? "" : "+"}${this.offset}${
      this.quantities.length === 0 ? "" : ` = [${this.quantities.join(", ")}]`
    }`;
}

/** Several CDRs in one request, rated in one pass: the allowance planned for one is not offered to the next. */
class CdrBatchCommand implements Cmd {
  constructor(readonly items: Array<[number, CdrSpec]>) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const bodies: Array<Record<string, unknown>> = [];
    for (const [index, spec] of this.items) {
      const name = (LINES[index] ?? LINES[0]).name;
      setClock(m, r, m.clockMs + 60_000);
      const { cdrId, body } = cdrBody(r, name, spec, m.clockMs);
      rateInModel(m, name, spec, m.clockMs, cdrId, body);
      bodies.push(body);
    }
    await postCdrBatch(r, bodies);
    await drain(m, r);
    await compare(m, r, this.toString());
  }
  toString = () =>
    `batch [${this.items.map(([index, spec]) => `${(LINES[index] ?? LINES[0]).name} ${specText(spec)}`).join("; ")}]`;
}

/**
 * A CDR that arrives late (offline charging): dated some working days back, or that many days before the current
 * bill period began, at 10:00–12:00, after the line's activation. It counts in its own periods and — once its
 * period has rolled over — may still use the units carried out of it.
 */
class LateCdrCommand implements Cmd {
  constructor(
    readonly line: number,
    readonly beforeThisPeriod: boolean,
    readonly daysBack: number,
    readonly minute: number,
    readonly spec: CdrSpec,
  ) {}
  at(m: Readonly<Model>): number | undefined {
    const line = lineOf(m as Model, (LINES[this.line] ?? LINES[0]).name);
    const from = wallClock(TARIFF_ZONE, this.beforeThisPeriod ? billPeriodOf(m.clockMs).startMs : m.clockMs);
    const day = workingDayBefore(addDays(from, -this.daysBack - (this.beforeThisPeriod ? 1 : 0)));
    const atMs = wallToUtc(TARIFF_ZONE, day, 10) + this.minute * 60_000;
    return atMs > line.activatedMs && atMs < m.clockMs ? atMs : undefined;
  }
  check = (m: Readonly<Model>) => this.at(m) !== undefined;
  run = (m: Model, r: Real) => postDatedCdr(m, r, this.line, this.spec, this.at(m) as number, this.toString());
  toString = () =>
    `late cdr ${(LINES[this.line] ?? LINES[0]).name} ${specText(this.spec)} ${this.daysBack} days before ${
      this.beforeThisPeriod ? "this bill period" : "today"
    }, 10:00 + ${this.minute} min`;
}

/** One CDR of a line dated at `atMs`, rated in the model and posted to the engine, then compared. */
async function postDatedCdr(m: Model, r: Real, line: number, spec: CdrSpec, atMs: number, description: string) {
  const name = (LINES[line] ?? LINES[0]).name;
  const { cdrId, body } = cdrBody(r, name, spec, atMs);
  rateInModel(m, name, spec, atMs, cdrId, body);
  await postCdrBatch(r, [body]);
  await drain(m, r);
  await compare(m, r, `${description} (at ${new Date(atMs).toISOString()})`);
}

/**
 * Reconciliation (DESIGN.md §5, conservation): the ledger's view of both accounts equals the store's; a rebuild
 * from the ledger changes nothing the model sees, and the worker, fenced by the rebuild's epoch, takes a new
 * token as it would with a new lease.
 */
class ReconcileCommand implements Cmd {
  constructor(readonly rebuild: boolean) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const { reconcile, rating, store } = r.engine.app.services.charging;
    const accounts = [r.accounts.postpaid, r.accounts.prepaid];
    const report = await reconcile.run(this.rebuild ? "rebuild" : "check", accounts);
    if (report.mismatched.length > 0) {
      throw new Error(`after ${r.log.at(-1)}: the ledger and the store differ: ${JSON.stringify(report.mismatched)}`);
    }
    if (this.rebuild) {
      for (const accountId of accounts) rating.fence = Math.max(rating.fence, (await store.read(accountId)).fence + 1);
    }
    await compare(m, r, this.toString());
  }
  toString = () => (this.rebuild ? "reconcile rebuild (both accounts, from the ledger)" : "reconcile check");
}

/**
 * SMS and data are priced in any band, so they can be dated at the edges of periods: a second before, at, or a
 * second after the start of the current bill period or of the prepaid line's current 30-day period. The event
 * counts in the period its instant falls in (spend period and buckets alike).
 */
class BoundaryCdrCommand implements Cmd {
  constructor(
    readonly line: number,
    readonly edge: "bill" | "30days",
    readonly deltaSeconds: number,
    readonly spec: CdrSpec,
  ) {}
  at(m: Readonly<Model>): number | undefined {
    const line = lineOf(m as Model, (LINES[this.line] ?? LINES[0]).name);
    const prepaid = lineOf(m as Model, "S");
    const start =
      this.edge === "bill" ? billPeriodOf(m.clockMs).startMs : rollingPeriodOf(m.clockMs, prepaid.activatedMs).startMs;
    const atMs = start + this.deltaSeconds * 1000;
    return atMs > line.activatedMs && atMs < m.clockMs ? atMs : undefined;
  }
  check = (m: Readonly<Model>) => this.at(m) !== undefined;
  run = (m: Model, r: Real) => postDatedCdr(m, r, this.line, this.spec, this.at(m) as number, this.toString());
  toString = () =>
    `boundary cdr ${(LINES[this.line] ?? LINES[0]).name} ${specText(this.spec)} at the ${
      this.edge === "bill" ? "bill period's" : "30-day period's"
    } start ${this.deltaSeconds < 0 ? "" : "+"}${this.deltaSeconds} s`;
}

/** An earlier CDR sent again: the same body is a duplicate, a changed one a conflict; neither charges anything. */
class ResendCommand implements Cmd {
  constructor(
    readonly pick: number,
    readonly conflict: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.events.length > 0;
  async run(m: Model, r: Real) {
    const event = m.events[this.pick % m.events.length] as ModelEvent;
    const body = { ...event.body };
    if (this.conflict) {
      const field =
        body.recordType === "voice" ? "duration" : body.recordType === "sms" ? "messages" : "dataVolumeDownlink";
      body[field] = Number(body[field]) + (body.recordType === "sms" && Number(body[field]) === 100 ? -1 : 1);
    }
    const answer = await request(r, "POST", "/api/v1/cdrs", { key: r.engine.keys.network, body: [body] });
    const record = (answer.body?.records as Array<{ outcome: string; field?: string }> | undefined)?.[0];
    // A record older than the ingestion window is refused for its age before it is looked up (a retry that late
    // changes nothing either way); within the window, the same body is a duplicate and a changed one a conflict.
    const tooOld = Date.parse(String(body.recordOpeningTime)) < m.clockMs - CDR_MAX_AGE_DAYS * 86_400_000;
    const wanted = tooOld ? "rejected" : this.conflict ? "conflict" : "duplicate";
    if (record?.outcome !== wanted || (tooOld && record.field !== "recordOpeningTime"))
      throw new Error(`resent ${event.cdrId}: ${wanted} expected, got ${JSON.stringify(answer.body)}`);
    await drain(m, r);
    await compare(m, r, `${this.toString()} (${event.cdrId})`);
  }
  toString = () => `resend #${this.pick} ${this.conflict ? "changed (conflict)" : "unchanged (duplicate)"}`;
}

type KeyMode = "new" | "none" | "repeat" | "reuse-other-amount";
class TopUpCommand implements Cmd {
  constructor(
    readonly cents: number,
    readonly mode: KeyMode,
  ) {}
  check = (m: Readonly<Model>) => (this.mode === "new" || this.mode === "none" ? true : m.topUps.length > 0);
  async run(m: Model, r: Real) {
    const line = lineOf(m, "S");
    let key: string | undefined;
    let amount = new D(this.cents).div(100);
    let status = 201;
    if (this.mode === "new") {
      r.keys += 1;
      key = `topup-${r.run}-${r.keys}`;
    } else if (this.mode !== "none") {
      const earlier = m.topUps[this.cents % m.topUps.length] as { key: string; amount: D };
      key = earlier.key;
      if (this.mode === "repeat") {
        amount = earlier.amount;
        status = 200;
      } else {
        if (amount.eq(earlier.amount)) amount = amount.plus("0.01");
        status = 409;
      }
    }
    if (status === 201) {
      line.balance = (line.balance ?? new D(0)).plus(amount);
      m.operations.topup += 1;
      if (key !== undefined) m.topUps.push({ key, amount });
    }
    // A retry answers the first top-up and may still lift a barring; a refused one changes nothing.
    const changed = status === 409 ? [] : prepaidMoneyIn(m, status === 201);
    const answer = await request(r, "POST", `${BALANCES}/topupBalance`, {
      key: r.engine.keys.crm,
      ...(key === undefined ? {} : { headers: { "idempotency-key": key } }),
      body: { amount: { amount: amount.toNumber(), units: "EUR" }, product: { id: r.lines.get("S")?.id } },
    });
    if (answer.status !== status)
      throw new Error(`top-up: ${status} expected, got ${answer.status} ${JSON.stringify(answer.body)}`);
    await lineChanges(m, r, changed);
    await drain(m, r);
    await compare(m, r, `${this.toString()} (${amount.toFixed()} EUR)`);
  }
  toString = () =>
    `top-up S ${this.mode === "new" || this.mode === "none" ? `${this.cents / 100} EUR` : `earlier #${this.cents}`} key=${this.mode}`;
}

/** Money: a prepaid credit or debit on S, or a credit (positive) or debit of a postpaid account's spend to date. */
class AdjustMoneyCommand implements Cmd {
  constructor(
    readonly line: number,
    readonly cents: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const name = (LINES[this.line] ?? LINES[0]).name;
    const line = lineOf(m, name);
    const amount = new D(this.cents).div(100);
    let status = 201;
    if (line.balance !== null) {
      const after = line.balance.plus(amount);
      // A debit may not take the balance below zero.
      if (amount.isNegative() && after.isNegative()) status = 422;
      else line.balance = after;
    } else {
      const period = billPeriodOf(m.clockMs).key;
      const after = (m.spend.get(period) ?? new D(0)).minus(amount);
      // A credit may not take the spend to date below zero.
      if (after.isNegative()) status = 422;
      else m.spend.set(period, after);
    }
    if (status === 201) m.operations.adjustment += 1;
    const changed = status !== 201 ? [] : line.balance !== null ? prepaidMoneyIn(m, true) : postpaidAdjusted(m);
    r.keys += 1;
    const answer = await request(r, "POST", `${BALANCES}/adjustBalance`, {
      key: r.engine.keys.finance,
      headers: { "idempotency-key": `adjust-${r.run}-${r.keys}` },
      body: {
        amount: { amount: amount.toNumber(), units: "EUR" },
        product: { id: r.lines.get(name)?.id },
        reason: "model",
      },
    });
    if (answer.status !== status)
      throw new Error(`adjustment: ${status} expected, got ${answer.status} ${JSON.stringify(answer.body)}`);
    await lineChanges(m, r, changed);
    await drain(m, r);
    await compare(m, r, this.toString());
  }
  toString = () => `adjust money ${(LINES[this.line] ?? LINES[0]).name} ${this.cents / 100} EUR`;
}

type BucketMode = { kind: "target"; remaining: number } | { kind: "add"; units: number } | { kind: "below-used" };
const UNIT_OF: Record<Service, string> = { voice: "second", sms: "message", data: "byte" };

/**
 * Units on one of the current buckets a line draws from (its own, a rollover, or the account's shared one): left
 * at a target (often a few increments, so the next events run the allowance out), more, or below what is used
 * (refused, changing nothing).
 */
class AdjustBucketCommand implements Cmd {
  constructor(
    readonly line: number,
    readonly service: Service,
    readonly which: number,
    readonly mode: BucketMode,
  ) {}
  target(m: Readonly<Model>): ModelBucket | undefined {
    const line = lineOf(m as Model, (LINES[this.line] ?? LINES[0]).name);
    const candidates = m.buckets.filter(
      (bucket) =>
        bucket.account === line.account &&
        (bucket.owner === line.name || bucket.owner === "account") &&
        bucket.service === this.service &&
        bucket.startMs <= m.clockMs &&
        m.clockMs < bucket.endMs,
    );
    return candidates[this.which % Math.max(1, candidates.length)];
  }
  check = (m: Readonly<Model>) => this.target(m) !== undefined;
  async run(m: Model, r: Real) {
    const bucket = this.target(m) as ModelBucket;
    const delta =
      this.mode.kind === "add"
        ? this.mode.units
        : this.mode.kind === "below-used"
          ? bucket.used - bucket.granted - 1
          : bucket.used + this.mode.remaining - bucket.granted || 1;
    const status = bucket.granted + delta < bucket.used ? 422 : 201;
    if (status === 201) {
      bucket.granted += delta;
      m.operations.adjustment += 1;
    }
    const label = labelOf(bucket);
    const listed = await request(r, "GET", `${BALANCES}/bucket`, {
      query: { "partyAccount.id": r.accounts[bucket.account], limit: "1000" },
    });
    const found = (listed.body as unknown as ApiBucket[]).find(
      (candidate) =>
        candidate.usageType === this.service &&
        (bucket.owner === "account"
          ? candidate.isShared
          : r.names.get(candidate.product?.[0]?.id ?? "") === bucket.owner) &&
        candidate.name === `${bucket.offering} ${bucket.allowance}${bucket.rollover === null ? "" : " rollover"}` &&
        Date.parse(candidate.validFor?.startDateTime ?? "") === bucket.startMs,
    );
    if (found === undefined) throw new Error(`the engine lists no bucket ${label}`);
    r.keys += 1;
    const answer = await request(r, "POST", `${BALANCES}/adjustBalance`, {
      key: r.engine.keys.finance,
      headers: { "idempotency-key": `adjust-${r.run}-${r.keys}` },
      body: { amount: { amount: delta, units: UNIT_OF[this.service] }, bucket: { id: found.id }, reason: "model" },
    });
    if (answer.status !== status)
      throw new Error(`bucket adjustment: ${status} expected, got ${answer.status} ${JSON.stringify(answer.body)}`);
    // An applied adjustment on a prepaid line also lifts its barring if its balance is not negative.
    await lineChanges(m, r, status === 201 && bucket.account === "prepaid" ? prepaidMoneyIn(m, false) : []);
    await drain(m, r);
    await compare(m, r, `${this.toString()} (${delta > 0 ? "+" : ""}${delta} on ${label})`);
  }
  toString = () =>
    `adjust bucket ${(LINES[this.line] ?? LINES[0]).name} ${this.service} #${this.which} ${
      this.mode.kind === "target"
        ? `to ${this.mode.remaining} left`
        : this.mode.kind === "add"
          ? `+${this.mode.units}`
          : "below used"
    }`;
}

/**
 * Time moves on: a few working days later, or into the next bill period (08:00 on a working day). Then, often,
 * each line has one event, sent and rated one at a time, which makes that line's buckets of the new periods
 * (with their rollover); otherwise a line meets its new period at its next event, a late one, or the renewal job.
 */
class AdvanceCommand implements Cmd {
  constructor(
    readonly toNextPeriod: boolean,
    readonly days: number,
    readonly touches: CdrSpec[] | null,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const today = wallClock(TARIFF_ZONE, m.clockMs);
    const target = this.toNextPeriod ? nextPeriodDay(today, this.days) : addDays(today, this.days);
    setClock(m, r, workingMorning(target));
    for (const [index, spec] of LINES.entries()) {
      const touch = this.touches?.[index];
      if (touch !== undefined) await sendCdr(m, r, spec.name, touch);
    }
    await compare(m, r, `${this.toString()} → ${new Date(m.clockMs).toISOString()}`);
  }
  toString = () =>
    `advance ${this.toNextPeriod ? `to the next bill period, day ${this.days + 1}` : `${this.days} days`}${
      this.touches === null
        ? ""
        : `, then ${this.touches.map((spec, index) => `${(LINES[index] ?? LINES[0]).name} ${specText(spec)}`).join("; ")}`
    }`;
}

/** Days after its period's end that a bucket without a successor is still renewed (the engine's renewal job). */
const RENEWAL_WINDOW_MS = 35 * DAY_MS;

/**
 * The rating loop's renewal job (run every few minutes in production): a line whose bucket's period ended in the
 * last 35 days with no bucket of a later period yet — or every line of an account whose shared bucket did — gets
 * the buckets of the periods holding now, with the rollover of the ended ones, before its first event there.
 */
class RenewCommand implements Cmd {
  check = () => true;
  async run(m: Model, r: Real) {
    const due = new Set<string>();
    for (const bucket of m.buckets) {
      if (bucket.rollover !== null || bucket.endMs > m.clockMs || bucket.endMs <= m.clockMs - RENEWAL_WINDOW_MS)
        continue;
      const succeeded = m.buckets.some(
        (next) =>
          next.rollover === null &&
          next.account === bucket.account &&
          next.owner === bucket.owner &&
          next.offering === bucket.offering &&
          next.allowance === bucket.allowance &&
          next.startMs >= bucket.endMs,
      );
      if (succeeded) continue;
      for (const line of m.lines) {
        if (bucket.owner === line.name || (bucket.owner === "account" && line.account === bucket.account)) {
          due.add(line.name);
        }
      }
    }
    for (const name of due) ensureBuckets(m, lineOf(m, name), m.clockMs);
    await r.engine.app.services.charging.rating.renew();
    await drain(m, r);
    await compare(m, r, `${this.toString()} (${[...due].join(", ") || "nothing due"})`);
  }
  toString = () => "renewal job";
}

/** The `offset`-th day of the month after `today` (offsets stay below 28, so never the month after that). */
function nextPeriodDay(today: LocalDay, offset: number): LocalDay {
  const first =
    today.month === 12
      ? { year: today.year + 1, month: 1, day: 1 }
      : { year: today.year, month: today.month + 1, day: 1 };
  return addDays(first, offset);
}

type RestartKind = "after-read" | "after-commit" | "before-commit";

/**
 * A rating worker dies and another takes over its pending entries (XAUTOCLAIM with the Redis queue): after it
 * read a batch and did nothing; after it rated and committed but did not acknowledge (the new worker rates them
 * again, and the same entries are also put on the queue a second time, as a resent XADD would); or at its first
 * COMMIT, typically after the charging step applied and before the ledger rows were committed.
 */
class RestartCommand implements Cmd {
  constructor(
    readonly kind: RestartKind,
    readonly items: Array<[number, CdrSpec]>,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const bodies: Array<Record<string, unknown>> = [];
    for (const [index, spec] of this.items) {
      const name = (LINES[index] ?? LINES[0]).name;
      setClock(m, r, m.clockMs + 60_000);
      const { cdrId, body } = cdrBody(r, name, spec, m.clockMs);
      rateInModel(m, name, spec, m.clockMs, cdrId, body);
      bodies.push(body);
    }
    await postCdrBatch(r, bodies);
    const { queue, rating } = r.engine.app.services.charging;
    const shards = new Set([queue.shardOf(r.accounts.postpaid), queue.shardOf(r.accounts.prepaid)]);
    const entries = [];
    for (const shard of shards) entries.push(...(await queue.read(shard, consumer(r), 100, 0)));
    if (entries.length !== bodies.length)
      throw new Error(`the dying worker read ${entries.length} of ${bodies.length}`);
    if (this.kind === "after-commit") {
      await rating.rate(entries);
    } else if (this.kind === "before-commit") {
      const database = r.engine.app.database;
      const transaction = database.transaction;
      const crash = new Error("the worker died before COMMIT");
      // The worker dies at its first COMMIT in this pass: that transaction's statements run and roll back, and
      // nothing it would commit afterwards reaches the database. Usually that is the ledger insert after the
      // charging step; when the batch opens a new period, it is the ledger row of a share or rollover the store
      // has already applied (the worker's own retry of the account then fails the same way and leaves it).
      database.transaction = (async (work: Parameters<typeof transaction>[0]) =>
        transaction.call(database, async (tx) => {
          await work(tx);
          throw crash;
        })) as typeof transaction;
      try {
        await rating.rate(entries);
      } catch (error) {
        if (error !== crash) throw error;
      } finally {
        database.transaction = transaction;
      }
    }
    r.worker += 1;
    await drain(m, r);
    if (this.kind === "after-commit") {
      await queue.enqueue(entries.map((entry) => entry.usage));
      await drain(m, r);
    }
    await compare(m, r, this.toString());
  }
  toString = () =>
    `restart ${this.kind} with [${this.items.map(([index, spec]) => `${(LINES[index] ?? LINES[0]).name} ${specText(spec)}`).join("; ")}]`;
}

// ------------------------------------------------------------------------------------------------------------
// Arbitraries.
// ------------------------------------------------------------------------------------------------------------

const lineIndex = fc.integer({ min: 0, max: LINES.length - 1 });
/** Quantities sized to the allowances: short calls near the first-minute edge, long ones, big and small volumes. */
const cdrSpec: fc.Arbitrary<CdrSpec> = fc.oneof(
  fc.record({
    kind: fc.constantFrom<CdrKind>("voice-national", "voice-mobile", "voice-eu"),
    quantity: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 130 }), weight: 3 },
      { arbitrary: fc.integer({ min: 1, max: 3600 }), weight: 2 },
      { arbitrary: fc.integer({ min: 3600, max: 14_400 }), weight: 1 },
    ),
  }),
  fc.record({ kind: fc.constantFrom<CdrKind>("sms-national", "sms-eu"), quantity: fc.integer({ min: 1, max: 100 }) }),
  fc.record({
    kind: fc.constant<CdrKind>("data"),
    quantity: fc.oneof(
      fc.integer({ min: 1, max: 5_000_000 }),
      fc.integer({ min: 1, max: 64 }).map((kib) => kib * 1024),
      fc.integer({ min: 1, max: 4 * 1_073_741_824 }),
    ),
  }),
);
const items = fc.array(fc.tuple(lineIndex, cdrSpec), { minLength: 1, maxLength: 4 });
const bucketMode: fc.Arbitrary<BucketMode> = fc.oneof(
  {
    arbitrary: fc
      .constantFrom(0, 1, 30, 59, 60, 61, 90, 119, 1023, 1024, 1025, 4096, 1_048_576)
      .map((remaining) => ({ kind: "target" as const, remaining })),
    weight: 4,
  },
  { arbitrary: fc.integer({ min: 1, max: 5000 }).map((units) => ({ kind: "add" as const, units })), weight: 1 },
  { arbitrary: fc.constant({ kind: "below-used" as const }), weight: 1 },
);

const adjustBucket = fc
  .tuple(lineIndex, fc.constantFrom<Service>("voice", "sms", "data"), fc.nat({ max: 3 }), bucketMode)
  .map(([line, service, which, mode]): Cmd => new AdjustBucketCommand(line, service, which, mode));
const edgeCdrCommand = fc
  .oneof(
    fc.tuple(
      fc.constantFrom<CdrKind>("voice-national", "voice-mobile", "voice-eu"),
      fc.constantFrom(-61, -60, -59, -31, -30, -1, 0, 1, 29, 30, 31, 59, 60, 61, 120),
    ),
    fc.tuple(fc.constantFrom<CdrKind>("sms-national", "sms-eu"), fc.integer({ min: -2, max: 3 })),
    fc.tuple(fc.constant<CdrKind>("data"), fc.constantFrom(-1025, -1024, -1023, -1, 0, 1, 1023, 1024, 1025, 1_048_576)),
  )
  .chain(([kind, offset]) => lineIndex.map((line): Cmd => new EdgeCdrCommand(line, kind, offset)));
const cdrCommand = fc.tuple(lineIndex, cdrSpec).map(([line, spec]): Cmd => new CdrCommand(line, spec));
const commands = fc.commands<Model, Real, false>(
  [
    cdrCommand,
    cdrCommand,
    edgeCdrCommand,
    edgeCdrCommand,
    items.map((list): Cmd => new CdrBatchCommand(list)),
    fc.tuple(fc.nat(), fc.boolean()).map(([pick, conflict]): Cmd => new ResendCommand(pick, conflict)),
    fc
      .tuple(lineIndex, fc.boolean(), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 120 }), cdrSpec)
      .map(([line, before, daysBack, minute, spec]): Cmd => new LateCdrCommand(line, before, daysBack, minute, spec)),
    fc.boolean().map((rebuild): Cmd => new ReconcileCommand(rebuild)),
    fc
      .tuple(
        lineIndex,
        fc.constantFrom<"bill" | "30days">("bill", "30days"),
        fc.constantFrom(-1, 0, 1),
        cdrSpec.filter((spec) => !spec.kind.startsWith("voice")),
      )
      .map(([line, edge, delta, spec]): Cmd => new BoundaryCdrCommand(line, edge, delta, spec)),
    fc
      .tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom<KeyMode>("new", "none", "repeat", "reuse-other-amount"))
      .map(([cents, mode]): Cmd => new TopUpCommand(cents, mode)),
    fc
      .tuple(
        lineIndex,
        fc.integer({ min: -3000, max: 3000 }).filter((cents) => cents !== 0),
      )
      .map(([line, cents]): Cmd => new AdjustMoneyCommand(line, cents)),
    adjustBucket,
    adjustBucket,
    fc
      .tuple(
        fc.boolean(),
        fc.integer({ min: 1, max: 7 }),
        fc.option(fc.array(cdrSpec, { minLength: 4, maxLength: 4 }), { freq: 3 }),
      )
      .map(([next, days, touches]): Cmd => new AdvanceCommand(next, next ? days * 3 - 3 : days, touches)),
    fc.constant(null).map((): Cmd => new RenewCommand()),
    fc
      .tuple(fc.constantFrom<RestartKind>("after-read", "after-commit", "before-commit"), items)
      .map(([kind, list]): Cmd => new RestartCommand(kind, list)),
  ],
  // Runs are few and expensive to set up, so each is long: up to MAX_COMMANDS, not fast-check's small default.
  { maxCommands: MAX_COMMANDS, size: "max" },
);
const runSetup: fc.Arbitrary<RunSetup> = fc.record({
  startDay: fc.integer({ min: 0, max: 55 }),
  secondLineDelay: fc.integer({ min: 0, max: 10 }),
});

// ------------------------------------------------------------------------------------------------------------
// Tests.
// ------------------------------------------------------------------------------------------------------------

t.test("the catalog still says what the model hard-codes", async (t) => {
  const tariff = JSON.parse(readFileSync("catalog/tariffs/tariff-de-eur.json", "utf8")) as {
    timeZone: string;
    holidays: string[];
    timeBands: Array<{ id: string; days?: string[]; from: string; to: string }>;
    rates: Array<Record<string, unknown> & { id: string }>;
  };
  const rate = (id: string) => tariff.rates.find((candidate) => candidate.id === id);
  t.equal(tariff.timeZone, TARIFF_ZONE);
  t.same(new Set(tariff.holidays), HOLIDAYS);
  t.match(
    tariff.timeBands.find((band) => band.id === "peak"),
    { days: ["mon", "tue", "wed", "thu", "fri"], from: "07:00", to: "19:00" },
  );
  for (const [id, destination] of [
    ["national-peak", "national"],
    ["mobile-peak", "national-mobile"],
  ] as const) {
    t.match(rate(id), {
      destination,
      bands: ["peak"],
      connectionFee: VOICE_PEAK[destination].connectionFee,
      steps: [
        { from: 0, price: VOICE_PEAK[destination].pricePerMinute, per: 60, increment: 60 },
        { from: 60, price: VOICE_PEAK[destination].pricePerMinute, per: 60, increment: 1 },
      ],
      rounding: { mode: "halfUp", decimals: 2 },
    });
  }
  t.match(rate("international-eu"), {
    minimumCharge: VOICE_EU.minimumCharge,
    steps: [{ from: 0, price: VOICE_EU.pricePerMinute, per: 60, increment: VOICE_EU.incrementSeconds }],
    rounding: { mode: "halfUp", decimals: 2 },
  });
  t.notOk("connectionFee" in (rate("international-eu") ?? {}));
  t.match(rate("sms-national"), { steps: [{ from: 0, price: SMS_PRICE["national-mobile"], per: 1, increment: 1 }] });
  t.match(rate("sms-international"), { steps: [{ from: 0, price: SMS_PRICE.other, per: 1, increment: 1 }] });
  t.match(rate("data-home"), {
    steps: [{ from: 0, price: DATA_HOME.price, per: DATA_HOME.per, increment: DATA_HOME.increment }],
    rounding: { mode: "up", decimals: 2 },
  });
  const offerings = ["plans", "addons"].flatMap(
    (file) =>
      JSON.parse(readFileSync(`catalog/offerings/${file}.json`, "utf8")) as Array<{
        id: string;
        allowances?: unknown[];
      }>,
  );
  for (const [id, allowances] of Object.entries(OFFERINGS)) {
    t.same(offerings.find((offering) => offering.id === id)?.allowances, allowances, `${id} allowances`);
  }
});

for (const driver of drivers) {
  t.test(`[${driver}] rating, balances and buckets follow the reference model after every command`, async (t) => {
    const network = new RecordingProvisioning();
    const engine = await startEngine(t, { driver, provisioning: network });
    // Publishes the catalog (and makes an account this test does not use).
    await orderReadyAccount(engine);
    await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
    const started = Date.now();
    coverage = newCoverage();
    await fc.assert(
      fc.asyncProperty(runSetup, commands, async (setup, cmds) => {
        let started: { model: Model; real: Real } | undefined;
        await fc.asyncModelRun(async () => {
          started = await startRun(engine, network, setup);
          return started;
        }, cmds);
        if (started !== undefined) tally(started.model, started.real);
      }),
      {
        numRuns: NUM_RUNS,
        // Shrinking replays whole runs against the engine; opt in with BSS_MODEL_SHRINK=1 (the failure already
        // lists every command and every difference).
        endOnFailure: process.env.BSS_MODEL_SHRINK !== "1",
        interruptAfterTimeLimit: TIME_BUDGET_MS,
        markInterruptAsFailure: false,
        // A random seed each time; a failure prints its seed and path, which these replay.
        ...(process.env.BSS_MODEL_SEED ? { seed: Number(process.env.BSS_MODEL_SEED) } : {}),
        ...(process.env.BSS_MODEL_PATH ? { path: process.env.BSS_MODEL_PATH } : {}),
      },
    );
    t.comment(
      `${coverage.runs} runs, ${coverage.commands} commands (longest run ${coverage.longest}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    t.comment(`commands: ${JSON.stringify(Object.fromEntries(coverage.kinds))}`);
    t.comment(`events: ${JSON.stringify(coverage.events)}; buckets: ${JSON.stringify(coverage.buckets)}`);
    t.ok(coverage.runs >= 1, "the engine matched the model after every command");
  });
}
