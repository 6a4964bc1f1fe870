import { and, asc, count, eq, inArray, isNotNull, isNull, not, type SQL, sql } from "drizzle-orm";
import type { Actor, AuditLog } from "../../platform/audit.js";
import type { Clock } from "../../platform/clock.js";
import { type Database, type Db, queryRows } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, TMF_BASE, tmfRef } from "../../platform/tmf.js";
import { isId } from "../../shared/ids.js";
import { SUSPENSE_REGUIDE_MAX, SWEEP_AFTER_SECONDS, SWEEP_BATCH, SWEEP_WINDOW_SECONDS } from "../../shared/limits.js";
import { amountToJsonNumber, type Money } from "../../shared/money.js";
import { SERVICES, type Service } from "../catalog/index.js";
import { type CdrRecord, nativeFields } from "./cdr-record.js";
import { type IngestService, queuedUsage, type UsageStatus } from "./ingest.service.js";
import type { Guided, LineIndex } from "./line-index.js";
import { type SuspenseRow, type UsageRow, usageRecords, usageSuspense } from "./usage.tables.js";
import type { QueuedUsage, UsageQueue } from "./usage-queue.js";

export const USAGE_PATH = `${TMF_BASE.usage}/usage`;
export const USAGE_SPECIFICATION_PATH = `${TMF_BASE.usage}/usageSpecification`;
export const SUSPENSE_PATH = "/api/v1/suspense";

/** The statuses of TMF635 a stored record can have, derived from the rows that exist. */
export const USAGE_STATUSES = [
  "received",
  "guided",
  "recycled",
  "rated",
  "billed",
] as const satisfies readonly UsageStatus[];

/** A stored record that carries CDR fields: every record but a usage kept as its body (`missing_characteristics`). */
type ReadableRow = UsageRow & { recordType: string; direction: string; startedAt: Date };

function isReadable(row: UsageRow): row is ReadableRow {
  return row.recordType !== null && row.direction !== null && row.startedAt !== null;
}

export function recordOfRow(row: UsageRow): CdrRecord {
  if (!isReadable(row)) throw new Error(`usage ${row.id} carries no CDR fields; it cannot be guided or rated`);
  return {
    format: row.format as CdrRecord["format"],
    source: row.source,
    cdrId: row.cdrId,
    recordType: row.recordType as CdrRecord["recordType"],
    servedMsisdn: row.servedMsisdn,
    servedImsi: row.servedImsi,
    calledNumber: row.calledNumber,
    direction: row.direction as CdrRecord["direction"],
    visitedNetwork: row.visitedNetwork,
    ratingGroup: row.ratingGroup,
    startedAtMs: row.startedAt.getTime(),
    duration: row.duration,
    volumeUplink: row.volumeUplink,
    volumeDownlink: row.volumeDownlink,
    messages: row.messages,
    chargeable: row.chargeable,
    note: row.note,
  };
}

/** A record's status from the rows that exist (DESIGN.md §4, step 7), never a column updated in place. */
/**
 * How a record was rated, as the charging module tells it (this module never reads rating's tables): billed when an
 * invoice billed its summary up to it (DESIGN.md §10).
 */
export interface Rating {
  ratedAt: Date;
  tariffId: string;
  productId: string;
  amount: Money;
  currency: string;
  allowanceUnits: number;
  chargedUnits: number;
  billed: boolean;
}

/**
 * What this module needs to know of rating, answered by the charging module (wired in app.ts, so neither module
 * imports the other's insides): whether a usage id is rated or billed, as SQL conditions for list filters and
 * the sweeper, and how a page of records was rated.
 */
export interface RatedView {
  rated(usageId: SQL): SQL;
  billed(usageId: SQL): SQL;
  ratings(db: Db, usageIds: readonly string[]): Promise<Map<string, Rating>>;
}

function statusOf(row: UsageRow, openSuspense: SuspenseRow | null, rated: Rating | null): UsageStatus {
  if (rated !== null) return rated.billed ? "billed" : "rated";
  if (openSuspense !== null) return "recycled";
  return row.productId === null ? "received" : "guided";
}

