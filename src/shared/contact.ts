/** Validation of contact data that several modules accept: phone numbers, e-mail, countries. */

/** E.164: a plus, a country code that does not start with 0, at most 15 digits in all. */
export function isE164(value: string): boolean {
  return /^\+[1-9]\d{6,14}$/.test(value);
}

/**
 * A deliberately plain e-mail check: one @, a local part without spaces, a dotted domain of
 * letters, digits and hyphens. Deliverability is the message channel's business, not ours.
 */
export function isEmailAddress(value: string): boolean {
  if (value.length > 254) return false;
  return /^[^\s@"<>()[\]\\,;:]{1,64}@(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/.test(
    value,
  );
}

const regionNames = new Intl.DisplayNames(["en"], { type: "region", fallback: "none" });

/** CLDR names these codes too, but they are groupings or placeholders, not countries. */
const NOT_COUNTRIES = new Set(["ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"]);

/** An ISO 3166-1 alpha-2 country code the runtime knows. */
export function isCountryCode(value: string): boolean {
  return /^[A-Z]{2}$/.test(value) && !NOT_COUNTRIES.has(value) && regionNames.of(value) !== undefined;
}

/** A tax jurisdiction: a country, optionally with an ISO 3166-2 subdivision ("DE", "US-CA", "ES-CN"). */
export function isTaxJurisdiction(value: string): boolean {
  const match = /^([A-Z]{2})(-[A-Z0-9]{1,3})?$/.exec(value);
  return match !== null && isCountryCode(match[1] ?? "");
}
