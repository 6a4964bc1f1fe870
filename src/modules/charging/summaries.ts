import { and, asc, eq, gt, type SQL, sql } from "drizzle-orm";
import { type Database, type Db, queryRows } from "../../platform/database.js";
import { isId } from "../../shared/ids.js";
import type { Money } from "../../shared/money.js";
import { ratedUsage, type SummaryRow, usageSummaries } from "./charging.tables.js";

/** One summary as billing reads it: the totals of its rated rows and how far an invoice has billed them. */
export interface UsageSummary {
  id: string;
  billingAccountId: string;
  /** The bill period the usage counts in (the key `billPeriod` gives). */
  usagePeriod: string;
  productId: string;
  service: string;
  /** The destination zone the tariff rated to, or null when it names none. */
  zone: string | null;
  prepaid: boolean;
  currency: string;
  quantity: number;
  chargedUnits: number;
  amount: Money;
  /** The rated rows are numbered 1…lastSeq; those up to billedSeq are billed, the rest are not yet. */
  lastSeq: number;
  billedSeq: number;
}

/** A rated row behind a summary, in its sequence. */
export interface SummarisedRow {
  usageId: string;
  seq: number;
  billed: boolean;
  productId: string;
  startedAt: Date;
  ratedAt: Date;
  tariffId: string;
  destination: string | null;
  roaming: string;
  quantity: number;
  allowanceUnits: number;
  chargedUnits: number;
  amount: Money;
  currency: string;
}

export const SUMMARY_PAGE_MAX = 10_000;

/**
 * Numbers the rated rows just inserted (`usageIds`) in their summaries and adds them to the summaries' totals,
 * in one statement of the rating transaction: each summary is upserted by (account, usage period, line, service,
 * zone) and its rows take the numbers after its last one, in acceptance order. Rows already summarised are
 * never passed (the insert that returned them is the only caller), so a retried batch adds nothing.
 */
export async function summarise(tx: Db, usageIds: readonly string[], at: string): Promise<void> {
  if (usageIds.length === 0) return;
  await queryRows(tx, bind(SUMMARISE_SQL, [JSON.stringify(usageIds), at]));
}

/**
 * The summary statement, with its two parameters ($1: the usage ids as a JSON array, $2: the rating time): the
 * engine's rating transaction and bench/rating's bare worker send the same text.
 */
export const SUMMARISE_SQL = `
  with fresh as (
    select r.usage_id, r.billing_account_id, r.spend_period as usage_period, r.product_id,
      r.record_type as service, coalesce(r.destination, '') as zone, r.prepaid, r.currency, r.quantity,
      r.charged_units, r.amount
    from rated_usage r
    where r.usage_id in (select value::uuid from jsonb_array_elements_text($1::jsonb))
  ),
  totals as (
    select billing_account_id, usage_period, product_id, service, zone, bool_or(prepaid) as prepaid,
      min(currency) as currency, sum(quantity) as quantity, sum(charged_units) as charged_units,
      sum(amount) as amount, count(*) as n
    from fresh
    group by billing_account_id, usage_period, product_id, service, zone
  ),
  upserted as (
    insert into usage_summaries as s (id, billing_account_id, usage_period, product_id, service, zone, prepaid,
      currency, quantity, charged_units, amount, last_seq, billed_seq, updated_at)
    select gen_random_uuid(), billing_account_id, usage_period, product_id, service, zone, prepaid, currency,
      quantity, charged_units, amount, n, 0, $2::timestamptz
    from totals
    on conflict (billing_account_id, usage_period, product_id, service, zone) do update set
      quantity = s.quantity + excluded.quantity,
      charged_units = s.charged_units + excluded.charged_units,
      amount = s.amount + excluded.amount,
      last_seq = s.last_seq + excluded.last_seq,
      updated_at = excluded.updated_at
    returning s.id, s.billing_account_id, s.usage_period, s.product_id, s.service, s.zone, s.last_seq
  ),
  numbered as (
    select f.usage_id, u.id as summary_id,
      u.last_seq - t.n + row_number() over (partition by u.id order by f.usage_id) as seq
    from fresh f
    join totals t using (billing_account_id, usage_period, product_id, service, zone)
    join upserted u using (billing_account_id, usage_period, product_id, service, zone)
  )
  update rated_usage r set summary_id = n.summary_id, seq = n.seq
  from numbered n
  where r.usage_id = n.usage_id`;

