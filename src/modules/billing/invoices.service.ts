import { and, asc, count, eq, gte, inArray, or, sql } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import { mayReadAccount } from "../../platform/auth.js";
import { type Db, queryRows } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import { crashPoint } from "../../platform/faults.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters, uuidList } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import {
  cycleAt,
  cyclePeriod,
  formatLocalDate,
  isCalendarDate,
  localDate,
  localMidnightUtc,
  type Period,
} from "../../shared/calendar.js";
import { creditorReference } from "../../shared/creditor-reference.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId, newId } from "../../shared/ids.js";
import { divideHalfUp, MinorAmount, parseScaled } from "../../shared/minor-units.js";
import type { Money } from "../../shared/money.js";
import type { SummarisedRow } from "../charging/index.js";
import {
  type BillDocument,
  type BillLine,
  type BillTax,
  documentOfDraft,
  documentOfRow,
  type IssuedFacts,
  lineOfRow,
  presentBill,
  presentLine,
} from "./bill-document.js";
import type { BillingAccountView, BillingService, IssuingEntityView } from "./billing.service.js";
import {
  allocations,
  allocationTotals,
  billRequests,
  invoiceLines,
  invoices,
  receivableEntries,
} from "./billing.tables.js";
import {
  applyCredit,
  applyUnappliedCredit,
  invoicesTouched,
  openItemsOf,
  writeAllocations,
} from "./cash-application.js";
import { ComposeError, composeInvoice, type Draft, type InvoiceKind } from "./compose.js";
import { accountSummaries, balancesOf, nextNumbers } from "./ledger.js";

/**
 * Issuing (DESIGN.md §10): a composed draft becomes a numbered, immutable document with its lines, an entry in the
 * receivables ledger, the usage summaries and one-time charges it billed marked, an event and a message to the
 * subscriber, all in one transaction under the account's lock. Credit notes reverse lines of an invoice, never more
 * than is left, tax in the same proportion. TMF678 reads and the only client change, holding a bill.
 */

export interface InvoicesDeps extends ServiceDeps {
  billing: BillingService;
  account(db: Db, id: string): Promise<BillingAccountView | undefined>;
  issuerFor(country: string): Promise<IssuingEntityView | undefined>;
  markUsageBilled(db: Db, marks: ReadonlyArray<{ summaryId: string; toSeq: number }>): Promise<void>;
  markChargesBilled(db: Db, ids: readonly string[], at: Date): Promise<number>;
  ratedRows(summaryId: string, page: { afterSeq?: number; limit?: number }): Promise<{ rows: SummarisedRow[] }>;
  /** The subscriber's address for bill messages (e-mail first), or null when it has none. */
  contactFor(customerId: string): Promise<Contact | null>;
  /** Stores messages to send (pending) with the caller's transaction, ids given; the issuing audit row covers them. */
  queueMessages(tx: Db, messages: readonly BillMessage[]): Promise<void>;
  deliverMessage(id: string): Promise<unknown>;
  /** How far each usage summary is billed, by id. */
  billedMarks(db: Db, summaryIds: readonly string[]): Promise<Map<string, number>>;
  /** Which one-time charges an invoice has billed already. */
  billedChargeIds(db: Db, ids: readonly string[]): Promise<Set<string>>;
}

/** A draft composed before its transaction found what it bills billed meanwhile: compose it again. */
class StaleDraft extends Error {
  override name = "StaleDraft";
}

type InvoiceRow = typeof invoices.$inferSelect;
type LineRow = typeof invoiceLines.$inferSelect;

export const BILL_READY_REASON = "bill.ready";
/** The kinds that bill a usage period, one per account and period (a unique index). */
const PERIOD_KINDS = ["cycle", "final"];
/** Invoice lines per insert statement (one JSON parameter). */
const LINE_CHUNK = 5_000;

export type Contact = { channel: "sms" | "email"; address: string };

/** A composed document ready to issue, and whom to tell. */
export interface Prepared {
  account: BillingAccountView;
  issuer: IssuingEntityView;
  contact: Contact | null;
  document: BillDocument;
  lines: BillLine[];
  usageMarks: ReadonlyArray<{ summaryId: string; toSeq: number }>;
  credited: { id: string; number: string } | null;
}

export interface BillMessage {
  id: string;
  customerId: string;
  channel: "sms" | "email";
  to: string;
  subject: string;
  body: string;
  reason: string;
}

/** "Your bill … is ready": the message a document's subscriber gets. */
function billMessage(
  customerId: string,
  contact: Contact,
  row: {
    messageId: string | null;
    kind: string;
    number: string;
    gross: Money;
    currency: string;
    dueDate: string;
    paymentReference: string;
  },
): BillMessage {
  const amount = `${row.gross.abs().toFixed(currencyMinorUnits(row.currency))} ${row.currency}`;
  const credit = row.kind === "creditNote";
  return {
    id: row.messageId as string,
    customerId,
    channel: contact.channel,
    to: contact.address,
    subject: `Your ${credit ? "credit note" : "bill"} ${row.number}`,
    body: credit
      ? `Your credit note ${row.number} of ${amount} is ready.`
      : `Your bill ${row.number} of ${amount} is ready. Please pay by ${row.dueDate} quoting ${row.paymentReference}.`,
    reason: BILL_READY_REASON,
  };
}

export type IssueOutcome =
  | { status: "issued" | "existing"; bill: CustomerBill }
  | { status: "nothing"; reason: string; usagePeriod: string };

export type CustomerBill = ReturnType<typeof presentBill>;
export type BillingRate = ReturnType<typeof presentLine>;

export interface CreditRequest {
  reason: string;
  /** Omitted: every line, all that is left of each. */
  lines?: ReadonlyArray<{ id: string; amount?: { unit: string; value: string } }>;
}

export class InvoicesService {
  constructor(private readonly deps: InvoicesDeps) {}

  // -------------------------------------------------------------------------------------------------------------
  // Issuing

  /**
   * The cycle invoice of the account's last ended usage period (or of the period ending on `periodEnd`, a local
   * date): issued once; asked again, the same invoice.
   */
  async issueCycle(actor: Actor, billingAccountId: string, request: { periodEnd?: string }): Promise<IssueOutcome> {
    const account = await this.billableAccount(billingAccountId);
    const now = this.deps.clock.now().getTime();
    const usagePeriod = this.endedPeriod(account, now, request.periodEnd);
    const advancePeriod = cyclePeriod(usagePeriod.endMs, account.cycle);
    const contact = await this.deps.contactFor(account.customerId);
    const invoice = { kind: "cycle" as const, usagePeriod, advancePeriod, issueMs: now };
    const outcome = await this.withFreshDraft(account, contact, invoice, (prepared) =>
      this.deps.database.transaction(async (tx) => {
        await lockAccount(tx, account.id);
        // This period's invoice, or one of a later period (one read for both).
        const found = await tx
          .select()
          .from(invoices)
          .where(
            and(
              eq(invoices.billingAccountId, account.id),
              inArray(invoices.kind, PERIOD_KINDS),
              or(eq(invoices.usagePeriod, usagePeriod.key), gte(invoices.periodStart, new Date(usagePeriod.endMs))),
            ),
          )
          .limit(2);
        const existing = found.find((row) => row.usagePeriod === usagePeriod.key);
        if (existing !== undefined) return { status: "existing" as const, row: existing };
        const later = found[0];
        if (later !== undefined) {
          throw new AppError(
            "conflict",
            "later_period_invoiced",
            `periodEnd: the period ${usagePeriod.key} precedes ${later.usagePeriod}, already invoiced by ${later.number}; a missed period's charges are billed by corrections, not by an earlier invoice`,
            "periodEnd",
          );
        }
        return this.writePrepared(tx, actor, prepared);
      }),
    );
    return this.finish(outcome);
  }

