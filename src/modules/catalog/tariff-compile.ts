import { Ajv, type ErrorObject } from "ajv";
import { canonicalTimeZone, isCalendarDate } from "../../shared/calendar.js";
import { isCurrencyCode } from "../../shared/currency.js";
import { Money } from "../../shared/money.js";
import {
  type Direction,
  type RateDefinition,
  type RoundingModeName,
  type Service,
  type TariffDefinition,
  TariffSchema,
  WEEKDAYS,
} from "./tariff.schemas.js";

/**
 * Turns a tariff definition into the structure the pricer reads, after checking everything a schema cannot:
 * references, band coverage and overlaps, step layout, decimals, ambiguous rates. Every problem is reported
 * with its path; a tariff with any problem does not compile.
 */

export interface TariffProblem {
  path: string;
  message: string;
}

export class TariffError extends Error {
  override name = "TariffError";
  constructor(readonly problems: readonly TariffProblem[]) {
    super(problems.map((problem) => `${problem.path}: ${problem.message}`).join("; "));
  }
}

export interface CompiledStep {
  from: number;
  /** Exclusive end of the step, Infinity for the last. */
  to: number;
  price: Money;
  per: number;
  increment: number;
}

export interface CompiledRate {
  id: string;
  service: Service;
  direction: Direction;
  roaming: string;
  destination: string | null;
  bands: ReadonlySet<string> | null;
  connectionFee: Money;
  steps: readonly CompiledStep[];
  minimumCharge: Money | null;
  maximumCharge: { amount: Money; mode: "cap" | "limit" } | null;
  rounding: { mode: RoundingModeName; decimals: number };
}

export interface CompiledBand {
  id: string;
  days: ReadonlySet<number>;
  holidays: boolean;
  fromMs: number;
  toMs: number;
  priority: number;
}

