/**
 * rating: the tariff model, its validation and the pure pricer (no I/O, decimal.js), and quotes against the
 * catalog. Owns no tables. Never charges anything: charging applies the pricer's results (issue 7).
 */
import type { CatalogService } from "../catalog/catalog.service.js";
import { QuoteService } from "./quote.service.js";
import { ratingRoutes } from "./rating.routes.js";

export function createRatingModule(deps: { catalog: CatalogService }) {
  const quotes = new QuoteService(deps.catalog);
  return { quotes, routes: ratingRoutes(quotes) };
}
