import { TMF_BASE } from "../../platform/tmf.js";
import { amountToJsonNumber, Money } from "../../shared/money.js";
import type { CatalogRoot, Offering, Promotion, Specification, TaxClass } from "./catalog.schemas.js";
import { taxRatesOn } from "./catalog-terms.js";

/** Catalog entities as TMF620 resources. Pure: content and version in, resource out. */

export const CATALOG_BASE = `${TMF_BASE.catalog}`;
export const PATHS = {
  productOffering: `${CATALOG_BASE}/productOffering`,
  productOfferingPrice: `${CATALOG_BASE}/productOfferingPrice`,
  productSpecification: `${CATALOG_BASE}/productSpecification`,
  category: `${CATALOG_BASE}/category`,
  catalog: `${CATALOG_BASE}/catalog`,
} as const;

export interface VersionInfo {
  version: number;
  validFrom: Date;
  validTo: Date | null;
}

function versioned(path: string, id: string, info: VersionInfo, lifecycleStatus: string) {
  return {
    id,
    href: `${path}/${id}`,
    version: String(info.version),
    lastUpdate: info.validFrom.toISOString(),
    lifecycleStatus,
    validFor: {
      startDateTime: info.validFrom.toISOString(),
      ...(info.validTo ? { endDateTime: info.validTo.toISOString() } : {}),
    },
  };
}

const ref = (path: string, id: string, name?: string, referredType?: string) => ({
  id,
  href: `${path}/${id}`,
  ...(name !== undefined ? { name } : {}),
  "@referredType": referredType ?? "",
});

/** One TMF price per catalog price and currency: TMF620 prices carry a single Money. */
export function priceId(priceIdInCatalog: string, currency: string): string {
  return `${priceIdInCatalog}.${currency.toLowerCase()}`;
}

export function offeringResource(
  offering: Offering,
  info: VersionInfo,
  currencies: readonly string[],
  promotions: Promotion[],
) {
  const priceRefs = offering.prices.flatMap((price) =>
    currencies.map((currency) =>
      ref(
        PATHS.productOfferingPrice,
        priceId(price.id, currency),
        `${price.name} (${currency})`,
        "ProductOfferingPrice",
      ),
    ),
  );
  const promotionRefs = promotions
    .filter((promotion) => promotion.prices.some((id) => offering.prices.some((price) => price.id === id)))
    .flatMap((promotion) =>
      promotionPriceIds(promotion, currencies).map((id) =>
        ref(PATHS.productOfferingPrice, id, promotion.name, "ProductOfferingPrice"),
      ),
    );
  return {
    ...versioned(PATHS.productOffering, offering.id, info, offering.lifecycleStatus),
    validFor: {
      startDateTime: offering.validFrom,
      ...(offering.validTo ? { endDateTime: offering.validTo } : {}),
    },
    "@type": "ProductOffering" as const,
    name: offering.name,
    ...(offering.description ? { description: offering.description } : {}),
    isBundle: false,
    isSellable: offering.isSellable,
    productSpecification: ref(PATHS.productSpecification, offering.specification, undefined, "ProductSpecification"),
    category: offering.categories.map((id) => ref(PATHS.category, id, undefined, "Category")),
    productOfferingPrice: [...priceRefs, ...promotionRefs],
    productOfferingTerm: (offering.terms ?? []).map((term) => ({
      name: term.name,
      duration: { amount: term.durationMonths, units: "month" },
    })),
    offeringKind: offering.kind,
    paymentTypes: offering.paymentTypes ?? ["prepaid", "postpaid"],
    businessOnly: offering.businessOnly ?? false,
    allowance: (offering.allowances ?? []).map((allowance) => ({
      id: allowance.id,
      service: allowance.service,
      units: allowance.units,
      period: allowance.period,
      ...(allowance.destinations ? { destinations: allowance.destinations } : {}),
      ...(allowance.roaming ? { roaming: allowance.roaming } : {}),
      ...(allowance.rolloverMaxUnits ? { rolloverMaxUnits: allowance.rolloverMaxUnits } : {}),
      isShared: allowance.shared ?? false,
    })),
    ...(offering.compatiblePlans
      ? {
          compatiblePlans: offering.compatiblePlans.map((id) =>
            ref(PATHS.productOffering, id, undefined, "ProductOffering"),
          ),
        }
      : {}),
  };
}

/**
 * TMF620 TaxItems of a price: one per jurisdiction at its rate on `today` ("YYYY-MM-DD"). `taxCategory` is the
 * EN 16931 VAT category code (S, Z, E, O, AE) of that rate; `jurisdiction` and `taxClass` are extensions.
 */
function taxesOf(taxClass: TaxClass | undefined, today: string) {
  if (taxClass === undefined) return [];
  return taxRatesOn(taxClass, today).map((rate) => ({
    taxCategory: rate.category,
    taxRate: amountToJsonNumber(new Money(rate.rate)),
    jurisdiction: rate.jurisdiction,
    taxClass: taxClass.id,
  }));
}

/**
 * One TMF price per catalog price and currency. `today` is the date ("YYYY-MM-DD") whose tax rates are shown:
 * a price shows the rates in force, not the history.
 */
