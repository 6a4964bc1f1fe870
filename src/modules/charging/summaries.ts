import { and, asc, eq, gt, gte, inArray, isNotNull, lt, lte, type SQL, sql } from "drizzle-orm";
import { type Database, type Db, queryRows } from "../../platform/database.js";
import { isId } from "../../shared/ids.js";
import { Money } from "../../shared/money.js";
import type { RatedView, Rating } from "../usage/index.js";
import { balanceOperations, ratedUsage, type SummaryRow, usageSummaries } from "./charging.tables.js";

/** One summary as billing reads it: the totals of its rated rows and how far an invoice has billed them. */
export interface UsageSummary {
  id: string;
  billingAccountId: string;
  /** The bill period the usage counts in (the key `cyclePeriod` gives on the account's cycle). */
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

/** A summary with what of it an invoice has not billed yet: rows fromSeq…toSeq and their totals. */
export interface UnbilledUsage extends UsageSummary {
  fromSeq: number;
  toSeq: number;
  unbilledQuantity: number;
  unbilledChargedUnits: number;
  unbilledAmount: Money;
}

/** A credit to a postpaid account's spend to date (adjustBalance). */
export interface SpendCredit {
  id: string;
  productId: string;
  amount: Money;
  currency: string;
  at: Date;
  reason: string | null;
}

export const SUMMARY_PAGE_MAX = 10_000;

/**
 * Writes rated rows with their summaries, in one statement of the rating transaction (DESIGN.md §10): the rows
 * not rated before are grouped by (account, usage period, line, service, zone), each summary is upserted with their
 * totals and they take the numbers after its last one, in acceptance order, and are inserted with them. A row
 * rated already (a batch rated again after a lost acknowledgement) adds nothing. Should another transaction insert
 * one of these rows between the check and the insert, the summary would count it twice, so that answers
 * `RatedRace` and the caller's transaction rolls back (the rating loop retries the batch).
 * `rated`: the rows as the rating step made them (`RatedResult`).
 */
export async function recordRated(tx: Db, rated: readonly object[], at: string): Promise<void> {
  if (rated.length === 0) return;
  const [counts] = await queryRows<{ fresh: number; inserted: number }>(
    tx,
    bind(RECORD_RATED_SQL, [JSON.stringify(rated), at]),
  );
  if (counts !== undefined && counts.fresh !== counts.inserted) throw new RatedRace(counts.fresh, counts.inserted);
}

export class RatedRace extends Error {
  constructor(fresh: number, inserted: number) {
    super(`${fresh - inserted} of ${fresh} rated rows were inserted by another transaction meanwhile; retry the batch`);
    this.name = "RatedRace";
  }
}

/**
 * The statement, with its two parameters ($1: the rated rows as a JSON array, $2: the rating time): the engine's
 * rating transaction and bench/rating's bare worker send the same text.
 */
export const RECORD_RATED_SQL = `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as x("usageId" uuid, "billingAccountId" uuid, "productId" uuid,
      "startedAt" timestamptz, "tariffId" text, "tariffVersion" integer, "recordType" text, destination text,
      roaming text, quantity bigint, "allowanceUnits" bigint, "chargedUnits" bigint, draws jsonb, amount numeric,
      currency text, prepaid boolean, "spendPeriod" text)
  ),
  fresh as (
    select i.*, i."billingAccountId" as billing_account_id, i."spendPeriod" as usage_period,
      i."productId" as product_id, i."recordType" as service, coalesce(i.destination, '') as zone
    from input i
    where not exists (select 1 from rated_usage r where r.usage_id = i."usageId")
  ),
  totals as (
    select billing_account_id, usage_period, product_id, service, zone, bool_or(prepaid) as prepaid,
      min(currency) as currency, sum(quantity) as quantity, sum("chargedUnits") as charged_units,
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
  inserted as (
    insert into rated_usage (usage_id, billing_account_id, product_id, rated_at, started_at, tariff_id,
      tariff_version, record_type, destination, roaming, quantity, allowance_units, charged_units, draws, amount,
      currency, prepaid, spend_period, summary_id, seq)
    select f."usageId", f."billingAccountId", f."productId", $2::timestamptz, f."startedAt", f."tariffId",
      f."tariffVersion", f."recordType", f.destination, f.roaming, f.quantity, f."allowanceUnits", f."chargedUnits",
      f.draws, f.amount, f.currency, f.prepaid, f."spendPeriod", u.id,
      u.last_seq - t.n + row_number() over (partition by u.id order by f."usageId")
    from fresh f
    join totals t using (billing_account_id, usage_period, product_id, service, zone)
    join upserted u using (billing_account_id, usage_period, product_id, service, zone)
    on conflict (usage_id) do nothing
    returning usage_id
  )
  select (select count(*) from fresh)::int as fresh, (select count(*) from inserted)::int as inserted`;

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
   * What an invoice for a usage period would bill of an account's postpaid usage: every summary of that period or
   * an earlier one with rated rows after its billed mark (earlier ones are late usage), with the quantities and the
   * amount of just those rows. Prepaid usage is never invoiced (its money moved at rating).
   */
  async unbilled(billingAccountId: string, throughPeriod: string, db: Db = this.database.db): Promise<UnbilledUsage[]> {
    if (!isId(billingAccountId)) return [];
    const summaries = await db
      .select()
      .from(usageSummaries)
      .where(
        and(
          eq(usageSummaries.billingAccountId, billingAccountId),
          eq(usageSummaries.prepaid, false),
          lte(usageSummaries.usagePeriod, throughPeriod),
          sql`${usageSummaries.billedSeq} < ${usageSummaries.lastSeq}`,
        ),
      )
      .orderBy(asc(usageSummaries.usagePeriod), asc(usageSummaries.productId), asc(usageSummaries.service));
    // A summary billed in part: the totals of its rows after the mark, up to the last number read above (rows
    // rated since are left for the next invoice, whose mark starts where this one ends).
    const partial = summaries.filter((row) => row.billedSeq > 0);
    const rests = new Map<string, { quantity: number; chargedUnits: number; amount: Money }>();
    if (partial.length > 0) {
      const ranges = sql.join(
        partial.map((row) => sql`(${row.id}::uuid, ${row.billedSeq}::bigint, ${row.lastSeq}::bigint)`),
        sql`, `,
      );
      const rows = await queryRows<{ summary_id: string; quantity: string; charged_units: string; amount: string }>(
        db,
        sql`select r.summary_id, sum(r.quantity) as quantity, sum(r.charged_units) as charged_units,
              sum(r.amount) as amount
            from (values ${ranges}) as ranges(id, from_seq, to_seq)
            join ${ratedUsage} r on r.summary_id = ranges.id and r.seq > ranges.from_seq and r.seq <= ranges.to_seq
            group by r.summary_id`,
      );
      for (const row of rows) {
        rests.set(row.summary_id, {
          quantity: Number(row.quantity),
          chargedUnits: Number(row.charged_units),
          amount: new Money(row.amount),
        });
      }
    }
    return summaries.map((row) => {
      const rest = rests.get(row.id);
      return {
        ...presentSummary(row),
        fromSeq: row.billedSeq + 1,
        toSeq: row.lastSeq,
        unbilledQuantity: rest?.quantity ?? row.quantity,
        unbilledChargedUnits: rest?.chargedUnits ?? row.chargedUnits,
        unbilledAmount: rest?.amount ?? row.amount,
      };
    });
  }

