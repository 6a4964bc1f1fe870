import { type Static, Type } from "typebox";

/**
 * The tariff format: what every usage event is priced with. It lives in the catalog's files and can be sent
 * inline to the quote endpoint. Amounts are decimal strings with at most 6 decimals (Redis holds
 * micro-units); quantities are whole units of the service: seconds (voice), messages (sms), bytes (data).
 */

const Decimal6 = Type.String({ pattern: "^\\d{1,12}(\\.\\d{1,20})?$", description: "a non-negative decimal amount" });
const Id = Type.String({ pattern: "^[a-z0-9][a-z0-9._-]{0,63}$" });
const ClockTime = Type.String({
  pattern: "^([01]\\d|2[0-3]):[0-5]\\d$|^24:00$",
  description: "HH:MM, 24:00 for the end of a day",
});

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export const SERVICES = ["voice", "sms", "data"] as const;
export const DIRECTIONS = ["outgoing", "incoming"] as const;
export const ROUNDING_MODES = ["up", "down", "halfUp"] as const;

export const TimeBandSchema = Type.Object(
  {
    id: Id,
    /** Weekdays the band covers on ordinary days; omitted with `holidays: true`. */
    days: Type.Optional(Type.Array(Type.Enum(WEEKDAYS), { minItems: 1, maxItems: 7, uniqueItems: true })),
    /** The band covers the tariff's holiday dates (whatever their weekday). */
    holidays: Type.Optional(Type.Boolean()),
    from: ClockTime,
    to: ClockTime,
    /** Where bands overlap, the higher priority wins; equal priorities may not overlap. */
    priority: Type.Integer({ minimum: 0, maximum: 1000 }),
  },
  { additionalProperties: false },
);

export const StepSchema = Type.Object(
  {
    /** The offset into the event (in units) from which this step applies. */
    from: Type.Integer({ minimum: 0 }),
    /** Price for `per` units. */
    price: Decimal6,
    per: Type.Integer({ minimum: 1 }),
    /** Charging increment: usage in this step is charged in whole increments, rounded up. */
    increment: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);

export const RateSchema = Type.Object(
  {
    id: Id,
    service: Type.Enum(SERVICES),
    direction: Type.Optional(Type.Enum(DIRECTIONS)),
    /** "home", or the id of a roaming zone the visited network belongs to. */
    roaming: Type.Optional(Id),
    /** A destination id; omitted, the rate applies to any destination (data, incoming). */
    destination: Type.Optional(Id),
    /** The bands the rate applies in; omitted, all of them. */
    bands: Type.Optional(Type.Array(Id, { minItems: 1, uniqueItems: true })),
    connectionFee: Type.Optional(Decimal6),
    steps: Type.Array(StepSchema, { minItems: 1, maxItems: 10 }),
    minimumCharge: Type.Optional(Decimal6),
    maximumCharge: Type.Optional(
      Type.Object(
        {
          amount: Decimal6,
          /** cap: the price stops growing at the amount; limit: the price is not capped, online sessions end there. */
          mode: Type.Enum(["cap", "limit"]),
        },
        { additionalProperties: false },
      ),
    ),
    rounding: Type.Object(
      { mode: Type.Enum(ROUNDING_MODES), decimals: Type.Integer({ minimum: 0, maximum: 6 }) },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

export const TariffSchema = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ maxLength: 200 })),
    currency: Type.String({ pattern: "^[A-Z]{3}$" }),
    /** IANA zone in which time bands and holidays are evaluated. */
    timeZone: Type.String({ minLength: 1, maxLength: 64 }),
    /** PLMN ids (MCC+MNC) that count as home; a visited network outside them is roaming. */
    homeNetworks: Type.Array(Type.String({ pattern: "^\\d{5,6}$" }), { minItems: 1 }),
    holidays: Type.Optional(Type.Array(Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}$" }), { uniqueItems: true })),
    timeBands: Type.Array(TimeBandSchema, { minItems: 1, maxItems: 50 }),
    destinations: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Id,
            name: Type.Optional(Type.String({ maxLength: 200 })),
            prefixes: Type.Array(Type.String({ pattern: "^\\+\\d{1,15}$" }), { minItems: 1 }),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    roamingZones: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Id,
            name: Type.Optional(Type.String({ maxLength: 200 })),
            /** PLMN ids, or a 3-digit MCC for every network of a country. */
            networks: Type.Array(Type.String({ pattern: "^\\d{3}(\\d{2,3})?$" }), { minItems: 1 }),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    rates: Type.Array(RateSchema, { minItems: 1, maxItems: 2000 }),
    /**
     * The catalog tax class of the usage charges this tariff prices. Optional here because the quote endpoint takes
     * inline tariffs that are never invoiced; the catalog loader requires it of every catalog tariff.
     */
    taxClass: Type.Optional(Id),
    /** The tariff's prices include the tax. Default false: net. */
    taxIncluded: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export type TariffDefinition = Static<typeof TariffSchema>;
export type RateDefinition = Static<typeof RateSchema>;
export type Service = (typeof SERVICES)[number];
export type Direction = (typeof DIRECTIONS)[number];
export type RoundingModeName = (typeof ROUNDING_MODES)[number];
