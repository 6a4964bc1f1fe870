import { asc, count, eq, inArray } from "drizzle-orm";
import { type Static, Type } from "typebox";
import type { Actor } from "../../platform/audit.js";
import type { Db } from "../../platform/database.js";
import { AppError, invalidField, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import { text } from "../../platform/tmf-schemas.js";
import { canonicalTimeZone } from "../../shared/calendar.js";
import { CDR_SOURCE_CACHE_TTL_MS, SHORT_TEXT_MAX_LENGTH } from "../../shared/limits.js";
import type { SourceRules } from "./cdr-record.js";
import { type CdrSourceRow, cdrSources } from "./usage.tables.js";

export const CDR_SOURCE_PATH = "/api/v1/cdr-sources";
const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** Names remembered (found or not); a flood of invented names clears the cache instead of growing it. */
const SOURCE_CACHE_MAX = 10_000;

const SourceId = Type.String({
  pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
  description: "the name CDRs carry in `source`",
});
const CountryCode = Type.String({ pattern: "^[1-9][0-9]{0,2}$", description: "E.164 country code, without +" });
const NationalPrefix = Type.String({ pattern: "^[0-9]{0,3}$", description: "trunk prefix of national numbers (0)" });
const InternationalPrefix = Type.String({ pattern: "^[0-9]{0,4}$", description: "prefix that stands for + (00, 011)" });
const SourceStatus = Type.Enum(["active", "disabled"]);
const BareNumbers = Type.Enum(["international", "national"], {
  description: "digits without a prefix: international without + (3GPP, default) or national (many PBXs)",
});

export const CdrSourceSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("CdrSource"),
  description: Type.Optional(Type.String()),
  countryCode: Type.String(),
  nationalPrefix: Type.String(),
  internationalPrefix: Type.String(),
  bareNumbers: BareNumbers,
  timeZone: Type.String(),
  status: SourceStatus,
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
});
export type CdrSource = Static<typeof CdrSourceSchema>;

const editable = {
  description: Type.Optional(text(SHORT_TEXT_MAX_LENGTH, 0)),
  countryCode: CountryCode,
  nationalPrefix: Type.Optional(NationalPrefix),
  internationalPrefix: Type.Optional(InternationalPrefix),
  bareNumbers: Type.Optional(BareNumbers),
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "IANA zone of zone-less times" })),
  status: Type.Optional(SourceStatus),
};

export const CdrSourceCreateSchema = Type.Object({ id: SourceId, ...editable }, { additionalProperties: false });
export type CdrSourceCreate = Static<typeof CdrSourceCreateSchema>;

export const CdrSourcePatchSchema = Type.Object(
  { ...editable, countryCode: Type.Optional(CountryCode) },
  { additionalProperties: false, minProperties: 1 },
);
export type CdrSourcePatch = Static<typeof CdrSourcePatchSchema>;

