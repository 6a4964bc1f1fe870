import type { MinorAmount } from "../../shared/minor-units.js";
import { amountToJsonNumber } from "../../shared/money.js";
import type { BillPreview } from "./billing.schemas.js";
import type { Preview } from "./billing.service.js";
import type { DraftLine } from "./compose.js";

const ACCOUNT_PATH = "/tmf-api/accountManagement/v4/billingAccount";
const PRODUCT_PATH = "/tmf-api/productInventory/v4/product";

/** A draft in the TMF678 shapes, money as decimal text (native API). */
export function presentPreview({ draft, account, issuer }: Preview): BillPreview {
  const money = (value: MinorAmount) => ({ unit: draft.currency, value: value.toFixed() });
  const iso = (ms: number) => new Date(ms).toISOString();
  const accountRef = { id: account.id, href: `${ACCOUNT_PATH}/${account.id}`, "@referredType": "BillingAccount" };
  const line = (entry: DraftLine) => {
    const characteristic: Array<{ name: string; value: string | number | boolean }> = [];
    if (entry.days !== null && entry.basisDays !== null) {
      characteristic.push({ name: "days", value: entry.days }, { name: "periodDays", value: entry.basisDays });
    }
    if (entry.usage !== null) {
      characteristic.push(
        { name: "service", value: entry.usage.service },
        { name: "usagePeriod", value: entry.usage.usagePeriod },
        { name: "quantity", value: entry.usage.quantity },
        { name: "chargedUnits", value: entry.usage.chargedUnits },
      );
      if (entry.usage.zone !== null) characteristic.push({ name: "zone", value: entry.usage.zone });
    }
    return {
      id: entry.key,
      "@type": "AppliedCustomerBillingRate" as const,
      type: entry.kind,
      name: entry.name,
      date: iso(entry.period?.startMs ?? draft.usagePeriod.endMs),
      isBilled: false,
      ...(entry.period === null
        ? {}
        : { periodCoverage: { startDateTime: iso(entry.period.startMs), endDateTime: iso(entry.period.endMs) } }),
      ...(entry.productId === null
        ? {}
        : { product: { id: entry.productId, href: `${PRODUCT_PATH}/${entry.productId}`, "@referredType": "Product" } }),
      billingAccount: accountRef,
      taxExcludedAmount: money(entry.net),
      taxIncludedAmount: money(entry.net.plus(entry.lineTax)),
      appliedTax: [
        { taxCategory: entry.taxCategory, taxRate: amountToJsonNumber(entry.taxRate), taxAmount: money(entry.lineTax) },
      ],
      characteristic,
      amount: money(entry.amount),
      discount: money(entry.discount),
      promotion: entry.promotions.map((promotion) => ({
        id: promotion.id,
        name: promotion.name,
        amount: money(promotion.amount),
      })),
      taxIncluded: entry.taxIncluded,
      ...(entry.exemptionReason === null ? {} : { exemptionReason: entry.exemptionReason }),
      late: entry.late,
    };
  };
  return {
    "@type": "CustomerBill",
    category: draft.kind === "final" ? "final" : "normal",
    runType: draft.kind === "final" ? "offCycle" : "onCycle",
    billDate: `${draft.issueDate}`,
    billingPeriod: { startDateTime: iso(draft.usagePeriod.startMs), endDateTime: iso(draft.usagePeriod.endMs) },
    ...(draft.advancePeriod === null ? {} : { nextBillDate: iso(draft.advancePeriod.endMs) }),
    paymentDueDate: draft.dueDate,
    billingAccount: accountRef,
    relatedParty: [{ id: issuer.id, name: issuer.name, role: "issuer", "@referredType": "Organization" }],
    amountDue: money(draft.totalDue),
    remainingAmount: money(draft.totalDue),
    taxExcludedAmount: money(draft.net),
    taxIncludedAmount: money(draft.gross),
    taxItem: draft.taxes.map((tax) => ({
      taxCategory: tax.category,
      taxRate: amountToJsonNumber(tax.rate),
      taxAmount: money(tax.tax),
    })),
    taxBreakdown: draft.taxes.map((tax) => ({
      taxCategory: tax.category,
      taxRate: tax.rate.toFixed(),
      taxableAmount: money(tax.taxable),
      taxAmount: money(tax.tax),
      ...(tax.exemptionReason === null ? {} : { exemptionReason: tax.exemptionReason }),
    })),
    reverseCharge: draft.reverseCharge,
    previousBalance: money(draft.previousBalance),
    paymentsSince: money(draft.paymentsSince),
    creditsSince: money(draft.creditsSince),
    usagePeriod: draft.usagePeriod.key,
    ...(draft.advancePeriod === null
      ? {}
      : {
          advancePeriod: {
            startDateTime: iso(draft.advancePeriod.startMs),
            endDateTime: iso(draft.advancePeriod.endMs),
          },
        }),
    appliedCustomerBillingRate: draft.lines.map(line),
    note: draft.notes,
  };
}
