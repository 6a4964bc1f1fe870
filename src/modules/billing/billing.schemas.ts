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
const TimePeriod = Type.Object({ startDateTime: Type.String(), endDateTime: Type.String() });
const Ref = Type.Object({
  id: Type.String(),
  href: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  "@referredType": Type.String(),
});
const AppliedTax = Type.Object({ taxCategory: Type.String(), taxRate: Type.Number(), taxAmount: NativeMoney });

export const BillLineSchema = Type.Object({
  id: Type.String(),
  "@type": Type.Literal("AppliedCustomerBillingRate"),
  /** recurring, oneTime, usage, credit (a spend credit) or unused (the unused part of an advance charge). */
  type: Type.String(),
  name: Type.String(),
  date: Type.String(),
  isBilled: Type.Boolean(),
  periodCoverage: Type.Optional(TimePeriod),
  product: Type.Optional(Ref),
  billingAccount: Ref,
  taxExcludedAmount: NativeMoney,
  taxIncludedAmount: NativeMoney,
  appliedTax: Type.Array(AppliedTax),
  characteristic: Type.Array(
    Type.Object({ name: Type.String(), value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]) }),
  ),
  /** Extensions: the amount as priced, the promotions taken off it, and whether it is priced with tax. */
  amount: NativeMoney,
  discount: NativeMoney,
  promotion: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), amount: NativeMoney })),
  taxIncluded: Type.Boolean(),
  exemptionReason: Type.Optional(Type.String()),
  late: Type.Boolean(),
});

export const BillPreviewSchema = Type.Object({
  "@type": Type.Literal("CustomerBill"),
  /** TMF678 category and run type: a cycle bill is "normal", "onCycle". */
  category: Type.String(),
  runType: Type.String(),
  billDate: Type.String(),
  billingPeriod: TimePeriod,
  nextBillDate: Type.Optional(Type.String()),
  paymentDueDate: Type.String(),
  billingAccount: Ref,
  relatedParty: Type.Array(
    Type.Object({ id: Type.String(), name: Type.String(), role: Type.String(), "@referredType": Type.String() }),
  ),
  amountDue: NativeMoney,
  remainingAmount: NativeMoney,
  taxExcludedAmount: NativeMoney,
  taxIncludedAmount: NativeMoney,
  taxItem: Type.Array(AppliedTax),
  /** Extensions: the EN 16931 tax breakdown, the account summary, and what the bill leaves out. */
  taxBreakdown: Type.Array(
    Type.Object({
      taxCategory: Type.String(),
      taxRate: Type.String(),
      taxableAmount: NativeMoney,
      taxAmount: NativeMoney,
      exemptionReason: Type.Optional(Type.String()),
    }),
  ),
  reverseCharge: Type.Boolean(),
  previousBalance: NativeMoney,
  paymentsSince: NativeMoney,
  creditsSince: NativeMoney,
  usagePeriod: Type.String(),
  advancePeriod: Type.Optional(TimePeriod),
  appliedCustomerBillingRate: Type.Array(BillLineSchema),
  note: Type.Array(Type.String()),
});
export type BillPreview = Static<typeof BillPreviewSchema>;
