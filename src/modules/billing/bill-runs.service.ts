import { and, asc, count, desc, eq, inArray, sql } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { Actor } from "../../platform/audit.js";
import { SYSTEM_ACTOR } from "../../platform/audit.js";
import { type Db, queryRows } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import { crashPoint } from "../../platform/faults.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import {
  billingDayOfMonth,
  cycleAt,
  cyclePeriod,
  formatLocalDate,
  isCalendarDate,
  localDate,
  localMidnightUtc,
  type Period,
} from "../../shared/calendar.js";
import { isId, newId } from "../../shared/ids.js";
import { Money } from "../../shared/money.js";
import type { BillingAccountView } from "./billing.service.js";
import { billRunItems, billRuns, invoices } from "./billing.tables.js";
import { type Contact, type InvoicesService, lockAccounts, type Prepared } from "./invoices.service.js";

/**
 * Bill runs (DESIGN.md §10 "Drafts in parallel, numbers in sequence"): every postpaid account of a cycle day whose
 * usage period ends on a date, or the accounts named, billed once each. A run is rows: one per account, claimed in
 * bounded batches with a lease (`FOR UPDATE SKIP LOCKED`, short transactions) by any number of processes; a batch's
 * drafts are composed in parallel outside any transaction, then issued in one short transaction, set-based
 * (InvoicesService.issueAll), after checking under the accounts' locks that no invoice of theirs appeared and that
 * what each draft billed is still unbilled. A process that dies leaves its claims to lapse; another takes them again.
 * Nothing is billed twice (the unique cycle invoice per account and period, the checks), nobody is skipped (an item
 * ends invoiced, with nothing to bill, or failed with the reason), numbers stay gapless (taken in the batch's
 * transaction).
 */

export interface BillRunsDeps extends ServiceDeps {
  invoices: InvoicesService;
  accounts(db: Db, ids: readonly string[]): Promise<Map<string, BillingAccountView>>;
  /** Postpaid accounts, not closed, on a cycle day (or on it until a pending change). */
  onCycleDay(db: Db, billCycleDay: number): Promise<string[]>;
  contactFor(customerId: string): Promise<Contact | null>;
  /** When each account's last line ended (null: a line is live). */
  lineEndings(db: Db, ids: readonly string[]): Promise<Map<string, Date | null>>;
  /** Accounts whose every line ended before an instant, a page at a time. */
  accountsEndedBefore(db: Db, before: Date, afterId: string, limit: number): Promise<string[]>;
  /** Days a final bill waits after the last line ended, for late CDRs. */
  finalBillWaitDays: number;
  deliverMessage(id: string): Promise<unknown>;
  log: FastifyBaseLogger;
  /** This process, as claims name it. */
  owner: string;
  /** Accounts claimed at a time. */
  batchSize: number;
  /** How long a claim holds before another process may take it again (seconds). */
  leaseSeconds: number;
}

type RunRow = typeof billRuns.$inferSelect;

/** Claims of an account after which it is failed rather than tried again (a process dies on it each time). */
const MAX_ATTEMPTS = 5;
/** Accounts inserted into a run per statement. */
const ITEM_CHUNK = 1_000;
/** Failed accounts shown with a run. */
const FAILURES_SHOWN = 100;

export type BillRunRequest = { billCycleDay: number; periodEnd: string } | { billingAccountIds: readonly string[] };

export class BillRunsService {
  constructor(private readonly deps: BillRunsDeps) {}

