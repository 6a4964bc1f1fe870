import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../../platform/clock.js";
import { type Database, queryRows } from "../../platform/database.js";
import { newId } from "../../shared/ids.js";
import { canonicalJson } from "../../shared/objects.js";
import { type CdrFormat, type CdrRecord, type CheckContext, checkCdr, digestOf, type Rejection } from "./cdr-record.js";
import type { Guided, LineIndex } from "./line-index.js";
import type { SourceRegistry } from "./sources.service.js";
import type { QueuedUsage, UsageQueue } from "./usage-queue.js";

/** One record of a request as it arrived: a parsed value, or a refusal from parsing it. */
export interface IncomingRecord {
  value?: unknown;
  rejection?: Rejection;
  /** NDJSON and CSV line number, for the answer. */
  line?: number;
  /** Switch formats: whether the leg is charged, and why not. */
  chargeable?: boolean;
  note?: string;
}

export type UsageStatus = "received" | "guided" | "recycled" | "rated" | "billed";

export interface RecordOutcome {
  index: number;
  line?: number;
  outcome: "accepted" | "duplicate" | "conflict" | "rejected";
  source?: string;
  cdrId?: string;
  usageId?: string;
  /** Accepted records: guided to a line, or recycled (in suspense), or only received (not chargeable). */
  status?: UsageStatus;
  field?: string;
  reason?: string;
  note?: string;
}

export interface IngestResult {
  received: number;
  accepted: number;
  duplicate: number;
  conflict: number;
  rejected: number;
  records: RecordOutcome[];
}

interface Candidate {
  index: number;
  record: CdrRecord;
  digest: string;
  usageId: string;
  guided: Guided | null;
  /** The digest stored under this record's key: its own if it was inserted, else the first acceptance's. */
  acceptedDigest: string;
}

export interface IngestDeps {
  database: Database;
  clock: Clock;
  sources: SourceRegistry;
  lines: LineIndex;
  queue: UsageQueue;
  log: FastifyBaseLogger;
}

/**
 * CDR ingestion (DESIGN.md §4, steps 1–2): check every record on its own, guide it, insert the new ones in
 * one statement (idempotency key, usage row and suspense row together, `ON CONFLICT DO NOTHING`), then put
 * the newly inserted guided ones on their accounts' shards, and answer with every record's outcome. Nothing is
 * answered as accepted before it is committed; a record is enqueued only by the request that inserted it, so
 * a retry or a parallel duplicate never reaches the queue twice.
 */
export class IngestService {
  private readonly order = new EnqueueOrder();

  constructor(private readonly deps: IngestDeps) {}

  /** `sendsFor`: the sources the sender's key may send for (absent: any). */
  async ingest(
    items: readonly IncomingRecord[],
    format: CdrFormat,
    sendsFor?: ReadonlySet<string>,
  ): Promise<IngestResult> {
    const nowMs = this.deps.clock.now().getTime();
    const sources = await this.deps.sources.resolve(items.map((item) => sourceNameOf(item.value)));
    const outcomes: RecordOutcome[] = new Array(items.length);
    const firstByKey = new Map<string, Candidate>();
    const repeats: Array<{ candidate: Candidate; first: Candidate }> = [];
    const candidates: Candidate[] = [];
    // Taken with the ids, in the same tick: this request's records reach the queue after those of every request
    // that took its ids earlier in this process (see EnqueueOrder).
    const ticket = this.order.take();

    items.forEach((item, index) => {
      const line = item.line === undefined ? {} : { line: item.line };
      if (item.rejection !== undefined) {
        outcomes[index] = { index, ...line, outcome: "rejected", ...identityOf(item.value), ...item.rejection };
        return;
      }
      const context: CheckContext = {
        format,
        nowMs,
        sourceOf: (id) => sources.get(id),
        ...(sendsFor === undefined ? {} : { sendsFor }),
        ...(item.chargeable === undefined ? {} : { chargeable: item.chargeable }),
        ...(item.note === undefined ? {} : { note: item.note }),
      };
      const checked = checkCdr(item.value, context);
      if (!checked.ok) {
        outcomes[index] = { index, ...line, outcome: "rejected", ...identityOf(item.value), ...checked.rejection };
        return;
      }
      const candidate: Candidate = {
        index,
        record: checked.record,
        digest: digestOf(checked.record),
        usageId: newId(nowMs),
        guided: null,
        acceptedDigest: "",
      };
      candidate.acceptedDigest = candidate.digest;
      const key = `${checked.record.source}\u0000${checked.record.cdrId}`;
      const first = firstByKey.get(key);
      if (first !== undefined) repeats.push({ candidate, first });
      else {
        firstByKey.set(key, candidate);
        candidates.push(candidate);
      }
    });

    try {
      return await this.store(items, outcomes, candidates, repeats, nowMs, ticket);
    } finally {
      this.order.release(ticket);
    }
  }

