import type {
  IssuingEntity,
  Price,
  PriceBilling,
  SuspensionReason,
  TaxClass,
  TaxRate,
  VatCategory,
} from "./catalog.schemas.js";

/**
 * The terms invoice arithmetic reads from the catalog, with their defaults written once: how a price is billed and
 * taxed, which tax rate applies on a day, and which issuing entity bills a country. Pure: no I/O, no clock.
 */

/** What an omitted price field means. Content published before these fields existed reads the same way. */
export const PRICE_DEFAULTS = {
  billing: "advance",
  taxIncluded: false,
  chargedWhenSuspended: [] as readonly SuspensionReason[],
} as const satisfies { billing: PriceBilling; taxIncluded: boolean; chargedWhenSuspended: readonly SuspensionReason[] };

/** A price's billing terms with the defaults applied: recurring prices carry all three, one-time prices taxIncluded. */
export interface PriceTerms {
  taxIncluded: boolean;
  billing?: PriceBilling;
  chargedWhenSuspended?: SuspensionReason[];
}

export function priceTerms(price: Price): PriceTerms {
  const taxIncluded = price.taxIncluded ?? PRICE_DEFAULTS.taxIncluded;
  if (price.type !== "recurring") return { taxIncluded };
  return {
    taxIncluded,
    billing: price.billing ?? PRICE_DEFAULTS.billing,
    chargedWhenSuspended: [...(price.chargedWhenSuspended ?? PRICE_DEFAULTS.chargedWhenSuspended)],
  };
}

/** The price with its defaults written out, as the loader publishes it. */
export function withPriceDefaults(price: Price): Price {
  return { ...price, ...priceTerms(price) };
}

/** One tax rate as it applies: its category resolved against the class's, and the reason printed for E, O, AE. */
export interface AppliedTaxRate {
  taxClass: string;
  jurisdiction: string;
  /** A fraction, as written in the catalog: "0.19". */
  rate: string;
  category: VatCategory;
  /** The first day of the rate, or null for a rate without one (since always). */
  validFrom: string | null;
  exemptionReason?: string;
}

function applied(taxClass: TaxClass, rate: TaxRate): AppliedTaxRate {
  const category = rate.category ?? taxClass.category;
  // The class's reason explains the class's category; a rate of another category brings its own.
  const reason = rate.exemptionReason ?? (category === taxClass.category ? taxClass.exemptionReason : undefined);
  return {
    taxClass: taxClass.id,
    jurisdiction: rate.jurisdiction,
    rate: rate.rate,
    category,
    validFrom: rate.validFrom ?? null,
    ...(reason !== undefined ? { exemptionReason: reason } : {}),
  };
}

/** The latest of a jurisdiction's rates that started on or before `date` ("YYYY-MM-DD"), or undefined. */
function latestOn(rates: readonly TaxRate[], jurisdiction: string, date: string): TaxRate | undefined {
  let found: TaxRate | undefined;
  for (const rate of rates) {
    if (rate.jurisdiction !== jurisdiction) continue;
    // ISO calendar dates compare as text; a rate without validFrom has applied since always.
    if (rate.validFrom !== undefined && rate.validFrom > date) continue;
    if (found === undefined || (found.validFrom ?? "") < (rate.validFrom ?? "")) found = rate;
  }
  return found;
}

/**
 * The rate of a class for a jurisdiction on a day ("YYYY-MM-DD"): the jurisdiction's own entry, or, for a subdivision
 * the class does not name ("DE-BY"), its country's. Undefined when the class has no rate there on that day: the
 * caller reports it, a missing rate is never a silent zero.
 */
export function taxRateAt(taxClass: TaxClass, jurisdiction: string, date: string): AppliedTaxRate | undefined {
  const own = taxClass.rates.some((rate) => rate.jurisdiction === jurisdiction);
  const where = own ? jurisdiction : jurisdiction.slice(0, 2);
  const rate = latestOn(taxClass.rates, where, date);
  return rate === undefined ? undefined : applied(taxClass, rate);
}

/** Every jurisdiction's rate on a day, in the order the class first names each jurisdiction. */
export function taxRatesOn(taxClass: TaxClass, date: string): AppliedTaxRate[] {
  const jurisdictions = [...new Set(taxClass.rates.map((rate) => rate.jurisdiction))];
  return jurisdictions.flatMap((jurisdiction) => {
    const rate = latestOn(taxClass.rates, jurisdiction, date);
    return rate === undefined ? [] : [applied(taxClass, rate)];
  });
}

/** The first day after `date` on which some rate of these classes starts, or null: when a presentation goes stale. */
export function nextRateChange(taxClasses: Iterable<TaxClass>, date: string): string | null {
  let next: string | null = null;
  for (const taxClass of taxClasses) {
    for (const rate of taxClass.rates) {
      if (rate.validFrom !== undefined && rate.validFrom > date && (next === null || rate.validFrom < next)) {
        next = rate.validFrom;
      }
    }
  }
  return next;
}

/** The countries an issuing entity bills: those it names, or its own. */
export function billedCountries(entity: IssuingEntity): readonly string[] {
  return entity.countries ?? [entity.country];
}

/** The entity that bills a country; a jurisdiction with a subdivision ("ES-CN") is billed by its country's. */
export function issuingEntityFor(entities: Iterable<IssuingEntity>, country: string): IssuingEntity | undefined {
  const code = country.slice(0, 2);
  for (const entity of entities) {
    if (billedCountries(entity).includes(code)) return entity;
  }
  return undefined;
}
