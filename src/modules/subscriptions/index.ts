/**
 * subscriptions: the installed products (TMF637) — one plan per line with its add-ons, number, SIM, prices
 * and term as bought, status history — and the one-time charges waiting for billing. Owns products,
 * product_history and one_time_charges. The only way a line changes state; never changes one the network
 * has not confirmed.
 */

import { subscriptionsRoutes } from "./subscriptions.routes.js";
import { type SubscriptionsDeps, SubscriptionsService } from "./subscriptions.service.js";

export function createSubscriptionsModule(deps: SubscriptionsDeps) {
  const service = new SubscriptionsService(deps);
  return { service, routes: subscriptionsRoutes(service) };
}

export type { BoughtPrice, BoughtPromotion, BoughtTerm, Product } from "./products.js";
export type {
  GuidingFilter,
  GuidingLine,
  LineForRating,
  OneTimeCharge,
  SubscriptionsService,
} from "./subscriptions.service.js";
// What other modules may use: the service and the types it speaks in.
export { PRODUCT_PATH } from "./subscriptions.service.js";
