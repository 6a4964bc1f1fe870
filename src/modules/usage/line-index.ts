import type { Db } from "../../platform/database.js";
import type { GuidingFilter, GuidingLine } from "../subscriptions/index.js";

/** Why a record is in suspense: guiding gives the first four, rating the next eight, ingestion the last. */
export const SUSPENSE_REASONS = [
  "unknown_number",
  "no_line_at_time",
  "line_not_active",
  "identity_mismatch",
  "line_suspended",
  "no_tariff",
  "no_rate",
  "no_roaming_zone",
  "invalid_event",
  "no_line",
  "no_account",
  "rating_failed",
  // A TMF635 usage sent without characteristics: kept as sent, never guided (it names no number).
  "missing_characteristics",
] as const;
export type SuspenseReason = (typeof SUSPENSE_REASONS)[number];

export type Guided =
  | { ok: true; productId: string; billingAccountId: string }
  | { ok: false; reason: SuspenseReason; message: string };

export interface GuidingQuery {
  servedMsisdn: string | null;
  servedImsi: string | null;
  startedAtMs: number;
}

export interface LineSource {
  guidingLines(db: Db, filter: GuidingFilter): Promise<GuidingLine[]>;
}

const LOAD_PAGE = 10_000;

/**
 * Number → line → account at a CDR's time, from memory (DESIGN.md §4, step 2). The index is loaded once,
 * kept current by line events (this process's own changes and other processes' over the broadcast) and
 * reloaded on a timer in case an event was missed. Memory is trusted only for a positive answer: a record
 * the index cannot guide is looked up in PostgreSQL before it goes to suspense, so a line activated a moment
 * ago in another process is never missed.
 */
export class LineIndex {
  private byMsisdn = new Map<string, GuidingLine[]>();
  private byImsi = new Map<string, GuidingLine[]>();
  private byProduct = new Map<string, GuidingLine>();
  /** Lines applied while a full load runs; applied again on top of the loaded maps, which were read earlier. */
  private duringLoad: GuidingLine[] | null = null;

  constructor(private readonly lines: LineSource) {}

  get size(): number {
    return this.byProduct.size;
  }

  async loadAll(db: Db): Promise<void> {
    const fresh = new LineIndex(this.lines);
    this.duringLoad = [];
    try {
      let after: string | null = null;
      for (;;) {
        const page = await this.lines.guidingLines(db, { after, limit: LOAD_PAGE });
        fresh.apply(page);
        if (page.length < LOAD_PAGE) break;
        after = (page[page.length - 1] as GuidingLine).productId;
      }
      fresh.apply(this.duringLoad);
    } finally {
      this.duringLoad = null;
    }
    this.byMsisdn = fresh.byMsisdn;
    this.byImsi = fresh.byImsi;
    this.byProduct = fresh.byProduct;
  }

  async refresh(db: Db, productIds: readonly string[]): Promise<void> {
    this.apply(await this.lines.guidingLines(db, { productIds }));
  }

  /** Takes each line unless what the index holds is newer: refreshes may finish out of order. */
  apply(lines: readonly GuidingLine[]): void {
    this.duringLoad?.push(...lines);
    for (const line of lines) {
      const previous = this.byProduct.get(line.productId);
      if (previous !== undefined && previous.version > line.version) continue;
      if (previous !== undefined) {
        remove(this.byMsisdn, previous.msisdn, previous.productId);
        if (previous.imsi !== null) remove(this.byImsi, previous.imsi, previous.productId);
      }
      this.byProduct.set(line.productId, line);
      add(this.byMsisdn, line.msisdn, line);
      if (line.imsi !== null) add(this.byImsi, line.imsi, line);
    }
  }

  /** Guides from memory only. */
  guide(query: GuidingQuery): Guided {
    const byNumber =
      query.servedMsisdn === null ? null : decide(this.byMsisdn.get(query.servedMsisdn), query.servedMsisdn, query);
    const bySim = query.servedImsi === null ? null : decide(this.byImsi.get(query.servedImsi), query.servedImsi, query);
    if (byNumber?.ok && bySim?.ok && byNumber.productId !== bySim.productId) {
      return {
        ok: false,
        reason: "identity_mismatch",
        message: `servedMSISDN ${query.servedMsisdn} and servedIMSI ${query.servedImsi} belong to different lines`,
      };
    }
    if (byNumber?.ok) return byNumber;
    if (bySim?.ok) return bySim;
    return (byNumber ?? bySim) as Guided;
  }

  /** Guides a batch; records memory cannot guide are looked up in PostgreSQL (one query per identity kind). */
  async guideAll(db: Db, queries: readonly GuidingQuery[]): Promise<Guided[]> {
    const results = queries.map((query) => this.guide(query));
    const missed = queries.filter((_, index) => !(results[index] as Guided).ok);
    if (missed.length === 0) return results;
    const msisdns = [...new Set(missed.flatMap((query) => (query.servedMsisdn === null ? [] : [query.servedMsisdn])))];
    const imsis = [...new Set(missed.flatMap((query) => (query.servedImsi === null ? [] : [query.servedImsi])))];
    if (msisdns.length > 0) this.apply(await this.lines.guidingLines(db, { msisdns }));
    if (imsis.length > 0) this.apply(await this.lines.guidingLines(db, { imsis }));
    return queries.map((query, index) =>
      (results[index] as Guided).ok ? (results[index] as Guided) : this.guide(query),
    );
  }
}

function add(map: Map<string, GuidingLine[]>, key: string, line: GuidingLine): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [line]);
  else list.push(line);
}

function remove(map: Map<string, GuidingLine[]>, key: string, productId: string): void {
  const list = map.get(key);
  if (list === undefined) return;
  const kept = list.filter((line) => line.productId !== productId);
  if (kept.length === 0) map.delete(key);
  else map.set(key, kept);
}

function decide(lines: GuidingLine[] | undefined, identity: string, query: GuidingQuery): Guided {
  if (lines === undefined || lines.length === 0) {
    return { ok: false, reason: "unknown_number", message: `no line has ever held ${identity}` };
  }
  let holder: GuidingLine | undefined;
  for (const line of lines) {
    const holds = line.fromMs <= query.startedAtMs && (line.toMs === null || query.startedAtMs < line.toMs);
    if (holds && (holder === undefined || line.fromMs > holder.fromMs)) holder = line;
  }
  const at = new Date(query.startedAtMs).toISOString();
  if (holder === undefined) {
    return { ok: false, reason: "no_line_at_time", message: `no line held ${identity} at ${at}` };
  }
  if (holder.status === "created" || holder.status === "pendingActive") {
    return {
      ok: false,
      reason: "line_not_active",
      message: `the line holding ${identity} at ${at} is not active yet (${holder.status})`,
    };
  }
  if (holder.status === "aborted") {
    return {
      ok: false,
      reason: "line_not_active",
      message: `the line holding ${identity} at ${at} was never activated (its order failed)`,
    };
  }
  return { ok: true, productId: holder.productId, billingAccountId: holder.billingAccountId };
}
