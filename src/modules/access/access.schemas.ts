import { type Static, Type } from "typebox";
import { ROLES } from "../../platform/auth.js";
import { NAME_MAX_LENGTH } from "../../shared/limits.js";

const RoleSchema = Type.Enum(ROLES);

/** Native body: unknown fields are refused (API.md). */
export const ApiKeyCreateSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH }),
    role: RoleSchema,
    billingAccountId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    expiresAt: Type.Optional(Type.String({ format: "date-time" })),
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
