import { type Static, Type } from "typebox";
import { RefSchema } from "../../platform/tmf-schemas.js";

/**
 * The catalog's own file format (catalog/*.json), validated on load, and the TMF620 shapes it is read as.
 * Amounts are decimal strings keyed by currency; ids are stable across versions.
 */

const Id = Type.String({ pattern: "^[a-z0-9][a-z0-9._-]{0,63}$" });
const Amount = Type.String({ pattern: "^-?\\d{1,12}(\\.\\d{1,20})?$" });
const Amounts = Type.Record(Type.String({ pattern: "^[A-Z]{3}$" }), Amount);
const Instant = Type.String({ format: "date-time" });
const Text = Type.String({ minLength: 1, maxLength: 500 });

export const SERVICES = ["voice", "sms", "data"] as const;
export const PAYMENT_TYPES = ["prepaid", "postpaid"] as const;
export const OFFERING_KINDS = ["plan", "addon", "fee"] as const;
export const ALLOWANCE_PERIODS = ["billCycle", "30days"] as const;

export const CatalogRootSchema = Type.Object(
  {
    id: Id,
    name: Text,
    description: Type.Optional(Text),
    /** Every sellable price names an amount in each of these currencies. */
    currencies: Type.Array(Type.String({ pattern: "^[A-Z]{3}$" }), { minItems: 1, uniqueItems: true }),
    categories: Type.Array(
      Type.Object(
        { id: Id, name: Text, description: Type.Optional(Text), parent: Type.Optional(Id) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The VAT category codes of EN 16931 (UNTDID 5305) a tax class or rate can carry. */
export const VAT_CATEGORIES = ["S", "Z", "E", "O", "AE"] as const;
/** Categories that tax at 0 and, per EN 16931 (BR-E-10, BR-O-10, BR-AE-10), say why on the invoice. */
export const EXEMPT_CATEGORIES = ["E", "O", "AE"] as const;
const VatCategory = Type.Enum(VAT_CATEGORIES);
const ExemptionReason = Type.String({ minLength: 1, maxLength: 300 });

export const TaxRateSchema = Type.Object(
  {
    jurisdiction: Type.String({ pattern: "^[A-Z]{2}(-[A-Z0-9]{1,3})?$" }),
    /** A fraction: "0.19". */
    rate: Amount,
    /** The first day the rate applies (a calendar date, "YYYY-MM-DD"); omitted, since always. */
    validFrom: Type.Optional(Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}$" })),
    /** The rate's own category where it differs from the class's (the Canary Islands are outside EU VAT: O). */
    category: Type.Optional(VatCategory),
    /** Why a rate of category E, O or AE is not taxed, where the class's reason does not fit it. */
    exemptionReason: Type.Optional(ExemptionReason),
  },
  { additionalProperties: false },
);

export const TaxClassSchema = Type.Object(
  {
    id: Id,
    name: Text,
    /** The EN 16931 VAT category of the class's rates: S standard, Z zero, E exempt, O outside scope, AE reverse charge. */
    category: VatCategory,
    /** Required for categories E, O and AE (EN 16931 BR-E-10, BR-O-10, BR-AE-10): the text printed on the invoice. */
    exemptionReason: Type.Optional(ExemptionReason),
    /**
     * VAT (or sales tax) by jurisdiction. A jurisdiction may list several rates with different `validFrom`: the one
     * that applies on a day is the latest that started on or before it.
     */
    rates: Type.Array(TaxRateSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const SpecificationSchema = Type.Object(
  {
    id: Id,
    name: Text,
    description: Type.Optional(Text),
    brand: Type.Optional(Text),
    /** The resources a product of this specification needs from inventory. */
    resources: Type.Optional(Type.Array(Type.Enum(["SIMCard", "MSISDN"]), { uniqueItems: true })),
  },
  { additionalProperties: false },
);

export const AllowanceSchema = Type.Object(
  {
    id: Id,
    service: Type.Enum(SERVICES),
    /** Seconds (voice), messages (sms) or bytes (data) per period. */
    units: Type.Integer({ minimum: 1 }),
    period: Type.Enum(ALLOWANCE_PERIODS),
    /** Destinations of the plan's tariff the allowance covers; omitted, all outgoing home usage. */
    destinations: Type.Optional(Type.Array(Id, { minItems: 1, uniqueItems: true })),
    /** Roaming zones the allowance covers (roaming packs); omitted, home only. */
    roaming: Type.Optional(Type.Array(Id, { minItems: 1, uniqueItems: true })),
    /** Unused units carried into the next period, up to this many. */
    rolloverMaxUnits: Type.Optional(Type.Integer({ minimum: 1 })),
    /** One bucket for all lines of the billing account (TMF654 isShared). */
    shared: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const PRICE_BILLING = ["advance", "arrears"] as const;
/** Why a line is suspended; a recurring price names the reasons for which suspended days are still charged. */
export const SUSPENSION_REASONS = ["customerRequest", "dunning", "nonRenewal", "fraud"] as const;
export type PriceBilling = (typeof PRICE_BILLING)[number];
export type SuspensionReason = (typeof SUSPENSION_REASONS)[number];

export const PriceSchema = Type.Object(
  {
    id: Id,
    name: Text,
    type: Type.Enum(["recurring", "oneTime"]),
    /** Recurring prices: charged per bill cycle (postpaid) or per 30-day period (prepaid). */
    period: Type.Optional(Type.Enum(ALLOWANCE_PERIODS)),
    amounts: Amounts,
    taxClass: Id,
    /** Recurring prices only: charged for the coming period (advance) or the one that ended (arrears). Default advance. */
    billing: Type.Optional(Type.Enum(PRICE_BILLING)),
    /** The amounts include the tax (gross, as consumer prices are shown in the EU). Default false: net. */
    taxIncluded: Type.Optional(Type.Boolean()),
    /**
     * Recurring prices only: the suspension reasons for which suspended days are still charged. Default []: a
     * suspended day is not charged, whatever the reason.
     */
    chargedWhenSuspended: Type.Optional(Type.Array(Type.Enum(SUSPENSION_REASONS), { uniqueItems: true })),
  },
  { additionalProperties: false },
);

export const TermSchema = Type.Object(
  {
    id: Id,
    name: Text,
    durationMonths: Type.Integer({ minimum: 1, maximum: 60 }),
    /** Charged when the contract ends early, per month still to run. */
    earlyTerminationFeePerMonth: Amounts,
    taxClass: Id,
    /** The fee includes the tax. Default false: net. */
    taxIncluded: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const OfferingSchema = Type.Object(
  {
    id: Id,
    name: Text,
    description: Type.Optional(Text),
    kind: Type.Enum(OFFERING_KINDS),
    specification: Id,
    categories: Type.Array(Id, { uniqueItems: true }),
    /** Which accounts may buy it; omitted, both. */
    paymentTypes: Type.Optional(Type.Array(Type.Enum(PAYMENT_TYPES), { minItems: 1, uniqueItems: true })),
    /** Business-only offerings need an organization as the customer's party. */
    businessOnly: Type.Optional(Type.Boolean()),
    isSellable: Type.Boolean(),
    lifecycleStatus: Type.Enum(["active", "retired"]),
    validFrom: Instant,
    validTo: Type.Optional(Instant),
    /** Plans: the tariff that prices usage, per currency. */
    tariffs: Type.Optional(Type.Record(Type.String({ pattern: "^[A-Z]{3}$" }), Id)),
    allowances: Type.Optional(Type.Array(AllowanceSchema)),
    prices: Type.Array(PriceSchema),
    terms: Type.Optional(Type.Array(TermSchema)),
    /** Add-ons: the plans they can be added to; omitted, any plan. */
    compatiblePlans: Type.Optional(Type.Array(Id, { minItems: 1, uniqueItems: true })),
  },
  { additionalProperties: false },
);

export const PromotionSchema = Type.Object(
  {
    id: Id,
    name: Text,
    description: Type.Optional(Text),
    /** Percentage taken off the named recurring prices, for this many bill cycles; or else amountOff. */
    percentOff: Type.Optional(Amount),
    /** An amount per catalog currency taken off each named recurring price per cycle (never below 0); or else percentOff. */
    amountOff: Type.Optional(Amounts),
    cycles: Type.Integer({ minimum: 1, maximum: 60 }),
    prices: Type.Array(Id, { minItems: 1, uniqueItems: true }),
    validFrom: Instant,
    validTo: Type.Optional(Instant),
  },
  { additionalProperties: false },
);

const CountryCode = Type.String({ pattern: "^[A-Z]{2}$" });
const SeriesPrefix = Type.String({ pattern: "^[A-Z0-9-]{1,12}$" });

/**
 * A company that issues invoices: the seller on every bill of the accounts whose tax jurisdiction is in one of its
 * countries. Its series prefixes start the numbers of its invoices and credit notes (one series per entity and kind).
 */
export const IssuingEntitySchema = Type.Object(
  {
    id: Id,
    name: Text,
    address: Type.Object(
      {
        street: Text,
        city: Type.String({ minLength: 1, maxLength: 100 }),
        postalCode: Type.String({ minLength: 1, maxLength: 20 }),
        country: CountryCode,
      },
      { additionalProperties: false },
    ),
    /** The seller's VAT ID (EN 16931 BT-31), prefix included: "DE123456789". */
    vatId: Type.String({ minLength: 3, maxLength: 16 }),
    /** Where the entity is established (ISO 3166-1 alpha-2). */
    country: CountryCode,
    /** The IANA zone of its books: an invoice's year and issue date are read in it. */
    timeZone: Type.String({ minLength: 1, maxLength: 64 }),
    /** The countries whose accounts it bills (ISO 3166-1 alpha-2); omitted, its own country only. */
    countries: Type.Optional(Type.Array(CountryCode, { minItems: 1, uniqueItems: true })),
    series: Type.Object({ invoice: SeriesPrefix, creditNote: SeriesPrefix }, { additionalProperties: false }),
    /** The account customers pay into, printed on bills and credited by direct debits (IBAN checked mod 97). */
    bankAccount: Type.Optional(
      Type.Object(
        {
          iban: Type.String({ minLength: 15, maxLength: 34 }),
          bic: Type.Optional(Type.String({ minLength: 8, maxLength: 11 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Its SEPA creditor identifier (EPC262-08), which direct debit files need; absent: it collects no debits. */
    sepaCreditorId: Type.Optional(Type.String({ minLength: 8, maxLength: 35 })),
  },
  { additionalProperties: false },
);

/** What a dunning step does (DESIGN.md §10 "Dunning is data"). */
export const DUNNING_ACTIONS = ["reminder", "outgoingBarring", "fullBarring", "suspension", "termination"] as const;
export type DunningAction = (typeof DUNNING_ACTIONS)[number];
const DecimalText = Type.String({ pattern: "^\\d{1,12}(\\.\\d{1,6})?$" });

/** One step of a dunning policy: what is done once an account's oldest undisputed overdue bill is so many days late. */
export const DunningStepSchema = Type.Object(
  {
    id: Id,
    action: Type.Enum(DUNNING_ACTIONS),
    daysPastDue: Type.Integer({ minimum: 0, maximum: 3650 }),
    /** A reminder's fee, in the policy's currency: outside the scope of VAT, a receivable entry of its own. */
    fee: Type.Optional(DecimalText),
    /** The later steps this written notice announces (TKG § 61: a barring needs two weeks' notice that names it). */
    announces: Type.Optional(Type.Array(Type.Enum(DUNNING_ACTIONS), { minItems: 1, uniqueItems: true })),
  },
  { additionalProperties: false },
);

/**
 * A dunning policy: the steps for the accounts of one jurisdiction, segment (the customer's party: Individual or
 * Organization; omitted, both) and currency. Versioned with the catalog and checked when published, against the law
 * of its jurisdiction where the engine knows it (BARRING_LAW in catalog-load.ts).
 */
export const DunningPolicySchema = Type.Object(
  {
    id: Id,
    name: Text,
    jurisdiction: CountryCode,
    segment: Type.Optional(Type.Union([Type.Literal("Individual"), Type.Literal("Organization")])),
    currency: Type.String({ pattern: "^[A-Z]{3}$" }),
    /** No case opens for less overdue than this. */
    minimumOverdue: DecimalText,
    /** No barring, suspension or termination step for less undisputed overdue than this. */
    barringMinimum: DecimalText,
    /** The one-time offering charged on the next invoice when service comes back after a barring (absent: none). */
    reconnectionFee: Type.Optional(Id),
    steps: Type.Array(DunningStepSchema, { minItems: 1, maxItems: 20 }),
  },
  { additionalProperties: false },
);

export type CatalogRoot = Static<typeof CatalogRootSchema>;
export type TaxClass = Static<typeof TaxClassSchema>;
export type Specification = Static<typeof SpecificationSchema>;
export type Offering = Static<typeof OfferingSchema>;
export type Promotion = Static<typeof PromotionSchema>;
export type Allowance = Static<typeof AllowanceSchema>;
export type Price = Static<typeof PriceSchema>;
export type TaxRate = Static<typeof TaxRateSchema>;
export type VatCategory = (typeof VAT_CATEGORIES)[number];
export type IssuingEntity = Static<typeof IssuingEntitySchema>;
export type DunningPolicy = Static<typeof DunningPolicySchema>;
export type DunningStep = Static<typeof DunningStepSchema>;

// --- TMF620 read shapes ---

const TimePeriod = Type.Object({
  startDateTime: Type.Optional(Type.String()),
  endDateTime: Type.Optional(Type.String()),
});
const Versioned = {
  id: Type.String(),
  href: Type.String(),
  version: Type.String(),
  lastUpdate: Type.String(),
  lifecycleStatus: Type.String(),
  validFor: TimePeriod,
};

export const ProductOfferingSchema = Type.Object({
  ...Versioned,
  "@type": Type.Literal("ProductOffering"),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  isBundle: Type.Boolean(),
  isSellable: Type.Boolean(),
  productSpecification: RefSchema,
  category: Type.Array(RefSchema),
  productOfferingPrice: Type.Array(RefSchema),
  productOfferingTerm: Type.Array(
    Type.Object({ name: Type.String(), duration: Type.Object({ amount: Type.Integer(), units: Type.String() }) }),
  ),
  /** Extensions: what kind of product, who may buy it, what it includes. */
  offeringKind: Type.String(),
  paymentTypes: Type.Array(Type.String()),
  businessOnly: Type.Boolean(),
  allowance: Type.Array(
    Type.Object({
      id: Type.String(),
      service: Type.String(),
      units: Type.Integer(),
      period: Type.String(),
      destinations: Type.Optional(Type.Array(Type.String())),
      roaming: Type.Optional(Type.Array(Type.String())),
      rolloverMaxUnits: Type.Optional(Type.Integer()),
      isShared: Type.Boolean(),
    }),
  ),
  compatiblePlans: Type.Optional(Type.Array(RefSchema)),
});

export const ProductOfferingPriceSchema = Type.Object({
  ...Versioned,
  "@type": Type.Literal("ProductOfferingPrice"),
  name: Type.String(),
  priceType: Type.String(),
  recurringChargePeriodType: Type.Optional(Type.String()),
  recurringChargePeriodLength: Type.Optional(Type.Integer()),
  price: Type.Optional(Type.Object({ unit: Type.String(), value: Type.Number() })),
  percentage: Type.Optional(Type.Number()),
  applicationDuration: Type.Optional(Type.Integer()),
  /** TaxItem: taxCategory is the EN 16931 VAT category code; jurisdiction and taxClass are extensions. */
  tax: Type.Array(
    Type.Object({
      taxCategory: Type.String(),
      taxRate: Type.Number(),
      jurisdiction: Type.String(),
      taxClass: Type.String(),
    }),
  ),
  productOffering: Type.Optional(RefSchema),
});

export const ProductSpecificationSchema = Type.Object({
  ...Versioned,
  "@type": Type.Literal("ProductSpecification"),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  brand: Type.Optional(Type.String()),
  resourceSpecification: Type.Array(
    Type.Object({ id: Type.String(), name: Type.String(), "@referredType": Type.String() }),
  ),
});

export const CategorySchema = Type.Object({
  ...Versioned,
  "@type": Type.Literal("Category"),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  isRoot: Type.Boolean(),
  parentId: Type.Optional(Type.String()),
  productOffering: Type.Array(RefSchema),
});

export const CatalogSchema = Type.Object({
  ...Versioned,
  "@type": Type.Literal("Catalog"),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  category: Type.Array(RefSchema),
});
