import { StringDecoder } from "node:string_decoder";
import { and, asc, count, eq, gt, inArray, sql } from "drizzle-orm";
import { type Actor, SYSTEM_ACTOR } from "../../platform/audit.js";
import { type Db, queryRows } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { isCreditorReference } from "../../shared/creditor-reference.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId, newId } from "../../shared/ids.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { Money } from "../../shared/money.js";
import { billsOf, billsQuoted, lockAccounts, type OpenItem, openItemsOf, type QuotedBill } from "../billing/index.js";
import { bankStatements, mandates, statementEntries } from "./bank-files.tables.js";
import { Camt053Reader, type CamtEntry, StatementFormatError } from "./camt053.js";
import type { DirectDebitsService } from "./direct-debits.service.js";
import type { PaymentRequest, PaymentsService, ReversalFee } from "./payments.service.js";
import { paymentMethods } from "./payments.tables.js";
import { REVERSAL_REASONS } from "./reversal-reasons.js";

/**
 * Bank statements (ISO 20022 camt.053) read back into the receivables ledger. The file streams through the reader
 * and its entries are staged in chunks (deduplicated on arrival by the bank's own reference, AcctSvcrRef else
 * NtryRef, per account: never by remittance text); only a file that parsed whole is applied, so a malformed or
 * truncated one applies nothing and leaves nothing staged. Then, a chunk per transaction:
 *
 * - a booked credit that quotes one of the engine's direct debits (its end-to-end id) confirms it collected;
 * - a booked debit that returns one of them (RtrInf, or bank code IDDT/UPDD) reverses its payment with the return's
 *   reason code, within 8 weeks of collection (13 months if unauthorised, MD01); a later one goes to the worklist;
 * - other booked credits are matched, in this order: (1) the payment reference printed on a bill (ISO 11649 RF,
 *   structured or in the text), (2) a bill number in the remittance text, (3) the debtor's IBAN on file (a payment
 *   method or a mandate) with an amount equal to an open bill of that account. A match becomes a payment allocated
 *   to that bill (the rest by the usual order); bills of more than one account, or equal amounts at more than one
 *   account, are ambiguous; nothing found is unmatched. Both wait in the worklist until finance assigns them;
 * - entries not booked, the bank's own reversals and other debits from the operator's account are ignored, said so.
 *
 * Every entry keeps its outcome and why, which the import answers and the statement's entries list shows.
 */

export const STATEMENTS_PATH = "/api/v1/payments/statements";
/** Entries staged per insert while the file streams in. */
const STAGE_CHUNK = 1_000;
/** Entries applied per transaction. */
const APPLY_CHUNK = 500;
const OUTCOMES = [
  "matched",
  "collected",
  "returned",
  "unmatched",
  "ambiguous",
  "assigned",
  "ignored",
  "duplicate",
] as const;
type Outcome = (typeof OUTCOMES)[number] | "staged";

export interface StatementsDeps extends ServiceDeps {
  payments: PaymentsService;
  debits: DirectDebitsService;
  reversalFee(currency: string): Promise<ReversalFee | null>;
  maxBytes: number;
}

type EntryRow = typeof statementEntries.$inferSelect;

interface Resolution {
  id: string;
  outcome: Outcome;
  detail: string;
  matchedBy?: string;
  paymentId?: string;
  billingAccountId?: string;
  candidates?: string[];
}

export class StatementsService {
  constructor(private readonly deps: StatementsDeps) {}

  // -------------------------------------------------------------------------------------------------------------
  // Import

