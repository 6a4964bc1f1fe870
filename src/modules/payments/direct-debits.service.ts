import { createHash } from "node:crypto";
import { and, asc, count, desc, eq, inArray, lte, sql } from "drizzle-orm";
import { isSEPACountry, validateBIC, validateIBAN } from "ibantools";
import type { Actor } from "../../platform/audit.js";
import { mayReadAccount } from "../../platform/auth.js";
import { type Db, queryRows } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { uuidList } from "../../platform/sql.js";
import { requestHash } from "../../platform/tmf.js";
import {
  addMonths,
  dateOfDayNumber,
  dayNumber,
  formatLocalDate,
  isCalendarDate,
  type LocalDate,
  parseLocalDate,
} from "../../shared/calendar.js";
import { isId, newId } from "../../shared/ids.js";
import { Money } from "../../shared/money.js";
import {
  type BillingAccountView,
  type BillMessage,
  type CollectibleBill,
  type Contact,
  lockAccounts,
  openBillsDueBy,
  openItemsOf,
} from "../billing/index.js";
import { directDebitFiles, directDebits, mandates } from "./bank-files.tables.js";
import { buildPain008, type Creditor, type PlannedDebit, sepaText } from "./pain008.js";
import { maskIban, type PaymentsService } from "./payments.service.js";
import { REVERSAL_REASONS } from "./reversal-reasons.js";

/**
 * SEPA Core direct debits (EPC SDD Core rulebook; ISO 20022 pain.008.001.02). A billing account's mandates are the
 * debtor's signed permission; a mandate not used for 36 months lapses (rulebook 4.5 / SDD Core PT-04.18). A file
 * collects the open bills due by its collection date from accounts with a valid mandate, one debit per bill, each a
 * pending payment until the collection date (the scheduled job collects it then) or until a statement books it or
 * returns it. The first debit of a mandate is FRST, later ones RCUR. Every debtor is pre-notified through the
 * customer channel, so the collection date must be at least the pre-notification period away (14 calendar days
 * unless agreed otherwise, rulebook PT-04.03). SEPA debits are in euro; the creditor is the bill's issuing entity
 * (its SEPA creditor identifier and bank account come from the catalog). Returns (R-transactions) reverse the payment
 * within 8 weeks of the collection date, or 13 months where the debit was unauthorised (no valid mandate, MD01).
 */

