import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/**
 * Encryption at rest for secrets the engine must be able to read back (SIM Ki/OPc/PIN/PUK, hub signing
 * secrets): AES-256-GCM with a random 96-bit IV per value. The stored text names the key it was sealed with
 * ("k<8 hex>"), so a rotated key can be told apart from the one in use.
 */
export class SecretBox {
  readonly #key: Buffer;
  readonly keyId: string;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error("the secrets key must be 32 bytes");
    this.#key = key;
    this.keyId = `k${createHash("sha256").update(key).digest("hex").slice(0, 8)}`;
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [this.keyId, iv.toString("base64url"), tag.toString("base64url"), body.toString("base64url")].join(".");
  }

  open(sealed: string): string {
    const [keyId, iv, tag, body] = sealed.split(".");
    if (keyId !== this.keyId || iv === undefined || tag === undefined || body === undefined) {
      throw new Error(`sealed with key ${keyId ?? "?"}, not the configured key ${this.keyId}`);
    }
    const decipher = createDecipheriv("aes-256-gcm", this.#key, Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]).toString("utf8");
  }
}

/** Parses BSS_SECRETS_KEY: 32 bytes as 64 hex digits or as base64. */
export function parseSecretsKey(text: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  const decoded = Buffer.from(text, "base64");
  return decoded.length === 32 ? decoded : null;
}

/**
 * The key in use: the configured one; in embedded mode without one, a key generated once into the data
 * folder (so the newcomer's `npm start` needs no setup) or a throwaway key for an in-memory database.
 */
export function resolveSecretsKey(configured: Buffer | undefined, dataDir: string): Buffer {
  if (configured !== undefined) return configured;
  if (dataDir.startsWith("memory://")) return randomBytes(32);
  const file = path.join(dataDir, "secrets.key");
  if (existsSync(file)) return Buffer.from(readFileSync(file, "utf8").trim(), "hex");
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString("hex"), { mode: 0o600 });
  return key;
}
