import { type Static, Type } from "typebox";

export const RESOURCE_TYPES = ["SIMCard", "MSISDN"] as const;
export const SIM_STATES = ["available", "reserved", "assigned", "blocked", "retired"] as const;
export const NUMBER_STATES = ["available", "reserved", "assigned", "quarantine"] as const;
export const NUMBER_CATEGORIES = ["regular", "premium"] as const;

/** A SIM as imported (JSON lines or CSV rows): identifiers and the secrets that are sealed at rest. */
export const SimRecordSchema = Type.Object(
  {
    iccid: Type.String({ maxLength: 20 }),
    imsi: Type.String({ maxLength: 15 }),
    pin1: Type.String({ maxLength: 8 }),
    puk1: Type.String({ maxLength: 8 }),
    pin2: Type.Optional(Type.String({ maxLength: 8 })),
    puk2: Type.Optional(Type.String({ maxLength: 8 })),
    ki: Type.String({ maxLength: 32 }),
    opc: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: false },
);
export type SimRecord = Static<typeof SimRecordSchema>;

/** TMF639 create: a SIM (its identifiers and secrets as extension attributes) or a number. */
export const ResourceCreateSchema = Type.Object({
  "@type": Type.Enum(RESOURCE_TYPES),
  value: Type.Optional(Type.String({ minLength: 1, maxLength: 20 })),
  category: Type.Optional(Type.Enum(NUMBER_CATEGORIES)),
  iccid: Type.Optional(Type.String({ maxLength: 20 })),
  imsi: Type.Optional(Type.String({ maxLength: 15 })),
  pin1: Type.Optional(Type.String({ maxLength: 8 })),
  puk1: Type.Optional(Type.String({ maxLength: 8 })),
  pin2: Type.Optional(Type.String({ maxLength: 8 })),
  puk2: Type.Optional(Type.String({ maxLength: 8 })),
  ki: Type.Optional(Type.String({ maxLength: 32 })),
  opc: Type.Optional(Type.String({ maxLength: 32 })),
});
export type ResourceCreate = Static<typeof ResourceCreateSchema>;

export const ResourcePatchSchema = Type.Object({
  resourceStatus: Type.Enum([...new Set([...SIM_STATES, ...NUMBER_STATES])]),
});

export const NumberRangeSchema = Type.Object(
  {
    from: Type.String({ pattern: "^\\+[1-9]\\d{6,14}$" }),
    to: Type.String({ pattern: "^\\+[1-9]\\d{6,14}$" }),
    category: Type.Optional(Type.Enum(NUMBER_CATEGORIES)),
  },
  { additionalProperties: false },
);
export type NumberRange = Static<typeof NumberRangeSchema>;

export const ReservationRequestSchema = Type.Object(
  {
    "@type": Type.Enum(RESOURCE_TYPES),
    /** A specific resource, by id or by value (number or ICCID); otherwise any that matches. */
    id: Type.Optional(Type.String({ maxLength: 100 })),
    value: Type.Optional(Type.String({ maxLength: 20 })),
    /** Numbers: `*` matches any digits, e.g. `*777` (ends in 777) or `+49151*`. */
    valuePattern: Type.Optional(Type.String({ pattern: "^[+0-9*]{1,16}$" })),
    category: Type.Optional(Type.Enum(NUMBER_CATEGORIES)),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 30 * 86_400 })),
  },
  { additionalProperties: false },
);
export type ReservationRequest = Static<typeof ReservationRequestSchema>;

const Characteristic = Type.Object({ name: Type.String(), value: Type.String() });

export const ResourceSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Enum(RESOURCE_TYPES),
  /** TMF639 names every resource (mandatory when creating one): a number's E.164 value, a SIM's ICCID. */
  name: Type.String(),
  value: Type.String(),
  resourceStatus: Type.String(),
  category: Type.Optional(Type.String()),
  resourceCharacteristic: Type.Array(Characteristic),
  reservedUntil: Type.Optional(Type.String()),
  quarantineUntil: Type.Optional(Type.String()),
  assignedTo: Type.Optional(Type.String()),
  lastUpdate: Type.String(),
});
export type Resource = Static<typeof ResourceSchema>;

export const ReservationSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("ResourceReservation"),
  expiresAt: Type.String(),
  resource: Type.Object({
    id: Type.String(),
    href: Type.String(),
    value: Type.String(),
    "@referredType": Type.String(),
  }),
});
export type Reservation = Static<typeof ReservationSchema>;