  /** Reads a camt.053 file from `source`, stages its entries, applies them; answers the statement with its counts. */
  async import(actor: Actor, source: AsyncIterable<Buffer | string>): Promise<object> {
    const db = this.deps.database.db;
    await this.recover();
    const now = this.deps.clock.now();
    const statementId = newId(now.getTime());
    await db.insert(bankStatements).values({ id: statementId, status: "receiving", createdAt: now });
    const reader = new Camt053Reader();
    let staged = 0;
    try {
      const decoder = new StringDecoder("utf8");
      let bytes = 0;
      for await (const chunk of source) {
        bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
        if (bytes > this.deps.maxBytes) {
          throw new AppError(
            "payload_too_large",
            "body_too_large",
            `the statement is larger than ${this.deps.maxBytes} bytes (BSS_STATEMENT_MAX_BYTES)`,
          );
        }
        reader.write(typeof chunk === "string" ? chunk : decoder.write(chunk));
        if (reader.pending() >= STAGE_CHUNK) staged += await this.stage(statementId, reader.take());
      }
      reader.write(decoder.end());
      reader.end();
      staged += await this.stage(statementId, reader.take());
      if (staged === 0) throw new StatementFormatError("the statement holds no entries (Ntry)");
    } catch (error) {
      // Nothing of a file that did not read whole is applied or kept staged; the statement row says why.
      await db.delete(statementEntries).where(eq(statementEntries.statementId, statementId));
      const message = error instanceof Error ? error.message : String(error);
      await db
        .update(bankStatements)
        .set({ status: "rejected", error: message.slice(0, 1000), completedAt: this.deps.clock.now() })
        .where(eq(bankStatements.id, statementId));
      if (error instanceof StatementFormatError) {
        throw new AppError("bad_request", "invalid_statement", `statement: ${message}`, "statement");
      }
      throw error;
    }
    // Read whole: from here on the statement is applied, by this request or, after a crash, by recovery.
    const [marked] = await db
      .update(bankStatements)
      .set({ messageId: reader.messageId, entries: staged, status: "staged" })
      .where(and(eq(bankStatements.id, statementId), eq(bankStatements.status, "receiving")))
      .returning({ id: bankStatements.id });
    if (marked === undefined) throw new Error(`statement ${statementId} was cleared while it streamed in`);
    await this.applyAll(actor, statementId);
    await this.deps.audit.record(db, actor, {
      action: "import",
      entityType: "bankStatement",
      entityId: statementId,
      after: await this.summary(db, statementId),
    });
    return this.statement(statementId);
  }

  /** Stages read entries; those whose bank reference an earlier entry of the account holds are duplicates. */
  private async stage(statementId: string, entries: readonly CamtEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    if (entries.length > STAGE_CHUNK) {
      // One piece of the file can hold a batch booking of thousands (one insert stays within its parameters).
      let staged = 0;
      for (let start = 0; start < entries.length; start += STAGE_CHUNK) {
        staged += await this.stage(statementId, entries.slice(start, start + STAGE_CHUNK));
      }
      return staged;
    }
    const db = this.deps.database.db;
    const now = this.deps.clock.now();
    const [first] = entries;
    if (first !== undefined && first.seq === 1) {
      await db
        .update(bankStatements)
        .set({ statementRef: first.statementRef, account: first.account })
        .where(eq(bankStatements.id, statementId));
    }
    const rows = entries.map((entry) => ({
      id: newId(now.getTime()),
      statementId,
      seq: entry.seq,
      account: entry.account,
      bankRef: entry.bankRef,
      direction: entry.direction,
      reversal: entry.reversal,
      bookingStatus: entry.bookingStatus,
      amount: new Money(entry.amount),
      currency: entry.currency,
      bookingDate: entry.bookingDate,
      valueDate: entry.valueDate,
      debtorName: entry.debtorName,
      debtorIban: entry.debtorIban,
      remittance: entry.remittance,
      creditorRef: entry.creditorRef,
      endToEndId: entry.endToEndId,
      returnReason: entry.returnReason,
      bankCode: entry.bankCode,
      outcome: "staged",
      createdAt: now,
    }));
    const inserted = await db
      .insert(statementEntries)
      .values(rows)
      .onConflictDoNothing({
        target: [statementEntries.account, statementEntries.bankRef],
        where: sql`${statementEntries.duplicateOf} is null`,
      })
      .returning({ id: statementEntries.id });
    if (inserted.length < rows.length) {
      const kept = new Set(inserted.map((row) => row.id));
      const repeated = rows.filter((row) => !kept.has(row.id));
      const originals = await queryRows<{
        id: string;
        account: string;
        bank_ref: string;
        statement_id: string;
        status: string;
      }>(
        db,
        sql`select e.id, e.account, e.bank_ref, e.statement_id, s.status from ${statementEntries} e
            join ${bankStatements} s on s.id = e.statement_id
            join jsonb_to_recordset(${JSON.stringify(repeated.map((row) => ({ account: row.account, ref: row.bankRef })))}::jsonb)
              as r(account text, ref text) on e.account = r.account and e.bank_ref = r.ref
            where e.duplicate_of is null`,
      );
      // An entry held by another upload still streaming in (or cut off by a crash, until recovery clears it) is not
      // a duplicate yet: that upload may never be applied. This import waits for it to end.
      const inFlight = originals.find((row) => row.statement_id !== statementId && row.status === "receiving");
      if (inFlight !== undefined) {
        throw new AppError(
          "conflict",
          "statement_in_progress",
          `statement: entry ${inFlight.bank_ref} is being imported by statement ${inFlight.statement_id}, still streaming in or cut off; import again once it ends (an upload cut off is cleared after an hour)`,
          "statement",
        );
      }
      const originalOf = new Map(originals.map((row) => [`${row.account}\u0000${row.bank_ref}`, row]));
      await db.insert(statementEntries).values(
        repeated.map((row) => {
          const original = originalOf.get(`${row.account}\u0000${row.bankRef}`);
          const where =
            original?.statement_id === statementId
              ? "earlier in this statement"
              : `in statement ${original?.statement_id}`;
          return {
            ...row,
            duplicateOf: original?.id ?? null,
            outcome: "duplicate",
            detail: `bank reference ${row.bankRef} was imported ${where}: nothing applied again`,
            resolvedAt: now,
          };
        }),
      );
    }
    return rows.length;
  }