export function presentUsage(row: UsageRow, openSuspense: SuspenseRow | null, rated: Rating | null) {
  return isReadable(row) ? presentRecord(row, openSuspense, rated) : presentBody(row, openSuspense);
}

/**
 * A usage kept as received because it named no CDR fields: its own description, date and type as sent (when they
 * are the right type), no characteristics but the format, and the suspense that holds it.
 */
function presentBody(row: UsageRow, openSuspense: SuspenseRow | null) {
  const body = (row.body ?? {}) as { description?: unknown; usageDate?: unknown; usageType?: unknown };
  return {
    id: row.id,
    href: `${USAGE_PATH}/${row.id}`,
    "@type": "Usage" as const,
    date: row.receivedAt.toISOString(),
    ...(typeof body.usageDate === "string" && !Number.isNaN(Date.parse(body.usageDate))
      ? { usageDate: new Date(body.usageDate).toISOString() }
      : {}),
    ...(SERVICES.includes(body.usageType as Service) ? { usageType: body.usageType as Service } : {}),
    status: openSuspense === null ? ("received" as const) : ("recycled" as const),
    ...(typeof body.description === "string" ? { description: body.description } : {}),
    usageCharacteristic: [{ name: "format", valueType: "string", value: row.format }],
    relatedParty: [],
    ...(openSuspense === null ? {} : { suspense: { reason: openSuspense.reason, message: openSuspense.message } }),
    ratedProductUsage: [],
  };
}

function presentRecord(row: ReadableRow, openSuspense: SuspenseRow | null, rated: Rating | null) {
  const fields = nativeFields(recordOfRow(row));
  return {
    id: row.id,
    href: `${USAGE_PATH}/${row.id}`,
    "@type": "Usage" as const,
    date: row.receivedAt.toISOString(),
    usageDate: row.startedAt.toISOString(),
    usageType: row.recordType,
    status: statusOf(row, openSuspense, rated),
    ...(row.note === null ? {} : { description: row.note }),
    usageSpecification: {
      ...tmfRef(USAGE_SPECIFICATION_PATH, row.recordType, "UsageSpecification"),
      name: row.recordType,
    },
    usageCharacteristic: [
      ...Object.entries(fields).map(([name, value]) => ({
        name,
        valueType: typeof value === "number" ? "integer" : "string",
        value,
      })),
      { name: "chargeable", valueType: "boolean", value: row.chargeable },
      { name: "format", valueType: "string", value: row.format },
    ],
    relatedParty:
      row.billingAccountId === null
        ? []
        : [
            {
              ...tmfRef(`${TMF_BASE.account}/billingAccount`, row.billingAccountId, "BillingAccount"),
              role: "billingAccount",
            },
          ],
    ...(row.productId === null
      ? {}
      : { product: tmfRef(`${TMF_BASE.productInventory}/product`, row.productId, "Product") }),
    ...(openSuspense === null ? {} : { suspense: { reason: openSuspense.reason, message: openSuspense.message } }),
    ratedProductUsage:
      rated === null
        ? []
        : [
            {
              ratingDate: rated.ratedAt.toISOString(),
              isBilled: rated.billed,
              usageRatingTag:
                rated.allowanceUnits === 0
                  ? "usage"
                  : rated.chargedUnits === 0
                    ? "included usage"
                    : "non included usage",
              offerTariffType: rated.tariffId,
              taxExcludedRatingAmount: { unit: rated.currency, value: amountToJsonNumber(rated.amount) },
              productRef: tmfRef(`${TMF_BASE.productInventory}/product`, rated.productId, "Product"),
            },
          ],
  };
}
export type Usage = ReturnType<typeof presentUsage>;

