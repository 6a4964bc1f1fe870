import { localMidnightUtc } from "../../shared/calendar.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { amountToJsonNumber, Money } from "../../shared/money.js";
import type { allocations, invoiceLines, invoices } from "./billing.tables.js";
import type { Draft, DraftLine, InvoiceKind, TaxCategory } from "./compose.js";

/**
 * A bill as one model, whether composed (a preview, a draft about to be issued) or issued (rows read back): what the
 * tables store and what TMF678 presents come from it, so a preview and the invoice it becomes look the same.
 */

export type DocumentKind = InvoiceKind | "creditNote";

export interface BillLine {
  /** The row id once issued; the line's key in a preview. */
  id: string;
  key: string;
  kind: string;
  productId: string | null;
  priceId: string | null;
  oneTimeChargeId: string | null;
  usageSummaryId: string | null;
  fromSeq: number | null;
  toSeq: number | null;
  name: string;
  period: { startMs: number; endMs: number } | null;
  days: number | null;
  basisDays: number | null;
  amount: MinorAmount;
  discount: MinorAmount;
  charge: MinorAmount;
  net: MinorAmount;
  lineTax: MinorAmount;
  taxIncluded: boolean;
  taxClass: string;
  taxCategory: string;
  taxRate: Money;
  exemptionReason: string | null;
  late: boolean;
  usage: DraftLine["usage"];
  promotions: Array<{ id: string; name: string; amount: MinorAmount }>;
  creditedLineId: string | null;
}

export interface BillTax {
  category: string;
  rate: Money;
  taxable: MinorAmount;
  tax: MinorAmount;
  exemptionReason: string | null;
}

export interface BillDocument {
  kind: DocumentKind;
  billingAccountId: string;
  currency: string;
  usagePeriod: { key: string; startMs: number; endMs: number } | null;
  advancePeriod: { startMs: number; endMs: number } | null;
  issueDate: string;
  dueDate: string;
  /** The account's zone the dates are local dates in. */
  timeZone: string;
  net: MinorAmount;
  tax: MinorAmount;
  gross: MinorAmount;
  previousBalance: MinorAmount;
  paymentsSince: MinorAmount;
  creditsSince: MinorAmount;
  totalDue: MinorAmount;
  reverseCharge: boolean;
  taxes: BillTax[];
  notes: string[];
  reason: string | null;
}

/** What an issued document has beyond its content. */
export interface IssuedFacts {
  id: string;
  number: string;
  paymentReference: string;
  issuerId: string;
  issuedAt: Date;
  state: string;
  stateChangedAt: Date;
  creditedInvoice: { id: string; number: string } | null;
  /** What was applied to it: credit notes' and payments' allocations. */
  applied: Array<{ entryId: string; amount: MinorAmount; kind: string; documentId: string | null; at: Date }>;
}

export function documentOfDraft(
  draft: Draft,
  reason: string | null = null,
): { document: BillDocument; lines: BillLine[] } {
  return {
    document: {
      kind: draft.kind,
      billingAccountId: draft.accountId,
      currency: draft.currency,
      usagePeriod: draft.usagePeriod,
      advancePeriod: draft.advancePeriod,
      issueDate: draft.issueDate,
      dueDate: draft.dueDate,
      timeZone: draft.timeZone,
      net: draft.net,
      tax: draft.tax,
      gross: draft.gross,
      previousBalance: draft.previousBalance,
      paymentsSince: draft.paymentsSince,
      creditsSince: draft.creditsSince,
      totalDue: draft.totalDue,
      reverseCharge: draft.reverseCharge,
      taxes: draft.taxes.map((tax) => ({ ...tax })),
      notes: draft.notes,
      reason,
    },
    lines: draft.lines.map((line) => {
      return {
        id: line.key,
        key: line.key,
        kind: line.kind,
        productId: line.productId,
        priceId: line.priceId,
        oneTimeChargeId: line.oneTimeChargeId,
        usageSummaryId: line.summary?.id ?? null,
        fromSeq: line.summary?.fromSeq ?? null,
        toSeq: line.summary?.toSeq ?? null,
        name: line.name,
        period: line.period,
        days: line.days,
        basisDays: line.basisDays,
        amount: line.amount,
        discount: line.discount,
        charge: line.charge,
        net: line.net,
        lineTax: line.lineTax,
        taxIncluded: line.taxIncluded,
        taxClass: line.taxClass,
        taxCategory: line.taxCategory,
        taxRate: line.taxRate,
        exemptionReason: line.exemptionReason,
        late: line.late,
        usage: line.usage,
        promotions: line.promotions,
        creditedLineId: null,
      };
    }),
  };
}

