import { AppError, invalidField } from "../../platform/errors.js";
import { type BillCycle, cycleAt, cyclePeriod, formatLocalDate, localDate } from "../../shared/calendar.js";
import { isCountryCode, isE164, isEmailAddress } from "../../shared/contact.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { CDR_MAX_AGE_DAYS } from "../../shared/limits.js";
import { chargingRangeProblem, describeAmountProblem, type Money, parseJsonAmount } from "../../shared/money.js";
import type { StateMachine } from "../../shared/state-machine.js";
import { vatIdProblem } from "../../shared/vat-id.js";
import type { ContactMedium, Identification } from "./customers.schemas.js";

/** Field rules of the customers module that a schema cannot express. Pure: no I/O, no clock. */

export const INDIVIDUAL_LIFECYCLE: StateMachine<"initialized" | "validated" | "deceased"> = {
  initialized: ["validated", "deceased"],
  validated: ["deceased"],
  deceased: [],
};

export const ORGANIZATION_LIFECYCLE: StateMachine<"initialized" | "validated" | "closed"> = {
  initialized: ["validated", "closed"],
  validated: ["closed"],
  closed: [],
};

export const CUSTOMER_LIFECYCLE: StateMachine<"initialized" | "approved" | "suspended" | "closed"> = {
  initialized: ["approved", "closed"],
  approved: ["suspended", "closed"],
  suspended: ["approved", "closed"],
  closed: [],
};

export const ACCOUNT_LIFECYCLE: StateMachine<"active" | "suspended" | "closed"> = {
  active: ["suspended", "closed"],
  suspended: ["active", "closed"],
  closed: [],
};

/** E-mail addresses, phone numbers (E.164) and countries (ISO 3166-1) inside contact media. */
export function checkContactMedia(media: readonly ContactMedium[] | undefined, field: string): void {
  media?.forEach((medium, index) => {
    const path = `${field}[${index}].characteristic`;
    const c = medium.characteristic;
    if (c.emailAddress !== undefined && !isEmailAddress(c.emailAddress)) {
      throw invalidField(`${path}.emailAddress`, "is not a valid e-mail address");
    }
    for (const key of ["phoneNumber", "faxNumber"] as const) {
      const value = c[key];
      if (value !== undefined && !isE164(value)) {
        throw invalidField(`${path}.${key}`, "must be an E.164 number such as +4915112345678");
      }
    }
    if (c.country !== undefined && !isCountryCode(c.country)) {
      throw invalidField(`${path}.country`, "must be an ISO 3166-1 alpha-2 country code");
    }
    const required = REQUIRED_BY_MEDIUM[medium.mediumType];
    if (required !== undefined && c[required] === undefined) {
      throw invalidField(`${path}.${required}`, `is required for mediumType ${medium.mediumType}`);
    }
  });
}

const REQUIRED_BY_MEDIUM: Partial<Record<ContactMedium["mediumType"], keyof ContactMedium["characteristic"]>> = {
  email: "emailAddress",
  phone: "phoneNumber",
  mobile: "phoneNumber",
  fax: "faxNumber",
  postalAddress: "city",
  socialNetwork: "socialNetworkId",
};

/** One party holds each identity document once. */
export function checkIdentifications(ids: readonly Identification[] | undefined, field: string): void {
  const seen = new Set<string>();
  ids?.forEach((id, index) => {
    const key = `${id.identificationType}\u0000${id.identificationId}`;
    if (seen.has(key)) throw invalidField(`${field}[${index}]`, "repeats an identification already listed");
    seen.add(key);
  });
}

export function checkCountry(value: string | undefined, field: string): void {
  if (value !== undefined && !isCountryCode(value)) {
    throw invalidField(field, "must be an ISO 3166-1 alpha-2 country code");
  }
}

/** An account limit: in the account's currency, not negative, no finer than the currency's minor unit. */
export function parseLimit(
  money: { unit: string; value: number } | undefined,
  currency: string,
  field: string,
): Money | null {
  if (money === undefined) return null;
  if (money.unit !== currency) throw invalidField(`${field}.unit`, `must be the account currency ${currency}`);
  const decimals = currencyMinorUnits(currency);
  const amount = parseJsonAmount(money.value, { maxDecimals: decimals, allowNegative: false });
  if (typeof amount === "string") throw invalidField(`${field}.value`, describeAmountProblem(amount, decimals));
  const outOfRange = chargingRangeProblem(amount);
  if (outOfRange !== null)
    throw new AppError("unprocessable", "amount_out_of_range", `${field}.value: ${outOfRange}`, `${field}.value`);
  return amount;
}

