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