  /** Applies a statement's staged entries, a chunk per transaction, then marks it applied. */
  private async applyAll(actor: Actor, statementId: string): Promise<void> {
    let afterSeq = 0;
    for (;;) {
      const next = await this.applyChunk(actor, statementId, afterSeq);
      if (next === null) break;
      afterSeq = next;
    }
    // Applied only when no entry is left staged (a chunk skipped while another process held it, then rolled back,
    // is taken by the next recovery).
    await this.deps.database.db
      .update(bankStatements)
      .set({ status: "applied", completedAt: this.deps.clock.now() })
      .where(
        and(
          eq(bankStatements.id, statementId),
          eq(bankStatements.status, "staged"),
          sql`not exists (select 1 from ${statementEntries} e where e.statement_id = ${statementId} and e.outcome = 'staged')`,
        ),
      );
  }

  /**
   * After a crash: statements read whole but not applied to the end are applied (their staged entries hold bank
   * references a new import would take for duplicates); uploads cut off before they were read whole, and older than
   * `abandonedAfterMs`, are rejected and their staged entries removed, so the file can be imported again. Run by
   * every import and by the hourly job.
   */
  async recover(abandonedAfterMs = 3_600_000): Promise<{ resumed: number; abandoned: number }> {
    const db = this.deps.database.db;
    const now = this.deps.clock.now();
    const stale = await db
      .select({ id: bankStatements.id, status: bankStatements.status, createdAt: bankStatements.createdAt })
      .from(bankStatements)
      .where(inArray(bankStatements.status, ["receiving", "staged"]));
    let resumed = 0;
    let abandoned = 0;
    for (const statement of stale) {
      if (statement.status === "staged") {
        // One statement that cannot be applied must not hold up the others (or every import): it is left staged,
        // its error on record, for the next try.
        try {
          await this.applyAll(SYSTEM_ACTOR, statement.id);
          resumed += 1;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          await db
            .update(bankStatements)
            .set({ error: `applying stopped: ${message}`.slice(0, 1000) })
            .where(eq(bankStatements.id, statement.id));
        }
      } else if (now.getTime() - statement.createdAt.getTime() > abandonedAfterMs) {
        await db.delete(statementEntries).where(eq(statementEntries.statementId, statement.id));
        await db
          .update(bankStatements)
          .set({ status: "rejected", error: "the upload was cut off before the file was read whole", completedAt: now })
          .where(and(eq(bankStatements.id, statement.id), eq(bankStatements.status, "receiving")));
        abandoned += 1;
      }
    }
    return { resumed, abandoned };
  }

  /** Applies the next chunk of staged entries after `afterSeq` in one transaction; null when none is left. */
  private async applyChunk(actor: Actor, statementId: string, afterSeq: number): Promise<number | null> {
    const db = this.deps.database.db;
    const candidates = await db
      .select({ id: statementEntries.id, seq: statementEntries.seq, currency: statementEntries.currency })
      .from(statementEntries)
      .where(
        and(
          eq(statementEntries.statementId, statementId),
          gt(statementEntries.seq, afterSeq),
          eq(statementEntries.outcome, "staged"),
        ),
      )
      .orderBy(asc(statementEntries.seq))
      .limit(APPLY_CHUNK);
    const last = candidates[candidates.length - 1];
    if (last === undefined) return null;
    // The catalog's fees are read before the transaction (embedded PGlite has one session).
    const fees = new Map<string, ReversalFee | null>();
    for (const currency of new Set(candidates.map((entry) => entry.currency))) {
      fees.set(currency, await this.deps.reversalFee(currency));
    }
    await this.deps.database.transaction(async (tx) => {
      // Claimed under lock, still staged: a recovery running beside this request applies each entry once.
      const entries = await tx
        .select()
        .from(statementEntries)
        .where(
          and(
            inArray(
              statementEntries.id,
              candidates.map((entry) => entry.id),
            ),
            eq(statementEntries.outcome, "staged"),
          ),
        )
        .orderBy(asc(statementEntries.seq))
        .for("update", { skipLocked: true });
      if (entries.length > 0) await this.apply(tx, actor, entries, fees);
    });
    return last.seq;
  }