export function priceResources(
  offering: Offering,
  info: VersionInfo,
  currencies: readonly string[],
  taxClasses: ReadonlyMap<string, TaxClass>,
  today: string,
) {
  const prices = offering.prices.flatMap((price) =>
    currencies.map((currency) => ({
      ...versioned(PATHS.productOfferingPrice, priceId(price.id, currency), info, offering.lifecycleStatus),
      "@type": "ProductOfferingPrice" as const,
      name: `${price.name} (${currency})`,
      priceType: price.type,
      ...(price.type === "recurring"
        ? price.period === "30days"
          ? { recurringChargePeriodType: "day", recurringChargePeriodLength: 30 }
          : { recurringChargePeriodType: "month", recurringChargePeriodLength: 1 }
        : {}),
      price: { unit: currency, value: amountToJsonNumber(new Money(price.amounts[currency] ?? "0")) },
      tax: taxesOf(taxClasses.get(price.taxClass), today),
      productOffering: ref(PATHS.productOffering, offering.id, offering.name, "ProductOffering"),
    })),
  );
  const terms = (offering.terms ?? []).flatMap((term) =>
    currencies.map((currency) => ({
      ...versioned(
        PATHS.productOfferingPrice,
        priceId(`${offering.id}.${term.id}.etf`, currency),
        info,
        offering.lifecycleStatus,
      ),
      "@type": "ProductOfferingPrice" as const,
      name: `${term.name}: early termination fee per remaining month (${currency})`,
      priceType: "oneTime",
      price: {
        unit: currency,
        value: amountToJsonNumber(new Money(term.earlyTerminationFeePerMonth[currency] ?? "0")),
      },
      tax: taxesOf(taxClasses.get(term.taxClass), today),
      productOffering: ref(PATHS.productOffering, offering.id, offering.name, "ProductOffering"),
    })),
  );
  return [...prices, ...terms];
}

/**
 * The TMF ids of a promotion's prices: a percentage is one price; an amount off is one per currency, as TMF620
 * prices carry a single Money.
 */
export function promotionPriceIds(promotion: Promotion, currencies: readonly string[]): string[] {
  return promotion.amountOff === undefined
    ? [promotion.id]
    : currencies.map((currency) => priceId(promotion.id, currency));
}

type DiscountResource = ReturnType<typeof discountBase> & {
  percentage?: number;
  price?: { unit: string; value: number };
};

function discountBase(promotion: Promotion, id: string, name: string, info: VersionInfo) {
  return {
    ...versioned(PATHS.productOfferingPrice, id, info, "active"),
    validFor: {
      startDateTime: promotion.validFrom,
      ...(promotion.validTo ? { endDateTime: promotion.validTo } : {}),
    },
    "@type": "ProductOfferingPrice" as const,
    name,
    priceType: "discount",
    applicationDuration: promotion.cycles,
    tax: [] as never[],
  };
}

export function promotionResources(
  promotion: Promotion,
  info: VersionInfo,
  currencies: readonly string[],
): DiscountResource[] {
  const common = (id: string, name: string) => discountBase(promotion, id, name, info);
  const amountOff = promotion.amountOff;
  if (amountOff === undefined) {
    return [
      {
        ...common(promotion.id, promotion.name),
        percentage: amountToJsonNumber(new Money(promotion.percentOff ?? "0")),
      },
    ];
  }
  return currencies.map((currency) => ({
    ...common(priceId(promotion.id, currency), `${promotion.name} (${currency})`),
    price: { unit: currency, value: amountToJsonNumber(new Money(amountOff[currency] ?? "0")) },
  }));
}

export function specificationResource(specification: Specification, info: VersionInfo) {
  return {
    ...versioned(PATHS.productSpecification, specification.id, info, "active"),
    "@type": "ProductSpecification" as const,
    name: specification.name,
    ...(specification.description ? { description: specification.description } : {}),
    ...(specification.brand ? { brand: specification.brand } : {}),
    // The kinds of resource a line takes (SIMCard, MSISDN): named as TMF639 resources name their specification.
    resourceSpecification: (specification.resources ?? []).map((name) => ({
      id: name,
      name,
      "@referredType": "ResourceSpecification",
    })),
  };
}

export function categoryResource(
  category: CatalogRoot["categories"][number],
  info: VersionInfo,
  offerings: readonly Offering[],
) {
  return {
    ...versioned(PATHS.category, category.id, info, "active"),
    "@type": "Category" as const,
    name: category.name,
    ...(category.description ? { description: category.description } : {}),
    isRoot: category.parent === undefined,
    ...(category.parent ? { parentId: category.parent } : {}),
    productOffering: offerings
      .filter((offering) => offering.categories.includes(category.id))
      .map((offering) => ref(PATHS.productOffering, offering.id, offering.name, "ProductOffering")),
  };
}

export function catalogResource(root: CatalogRoot, info: VersionInfo) {
  return {
    ...versioned(PATHS.catalog, root.id, info, "active"),
    "@type": "Catalog" as const,
    name: root.name,
    ...(root.description ? { description: root.description } : {}),
    category: root.categories.map((category) => ref(PATHS.category, category.id, category.name, "Category")),
  };
}