/** A statement written with `$n` placeholders, as drizzle SQL with those parameters bound. */
function bind(text: string, params: readonly unknown[]): SQL {
  const parts = text.split(/\$(\d+)/);
  return sql.join(
    parts.map((part, index) => (index % 2 === 0 ? sql.raw(part) : sql`${params[Number(part) - 1]}`)),
    sql.raw(""),
  );
}

/**
 * What billing reads of rated usage (DESIGN.md §10), and nothing else of the rating loop: an account's summaries
 * for a usage period, and the rated rows behind one summary, a page at a time.
 */
export class UsageSummaries {
  constructor(private readonly database: Database) {}

  /** An account's summaries for a usage period (a bill period's key), postpaid and prepaid, in line order. */
  async ofAccount(billingAccountId: string, usagePeriod: string, db: Db = this.database.db): Promise<UsageSummary[]> {
    if (!isId(billingAccountId)) return [];
    const rows = await db
      .select()
      .from(usageSummaries)
      .where(and(eq(usageSummaries.billingAccountId, billingAccountId), eq(usageSummaries.usagePeriod, usagePeriod)))
      .orderBy(asc(usageSummaries.productId), asc(usageSummaries.service), asc(usageSummaries.zone));
    return rows.map(presentSummary);
  }

  /**
   * The rated rows behind a summary in sequence order: those numbered after `afterSeq` (0: from the first), at
   * most `limit` (≤ 10,000); `nextAfterSeq` continues, null at the end.
   */
  async ratedRows(
    summaryId: string,
    page: { afterSeq?: number; limit?: number } = {},
    db: Db = this.database.db,
  ): Promise<{ rows: SummarisedRow[]; nextAfterSeq: number | null }> {
    if (!isId(summaryId)) return { rows: [], nextAfterSeq: null };
    const limit = Math.min(Math.max(page.limit ?? 1000, 1), SUMMARY_PAGE_MAX);
    const [summary] = await db.select().from(usageSummaries).where(eq(usageSummaries.id, summaryId));
    if (summary === undefined) return { rows: [], nextAfterSeq: null };
    const rows = await db
      .select()
      .from(ratedUsage)
      .where(and(eq(ratedUsage.summaryId, summaryId), gt(ratedUsage.seq, page.afterSeq ?? 0)))
      .orderBy(asc(ratedUsage.seq))
      .limit(limit);
    const out = rows.map((row) => ({
      usageId: row.usageId,
      seq: row.seq as number,
      billed: (row.seq as number) <= summary.billedSeq,
      productId: row.productId,
      startedAt: row.startedAt,
      ratedAt: row.ratedAt,
      tariffId: row.tariffId,
      destination: row.destination,
      roaming: row.roaming,
      quantity: row.quantity,
      allowanceUnits: row.allowanceUnits,
      chargedUnits: row.chargedUnits,
      amount: row.amount,
      currency: row.currency,
    }));
    const last = out[out.length - 1];
    return { rows: out, nextAfterSeq: out.length === limit && last !== undefined ? last.seq : null };
  }
}

function presentSummary(row: SummaryRow): UsageSummary {
  return {
    id: row.id,
    billingAccountId: row.billingAccountId,
    usagePeriod: row.usagePeriod,
    productId: row.productId,
    service: row.service,
    zone: row.zone === "" ? null : row.zone,
    prepaid: row.prepaid,
    currency: row.currency,
    quantity: row.quantity,
    chargedUnits: row.chargedUnits,
    amount: row.amount,
    lastSeq: row.lastSeq,
    billedSeq: row.billedSeq,
  };
}
