import { documentOfDraft, presentBill, presentLine } from "./bill-document.js";
import type { BillPreview } from "./billing.schemas.js";
import type { Preview } from "./billing.service.js";

/** A draft in the TMF678 shapes, money as decimal text (native API), its lines inside it; nothing issued. */
export function presentPreview({ draft, issuer }: Preview): BillPreview {
  const { document, lines } = documentOfDraft(draft);
  return {
    ...presentBill(document, issuer, "native", null),
    appliedCustomerBillingRate: lines.map((line) => presentLine(line, document, "native", null)),
  } as BillPreview;
}
