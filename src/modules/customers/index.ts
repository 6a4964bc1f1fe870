/**
 * customers: parties (individuals, organizations), customers and billing accounts (currency, bill cycle,
 * limits, time zone, tax jurisdiction). Owns their tables. Never deletes a billing account (they close),
 * never shows a subscriber another account, and never lets a limit leave the account's currency.
 */
import type { ServiceDeps } from "../../platform/resource-service.js";
import { customersRoutes } from "./customers.routes.js";
import { type AccountDefaults, createCustomerServices } from "./customers.service.js";

export function createCustomersModule(deps: ServiceDeps & { accountDefaults: AccountDefaults }) {
  const services = createCustomerServices(deps, deps.accountDefaults);
  return { services, routes: customersRoutes(services) };
}

export type CustomersModule = ReturnType<typeof createCustomersModule>;

// What other modules may use: the service and the types it speaks in, and an account's bill cycle from its columns.
export { billCycleOf, type StoredCycle } from "./customers.rules.js";
export type { CustomerServices } from "./customers.service.js";