type InvoiceRow = typeof invoices.$inferSelect;

/** A stored amount (decimal.js, exact) in the currency's minor units; numeric(24, 6) holds no more decimals. */
function minorOf(value: Money, decimals: number): MinorAmount {
  return MinorAmount.parse(value.toFixed(), decimals);
}
type LineRow = typeof invoiceLines.$inferSelect;

const ms = (date: Date | null) => (date === null ? null : date.getTime());

export function documentOfRow(row: InvoiceRow): BillDocument {
  const decimals = currencyMinorUnits(row.currency);
  const minor = (value: Money) => minorOf(value, decimals);
  return {
    kind: row.kind as DocumentKind,
    billingAccountId: row.billingAccountId,
    currency: row.currency,
    usagePeriod:
      row.usagePeriod === null || row.periodStart === null || row.periodEnd === null
        ? null
        : { key: row.usagePeriod, startMs: row.periodStart.getTime(), endMs: row.periodEnd.getTime() },
    advancePeriod:
      row.advanceStart === null || row.advanceEnd === null
        ? null
        : { startMs: row.advanceStart.getTime(), endMs: row.advanceEnd.getTime() },
    issueDate: row.issueDate,
    dueDate: row.dueDate,
    timeZone: row.timeZone,
    net: minor(row.net),
    tax: minor(row.tax),
    gross: minor(row.gross),
    previousBalance: minor(row.previousBalance),
    paymentsSince: minor(row.paymentsSince),
    creditsSince: minor(row.creditsSince),
    totalDue: minor(row.totalDue),
    reverseCharge: row.reverseCharge,
    taxes: row.taxes.map((tax) => ({
      category: tax.category,
      rate: new Money(tax.rate),
      taxable: MinorAmount.parse(tax.taxable, decimals),
      tax: MinorAmount.parse(tax.tax, decimals),
      exemptionReason: tax.exemptionReason,
    })),
    notes: row.notes,
    reason: row.reason,
  };
}

export function lineOfRow(row: LineRow, currency: string): BillLine {
  const decimals = currencyMinorUnits(currency);
  const minor = (value: Money) => minorOf(value, decimals);
  const startMs = ms(row.periodStart);
  const endMs = ms(row.periodEnd);
  return {
    id: row.id,
    key: row.key,
    kind: row.kind,
    productId: row.productId,
    priceId: row.priceId,
    oneTimeChargeId: row.oneTimeChargeId,
    usageSummaryId: row.usageSummaryId,
    fromSeq: row.fromSeq,
    toSeq: row.toSeq,
    name: row.name,
    period: startMs === null || endMs === null ? null : { startMs, endMs },
    days: row.days,
    basisDays: row.basisDays,
    amount: minor(row.amount),
    discount: minor(row.discount),
    charge: minor(row.charge),
    net: minor(row.net),
    lineTax: minor(row.lineTax),
    taxIncluded: row.taxIncluded,
    taxClass: row.taxClass,
    taxCategory: row.taxCategory as TaxCategory,
    taxRate: new Money(row.taxRate),
    exemptionReason: row.exemptionReason,
    late: row.late,
    usage: row.usage ?? null,
    promotions: row.promotions.map((promotion) => ({
      id: promotion.id,
      name: promotion.name,
      amount: MinorAmount.parse(promotion.amount, decimals),
    })),
    creditedLineId: row.creditedLineId,
  };
}

export type AllocationRow = typeof allocations.$inferSelect;

// ---------------------------------------------------------------------------------------------------------------
// TMF678 shapes

/** Money as each API family spells it: TMF resources a JSON number, the native API decimal text (API.md). */
export type MoneyStyle = "tmf" | "native";

const ACCOUNT_PATH = "/tmf-api/accountManagement/v4/billingAccount";
const PRODUCT_PATH = "/tmf-api/productInventory/v4/product";
export const CUSTOMER_BILL_PATH = "/tmf-api/customerBillManagement/v4/customerBill";
export const PAYMENT_PATH = "/tmf-api/paymentManagement/v4/payment";
export const BILLING_RATE_PATH = "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate";
export const USAGE_PATH = "/tmf-api/usageManagement/v4/usage";

function moneyOf(style: MoneyStyle, currency: string) {
  return style === "tmf"
    ? (value: MinorAmount) => ({ unit: currency, value: amountToJsonNumber(value.toMoney()) })
    : (value: MinorAmount) => ({ unit: currency, value: value.toFixed() });
}