  /** How far each summary is billed (its `billed_seq`), by id: a bill run checks its drafts are still current. */
  async billedMarks(db: Db, summaryIds: readonly string[]): Promise<Map<string, number>> {
    const ids = [...new Set(summaryIds.filter(isId))];
    if (ids.length === 0) return new Map();
    const rows = await db
      .select({ id: usageSummaries.id, billedSeq: usageSummaries.billedSeq })
      .from(usageSummaries)
      .where(inArray(usageSummaries.id, ids));
    return new Map(rows.map((row) => [row.id, row.billedSeq]));
  }

  /**
   * Records what an invoice billed (with the caller's transaction): each summary's rows up to `toSeq`. A mark only
   * moves forward; rows rated after it stay unbilled for the next invoice.
   */
  async markBilled(db: Db, marks: ReadonlyArray<{ summaryId: string; toSeq: number }>): Promise<void> {
    if (marks.length === 0) return;
    const values = sql.join(
      marks.map((mark) => sql`(${mark.summaryId}::uuid, ${mark.toSeq}::bigint)`),
      sql`, `,
    );
    await db.execute(sql`update ${usageSummaries} set billed_seq = greatest(${usageSummaries.billedSeq}, marks.to_seq)
      from (values ${values}) as marks(id, to_seq) where ${usageSummaries.id} = marks.id`);
  }