  /**
   * A run for a cycle day and the local date its periods end on (201), or the existing one (200); or a run of named
   * accounts, each for its last ended usage period.
   */
  async start(actor: Actor, request: BillRunRequest): Promise<{ created: boolean; run: BillRunView }> {
    const db = this.deps.database.db;
    const now = this.deps.clock.now();
    let items: Array<{ accountId: string; periodEnd: string; dueAt: Date }>;
    let cycle: { billCycleDay: number; periodEnd: string } | null = null;
    if ("billCycleDay" in request) {
      cycle = checkCycleRequest(request, now);
      const [existing] = await db
        .select()
        .from(billRuns)
        .where(
          and(
            eq(billRuns.kind, "cycle"),
            eq(billRuns.billCycleDay, cycle.billCycleDay),
            eq(billRuns.periodEnd, cycle.periodEnd),
          ),
        );
      if (existing !== undefined) return { created: false, run: await this.view(existing) };
      items = await this.cycleItems(cycle.billCycleDay, cycle.periodEnd);
    } else {
      items = await this.accountItems(request.billingAccountIds, now.getTime());
    }
    const id = newId(now.getTime());
    const row = await this.deps.database.transaction(async (tx) => {
      const [inserted] = await tx
        .insert(billRuns)
        .values({
          id,
          kind: cycle === null ? "accounts" : "cycle",
          billCycleDay: cycle?.billCycleDay ?? null,
          periodEnd: cycle?.periodEnd ?? null,
          state: "running",
          total: items.length,
          createdAt: now,
          startedAt: now,
          updatedAt: now,
        })
        .onConflictDoNothing()
        .returning();
      if (inserted === undefined) return undefined;
      for (let from = 0; from < items.length; from += ITEM_CHUNK) {
        await tx.insert(billRunItems).values(
          items.slice(from, from + ITEM_CHUNK).map((item) => ({
            runId: id,
            billingAccountId: item.accountId,
            periodEnd: item.periodEnd,
            dueAt: item.dueAt,
            state: "pending",
            updatedAt: now,
          })),
        );
      }
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "billRun",
        entityId: id,
        after: { ...(cycle ?? { billingAccountIds: items.length }), total: items.length },
      });
      await this.recordEvent(tx, inserted, "Create");
      return inserted;
    });
    if (row === undefined) {
      // The same cycle's run was started at the same moment by another call: that one stands.
      const [existing] = await db
        .select()
        .from(billRuns)
        .where(
          and(
            eq(billRuns.kind, "cycle"),
            eq(billRuns.billCycleDay, cycle?.billCycleDay ?? 0),
            eq(billRuns.periodEnd, cycle?.periodEnd ?? ""),
          ),
        );
      if (existing === undefined) throw new Error("a bill run's insert conflicted with no run");
      return { created: false, run: await this.view(existing) };
    }
    return { created: true, run: await this.view(row) };
  }

  /** The accounts of a cycle day whose usage period ends on `periodEnd` in their own zone. */
  private async cycleItems(billCycleDay: number, periodEnd: string) {
    const db = this.deps.database.db;
    const ids = await this.deps.onCycleDay(db, billCycleDay);
    const items: Array<{ accountId: string; periodEnd: string; dueAt: Date }> = [];
    for (let from = 0; from < ids.length; from += ITEM_CHUNK) {
      const accounts = await this.deps.accounts(db, ids.slice(from, from + ITEM_CHUNK));
      for (const account of accounts.values()) {
        const period = periodEndingOn(account, periodEnd);
        if (period !== null) items.push({ accountId: account.id, periodEnd, dueAt: new Date(period.endMs) });
      }
    }
    return items;
  }

  /** Named accounts, each for the last usage period that has ended now; unknown or prepaid ones are refused. */
  private async accountItems(ids: readonly string[], nowMs: number) {
    const unique = [...new Set(ids)];
    const accounts = await this.deps.accounts(this.deps.database.db, unique);
    const items: Array<{ accountId: string; periodEnd: string; dueAt: Date }> = [];
    for (const [index, id] of unique.entries()) {
      const account = accounts.get(id);
      if (account === undefined) {
        throw new AppError(
          "unprocessable",
          "unknown_account",
          `billingAccountIds[${index}]: billing account ${id} does not exist`,
          `billingAccountIds[${index}]`,
        );
      }
      if (account.accountType === "prepaid") {
        throw new AppError(
          "unprocessable",
          "prepaid_account",
          `billingAccountIds[${index}]: billing account ${id} is prepaid and never invoiced`,
          `billingAccountIds[${index}]`,
        );
      }
      const period = cyclePeriod(cyclePeriod(nowMs, account.cycle).startMs - 1, account.cycle);
      const zone = cycleAt(period.endMs - 1, account.cycle).timeZone;
      items.push({
        accountId: id,
        periodEnd: formatLocalDate(localDate(new Date(period.endMs), zone)),
        dueAt: new Date(period.endMs),
      });
    }
    return items;
  }

  /** Failed accounts back to pending, for another pass after the cause was fixed. */
  async retry(actor: Actor, id: string): Promise<BillRunView> {
    const run = await this.find(id);
    const now = this.deps.clock.now();
    const updated = await this.deps.database.transaction(async (tx) => {
      const retried = await tx
        .update(billRunItems)
        .set({
          state: "pending",
          attempts: 0,
          leaseOwner: null,
          leaseUntil: null,
          code: null,
          reason: null,
          updatedAt: now,
        })
        .where(and(eq(billRunItems.runId, run.id), eq(billRunItems.state, "failed")))
        .returning({ id: billRunItems.billingAccountId });
      if (retried.length === 0) {
        throw new AppError("conflict", "no_failures", `bill run ${run.id} has no failed accounts to take again`);
      }
      const [row] = await tx
        .update(billRuns)
        .set({ state: "running", finishedAt: null, updatedAt: now })
        .where(eq(billRuns.id, run.id))
        .returning();
      await this.deps.audit.record(tx, actor, {
        action: "retry",
        entityType: "billRun",
        entityId: run.id,
        after: { accounts: retried.length },
      });
      if (row !== undefined && run.state !== "running") await this.recordEvent(tx, row, "StateChange");
      return row as RunRow;
    });
    return this.view(updated);
  }

  /**
   * Works a run (or every running run) until nothing is left to claim now: claims a batch, composes its drafts in
   * parallel, issues them in one transaction, again. Any number of processes may work the same run at once.
   * Answers how many accounts this call settled.
   */
  async work(runId?: string): Promise<{ invoiced: number; nothing: number; failed: number }> {
    const totals = { invoiced: 0, nothing: 0, failed: 0 };
    const runs =
      runId === undefined
        ? await this.deps.database.db
            .select()
            .from(billRuns)
            .where(eq(billRuns.state, "running"))
            .orderBy(asc(billRuns.createdAt))
        : [await this.find(runId)];
    for (const run of runs) {
      if (run.state !== "running") continue;
      for (;;) {
        const claimed = await this.claim(run.id);
        if (claimed.length === 0) break;
        const settled = await this.processBatch(run, claimed);
        totals.invoiced += settled.invoiced;
        totals.nothing += settled.nothing;
        totals.failed += settled.failed;
        crashPoint("bill-mid-batch");
      }
      await this.finishIfDone(run.id);
    }
    return totals;
  }

  /** Up to a batch of the run's pending accounts whose period has ended, leased to this process. */
  private async claim(runId: string): Promise<Array<{ accountId: string; periodEnd: string; attempts: number }>> {
    const now = this.deps.clock.now();
    const rows = await queryRows<{ billing_account_id: string; period_end: string | Date; attempts: number }>(
      this.deps.database.db,
      // The pick is a materialised CTE: as an IN (subquery) the planner may run it again per row, and with SKIP
      // LOCKED each run picks other rows, claiming more than a batch.
      sql`with picked as materialized (
            select billing_account_id from ${billRunItems}
            where run_id = ${runId} and state = 'pending' and due_at <= ${now.toISOString()}::timestamptz
              and (lease_until is null or lease_until < now())
            order by billing_account_id
            limit ${this.deps.batchSize}
            for update skip locked)
          update ${billRunItems} as item set lease_owner = ${this.deps.owner},
            lease_until = now() + make_interval(secs => ${this.deps.leaseSeconds}), attempts = item.attempts + 1
          from picked
          where item.run_id = ${runId} and item.billing_account_id = picked.billing_account_id
          returning item.billing_account_id, item.period_end, item.attempts`,
    );
    return rows.map((row) => ({
      accountId: row.billing_account_id,
      periodEnd: typeof row.period_end === "string" ? row.period_end.slice(0, 10) : formatDate(row.period_end),
      attempts: Number(row.attempts),
    }));
  }

  private async processBatch(
    run: RunRow,
    claimed: ReadonlyArray<{ accountId: string; periodEnd: string; attempts: number }>,
  ): Promise<{ invoiced: number; nothing: number; failed: number }> {
    const db = this.deps.database.db;
    const nowMs = this.deps.clock.now().getTime();
    const accounts = await this.deps.accounts(
      db,
      claimed.map((item) => item.accountId),
    );
    const endings = await this.deps.lineEndings(
      db,
      claimed.map((item) => item.accountId),
    );
    const failed: Array<{ accountId: string; code: string; reason: string }> = [];
    const nothing: string[] = [];
    const finalFollows: string[] = [];
    const drafts: Array<{ accountId: string; prepared: Prepared; period: Period }> = [];
    // Drafts in parallel, outside any transaction (each reads what it needs).
    await Promise.all(
      claimed.map(async (item) => {
        const account = accounts.get(item.accountId);
        if (account === undefined) {
          failed.push({ accountId: item.accountId, code: "unknown_account", reason: "the billing account is gone" });
          return;
        }
        if (item.attempts > MAX_ATTEMPTS) {
          failed.push({
            accountId: item.accountId,
            code: "too_many_attempts",
            reason: `claimed ${item.attempts - 1} times without being settled (a process stopped on it each time)`,
          });
          return;
        }
        const period = periodEndingOn(account, item.periodEnd);
        if (period === null) {
          failed.push({
            accountId: item.accountId,
            code: "not_a_period_end",
            reason: `no usage period of the account ends on ${item.periodEnd} (its bill cycle changed)`,
          });
          return;
        }
        const endedAt = endings.get(item.accountId) ?? null;
        if (endedAt !== null && endedAt.getTime() >= period.startMs && endedAt.getTime() < period.endMs) {
          // Its last line ended in the period: the final bill takes the place of this invoice, after the wait.
          finalFollows.push(item.accountId);
          return;
        }
        try {
          const contact = await this.deps.contactFor(account.customerId);
          const prepared = await this.deps.invoices.prepare(db, account, contact, {
            kind: "cycle",
            usagePeriod: period,
            advancePeriod: cyclePeriod(period.endMs, account.cycle),
            issueMs: nowMs,
          });
          if ("nothing" in prepared) nothing.push(item.accountId);
          else drafts.push({ accountId: item.accountId, prepared, period });
        } catch (error) {
          if (!(error instanceof AppError)) throw error;
          failed.push({ accountId: item.accountId, code: error.code, reason: error.message });
        }
      }),
    );
    crashPoint("bill-after-drafts");
    const counts = await this.deps.database.transaction(async (tx) => {
      const ids = drafts.map((draft) => draft.accountId).sort();
      await lockAccounts(tx, ids);
      // Under the locks: an invoice that appeared meanwhile (another process, an agent) stands; a draft whose usage
      // or charges were billed meanwhile (an interim bill) is composed again on the next pass.
      const existing =
        ids.length === 0
          ? []
          : await tx
              .select({ accountId: invoices.billingAccountId, id: invoices.id, usagePeriod: invoices.usagePeriod })
              .from(invoices)
              .where(
                and(
                  inArray(invoices.kind, ["cycle", "final"]),
                  inArray(invoices.billingAccountId, ids),
                  inArray(invoices.usagePeriod, [...new Set(drafts.map((draft) => draft.period.key))]),
                ),
              );
      const issuedFor = new Map(existing.map((row) => [`${row.accountId}/${row.usagePeriod}`, row.id]));
      const currents = await this.deps.invoices.current(
        tx,
        drafts.map((draft) => draft.prepared),
      );
      const already: Array<{ accountId: string; invoiceId: string }> = [];
      const stale: string[] = [];
      const fresh: typeof drafts = [];
      for (const draft of drafts) {
        const invoiceId = issuedFor.get(`${draft.accountId}/${draft.period.key}`);
        if (invoiceId !== undefined) {
          already.push({ accountId: draft.accountId, invoiceId });
          continue;
        }
        const current = currents[drafts.indexOf(draft)] === true;
        if (current) fresh.push(draft);
        else stale.push(draft.accountId);
      }
      const rows = await this.deps.invoices.issueAll(
        tx,
        SYSTEM_ACTOR,
        fresh.map((draft) => draft.prepared),
        { runId: run.id, step: `batch of ${claimed.length}` },
      );
      const now = this.deps.clock.now();
      const settled = [
        ...rows.map((row) => ({
          accountId: row.billingAccountId,
          state: "invoiced",
          invoiceId: row.id as string | null,
          amount: row.gross.toFixed() as string | null,
          currency: row.currency as string | null,
          code: null as string | null,
          reason: null as string | null,
        })),
        ...already.map((entry) => ({
          accountId: entry.accountId,
          state: "invoiced",
          invoiceId: entry.invoiceId,
          amount: null,
          currency: null,
          code: null,
          reason: "invoiced before this run reached it",
        })),
        ...nothing.map((accountId) => ({
          accountId,
          state: "nothing",
          invoiceId: null,
          amount: null,
          currency: null,
          code: null,
          reason: "nothing to bill for the period",
        })),
        ...finalFollows.map((accountId) => ({
          accountId,
          state: "nothing",
          invoiceId: null,
          amount: null,
          currency: null,
          code: null,
          reason: "its last line ended in the period: the final bill takes the place of this invoice",
        })),
        ...failed.map((entry) => ({
          accountId: entry.accountId,
          state: "failed",
          invoiceId: null,
          amount: null,
          currency: null,
          code: entry.code,
          reason: entry.reason,
        })),
      ];
      if (settled.length > 0) {
        const values = sql.join(
          settled.map(
            (entry) =>
              sql`(${entry.accountId}::uuid, ${entry.state}, ${entry.invoiceId}::uuid, ${entry.amount}::numeric, ${entry.currency}, ${entry.code}, ${entry.reason})`,
          ),
          sql`, `,
        );
        // Only items still pending: a claim that outlived its lease may have been settled by the process that took
        // it over (which then found this batch's invoices and would record them as invoiced before the run, with
        // no amount); the first settlement stands.
        await tx.execute(sql`update ${billRunItems} set state = v.state, invoice_id = v.invoice_id, amount = v.amount,
            currency = v.currency, code = v.code, reason = v.reason, lease_owner = null, lease_until = null,
            updated_at = ${now.toISOString()}::timestamptz
          from (values ${values}) as v(account_id, state, invoice_id, amount, currency, code, reason)
          where ${billRunItems.runId} = ${run.id} and ${billRunItems.billingAccountId} = v.account_id
            and ${billRunItems.state} = 'pending'`);
      }
      if (stale.length > 0) {
        // Composed again on the next pass; this claim does not count as an attempt.
        await tx
          .update(billRunItems)
          .set({ leaseOwner: null, leaseUntil: null, attempts: sql`${billRunItems.attempts} - 1`, updatedAt: now })
          .where(and(eq(billRunItems.runId, run.id), inArray(billRunItems.billingAccountId, stale)));
      }
      return {
        invoiced: rows.length + already.length,
        nothing: nothing.length + finalFollows.length,
        failed: failed.length,
        rows,
      };
    });
    // "Your bill is ready" goes out after commit, without holding the run up; messages left pending by a process
    // that stops are sent by the background loop (MessagesService.deliverPending).
    const messageIds = counts.rows.flatMap((row) => (row.messageId === null ? [] : [row.messageId]));
    void this.deliver(messageIds);
    return { invoiced: counts.invoiced, nothing: counts.nothing, failed: counts.failed };
  }

  private async deliver(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      try {
        await this.deps.deliverMessage(id);
      } catch (error) {
        this.deps.log.warn(
          { err: error, messageId: id },
          "bill message not delivered now; the pending loop resends it",
        );
      }
    }
  }

  /** A run with nothing pending is completed (or completed with failures), once. */
  private async finishIfDone(runId: string): Promise<void> {
    await this.deps.database.transaction(async (tx) => {
      const [run] = await tx.select().from(billRuns).where(eq(billRuns.id, runId)).for("update");
      if (run === undefined || run.state !== "running") return;
      const states = await tx
        .select({ state: billRunItems.state, count: count() })
        .from(billRunItems)
        .where(eq(billRunItems.runId, runId))
        .groupBy(billRunItems.state);
      const of = (state: string) => states.find((entry) => entry.state === state)?.count ?? 0;
      if (of("pending") > 0) return;
      const now = this.deps.clock.now();
      const [row] = await tx
        .update(billRuns)
        .set({ state: of("failed") > 0 ? "completedWithFailures" : "completed", finishedAt: now, updatedAt: now })
        .where(eq(billRuns.id, runId))
        .returning();
      if (row !== undefined) await this.recordEvent(tx, row, "StateChange");
    });
  }

  /** The daily job: the runs of every cycle day whose periods end on the slot's date, then the work due. */
  async startDue(businessTime: Date): Promise<Record<string, unknown>> {
    const today = localDate(businessTime, "UTC");
    const started: string[] = [];
    for (let day = 1; day <= 31; day++) {
      if (billingDayOfMonth(day, today.year, today.month) !== today.day) continue;
      const periodEnd = formatLocalDate(today);
      const { created, run } = await this.start(SYSTEM_ACTOR, { billCycleDay: day, periodEnd });
      if (created) started.push(`${day}/${periodEnd}: ${run.total} accounts`);
      // A run with no account is complete as soon as it exists (the day is recorded as handled).
      if (created && run.total === 0) await this.finishIfDone(run.id);
    }
    return { started, ...(await this.work()) };
  }

  /**
   * The final bills due (the daily job): accounts whose last line ended at least the wait ago and whose period of
   * that ending has no invoice yet. Each is issued in its own transaction; one that fails is logged and taken again
   * the next day.
   */
  async issueDueFinalBills(): Promise<Record<string, unknown>> {
    const db = this.deps.database.db;
    const before = new Date(this.deps.clock.now().getTime() - this.deps.finalBillWaitDays * 86_400_000);
    let afterId = "00000000-0000-0000-0000-000000000000";
    let issued = 0;
    let covered = 0;
    const failures: string[] = [];
    for (;;) {
      const ids = await this.deps.accountsEndedBefore(db, before, afterId, ITEM_CHUNK);
      if (ids.length === 0) break;
      afterId = ids.at(-1) as string;
      const accounts = await this.deps.accounts(db, ids);
      const endings = await this.deps.lineEndings(db, ids);
      for (const id of ids) {
        const endedAt = endings.get(id);
        if (accounts.get(id)?.accountType !== "postpaid" || endedAt === null || endedAt === undefined) continue;
        try {
          const outcome = await this.deps.invoices.issueFinal(SYSTEM_ACTOR, id, endedAt);
          if (outcome.status === "issued") issued += 1;
          else covered += 1;
        } catch (error) {
          if (!(error instanceof AppError)) throw error;
          failures.push(`${id}: ${error.message}`);
          this.deps.log.error({ billingAccountId: id, err: error }, "final bill not issued; tried again tomorrow");
        }
      }
    }
    return {
      issued,
      covered,
      failed: failures.length,
      ...(failures.length > 0 ? { failures: failures.slice(0, 20) } : {}),
    };
  }

  async get(_actor: Actor, id: string): Promise<BillRunView> {
    return this.view(await this.find(id));
  }

  async list(_actor: Actor, request: ListRequest): Promise<{ items: BillRunView[]; total: number }> {
    const db = this.deps.database.db;
    const where = listFilters(
      { id: billRuns.id, state: billRuns.state, billCycleDay: billRuns.billCycleDay, periodEnd: billRuns.periodEnd },
      request,
      [],
    );
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(billRuns)
        .where(where)
        .orderBy(desc(billRuns.createdAt), asc(billRuns.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(billRuns).where(where),
    ]);
    return { items: await Promise.all(rows.map((row) => this.view(row))), total: counted[0]?.total ?? 0 };
  }

  private async find(id: string): Promise<RunRow> {
    const [run] = isId(id) ? await this.deps.database.db.select().from(billRuns).where(eq(billRuns.id, id)) : [];
    if (run === undefined) throw notFound("billRun", id);
    return run;
  }

  /** A run with its progress: counts, amounts invoiced per currency, rate and time left, failures with reasons. */
  private async view(run: RunRow, db: Db = this.deps.database.db): Promise<BillRunView> {
    const [states, amounts, failures] = await Promise.all([
      db
        .select({ state: billRunItems.state, count: count() })
        .from(billRunItems)
        .where(eq(billRunItems.runId, run.id))
        .groupBy(billRunItems.state),
      queryRows<{ currency: string; amount: string }>(
        db,
        sql`select currency, sum(amount)::text as amount from ${billRunItems}
            where run_id = ${run.id} and state = 'invoiced' and amount is not null group by currency order by currency`,
      ),
      db
        .select({ accountId: billRunItems.billingAccountId, code: billRunItems.code, reason: billRunItems.reason })
        .from(billRunItems)
        .where(and(eq(billRunItems.runId, run.id), eq(billRunItems.state, "failed")))
        .orderBy(asc(billRunItems.billingAccountId))
        .limit(FAILURES_SHOWN),
    ]);
    const of = (state: string) => states.find((entry) => entry.state === state)?.count ?? 0;
    const done = of("invoiced") + of("nothing");
    const failed = of("failed");
    const pending = of("pending");
    const endMs = (run.finishedAt ?? this.deps.clock.now()).getTime();
    const seconds = Math.max((endMs - (run.startedAt ?? run.createdAt).getTime()) / 1000, 0.001);
    const rate = (done + failed) / seconds;
    return {
      id: run.id,
      href: `/api/v1/bill-runs/${run.id}`,
      kind: run.kind,
      ...(run.billCycleDay === null ? {} : { billCycleDay: run.billCycleDay }),
      ...(run.periodEnd === null ? {} : { periodEnd: run.periodEnd }),
      state: run.state,
      total: run.total,
      done,
      invoiced: of("invoiced"),
      nothingToBill: of("nothing"),
      failed,
      pending,
      invoicedAmount: amounts.map((entry) => ({ unit: entry.currency, value: new Money(entry.amount).toFixed() })),
      ratePerSecond: Math.round(rate * 100) / 100,
      ...(pending > 0 && rate > 0 ? { secondsLeft: Math.ceil(pending / rate) } : {}),
      failures: failures.map((entry) => ({
        billingAccountId: entry.accountId,
        code: entry.code ?? "failed",
        reason: entry.reason ?? "",
      })),
      createdAt: run.createdAt.toISOString(),
      ...(run.finishedAt === null ? {} : { finishedAt: run.finishedAt.toISOString() }),
    };
  }

  private async recordEvent(tx: Db, run: RunRow, change: "Create" | "StateChange"): Promise<void> {
    await this.deps.events.record(tx, {
      api: "customerBillManagement",
      resource: "billRun",
      change,
      resourceId: run.id,
      body: {
        id: run.id,
        href: `/api/v1/bill-runs/${run.id}`,
        kind: run.kind,
        billCycleDay: run.billCycleDay,
        periodEnd: run.periodEnd,
        state: run.state,
        total: run.total,
      },
    });
  }
}