  private async store(
    items: readonly IncomingRecord[],
    outcomes: RecordOutcome[],
    candidates: Candidate[],
    repeats: Array<{ candidate: Candidate; first: Candidate }>,
    nowMs: number,
    ticket: number,
  ): Promise<IngestResult> {
    if (candidates.length > 0) {
      const guided = await this.deps.lines.guideAll(
        this.deps.database.db,
        candidates.map((candidate) => candidate.record),
      );
      candidates.forEach((candidate, i) => {
        candidate.guided = guided[i] as Guided;
      });
      const inserted = await this.insert(candidates, nowMs);
      // Enqueue what this request inserted at once, before anything else can fail and hide it behind a retry,
      // in acceptance order.
      await this.order.turn(ticket);
      await this.enqueue(
        candidates
          .filter((candidate) => inserted.has(candidate.usageId))
          .map((candidate) => queuedUsage(candidate))
          .filter((usage): usage is QueuedUsage => usage !== null),
      );
      const existing = await this.existingKeys(candidates.filter((candidate) => !inserted.has(candidate.usageId)));
      for (const candidate of candidates) {
        const base = { index: candidate.index, ...lineOf(items[candidate.index]), ...keyOf(candidate.record) };
        if (inserted.has(candidate.usageId)) {
          outcomes[candidate.index] = {
            ...base,
            outcome: "accepted",
            usageId: candidate.usageId,
            ...statusOf(candidate),
          };
          continue;
        }
        const stored = existing.get(`${candidate.record.source}\u0000${candidate.record.cdrId}`);
        if (stored === undefined) throw new Error("a CDR key was neither inserted nor found");
        candidate.usageId = stored.usageId;
        candidate.acceptedDigest = stored.digest;
        outcomes[candidate.index] =
          stored.digest === candidate.digest
            ? { ...base, outcome: "duplicate", usageId: stored.usageId }
            : { ...base, outcome: "conflict", usageId: stored.usageId, reason: CONFLICT_REASON };
      }
    }
    for (const { candidate, first } of repeats) {
      const base = { index: candidate.index, ...lineOf(items[candidate.index]), ...keyOf(candidate.record) };
      outcomes[candidate.index] =
        candidate.digest === first.acceptedDigest
          ? { ...base, outcome: "duplicate", usageId: first.usageId }
          : { ...base, outcome: "conflict", usageId: first.usageId, reason: CONFLICT_REASON };
    }
    return summarize(outcomes);
  }

  /** Records are durable in PostgreSQL already; a queue that is down delays rating, it loses nothing. */
  async enqueue(queued: readonly QueuedUsage[]): Promise<void> {
    if (queued.length === 0) return;
    try {
      await this.deps.queue.enqueue(queued);
    } catch (error) {
      this.deps.log.error(
        { err: error, records: queued.length },
        "accepted CDRs could not be put on the rating queue; they stay in PostgreSQL for the sweeper",
      );
    }
  }