  private async apply(
    tx: Db,
    actor: Actor,
    entries: readonly EntryRow[],
    fees: Map<string, ReversalFee | null>,
  ): Promise<void> {
    const now = this.deps.clock.now();
    const resolutions: Resolution[] = [];
    const resolve = (entry: EntryRow, outcome: Outcome, detail: string, extra: Partial<Resolution> = {}) =>
      resolutions.push({ id: entry.id, outcome, detail, ...extra });

    const debits = await this.deps.debits.debitsByEndToEnd(
      tx,
      entries.flatMap((entry) => (entry.endToEndId === null ? [] : [entry.endToEndId])),
    );
    const credits: EntryRow[] = [];
    const returns: Array<{ entry: EntryRow; debit: NonNullable<ReturnType<typeof debits.get>>; reason: string }> = [];
    const collected: Array<{ entry: EntryRow; debitId: string; accountId: string }> = [];
    for (const entry of entries) {
      const debit = entry.endToEndId === null ? undefined : debits.get(entry.endToEndId);
      const decimals = currencyMinorUnits(entry.currency);
      const isReturn =
        entry.direction === "DBIT" && (entry.returnReason !== null || (entry.bankCode ?? "").includes("IDDT"));
      if (entry.amount.decimalPlaces() > decimals) {
        resolve(
          entry,
          "unmatched",
          `the amount ${entry.amount.toFixed()} has more decimals than ${entry.currency} allows (${decimals})`,
        );
      } else if (entry.bookingStatus !== "BOOK") {
        resolve(entry, "ignored", `not booked (status ${entry.bookingStatus}): only booked entries move money`);
      } else if (entry.reversal && !(isReturn && debit !== undefined)) {
        resolve(entry, "ignored", "the bank's reversal of an earlier booking: for finance to reconcile by hand");
      } else if (entry.direction === "DBIT") {
        if (!isReturn) resolve(entry, "ignored", "a debit from the operator's account, not money owed to it");
        else if (debit === undefined) {
          resolve(
            entry,
            "unmatched",
            `a returned direct debit the engine did not issue (end-to-end id ${entry.endToEndId ?? "none"})`,
          );
        } else {
          returns.push({ entry, debit, reason: entry.returnReason ?? "MS03" });
        }
      } else if (debit !== undefined) {
        collected.push({ entry, debitId: debit.id, accountId: debit.billingAccountId });
      } else {
        credits.push(entry);
      }
    }

    // What the credits may name: bills by reference or number, accounts by the debtor's IBAN, their open bills.
    const quoted = await billsQuoted(tx, credits.flatMap(tokensOf));
    const byToken = new Map<string, QuotedBill[]>();
    for (const bill of quoted) {
      for (const token of new Set([bill.paymentReference, bill.number])) {
        byToken.set(token, [...(byToken.get(token) ?? []), bill]);
      }
    }
    const ibanAccounts = await accountsByIban(
      tx,
      credits.flatMap((entry) => (entry.debtorIban === null ? [] : [entry.debtorIban])),
    );
    const lockIds = [
      ...quoted.map((bill) => bill.billingAccountId),
      ...[...ibanAccounts.values()].flatMap((ids) => [...ids]),
      ...returns.map(({ debit }) => debit.billingAccountId),
      ...collected.map(({ accountId }) => accountId),
    ];
    await lockAccounts(tx, lockIds);
    const open = await openItemsOf(tx, [...new Set([...ibanAccounts.values()].flatMap((ids) => [...ids]))]);

    const requests: PaymentRequest[] = [];
    const requestEntries: Array<{ entry: EntryRow; matchedBy: string; detail: string }> = [];
    for (const entry of credits) {
      const match = matchCredit(entry, byToken, ibanAccounts, open);
      if (match.kind === "none") {
        resolve(entry, "unmatched", match.detail);
        continue;
      }
      if (match.kind === "ambiguous") {
        resolve(entry, "ambiguous", match.detail, { candidates: match.accounts });
        continue;
      }
      requests.push(statementPayment(entry, match.accountId, match.billIds));
      requestEntries.push({ entry, matchedBy: match.matchedBy, detail: match.detail });
    }
    if (requests.length > 0) {
      const written = await this.deps.payments.writePayments(tx, actor, requests);
      written.outcomes.forEach((outcome, index) => {
        const { entry, matchedBy, detail } = requestEntries[index] as (typeof requestEntries)[number];
        const request = requests[index] as PaymentRequest;
        if (outcome.status === "rejected") {
          resolve(entry, "unmatched", `${detail}, but the payment was refused: ${outcome.error.message}`);
        } else if (outcome.status === "sameAs") {
          resolve(entry, "duplicate", "the same bank reference earlier in this chunk");
        } else {
          resolve(entry, "matched", detail, {
            matchedBy,
            paymentId: outcome.id,
            billingAccountId: request.billingAccountId,
          });
        }
      });
    }

    // Debits the bank booked: collected now if the scheduled job has not yet.
    if (collected.length > 0) {
      await this.deps.payments.collectDebits(
        tx,
        collected.map(({ debitId }) => debitId),
      );
      for (const { entry, debitId } of collected) {
        resolve(entry, "collected", `the direct debit ${entry.endToEndId} was collected`, { paymentId: debitId });
      }
    }

    for (const { entry, debit, reason } of returns) {
      const code = REVERSAL_REASONS[reason] === undefined ? "MS03" : reason;
      // A return later than the rulebook allows still took the money back: it is reversed like any other, and
      // said so for finance to dispute with the bank.
      const late = this.deps.debits.lateReturn(debit, reason, entry.bookingDate ?? now.toISOString().slice(0, 10));
      if (debit.status === "returned") {
        resolve(entry, "ignored", `the direct debit ${entry.endToEndId} was returned before`, { paymentId: debit.id });
      } else {
        try {
          await this.deps.payments.reverseWithin(tx, actor, debit.id, {
            reasonCode: code,
            note: `returned by the bank, ${reason} (statement entry ${entry.bankRef})`,
            fee: REVERSAL_REASONS[code]?.fee ? (fees.get(debit.currency) ?? null) : null,
          });
          await this.deps.debits.markReturned(tx, debit.id, reason);
          resolve(
            entry,
            "returned",
            `direct debit ${entry.endToEndId} returned: ${reason} ${REVERSAL_REASONS[code]?.text ?? ""}${late === null ? "" : `; ${late}`}`.trim(),
            {
              paymentId: debit.id,
              billingAccountId: debit.billingAccountId,
            },
          );
        } catch (error) {
          if (!(error instanceof AppError)) throw error;
          resolve(entry, "ignored", `the return changed nothing: ${error.message}`, { paymentId: debit.id });
        }
      }
    }
    await writeResolutions(tx, resolutions, now);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads

  async statement(id: string): Promise<object> {
    const db = this.deps.database.db;
    const [row] = isId(id) ? await db.select().from(bankStatements).where(eq(bankStatements.id, id)) : [];
    if (row === undefined) throw notFound("bankStatement", id);
    return {
      id: row.id,
      href: `${STATEMENTS_PATH}/${row.id}`,
      statementRef: row.statementRef,
      account: row.account,
      messageId: row.messageId,
      status: row.status,
      ...(row.error === null ? {} : { error: row.error }),
      entries: row.entries,
      outcomes: await this.summary(db, row.id),
      receivedAt: row.createdAt.toISOString(),
      ...(row.completedAt === null ? {} : { completedAt: row.completedAt.toISOString() }),
    };
  }

  private async summary(db: Db, statementId: string): Promise<Record<string, number>> {
    const rows = await db
      .select({ outcome: statementEntries.outcome, n: count() })
      .from(statementEntries)
      .where(eq(statementEntries.statementId, statementId))
      .groupBy(statementEntries.outcome);
    return Object.fromEntries(rows.map((row) => [row.outcome, row.n]));
  }

  /** A statement's entries in file order, a page at a time (after a position). */
  async entries(statementId: string, page: { afterSeq: number; limit: number }): Promise<object[]> {
    const rows = await this.deps.database.db
      .select()
      .from(statementEntries)
      .where(and(eq(statementEntries.statementId, statementId), gt(statementEntries.seq, page.afterSeq)))
      .orderBy(asc(statementEntries.seq))
      .limit(page.limit);
    return rows.map(presentEntry);
  }

  async entry(id: string): Promise<object> {
    const [row] = isId(id)
      ? await this.deps.database.db.select().from(statementEntries).where(eq(statementEntries.id, id))
      : [];
    if (row === undefined) throw notFound("statementEntry", id);
    return presentEntry(row);
  }

  /** The worklist: unmatched and ambiguous credits (and late returns) waiting for finance, oldest first. */
  async unmatched(page: { offset: number; limit: number }): Promise<{ items: object[]; total: number }> {
    const db = this.deps.database.db;
    const where = inArray(statementEntries.outcome, ["unmatched", "ambiguous"]);
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(statementEntries)
        .where(where)
        .orderBy(asc(statementEntries.createdAt), asc(statementEntries.seq))
        .offset(page.offset)
        .limit(page.limit),
      db.select({ total: count() }).from(statementEntries).where(where),
    ]);
    return { items: rows.map(presentEntry), total: counted[0]?.total ?? 0 };
  }

  /**
   * Finance assigns a waiting credit to an account (allocated in the usual order) or to a bill: it becomes a
   * payment, once (the entry's bank reference is the payment's idempotency key).
   */
  async assign(actor: Actor, entryId: string, target: { billingAccountId?: string; billId?: string }): Promise<object> {
    const db = this.deps.database.db;
    const [found] = isId(entryId)
      ? await db.select().from(statementEntries).where(eq(statementEntries.id, entryId))
      : [];
    if (found === undefined) throw notFound("statementEntry", entryId);
    return this.deps.database.transaction(async (tx) => {
      const [entry] = await tx.select().from(statementEntries).where(eq(statementEntries.id, entryId)).for("update");
      if (entry === undefined) throw notFound("statementEntry", entryId);
      if (entry.outcome !== "unmatched" && entry.outcome !== "ambiguous") {
        throw new AppError(
          "conflict",
          "not_waiting",
          `statement entry ${entryId} is ${entry.outcome}${entry.paymentId === null ? "" : ` (payment ${entry.paymentId})`}; only unmatched and ambiguous entries are assigned`,
        );
      }
      if (entry.direction !== "CRDT" || entry.reversal || entry.bookingStatus !== "BOOK") {
        throw new AppError(
          "conflict",
          "not_a_credit",
          `statement entry ${entryId} is not a booked credit (${entry.detail ?? entry.direction}); it cannot become a payment`,
        );
      }
      let accountId = target.billingAccountId;
      const billIds: string[] = [];
      if (target.billId !== undefined) {
        const bill = (await billsOf(tx, [target.billId])).get(target.billId);
        if (bill === undefined || bill.kind === "creditNote") {
          throw new AppError("unprocessable", "unknown_bill", `bill.id: no bill ${target.billId}`, "bill.id");
        }
        if (accountId !== undefined && accountId !== bill.billingAccountId) {
          throw new AppError(
            "unprocessable",
            "invalid_field",
            `bill.id: bill ${target.billId} is not of billing account ${accountId}`,
            "bill.id",
          );
        }
        accountId = bill.billingAccountId;
        billIds.push(bill.id);
      }
      if (accountId === undefined) {
        throw new AppError(
          "bad_request",
          "missing_field",
          "billingAccount or bill: name where the money goes",
          "billingAccount",
        );
      }
      const written = await this.deps.payments.writePayments(tx, actor, [statementPayment(entry, accountId, billIds)]);
      const [outcome] = written.outcomes;
      if (outcome === undefined) throw new Error("an assignment gave no outcome");
      if (outcome.status === "rejected") throw outcome.error;
      if (outcome.status !== "accepted" && outcome.status !== "replay")
        throw new Error("an assignment was a duplicate");
      const now = this.deps.clock.now();
      await writeResolutions(
        tx,
        [
          {
            id: entry.id,
            outcome: "assigned",
            detail: `assigned by ${actor.role} key ${actor.keyId ?? "system"} to ${billIds.length > 0 ? `bill ${billIds[0]}` : `account ${accountId}`}`,
            matchedBy: "assigned",
            paymentId: outcome.id,
            billingAccountId: accountId,
          },
        ],
        now,
      );
      await this.deps.audit.record(tx, actor, {
        action: "assign",
        entityType: "statementEntry",
        entityId: entry.id,
        before: { outcome: entry.outcome },
        after: { outcome: "assigned", payment: outcome.id, billingAccount: accountId },
      });
      const [updated] = await tx.select().from(statementEntries).where(eq(statementEntries.id, entry.id));
      return presentEntry(updated as EntryRow);
    });
  }
}