// ---------------------------------------------------------------------------------------------------
// Bill cycle changes (DESIGN.md §10: at the next period boundary, with one prorated transition period)

/** What billing_accounts stores of an account's bill cycle (see the table's comment). */
export interface StoredCycle {
  billCycleDay: number;
  timeZone: string;
  previousBillCycleDay: number | null;
  previousTimeZone: string | null;
  cycleChangedAt: Date | null;
}

/** An account's bill cycle as the calendar speaks it (cyclePeriod, prorationBasis) from its stored columns. */
export function billCycleOf(row: StoredCycle): BillCycle {
  const { previousBillCycleDay: day, previousTimeZone: zone, cycleChangedAt: at } = row;
  return {
    billCycleDay: row.billCycleDay,
    timeZone: row.timeZone,
    previous:
      day === null || zone === null || at === null
        ? null
        : { billCycleDay: day, timeZone: zone, untilMs: at.getTime() },
  };
}

/**
 * How long a change of cycle is remembered after its transition period ended: as long as a CDR may arrive late
 * (CDR_MAX_AGE_DAYS), so every event the engine still rates, and every period billing may still read, falls in a
 * period the remembered cycles answer exactly.
 */
export const CYCLE_MEMORY_DAYS = CDR_MAX_AGE_DAYS;
const DAY_MS = 86_400_000;

/**
 * A requested change of an account's cycle day or zone at `nowMs`: the columns to store, a refusal, or null when the
 * request is the cycle already stored. The rules:
 * - An account with lines changes at the end of the period holding now (cyclePeriod on its cycle): the cycle in
 *   effect becomes `previous`, the change takes effect then, and the period from there to the new cycle's first
 *   boundary is the one transition period.
 * - Before it takes effect the change is pending: a second request replaces it (the cycle in effect and the instant
 *   stay), and asking for the cycle in effect cancels it.
 * - One change back is remembered, so once a change took effect another is refused until its transition period ended
 *   CYCLE_MEMORY_DAYS ago: forgetting the older cycle sooner would put late usage of its periods (or of the
 *   transition period) in periods that never existed.
 * - `atOnce` (an account nothing hangs on: no line that has not ended) changes at once with no transition period and
 *   no history, unless a change is pending or still remembered, which the rules above decide.
 */
export function planCycleChange(
  row: StoredCycle,
  requested: { billCycleDay: number; timeZone: string },
  nowMs: number,
  atOnce: boolean,
): { columns: StoredCycle } | { refusal: string } | null {
  const same = (a: { billCycleDay: number; timeZone: string }, b: { billCycleDay: number; timeZone: string }) =>
    a.billCycleDay === b.billCycleDay && a.timeZone === b.timeZone;
  if (same(requested, row)) return null;
  const cycle = billCycleOf(row);
  const previous = cycle.previous;
  const plain = { ...requested, previousBillCycleDay: null, previousTimeZone: null, cycleChangedAt: null };
  if (previous !== undefined && previous !== null) {
    if (nowMs < previous.untilMs) {
      if (same(requested, previous)) return { columns: plain };
      return {
        columns: {
          ...requested,
          previousBillCycleDay: previous.billCycleDay,
          previousTimeZone: previous.timeZone,
          cycleChangedAt: new Date(previous.untilMs),
        },
      };
    }
    const forgottenMs = cyclePeriod(previous.untilMs, cycle).endMs + CYCLE_MEMORY_DAYS * DAY_MS;
    if (nowMs < forgottenMs) {
      const date = (ms: number) => formatLocalDate(localDate(new Date(ms), row.timeZone));
      return {
        refusal:
          `the bill cycle last changed on ${date(previous.untilMs)} and that change is remembered until ` +
          `${date(forgottenMs)}, while usage of its periods may still arrive; it can change again from then`,
      };
    }
  }
  if (atOnce) return { columns: plain };
  const inEffect = cycleAt(nowMs, cycle);
  return {
    columns: {
      ...requested,
      previousBillCycleDay: inEffect.billCycleDay,
      previousTimeZone: inEffect.timeZone,
      cycleChangedAt: new Date(cyclePeriod(nowMs, cycle).endMs),
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// VAT IDs

/** A billing account's VAT ID: its format (shared/vat-id.ts), and only on a business account (an Organization's). */
export function checkVatId(vatId: string, ownerIsOrganization: boolean): void {
  const problem = vatIdProblem(vatId);
  if (problem !== null) throw invalidField("vatId", problem);
  if (!ownerIsOrganization) {
    throw new AppError(
      "unprocessable",
      "vat_id_not_applicable",
      "vatId: only a business account (its customer an Organization) has a VAT ID",
      "vatId",
    );
  }
}
