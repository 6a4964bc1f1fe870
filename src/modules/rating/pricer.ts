import { localMoment, utcAtLocal } from "../../shared/calendar.js";
import { Money, roundMoney } from "../../shared/money.js";
import type { Direction, Service } from "../catalog/index.js";
import { type CompiledBand, type CompiledRate, type CompiledTariff, rateKey } from "../catalog/index.js";

/**
 * The pure pricer (DESIGN.md §4): no I/O, no clock, decimal.js throughout.
 *
 * - Roaming zone from the visited network; destination by longest prefix of the called number.
 * - Voice is split where the time band changes (in the tariff's zone); data and SMS are priced in the band
 *   of their start.
 * - Within each band's piece of the event, usage in each step of that band's rate is charged in whole
 *   increments, rounded up. Amounts are kept as one exact fraction (Σ price × units / per over a common
 *   denominator), so nothing is rounded before the event's single rounding.
 * - Allowances are consumed first, in whole increments; a fully covered event costs nothing; otherwise the
 *   rest is priced from the offset where the allowance ran out, plus the connection fee.
 * - Connection fee once (the rate at the event's start), then the minimum, then the maximum (cap), then one
 *   rounding of the event's total with the starting rate's mode and decimals.
 */

export interface RatingEvent {
  service: Service;
  direction: Direction;
  /** Start of the event, UTC milliseconds. */
  startMs: number;
  /** Seconds (voice), messages (sms) or bytes (data); a whole number. */
  quantity: number;
  calledNumber?: string;
  /** PLMN id (MCC+MNC) of the visited network; absent at home. */
  visitedNetwork?: string;
}

export interface PricedPart {
  rateId: string;
  band: string;
  /** Offsets into the event, in units, that this part's increments start within. */
  fromUnit: number;
  toUnit: number;
  increments: number;
  incrementUnits: number;
  chargedUnits: number;
  price: Money;
  per: number;
  amount: Money;
}

export interface PricedEvent {
  tariffId: string;
  currency: string;
  roaming: string;
  destination: string | null;
  quantity: number;
  /** Units the allowance covered, in whole increments. */
  allowanceUnits: number;
  /** Units charged in money, after increments. */
  chargedUnits: number;
  parts: PricedPart[];
  connectionFee: Money;
  /** Sum of parts and connection fee, before minimum, maximum and rounding (to 40 significant digits). */
  subtotal: Money;
  /** The same sum as an exact fraction: numerator / denominator. */
  subtotalExact: { numerator: Money; denominator: number };
  minimumApplied: boolean;
  maximumApplied: boolean;
  /** A `limit` maximum was passed: the price stands, an online session would have ended. */
  maximumExceeded: boolean;
  rounding: { mode: "up" | "down" | "halfUp"; decimals: number };
  total: Money;
}

export class RatingError extends Error {
  override name = "RatingError";
  constructor(
    readonly code: "no_rate" | "no_roaming_zone" | "invalid_event",
    message: string,
  ) {
    super(message);
  }
}

const ZERO = new Money(0);

export function roamingZoneOf(tariff: CompiledTariff, visitedNetwork: string | undefined): string {
  if (visitedNetwork === undefined || tariff.homeNetworks.has(visitedNetwork)) return "home";
  const zone = tariff.roamingNetworks.get(visitedNetwork) ?? tariff.roamingNetworks.get(visitedNetwork.slice(0, 3));
  if (zone === undefined) {
    throw new RatingError(
      "no_roaming_zone",
      `visited network ${visitedNetwork} is in no roaming zone of tariff ${tariff.id}`,
    );
  }
  return zone;
}

export function destinationOf(tariff: CompiledTariff, calledNumber: string | undefined): string | null {
  if (calledNumber === undefined) return null;
  for (let length = Math.min(tariff.longestPrefix, calledNumber.length); length >= 2; length--) {
    const destination = tariff.prefixes.get(calledNumber.slice(0, length));
    if (destination !== undefined) return destination;
  }
  return null;
}

export function bandAt(tariff: CompiledTariff, utcMs: number): { band: CompiledBand; nextChangeMs: number } {
  const moment = localMoment(tariff.timeZone, utcMs);
  const holiday = tariff.holidays.has(moment.date);
  let chosen: CompiledBand | undefined;
  for (const band of tariff.bands) {
    const onDay = band.holidays ? holiday : band.days.has(moment.weekday);
    if (onDay && band.fromMs <= moment.msOfDay && band.toMs > moment.msOfDay) {
      chosen = band;
      break;
    }
  }
  if (chosen === undefined) throw new RatingError("no_rate", `no time band of tariff ${tariff.id} covers this time`);
  const edge = tariff.bandEdgesMs.find((candidate) => candidate > moment.msOfDay) ?? 86_400_000;
  return { band: chosen, nextChangeMs: utcAtLocal(tariff.timeZone, moment, edge) };
}

function rateFor(
  tariff: CompiledTariff,
  event: RatingEvent,
  roaming: string,
  destination: string | null,
  band: string,
): CompiledRate {
  const candidates =
    (destination !== null
      ? tariff.rates.get(rateKey(event.service, event.direction, roaming, destination))
      : undefined) ?? tariff.rates.get(rateKey(event.service, event.direction, roaming, "*"));
  const rate = candidates?.find((candidate) => candidate.bands === null || candidate.bands.has(band));
  if (rate === undefined) {
    const what = [event.service, event.direction, roaming === "home" ? "at home" : `roaming in ${roaming}`];
    if (destination !== null) what.push(`to ${destination}`);
    else if (event.calledNumber !== undefined) what.push(`to ${event.calledNumber} (no destination matches)`);
    throw new RatingError("no_rate", `tariff ${tariff.id} has no rate for ${what.join(" ")} in band ${band}`);
  }
  return rate;
}

