import { Decimal } from "decimal.js";
import { CHARGING_AMOUNT_MAX, MONEY_MAX_ABS, MONEY_MAX_SIGNIFICANT_DIGITS, MONEY_SCALE } from "./limits.js";

/**
 * The one decimal type of the engine. Precision is far above any amount we hold, so arithmetic is
 * exact; rounding only happens where a caller names a mode (`roundMoney`).
 */
export const Money = Decimal.clone({
  precision: 40,
  rounding: Decimal.ROUND_HALF_EVEN,
  toExpNeg: -40,
  toExpPos: 40,
});
export type Money = InstanceType<typeof Money>;

export const RoundingMode = {
  up: Decimal.ROUND_UP,
  down: Decimal.ROUND_DOWN,
  halfUp: Decimal.ROUND_HALF_UP,
  halfEven: Decimal.ROUND_HALF_EVEN,
} as const;
export type RoundingMode = keyof typeof RoundingMode;

const MAX_ABS = new Money(MONEY_MAX_ABS);

export type AmountProblem = "not_finite" | "too_many_digits" | "too_large" | "negative" | "too_many_decimals";

const PROBLEM_TEXT: Record<AmountProblem, string> = {
  not_finite: "must be a finite number",
  too_many_digits: `must have at most ${MONEY_MAX_SIGNIFICANT_DIGITS} significant digits`,
  too_large: `must not exceed ${MONEY_MAX_ABS} in absolute value`,
  negative: "must not be negative",
  too_many_decimals: "has more decimals than allowed",
};

export function describeAmountProblem(problem: AmountProblem, decimals?: number): string {
  if (problem === "too_many_decimals" && decimals !== undefined) {
    return `must have at most ${decimals} decimal places`;
  }
  return PROBLEM_TEXT[problem];
}

export interface AmountRules {
  /** Most decimal places allowed (a currency's minor unit, or MONEY_SCALE). */
  maxDecimals: number;
  allowNegative: boolean;
}

/**
 * Converts an amount that arrived as a JSON number, once, at the edge (API.md): the number's
 * shortest text is exact for up to 15 significant digits, so more digits are refused rather than
 * silently rounded by the JSON parser.
 */
export function parseJsonAmount(value: number, rules: AmountRules): Money | AmountProblem {
  if (!Number.isFinite(value)) return "not_finite";
  return checkAmount(new Money(String(value)), rules);
}

/** Converts an amount sent as a decimal string (native API). */
export function parseDecimalText(text: string, rules: AmountRules): Money | AmountProblem {
  if (!/^-?\d{1,20}(\.\d{1,20})?$/.test(text)) return "not_finite";
  return checkAmount(new Money(text), rules);
}

function checkAmount(amount: Money, rules: AmountRules): Money | AmountProblem {
  if (amount.sd(true) > MONEY_MAX_SIGNIFICANT_DIGITS) return "too_many_digits";
  if (amount.abs().gt(MAX_ABS)) return "too_large";
  if (!rules.allowNegative && amount.isNegative() && !amount.isZero()) return "negative";
  if (amount.decimalPlaces() > Math.min(rules.maxDecimals, MONEY_SCALE)) return "too_many_decimals";
  return amount.isZero() ? new Money(0) : amount;
}

/**
 * The JSON number for an amount: the decimal's exact text read back as a double. For at most 15
 * significant digits the double prints as the same text, so the client sees exactly our decimal.
 * This is a representation change for the serializer, never arithmetic.
 */
export function amountToJsonNumber(amount: Money): number {
  if (amount.sd(true) > MONEY_MAX_SIGNIFICANT_DIGITS) {
    throw new RangeError(`amount ${amount.toFixed()} has more than ${MONEY_MAX_SIGNIFICANT_DIGITS} significant digits`);
  }
  return Number(amount.toFixed());
}

/** Rounds once, at a named boundary, with a named mode. */
export function roundMoney(amount: Money, decimals: number, mode: RoundingMode): Money {
  return amount.toDecimalPlaces(decimals, RoundingMode[mode]);
}

const MICRO = new Money(1_000_000);

/**
 * An amount as integer micro-units (10^-6), the charging store's unit (DESIGN.md §2). Amounts there carry at most
 * six decimals; a finer one is a bug upstream and is refused, never rounded here.
 */
/** Why an amount cannot be held by the charging store, or null: the 422 reason that names the limit. */
export function chargingRangeProblem(amount: Money): string | null {
  return amount.abs().greaterThan(CHARGING_AMOUNT_MAX)
    ? `must not exceed ${CHARGING_AMOUNT_MAX} in absolute value (the most the charging store holds exactly)`
    : null;
}

export function toMicro(amount: Money): bigint {
  const micro = amount.mul(MICRO);
  if (!micro.isInteger()) throw new Error(`amount ${amount.toFixed()} has more than 6 decimals`);
  return BigInt(micro.toFixed(0));
}

/** Integer micro-units back to an exact decimal amount. */
export function fromMicro(micro: bigint): Money {
  return new Money(micro.toString()).div(MICRO);
}
