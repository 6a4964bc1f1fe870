import { type Static, Type } from "typebox";
import { mergePatchSchema } from "../../platform/tmf.js";
import {
  boundedArray,
  MoneySchema,
  multilineText,
  RefInputSchema,
  RefSchema,
  TimePeriodSchema,
  text,
} from "../../platform/tmf-schemas.js";
import { SHORT_TEXT_MAX_LENGTH, TEXT_MAX_LENGTH } from "../../shared/limits.js";

/** Request and response contracts of TMF632 (party), TMF629 (customer) and TMF666 (billing account). */

export const INDIVIDUAL_STATUSES = ["initialized", "validated", "deceased"] as const;
export const ORGANIZATION_STATUSES = ["initialized", "validated", "closed"] as const;
export const CUSTOMER_STATUSES = ["initialized", "approved", "suspended", "closed"] as const;
export const ACCOUNT_STATES = ["active", "suspended", "closed"] as const;
export const ACCOUNT_TYPES = ["prepaid", "postpaid"] as const;

const enumOf = <const V extends string[]>(values: readonly [...V]) => Type.Enum(values);

export const MediumCharacteristicSchema = Type.Object({
  contactType: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  emailAddress: Type.Optional(text(254)),
  phoneNumber: Type.Optional(text(16)),
  faxNumber: Type.Optional(text(16)),
  street1: Type.Optional(text()),
  street2: Type.Optional(text()),
  city: Type.Optional(text()),
  postCode: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  stateOrProvince: Type.Optional(text()),
  country: Type.Optional(text(2)),
  socialNetworkId: Type.Optional(text()),
});

export const ContactMediumSchema = Type.Object({
  mediumType: enumOf(["email", "phone", "mobile", "fax", "postalAddress", "socialNetwork"] as const),
  preferred: Type.Optional(Type.Boolean()),
  characteristic: MediumCharacteristicSchema,
  validFor: Type.Optional(TimePeriodSchema),
});
export type ContactMedium = Static<typeof ContactMediumSchema>;

export const IdentificationSchema = Type.Object({
  identificationId: text(SHORT_TEXT_MAX_LENGTH),
  identificationType: text(SHORT_TEXT_MAX_LENGTH),
  issuingAuthority: Type.Optional(text()),
  issuingDate: Type.Optional(Type.String({ format: "date-time" })),
  validFor: Type.Optional(TimePeriodSchema),
});
export type Identification = Static<typeof IdentificationSchema>;

// --- Individual (TMF632) ---

const individualFields = {
  givenName: text(),
  familyName: text(),
  middleName: Type.Optional(text()),
  title: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  gender: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  birthDate: Type.Optional(Type.String({ format: "date" })),
  nationality: Type.Optional(text(2)),
  status: Type.Optional(enumOf(INDIVIDUAL_STATUSES)),
  contactMedium: Type.Optional(boundedArray(ContactMediumSchema)),
  individualIdentification: Type.Optional(boundedArray(IdentificationSchema)),
};

export const IndividualCreateSchema = Type.Object(individualFields);
export type IndividualCreate = Static<typeof IndividualCreateSchema>;
export const IndividualPatchSchema = mergePatchSchema(IndividualCreateSchema, [
  "middleName",
  "title",
  "gender",
  "birthDate",
  "nationality",
  "contactMedium",
  "individualIdentification",
]);
export type IndividualPatch = Partial<Record<keyof IndividualCreate, unknown>>;

export const IndividualSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Individual"),
  ...individualFields,
  fullName: Type.String(),
  status: enumOf(INDIVIDUAL_STATUSES),
  contactMedium: Type.Array(ContactMediumSchema),
  individualIdentification: Type.Array(IdentificationSchema),
});
export type Individual = Static<typeof IndividualSchema>;

// --- Organization (TMF632) ---

const organizationFields = {
  tradingName: text(),
  name: Type.Optional(text()),
  isLegalEntity: Type.Optional(Type.Boolean()),
  organizationType: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  status: Type.Optional(enumOf(ORGANIZATION_STATUSES)),
  contactMedium: Type.Optional(boundedArray(ContactMediumSchema)),
  organizationIdentification: Type.Optional(boundedArray(IdentificationSchema)),
};

export const OrganizationCreateSchema = Type.Object(organizationFields);
export type OrganizationCreate = Static<typeof OrganizationCreateSchema>;
export const OrganizationPatchSchema = mergePatchSchema(OrganizationCreateSchema, [
  "name",
  "isLegalEntity",
  "organizationType",
  "contactMedium",
  "organizationIdentification",
]);
export type OrganizationPatch = Partial<Record<keyof OrganizationCreate, unknown>>;

export const OrganizationSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Organization"),
  ...organizationFields,
  status: enumOf(ORGANIZATION_STATUSES),
  contactMedium: Type.Array(ContactMediumSchema),
  organizationIdentification: Type.Array(IdentificationSchema),
});
export type Organization = Static<typeof OrganizationSchema>;

// --- Customer (TMF629) ---

