import { type Static, Type } from "typebox";

/**
 * POST /api/v1/billing/preview: the bill an account would get, in the TMF678 CustomerBill shape without `id` or
 * `billNo` (nothing is issued) and its lines in the AppliedCustomerBillingRate shape. Native money: decimal text.
 */
export const PreviewRequestSchema = Type.Object(
  {
    billingAccountId: Type.String({ minLength: 1, maxLength: 64 }),
    /** "current": the bill at the end of the period running now; "last": the one at its start. */
    period: Type.Optional(Type.Enum(["current", "last"])),
  },
  { additionalProperties: false },
);
export type PreviewRequest = Static<typeof PreviewRequestSchema>;

const NativeMoney = Type.Object({ unit: Type.String(), value: Type.String() });
const TmfMoney = Type.Object({ unit: Type.String(), value: Type.Number() });
const TimePeriod = Type.Object({ startDateTime: Type.String(), endDateTime: Type.String() });
const Ref = Type.Object({
  id: Type.String(),
  href: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  "@referredType": Type.String(),
});
const Link = Type.Object({ id: Type.String(), href: Type.Optional(Type.String()) });

/** A bill line (TMF678 AppliedCustomerBillingRate) with money in either API family's shape. */
function billLineSchema(money: typeof NativeMoney | typeof TmfMoney) {
  const AppliedTax = Type.Object({ taxCategory: Type.String(), taxRate: Type.Number(), taxAmount: money });
  return Type.Object({
    id: Type.String(),
    href: Type.Optional(Type.String()),
    "@type": Type.Literal("AppliedCustomerBillingRate"),
    /** recurring, oneTime, usage, credit (a spend credit) or unused (the unused part of an advance charge). */
    type: Type.String(),
    name: Type.String(),
    date: Type.String(),
    isBilled: Type.Boolean(),
    bill: Type.Optional(Ref),
    periodCoverage: Type.Optional(TimePeriod),
    product: Type.Optional(Ref),
    billingAccount: Ref,
    taxExcludedAmount: money,
    taxIncludedAmount: money,
    appliedTax: Type.Array(AppliedTax),
    characteristic: Type.Array(
      Type.Object({ name: Type.String(), value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]) }),
    ),
    /** Extensions: the amount as priced, the promotions taken off it, its tax class, and where it comes from. */
    amount: money,
    discount: money,
    promotion: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), amount: money })),
    taxIncluded: Type.Boolean(),
    taxClass: Type.String(),
    exemptionReason: Type.Optional(Type.String()),
    late: Type.Boolean(),
    productPrice: Type.Optional(Type.Object({ id: Type.String() })),
    oneTimeCharge: Type.Optional(Type.Object({ id: Type.String() })),
    usageSummary: Type.Optional(
      Type.Object({ id: Type.String(), fromSeq: Type.Optional(Type.Integer()), toSeq: Type.Optional(Type.Integer()) }),
    ),
    ratedUsage: Type.Optional(Type.Object({ href: Type.String() })),
    creditedRate: Type.Optional(Link),
  });
}

/** A bill (TMF678 CustomerBill) with money in either API family's shape. */
function customerBillSchema(money: typeof NativeMoney | typeof TmfMoney) {
  const AppliedTax = Type.Object({ taxCategory: Type.String(), taxRate: Type.Number(), taxAmount: money });
  return Type.Object({
    id: Type.Optional(Type.String()),
    href: Type.Optional(Type.String()),
    billNo: Type.Optional(Type.String()),
    /** validated, sent, partiallyPaid, settled, onHold. */
    state: Type.Optional(Type.String()),
    lastUpdate: Type.Optional(Type.String()),
    /** ISO 11649 creditor reference to quote with the payment. */
    paymentReference: Type.Optional(Type.String()),
    "@type": Type.Literal("CustomerBill"),
    /** TMF678 category (normal, interim, last, creditNote) and run type (onCycle, offCycle). */
    category: Type.String(),
    runType: Type.String(),
    billDate: Type.String(),
    billingPeriod: Type.Optional(TimePeriod),
    nextBillDate: Type.Optional(Type.String()),
    paymentDueDate: Type.String(),
    billingAccount: Ref,
    relatedParty: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String(), role: Type.String(), "@referredType": Type.String() }),
    ),
    amountDue: money,
    remainingAmount: money,
    taxExcludedAmount: money,
    taxIncludedAmount: money,
    taxItem: Type.Array(AppliedTax),
    appliedPayment: Type.Array(Type.Object({ appliedAmount: money, payment: Link })),
    /** Extensions: credit notes applied, the credited bill, the EN 16931 tax breakdown, the account summary. */
    appliedCredit: Type.Array(
      Type.Object({ appliedAmount: money, kind: Type.String(), customerBill: Type.Optional(Link) }),
    ),
    creditedBill: Type.Optional(Type.Object({ id: Type.String(), href: Type.String(), billNo: Type.String() })),
    taxBreakdown: Type.Array(
      Type.Object({
        taxCategory: Type.String(),
        taxRate: Type.String(),
        taxableAmount: money,
        taxAmount: money,
        exemptionReason: Type.Optional(Type.String()),
      }),
    ),
    reverseCharge: Type.Boolean(),
    previousBalance: money,
    paymentsSince: money,
    creditsSince: money,
    totalDue: money,
    usagePeriod: Type.Optional(Type.String()),
    advancePeriod: Type.Optional(TimePeriod),
    description: Type.Optional(Type.String()),
    note: Type.Array(Type.String()),
  });
}

export const BillLineSchema = billLineSchema(NativeMoney);
export const AppliedCustomerBillingRateSchema = billLineSchema(TmfMoney);
export const CustomerBillSchema = customerBillSchema(TmfMoney);

export const BillPreviewSchema = Type.Object({
  ...customerBillSchema(NativeMoney).properties,
  appliedCustomerBillingRate: Type.Array(BillLineSchema),
});
export type BillPreview = Static<typeof BillPreviewSchema>;