  /**
   * The final bill (category `last`) of an account whose last line ended at `endedAt`: the usage period holding that
   * instant, its usage and arrears charges and the credit of what was charged in advance for the days after it, and
   * no advance period. It takes the place of that period's cycle invoice (one of the two per period, unique); an
   * account whose period is invoiced already gets none.
   */
  async issueFinal(
    actor: Actor,
    billingAccountId: string,
    endedAt: Date,
  ): Promise<IssueOutcome | { status: "covered" }> {
    const account = await this.billableAccount(billingAccountId);
    const usagePeriod = cyclePeriod(endedAt.getTime(), account.cycle);
    const contact = await this.deps.contactFor(account.customerId);
    const invoice = {
      kind: "final" as const,
      usagePeriod,
      advancePeriod: null,
      issueMs: this.deps.clock.now().getTime(),
    };
    const outcome = await this.withFreshDraft(account, contact, invoice, (prepared) =>
      this.deps.database.transaction(async (tx) => {
        await lockAccount(tx, account.id);
        const [existing] = await tx
          .select({ id: invoices.id })
          .from(invoices)
          .where(
            and(
              eq(invoices.billingAccountId, account.id),
              inArray(invoices.kind, PERIOD_KINDS),
              gte(invoices.periodEnd, new Date(usagePeriod.endMs)),
            ),
          )
          .limit(1);
        if (existing !== undefined) return { status: "covered" as const };
        return this.writePrepared(tx, actor, prepared);
      }),
    );
    if (outcome.status === "covered") return outcome;
    return this.finish(outcome);
  }

  /** TMF678 customerBillOnDemand: an interim bill of the usage and one-time charges to date. */
  async requestOnDemand(
    actor: Actor,
    request: { billingAccountId: string; name?: string; description?: string; idempotencyKey?: string },
  ) {
    const account = await this.billableAccount(request.billingAccountId);
    if (request.idempotencyKey !== undefined) {
      const [earlier] = await this.deps.database.db
        .select()
        .from(billRequests)
        .where(
          and(eq(billRequests.billingAccountId, account.id), eq(billRequests.idempotencyKey, request.idempotencyKey)),
        );
      if (earlier !== undefined) return { created: false, request: await this.presentRequest(earlier) };
    }
    const now = this.deps.clock.now().getTime();
    const current = cyclePeriod(now, account.cycle);
    const contact = await this.deps.contactFor(account.customerId);
    const invoice = { kind: "interim" as const, usagePeriod: current, advancePeriod: null, issueMs: now };
    const { outcome, row } = await this.withFreshDraft(account, contact, invoice, (prepared) =>
      this.deps.database.transaction(async (tx) => {
        await lockAccount(tx, account.id);
        const outcome = await this.writePrepared(tx, actor, prepared);
        const id = newId(now);
        const [row] = await tx
          .insert(billRequests)
          .values({
            id,
            billingAccountId: account.id,
            name: request.name ?? null,
            description: request.description ?? null,
            state: outcome.status === "nothing" ? "rejected" : "done",
            invoiceId: outcome.status === "nothing" ? null : outcome.row.id,
            reason: outcome.status === "nothing" ? outcome.reason : null,
            idempotencyKey: request.idempotencyKey ?? null,
            createdAt: new Date(now),
          })
          .onConflictDoNothing()
          .returning();
        if (row === undefined) {
          // The same key raced this request: its answer stands, and this one writes nothing.
          throw new AppError("conflict", "duplicate_request", "a request with this Idempotency-Key is being answered");
        }
        const presented = await this.presentRequest(row, tx);
        await this.deps.audit.record(tx, actor, {
          action: "create",
          entityType: "customerBillOnDemand",
          entityId: id,
          after: { billingAccountId: account.id, state: row.state, invoiceId: row.invoiceId, reason: row.reason },
        });
        await this.deps.events.record(tx, {
          api: "customerBillManagement",
          resource: "customerBillOnDemand",
          change: "Create",
          resourceId: id,
          body: presented,
        });
        return { outcome, row };
      }),
    );
    await this.finish(outcome);
    return { created: true, request: await this.presentRequest(row) };
  }

  private async billableAccount(billingAccountId: string): Promise<BillingAccountView> {
    const account = await this.deps.account(this.deps.database.db, billingAccountId);
    if (account === undefined) throw notFound("billingAccount", billingAccountId);
    if (account.accountType === "prepaid") {
      throw new AppError(
        "unprocessable",
        "prepaid_account",
        `billing account ${account.id} is prepaid: its lines and usage are paid from its balance and never invoiced`,
      );
    }
    return account;
  }

  /** The usage period to invoice: the one ending on `periodEnd` (which must have ended), else the last ended. */
  private endedPeriod(account: BillingAccountView, nowMs: number, periodEnd: string | undefined): Period {
    if (periodEnd === undefined) return cyclePeriod(cyclePeriod(nowMs, account.cycle).startMs - 1, account.cycle);
    if (!isCalendarDate(periodEnd)) {
      throw new AppError("bad_request", "invalid_field", "periodEnd: a local date, YYYY-MM-DD", "periodEnd");
    }
    const [year, month, day] = periodEnd.split("-").map(Number) as [number, number, number];
    const zone = cycleAt(Date.parse(`${periodEnd}T12:00:00Z`), account.cycle).timeZone;
    const endMs = localMidnightUtc(zone, { year, month, day });
    const period = cyclePeriod(endMs - 1, account.cycle);
    if (period.endMs !== endMs) {
      const ends = formatLocalDate(localDate(new Date(period.endMs), zone));
      throw new AppError(
        "unprocessable",
        "not_a_period_end",
        `periodEnd: no bill period of account ${account.id} ends on ${periodEnd} (the one holding that day ends on ${ends})`,
        "periodEnd",
      );
    }
    if (endMs > nowMs) {
      throw new AppError(
        "unprocessable",
        "period_not_ended",
        `periodEnd: the period ${period.key} ends on ${periodEnd}, which is still to come; it is invoiced once it ends`,
        "periodEnd",
      );
    }
    return period;
  }

  /**
   * Composes an account's bill from what the database holds (reads only, with `db`): what to issue, or why there
   * is nothing to. A problem of the account's data (no tax rate, a price missing in its currency) is a 422.
   */
  async prepare(
    db: Db,
    account: BillingAccountView,
    contact: Contact | null,
    invoice: { kind: InvoiceKind; usagePeriod: Period; advancePeriod: Period | null; issueMs: number },
  ): Promise<Prepared | { nothing: string; usagePeriod: string }> {
    const { input, issuer } = await this.deps.billing.inputs(db, account, invoice);
    let draft: Draft;
    try {
      draft = composeInvoice(input);
    } catch (error) {
      if (error instanceof ComposeError) {
        throw new AppError("unprocessable", error.problems[0]?.code ?? "cannot_compose", error.message);
      }
      throw error;
    }
    if (draft.lines.length === 0) {
      return { nothing: draft.notes.join(" ") || "Nothing to bill.", usagePeriod: draft.usagePeriod.key };
    }
    const { document, lines } = documentOfDraft(draft);
    return { account, issuer, contact, document, lines, usageMarks: draft.usageMarks, credited: null };
  }