/** The words of a credit's remittance that may be a bill's payment reference or number (RF references compacted). */
function tokensOf(entry: EntryRow): string[] {
  const tokens: string[] = [];
  if (entry.creditorRef !== null) tokens.push(entry.creditorRef);
  const text = (entry.remittance ?? "").toUpperCase();
  for (const match of text.matchAll(/RF\s?\d{2}(?:\s?[0-9A-Z]){1,21}/g)) {
    const compact = match[0].replace(/\s+/g, "");
    if (isCreditorReference(compact)) tokens.push(compact);
  }
  for (const word of text.split(/[\s,;:()]+/)) {
    const cleaned = word.replace(/^[^0-9A-Z]+|[^0-9A-Z]+$/g, "");
    if (cleaned.length >= 4) tokens.push(cleaned);
  }
  return tokens;
}

type CreditMatch =
  | { kind: "match"; accountId: string; billIds: string[]; matchedBy: string; detail: string }
  | { kind: "ambiguous"; accounts: string[]; detail: string }
  | { kind: "none"; detail: string };

/** The documented order: payment reference, bill number, the IBAN on file with an equal open amount. */
function matchCredit(
  entry: EntryRow,
  byToken: Map<string, QuotedBill[]>,
  ibanAccounts: Map<string, Set<string>>,
  open: Map<string, OpenItem[]>,
): CreditMatch {
  const tokens = tokensOf(entry);
  for (const [matchedBy, pick] of [
    ["reference", (bill: QuotedBill, token: string) => bill.paymentReference === token],
    ["number", (bill: QuotedBill, token: string) => bill.number === token],
  ] as const) {
    const bills = new Map<string, QuotedBill>();
    for (const token of tokens) {
      for (const bill of byToken.get(token) ?? []) if (pick(bill, token)) bills.set(bill.id, bill);
    }
    if (bills.size === 0) continue;
    const accounts = [...new Set([...bills.values()].map((bill) => bill.billingAccountId))];
    const names = [...bills.values()].map((bill) => bill.number).join(", ");
    if (accounts.length > 1) {
      return {
        kind: "ambiguous",
        accounts,
        detail: `the ${matchedBy} names bills of ${accounts.length} accounts (${names})`,
      };
    }
    const currency = [...bills.values()][0]?.currency;
    if (currency !== entry.currency) {
      return {
        kind: "none",
        detail: `the ${matchedBy} names bill ${names} in ${currency}, the entry is in ${entry.currency}`,
      };
    }
    return {
      kind: "match",
      accountId: accounts[0] as string,
      billIds: [...bills.keys()],
      matchedBy,
      detail: `matched by the ${matchedBy === "reference" ? "payment reference" : "bill number"} of ${names}`,
    };
  }
  if (entry.debtorIban !== null) {
    const accounts = [...(ibanAccounts.get(entry.debtorIban) ?? [])];
    if (accounts.length > 0) {
      const amount = MinorAmount.parse(entry.amount.toFixed(), currencyMinorUnits(entry.currency));
      const hits = accounts.flatMap((accountId) => {
        const bills = (open.get(accountId) ?? [])
          .filter((item) => item.kind === "invoice" && !item.onHold && item.currency === entry.currency)
          .filter((item) => item.open.eq(amount))
          .sort((a, b) => a.dueDate.localeCompare(b.dueDate) || a.seq - b.seq);
        return bills.length === 0 ? [] : [{ accountId, bill: bills[0] as OpenItem }];
      });
      if (hits.length > 1) {
        return {
          kind: "ambiguous",
          accounts: hits.map((hit) => hit.accountId),
          detail: `the debtor's IBAN is on file for ${hits.length} accounts with an open bill of ${entry.amount.toFixed()} ${entry.currency}`,
        };
      }
      const [hit] = hits;
      if (hit !== undefined) {
        return {
          kind: "match",
          accountId: hit.accountId,
          billIds: [hit.bill.id],
          matchedBy: "iban",
          detail: `matched by the debtor's IBAN on file and the amount of bill ${hit.bill.number}`,
        };
      }
      return {
        kind: "none",
        detail: `the debtor's IBAN is on file for account ${accounts.join(", ")}, but no open bill is of ${entry.amount.toFixed()} ${entry.currency}`,
      };
    }
  }
  return { kind: "none", detail: "no payment reference, bill number or known IBAN with an equal open bill" };
}

