/**
 * billing: the arithmetic of a bill (`composeInvoice`, pure), what it reads through other modules' services, and
 * the preview. Owns no tables yet (invoices, numbering and the receivables ledger come with issuing). DESIGN.md §10.
 */
import { billingRoutes } from "./billing.routes.js";
import { type BillingDeps, BillingService } from "./billing.service.js";

export function createBillingModule(deps: BillingDeps) {
  const service = new BillingService(deps);
  return { service, routes: billingRoutes(service) };
}

export type { BillingAccountView, BillingDeps, BillingService, Preview } from "./billing.service.js";
export { ComposeError, type ComposeInput, composeInvoice, type Draft } from "./compose.js";
