/**
 * rating: the tariff model, its validation and the pure pricer (no I/O, decimal.js), and quotes against the
 * catalog. Owns no tables. Never charges anything: charging applies the pricer's results (issue 7).
 */
import type { CatalogService } from "../catalog/index.js";
import { QuoteService } from "./quote.service.js";
import { ratingRoutes } from "./rating.routes.js";

export function createRatingModule(deps: { catalog: CatalogService }) {
  const quotes = new QuoteService(deps.catalog);
  return { quotes, routes: ratingRoutes(quotes) };
}

export type { RatingEvent } from "./pricer.js";
// What other modules may use: the service and the types it speaks in.
export { destinationOf, priceEvent, RatingError, roamingZoneOf } from "./pricer.js";
