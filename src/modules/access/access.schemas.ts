import { type Static, Type } from "typebox";
import { ROLES } from "../../platform/auth.js";
import { text } from "../../platform/tmf-schemas.js";
import { NAME_MAX_LENGTH } from "../../shared/limits.js";

const RoleSchema = Type.Enum(ROLES);

/** The maximum number of sources one network key names. */
export const KEY_SOURCES_MAX = 100;
const CdrSourcesSchema = Type.Array(Type.String({ pattern: "^(\\*|[A-Za-z0-9][A-Za-z0-9._:-]{0,63})$" }), {
  minItems: 1,
  maxItems: KEY_SOURCES_MAX,
  uniqueItems: true,
  description:
    'Network keys: the CDR sources (network elements) the key may send records for; ["*"] for any (a mediation platform)',
});

/** Native body: unknown fields are refused (API.md). */
export const ApiKeyCreateSchema = Type.Object(
  {
    name: text(NAME_MAX_LENGTH),
    role: RoleSchema,
    billingAccountId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    expiresAt: Type.Optional(Type.String({ format: "date-time" })),
    cdrSources: Type.Optional(CdrSourcesSchema),
  },
  { additionalProperties: false },
);
export type ApiKeyCreate = Static<typeof ApiKeyCreateSchema>;

const apiKeyFields = {
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("ApiKey"),
  name: Type.String(),
  role: RoleSchema,
  prefix: Type.String({ description: "The public start of the key, to recognise it; not a secret" }),
  billingAccountId: Type.Optional(Type.String()),
  cdrSources: Type.Optional(Type.Array(Type.String())),
  createdAt: Type.String({ format: "date-time" }),
  expiresAt: Type.Optional(Type.String({ format: "date-time" })),
  revokedAt: Type.Optional(Type.String({ format: "date-time" })),
  status: Type.Enum(["active", "expired", "revoked"]),
};

export const ApiKeySchema = Type.Object(apiKeyFields);
export type ApiKey = Static<typeof ApiKeySchema>;

/** The create answer is the only one that carries the secret. */
export const CreatedApiKeySchema = Type.Object({
  ...apiKeyFields,
  key: Type.String({ description: "The secret; shown once, store it now" }),
});

export const AuditEventSchema = Type.Object({
  id: Type.String(),
  occurredAt: Type.String({ format: "date-time" }),
  requestId: Type.Optional(Type.String()),
  callerRequestId: Type.Optional(Type.String()),
  actorKeyId: Type.Optional(Type.String()),
  actorRole: Type.String(),
  action: Type.String(),
  entityType: Type.String(),
  entityId: Type.String(),
  before: Type.Optional(Type.Unknown()),
  after: Type.Optional(Type.Unknown()),
});