const customerFields = {
  name: text(),
  status: Type.Optional(enumOf(CUSTOMER_STATUSES)),
  statusReason: Type.Optional(multilineText(TEXT_MAX_LENGTH)),
  engagedParty: RefInputSchema,
  contactMedium: Type.Optional(boundedArray(ContactMediumSchema)),
  validFor: Type.Optional(TimePeriodSchema),
};

export const CustomerCreateSchema = Type.Object(customerFields);
export type CustomerCreate = Static<typeof CustomerCreateSchema>;
export const CustomerPatchSchema = mergePatchSchema(CustomerCreateSchema, [
  "statusReason",
  "contactMedium",
  "validFor",
]);
export type CustomerPatch = Partial<Record<keyof CustomerCreate, unknown>>;

export const CustomerSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Customer"),
  ...customerFields,
  status: enumOf(CUSTOMER_STATUSES),
  engagedParty: RefSchema,
  contactMedium: Type.Array(ContactMediumSchema),
  account: Type.Array(RefSchema),
});
export type Customer = Static<typeof CustomerSchema>;

// --- Billing account (TMF666) ---

export const AccountContactSchema = Type.Object({
  contactType: text(SHORT_TEXT_MAX_LENGTH),
  contactName: Type.Optional(text()),
  partyRoleType: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  contactMedium: Type.Optional(boundedArray(ContactMediumSchema)),
  validFor: Type.Optional(TimePeriodSchema),
});
export type AccountContact = Static<typeof AccountContactSchema>;

const billingAccountFields = {
  name: text(),
  description: Type.Optional(multilineText(TEXT_MAX_LENGTH)),
  relatedParty: Type.Array(RefInputSchema, { minItems: 1, maxItems: 10 }),
  accountType: Type.Optional(enumOf(ACCOUNT_TYPES)),
  state: Type.Optional(enumOf(ACCOUNT_STATES)),
  currency: Type.String({ pattern: "^[A-Z]{3}$" }),
  billCycleDay: Type.Optional(Type.Integer({ minimum: 1, maximum: 31 })),
  paymentTermsDays: Type.Optional(Type.Integer({ minimum: 0, maximum: 365 })),
  timeZone: Type.Optional(text(64)),
  taxJurisdiction: Type.String({ pattern: "^[A-Z]{2}(-[A-Z0-9]{1,3})?$" }),
  creditLimit: Type.Optional(MoneySchema),
  billLimit: Type.Optional(MoneySchema),
  contact: Type.Optional(boundedArray(AccountContactSchema)),
  /** A business account's VAT identification number as written ("DE123456789"; an extension of TMF666). */
  vatId: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
};

export const BillingAccountCreateSchema = Type.Object(billingAccountFields);
export type BillingAccountCreate = Static<typeof BillingAccountCreateSchema>;
/**
 * What a client may POST (TMF666 makes only `name` and `relatedParty` mandatory): currency and tax jurisdiction
 * default to the operator's (BSS_DEFAULT_CURRENCY, BSS_DEFAULT_TAX_JURISDICTION), and the related party may be
 * the Individual or Organization itself, whose customer is found or made. The model completes it into a create.
 */
export const BillingAccountRequestSchema = Type.Object({
  ...billingAccountFields,
  currency: Type.Optional(billingAccountFields.currency),
  taxJurisdiction: Type.Optional(billingAccountFields.taxJurisdiction),
});
export const BillingAccountPatchSchema = mergePatchSchema(BillingAccountCreateSchema, [
  "description",
  "creditLimit",
  "billLimit",
  "contact",
  "vatId",
]);
export type BillingAccountPatch = Partial<Record<keyof BillingAccountCreate, unknown>>;

export const BillingAccountSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("BillingAccount"),
  ...billingAccountFields,
  relatedParty: Type.Array(RefSchema),
  accountType: enumOf(ACCOUNT_TYPES),
  state: enumOf(ACCOUNT_STATES),
  /** The cycle day and zone in effect now (a change waits for the period boundary: pendingBillCycle). */
  billCycleDay: Type.Integer(),
  paymentTermsDays: Type.Integer(),
  timeZone: Type.String(),
  contact: Type.Array(AccountContactSchema),
  /**
   * A change of cycle day or zone that takes effect at `effectiveDate` (the current period's end, a local date in the
   * zone in effect now); the period from there to the new cycle's first bill date is prorated. An extension.
   */
  pendingBillCycle: Type.Optional(
    Type.Object({
      billCycleDay: Type.Integer(),
      timeZone: Type.String(),
      effectiveDate: Type.String({ format: "date" }),
    }),
  ),
  /** When the current bill period ends and its bill is cut: a local date in the zone in effect now. */
  nextBillDate: Type.String({ format: "date" }),
  /** TMF666: what the account owes, the sum of its receivables ledger (positive: owed; negative: credit). */
  accountBalance: Type.Array(
    Type.Object({
      balanceType: Type.String(),
      amount: Type.Object({ unit: Type.String(), value: Type.Number() }),
      validFor: Type.Object({ startDateTime: Type.String() }),
    }),
  ),
  lastModified: Type.String({ format: "date-time" }),
});
export type BillingAccount = Static<typeof BillingAccountSchema>;