  /**
   * One statement: the keys that are new, their usage rows and, for the unguided chargeable ones, their
   * suspense rows. Data-modifying CTEs run once and completely, so the three stand or fall together.
   */
  private async insert(candidates: readonly Candidate[], nowMs: number): Promise<Set<string>> {
    const receivedAt = new Date(nowMs).toISOString();
    // Keys in one fixed order: two batches sharing keys in another order would otherwise wait on each other's
    // uncommitted inserts, and PostgreSQL would abort one of them as a deadlock.
    const ordered = [...candidates].sort((a, b) =>
      a.record.source === b.record.source
        ? compareText(a.record.cdrId, b.record.cdrId)
        : compareText(a.record.source, b.record.source),
    );
    const rows = ordered.map((candidate) => {
      const { record, guided } = candidate;
      const suspended = guided !== null && !guided.ok && record.chargeable;
      return {
        id: candidate.usageId,
        source: record.source,
        cdr_id: record.cdrId,
        digest: candidate.digest,
        format: record.format,
        record_type: record.recordType,
        served_msisdn: record.servedMsisdn,
        served_imsi: record.servedImsi,
        called_number: record.calledNumber,
        direction: record.direction,
        visited_network: record.visitedNetwork,
        rating_group: record.ratingGroup,
        started_at: new Date(record.startedAtMs).toISOString(),
        duration: record.duration,
        volume_uplink: record.volumeUplink,
        volume_downlink: record.volumeDownlink,
        messages: record.messages,
        chargeable: record.chargeable,
        note: record.note,
        product_id: guided?.ok ? guided.productId : null,
        billing_account_id: guided?.ok ? guided.billingAccountId : null,
        suspense_reason: suspended && guided !== null && !guided.ok ? guided.reason : null,
        suspense_message: suspended && guided !== null && !guided.ok ? guided.message : null,
      };
    });
    const inserted = await queryRows<{ usage_id: string }>(
      this.deps.database.db,
      sql`
        with input as (
          select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(
            id uuid, source text, cdr_id text, digest text, format text, record_type text, served_msisdn text,
            served_imsi text, called_number text, direction text, visited_network text, rating_group bigint,
            started_at timestamptz, duration integer, volume_uplink bigint, volume_downlink bigint,
            messages integer, chargeable boolean, note text, product_id uuid, billing_account_id uuid,
            suspense_reason text, suspense_message text)
        ),
        keys as (
          insert into usage_keys (source, cdr_id, usage_id, digest)
          select source, cdr_id, id, digest from input
          on conflict do nothing
          returning usage_id
        ),
        usage as (
          insert into usage_records (id, source, cdr_id, format, record_type, served_msisdn, served_imsi,
            called_number, direction, visited_network, rating_group, started_at, duration, volume_uplink,
            volume_downlink, messages, chargeable, note, product_id, billing_account_id, received_at, guided_at)
          select i.id, i.source, i.cdr_id, i.format, i.record_type, i.served_msisdn, i.served_imsi,
            i.called_number, i.direction, i.visited_network, i.rating_group, i.started_at, i.duration,
            i.volume_uplink, i.volume_downlink, i.messages, i.chargeable, i.note, i.product_id,
            i.billing_account_id, ${receivedAt}::timestamptz,
            case when i.product_id is null then null else ${receivedAt}::timestamptz end
          from input i join keys k on k.usage_id = i.id
          returning id
        ),
        suspended as (
          insert into usage_suspense (usage_id, reason, message, since, attempts, last_attempt_at)
          select i.id, i.suspense_reason, i.suspense_message, ${receivedAt}::timestamptz, 1, ${receivedAt}::timestamptz
          from input i join keys k on k.usage_id = i.id
          where i.suspense_reason is not null
          returning usage_id
        )
        select usage_id from keys`,
    );
    return new Set(inserted.map((row) => row.usage_id));
  }

  /**
   * A TMF635 usage sent without characteristics names no `(source, cdrId)` and no number: it is kept as sent, in
   * suspense as `missing_characteristics`, under the digest of its body (source `#tmf635`, which no registered
   * source can be named, cdrId `sha256:…`), key, row and suspense in one statement like `insert`. The same body
   * again is a duplicate of the first; nothing is queued, since nothing can guide it.
   */
  async keepUncharacterised(body: unknown): Promise<{ usageId: string; created: boolean }> {
    const nowMs = this.deps.clock.now().getTime();
    const at = new Date(nowMs).toISOString();
    const digest = createHash("sha256").update(canonicalJson(body)).digest("hex");
    const cdrId = `sha256:${digest}`;
    const kept = await queryRows<{ usage_id: string }>(
      this.deps.database.db,
      sql`
        with keys as (
          insert into usage_keys (source, cdr_id, usage_id, digest)
          values (${BODY_SOURCE}, ${cdrId}, ${newId(nowMs)}::uuid, ${digest})
          on conflict do nothing
          returning usage_id
        ),
        usage as (
          insert into usage_records (id, source, cdr_id, format, chargeable, received_at, body)
          select usage_id, ${BODY_SOURCE}, ${cdrId}, 'tmf635', true, ${at}::timestamptz, ${JSON.stringify(body)}::jsonb
          from keys
          returning id
        ),
        suspended as (
          insert into usage_suspense (usage_id, reason, message, since, attempts, last_attempt_at)
          select usage_id, 'missing_characteristics', ${MISSING_CHARACTERISTICS}, ${at}::timestamptz, 1, ${at}::timestamptz
          from keys
          returning usage_id
        )
        select usage_id from keys`,
    );
    if (kept[0] !== undefined) return { usageId: kept[0].usage_id, created: true };
    const first = await this.existingKeys([{ record: { source: BODY_SOURCE, cdrId } }]);
    const stored = first.get(`${BODY_SOURCE}\u0000${cdrId}`);
    if (stored === undefined) throw new Error("a usage body's key was neither inserted nor found");
    return { usageId: stored.usageId, created: false };
  }