interface Segment {
  fromUnit: number;
  toUnit: number;
  band: string;
  rate: CompiledRate;
}

/** The event cut where the band changes (voice only), each piece with the rate of its band. */
function segmentsOf(
  tariff: CompiledTariff,
  event: RatingEvent,
  roaming: string,
  destination: string | null,
): Segment[] {
  const first = bandAt(tariff, event.startMs);
  const firstRate = rateFor(tariff, event, roaming, destination, first.band.id);
  if (event.service !== "voice") {
    return [{ fromUnit: 0, toUnit: event.quantity, band: first.band.id, rate: firstRate }];
  }
  const segments: Segment[] = [];
  let current = { fromUnit: 0, band: first.band.id, rate: firstRate };
  let nextChangeMs = first.nextChangeMs;
  for (let guard = 0; guard < 10_000; guard++) {
    const boundaryUnit = (nextChangeMs - event.startMs) / 1000;
    if (boundaryUnit >= event.quantity) break;
    const next = bandAt(tariff, nextChangeMs);
    nextChangeMs = next.nextChangeMs;
    if (next.band.id === current.band) continue;
    segments.push({ ...current, toUnit: boundaryUnit });
    current = {
      fromUnit: boundaryUnit,
      band: next.band.id,
      rate: rateFor(tariff, event, roaming, destination, next.band.id),
    };
  }
  segments.push({ ...current, toUnit: event.quantity });
  return segments;
}

/** Where the allowance runs out: the last increment boundary it reaches, and the units it consumes. */
function allowanceCover(rate: CompiledRate, quantity: number, allowance: number): { coveredTo: number; units: number } {
  let remaining = allowance;
  let units = 0;
  for (const step of rate.steps) {
    const used = Math.min(step.to, quantity) - step.from;
    if (used <= 0) break;
    const stepUnits = Math.ceil(used / step.increment) * step.increment;
    if (remaining >= stepUnits) {
      remaining -= stepUnits;
      units += stepUnits;
      continue;
    }
    const whole = Math.floor(remaining / step.increment) * step.increment;
    return { coveredTo: step.from + whole, units: units + whole };
  }
  return { coveredTo: quantity, units };
}

export function priceEvent(tariff: CompiledTariff, event: RatingEvent, allowanceUnits = 0): PricedEvent {
  if (!Number.isSafeInteger(event.quantity) || event.quantity < 0) {
    throw new RatingError("invalid_event", "quantity must be a whole number of units, at least 0");
  }
  const roaming = roamingZoneOf(tariff, event.visitedNetwork);
  const destination = destinationOf(tariff, event.calledNumber);
  const segments = segmentsOf(tariff, event, roaming, destination);
  const startRate = (segments[0] as Segment).rate;
  const cover = allowanceCover(startRate, event.quantity, Math.max(0, allowanceUnits));
  const priced: PricedEvent = {
    tariffId: tariff.id,
    currency: tariff.currency,
    roaming,
    destination,
    quantity: event.quantity,
    allowanceUnits: cover.units,
    chargedUnits: 0,
    parts: [],
    connectionFee: ZERO,
    subtotal: ZERO,
    subtotalExact: { numerator: ZERO, denominator: 1 },
    minimumApplied: false,
    maximumApplied: false,
    maximumExceeded: false,
    rounding: startRate.rounding,
    total: ZERO,
  };
  if (cover.coveredTo >= event.quantity) return priced;

  // Each part is price × units / per. Summing over the least common multiple of the `per`s keeps the sum
  // exact; the one division happens at the end, and its result is only ever compared and rounded.
  const numerators: Array<{ value: Money; per: number }> = [];
  for (const segment of segments) {
    const from = Math.max(segment.fromUnit, cover.coveredTo);
    if (from >= segment.toUnit) continue;
    for (const step of segment.rate.steps) {
      const low = Math.max(step.from, from);
      const high = Math.min(step.to, segment.toUnit, event.quantity);
      if (high <= low) continue;
      const increments = Math.ceil((high - low) / step.increment);
      const chargedUnits = increments * step.increment;
      const numerator = step.price.times(chargedUnits);
      numerators.push({ value: numerator, per: step.per });
      priced.chargedUnits += chargedUnits;
      priced.parts.push({
        rateId: segment.rate.id,
        band: segment.band,
        fromUnit: low,
        toUnit: high,
        increments,
        incrementUnits: step.increment,
        chargedUnits,
        price: step.price,
        per: step.per,
        amount: numerator.div(step.per),
      });
    }
  }
  const denominator = numerators.reduce((common, part) => lcm(common, part.per), 1);
  const numerator = numerators
    .reduce((sum, part) => sum.plus(part.value.times(denominator / part.per)), ZERO)
    .plus(startRate.connectionFee.times(denominator));
  priced.connectionFee = startRate.connectionFee;
  priced.subtotalExact = { numerator, denominator };
  priced.subtotal = numerator.div(denominator);
  let total = priced.subtotal;
  if (startRate.minimumCharge !== null && numerator.lt(startRate.minimumCharge.times(denominator))) {
    total = startRate.minimumCharge;
    priced.minimumApplied = true;
  }
  const maximum = startRate.maximumCharge;
  if (maximum !== null && numerator.gt(maximum.amount.times(denominator))) {
    if (maximum.mode === "cap") {
      total = maximum.amount;
      priced.maximumApplied = true;
    } else {
      priced.maximumExceeded = true;
    }
  }
  priced.total = roundMoney(total, startRate.rounding.decimals, startRate.rounding.mode);
  return priced;
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