export const DIRECT_DEBITS_PATH = "/api/v1/payments/direct-debits";
const MANDATE_LIFE_MONTHS = 36;
/** A return may come up to 8 weeks after collection (authorised), or 13 months when there was no mandate (MD01). */
const RETURN_DAYS_AUTHORISED = 56;
const RETURN_MONTHS_UNAUTHORISED = 13;
/** The characters a mandate reference may hold (EPC SEPA character set, at most 35, no leading or double "/"). */
const MANDATE_REFERENCE = /^(?!\/)(?!.*\/\/)[A-Za-z0-9/\-?:().,'+ ]{1,35}$/;

export interface DirectDebitsDeps extends ServiceDeps {
  accounts(db: Db, ids: readonly string[]): Promise<Map<string, BillingAccountView>>;
  payments: PaymentsService;
  /** The SEPA creditor an issuing entity collects as, or null when the catalog gives it none. */
  creditorOf(issuerId: string): Promise<Creditor | null>;
  /** Pre-notifications through the customer channel, queued in the caller's transaction. */
  contactFor(customerId: string): Promise<Contact | null>;
  queueMessages(tx: Db, messages: readonly BillMessage[]): Promise<void>;
  prenotificationDays: number;
}

export interface MandateInput {
  reference: string;
  signatureDate: string;
  debtorName: string;
  iban: string;
  bic?: string | undefined;
}

type MandateRow = typeof mandates.$inferSelect;
type FileRow = typeof directDebitFiles.$inferSelect;

/** A debit left out of a file, and why. */
export interface Skipped {
  billId: string;
  billingAccountId: string;
  mandate?: string;
  reason: string;
}

export class DirectDebitsService {
  constructor(private readonly deps: DirectDebitsDeps) {}

  private today(): LocalDate {
    const now = this.deps.clock.now();
    return { year: now.getUTCFullYear(), month: now.getUTCMonth() + 1, day: now.getUTCDate() };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Mandates

  private async account(actor: Actor, billingAccountId: string): Promise<BillingAccountView> {
    const account = isId(billingAccountId)
      ? (await this.deps.accounts(this.deps.database.db, [billingAccountId])).get(billingAccountId)
      : undefined;
    if (account === undefined || !mayReadAccount(actor, account.id)) throw notFound("billingAccount", billingAccountId);
    return account;
  }

  async mandates(actor: Actor, billingAccountId: string): Promise<object[]> {
    await this.account(actor, billingAccountId);
    const rows = await this.deps.database.db
      .select()
      .from(mandates)
      .where(eq(mandates.billingAccountId, billingAccountId))
      .orderBy(asc(mandates.createdAt), asc(mandates.id));
    return rows.map((row) => this.presentMandate(row));
  }

  async mandate(actor: Actor, billingAccountId: string, id: string): Promise<object> {
    await this.account(actor, billingAccountId);
    return this.presentMandate(await this.findMandate(this.deps.database.db, billingAccountId, id));
  }

  private async findMandate(db: Db, billingAccountId: string, id: string): Promise<MandateRow> {
    const [row] = isId(id) ? await db.select().from(mandates).where(eq(mandates.id, id)) : [];
    if (row === undefined || row.billingAccountId !== billingAccountId) throw notFound("mandate", id);
    return row;
  }

  async addMandate(actor: Actor, billingAccountId: string, input: MandateInput): Promise<object> {
    const account = await this.account(actor, billingAccountId);
    const checked = checkMandate(input, formatLocalDate(this.today()));
    if (account.currency !== "EUR") {
      throw new AppError(
        "unprocessable",
        "not_sepa",
        `billingAccount: ${account.id} bills in ${account.currency}; SEPA direct debits collect euro only`,
      );
    }
    if (account.accountType !== "postpaid") {
      throw new AppError(
        "unprocessable",
        "prepaid_account",
        `billingAccount: ${account.id} is prepaid; it pays by top-ups, not by direct debit`,
      );
    }
    const now = this.deps.clock.now();
    const id = newId(now.getTime());
    return this.deps.database.transaction(async (tx) => {
      const [taken] = await tx
        .select({ id: mandates.id })
        .from(mandates)
        .where(eq(mandates.reference, checked.reference));
      if (taken !== undefined) {
        throw new AppError(
          "conflict",
          "duplicate_mandate",
          `reference: mandate ${checked.reference} exists already (a mandate reference is unique for the creditor)`,
          "reference",
        );
      }
      const [row] = await tx
        .insert(mandates)
        .values({
          id,
          billingAccountId,
          reference: checked.reference,
          signatureDate: checked.signatureDate,
          debtorName: checked.debtorName,
          iban: checked.iban,
          bic: checked.bic ?? null,
          sequence: "first",
          status: "active",
          statusDate: now,
          createdAt: now,
        })
        .returning();
      const presented = this.presentMandate(row as MandateRow);
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "mandate",
        entityId: id,
        after: { ...presented, iban: maskIban(checked.iban) },
      });
      return presented;
    });
  }

  /** The debtor withdrew the mandate: no further debits; what is pending stays pending. */
  async revokeMandate(actor: Actor, billingAccountId: string, id: string): Promise<object> {
    await this.account(actor, billingAccountId);
    return this.deps.database.transaction(async (tx) => {
      const row = await this.findMandate(tx, billingAccountId, id);
      if (row.status === "revoked") return this.presentMandate(row);
      const now = this.deps.clock.now();
      const [updated] = await tx
        .update(mandates)
        .set({ status: "revoked", statusDate: now })
        .where(eq(mandates.id, id))
        .returning();
      await this.deps.audit.record(tx, actor, {
        action: "revoke",
        entityType: "mandate",
        entityId: id,
        before: { status: row.status },
        after: { status: "revoked" },
      });
      return this.presentMandate(updated as MandateRow);
    });
  }

  private presentMandate(row: MandateRow): object {
    const status = row.status === "active" && lapsesBy(row) <= formatLocalDate(this.today()) ? "lapsed" : row.status;
    return {
      id: row.id,
      href: `/api/v1/billing-accounts/${row.billingAccountId}/mandates/${row.id}`,
      reference: row.reference,
      signatureDate: row.signatureDate,
      debtorName: row.debtorName,
      iban: maskIban(row.iban),
      ...(row.bic === null ? {} : { bic: row.bic }),
      sequence: row.sequence,
      status,
      statusDate: row.statusDate.toISOString(),
      ...(row.lastCollectionDate === null ? {} : { lastCollectionDate: row.lastCollectionDate }),
      /** It lapses after this date unless used. */
      validUntil: lapsesBy(row),
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Files

  /**
   * One pain.008 file for `collectionDate`: the open bills due by then of accounts with a valid mandate (not on hold,
   * not already in a pending debit), as pending payments, pre-notified; lapsed mandates marked so and skipped.
   */
  async build(
    actor: Actor,
    request: { collectionDate: string; idempotencyKey?: string | undefined },
  ): Promise<{ created: boolean; file: object }> {
    const { collectionDate } = request;
    if (!isCalendarDate(collectionDate)) {
      throw new AppError(
        "bad_request",
        "invalid_field",
        "collectionDate: a calendar date, YYYY-MM-DD",
        "collectionDate",
      );
    }
    const today = this.today();
    const earliest = formatLocalDate(dateOfDayNumber(dayNumber(today) + this.deps.prenotificationDays));
    if (collectionDate < earliest) {
      throw new AppError(
        "unprocessable",
        "prenotification_period",
        `collectionDate: ${collectionDate} is inside the pre-notification period (${this.deps.prenotificationDays} days): the earliest is ${earliest}`,
        "collectionDate",
      );
    }
    const hash = requestHash({ collectionDate });
    const db = this.deps.database.db;
    if (request.idempotencyKey !== undefined) {
      const replay = await this.replay(db, request.idempotencyKey, hash);
      if (replay !== undefined) return { created: false, file: replay };
    }
    // Reads before the transaction (embedded PGlite has one session): candidates, creditors, contacts.
    const candidates = await this.candidates(db, collectionDate);
    const creditors = new Map<string, Creditor | null>();
    for (const issuerId of new Set(candidates.map((row) => row.bill.issuerId))) {
      creditors.set(issuerId, await this.deps.creditorOf(issuerId));
    }
    const accounts = await this.deps.accounts(db, [...new Set(candidates.map((row) => row.bill.billingAccountId))]);
    const contacts = new Map<string, Awaited<ReturnType<DirectDebitsDeps["contactFor"]>>>();
    for (const account of accounts.values())
      contacts.set(account.customerId, await this.deps.contactFor(account.customerId));

    const now = this.deps.clock.now();
    const fileId = newId(now.getTime());
    const messageId = `DD${fileId.replaceAll("-", "")}`;
    const skipped: Skipped[] = [];
    const todayText = formatLocalDate(today);
    const lapsed = new Set<string>();
    const chosen: Array<{ row: Candidate; creditor: Creditor; sequenceType: "FRST" | "RCUR"; id: string }> = [];
    const firstUsed = new Set<string>();
    for (const row of candidates) {
      const mandate = row.mandate.reference;
      const lapses = lapsesBy(row.mandate);
      if (row.mandate.status !== "active" || lapses <= todayText) {
        if (row.mandate.status === "active") lapsed.add(row.mandate.id);
        skipped.push({
          billId: row.bill.id,
          billingAccountId: row.bill.billingAccountId,
          mandate,
          reason: `mandate ${mandate} ${row.mandate.status === "revoked" ? "was revoked" : `lapsed on ${lapses} (unused for ${MANDATE_LIFE_MONTHS} months)`}`,
        });
        continue;
      }
      if (lapses <= collectionDate) {
        skipped.push({
          billId: row.bill.id,
          billingAccountId: row.bill.billingAccountId,
          mandate,
          reason: `mandate ${mandate} lapses on ${lapses}, before the collection date`,
        });
        continue;
      }
      const creditor = creditors.get(row.bill.issuerId) ?? null;
      if (creditor === null) {
        skipped.push({
          billId: row.bill.id,
          billingAccountId: row.bill.billingAccountId,
          mandate,
          reason: `issuing entity ${row.bill.issuerId} has no SEPA creditor identifier and bank account in the catalog`,
        });
        continue;
      }
      // A mandate's first debit is FRST; every other debit of the same file on it is RCUR (rulebook: one FRST).
      const first = row.mandate.sequence === "first" && !firstUsed.has(row.mandate.id);
      if (first) firstUsed.add(row.mandate.id);
      chosen.push({ row, creditor, sequenceType: first ? "FRST" : "RCUR", id: newId(now.getTime()) });
    }
    if (chosen.length === 0) {
      throw new AppError(
        "unprocessable",
        "nothing_to_collect",
        `collectionDate: no open bill due by ${collectionDate} has a valid mandate${skipped.length > 0 ? ` (${skipped.length} skipped: ${skipped[0]?.reason})` : ""}`,
        "collectionDate",
      );
    }
    const blocks = new Map<
      string,
      { id: string; creditor: Creditor; sequenceType: "FRST" | "RCUR"; debits: PlannedDebit[] }
    >();
    for (const { row, creditor, sequenceType, id } of chosen) {
      const key = `${creditor.creditorId}:${sequenceType}`;
      const block = blocks.get(key) ?? {
        id: `${messageId.slice(0, 30)}-${blocks.size + 1}`,
        creditor,
        sequenceType,
        debits: [],
      };
      blocks.set(key, block);
      block.debits.push({
        endToEndId: endToEndIdOf(id),
        amount: new Money(row.bill.open).toFixed(2),
        mandateReference: row.mandate.reference,
        signatureDate: row.mandate.signatureDate,
        sequenceType,
        debtorName: row.mandate.debtorName,
        debtorIban: row.mandate.iban,
        debtorBic: row.mandate.bic,
        reference: row.bill.paymentReference,
        remittanceText: `Bill ${row.bill.number} ${row.bill.paymentReference}`,
      });
    }
    const built = buildPain008({
      messageId,
      createdAt: now,
      initiatingParty: [...blocks.values()][0]?.creditor.name ?? "",
      collectionDate,
      blocks: [...blocks.values()],
    });
    const sha256 = createHash("sha256").update(built.xml).digest("hex");

    const file = await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [...new Set(chosen.map(({ row }) => row.bill.billingAccountId))]);
      // What was read before the transaction still holds: no bill of the plan entered another pending debit.
      const taken = await tx
        .select({ invoiceId: directDebits.invoiceId })
        .from(directDebits)
        .where(
          and(
            inArray(
              directDebits.invoiceId,
              chosen.map(({ row }) => row.bill.id),
            ),
            eq(directDebits.status, "pending"),
          ),
        );
      if (taken.length > 0) {
        throw new AppError(
          "conflict",
          "debit_pending",
          `bill ${taken[0]?.invoiceId} entered another direct debit file meanwhile; build the file again`,
        );
      }
      // Nor was a bill paid, credited or put on hold, nor a mandate revoked, since they were read.
      const open = await openItemsOf(
        tx,
        chosen.map(({ row }) => row.bill.billingAccountId),
      );
      const stillActive = new Set(
        (
          await tx
            .select({ id: mandates.id })
            .from(mandates)
            .where(
              and(
                inArray(mandates.id, [...new Set(chosen.map(({ row }) => row.mandate.id))]),
                eq(mandates.status, "active"),
              ),
            )
        ).map((row) => row.id),
      );
      const changed = chosen.find(({ row }) => {
        const item = open.get(row.bill.billingAccountId)?.find((candidate) => candidate.id === row.bill.id);
        return (
          item === undefined ||
          item.onHold ||
          !item.open.toMoney().eq(row.bill.open) ||
          !stillActive.has(row.mandate.id)
        );
      });
      if (changed !== undefined) {
        throw new AppError(
          "conflict",
          "bills_changed",
          `bill ${changed.row.bill.number} or mandate ${changed.row.mandate.reference} changed while the file was built; build it again`,
        );
      }
      if (lapsed.size > 0) {
        await tx
          .update(mandates)
          .set({ status: "lapsed", statusDate: now })
          .where(and(inArray(mandates.id, [...lapsed]), eq(mandates.status, "active")));
      }
      const [stored] = await tx
        .insert(directDebitFiles)
        .values({
          id: fileId,
          messageId,
          collectionDate,
          transactions: built.transactions,
          controlSum: new Money(built.controlSum),
          skipped,
          xml: built.xml,
          sha256,
          idempotencyKey: request.idempotencyKey ?? null,
          requestHash: request.idempotencyKey === undefined ? null : hash,
          createdAt: now,
        })
        .returning();
      const collection = new Date(`${collectionDate}T00:00:00.000Z`);
      await this.deps.payments.recordPendingDebits(
        tx,
        actor,
        chosen.map(({ row, id }) => ({
          id,
          billingAccountId: row.bill.billingAccountId,
          amount: new Money(row.bill.open),
          currency: "EUR",
          collectionDate: collection,
          description: `SEPA direct debit of bill ${row.bill.number} (${row.bill.paymentReference}), mandate ${row.mandate.reference}`,
        })),
      );
      const debitRows = chosen.map(({ row, sequenceType, id }) => ({
        id,
        fileId,
        mandateId: row.mandate.id,
        billingAccountId: row.bill.billingAccountId,
        invoiceId: row.bill.id,
        amount: new Money(row.bill.open),
        currency: "EUR",
        sequenceType,
        collectionDate,
        endToEndId: endToEndIdOf(id),
        status: "pending",
        statusDate: now,
      }));
      for (let start = 0; start < debitRows.length; start += 2000) {
        await tx.insert(directDebits).values(debitRows.slice(start, start + 2000));
      }
      // The mandates used: recurring from now on, used on the collection date (the 36 months restart).
      await tx
        .update(mandates)
        .set({ sequence: "recurring", lastCollectionDate: collectionDate })
        .where(inArray(mandates.id, [...new Set(chosen.map(({ row }) => row.mandate.id))]));
      await this.deps.queueMessages(
        tx,
        chosen.flatMap(({ row }) => {
          const account = accounts.get(row.bill.billingAccountId);
          const contact = account === undefined ? null : (contacts.get(account.customerId) ?? null);
          if (account === undefined || contact === null) return [];
          const amount = `${new Money(row.bill.open).toFixed(2)} EUR`;
          return [
            {
              id: newId(now.getTime()),
              customerId: account.customerId,
              channel: contact.channel,
              to: contact.address,
              subject: `Direct debit of bill ${row.bill.number}`,
              body: `We will collect ${amount} for bill ${row.bill.number} from ${maskIban(row.mandate.iban)} on ${collectionDate} (mandate ${row.mandate.reference}, creditor ${creditors.get(row.bill.issuerId)?.creditorId}).`,
              reason: "directDebit.prenotification",
            },
          ];
        }),
      );
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "directDebitFile",
        entityId: fileId,
        after: { messageId, collectionDate, transactions: built.transactions, controlSum: built.controlSum, sha256 },
      });
      return stored as FileRow;
    });
    return { created: true, file: presentFile(file) };
  }

  private async replay(db: Db, key: string, hash: string): Promise<object | undefined> {
    const [row] = await db.select().from(directDebitFiles).where(eq(directDebitFiles.idempotencyKey, key));
    if (row === undefined) return undefined;
    if (row.requestHash !== hash) {
      throw new AppError(
        "unprocessable",
        "idempotency_key_reused",
        "Idempotency-Key: used before for another request; use a new key for a new file",
        "Idempotency-Key",
      );
    }
    return presentFile(row);
  }

  /**
   * Open bills due by the date, not in a pending debit, with their account's newest active mandate (or its lapsed
   * one, to report); bills of accounts with neither are not for direct debit.
   */
  private async candidates(db: Db, collectionDate: string): Promise<Candidate[]> {
    const bills = await openBillsDueBy(db, collectionDate, "EUR");
    if (bills.length === 0) return [];
    const accountIds = [...new Set(bills.map((bill) => bill.billingAccountId))];
    const found = await db
      .select()
      .from(mandates)
      .where(and(inArray(mandates.billingAccountId, accountIds), inArray(mandates.status, ["active", "lapsed"])))
      .orderBy(desc(sql`${mandates.status} = 'active'`), desc(mandates.signatureDate), desc(mandates.createdAt));
    const mandateOf = new Map<string, MandateRow>();
    for (const row of found) if (!mandateOf.has(row.billingAccountId)) mandateOf.set(row.billingAccountId, row);
    const pending = await this.pendingDebitBills(
      db,
      bills.map((bill) => bill.id),
    );
    return bills.flatMap((bill) => {
      const mandate = mandateOf.get(bill.billingAccountId);
      return mandate === undefined || pending.has(bill.id) ? [] : [{ bill, mandate }];
    });
  }

  async file(id: string): Promise<object> {
    return presentFile(await this.fileRow(id));
  }

  async fileXml(id: string): Promise<{ xml: string; sha256: string; messageId: string }> {
    const row = await this.fileRow(id);
    return { xml: row.xml, sha256: row.sha256, messageId: row.messageId };
  }

  private async fileRow(id: string): Promise<FileRow> {
    const [row] = isId(id)
      ? await this.deps.database.db.select().from(directDebitFiles).where(eq(directDebitFiles.id, id))
      : [];
    if (row === undefined) throw notFound("directDebitFile", id);
    return row;
  }

  async files(page: { offset: number; limit: number }): Promise<{ items: object[]; total: number }> {
    const db = this.deps.database.db;
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(directDebitFiles)
        .orderBy(desc(directDebitFiles.createdAt), desc(directDebitFiles.id))
        .offset(page.offset)
        .limit(page.limit),
      db.select({ total: count() }).from(directDebitFiles),
    ]);
    return { items: rows.map(presentFile), total: counted[0]?.total ?? 0 };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Collection and returns

  /** The scheduled job: debits whose collection date has come are collected (payments allocated), a chunk a time. */
  async collectDue(businessTime: Date): Promise<{ collected: number }> {
    const today = businessTime.toISOString().slice(0, 10);
    let collected = 0;
    for (;;) {
      const due = await this.deps.database.db
        .select({ id: directDebits.id })
        .from(directDebits)
        .where(and(eq(directDebits.status, "pending"), lte(directDebits.collectionDate, today)))
        .orderBy(asc(directDebits.collectionDate), asc(directDebits.id))
        .limit(500);
      if (due.length === 0) return { collected };
      const done = await this.deps.database.transaction((tx) =>
        this.deps.payments.collectDebits(
          tx,
          due.map((row) => row.id),
        ),
      );
      collected += done.length;
      if (done.length === 0) return { collected };
    }
  }

  /** The debits (by end-to-end id) a statement's entries name, with what a return needs to know. */
  async debitsByEndToEnd(db: Db, endToEndIds: readonly string[]): Promise<Map<string, DebitView>> {
    if (endToEndIds.length === 0) return new Map();
    const rows = await db
      .select()
      .from(directDebits)
      .where(inArray(directDebits.endToEndId, [...new Set(endToEndIds)]));
    return new Map(rows.map((row) => [row.endToEndId, row]));
  }

  /** Whether a return of `debit` booked on `bookingDate` with `reason` came later than the rulebook allows: why, or null. */
  lateReturn(debit: DebitView, reason: string, bookingDate: string): string | null {
    const collected = parseLocalDate(debit.collectionDate);
    const unauthorised = REVERSAL_REASONS[reason]?.unauthorised === true;
    const limit = unauthorised
      ? formatLocalDate(addMonths(collected, RETURN_MONTHS_UNAUTHORISED))
      : formatLocalDate(dateOfDayNumber(dayNumber(collected) + RETURN_DAYS_AUTHORISED));
    if (bookingDate > limit) {
      return `booked ${bookingDate}, after the ${unauthorised ? "13 months" : "8 weeks"} a ${reason} return may come (collected ${debit.collectionDate}): for finance to dispute with the bank`;
    }
    return null;
  }

  /** A returned debit's row marked (the payment's reversal is written by the caller in the same transaction). */
  async markReturned(tx: Db, debitId: string, reason: string): Promise<void> {
    await tx
      .update(directDebits)
      .set({ status: "returned", returnReason: reason, statusDate: this.deps.clock.now() })
      .where(eq(directDebits.id, debitId));
  }

  /** Of these bills, those with a direct debit not yet collected: they are not overdue (the dunning issue reads it). */
  async pendingDebitBills(db: Db, invoiceIds: readonly string[]): Promise<Set<string>> {
    const ids = invoiceIds.filter(isId);
    if (ids.length === 0) return new Set();
    const rows = await queryRows<{ invoice_id: string }>(
      db,
      sql`select invoice_id from ${directDebits} where status = 'pending' and invoice_id in (${uuidList(ids)})`,
    );
    return new Set(rows.map((row) => row.invoice_id));
  }
}