  /** The stored key of each record that was not inserted: the first acceptance of the same (source, cdrId). */
  private async existingKeys(
    candidates: ReadonlyArray<{ record: Pick<CdrRecord, "source" | "cdrId"> }>,
  ): Promise<Map<string, { usageId: string; digest: string }>> {
    const found = new Map<string, { usageId: string; digest: string }>();
    if (candidates.length === 0) return found;
    const keys = candidates.map((candidate) => ({ source: candidate.record.source, cdr_id: candidate.record.cdrId }));
    const rows = await queryRows<{ source: string; cdr_id: string; usage_id: string; digest: string }>(
      this.deps.database.db,
      sql`select k.source, k.cdr_id, k.usage_id, k.digest
          from jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) as x(source text, cdr_id text)
          join usage_keys k on k.source = x.source and k.cdr_id = x.cdr_id`,
    );
    for (const row of rows)
      found.set(`${row.source}\u0000${row.cdr_id}`, { usageId: row.usage_id, digest: row.digest });
    return found;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The source of usages kept as their body: `#` is outside every registered source's name. */
const BODY_SOURCE = "#tmf635";
const MISSING_CHARACTERISTICS =
  "the usage names no CDR fields (it has no usageCharacteristic), so no line can be found for it; send it again with its characteristics (source, cdrId, servedMSISDN, …)";

const CONFLICT_REASON = "this source already sent this cdrId with a different record; it is not charged";

function sourceNameOf(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return null;
  const source = (value as { source?: unknown }).source;
  return typeof source === "string" ? source : null;
}

/** The element's own identifiers of a record, echoed in its outcome when they are readable. */
function identityOf(value: unknown): { source?: string; cdrId?: string } {
  if (typeof value !== "object" || value === null) return {};
  const { source, cdrId } = value as { source?: unknown; cdrId?: unknown };
  const out: { source?: string; cdrId?: string } = {};
  if (typeof source === "string" && source.length <= 64 && !source.includes("\u0000")) out.source = source;
  if (typeof cdrId === "string" && cdrId.length <= 128 && !cdrId.includes("\u0000")) out.cdrId = cdrId;
  return out;
}

function keyOf(record: CdrRecord): { source: string; cdrId: string } {
  return { source: record.source, cdrId: record.cdrId };
}

function lineOf(item: IncomingRecord | undefined): { line?: number } {
  return item?.line === undefined ? {} : { line: item.line };
}

function statusOf(candidate: Candidate): Pick<RecordOutcome, "status" | "reason" | "note"> {
  const note = candidate.record.note === null ? {} : { note: candidate.record.note };
  if (candidate.guided?.ok) return { status: "guided", ...note };
  if (!candidate.record.chargeable) return { status: "received", ...note };
  return { status: "recycled", reason: candidate.guided?.ok === false ? candidate.guided.message : "", ...note };
}

export function queuedUsage(candidate: {
  usageId: string;
  record: CdrRecord;
  guided: Guided | null;
}): QueuedUsage | null {
  const { record, guided } = candidate;
  if (guided === null || !guided.ok || !record.chargeable) return null;
  return {
    usageId: candidate.usageId,
    billingAccountId: guided.billingAccountId,
    productId: guided.productId,
    source: record.source,
    cdrId: record.cdrId,
    recordType: record.recordType,
    direction: record.direction,
    startedAtMs: record.startedAtMs,
    calledNumber: record.calledNumber,
    visitedNetwork: record.visitedNetwork,
    ratingGroup: record.ratingGroup,
    duration: record.duration,
    volumeUplink: record.volumeUplink,
    volumeDownlink: record.volumeDownlink,
    messages: record.messages,
  };
}

function summarize(outcomes: RecordOutcome[]): IngestResult {
  const count = (outcome: RecordOutcome["outcome"]) => outcomes.filter((item) => item.outcome === outcome).length;
  return {
    received: outcomes.length,
    accepted: count("accepted"),
    duplicate: count("duplicate"),
    conflict: count("conflict"),
    rejected: count("rejected"),
    records: outcomes,
  };
}

/**
 * Keeps the queue in acceptance order: usage ids are time-ordered and made in this process in the order requests
 * take their tickets, and a request puts its records on the queue only when every request that took a ticket
 * before it has put its own there (or ended without). So one account's records are rated in id order even when
 * several connections send them at once, and a replay of the stored records in id order rates them the same way.
 */
export class EnqueueOrder {
  #next = 0;
  #turn = 0;
  readonly #released = new Set<number>();
  readonly #waiting = new Map<number, () => void>();

  take(): number {
    return this.#next++;
  }

  /** Resolves when every earlier ticket has been released. */
  async turn(ticket: number): Promise<void> {
    if (ticket === this.#turn) return;
    await new Promise<void>((resolve) => this.#waiting.set(ticket, resolve));
  }

  /** The ticket's holder is done (enqueued, or failed before): later tickets may go. */
  release(ticket: number): void {
    this.#released.add(ticket);
    while (this.#released.delete(this.#turn)) this.#turn += 1;
    const wake = this.#waiting.get(this.#turn);
    if (wake !== undefined) {
      this.#waiting.delete(this.#turn);
      wake();
    }
  }
}
