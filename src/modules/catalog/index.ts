/**
 * catalog: the product catalog as versioned data (offerings, prices, allowances, terms, promotions, tax
 * classes, tariffs) loaded from catalog/ files, validated whole, published as versions, read through TMF620
 * from an in-memory snapshot. Owns catalog_entities and catalog_publications. Never edits a published
 * version: a change is a new version, so what a subscriber bought stays readable.
 */
import { catalogRoutes } from "./catalog.routes.js";
import { type CatalogDeps, CatalogService } from "./catalog.service.js";

export function createCatalogModule(deps: CatalogDeps) {
  const service = new CatalogService(deps);
  return { service, routes: catalogRoutes(service) };
}