/** A statement credit as a payment: a bank transfer, valued at its value date, keyed by its bank reference. */
function statementPayment(entry: EntryRow, billingAccountId: string, billIds: readonly string[]): PaymentRequest {
  const valued = entry.valueDate ?? entry.bookingDate;
  return {
    billingAccountId,
    amount: entry.amount.toFixed(),
    currency: entry.currency,
    methodId: "bankTransfer",
    items: billIds.map((billId) => ({ billId })),
    ...(valued === null ? {} : { paymentDate: new Date(`${valued}T00:00:00.000Z`) }),
    ...(entry.debtorName === null ? {} : { name: entry.debtorName.slice(0, 200) }),
    ...(entry.remittance === null ? {} : { description: entry.remittance.slice(0, 500) }),
    channel: "bank-statement",
    correlatorId: entry.bankRef,
    idempotencyKey: `camt053:${entry.account}:${entry.bankRef}`,
  };
}

/** Accounts by the IBANs on file: active payment methods and mandates. */
async function accountsByIban(db: Db, ibans: readonly string[]): Promise<Map<string, Set<string>>> {
  const wanted = [...new Set(ibans)];
  const found = new Map<string, Set<string>>();
  if (wanted.length === 0) return found;
  const rows = [
    ...(await db
      .select({ iban: paymentMethods.iban, accountId: paymentMethods.billingAccountId })
      .from(paymentMethods)
      .where(and(inArray(paymentMethods.iban, wanted), eq(paymentMethods.state, "active")))),
    ...(await db
      .select({ iban: mandates.iban, accountId: mandates.billingAccountId })
      .from(mandates)
      .where(inArray(mandates.iban, wanted))),
  ];
  for (const row of rows) {
    if (row.iban === null) continue;
    found.set(row.iban, (found.get(row.iban) ?? new Set()).add(row.accountId));
  }
  return found;
}