const iso = (instant: number) => new Date(instant).toISOString();

/** "2027-04-01" in Europe/Berlin → "2027-03-31T22:00:00.000Z". */
function localDayStart(date: string, timeZone: string): string {
  const [year, month, day] = date.split("-").map(Number) as [number, number, number];
  return iso(localMidnightUtc(timeZone, { year, month, day }));
}

const CATEGORY: Record<DocumentKind, string> = {
  cycle: "normal",
  interim: "interim",
  final: "last",
  creditNote: "creditNote",
};

/** TMF678 CustomerBill: the document, its account summary and tax breakdown as extensions. */
export function presentBill(
  document: BillDocument,
  issuer: { id: string; name: string },
  style: MoneyStyle,
  issued: IssuedFacts | null,
) {
  const money = moneyOf(style, document.currency);
  const accountRef = {
    id: document.billingAccountId,
    href: `${ACCOUNT_PATH}/${document.billingAccountId}`,
    "@referredType": "BillingAccount",
  };
  let applied = MinorAmount.zero(document.gross.decimals);
  for (const entry of issued?.applied ?? []) applied = applied.plus(entry.amount);
  const remaining = document.gross.isPositive()
    ? document.gross.minus(applied)
    : MinorAmount.zero(document.gross.decimals);
  return {
    ...(issued === null
      ? {}
      : {
          id: issued.id,
          href: `${CUSTOMER_BILL_PATH}/${issued.id}`,
          billNo: issued.number,
          state: issued.state,
          lastUpdate: issued.stateChangedAt.toISOString(),
          paymentReference: issued.paymentReference,
        }),
    "@type": "CustomerBill" as const,
    category: CATEGORY[document.kind],
    runType: document.kind === "cycle" ? "onCycle" : "offCycle",
    /** TMF678 date-times: the start of the bill's day and of its due day in the account's zone. */
    billDate: localDayStart(document.issueDate, document.timeZone),
    ...(document.usagePeriod === null
      ? {}
      : {
          billingPeriod: {
            startDateTime: iso(document.usagePeriod.startMs),
            endDateTime: iso(document.usagePeriod.endMs),
          },
        }),
    ...(document.advancePeriod === null ? {} : { nextBillDate: iso(document.advancePeriod.endMs) }),
    paymentDueDate: localDayStart(document.dueDate, document.timeZone),
    billingAccount: accountRef,
    relatedParty: [{ id: issuer.id, name: issuer.name, role: "issuer", "@referredType": "Organization" }],
    /** What this document asks for (a credit note: what it gives back, negative). */
    amountDue: money(document.gross),
    remainingAmount: money(remaining),
    taxExcludedAmount: money(document.net),
    taxIncludedAmount: money(document.gross),
    taxItem: document.taxes.map((tax) => ({
      taxCategory: tax.category,
      taxRate: amountToJsonNumber(tax.rate),
      taxAmount: money(tax.tax),
    })),
    appliedPayment: (issued?.applied ?? [])
      .filter((entry) => entry.kind === "payment")
      // A payment's id is its ledger entry's.
      .map((entry) => ({
        appliedAmount: money(entry.amount),
        payment: { id: entry.entryId, href: `${PAYMENT_PATH}/${entry.entryId}` },
      })),
    /** Extensions: credit notes applied, the EN 16931 tax breakdown, the account summary, what the bill leaves out. */
    appliedCredit: (issued?.applied ?? [])
      .filter((entry) => entry.kind !== "payment")
      .map((entry) => ({
        appliedAmount: money(entry.amount),
        kind: entry.kind,
        ...(entry.documentId === null
          ? {}
          : { customerBill: { id: entry.documentId, href: `${CUSTOMER_BILL_PATH}/${entry.documentId}` } }),
      })),
    ...(issued?.creditedInvoice
      ? {
          creditedBill: {
            id: issued.creditedInvoice.id,
            href: `${CUSTOMER_BILL_PATH}/${issued.creditedInvoice.id}`,
            billNo: issued.creditedInvoice.number,
          },
        }
      : {}),
    taxBreakdown: document.taxes.map((tax) => ({
      taxCategory: tax.category,
      taxRate: tax.rate.toFixed(),
      taxableAmount: money(tax.taxable),
      taxAmount: money(tax.tax),
      ...(tax.exemptionReason === null ? {} : { exemptionReason: tax.exemptionReason }),
    })),
    reverseCharge: document.reverseCharge,
    previousBalance: money(document.previousBalance),
    paymentsSince: money(document.paymentsSince),
    creditsSince: money(document.creditsSince),
    /** The account's balance with this document: previous balance − payments − credits + this document. */
    totalDue: money(document.totalDue),
    ...(document.usagePeriod === null ? {} : { usagePeriod: document.usagePeriod.key }),
    ...(document.advancePeriod === null
      ? {}
      : {
          advancePeriod: {
            startDateTime: iso(document.advancePeriod.startMs),
            endDateTime: iso(document.advancePeriod.endMs),
          },
        }),
    ...(document.reason === null ? {} : { description: document.reason }),
    note: document.notes,
  };
}