export interface CompiledTariff {
  id: string;
  currency: string;
  timeZone: string;
  homeNetworks: ReadonlySet<string>;
  holidays: ReadonlySet<string>;
  /** Sorted by priority, highest first. */
  bands: readonly CompiledBand[];
  /** Every band edge in ms of day, ascending, ending with a day's end. */
  bandEdgesMs: readonly number[];
  prefixes: ReadonlyMap<string, string>;
  longestPrefix: number;
  roamingNetworks: ReadonlyMap<string, string>;
  /** Rates by `service|direction|roaming|destination` ("*" for any destination). */
  rates: ReadonlyMap<string, readonly CompiledRate[]>;
  /** The tax class of its usage charges (catalog tariffs always name one; inline quote tariffs may not). */
  taxClass: string | null;
  /** Its prices include the tax (default false). */
  taxIncluded: boolean;
  definition: TariffDefinition;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validateSchema = ajv.compile<TariffDefinition>(TariffSchema);
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

function schemaProblems(errors: ErrorObject[] | null | undefined): TariffProblem[] {
  return (errors ?? []).map((error) => {
    const path = error.instancePath
      .replace(/^\//, "")
      .replace(/\/(\d+)/g, "[$1]")
      .replace(/\//g, ".");
    const params = error.params as Record<string, unknown>;
    if (error.keyword === "required")
      return { path: join(path, String(params.missingProperty)), message: "is required" };
    if (error.keyword === "additionalProperties") {
      return { path: join(path, String(params.additionalProperty)), message: "is not a known field" };
    }
    return { path: path || "tariff", message: error.message ?? "is invalid" };
  });
}

function join(base: string, key: string): string {
  return base === "" ? key : `${base}.${key}`;
}

function clockMs(text: string): number {
  const [hours, minutes] = text.split(":").map(Number);
  return ((hours ?? 0) * 60 + (minutes ?? 0)) * MINUTE_MS;
}

function decimalPlaces(text: string): number {
  return text.includes(".") ? (text.split(".")[1] ?? "").length : 0;
}

export function compileTariff(definition: unknown): CompiledTariff {
  if (!validateSchema(definition)) throw new TariffError(schemaProblems(validateSchema.errors));
  const tariff = definition;
  const problems: TariffProblem[] = [];
  const problem = (path: string, message: string) => problems.push({ path, message });

  if (!isCurrencyCode(tariff.currency)) problem("currency", "is not an ISO 4217 currency code");
  const timeZone = canonicalTimeZone(tariff.timeZone);
  if (timeZone === null) problem("timeZone", "is not an IANA time zone");
  tariff.holidays?.forEach((date, index) => {
    if (!isCalendarDate(date)) problem(`holidays[${index}]`, "is not a calendar date");
  });

  // Bands: each is a window on some weekdays or on holidays; together they cover every minute, and two
  // bands of equal priority never overlap (which one applies would otherwise be arbitrary).
  const bands: CompiledBand[] = [];
  const bandIds = new Set<string>();
  tariff.timeBands.forEach((band, index) => {
    const path = `timeBands[${index}]`;
    if (bandIds.has(band.id)) problem(`${path}.id`, `duplicates band ${band.id}`);
    bandIds.add(band.id);
    const holidays = band.holidays === true;
    if (holidays === (band.days !== undefined)) problem(path, "names either days or holidays: true");
    const fromMs = clockMs(band.from);
    const toMs = clockMs(band.to);
    if (fromMs >= toMs) problem(`${path}.to`, "must be after from (split a band that crosses midnight in two)");
    bands.push({
      id: band.id,
      days: new Set((band.days ?? []).map((day) => WEEKDAYS.indexOf(day))),
      holidays,
      fromMs,
      toMs,
      priority: band.priority,
    });
  });
  bands.sort((a, b) => b.priority - a.priority);
  const edges = [...new Set(bands.flatMap((band) => [band.fromMs, band.toMs]).concat([0, DAY_MS]))].sort(
    (a, b) => a - b,
  );
  // On a holiday the holiday bands compete with the weekday's own bands, so priorities decide; ordinary days
  // must be covered by ordinary bands alone.
  const covers = (band: CompiledBand, atMs: number) => band.fromMs <= atMs && band.toMs > atMs;
  const reportTie = (candidates: CompiledBand[], where: string) => {
    const top = candidates[0];
    const tie = candidates.find((band) => band !== top && band.priority === top?.priority);
    if (top && tie) problem("timeBands", `${top.id} and ${tie.id} overlap ${where} with equal priority`);
  };
  const hasHolidayBands = bands.some((band) => band.holidays);
  for (let weekday = 0; weekday < 7; weekday++) {
    for (const start of edges.slice(0, -1)) {
      const time = `${String(Math.floor(start / 3_600_000)).padStart(2, "0")}:${String((start / MINUTE_MS) % 60).padStart(2, "0")}`;
      const where = `on ${WEEKDAYS[weekday]} at ${time}`;
      const ordinary = bands.filter((band) => !band.holidays && band.days.has(weekday) && covers(band, start));
      if (ordinary.length === 0) problem("timeBands", `no band covers ${WEEKDAYS[weekday]} at ${time}`);
      reportTie(ordinary, where);
      if (hasHolidayBands) {
        reportTie(
          bands.filter((band) => (band.holidays || band.days.has(weekday)) && covers(band, start)),
          `${where} on a holiday`,
        );
      }
    }
  }

  const prefixes = new Map<string, string>();
  const destinationIds = new Set<string>();
  tariff.destinations?.forEach((destination, index) => {
    if (destinationIds.has(destination.id))
      problem(`destinations[${index}].id`, `duplicates destination ${destination.id}`);
    destinationIds.add(destination.id);
    destination.prefixes.forEach((prefix, prefixIndex) => {
      const owner = prefixes.get(prefix);
      if (owner !== undefined) {
        problem(`destinations[${index}].prefixes[${prefixIndex}]`, `${prefix} already belongs to ${owner}`);
      }
      prefixes.set(prefix, destination.id);
    });
  });

  const roamingNetworks = new Map<string, string>();
  const zoneIds = new Set<string>(["home"]);
  tariff.roamingZones?.forEach((zone, index) => {
    if (zoneIds.has(zone.id)) problem(`roamingZones[${index}].id`, `duplicates zone ${zone.id} (or names "home")`);
    zoneIds.add(zone.id);
    zone.networks.forEach((network, networkIndex) => {
      const path = `roamingZones[${index}].networks[${networkIndex}]`;
      if (tariff.homeNetworks.includes(network)) problem(path, `${network} is a home network`);
      const owner = roamingNetworks.get(network);
      if (owner !== undefined) problem(path, `${network} already belongs to zone ${owner}`);
      roamingNetworks.set(network, zone.id);
    });
  });

  const rates = new Map<string, CompiledRate[]>();
  const rateIds = new Set<string>();
  tariff.rates.forEach((rate, index) => {
    const path = `rates[${index}]`;
    if (rateIds.has(rate.id)) problem(`${path}.id`, `duplicates rate ${rate.id}`);
    rateIds.add(rate.id);
    const compiled = compileRate(rate, path, problem, { destinationIds, zoneIds, bandIds });
    const key = rateKey(compiled.service, compiled.direction, compiled.roaming, compiled.destination ?? "*");
    const siblings = rates.get(key) ?? [];
    for (const sibling of siblings) {
      const overlap =
        sibling.bands === null ||
        compiled.bands === null ||
        [...compiled.bands].some((band) => sibling.bands?.has(band));
      if (overlap)
        problem(
          path,
          `applies to the same events as rate ${sibling.id} (same service, direction, roaming, destination and band)`,
        );
    }
    siblings.push(compiled);
    rates.set(key, siblings);
  });

  if (problems.length > 0) throw new TariffError(problems);
  return {
    id: tariff.id,
    currency: tariff.currency,
    timeZone: timeZone ?? "UTC",
    homeNetworks: new Set(tariff.homeNetworks),
    holidays: new Set(tariff.holidays ?? []),
    bands,
    bandEdgesMs: edges.filter((edge) => edge > 0),
    prefixes,
    longestPrefix: Math.max(0, ...[...prefixes.keys()].map((prefix) => prefix.length)),
    roamingNetworks,
    rates,
    taxClass: tariff.taxClass ?? null,
    taxIncluded: tariff.taxIncluded ?? false,
    definition: tariff,
  };
}

export function rateKey(service: Service, direction: Direction, roaming: string, destination: string): string {
  return `${service}|${direction}|${roaming}|${destination}`;
}

function compileRate(
  rate: RateDefinition,
  path: string,
  problem: (path: string, message: string) => void,
  known: { destinationIds: Set<string>; zoneIds: Set<string>; bandIds: Set<string> },
): CompiledRate {
  const amount = (text: string | undefined, field: string): Money | null => {
    if (text === undefined) return null;
    if (decimalPlaces(text) > 6) problem(`${path}.${field}`, "has more than 6 decimals");
    return new Money(text);
  };
  if (rate.destination !== undefined && !known.destinationIds.has(rate.destination)) {
    problem(`${path}.destination`, `unknown destination ${rate.destination}`);
  }
  const roaming = rate.roaming ?? "home";
  if (!known.zoneIds.has(roaming)) problem(`${path}.roaming`, `unknown roaming zone ${roaming}`);
  rate.bands?.forEach((band, index) => {
    if (!known.bandIds.has(band)) problem(`${path}.bands[${index}]`, `unknown band ${band}`);
  });
  const steps: CompiledStep[] = rate.steps.map((step, index) => {
    const next = rate.steps[index + 1];
    const to = next === undefined ? Number.POSITIVE_INFINITY : next.from;
    if (index === 0 && step.from !== 0) problem(`${path}.steps[0].from`, "the first step starts at 0");
    if (next !== undefined && next.from <= step.from)
      problem(`${path}.steps[${index + 1}].from`, "must be after the previous step's");
    if (Number.isFinite(to) && (to - step.from) % step.increment !== 0) {
      problem(`${path}.steps[${index}].increment`, `must divide the step's length of ${to - step.from} units`);
    }
    return {
      from: step.from,
      to,
      price: amount(step.price, `steps[${index}].price`) ?? new Money(0),
      per: step.per,
      increment: step.increment,
    };
  });
  const minimumCharge = amount(rate.minimumCharge, "minimumCharge");
  const maximum = rate.maximumCharge;
  const maximumAmount = amount(maximum?.amount, "maximumCharge.amount");
  if (minimumCharge !== null && maximumAmount !== null && minimumCharge.gt(maximumAmount)) {
    problem(`${path}.minimumCharge`, "exceeds the maximum charge");
  }
  return {
    id: rate.id,
    service: rate.service,
    direction: rate.direction ?? "outgoing",
    roaming,
    destination: rate.destination ?? null,
    bands: rate.bands ? new Set(rate.bands) : null,
    connectionFee: amount(rate.connectionFee, "connectionFee") ?? new Money(0),
    steps,
    minimumCharge,
    maximumCharge: maximum && maximumAmount ? { amount: maximumAmount, mode: maximum.mode } : null,
    rounding: rate.rounding,
  };
}