  /**
   * Composes outside any transaction (reads, the catalog's included: on embedded PGlite's one session a read outside
   * an open transaction would wait for it), then runs `issue` with the draft; a draft that went stale under the
   * account's lock (usage or charges billed meanwhile) is composed again, at most three times.
   */
  private async withFreshDraft<T>(
    account: BillingAccountView,
    contact: Contact | null,
    invoice: { kind: InvoiceKind; usagePeriod: Period; advancePeriod: Period | null; issueMs: number },
    issue: (prepared: Prepared | { nothing: string; usagePeriod: string }) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const prepared = await this.prepare(this.deps.database.db, account, contact, invoice);
      try {
        return await issue(prepared);
      } catch (error) {
        if (!(error instanceof StaleDraft) || attempt >= 3) {
          if (error instanceof StaleDraft) {
            throw new AppError(
              "conflict",
              "billing_in_progress",
              `billing account ${account.id}'s usage or charges were billed by another bill while this one was composed; ask again`,
            );
          }
          throw error;
        }
      }
    }
  }

  /** Issues a draft composed before the caller's transaction, under the account's lock, if it is still current. */
  private async writePrepared(
    tx: Db,
    actor: Actor,
    prepared: Prepared | { nothing: string; usagePeriod: string },
  ): Promise<
    | { status: "issued"; row: InvoiceRow; messageId: string | null }
    | { status: "nothing"; reason: string; usagePeriod: string }
  > {
    if ("nothing" in prepared)
      return { status: "nothing", reason: prepared.nothing, usagePeriod: prepared.usagePeriod };
    const [current] = await this.current(tx, [prepared]);
    if (current !== true) throw new StaleDraft();
    const [row] = await this.issueAll(tx, actor, [prepared], null);
    const issued = row as InvoiceRow;
    return { status: "issued", row: issued, messageId: issued.messageId };
  }

  /**
   * Whether each draft still bills only what is unbilled (in the caller's transaction, under the accounts' locks):
   * its usage summaries are billed to where the draft read them, its one-time charges are not billed.
   */
  async current(tx: Db, prepared: readonly Prepared[]): Promise<boolean[]> {
    const marks = await this.deps.billedMarks(
      tx,
      prepared.flatMap((entry) => entry.usageMarks.map((mark) => mark.summaryId)),
    );
    const billed = await this.deps.billedChargeIds(
      tx,
      prepared.flatMap((entry) => entry.lines.flatMap((line) => line.oneTimeChargeId ?? [])),
    );
    return prepared.map(
      (entry) =>
        entry.lines.every(
          (line) => line.usageSummaryId === null || (marks.get(line.usageSummaryId) ?? 0) === (line.fromSeq ?? 1) - 1,
        ) && entry.lines.every((line) => line.oneTimeChargeId === null || !billed.has(line.oneTimeChargeId)),
    );
  }

  /**
   * Issues prepared documents in the caller's transaction, set-based (DESIGN.md §10 "Drafts in parallel, numbers
   * in sequence"): each invoice's account summary from the ledger (one statement), numbers per series in one
   * statement under the series row's lock, then one multi-row insert each for documents, lines and ledger entries,
   * one statement each for the usage marks and the one-time charges billed, the subscribers' messages and the
   * events collected and inserted at commit. Audit: one row per document, or one for the batch when `batch` names
   * the bill run step. The caller holds the accounts' locks and has checked none of them is issued already.
   */
  async issueAll(
    tx: Db,
    actor: Actor,
    prepared: readonly Prepared[],
    batch: { runId: string; step: string } | null,
  ): Promise<InvoiceRow[]> {
    if (prepared.length === 0) return [];
    const now = this.deps.clock.now();
    const money = (value: MinorAmount) => value.toMoney();
    // The account summary of each invoice, read under the accounts' locks (credit notes carry their own).
    const summaries = await accountSummaries(
      tx,
      prepared.filter((entry) => entry.document.kind !== "creditNote").map((entry) => entry.account.id),
    );
    for (const entry of prepared) {
      if (entry.document.kind === "creditNote") continue;
      const summary = summaries.get(entry.account.id);
      const decimals = entry.document.gross.decimals;
      const read = (value: string | undefined) => MinorAmount.parse(value ?? "0", decimals);
      const document = entry.document;
      document.previousBalance = read(summary?.previous);
      document.paymentsSince = read(summary?.payments);
      document.creditsSince = read(summary?.credits);
      document.totalDue = document.previousBalance
        .minus(document.paymentsSince)
        .minus(document.creditsSince)
        .plus(document.gross);
    }
    // Numbers: per issuing entity, document kind and year of the issue date in the entity's zone, in batch order.
    const numbered = new Map<string, { first: number; used: number }>();
    const seriesOf = (entry: Prepared) => {
      const series = entry.document.kind === "creditNote" ? ("creditNote" as const) : ("invoice" as const);
      const year = localDate(now, entry.issuer.timeZone).year;
      return { series, year, key: `${entry.issuer.id}/${series}/${year}` };
    };
    const counts = new Map<string, { entry: Prepared; count: number }>();
    for (const entry of prepared) {
      const { key } = seriesOf(entry);
      const known = counts.get(key);
      counts.set(key, { entry: known?.entry ?? entry, count: (known?.count ?? 0) + 1 });
    }
    for (const [key, { entry, count }] of counts) {
      const { series, year } = seriesOf(entry);
      numbered.set(key, { first: await nextNumbers(tx, entry.issuer.id, series, year, count), used: 0 });
    }
    crashPoint("bill-after-numbering");
    const rows = prepared.map((entry) => {
      const { series, year, key } = seriesOf(entry);
      const block = numbered.get(key) as { first: number; used: number };
      const seq = block.first + block.used;
      block.used += 1;
      const number = `${entry.issuer.series[series]}-${year}-${String(seq).padStart(6, "0")}`;
      const { document } = entry;
      return {
        id: newId(now.getTime()),
        billingAccountId: document.billingAccountId,
        kind: document.kind,
        issuerId: entry.issuer.id,
        issuerName: entry.issuer.name,
        year,
        seq,
        number,
        paymentReference: creditorReference(number),
        creditedInvoiceId: entry.credited?.id ?? null,
        currency: document.currency,
        usagePeriod: document.usagePeriod?.key ?? null,
        periodStart: document.usagePeriod === null ? null : new Date(document.usagePeriod.startMs),
        periodEnd: document.usagePeriod === null ? null : new Date(document.usagePeriod.endMs),
        advanceStart: document.advancePeriod === null ? null : new Date(document.advancePeriod.startMs),
        advanceEnd: document.advancePeriod === null ? null : new Date(document.advancePeriod.endMs),
        issueDate: document.issueDate,
        dueDate: document.dueDate,
        timeZone: document.timeZone,
        issuedAt: now,
        net: money(document.net),
        tax: money(document.tax),
        gross: money(document.gross),
        previousBalance: money(document.previousBalance),
        paymentsSince: money(document.paymentsSince),
        creditsSince: money(document.creditsSince),
        totalDue: money(document.totalDue),
        reverseCharge: document.reverseCharge,
        taxes: document.taxes.map((tax) => ({
          category: tax.category,
          rate: tax.rate.toFixed(),
          taxable: tax.taxable.toFixed(),
          tax: tax.tax.toFixed(),
          exemptionReason: tax.exemptionReason,
        })),
        notes: document.notes,
        reason: document.reason,
        state: "validated",
        stateChangedAt: now,
        // The message telling the subscriber, written below with the same transaction.
        messageId: entry.contact === null ? null : newId(now.getTime()),
        lineCount: entry.lines.length,
      };
    });
    const issued = await tx.insert(invoices).values(rows).returning();
    // Lines as one JSON parameter per chunk (jsonb_to_recordset): a batch's thousands of lines in one statement,
    // without tens of thousands of bound values to encode.
    const lineRows = prepared.flatMap((entry, index) => {
      const invoiceId = rows[index]?.id as string;
      return entry.lines.map((line, position) => ({
        id: newId(now.getTime()),
        invoice_id: invoiceId,
        line_count: entry.lines.length,
        position,
        key: line.key,
        kind: line.kind,
        product_id: line.productId,
        price_id: line.priceId,
        one_time_charge_id: line.oneTimeChargeId,
        usage_summary_id: line.usageSummaryId,
        from_seq: line.fromSeq,
        to_seq: line.toSeq,
        name: line.name,
        period_start: line.period === null ? null : new Date(line.period.startMs).toISOString(),
        period_end: line.period === null ? null : new Date(line.period.endMs).toISOString(),
        days: line.days,
        basis_days: line.basisDays,
        amount: line.amount.toFixed(),
        discount: line.discount.toFixed(),
        charge: line.charge.toFixed(),
        net: line.net.toFixed(),
        line_tax: line.lineTax.toFixed(),
        tax_included: line.taxIncluded,
        tax_class: line.taxClass,
        tax_category: line.taxCategory,
        tax_rate: line.taxRate.toFixed(),
        exemption_reason: line.exemptionReason,
        late: line.late,
        usage: line.usage,
        promotions: line.promotions.map((promotion) => ({
          id: promotion.id,
          name: promotion.name,
          amount: promotion.amount.toFixed(),
        })),
        credited_line_id: line.creditedLineId,
      }));
    });
    for (let from = 0; from < lineRows.length; from += LINE_CHUNK) {
      const chunk = JSON.stringify(lineRows.slice(from, from + LINE_CHUNK));
      await tx.execute(sql`insert into ${invoiceLines} (id, invoice_id, line_count, position, key, kind, product_id,
          price_id, one_time_charge_id, usage_summary_id, from_seq, to_seq, name, period_start, period_end, days,
          basis_days, amount, discount, charge, net, line_tax, tax_included, tax_class, tax_category, tax_rate,
          exemption_reason, late, usage, promotions, credited_line_id)
        select * from jsonb_to_recordset(${chunk}::jsonb) as x(id uuid, invoice_id uuid, line_count integer,
          position integer, key text, kind text, product_id uuid, price_id text, one_time_charge_id uuid,
          usage_summary_id uuid, from_seq bigint, to_seq bigint, name text, period_start timestamptz,
          period_end timestamptz, days integer, basis_days integer, amount numeric, discount numeric, charge numeric,
          net numeric, line_tax numeric, tax_included boolean, tax_class text, tax_category text, tax_rate numeric,
          exemption_reason text, late boolean, usage jsonb, promotions jsonb, credited_line_id uuid)`);
    }
    await tx.insert(receivableEntries).values(
      rows.map((row) => ({
        id: newId(now.getTime()),
        billingAccountId: row.billingAccountId,
        kind: row.kind === "creditNote" ? "creditNote" : "invoice",
        amount: row.gross,
        currency: row.currency,
        invoiceId: row.id,
        at: now,
        description: `${row.kind === "creditNote" ? "Credit note" : "Invoice"} ${row.number}`,
      })),
    );
    await this.deps.markUsageBilled(
      tx,
      prepared.flatMap((entry) => entry.usageMarks),
    );
    const charges = prepared.flatMap((entry) =>
      entry.lines.flatMap((line) => (line.oneTimeChargeId === null ? [] : [line.oneTimeChargeId])),
    );
    const marked = await this.deps.markChargesBilled(tx, charges, now);
    if (marked !== charges.length) {
      throw new AppError("conflict", "charges_billed_meanwhile", "one-time charges were billed by another invoice");
    }
    const messages = prepared.flatMap((entry, index) => {
      const row = rows[index];
      if (entry.contact === null || row === undefined || row.messageId === null) return [];
      return [billMessage(entry.account.customerId, entry.contact, row)];
    });
    if (messages.length > 0) await this.deps.queueMessages(tx, messages);
    if (batch === null) {
      for (const [index, row] of rows.entries()) {
        await this.deps.audit.record(tx, actor, {
          action: "issue",
          entityType: "customerBill",
          entityId: row.id,
          after: {
            number: row.number,
            kind: row.kind,
            billingAccountId: row.billingAccountId,
            gross: prepared[index]?.document.gross.toFixed(),
            currency: row.currency,
            ...(row.creditedInvoiceId === null ? {} : { credits: prepared[index]?.credited?.number }),
          },
        });
      }
    } else {
      await this.deps.audit.record(tx, actor, {
        action: "issue",
        entityType: "billRun",
        entityId: batch.runId,
        after: {
          step: batch.step,
          invoices: rows.length,
          numbers: rows.length === 1 ? rows[0]?.number : `${rows[0]?.number} … ${rows.at(-1)?.number}`,
        },
      });
    }
    // A new document has nothing applied yet: its event is presented from what was just written, with no read.
    for (const [index, row] of rows.entries()) {
      const entry = prepared[index] as Prepared;
      await this.deps.events.record(tx, {
        api: "customerBillManagement",
        resource: "customerBill",
        change: "Create",
        resourceId: row.id,
        body: presentBill(entry.document, entry.issuer, "tmf", {
          id: row.id,
          number: row.number,
          paymentReference: row.paymentReference,
          issuerId: row.issuerId,
          issuedAt: now,
          state: row.state,
          stateChangedAt: now,
          creditedInvoice: entry.credited,
          applied: [],
        }),
      });
    }
    // Unapplied credit (an overpayment, a credit note's remainder) is used first on the new bills.
    const billed = rows.filter((row) => row.kind !== "creditNote").map((row) => row.billingAccountId);
    if (billed.length > 0) await this.settleMany(tx, invoicesTouched(await applyUnappliedCredit(tx, billed, now)));
    return issued;
  }

  /** After commit: the subscriber's message goes out (the bill becomes "sent" when it does), and the answer. */
  private async finish(
    outcome:
      | { status: "existing"; row: InvoiceRow }
      | { status: "issued"; row: InvoiceRow; messageId: string | null }
      | { status: "nothing"; reason: string; usagePeriod: string },
  ): Promise<IssueOutcome> {
    if (outcome.status === "nothing") return outcome;
    if (outcome.status === "issued" && outcome.messageId !== null) await this.deps.deliverMessage(outcome.messageId);
    return { status: outcome.status, bill: await this.present(this.deps.database.db, outcome.row.id) };
  }

  /** A bill message reached the subscriber: its bill is "sent" (unless allocations or a hold moved it on). */
  async messageSent(message: { id: string; reason: string; sentAt: Date }): Promise<void> {
    if (message.reason !== BILL_READY_REASON) return;
    await this.deps.database.transaction(async (tx) => {
      // One statement: the first delivery marks it; "validated" becomes "sent" (a hold or allocations stay).
      const [updated] = await tx
        .update(invoices)
        .set({
          sentAt: message.sentAt,
          state: sql`case when ${invoices.state} = 'validated' then 'sent' else ${invoices.state} end`,
          stateChangedAt: sql`case when ${invoices.state} = 'validated' then ${message.sentAt.toISOString()}::timestamptz else ${invoices.stateChangedAt} end`,
        })
        .where(and(eq(invoices.messageId, message.id), sql`${invoices.sentAt} is null`))
        .returning();
      if (
        updated !== undefined &&
        updated.state === "sent" &&
        updated.stateChangedAt.getTime() === message.sentAt.getTime()
      ) {
        await this.recordEvent(tx, updated, "StateChange");
      }
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Credit notes

  /**
   * A credit note against an invoice: every line (all that is left of each), or the lines named, each whole or for
   * a net amount; never more than is left to credit; the tax of each rate reversed in the proportion of its nets
   * credited (the rest of a rate's tax when its nets are credited in full). Applied to the invoice's open amount.
   */
  async creditNote(actor: Actor, invoiceId: string, request: CreditRequest): Promise<CustomerBill> {
    const db = this.deps.database.db;
    const [target] = isId(invoiceId) ? await db.select().from(invoices).where(eq(invoices.id, invoiceId)) : [];
    if (target === undefined) throw notFound("customerBill", invoiceId);
    if (target.kind === "creditNote") {
      throw new AppError(
        "unprocessable",
        "credit_of_credit_note",
        `${target.number} is a credit note; credit invoices only`,
      );
    }
    const account = await this.deps.account(db, target.billingAccountId);
    if (account === undefined) throw notFound("billingAccount", target.billingAccountId);
    const contact = await this.deps.contactFor(account.customerId);
    const issuer = { id: target.issuerId, name: target.issuerName, ...(await this.issuerOf(target, account)) };
    const outcome = await this.deps.database.transaction(async (tx) => {
      await lockAccount(tx, target.billingAccountId);
      const lines = await tx
        .select()
        .from(invoiceLines)
        .where(eq(invoiceLines.invoiceId, target.id))
        .orderBy(asc(invoiceLines.position));
      const credits = await creditedSoFar(tx, target.id);
      const document = documentOfRow(target);
      const plan = planCredit(
        document,
        lines.map((line) => lineOfRow(line, target.currency)),
        credits,
        request,
      );
      const now = this.deps.clock.now();
      const zone = cycleAt(now.getTime(), account.cycle).timeZone;
      const issueDate = formatLocalDate(localDate(now, zone));
      const zero = MinorAmount.zero(document.gross.decimals);
      const creditDocument: BillDocument = {
        kind: "creditNote",
        billingAccountId: target.billingAccountId,
        currency: target.currency,
        usagePeriod: document.usagePeriod,
        advancePeriod: null,
        issueDate,
        dueDate: issueDate,
        timeZone: zone,
        net: plan.net,
        tax: plan.tax,
        gross: plan.net.plus(plan.tax),
        previousBalance: zero,
        paymentsSince: zero,
        creditsSince: zero,
        totalDue: zero,
        reverseCharge: target.reverseCharge,
        taxes: plan.taxes,
        notes: [`Credits ${target.number} of ${target.issueDate}.`],
        reason: request.reason,
      };
      const before = (await balancesOf(tx, [target.billingAccountId])).get(target.billingAccountId)?.amount ?? zero;
      creditDocument.previousBalance = before;
      creditDocument.totalDue = before.plus(creditDocument.gross);
      const [row] = await this.issueAll(
        tx,
        actor,
        [
          {
            account,
            issuer,
            contact,
            document: creditDocument,
            lines: plan.lines,
            usageMarks: [],
            credited: { id: target.id, number: target.number },
          },
        ],
        null,
      );
      const issued = row as InvoiceRow;
      await this.applyCredit(tx, target, issued);
      return { status: "issued" as const, row: issued, messageId: issued.messageId };
    });
    const finished = await this.finish(outcome);
    return (finished as { bill: CustomerBill }).bill;
  }

  private async issuerOf(target: InvoiceRow, account: BillingAccountView) {
    const issuer = await this.deps.issuerFor(account.taxJurisdiction.slice(0, 2));
    if (issuer === undefined || issuer.id !== target.issuerId) {
      throw new AppError(
        "unprocessable",
        "no_issuing_entity",
        `issuing entity ${target.issuerId}, which issued ${target.number}, no longer bills the account's country`,
      );
    }
    return { country: issuer.country, vatId: issuer.vatId, timeZone: issuer.timeZone, series: issuer.series };
  }

  /**
   * A credit note's entry applied to what its invoice has open first; the rest is the account's credit, used on
   * what else it owes (oldest first) or on its next bill.
   */
  private async applyCredit(tx: Db, target: InvoiceRow, credit: InvoiceRow): Promise<void> {
    const now = this.deps.clock.now();
    const [entry] = await tx.select().from(receivableEntries).where(eq(receivableEntries.invoiceId, credit.id));
    if (entry === undefined) return;
    const items = (await openItemsOf(tx, [target.billingAccountId])).get(target.billingAccountId) ?? [];
    const decimals = currencyMinorUnits(target.currency);
    const own = applyCredit(
      {
        entryId: entry.id,
        billingAccountId: target.billingAccountId,
        available: MinorAmount.parse(credit.gross.toFixed(), decimals).negated(),
        seq: entry.seq,
      },
      items.filter((item) => item.id === target.id),
    );
    await writeAllocations(tx, own, now);
    const rest = await applyUnappliedCredit(tx, [target.billingAccountId], now);
    await this.settleMany(tx, invoicesTouched([...own, ...rest]));
  }

  /**
   * Invoices' states after allocations, in one statement: settled when nothing is open, partiallyPaid when some is,
   * else sent or validated by delivery (a hold stays); a StateChange event for each that moved.
   */
  async settleMany(tx: Db, invoiceIds: readonly string[]): Promise<void> {
    const ids = [...new Set(invoiceIds)];
    if (ids.length === 0) return;
    const now = this.deps.clock.now();
    const changed = await queryRows<{ id: string }>(
      tx,
      sql`with next as (${nextStates(ids)})
          update ${invoices} i set state = next.state, state_changed_at = ${now.toISOString()}::timestamptz
          from next where i.id = next.id and i.state <> 'onHold' and i.state <> next.state returning i.id`,
    );
    if (changed.length === 0) return;
    const bills = await this.presentMany(
      tx,
      changed.map((row) => row.id),
    );
    for (const bill of bills) {
      await this.deps.events.record(tx, {
        api: "customerBillManagement",
        resource: "customerBill",
        change: "StateChange",
        resourceId: bill.id as string,
        body: bill,
      });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Holding a bill (the only change a client makes)

  async changeState(actor: Actor, id: string, to: string): Promise<CustomerBill> {
    const db = this.deps.database.db;
    const [found] = isId(id) ? await db.select().from(invoices).where(eq(invoices.id, id)) : [];
    if (found === undefined) throw notFound("customerBill", id);
    await this.deps.database.transaction(async (tx) => {
      const [row] = await tx.select().from(invoices).where(eq(invoices.id, id)).for("update");
      if (row === undefined) throw notFound("customerBill", id);
      if (to === row.state) return;
      let next: string;
      if (to === "onHold") {
        if (row.kind === "creditNote" || row.state === "settled") {
          throw new AppError(
            "conflict",
            "illegal_transition",
            `state: ${row.number} is ${row.kind === "creditNote" ? "a credit note" : "settled"}; only open bills are put on hold`,
            "state",
          );
        }
        next = "onHold";
      } else {
        if (row.state !== "onHold") {
          throw new AppError(
            "conflict",
            "illegal_transition",
            `state: a client only puts a bill on hold and releases it; ${row.number} is ${row.state}, and its state follows its delivery and payments`,
            "state",
          );
        }
        const [computed] = await queryRows<{ state: string }>(tx, nextStates([row.id]));
        next = computed?.state ?? row.state;
        if (to !== next) {
          throw new AppError(
            "conflict",
            "illegal_transition",
            `state: released from hold, ${row.number} is ${next} (from its delivery and what was applied to it), not ${to}`,
            "state",
          );
        }
      }
      const [updated] = await tx
        .update(invoices)
        .set({ state: next, stateChangedAt: this.deps.clock.now() })
        .where(eq(invoices.id, row.id))
        .returning();
      await this.deps.audit.record(tx, actor, {
        action: "update",
        entityType: "customerBill",
        entityId: row.id,
        before: { state: row.state },
        after: { state: next },
      });
      if (updated !== undefined) await this.recordEvent(tx, updated, "StateChange");
    });
    return this.present(db, id);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads

  async list(actor: Actor, request: ListRequest): Promise<{ items: CustomerBill[]; total: number }> {
    const db = this.deps.database.db;
    const scope = subscriberScope(actor, invoices.billingAccountId);
    const { category, ...filters } = request.filters;
    const where = listFilters(
      {
        id: invoices.id,
        billNo: invoices.number,
        state: invoices.state,
        "billingAccount.id": invoices.billingAccountId,
        usagePeriod: invoices.usagePeriod,
      },
      { ...request, filters },
      [
        scope,
        category === undefined || category.length === 0
          ? undefined
          : inArray(
              invoices.kind,
              category.map((value) => KIND_OF_CATEGORY[value] ?? value),
            ),
      ],
    );
    const [rows, counted] = await Promise.all([
      db
        .select({ id: invoices.id })
        .from(invoices)
        .where(where)
        .orderBy(asc(invoices.issuedAt), asc(invoices.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(invoices).where(where),
    ]);
    const items = await this.presentMany(
      db,
      rows.map((row) => row.id),
    );
    return { items, total: counted[0]?.total ?? 0 };
  }

  async get(actor: Actor, id: string): Promise<CustomerBill> {
    const db = this.deps.database.db;
    const [row] = isId(id) ? await db.select().from(invoices).where(eq(invoices.id, id)) : [];
    if (row === undefined || !mayReadAccount(actor, row.billingAccountId)) throw notFound("customerBill", id);
    return this.present(db, id);
  }

  async listLines(actor: Actor, request: ListRequest): Promise<{ items: BillingRate[]; total: number }> {
    const db = this.deps.database.db;
    const scope = subscriberScope(actor, invoices.billingAccountId);
    const where = listFilters(
      {
        id: invoiceLines.id,
        type: invoiceLines.kind,
        name: invoiceLines.name,
        "bill.id": invoiceLines.invoiceId,
        "billingAccount.id": invoices.billingAccountId,
        "product.id": invoiceLines.productId,
      },
      request,
      [scope],
    );
    const [rows, counted] = await Promise.all([
      db
        .select({ line: invoiceLines, invoice: invoices })
        .from(invoiceLines)
        .innerJoin(invoices, eq(invoices.id, invoiceLines.invoiceId))
        .where(where)
        .orderBy(asc(invoices.issuedAt), asc(invoiceLines.invoiceId), asc(invoiceLines.position))
        .offset(request.offset)
        .limit(request.limit),
      db
        .select({ total: count() })
        .from(invoiceLines)
        .innerJoin(invoices, eq(invoices.id, invoiceLines.invoiceId))
        .where(where),
    ]);
    return {
      items: rows.map(({ line, invoice }) =>
        presentLine(lineOfRow(line, invoice.currency), documentOfRow(invoice), "tmf", invoice),
      ),
      total: counted[0]?.total ?? 0,
    };
  }

  async getLine(actor: Actor, id: string): Promise<BillingRate> {
    const { line, invoice } = await this.findLine(actor, id);
    return presentLine(lineOfRow(line, invoice.currency), documentOfRow(invoice), "tmf", invoice);
  }

  /** The rated usage a usage line billed, in sequence, a page at a time (`afterSeq` continues). */
  async lineUsage(actor: Actor, id: string, page: { afterSeq?: number; limit?: number }) {
    const { line } = await this.findLine(actor, id);
    if (line.usageSummaryId === null || line.fromSeq === null || line.toSeq === null) {
      return { items: [], nextAfterSeq: null };
    }
    const from = Math.max(page.afterSeq ?? line.fromSeq - 1, line.fromSeq - 1);
    const limit = Math.min(page.limit ?? 1000, line.toSeq - from);
    if (limit <= 0) return { items: [], nextAfterSeq: null };
    const { rows } = await this.deps.ratedRows(line.usageSummaryId, { afterSeq: from, limit });
    const items = rows.filter((row) => row.seq <= (line.toSeq as number));
    const last = items.at(-1)?.seq ?? null;
    return {
      items: items.map((row) => ({
        usageId: row.usageId,
        href: `/tmf-api/usageManagement/v4/usage/${row.usageId}`,
        seq: row.seq,
        startedAt: row.startedAt.toISOString(),
        ratedAt: row.ratedAt.toISOString(),
        quantity: row.quantity,
        chargedUnits: row.chargedUnits,
        amount: row.amount.toFixed(),
        currency: row.currency,
        destination: row.destination,
      })),
      nextAfterSeq: last !== null && last < line.toSeq ? last : null,
    };
  }

  private async findLine(actor: Actor, id: string): Promise<{ line: LineRow; invoice: InvoiceRow }> {
    const [found] = isId(id)
      ? await this.deps.database.db
          .select({ line: invoiceLines, invoice: invoices })
          .from(invoiceLines)
          .innerJoin(invoices, eq(invoices.id, invoiceLines.invoiceId))
          .where(eq(invoiceLines.id, id))
      : [];
    if (found === undefined || !mayReadAccount(actor, found.invoice.billingAccountId)) {
      throw notFound("appliedCustomerBillingRate", id);
    }
    return found;
  }

  async getRequest(actor: Actor, id: string) {
    const [row] = isId(id)
      ? await this.deps.database.db.select().from(billRequests).where(eq(billRequests.id, id))
      : [];
    if (row === undefined || !mayReadAccount(actor, row.billingAccountId)) throw notFound("customerBillOnDemand", id);
    return this.presentRequest(row);
  }

  async listRequests(actor: Actor, request: ListRequest) {
    const db = this.deps.database.db;
    const where = listFilters(
      { id: billRequests.id, state: billRequests.state, "billingAccount.id": billRequests.billingAccountId },
      request,
      [subscriberScope(actor, billRequests.billingAccountId)],
    );
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(billRequests)
        .where(where)
        .orderBy(asc(billRequests.createdAt), asc(billRequests.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(billRequests).where(where),
    ]);
    return {
      items: await Promise.all(rows.map((row) => this.presentRequest(row))),
      total: counted[0]?.total ?? 0,
    };
  }

  /** Why an account cannot close: the amount it owes, by the receivables ledger (null: nothing owed). */
  async refuseAccountClose(db: Db, billingAccountId: string): Promise<string | null> {
    const balance = (await balancesOf(db, [billingAccountId])).get(billingAccountId);
    if (balance === undefined || !balance.amount.isPositive()) return null;
    return `it owes ${balance.amount.toFixed()} ${balance.currency} (the receivables ledger's balance); settle it first`;
  }

  /** The receivables balances of accounts (absent: no entries), for TMF666 accountBalance. */
  async balances(db: Db, billingAccountIds: readonly string[]) {
    return balancesOf(db, billingAccountIds);
  }

  private async present(db: Db, id: string): Promise<CustomerBill> {
    const [bill] = await this.presentMany(db, [id]);
    if (bill === undefined) throw notFound("customerBill", id);
    return bill;
  }

  private async presentMany(db: Db, ids: readonly string[]): Promise<CustomerBill[]> {
    if (ids.length === 0) return [];
    const rows = await db
      .select()
      .from(invoices)
      .where(inArray(invoices.id, [...ids]));
    const byId = new Map(rows.map((row) => [row.id, row]));
    const applied = await queryRows<{
      invoice_id: string;
      entry_id: string;
      amount: string;
      kind: string;
      document_id: string | null;
      at: Date | string;
    }>(
      db,
      // Per crediting entry, net of undone allocations (a reversed payment's): what stands applied.
      sql`select a.invoice_id, a.entry_id, sum(a.amount)::text as amount, e.kind, e.invoice_id as document_id,
            min(a.at) as at
          from ${allocations} a join ${receivableEntries} e on e.id = a.entry_id
          where a.invoice_id in (${uuidList(ids)})
          group by a.invoice_id, a.entry_id, e.kind, e.invoice_id, e.seq having sum(a.amount) <> 0
          order by min(a.at), e.seq`,
    );
    const credited = rows.flatMap((row) => (row.creditedInvoiceId === null ? [] : [row.creditedInvoiceId]));
    const creditedNumbers = new Map(
      credited.length === 0
        ? []
        : (
            await db
              .select({ id: invoices.id, number: invoices.number })
              .from(invoices)
              .where(inArray(invoices.id, credited))
          ).map((row) => [row.id, row.number]),
    );
    return ids.flatMap((id) => {
      const row = byId.get(id);
      if (row === undefined) return [];
      const decimals = currencyMinorUnits(row.currency);
      const facts: IssuedFacts = {
        id: row.id,
        number: row.number,
        paymentReference: row.paymentReference,
        issuerId: row.issuerId,
        issuedAt: row.issuedAt,
        state: row.state,
        stateChangedAt: row.stateChangedAt,
        creditedInvoice:
          row.creditedInvoiceId === null
            ? null
            : { id: row.creditedInvoiceId, number: creditedNumbers.get(row.creditedInvoiceId) ?? "" },
        applied: applied
          .filter((entry) => entry.invoice_id === id)
          .map((entry) => ({
            entryId: entry.entry_id,
            amount: MinorAmount.parse(entry.amount, decimals),
            kind: entry.kind,
            documentId: entry.document_id,
            at: new Date(entry.at),
          })),
      };
      return [presentBill(documentOfRow(row), { id: row.issuerId, name: row.issuerName }, "tmf", facts)];
    });
  }

  private async presentRequest(row: typeof billRequests.$inferSelect, db: Db = this.deps.database.db) {
    const bill =
      row.invoiceId === null
        ? undefined
        : (await db.select({ number: invoices.number }).from(invoices).where(eq(invoices.id, row.invoiceId)))[0];
    return {
      id: row.id,
      href: `/tmf-api/customerBillManagement/v4/customerBillOnDemand/${row.id}`,
      "@type": "CustomerBillOnDemand" as const,
      ...(row.name === null ? {} : { name: row.name }),
      ...(row.description === null ? {} : { description: row.description }),
      state: row.state,
      lastUpdate: row.createdAt.toISOString(),
      billingAccount: {
        id: row.billingAccountId,
        href: `/tmf-api/accountManagement/v4/billingAccount/${row.billingAccountId}`,
        "@referredType": "BillingAccount",
      },
      ...(row.invoiceId === null
        ? {}
        : {
            customerBill: {
              id: row.invoiceId,
              href: `/tmf-api/customerBillManagement/v4/customerBill/${row.invoiceId}`,
              ...(bill === undefined ? {} : { name: bill.number }),
              "@referredType": "CustomerBill",
            },
          }),
      ...(row.reason === null ? {} : { reason: row.reason }),
    };
  }

  private async recordEvent(tx: Db, row: InvoiceRow, change: "Create" | "StateChange"): Promise<void> {
    const [body] = await this.presentMany(tx, [row.id]);
    await this.deps.events.record(tx, {
      api: "customerBillManagement",
      resource: "customerBill",
      change,
      resourceId: row.id,
      body,
    });
  }
}

const KIND_OF_CATEGORY: Record<string, string> = {
  normal: "cycle",
  interim: "interim",
  last: "final",
  creditNote: "creditNote",
};

function subscriberScope(
  actor: Actor,
  column: typeof invoices.billingAccountId | typeof billRequests.billingAccountId,
) {
  return actor.role === "subscriber" ? eq(column, actor.billingAccountId ?? "") : undefined;
}

/** One issuer at a time per account: issuing, crediting and allocating take this transaction-level lock. */
export async function lockAccount(tx: Db, billingAccountId: string): Promise<void> {
  await lockAccounts(tx, [billingAccountId]);
}

/** The locks of many accounts in one statement, taken in id order (two batches never wait on each other in a loop). */
export async function lockAccounts(tx: Db, billingAccountIds: readonly string[]): Promise<void> {
  if (billingAccountIds.length === 0) return;
  const keys = [...new Set(billingAccountIds)].sort().map((id) => `bill:${id}`);
  await tx.execute(sql`select count(pg_advisory_xact_lock(hashtextextended(key, 0)))
    from (select key from jsonb_array_elements_text(${JSON.stringify(keys)}::jsonb) as key order by key) as ordered`);
}

/**
 * What each invoice's state is by its allocations and delivery (a credit note: by delivery only), as a query of
 * (id, state): settled when nothing is open, partiallyPaid when some is, else sent or validated.
 */
function nextStates(ids: readonly string[]) {
  return sql`select i.id, case
      when i.kind <> 'creditNote' and coalesce(t.applied, 0) > 0 and coalesce(t.applied, 0) >= i.gross then 'settled'
      when i.kind <> 'creditNote' and coalesce(t.applied, 0) > 0 then 'partiallyPaid'
      when i.sent_at is null then 'validated' else 'sent' end as state
    from ${invoices} i left join ${allocationTotals} t on t.side = 'target' and t.id = i.id
    where i.id in (${uuidList(ids)})`;
}

// ---------------------------------------------------------------------------------------------------------------
// The arithmetic of a credit note

interface CreditedSoFar {
  /** Per invoice line: the nets already credited (positive). */
  byLine: Map<string, bigint>;
  /** Per category and rate: the tax already credited (positive). */
  taxByRate: Map<string, bigint>;
}

async function creditedSoFar(tx: Db, invoiceId: string): Promise<CreditedSoFar> {
  const notes = await tx
    .select({ id: invoices.id, taxes: invoices.taxes, currency: invoices.currency })
    .from(invoices)
    .where(eq(invoices.creditedInvoiceId, invoiceId));
  const byLine = new Map<string, bigint>();
  const taxByRate = new Map<string, bigint>();
  if (notes.length === 0) return { byLine, taxByRate };
  const decimals = currencyMinorUnits(notes[0]?.currency ?? "EUR");
  for (const note of notes) {
    for (const tax of note.taxes) {
      const key = rateKey(tax.category, tax.rate);
      taxByRate.set(key, (taxByRate.get(key) ?? 0n) - parseScaled(tax.tax, decimals));
    }
  }
  const lines = await tx
    .select({ credited: invoiceLines.creditedLineId, net: invoiceLines.net })
    .from(invoiceLines)
    .where(
      inArray(
        invoiceLines.invoiceId,
        notes.map((note) => note.id),
      ),
    );
  for (const line of lines) {
    if (line.credited === null) continue;
    byLine.set(line.credited, (byLine.get(line.credited) ?? 0n) - parseScaled(line.net.toFixed(), decimals));
  }
  return { byLine, taxByRate };
}

const rateKey = (category: string, rate: string) => `${category}:${Number(rate)}`;

/** What a credit note holds: its lines (negative), its tax per rate and totals. Refuses more than is left. */
export function planCredit(
  invoice: BillDocument,
  lines: readonly BillLine[],
  credited: CreditedSoFar,
  request: CreditRequest,
): { lines: BillLine[]; taxes: BillTax[]; net: MinorAmount; tax: MinorAmount } {
  const decimals = invoice.gross.decimals;
  const amount = (units: bigint) => new MinorAmount(units, decimals);
  const byId = new Map(lines.map((line) => [line.id, line]));
  const wanted: Array<{ line: BillLine; net: bigint; field: string }> = [];
  const asked: ReadonlyArray<{ id: string; amount?: { unit: string; value: string } }> =
    request.lines ?? lines.map((line) => ({ id: line.id }));
  const seen = new Set<string>();
  for (const [index, entry] of asked.entries()) {
    const field = request.lines === undefined ? "lines" : `lines[${index}]`;
    const line = byId.get(entry.id);
    if (line === undefined) {
      throw new AppError(
        "unprocessable",
        "line_not_on_invoice",
        `${field}.id: ${entry.id} is no line of this invoice`,
        `${field}.id`,
      );
    }
    if (seen.has(line.id)) {
      throw new AppError(
        "unprocessable",
        "duplicate_line",
        `${field}.id: line ${line.id} is named twice`,
        `${field}.id`,
      );
    }
    seen.add(line.id);
    const left = line.net.units - (credited.byLine.get(line.id) ?? 0n);
    if (line.net.units <= 0n) {
      if (request.lines === undefined) continue;
      throw new AppError(
        "unprocessable",
        "nothing_to_credit",
        `${field}.id: line ${line.id} (${line.name}) is itself a credit; nothing to credit on it`,
        `${field}.id`,
      );
    }
    if (left <= 0n && request.lines !== undefined) {
      throw new AppError(
        "unprocessable",
        "credit_exceeds_line",
        `${field}.id: line ${line.id} (${line.name}) is credited in full already`,
        `${field}.id`,
      );
    }
    let net = left;
    if (entry.amount !== undefined) {
      if (entry.amount.unit !== invoice.currency) {
        throw new AppError(
          "unprocessable",
          "currency_mismatch",
          `${field}.amount.unit: the invoice is in ${invoice.currency}`,
          `${field}.amount.unit`,
        );
      }
      let units: bigint;
      try {
        units = parseScaled(entry.amount.value, decimals);
      } catch {
        throw new AppError(
          "bad_request",
          "invalid_field",
          `${field}.amount.value: a positive amount with at most ${decimals} decimals`,
          `${field}.amount.value`,
        );
      }
      if (units <= 0n) {
        throw new AppError(
          "bad_request",
          "invalid_field",
          `${field}.amount.value: must be positive`,
          `${field}.amount.value`,
        );
      }
      net = units;
    }
    if (net > left) {
      throw new AppError(
        "unprocessable",
        "credit_exceeds_line",
        `${field}: ${amount(net).toFixed()} ${invoice.currency} is more than is left to credit on line ${line.id} (${line.name}): ${amount(left > 0n ? left : 0n).toFixed()}`,
        request.lines === undefined ? "lines" : `${field}.amount`,
      );
    }
    if (net > 0n) wanted.push({ line, net, field });
  }
  if (wanted.length === 0) {
    throw new AppError("unprocessable", "nothing_to_credit", "lines: the invoice has nothing left to credit", "lines");
  }
  // Tax per rate, in the proportion of the rate's nets credited; the rest of it when they are credited in full.
  const taxes: BillTax[] = [];
  const taxShare = new Map<string, bigint>();
  for (const subtotal of invoice.taxes) {
    const key = rateKey(subtotal.category, subtotal.rate.toFixed());
    const creditedHere = wanted
      .filter((entry) => rateKey(entry.line.taxCategory, entry.line.taxRate.toFixed()) === key)
      .reduce((sum, entry) => sum + entry.net, 0n);
    if (creditedHere === 0n) continue;
    const taxable = subtotal.taxable.units;
    const taxLeft = subtotal.tax.units - (credited.taxByRate.get(key) ?? 0n);
    const netLeft =
      taxable -
      lines
        .filter((line) => rateKey(line.taxCategory, line.taxRate.toFixed()) === key)
        .reduce((sum, line) => sum + (credited.byLine.get(line.id) ?? 0n), 0n);
    let tax =
      creditedHere >= netLeft
        ? taxLeft
        : taxable === 0n
          ? 0n
          : divideHalfUp(subtotal.tax.units * creditedHere, taxable);
    if (tax > taxLeft) tax = taxLeft;
    if (tax < 0n) tax = 0n;
    taxShare.set(key, tax);
    taxes.push({
      category: subtotal.category,
      rate: subtotal.rate,
      taxable: amount(-creditedHere),
      tax: amount(-tax),
      exemptionReason: subtotal.exemptionReason,
    });
  }
  let net = 0n;
  let tax = 0n;
  for (const subtotal of taxes) tax += subtotal.tax.units;
  const creditLines: BillLine[] = wanted.map(({ line, net: credit }) => {
    net -= credit;
    // The line's own tax shown in the same proportion of its net (the document's tax is per rate, above).
    const lineTax = line.net.units === 0n ? 0n : divideHalfUp(line.lineTax.units * credit, line.net.units);
    const charge = line.taxIncluded ? credit + lineTax : credit;
    return {
      ...line,
      id: line.id,
      key: `creditNote:${line.id}`,
      oneTimeChargeId: null,
      usageSummaryId: null,
      fromSeq: null,
      toSeq: null,
      name: `Credit: ${line.name}`,
      amount: amount(-charge),
      discount: amount(0n),
      charge: amount(-charge),
      net: amount(-credit),
      lineTax: amount(-lineTax),
      promotions: [],
      creditedLineId: line.id,
    };
  });
  return { lines: creditLines, taxes, net: amount(net), tax: amount(tax) };
}
