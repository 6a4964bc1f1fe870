/**
 * catalog: the product catalog as versioned data (offerings, prices, allowances, terms, promotions, tax
 * classes, tariffs, issuing entities) loaded from catalog/ files, validated whole, published as versions,
 * read through TMF620 from an in-memory snapshot. Owns catalog_entities and catalog_publications. Never
 * edits a published version: a change is a new version, so what a subscriber bought stays readable.
 */
import { catalogRoutes } from "./catalog.routes.js";
import { type CatalogDeps, CatalogService } from "./catalog.service.js";

export function createCatalogModule(deps: CatalogDeps) {
  const service = new CatalogService(deps);
  return { service, routes: catalogRoutes(service) };
}

// What other modules may use: the service and the types it speaks in.
export type {
  Allowance,
  IssuingEntity,
  Offering,
  Price,
  PriceBilling,
  Promotion,
  SuspensionReason,
  TaxClass,
  TaxRate,
  VatCategory,
} from "./catalog.schemas.js";
export { SUSPENSION_REASONS, VAT_CATEGORIES } from "./catalog.schemas.js";
export type { CatalogService, CatalogSnapshot, UsageTaxTerms } from "./catalog.service.js";
export type { AppliedTaxRate, PriceTerms } from "./catalog-terms.js";
export {
  billedCountries,
  issuingEntityFor,
  PRICE_DEFAULTS,
  priceTerms,
  taxRateAt,
  taxRatesOn,
} from "./catalog-terms.js";
export type { Direction, Service, TariffDefinition } from "./tariff.schemas.js";
export { DIRECTIONS, SERVICES } from "./tariff.schemas.js";
export type { CompiledBand, CompiledRate, CompiledTariff } from "./tariff-compile.js";
export { compileTariff, rateKey, TariffError } from "./tariff-compile.js";
