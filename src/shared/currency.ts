/**
 * ISO 4217 codes and their minor units, from the ICU/CLDR data that ships with Node.js, so the
 * list follows the runtime's updates instead of a table we would have to maintain.
 */
const CODES = new Set(Intl.supportedValuesOf("currency"));

export function isCurrencyCode(code: string): boolean {
  return /^[A-Z]{3}$/.test(code) && CODES.has(code);
}

const minorUnitCache = new Map<string, number>();

/** Decimal places of the currency's minor unit (EUR 2, JPY 0, KWD 3). */
export function currencyMinorUnits(code: string): number {
  let digits = minorUnitCache.get(code);
  if (digits === undefined) {
    digits =
      new Intl.NumberFormat("en", { style: "currency", currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
    minorUnitCache.set(code, digits);
  }
  return digits;
}