/** Outcomes written back to their entries, one statement for the chunk. */
async function writeResolutions(tx: Db, resolutions: readonly Resolution[], at: Date): Promise<void> {
  if (resolutions.length === 0) return;
  const rows = resolutions.map((resolution) => ({
    id: resolution.id,
    outcome: resolution.outcome,
    detail: resolution.detail.slice(0, 1000),
    matched_by: resolution.matchedBy ?? null,
    payment_id: resolution.paymentId ?? null,
    billing_account_id: resolution.billingAccountId ?? null,
    candidates: resolution.candidates ?? null,
  }));
  await tx.execute(sql`update ${statementEntries} e set outcome = r.outcome, detail = r.detail,
      matched_by = r.matched_by, payment_id = r.payment_id, billing_account_id = r.billing_account_id,
      candidates = r.candidates, resolved_at = ${at.toISOString()}::timestamptz
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      as r(id uuid, outcome text, detail text, matched_by text, payment_id uuid, billing_account_id uuid, candidates jsonb)
    where e.id = r.id`);
}

function presentEntry(row: EntryRow): object {
  return {
    id: row.id,
    statement: { id: row.statementId, href: `${STATEMENTS_PATH}/${row.statementId}` },
    seq: row.seq,
    bankReference: row.bankRef,
    direction: row.direction === "CRDT" ? "credit" : "debit",
    ...(row.reversal ? { reversal: true } : {}),
    bookingStatus: row.bookingStatus,
    amount: { unit: row.currency, value: row.amount.toFixed(currencyMinorUnits(row.currency)) },
    ...(row.bookingDate === null ? {} : { bookingDate: row.bookingDate }),
    ...(row.valueDate === null ? {} : { valueDate: row.valueDate }),
    ...(row.debtorName === null ? {} : { debtorName: row.debtorName }),
    ...(row.debtorIban === null ? {} : { debtorIban: row.debtorIban }),
    ...(row.remittance === null ? {} : { remittance: row.remittance }),
    ...(row.creditorRef === null ? {} : { creditorReference: row.creditorRef }),
    ...(row.endToEndId === null ? {} : { endToEndId: row.endToEndId }),
    ...(row.returnReason === null ? {} : { returnReason: row.returnReason }),
    outcome: row.outcome,
    ...(row.detail === null ? {} : { detail: row.detail }),
    ...(row.matchedBy === null ? {} : { matchedBy: row.matchedBy }),
    ...(row.paymentId === null
      ? {}
      : { payment: { id: row.paymentId, href: `/tmf-api/paymentManagement/v4/payment/${row.paymentId}` } }),
    ...(row.billingAccountId === null ? {} : { billingAccount: { id: row.billingAccountId } }),
    ...(row.candidates === null ? {} : { candidates: row.candidates }),
    ...(row.duplicateOf === null ? {} : { duplicateOf: row.duplicateOf }),
  };
}
