import { AppError, invalidField } from "../../platform/errors.js";
import { isCountryCode, isE164, isEmailAddress } from "../../shared/contact.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { chargingRangeProblem, describeAmountProblem, type Money, parseJsonAmount } from "../../shared/money.js";
import type { StateMachine } from "../../shared/state-machine.js";
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