export function presentSuspense(suspense: SuspenseRow, row: UsageRow) {
  return {
    id: suspense.usageId,
    href: `${SUSPENSE_PATH}/${suspense.usageId}`,
    "@type": "SuspendedUsage" as const,
    state: suspense.resolvedAt === null ? ("open" as const) : ("resolved" as const),
    reason: suspense.reason,
    message: suspense.message,
    since: suspense.since.toISOString(),
    attempts: suspense.attempts,
    lastAttemptAt: suspense.lastAttemptAt.toISOString(),
    ...(suspense.resolvedAt === null ? {} : { resolvedAt: suspense.resolvedAt.toISOString() }),
    ...(suspense.resolution === null ? {} : { resolution: suspense.resolution }),
    usage: {
      ...tmfRef(USAGE_PATH, row.id, "Usage"),
      source: row.source,
      cdrId: row.cdrId,
      ...(row.recordType === null ? {} : { recordType: row.recordType }),
      ...(row.startedAt === null ? {} : { recordOpeningTime: row.startedAt.toISOString() }),
      ...(row.servedMsisdn === null ? {} : { servedMSISDN: row.servedMsisdn }),
      ...(row.servedImsi === null ? {} : { servedIMSI: row.servedImsi }),
    },
  };
}
export type SuspendedUsage = ReturnType<typeof presentSuspense>;

export interface ReguideFilter {
  reason?: readonly string[];
  source?: readonly string[];
  servedMSISDN?: readonly string[];
  limit?: number;
}

export interface ReguideResult {
  examined: number;
  guided: number;
  stillSuspended: number;
}

export interface UsageDeps {
  database: Database;
  clock: Clock;
  audit: AuditLog;
  lines: LineIndex;
  ingest: IngestService;
  rated: RatedView;
}

const openJoin = and(eq(usageSuspense.usageId, usageRecords.id), isNull(usageSuspense.resolvedAt));

/**
 * Stored usage (TMF635) and the suspense list: reading records with their derived status, and re-guiding
 * suspended ones after the cause is fixed (a late activation), which enqueues those that now find a line.
 */
/** The list filters of usage (TMF635) and suspense that are columns. */
const USAGE_COLUMNS = {
  id: usageRecords.id,
  usageType: usageRecords.recordType,
  usageDate: usageRecords.startedAt,
  date: usageRecords.receivedAt,
};
const SUSPENSE_COLUMNS = {
  id: usageSuspense.usageId,
  reason: usageSuspense.reason,
  since: usageSuspense.since,
  "usage.source": usageRecords.source,
  "usage.recordType": usageRecords.recordType,
  "usage.servedMSISDN": usageRecords.servedMsisdn,
};

export class UsageService {
  constructor(private readonly deps: UsageDeps) {}

  private scope(actor: Actor): SQL | undefined {
    return actor.role === "subscriber" ? eq(usageRecords.billingAccountId, actor.billingAccountId ?? "") : undefined;
  }

  async list(actor: Actor, request: ListRequest): Promise<{ items: Usage[]; total: number }> {
    const db = this.deps.database.db;
    const conditions: Array<SQL | undefined> = [this.scope(actor)];
    // `status` is computed from the rated and suspense rows; every other filter is a column.
    const { status: statuses, ...columnFilters } = request.filters;
    if (statuses) {
      const id = sql`${usageRecords.id}`;
      const { rated, billed } = this.deps.rated;
      const unrated = not(rated(id));
      const byStatus: Record<string, SQL | undefined> = {
        billed: billed(id),
        rated: and(rated(id), not(billed(id))),
        recycled: and(unrated, isNotNull(usageSuspense.usageId)),
        guided: and(unrated, isNull(usageSuspense.usageId), isNotNull(usageRecords.productId)),
        received: and(unrated, isNull(usageSuspense.usageId), isNull(usageRecords.productId)),
      };
      conditions.push(
        sql.join(
          statuses.map((status) => sql`(${byStatus[status]})`),
          sql` or `,
        ),
      );
    }
    const where = listFilters(USAGE_COLUMNS, { filters: columnFilters, ranges: request.ranges }, conditions);
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(usageRecords)
        .leftJoin(usageSuspense, openJoin)
        .where(where)
        .orderBy(asc(usageRecords.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(usageRecords).leftJoin(usageSuspense, openJoin).where(where),
    ]);
    const ratings = await this.deps.rated.ratings(
      db,
      rows.map((row) => row.usage_records.id),
    );
    return {
      items: rows.map((row) =>
        presentUsage(row.usage_records, row.usage_suspense, ratings.get(row.usage_records.id) ?? null),
      ),
      total: counted[0]?.total ?? 0,
    };
  }