function present(row: CdrSourceRow): CdrSource {
  return {
    id: row.id,
    href: `${CDR_SOURCE_PATH}/${row.id}`,
    "@type": "CdrSource",
    ...(row.description === null ? {} : { description: row.description }),
    countryCode: row.countryCode,
    nationalPrefix: row.nationalPrefix,
    internationalPrefix: row.internationalPrefix,
    bareNumbers: row.bareNumbers as CdrSource["bareNumbers"],
    timeZone: row.timeZone,
    status: row.status as CdrSource["status"],
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function checkRules(rules: { nationalPrefix: string; internationalPrefix: string; timeZone: string }): string {
  if (rules.nationalPrefix !== "" && rules.nationalPrefix === rules.internationalPrefix) {
    throw invalidField("internationalPrefix", "must differ from nationalPrefix");
  }
  const zone = canonicalTimeZone(rules.timeZone);
  if (zone === null) throw invalidField("timeZone", `"${rules.timeZone}" is not an IANA time zone`);
  return zone;
}

/** Any process's view of the registered sources, cached briefly; a change made here is seen here at once. */
export interface SourceRegistry {
  resolve(ids: readonly (string | null)[]): Promise<Map<string, SourceRules>>;
}

/**
 * The network elements that may send CDRs and how each writes its numbers. Sources are disabled, never
 * deleted: stored usage names them.
 */
export class SourcesService implements SourceRegistry {
  readonly #cache = new Map<string, { rules: SourceRules | null; untilMs: number }>();

  constructor(private readonly deps: ServiceDeps) {}

  async resolve(ids: readonly (string | null)[]): Promise<Map<string, SourceRules>> {
    const nowMs = performance.now();
    const wanted = [...new Set(ids.filter((id): id is string => id !== null && SOURCE_NAME.test(id)))];
    if (this.#cache.size > SOURCE_CACHE_MAX) this.#cache.clear();
    const stale = wanted.filter((id) => (this.#cache.get(id)?.untilMs ?? 0) <= nowMs);
    if (stale.length > 0) {
      const rows = await this.deps.database.db.select().from(cdrSources).where(inArray(cdrSources.id, stale));
      for (const id of stale) this.#cache.set(id, { rules: null, untilMs: nowMs + CDR_SOURCE_CACHE_TTL_MS });
      for (const row of rows) {
        this.#cache.set(row.id, {
          rules: row.status === "active" ? rulesOf(row) : null,
          untilMs: nowMs + CDR_SOURCE_CACHE_TTL_MS,
        });
      }
    }
    const found = new Map<string, SourceRules>();
    for (const id of wanted) {
      const rules = this.#cache.get(id)?.rules;
      if (rules) found.set(id, rules);
    }
    return found;
  }

  /** The ids among `ids` that name no registered source (an API key naming them is refused). */
  async unknown(db: Db, ids: readonly string[]): Promise<string[]> {
    const rows = await db
      .select({ id: cdrSources.id })
      .from(cdrSources)
      .where(inArray(cdrSources.id, [...ids]));
    const known = new Set(rows.map((row) => row.id));
    return ids.filter((id) => !known.has(id));
  }

  async list(request: ListRequest): Promise<{ items: CdrSource[]; total: number }> {
    const db = this.deps.database.db;
    const where = listFilters(
      { id: cdrSources.id, status: cdrSources.status, countryCode: cdrSources.countryCode },
      request,
    );
    const [rows, counted] = await Promise.all([
      db.select().from(cdrSources).where(where).orderBy(asc(cdrSources.id)).offset(request.offset).limit(request.limit),
      db.select({ total: count() }).from(cdrSources).where(where),
    ]);
    return { items: rows.map(present), total: counted[0]?.total ?? 0 };
  }

  async get(id: string): Promise<CdrSource> {
    const [row] = await this.deps.database.db.select().from(cdrSources).where(eq(cdrSources.id, id));
    if (!row) throw notFound("CDR source", id);
    return present(row);
  }

  async create(actor: Actor, input: CdrSourceCreate): Promise<CdrSource> {
    const rules = {
      nationalPrefix: input.nationalPrefix ?? "0",
      internationalPrefix: input.internationalPrefix ?? "00",
      timeZone: input.timeZone ?? "UTC",
    };
    const timeZone = checkRules(rules);
    const now = this.deps.clock.now();
    const created = await this.deps.database.transaction(async (tx) => {
      const [row] = await tx
        .insert(cdrSources)
        .values({
          id: input.id,
          description: input.description ?? null,
          countryCode: input.countryCode,
          nationalPrefix: rules.nationalPrefix,
          internationalPrefix: rules.internationalPrefix,
          bareNumbers: input.bareNumbers ?? "international",
          timeZone,
          status: input.status ?? "active",
          createdAt: now,
          updatedAt: now,
        })
        .onConflictDoNothing()
        .returning();
      if (!row) throw new AppError("conflict", "duplicate", `CDR source ${input.id} exists already`, "id");
      const source = present(row);
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "cdrSource",
        entityId: row.id,
        after: source,
      });
      return source;
    });
    this.#cache.delete(created.id);
    return created;
  }

  async update(actor: Actor, id: string, patch: CdrSourcePatch): Promise<CdrSource> {
    const updated = await this.deps.database.transaction(async (tx) => {
      const [row] = await tx.select().from(cdrSources).where(eq(cdrSources.id, id)).for("update");
      if (!row) throw notFound("CDR source", id);
      const merged = {
        description: patch.description === undefined ? row.description : patch.description,
        countryCode: patch.countryCode ?? row.countryCode,
        nationalPrefix: patch.nationalPrefix ?? row.nationalPrefix,
        internationalPrefix: patch.internationalPrefix ?? row.internationalPrefix,
        bareNumbers: patch.bareNumbers ?? row.bareNumbers,
        timeZone: patch.timeZone ?? row.timeZone,
        status: patch.status ?? row.status,
      };
      merged.timeZone = checkRules(merged);
      const [changed] = await tx
        .update(cdrSources)
        .set({ ...merged, updatedAt: this.deps.clock.now() })
        .where(eq(cdrSources.id, id))
        .returning();
      const source = present(changed as CdrSourceRow);
      await this.deps.audit.record(tx, actor, {
        action: "update",
        entityType: "cdrSource",
        entityId: id,
        before: present(row),
        after: source,
      });
      return source;
    });
    this.#cache.delete(id);
    return updated;
  }
}

function rulesOf(row: CdrSourceRow): SourceRules {
  return {
    id: row.id,
    countryCode: row.countryCode,
    nationalPrefix: row.nationalPrefix,
    internationalPrefix: row.internationalPrefix,
    bareNumbers: row.bareNumbers as SourceRules["bareNumbers"],
    timeZone: row.timeZone,
  };
}