  /**
   * Credits to a postpaid account's spend (adjustBalance) made in a bill period: [startMs, endMs). Positive amounts
   * credit the customer.
   */
  async spendCredits(
    billingAccountId: string,
    period: { startMs: number; endMs: number },
    db: Db = this.database.db,
  ): Promise<SpendCredit[]> {
    if (!isId(billingAccountId)) return [];
    const rows = await db
      .select()
      .from(balanceOperations)
      .where(
        and(
          eq(balanceOperations.billingAccountId, billingAccountId),
          eq(balanceOperations.kind, "adjustment"),
          isNotNull(balanceOperations.amount),
          gte(balanceOperations.createdAt, new Date(period.startMs)),
          lt(balanceOperations.createdAt, new Date(period.endMs)),
        ),
      )
      .orderBy(asc(balanceOperations.createdAt), asc(balanceOperations.id));
    return rows.flatMap((row) =>
      row.amount === null || row.productId === null
        ? []
        : [
            {
              id: row.id,
              productId: row.productId,
              amount: row.amount,
              currency: row.currency,
              at: row.createdAt,
              reason: row.reason,
            },
          ],
    );
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
      seq: row.seq,
      billed: row.seq <= summary.billedSeq,
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

/**
 * What the usage module may know of rating (its `RatedView`): whether a record is rated or billed, as conditions
 * on its id, and how a page of records was rated. Billed: its number is at most its summary's billed mark.
 */
export function ratedView(): RatedView {
  return {
    rated: (usageId) => sql`exists (select 1 from ${ratedUsage} where ${ratedUsage.usageId} = ${usageId})`,
    billed: (usageId) =>
      sql`exists (select 1 from ${ratedUsage} join ${usageSummaries} on ${usageSummaries.id} = ${ratedUsage.summaryId}
          where ${ratedUsage.usageId} = ${usageId} and ${ratedUsage.seq} <= ${usageSummaries.billedSeq})`,
    async ratings(db, usageIds) {
      const ids = usageIds.filter(isId);
      const out = new Map<string, Rating>();
      if (ids.length === 0) return out;
      const rows = await db
        .select({ rated: ratedUsage, billedSeq: usageSummaries.billedSeq })
        .from(ratedUsage)
        .leftJoin(usageSummaries, eq(usageSummaries.id, ratedUsage.summaryId))
        .where(inArray(ratedUsage.usageId, ids));
      for (const { rated, billedSeq } of rows) {
        out.set(rated.usageId, {
          ratedAt: rated.ratedAt,
          tariffId: rated.tariffId,
          productId: rated.productId,
          amount: rated.amount,
          currency: rated.currency,
          allowanceUnits: rated.allowanceUnits,
          chargedUnits: rated.chargedUnits,
          billed: billedSeq !== null && rated.seq <= billedSeq,
        });
      }
      return out;
    },
  };
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
