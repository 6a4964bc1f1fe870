import { type Static, Type } from "typebox";
import { multilineText } from "../../platform/tmf-schemas.js";
import { SUSPENSE_REGUIDE_MAX } from "../../shared/limits.js";
import { SERVICES } from "../catalog/index.js";
import { SUSPENSE_REASONS } from "./line-index.js";
import { USAGE_STATUSES } from "./usage.service.js";

const Text = Type.String();

export const RecordOutcomeSchema = Type.Object({
  index: Type.Integer({ description: "position of the record in the request, from 0" }),
  line: Type.Optional(Type.Integer({ description: "line of the record (NDJSON, CSV), from 1" })),
  outcome: Type.Enum(["accepted", "duplicate", "conflict", "rejected"]),
  source: Type.Optional(Text),
  cdrId: Type.Optional(Text),
  usageId: Type.Optional(Type.String({ description: "the stored record; for duplicates and conflicts the first one" })),
  status: Type.Optional(Type.Enum(USAGE_STATUSES)),
  field: Type.Optional(Type.String({ description: "rejected records: the field at fault" })),
  reason: Type.Optional(Type.String({ description: "why the record was rejected, is in conflict or in suspense" })),
  note: Type.Optional(Type.String({ description: "why a switch leg is recorded but not charged" })),
});

export const IngestResultSchema = Type.Object({
  received: Type.Integer(),
  accepted: Type.Integer(),
  duplicate: Type.Integer(),
  conflict: Type.Integer(),
  rejected: Type.Integer(),
  records: Type.Array(RecordOutcomeSchema),
});

export const SwitchQuerySchema = Type.Object(
  { source: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", description: "the registered CDR source" }) },
  { additionalProperties: false },
);

const Ref = Type.Object({ id: Text, href: Text, "@referredType": Text });
const Characteristic = Type.Object({
  name: Text,
  valueType: Type.Optional(Text),
  value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
});

export const UsageSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Literal("Usage"),
  date: Type.String({ format: "date-time", description: "when the engine received the record" }),
  // Absent only on a usage kept as sent because it named no CDR fields (in suspense, missing_characteristics).
  usageDate: Type.Optional(Type.String({ format: "date-time" })),
  usageType: Type.Optional(Type.Enum(SERVICES)),
  status: Type.Enum(USAGE_STATUSES),
  description: Type.Optional(Text),
  usageSpecification: Type.Optional(Type.Object({ ...Ref.properties, name: Text })),
  usageCharacteristic: Type.Array(Characteristic),
  relatedParty: Type.Array(Type.Object({ ...Ref.properties, role: Text })),
  product: Type.Optional(Ref),
  suspense: Type.Optional(Type.Object({ reason: Text, message: Text })),
  ratedProductUsage: Type.Array(
    Type.Object({
      ratingDate: Type.String({ format: "date-time" }),
      isBilled: Type.Boolean(),
      usageRatingTag: Type.Enum(["usage", "included usage", "non included usage"]),
      offerTariffType: Text,
      taxExcludedRatingAmount: Type.Object({ unit: Text, value: Type.Number() }),
      productRef: Ref,
    }),
  ),
});

/**
 * TMF635 `POST usage`: the attributes this engine reads, checked for type; others a standard client sends
 * (`@schemaLocation`, `relatedParty`) are ignored. The CDR's fields travel as characteristics named as in the
 * native API.
 */
export const UsageCreateSchema = Type.Object(
  {
    description: Type.Optional(multilineText(200, 0)),
    usageDate: Type.Optional(Type.String({ maxLength: 40 })),
    usageType: Type.Optional(Type.Enum(SERVICES)),
    // Optional in TMF635: a usage without characteristics names no (source, cdrId) and no number, so it is
    // kept in suspense as sent (missing_characteristics), deduplicated on a digest of its body.
    usageCharacteristic: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 64 }),
            valueType: Type.Optional(Type.String({ maxLength: 32 })),
            value: Type.Unknown(),
          },
          { additionalProperties: true },
        ),
        { maxItems: 20 },
      ),
    ),
  },
  { additionalProperties: true },
);
export type UsageCreate = Static<typeof UsageCreateSchema>;

export const UsageSpecificationSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Literal("UsageSpecification"),
  name: Text,
  description: Text,
  lifecycleStatus: Text,
  specCharacteristic: Type.Array(
    Type.Object({
      name: Text,
      valueType: Text,
      configurable: Type.Boolean(),
      description: Text,
      minCardinality: Type.Integer(),
    }),
  ),
});

export const SuspendedUsageSchema = Type.Object({
  id: Text,
  href: Text,
  "@type": Type.Literal("SuspendedUsage"),
  state: Type.Enum(["open", "resolved"]),
  reason: Text,
  message: Text,
  since: Type.String({ format: "date-time" }),
  attempts: Type.Integer(),
  lastAttemptAt: Type.String({ format: "date-time" }),
  resolvedAt: Type.Optional(Type.String({ format: "date-time" })),
  resolution: Type.Optional(Text),
  usage: Type.Object({
    ...Ref.properties,
    source: Text,
    cdrId: Text,
    // Absent for a usage kept as sent (missing_characteristics).
    recordType: Type.Optional(Text),
    recordOpeningTime: Type.Optional(Type.String({ format: "date-time" })),
    servedMSISDN: Type.Optional(Text),
    servedIMSI: Type.Optional(Text),
  }),
});

const Values = (max: number, pattern?: string) =>
  Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 64, ...(pattern ? { pattern } : {}) }), {
      minItems: 1,
      maxItems: max,
    }),
  );

export const ReguideRequestSchema = Type.Object(
  {
    reason: Type.Optional(Type.Array(Type.Enum(SUSPENSE_REASONS), { minItems: 1, maxItems: SUSPENSE_REASONS.length })),
    source: Values(50),
    servedMSISDN: Values(1000, "^\\+[1-9][0-9]{6,14}$"),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: SUSPENSE_REGUIDE_MAX })),
  },
  { additionalProperties: false },
);
export type ReguideRequest = Static<typeof ReguideRequestSchema>;

export const ReguideResultSchema = Type.Object({
  examined: Type.Integer(),
  guided: Type.Integer(),
  stillSuspended: Type.Integer(),
});
