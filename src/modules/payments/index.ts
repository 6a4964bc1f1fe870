/**
 * payments: money in and out of the receivables ledger (DESIGN.md §10): TMF676 payments and refunds, cash
 * application to bills, reversals (chargebacks, returned debits) with the catalog's fee, imports, and the payment
 * methods of billing accounts. Prepaid money is not here: top-ups stay on the line's balance (TMF654).
 */
import { paymentsRoutes } from "./payments.routes.js";
import { type PaymentsDeps, PaymentsService } from "./payments.service.js";

export function createPaymentsModule(deps: PaymentsDeps) {
  const service = new PaymentsService(deps);
  return { service, routes: paymentsRoutes(service) };
}

export type { PaymentsService } from "./payments.service.js";
export { REVERSAL_FEE_OFFERING } from "./reversal-reasons.js";
