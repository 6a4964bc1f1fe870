/**
 * Field names whose values never leave the engine in clear: SIM secrets, PINs and PUKs, keys and tokens.
 * Logs and audit snapshots share this list so that nothing is hidden in one and shown in the other.
 */
export const SECRET_FIELD_NAMES = [
  "ki",
  "opc",
  "op",
  "pin",
  "pin1",
  "pin2",
  "puk",
  "puk1",
  "puk2",
  "secret",
  "secretHash",
  "apiKey",
  "key",
  "token",
  "ticket",
  "password",
  "authorization",
] as const;

const SECRET_NAMES = new Set<string>(SECRET_FIELD_NAMES.map((name) => name.toLowerCase()));
export const REDACTED = "[redacted]";

/** A deep copy with every secret field's value replaced. Bounded depth: snapshots are shallow records. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SECRET_NAMES.has(key.toLowerCase()) ? REDACTED : redactSecrets(inner, depth + 1);
  }
  return out;
}