export interface BillRunView {
  id: string;
  href: string;
  kind: string;
  billCycleDay?: number;
  periodEnd?: string;
  state: string;
  total: number;
  done: number;
  invoiced: number;
  nothingToBill: number;
  failed: number;
  pending: number;
  invoicedAmount: Array<{ unit: string; value: string }>;
  ratePerSecond: number;
  secondsLeft?: number;
  failures: Array<{ billingAccountId: string; code: string; reason: string }>;
  createdAt: string;
  finishedAt?: string;
}

/** The usage period of an account that ends on a local date in its zone, or null when none does. */
function periodEndingOn(account: BillingAccountView, periodEnd: string): Period | null {
  const [year, month, day] = periodEnd.split("-").map(Number) as [number, number, number];
  const zone = cycleAt(Date.parse(`${periodEnd}T12:00:00Z`), account.cycle).timeZone;
  const endMs = localMidnightUtc(zone, { year, month, day });
  const period = cyclePeriod(endMs - 1, account.cycle);
  return period.endMs === endMs ? period : null;
}

/** A cycle run's request checked: a day of the month, a date a period of that day ends on, and not in the future. */
function checkCycleRequest(request: { billCycleDay: number; periodEnd: string }, now: Date) {
  const { billCycleDay, periodEnd } = request;
  if (!Number.isInteger(billCycleDay) || billCycleDay < 1 || billCycleDay > 31) {
    throw new AppError("bad_request", "invalid_field", "billCycleDay: a day of the month, 1 to 31", "billCycleDay");
  }
  if (!isCalendarDate(periodEnd)) {
    throw new AppError("bad_request", "invalid_field", "periodEnd: a local date, YYYY-MM-DD", "periodEnd");
  }
  const [year, month, day] = periodEnd.split("-").map(Number) as [number, number, number];
  const ends = billingDayOfMonth(billCycleDay, year, month);
  if (ends !== day) {
    throw new AppError(
      "unprocessable",
      "not_a_period_end",
      `periodEnd: periods of cycle day ${billCycleDay} end on day ${ends} of ${periodEnd.slice(0, 7)}, not on ${periodEnd}`,
      "periodEnd",
    );
  }
  // The earliest a period can end on that date is its midnight at UTC+14; before then it has ended nowhere.
  if (now.getTime() < Date.parse(`${periodEnd}T00:00:00+14:00`)) {
    throw new AppError(
      "unprocessable",
      "period_not_ended",
      `periodEnd: periods ending on ${periodEnd} have not ended yet; a run starts once they have`,
      "periodEnd",
    );
  }
  return { billCycleDay, periodEnd };
}

function formatDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/**
 * Every process (API and workers) looks for bill run work every few seconds: a run started elsewhere, accounts whose
 * period ended since, and claims a dead process left to lapse. One pass at a time; a failed pass is logged and tried
 * again on the next tick.
 */
export function startBillRunLoop(
  runs: Pick<BillRunsService, "work">,
  log: FastifyBaseLogger,
  intervalMs: number,
): { stop(): Promise<void> } {
  let running: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    if (running !== null) return;
    running = runs
      .work()
      .catch((error: unknown) => log.error({ err: error }, "bill run pass failed; the next one takes it up"))
      .finally(() => {
        running = null;
      });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
