/**
 * billing: the arithmetic of a bill (`composeInvoice`, pure), what it reads through other modules' services, the
 * preview, and issuing: numbered immutable invoices and credit notes, the receivables ledger, TMF678. DESIGN.md §10.
 */
import type { FastifyInstance } from "fastify";
import { billingRoutes } from "./billing.routes.js";
import { type BillingDeps, BillingService } from "./billing.service.js";
import { invoicesRoutes } from "./invoices.routes.js";
import { type InvoicesDeps, InvoicesService } from "./invoices.service.js";

export function createBillingModule(deps: BillingDeps & Omit<InvoicesDeps, "billing" | "account" | "issuerFor">) {
  const service = new BillingService(deps);
  const invoices = new InvoicesService({
    ...deps,
    billing: service,
    account: deps.account,
    issuerFor: (country) => deps.catalog.issuingEntityFor(country),
  });
  const preview = billingRoutes(service);
  const issued = invoicesRoutes(invoices);
  return {
    service,
    invoices,
    routes: async (app: FastifyInstance) => {
      await app.register(preview);
      await app.register(issued);
    },
  };
}

export type { BillingAccountView, BillingDeps, BillingService, Preview } from "./billing.service.js";
export { ComposeError, type ComposeInput, composeInvoice, type Draft } from "./compose.js";
export type { InvoicesService } from "./invoices.service.js";
