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
/**
 * A TMF639 create: the engine's own shape (`@type` SIMCard or MSISDN with its fields), or a standard client's
 * (`@type: Resource` with a `resourceSpecification` naming SIMCard or MSISDN, the number or ICCID as `name` or
 * `value`, and the SIM's identifiers as `resourceCharacteristic`); `standardResource` reads the second as the first.
 */
export const ResourceCreateSchema = Type.Object({
  // Optional in TMF639 (only `name` is mandatory): a bare E.164 name is a number.
  "@type": Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  resourceSpecification: Type.Optional(
    Type.Object({
      id: Type.Optional(Type.String({ maxLength: 100 })),
      name: Type.Optional(Type.String({ maxLength: 100 })),
    }),
  ),
  resourceCharacteristic: Type.Optional(
    Type.Array(
      Type.Object({ name: Type.String({ minLength: 1, maxLength: 40 }), value: Type.String({ maxLength: 64 }) }),
      { maxItems: 20 },
    ),
  ),
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
/** A create once read: the engine's own shape. */
export type NativeResourceCreate = Omit<
  ResourceCreate,
  "@type" | "name" | "resourceSpecification" | "resourceCharacteristic"
> & {
  "@type": (typeof RESOURCE_TYPES)[number];
};

const E164 = /^\+[1-9]\d{6,14}$/;
const SIM_FIELDS = ["iccid", "imsi", "pin1", "puk1", "pin2", "puk2", "ki", "opc"] as const;
const TYPE_NAMES: Record<string, (typeof RESOURCE_TYPES)[number]> = {
  simcard: "SIMCard",
  sim: "SIMCard",
  msisdn: "MSISDN",
};

/** A create in either shape as the engine's own; an unknown kind of resource is a 400 naming the field. */
export function standardResource(body: ResourceCreate): NativeResourceCreate | { field: string; reason: string } {
  const declared = body["@type"] === undefined ? undefined : TYPE_NAMES[body["@type"].toLowerCase()];
  const specified = [body.resourceSpecification?.id, body.resourceSpecification?.name]
    .map((name) => (name === undefined ? undefined : TYPE_NAMES[name.toLowerCase()]))
    .find((type) => type !== undefined);
  // A standard client's minimal body is a name alone: an E.164 number names an MSISDN unambiguously (a SIM cannot
  // be made from a name: it needs its IMSI and keys).
  const bare = body["@type"] === undefined && body.resourceSpecification === undefined;
  const type = declared ?? specified ?? (bare && E164.test(body.name ?? "") ? "MSISDN" : undefined);
  if (type === undefined) {
    return declared === undefined && body.resourceSpecification === undefined
      ? {
          field: "@type",
          reason: `must be ${RESOURCE_TYPES.join(" or ")}, or Resource with a resourceSpecification naming one (a name alone must be an E.164 number)`,
        }
      : { field: "resourceSpecification", reason: `must name ${RESOURCE_TYPES.join(" or ")}` };
  }
  const characteristic = (name: string) => body.resourceCharacteristic?.find((item) => item.name === name)?.value;
  const { name, resourceSpecification: _spec, resourceCharacteristic: _chars, ...rest } = body;
  const out: Record<string, unknown> = { ...rest, "@type": type };
  if (type === "MSISDN") {
    out.value = body.value ?? name;
    const category = body.category ?? characteristic("category");
    if (category !== undefined && !(NUMBER_CATEGORIES as readonly string[]).includes(category)) {
      return { field: "resourceCharacteristic.category", reason: `must be ${NUMBER_CATEGORIES.join(" or ")}` };
    }
    if (category !== undefined) out.category = category;
  } else {
    for (const field of SIM_FIELDS) {
      const value = body[field] ?? characteristic(field);
      if (value !== undefined) out[field] = value;
    }
    out.iccid ??= name ?? body.value;
    delete out.value;
  }
  return out as NativeResourceCreate;
}

/** Every lifecycle state a SIM or a number can be in (the engine's own, shown as the `lifecycleState` extension). */
export const LIFECYCLE_STATES = [...new Set([...SIM_STATES, ...NUMBER_STATES])];
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

/**
 * TMF639's standard states for each lifecycle state: `resourceStatus` (X.731: is it free, allocated, out of
 * service), `usageState` (is it in use) and `administrativeState` (may it be used).
 */
export const STANDARD_STATES: Record<
  LifecycleState,
  {
    resourceStatus: "available" | "reserved" | "suspended" | "standby";
    usageState: "idle" | "active";
    administrativeState: "unlocked" | "locked" | "shutdown";
  }
> = {
  available: { resourceStatus: "available", usageState: "idle", administrativeState: "unlocked" },
  reserved: { resourceStatus: "reserved", usageState: "idle", administrativeState: "unlocked" },
  assigned: { resourceStatus: "reserved", usageState: "active", administrativeState: "unlocked" },
  blocked: { resourceStatus: "suspended", usageState: "idle", administrativeState: "locked" },
  retired: { resourceStatus: "suspended", usageState: "idle", administrativeState: "shutdown" },
  quarantine: { resourceStatus: "standby", usageState: "idle", administrativeState: "locked" },
};
export const RESOURCE_STATUSES = ["available", "reserved", "suspended", "standby"] as const;

/** The lifecycle states a standard `resourceStatus` stands for (a list filter on it). */
export function statesOfStatus(status: string): LifecycleState[] {
  return LIFECYCLE_STATES.filter((state) => STANDARD_STATES[state].resourceStatus === status);
}

/**
 * A status change: the engine's `lifecycleState`, or a standard client's `resourceStatus` where it names one
 * change (available: free it, reserved: hold it, suspended: block it); exactly one of them.
 */
export const ResourcePatchSchema = Type.Object(
  {
    lifecycleState: Type.Optional(Type.Enum(LIFECYCLE_STATES)),
    resourceStatus: Type.Optional(Type.Enum(["available", "reserved", "suspended"])),
  },
  { minProperties: 1, maxProperties: 1 },
);
export const STATUS_CHANGES: Record<"available" | "reserved" | "suspended", LifecycleState> = {
  available: "available",
  reserved: "reserved",
  suspended: "blocked",
};

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
  resourceStatus: Type.Enum(RESOURCE_STATUSES),
  usageState: Type.Enum(["idle", "active"]),
  administrativeState: Type.Enum(["unlocked", "locked", "shutdown"]),
  /** The engine's own lifecycle state (an extension of TMF639): what `resourceStatus` summarises. */
  lifecycleState: Type.Enum(LIFECYCLE_STATES),
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