export type DebitView = typeof directDebits.$inferSelect;

interface Candidate {
  bill: CollectibleBill;
  mandate: MandateRow;
}

/** The payment id's 32 hex digits: within PmtId/EndToEndId's 35 characters. */
export function endToEndIdOf(paymentId: string): string {
  return paymentId.replaceAll("-", "").toUpperCase();
}

/** The date from which a mandate is lapsed: 36 months after its last debit's collection date, or its signature. */
function lapsesBy(row: { signatureDate: string; lastCollectionDate: string | null }): string {
  return formatLocalDate(addMonths(parseLocalDate(row.lastCollectionDate ?? row.signatureDate), MANDATE_LIFE_MONTHS));
}

/** A mandate's fields checked: the reference's characters, a signature date not in the future, the IBAN and BIC. */
function checkMandate(input: MandateInput, today: string): MandateInput {
  const reference = input.reference.trim();
  if (!MANDATE_REFERENCE.test(reference)) {
    throw new AppError(
      "bad_request",
      "invalid_field",
      "reference: 1 to 35 characters of the SEPA set (letters, digits, / - ? : ( ) . , ' + and space; not starting with / nor holding //)",
      "reference",
    );
  }
  if (!isCalendarDate(input.signatureDate)) {
    throw new AppError("bad_request", "invalid_field", "signatureDate: a calendar date, YYYY-MM-DD", "signatureDate");
  }
  if (input.signatureDate > today) {
    throw new AppError(
      "unprocessable",
      "invalid_field",
      `signatureDate: ${input.signatureDate} is in the future`,
      "signatureDate",
    );
  }
  const iban = input.iban.replace(/\s+/g, "").toUpperCase();
  const validation = validateIBAN(iban);
  if (!validation.valid) {
    throw new AppError(
      "bad_request",
      "invalid_iban",
      "iban: not a valid IBAN (its country's length and the mod 97 check digits)",
      "iban",
    );
  }
  if (!isSEPACountry(iban.slice(0, 2))) {
    throw new AppError("unprocessable", "not_sepa", `iban: ${iban.slice(0, 2)} is not in the SEPA scheme`, "iban");
  }
  const bic = input.bic?.replace(/\s+/g, "").toUpperCase();
  if (bic !== undefined && bic !== "" && !validateBIC(bic).valid) {
    throw new AppError("bad_request", "invalid_bic", "bic: not a valid BIC (ISO 9362)", "bic");
  }
  const debtorName = sepaText(input.debtorName, 70);
  return { reference, signatureDate: input.signatureDate, debtorName, iban, bic: bic === "" ? undefined : bic };
}

function presentFile(row: FileRow): object {
  return {
    id: row.id,
    href: `${DIRECT_DEBITS_PATH}/${row.id}`,
    messageId: row.messageId,
    collectionDate: row.collectionDate,
    transactions: row.transactions,
    controlSum: { unit: "EUR", value: row.controlSum.toFixed(2) },
    skipped: row.skipped,
    sha256: row.sha256,
    file: { href: `${DIRECT_DEBITS_PATH}/${row.id}/file`, mimeType: "application/xml" },
    createdAt: row.createdAt.toISOString(),
  };
}