/** TMF678 AppliedCustomerBillingRate: a line, traceable to its product, price, promotions, tax and usage. */
export function presentLine(
  line: BillLine,
  document: BillDocument,
  style: MoneyStyle,
  bill: { id: string; number: string } | null,
) {
  const money = moneyOf(style, document.currency);
  const characteristic: Array<{ name: string; value: string | number | boolean }> = [];
  if (line.days !== null && line.basisDays !== null) {
    characteristic.push({ name: "days", value: line.days }, { name: "periodDays", value: line.basisDays });
  }
  if (line.usage !== null) {
    characteristic.push(
      { name: "service", value: line.usage.service },
      { name: "usagePeriod", value: line.usage.usagePeriod },
      { name: "quantity", value: line.usage.quantity },
      { name: "chargedUnits", value: line.usage.chargedUnits },
    );
    if (line.usage.zone !== null) characteristic.push({ name: "zone", value: line.usage.zone });
  }
  const endMs = document.usagePeriod?.endMs ?? Date.parse(localDayStart(document.issueDate, document.timeZone));
  return {
    id: line.id,
    ...(bill === null ? {} : { href: `${BILLING_RATE_PATH}/${line.id}` }),
    "@type": "AppliedCustomerBillingRate" as const,
    type: line.kind,
    name: line.name,
    date: iso(line.period?.startMs ?? endMs),
    isBilled: bill !== null,
    ...(bill === null
      ? {}
      : { bill: { id: bill.id, href: `${CUSTOMER_BILL_PATH}/${bill.id}`, "@referredType": "CustomerBill" } }),
    ...(line.period === null
      ? {}
      : { periodCoverage: { startDateTime: iso(line.period.startMs), endDateTime: iso(line.period.endMs) } }),
    ...(line.productId === null
      ? {}
      : { product: { id: line.productId, href: `${PRODUCT_PATH}/${line.productId}`, "@referredType": "Product" } }),
    billingAccount: {
      id: document.billingAccountId,
      href: `${ACCOUNT_PATH}/${document.billingAccountId}`,
      "@referredType": "BillingAccount",
    },
    taxExcludedAmount: money(line.net),
    taxIncludedAmount: money(line.net.plus(line.lineTax)),
    appliedTax: [
      { taxCategory: line.taxCategory, taxRate: amountToJsonNumber(line.taxRate), taxAmount: money(line.lineTax) },
    ],
    characteristic,
    /** Extensions: the amount as priced, the promotions taken off it, where it comes from. */
    amount: money(line.amount),
    discount: money(line.discount),
    promotion: line.promotions.map((promotion) => ({
      id: promotion.id,
      name: promotion.name,
      amount: money(promotion.amount),
    })),
    taxIncluded: line.taxIncluded,
    taxClass: line.taxClass,
    ...(line.exemptionReason === null ? {} : { exemptionReason: line.exemptionReason }),
    late: line.late,
    ...(line.priceId === null ? {} : { productPrice: { id: line.priceId } }),
    ...(line.oneTimeChargeId === null || bill === null ? {} : { oneTimeCharge: { id: line.oneTimeChargeId } }),
    ...(line.usageSummaryId === null || bill === null
      ? {}
      : {
          usageSummary: {
            id: line.usageSummaryId,
            ...(line.fromSeq === null ? {} : { fromSeq: line.fromSeq }),
            ...(line.toSeq === null ? {} : { toSeq: line.toSeq }),
          },
          /** The itemised rated usage behind the line, page by page. */
          ratedUsage: { href: `${BILLING_RATE_PATH}/${line.id}/usage` },
        }),
    ...(line.creditedLineId === null
      ? {}
      : { creditedRate: { id: line.creditedLineId, href: `${BILLING_RATE_PATH}/${line.creditedLineId}` } }),
  };
}