  async get(actor: Actor, id: string): Promise<Usage> {
    if (!isId(id)) throw notFound("usage", id);
    const db = this.deps.database.db;
    const [row] = await db
      .select()
      .from(usageRecords)
      .leftJoin(usageSuspense, openJoin)
      .where(and(eq(usageRecords.id, id), this.scope(actor)));
    if (!row) throw notFound("usage", id);
    const ratings = await this.deps.rated.ratings(db, [id]);
    return presentUsage(row.usage_records, row.usage_suspense, ratings.get(id) ?? null);
  }

  async listSuspense(request: ListRequest): Promise<{ items: SuspendedUsage[]; total: number }> {
    const db = this.deps.database.db;
    // `state` is whether the suspense is resolved; every other filter is a column.
    const { state: states, ...columnFilters } = request.filters;
    const conditions: Array<SQL | undefined> = [];
    if (states?.length === 1) {
      conditions.push(states[0] === "open" ? isNull(usageSuspense.resolvedAt) : isNotNull(usageSuspense.resolvedAt));
    }
    const where = listFilters(SUSPENSE_COLUMNS, { filters: columnFilters, ranges: request.ranges }, conditions);
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(usageSuspense)
        .innerJoin(usageRecords, eq(usageRecords.id, usageSuspense.usageId))
        .where(where)
        .orderBy(asc(usageSuspense.usageId))
        .offset(request.offset)
        .limit(request.limit),
      db
        .select({ total: count() })
        .from(usageSuspense)
        .innerJoin(usageRecords, eq(usageRecords.id, usageSuspense.usageId))
        .where(where),
    ]);
    return {
      items: rows.map((row) => presentSuspense(row.usage_suspense, row.usage_records)),
      total: counted[0]?.total ?? 0,
    };
  }

  async getSuspense(id: string): Promise<SuspendedUsage> {
    if (!isId(id)) throw notFound("suspended usage", id);
    const [row] = await this.suspended(this.deps.database.db, eq(usageSuspense.usageId, id), 1, false);
    if (!row) throw notFound("suspended usage", id);
    return presentSuspense(row.usage_suspense, row.usage_records);
  }

  /** Least recently tried first, so a bulk re-guide works through all of suspense, not the same first rows. */
  private suspended(db: Db, where: SQL | undefined, limit: number, lock: boolean) {
    const query = db
      .select()
      .from(usageSuspense)
      .innerJoin(usageRecords, eq(usageRecords.id, usageSuspense.usageId))
      .where(where)
      .orderBy(asc(usageSuspense.lastAttemptAt), asc(usageSuspense.usageId))
      .limit(limit);
    return lock ? query.for("update", { of: usageSuspense, skipLocked: true }) : query;
  }

  /**
   * The sweeper (DESIGN.md §4, step 7): guided, chargeable records accepted more than `afterSeconds` ago
   * (and within the window) that have neither a rated row nor an open suspense row, on a shard whose queue is
   * empty, were lost between the insert and the queue (a crash, a Redis that lost its stream): they go on the
   * queue again. A record still waiting in a busy shard is left alone; one enqueued twice is rated once.
   */
  /**
   * What the rating loop still owes for recently accepted records (the sweeper's window): guided chargeable
   * records neither rated nor in suspense, and, for the drain's report, how many of the window's records are
   * rated and how many wait in suspense.
   */
  async backlog(): Promise<{ pending: number; rated: number; suspense: number }> {
    const since = new Date(this.deps.clock.now().getTime() - SWEEP_WINDOW_SECONDS * 1000).toISOString();
    const rated = this.deps.rated.rated(sql`u.id`);
    const [row] = await queryRows<{ pending: number; rated: number; suspense: number }>(
      this.deps.database.db,
      sql`select
            count(*) filter (where not ${rated} and s.usage_id is null)::int as pending,
            count(*) filter (where ${rated})::int as rated,
            count(s.usage_id)::int as suspense
          from usage_records u
          left join lateral (select usage_id from usage_suspense
            where usage_id = u.id and resolved_at is null limit 1) s on true
          where u.product_id is not null and u.chargeable and u.received_at >= ${since}::timestamptz`,
    );
    return row ?? { pending: 0, rated: 0, suspense: 0 };
  }

  async sweep(queue: UsageQueue, afterSeconds = SWEEP_AFTER_SECONDS): Promise<number> {
    const nowMs = this.deps.clock.now().getTime();
    const rows = await queryRows<{ id: string }>(
      this.deps.database.db,
      sql`select u.id from usage_records u
          where u.product_id is not null and u.chargeable
            and u.received_at >= ${new Date(nowMs - SWEEP_WINDOW_SECONDS * 1000).toISOString()}::timestamptz
            and u.received_at < ${new Date(nowMs - afterSeconds * 1000).toISOString()}::timestamptz
            and not ${this.deps.rated.rated(sql`u.id`)}
            and not exists (select 1 from usage_suspense s where s.usage_id = u.id and s.resolved_at is null)
          order by u.id
          limit ${SWEEP_BATCH}`,
    );
    if (rows.length === 0) return 0;
    const records = await this.deps.database.db
      .select()
      .from(usageRecords)
      .where(
        inArray(
          usageRecords.id,
          rows.map((row) => row.id),
        ),
      )
      // In acceptance order (ids are time-ordered), so an account's records are rated in the order they came.
      .orderBy(asc(usageRecords.id));
    const depths = new Map<number, number>();
    const lost: QueuedUsage[] = [];
    for (const row of records) {
      const shard = queue.shardOf(row.billingAccountId ?? "");
      if (!depths.has(shard)) depths.set(shard, await queue.depth(shard));
      if ((depths.get(shard) ?? 0) > 0) continue;
      const usage = queuedUsage({
        usageId: row.id,
        record: recordOfRow(row),
        guided: { ok: true, productId: row.productId ?? "", billingAccountId: row.billingAccountId ?? "" },
      });
      if (usage !== null) lost.push(usage);
    }
    await queue.enqueue(lost);
    return lost.length;
  }

  /**
   * Puts records the rating loop could not rate into suspense (or back, with the new reason), inside the rating
   * transaction `tx` (the charging module calls this; suspense is this module's).
   */
  async suspend(
    tx: Db,
    items: ReadonlyArray<{ usageId: string; reason: string; message: string }>,
    at: string,
  ): Promise<void> {
    if (items.length === 0) return;
    await queryRows(
      tx,
      sql`insert into usage_suspense (usage_id, reason, message, since, attempts, last_attempt_at)
          select x.usage, x.reason, x.message, ${at}::timestamptz, 1, ${at}::timestamptz
          from jsonb_to_recordset(${JSON.stringify(items.map((item) => ({ usage: item.usageId, reason: item.reason, message: item.message })))}::jsonb)
            as x(usage uuid, reason text, message text)
          on conflict (usage_id) do update set reason = excluded.reason, message = excluded.message,
            resolved_at = null, resolution = null, attempts = usage_suspense.attempts + 1,
            last_attempt_at = excluded.last_attempt_at`,
    );
  }

  /** Re-guides one suspended record; answers it as it is afterwards (resolved, or open with the new reason). */
  async reguideOne(actor: Actor, id: string): Promise<SuspendedUsage> {
    const current = await this.getSuspense(id);
    if (current.state === "resolved") {
      throw new AppError(
        "conflict",
        "already_resolved",
        `suspended usage ${id} was resolved already (${current.resolution})`,
      );
    }
    if (current.reason === "missing_characteristics") {
      throw new AppError(
        "conflict",
        "not_guidable",
        `suspended usage ${id} names no CDR fields, so nothing can guide it; send the record again with its usageCharacteristic`,
      );
    }
    await this.reguide(actor, eq(usageSuspense.usageId, id), 1, id);
    return this.getSuspense(id);
  }

  async reguideMany(actor: Actor, filter: ReguideFilter): Promise<ReguideResult> {
    const conditions: SQL[] = [];
    if (filter.reason) conditions.push(inArray(usageSuspense.reason, [...filter.reason]));
    if (filter.source) conditions.push(inArray(usageRecords.source, [...filter.source]));
    if (filter.servedMSISDN) conditions.push(inArray(usageRecords.servedMsisdn, [...filter.servedMSISDN]));
    return this.reguide(actor, and(...conditions), filter.limit ?? SUSPENSE_REGUIDE_MAX, "bulk");
  }

  /**
   * Locks open suspense rows (skipping those another re-guide holds), guides each again against fresh line
   * data, then in the same transaction moves the guided ones out of suspense and counts an attempt on the
   * rest. The guided records go on the queue once the transaction has committed.
   */
  private async reguide(actor: Actor, where: SQL | undefined, limit: number, auditId: string): Promise<ReguideResult> {
    const now = this.deps.clock.now();
    const { result, queued } = await this.deps.database.transaction(async (tx) => {
      // A usage kept as its body names no number to guide on; it stays in suspense until it is sent again whole.
      const guidable = and(isNull(usageSuspense.resolvedAt), isNull(usageRecords.body));
      const rows = await this.suspended(tx, and(guidable, where), limit, true);
      const records = rows.map((row) => recordOfRow(row.usage_records));
      const guided = await this.deps.lines.guideAll(tx, records);
      const moved: Array<{ id: string; product_id: string; billing_account_id: string }> = [];
      const still: Array<{ id: string; reason: string; message: string }> = [];
      const queued: QueuedUsage[] = [];
      rows.forEach((row, i) => {
        const outcome = guided[i] as Guided;
        const id = row.usage_records.id;
        if (outcome.ok) {
          moved.push({ id, product_id: outcome.productId, billing_account_id: outcome.billingAccountId });
          const usage = queuedUsage({ usageId: id, record: records[i] as CdrRecord, guided: outcome });
          if (usage !== null) queued.push(usage);
        } else still.push({ id, reason: outcome.reason, message: outcome.message });
      });
      const at = now.toISOString();
      if (moved.length > 0) {
        await queryRows(
          tx,
          sql`update usage_records u
              set product_id = x.product_id, billing_account_id = x.billing_account_id, guided_at = ${at}::timestamptz
              from jsonb_to_recordset(${JSON.stringify(moved)}::jsonb) as x(id uuid, product_id uuid, billing_account_id uuid)
              where u.id = x.id`,
        );
        await queryRows(
          tx,
          sql`update usage_suspense s
              set resolved_at = ${at}::timestamptz, resolution = 'reguided', attempts = s.attempts + 1,
                  last_attempt_at = ${at}::timestamptz
              from jsonb_to_recordset(${JSON.stringify(moved)}::jsonb) as x(id uuid)
              where s.usage_id = x.id`,
        );
      }
      if (still.length > 0) {
        await queryRows(
          tx,
          sql`update usage_suspense s
              set reason = x.reason, message = x.message, attempts = s.attempts + 1, last_attempt_at = ${at}::timestamptz
              from jsonb_to_recordset(${JSON.stringify(still)}::jsonb) as x(id uuid, reason text, message text)
              where s.usage_id = x.id`,
        );
      }
      const result = { examined: rows.length, guided: moved.length, stillSuspended: still.length };
      await this.deps.audit.record(tx, actor, {
        action: "reguide",
        entityType: "usageSuspense",
        entityId: auditId,
        after: { ...result, guidedUsageIds: moved.map((row) => row.id) },
      });
      return { result, queued };
    });
    await this.deps.ingest.enqueue(queued);
    return result;
  }
}
