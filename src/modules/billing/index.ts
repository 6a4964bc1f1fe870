/**
 * billing: the arithmetic of a bill (`composeInvoice`, pure), what it reads through other modules' services, the
 * preview, and issuing: numbered immutable invoices and credit notes, the receivables ledger, TMF678. DESIGN.md §10.
 */
import type { FastifyInstance } from "fastify";
import { billRunsRoutes } from "./bill-runs.routes.js";
import { type BillRunsDeps, BillRunsService } from "./bill-runs.service.js";
import { billingRoutes } from "./billing.routes.js";
import { type BillingDeps, BillingService } from "./billing.service.js";
import { invoicesRoutes } from "./invoices.routes.js";
import { type InvoicesDeps, InvoicesService } from "./invoices.service.js";

export function createBillingModule(
  deps: BillingDeps &
    Omit<InvoicesDeps, "billing" | "account" | "issuerFor"> &
    Omit<BillRunsDeps, "invoices"> & { billRunWork: "background" | "manual" },
) {
  const service = new BillingService(deps);
  const invoices = new InvoicesService({
    ...deps,
    billing: service,
    account: deps.account,
    issuerFor: (country) => deps.catalog.issuingEntityFor(country),
  });
  const runs = new BillRunsService({ ...deps, invoices });
  // The process that starts (or retries) a run works it in the background; others join through the scheduler.
  const kick = (runId: string) => {
    if (deps.billRunWork === "manual") return;
    runs.work(runId).catch((error) => deps.log.error({ err: error, runId }, "bill run work stopped; it resumes later"));
  };
  const preview = billingRoutes(service);
  const issued = invoicesRoutes(invoices);
  const runRoutes = billRunsRoutes(runs, kick);
  return {
    service,
    invoices,
    runs,
    routes: async (app: FastifyInstance) => {
      await app.register(preview);
      await app.register(issued);
      await app.register(runRoutes);
    },
  };
}

export { type BillRunsService, startBillRunLoop } from "./bill-runs.service.js";
export type { BillingAccountView, BillingDeps, BillingService, Preview } from "./billing.service.js";
// The receivables ledger's cash application, for the payments module (DESIGN.md §10 "Receivables are a ledger").
export {
  applyCredit,
  applyUnappliedCredit,
  billsOf,
  billsQuoted,
  type CollectibleBill,
  type Credit,
  creditsOf,
  defaultOrder,
  invoicesTouched,
  type NewEntry,
  type OpenItem,
  openBillsDueBy,
  openItemsOf,
  type PlannedAllocation,
  type QuotedBill,
  quotedItems,
  standingAllocations,
  undoAllocations,
  writeAllocations,
  writeEntries,
} from "./cash-application.js";
export { ComposeError, type ComposeInput, composeInvoice, type Draft } from "./compose.js";
export type { BillMessage, Contact, InvoicesService } from "./invoices.service.js";
export { lockAccounts } from "./invoices.service.js";
