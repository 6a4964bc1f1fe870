import { createHash, randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import type { Principal, Role } from "../../platform/auth.js";
import type { Broadcast } from "../../platform/broadcast.js";
import type { Db } from "../../platform/database.js";
import { AppError, invalidField, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import type { ListRequest } from "../../platform/tmf.js";
import { newId } from "../../shared/ids.js";
import { API_KEY_CACHE_MAX_ENTRIES, API_KEY_CACHE_TTL_MS } from "../../shared/limits.js";
import * as repository from "./access.repository.js";
import type { ApiKey, ApiKeyCreate } from "./access.schemas.js";
import type { ApiKeyRow } from "./access.tables.js";

export const API_KEY_PATH = "/api/v1/api-keys";
const BOOTSTRAP_LOCK_KEY = 7_201_442_118;
/** Every process hears of a revocation on this channel: it forgets the key and closes what the key holds open. */
const REVOKED_CHANNEL = "api-keys:revoked";

export interface AccessDeps extends ServiceDeps {
  /** From the customers module: subscriber keys bind to an existing billing account. */
  billingAccountExists(db: Db, id: string): Promise<boolean>;
  broadcast: Broadcast;
}

/** What other modules do when a key is revoked: void what it holds (in the revoking transaction), close what it has open. */
export interface RevocationHooks {
  /** In the revoking transaction: void what the key holds (tickets). */
  voidHeld?(tx: Db, keyId: string, now: Date): Promise<void>;
  /** In every process, once the revocation committed: close what the key has open (sockets). */
  closeOpen?(keyId: string): void;
}

export function hashApiKey(presented: string): string {
  return createHash("sha256").update(presented, "utf8").digest("hex");
}

/** A new key: a public prefix that names it, then 256 random bits. */
function generateKey(): { secret: string; prefix: string } {
  const prefix = `bss_${randomBytes(4).toString("hex")}`;
  return { prefix, secret: `${prefix}_${randomBytes(32).toString("base64url")}` };
}

function statusOf(row: ApiKeyRow, now: Date): ApiKey["status"] {
  if (row.revokedAt !== null) return "revoked";
  if (row.expiresAt !== null && row.expiresAt <= now) return "expired";
  return "active";
}

interface CachedKey {
  principal: Principal | null;
  expiresAt: Date | null;
  cachedUntilMs: number;
}

/**
 * API keys: issue, list, revoke, and authenticate requests. Authentication hashes the presented key once
 * (SHA-256, microseconds) and caches the answer briefly; a revocation clears every process's cache at once
 * (pub/sub), and at the latest within API_KEY_CACHE_TTL_MS if the message is lost.
 */
export class AccessService {
  readonly #cache = new Map<string, CachedKey>();
  readonly #hooks: RevocationHooks[] = [];
  /** Until the charging module is wired (checkSourcesWith), every named source counts as unknown. */
  #unknownSources: (db: Db, ids: readonly string[]) => Promise<string[]> = async (_db, ids) => [...ids];

  constructor(private readonly deps: AccessDeps) {}

  /** Listens for revocations made by any process (pub/sub; the cache TTL and socket re-checks cover a lost message). */
  async start(): Promise<void> {
    await this.deps.broadcast.subscribe(REVOKED_CHANNEL, (keyId) => this.revoked(keyId));
  }

  /** The charging module (built later) tells which of the named sources are not registered. */
  checkSourcesWith(unknownSources: (db: Db, ids: readonly string[]) => Promise<string[]>): void {
    this.#unknownSources = unknownSources;
  }

  onRevoke(hooks: RevocationHooks): void {
    this.#hooks.push(hooks);
  }

  /** This process forgets a revoked key and closes what it holds open. */
  private revoked(keyId: string): void {
    for (const [hash, cached] of this.#cache) if (cached.principal?.keyId === keyId) this.#cache.delete(hash);
    for (const hooks of this.#hooks) hooks.closeOpen?.(keyId);
  }

  /** The ids among `ids` of keys that still work (not revoked, not expired). */
  async liveKeyIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    return new Set(await repository.liveKeyIds(this.deps.database.db, ids, this.deps.clock.now()));
  }

  private present(row: ApiKeyRow): ApiKey {
    const key: ApiKey = {
      id: row.id,
      href: `${API_KEY_PATH}/${row.id}`,
      "@type": "ApiKey",
      name: row.name,
      role: row.role as Role,
      prefix: row.prefix,
      createdAt: row.createdAt.toISOString(),
      status: statusOf(row, this.deps.clock.now()),
    };
    if (row.billingAccountId !== null) key.billingAccountId = row.billingAccountId;
    if (row.cdrSources !== null) key.cdrSources = row.cdrSources;
    if (row.expiresAt !== null) key.expiresAt = row.expiresAt.toISOString();
    if (row.revokedAt !== null) key.revokedAt = row.revokedAt.toISOString();
    return key;
  }

  authenticate = async (presented: string): Promise<Principal | null> => {
    const hash = hashApiKey(presented);
    const nowMs = performance.now();
    let cached = this.#cache.get(hash);
    if (cached === undefined || cached.cachedUntilMs <= nowMs) {
      const row = await repository.findByHash(this.deps.database.db, hash);
      cached = {
        principal:
          row && row.revokedAt === null
            ? {
                keyId: row.id,
                role: row.role as Role,
                billingAccountId: row.billingAccountId,
                cdrSources: row.cdrSources,
              }
            : null,
        expiresAt: row?.expiresAt ?? null,
        cachedUntilMs: nowMs + API_KEY_CACHE_TTL_MS,
      };
      if (this.#cache.size >= API_KEY_CACHE_MAX_ENTRIES) this.#cache.clear();
      this.#cache.set(hash, cached);
    }
    if (cached.expiresAt !== null && cached.expiresAt <= this.deps.clock.now()) return null;
    return cached.principal;
  };

  async create(actor: Actor, input: ApiKeyCreate): Promise<ApiKey & { key: string }> {
    const now = this.deps.clock.now();
    const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
    if (expiresAt !== null && expiresAt <= now) throw invalidField("expiresAt", "must be in the future");
    if (input.role === "subscriber" && input.billingAccountId === undefined) {
      throw invalidField("billingAccountId", "is required for a subscriber key");
    }
    if (input.role !== "subscriber" && input.billingAccountId !== undefined) {
      throw invalidField("billingAccountId", "binds subscriber keys only");
    }
    if (input.role === "network" && input.cdrSources === undefined) {
      throw invalidField("cdrSources", 'is required for a network key: the sources it sends for, or ["*"] for any');
    }
    if (input.role !== "network" && input.cdrSources !== undefined) {
      throw invalidField("cdrSources", "binds network keys only");
    }
    if (input.cdrSources?.includes("*") && input.cdrSources.length > 1) {
      throw invalidField("cdrSources", '"*" (any source) stands alone');
    }
    const { secret, prefix } = generateKey();
    return this.deps.database.transaction(async (tx) => {
      if (input.billingAccountId !== undefined && !(await this.deps.billingAccountExists(tx, input.billingAccountId))) {
        throw new AppError(
          "unprocessable",
          "unknown_reference",
          `billingAccountId: billing account ${input.billingAccountId} does not exist`,
          "billingAccountId",
        );
      }
      const named = input.cdrSources?.filter((source) => source !== "*") ?? [];
      const unknown = named.length === 0 ? [] : await this.#unknownSources(tx, named);
      if (unknown.length > 0) {
        throw new AppError(
          "unprocessable",
          "unknown_reference",
          `cdrSources: ${unknown.join(", ")} ${unknown.length === 1 ? "is not a registered CDR source" : "are not registered CDR sources"}`,
          "cdrSources",
        );
      }
      if (await repository.liveKeyNamed(tx, input.name)) {
        throw new AppError("conflict", "duplicate_name", `name: a live key is already called "${input.name}"`, "name");
      }
      const row = await repository.apiKeyRows.insert(tx, {
        id: newId(now.getTime()),
        name: input.name,
        prefix,
        secretHash: hashApiKey(secret),
        role: input.role,
        billingAccountId: input.billingAccountId ?? null,
        cdrSources: input.cdrSources ?? null,
        createdAt: now,
        createdBy: actor.keyId,
        expiresAt,
        revokedAt: null,
      });
      const key = this.present(row);
      await this.deps.audit.record(tx, actor, { action: "create", entityType: "apiKey", entityId: row.id, after: key });
      return { ...key, key: secret };
    });
  }

  async list(request: ListRequest): Promise<{ items: ApiKey[]; total: number }> {
    const { rows, total } = await repository.apiKeyRows.list(this.deps.database.db, request);
    return { items: rows.map((row) => this.present(row)), total };
  }

  async get(id: string): Promise<ApiKey> {
    const row = await repository.apiKeyRows.find(this.deps.database.db, id);
    if (!row) throw notFound("api key", id);
    return this.present(row);
  }

  async revoke(actor: Actor, id: string): Promise<void> {
    await this.deps.database.transaction(async (tx) => {
      const row = await repository.apiKeyRows.find(tx, id, true);
      if (!row) throw notFound("api key", id);
      if (row.revokedAt !== null) throw new AppError("conflict", "already_revoked", `api key ${id} is already revoked`);
      const now = this.deps.clock.now();
      if (row.role === "admin") {
        // Serialize revocations of admin keys so two concurrent requests cannot remove the last two.
        await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY})`);
        if ((await repository.countOtherLiveAdmins(tx, id, now)) === 0) {
          throw new AppError("conflict", "last_admin_key", "this is the last working admin key; issue another first");
        }
      }
      const updated = await repository.apiKeyRows.update(tx, id, { revokedAt: now });
      for (const hooks of this.#hooks) await hooks.voidHeld?.(tx, id, now);
      await this.deps.audit.record(tx, actor, {
        action: "revoke",
        entityType: "apiKey",
        entityId: id,
        before: this.present(row),
        after: this.present(updated),
      });
    });
    this.revoked(id);
    await this.deps.broadcast.publish(REVOKED_CHANNEL, id).catch(() => {
      // Redis is down: other processes drop the key within API_KEY_CACHE_TTL_MS and re-check open sockets.
    });
  }

  /**
   * On first start with no keys, the configured ADMIN_API_KEY (or a generated key, returned so the caller
   * can print it once) becomes the admin key. Concurrent starts take an advisory lock, so one key results.
   */
  async ensureBootstrapKey(
    actor: Actor,
    configured: string | undefined,
  ): Promise<{ created: boolean; generated: string | null }> {
    return this.deps.database.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK_KEY})`);
      if ((await repository.countKeys(tx)) > 0) return { created: false, generated: null };
      const now = this.deps.clock.now();
      const generated = configured === undefined ? generateKey() : null;
      const secret = configured ?? generated?.secret ?? "";
      const row = await repository.apiKeyRows.insert(tx, {
        id: newId(now.getTime()),
        name: "bootstrap admin",
        prefix: generated?.prefix ?? `${secret.slice(0, 6)}…`,
        secretHash: hashApiKey(secret),
        role: "admin",
        billingAccountId: null,
        cdrSources: null,
        createdAt: now,
        createdBy: null,
        expiresAt: null,
        revokedAt: null,
      });
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "apiKey",
        entityId: row.id,
        after: this.present(row),
      });
      return { created: true, generated: generated?.secret ?? null };
    });
  }
}
