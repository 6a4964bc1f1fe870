import { type Static, Type } from "typebox";
import { DIRECTIONS, SERVICES } from "../catalog/index.js";

/** POST /api/v1/rating/quote: price one hypothetical event; nothing is charged. Native body: no unknown fields. */
export const QuoteRequestSchema = Type.Object(
  {
    /** A plan offering of the catalog; its tariff in `currency` prices the event. */
    plan: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    currency: Type.Optional(Type.String({ pattern: "^[A-Z]{3}$" })),
    /** A tariff of the catalog, by id. */
    tariff: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** A tariff in the catalog's own format (catalog/tariffs/*.json), validated like one. */
    inlineTariff: Type.Optional(Type.Object({}, { additionalProperties: true })),
    event: Type.Object(
      {
        recordType: Type.Enum(SERVICES),
        recordOpeningTime: Type.String({ format: "date-time" }),
        direction: Type.Optional(Type.Enum(DIRECTIONS)),
        duration: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
        calledNumber: Type.Optional(Type.String({ pattern: "^\\+[1-9]\\d{1,14}$" })),
        visitedNetwork: Type.Optional(Type.String({ pattern: "^\\d{5,6}$" })),
        dataVolumeUplink: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_099_511_627_776 })),
        dataVolumeDownlink: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_099_511_627_776 })),
        messages: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
      },
      { additionalProperties: false },
    ),
    /** Units of allowance left for this event (seconds, messages or bytes). */
    allowanceUnits: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    /** With `plan`: use the plan's full allowances that cover this event. */
    applyPlanAllowances: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type QuoteRequest = Static<typeof QuoteRequestSchema>;

const Part = Type.Object({
  rateId: Type.String(),
  band: Type.String(),
  fromUnit: Type.Number(),
  toUnit: Type.Number(),
  increments: Type.Integer(),
  incrementUnits: Type.Integer(),
  chargedUnits: Type.Integer(),
  price: Type.String(),
  per: Type.Integer(),
  amount: Type.String({
    description: "price × chargedUnits / per, before the event's single rounding (12 decimals shown)",
  }),
});

export const QuoteSchema = Type.Object({
  "@type": Type.Literal("RatingQuote"),
  tariff: Type.Object({ id: Type.String(), version: Type.Optional(Type.Integer()) }),
  currency: Type.String(),
  unit: Type.String(),
  quantity: Type.Integer(),
  roaming: Type.String(),
  destination: Type.Optional(Type.String()),
  allowanceUnits: Type.Integer(),
  chargedUnits: Type.Integer(),
  parts: Type.Array(Part),
  connectionFee: Type.String(),
  subtotal: Type.String(),
  minimumApplied: Type.Boolean(),
  maximumApplied: Type.Boolean(),
  maximumExceeded: Type.Boolean(),
  rounding: Type.Object({ mode: Type.String(), decimals: Type.Integer() }),
  total: Type.String(),
});
export type Quote = Static<typeof QuoteSchema>;
