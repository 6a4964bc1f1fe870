/**
 * payments: money in and out of the receivables ledger (DESIGN.md §10): TMF676 payments and refunds, cash
 * application to bills, reversals (chargebacks, returned debits) with the catalog's fee, imports, the payment
 * methods of billing accounts, and the banks' own files: SEPA mandates and pain.008 direct debits, camt.053
 * statements with their worklist. Prepaid money is not here: top-ups stay on the line's balance (TMF654).
 */
import type { FastifyInstance } from "fastify";
import { bankFilesRoutes } from "./bank-files.routes.js";
import { type DirectDebitsDeps, DirectDebitsService } from "./direct-debits.service.js";
import { paymentsRoutes } from "./payments.routes.js";
import { type PaymentsDeps, PaymentsService } from "./payments.service.js";
import { StatementsService } from "./statements.service.js";

export function createPaymentsModule(
  deps: PaymentsDeps &
    Omit<DirectDebitsDeps, "payments"> & {
      statementMaxBytes: number;
    },
) {
  const service = new PaymentsService(deps);
  const debits = new DirectDebitsService({ ...deps, payments: service });
  const statements = new StatementsService({
    ...deps,
    payments: service,
    debits,
    maxBytes: deps.statementMaxBytes,
  });
  const payments = paymentsRoutes(service);
  const files = bankFilesRoutes(debits, statements);
  return {
    service,
    debits,
    statements,
    routes: async (app: FastifyInstance) => {
      await app.register(payments);
      await app.register(files);
    },
  };
}

export type { Creditor } from "./pain008.js";
export type { PaymentsService } from "./payments.service.js";
export { REVERSAL_FEE_OFFERING } from "./reversal-reasons.js";
