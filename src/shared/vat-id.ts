/**
 * VAT identification numbers, checked by format: the formats the European Commission's VIES service publishes for
 * each member state, and the United Kingdom's. A VAT ID is written as its two-letter prefix and the national number,
 * in capitals, without spaces or punctuation ("DE123456789"). Greece's prefix is EL, not its ISO code GR.
 *
 * Only the format is checked, not check digits and not whether the number is registered: VIES answers that, at the
 * time of a transaction, and a bill must not depend on a remote service being up.
 */

/** The member states of the European Union (ISO 3166-1 alpha-2), the area within which reverse charge applies. */
export const EU_VAT_COUNTRIES = [
  "AT",
  "BE",
  "BG",
  "CY",
  "CZ",
  "DE",
  "DK",
  "EE",
  "ES",
  "FI",
  "FR",
  "GR",
  "HR",
  "HU",
  "IE",
  "IT",
  "LT",
  "LU",
  "LV",
  "MT",
  "NL",
  "PL",
  "PT",
  "RO",
  "SE",
  "SI",
  "SK",
] as const;

const EU = new Set<string>(EU_VAT_COUNTRIES);

/** The national part of a VAT ID, after its prefix, by prefix; with a reader's description for error messages. */
const FORMATS: Record<string, { pattern: RegExp; description: string; country: string }> = {
  AT: { pattern: /^U\d{8}$/, description: "U and 8 digits", country: "AT" },
  BE: { pattern: /^[01]\d{9}$/, description: "0 or 1 and 9 digits", country: "BE" },
  BG: { pattern: /^\d{9,10}$/, description: "9 or 10 digits", country: "BG" },
  CY: { pattern: /^\d{8}[A-Z]$/, description: "8 digits and a letter", country: "CY" },
  CZ: { pattern: /^\d{8,10}$/, description: "8, 9 or 10 digits", country: "CZ" },
  DE: { pattern: /^\d{9}$/, description: "9 digits", country: "DE" },
  DK: { pattern: /^\d{8}$/, description: "8 digits", country: "DK" },
  EE: { pattern: /^\d{9}$/, description: "9 digits", country: "EE" },
  EL: { pattern: /^\d{9}$/, description: "9 digits", country: "GR" },
  // A letter or digit, 7 digits, a letter or digit; at least one of the two ends is a letter (NIF, NIE, CIF).
  ES: {
    pattern: /^(?=.*[A-Z])[A-Z0-9]\d{7}[A-Z0-9]$/,
    description: "a letter or digit, 7 digits and a letter or digit, at least one of them a letter",
    country: "ES",
  },
  FI: { pattern: /^\d{8}$/, description: "8 digits", country: "FI" },
  FR: {
    pattern: /^[A-HJ-NP-Z0-9]{2}\d{9}$/,
    description: "2 letters or digits (not I or O) and 9 digits",
    country: "FR",
  },
  HR: { pattern: /^\d{11}$/, description: "11 digits", country: "HR" },
  HU: { pattern: /^\d{8}$/, description: "8 digits", country: "HU" },
  // 7 digits and one or two letters (the current form), or the old form: a digit, a letter, + or *, 5 digits, a letter.
  IE: {
    pattern: /^(\d{7}[A-W][A-IW]?|\d[A-Z+*]\d{5}[A-W])$/,
    description: "7 digits and 1 or 2 letters, or a digit, a letter, + or *, 5 digits and a letter",
    country: "IE",
  },
  IT: { pattern: /^\d{11}$/, description: "11 digits", country: "IT" },
  LT: { pattern: /^(\d{9}|\d{12})$/, description: "9 or 12 digits", country: "LT" },
  LU: { pattern: /^\d{8}$/, description: "8 digits", country: "LU" },
  LV: { pattern: /^\d{11}$/, description: "11 digits", country: "LV" },
  MT: { pattern: /^\d{8}$/, description: "8 digits", country: "MT" },
  NL: { pattern: /^\d{9}B\d{2}$/, description: "9 digits, B and 2 digits", country: "NL" },
  PL: { pattern: /^\d{10}$/, description: "10 digits", country: "PL" },
  PT: { pattern: /^\d{9}$/, description: "9 digits", country: "PT" },
  RO: { pattern: /^[1-9]\d{1,9}$/, description: "2 to 10 digits, not starting with 0", country: "RO" },
  SE: { pattern: /^\d{10}01$/, description: "12 digits ending in 01", country: "SE" },
  SI: { pattern: /^\d{8}$/, description: "8 digits", country: "SI" },
  SK: { pattern: /^\d{10}$/, description: "10 digits", country: "SK" },
  // 9 digits, 12 for a branch; government departments GD000–GD499 and health authorities HA500–HA999.
  GB: {
    pattern: /^(\d{9}|\d{12}|GD[0-4]\d{2}|HA[5-9]\d{2})$/,
    description: "9 or 12 digits, GD and 000–499, or HA and 500–999",
    country: "GB",
  },
};

/** A VAT ID as it is written: capitals, no spaces, dots or hyphens ("de 123.456.789" → "DE123456789"). */
export function normalizeVatId(text: string): string {
  return text.replace(/[\s.-]/g, "").toUpperCase();
}

/** Why a VAT ID is not one, or null when its format is valid. Expects the written form (see normalizeVatId). */
export function vatIdProblem(vatId: string): string | null {
  if (vatId.length === 0) return "is empty";
  if (vatId.length > 16) return "is longer than any VAT ID";
  if (normalizeVatId(vatId) !== vatId) {
    return `must be written in capitals without spaces or punctuation (${normalizeVatId(vatId)})`;
  }
  const prefix = vatId.slice(0, 2);
  const format = FORMATS[prefix];
  if (format === undefined) {
    return prefix === "GR"
      ? "Greek VAT IDs start with EL, not GR"
      : `starts with ${prefix}, which is not the prefix of an EU member state's or the United Kingdom's VAT IDs`;
  }
  if (!format.pattern.test(vatId.slice(2))) return `must be ${prefix} and ${format.description}`;
  return null;
}

/** The ISO 3166-1 country of a VAT ID's prefix (EL → GR), or null when the prefix is not one this file knows. */
export function vatIdCountry(vatId: string): string | null {
  return FORMATS[vatId.slice(0, 2)]?.country ?? null;
}

/** An EU member state by its ISO 3166-1 alpha-2 code (GR for Greece; the United Kingdom left in 2020). */
export function isEuVatCountry(country: string): boolean {
  return EU.has(country);
}

/**
 * Whether a supply from an issuer in one EU member state to a business with this VAT ID is reverse-charged
 * (Council Directive 2006/112/EC, Articles 44 and 196: the customer accounts for the VAT; EN 16931 category AE):
 * the VAT ID is of another EU member state than the issuer's.
 */
export function isReverseCharged(vatId: string, issuerCountry: string): boolean {
  const country = vatIdCountry(vatId);
  return country !== null && country !== issuerCountry && isEuVatCountry(country) && isEuVatCountry(issuerCountry);
}
