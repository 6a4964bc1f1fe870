import { type AnyColumn, and, asc, count, eq, inArray, sql } from "drizzle-orm";
import { type Actor, SYSTEM_ACTOR } from "../../platform/audit.js";
import { mayReadAccount } from "../../platform/auth.js";
import type { Db } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, requestHash } from "../../platform/tmf.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId, newId } from "../../shared/ids.js";
import { MinorAmount } from "../../shared/minor-units.js";
import { amountToJsonNumber, Money } from "../../shared/money.js";
import {
  applyCredit,
  applyUnappliedCredit,
  type BillingAccountView,
  billsOf,
  type Credit,
  creditsOf,
  defaultOrder,
  type InvoicesService,
  invoicesTouched,
  lockAccounts,
  type NewEntry,
  type OpenItem,
  openItemsOf,
  type PlannedAllocation,
  quotedItems,
  standingAllocations,
  undoAllocations,
  writeAllocations,
  writeEntries,
} from "../billing/index.js";
import { directDebits } from "./bank-files.tables.js";
import { paymentMethods, payments, refunds } from "./payments.tables.js";
import { REVERSAL_REASONS } from "./reversal-reasons.js";

/**
 * Payments and cash application (DESIGN.md §10 "Receivables are a ledger"; issue: money in, on the right invoice,
 * exactly once). A payment is a ledger entry and its allocations, written with the account's lock held: to the bills
 * it names, else to a bill whose number or payment reference its description quotes, else to open items in the law's
 * order (cash-application.ts); the rest is unapplied credit. Deduplicated by the Idempotency-Key only: a reference is
 * for matching, never for deduplication (customers reuse one for instalments). Prepaid money is not here: top-ups
 * stay TMF654 top-ups on the line's balance.
 */

export const PAYMENT_PATH = "/tmf-api/paymentManagement/v4/payment";
export const REFUND_PATH = "/tmf-api/paymentManagement/v4/refund";
const ACCOUNT_PATH = "/tmf-api/accountManagement/v4/billingAccount";
const BILL_PATH = "/tmf-api/customerBillManagement/v4/customerBill";

/** Ways to pay that need no stored method (a lockbox file's transfer, cash at a shop). */
export const METHOD_KINDS = ["bankTransfer", "directDebit", "card", "cash", "cheque"] as const;
export type MethodKind = (typeof METHOD_KINDS)[number];

/** Payments written per transaction by an import (each chunk is all-or-nothing; outcomes are per payment). */
const IMPORT_CHUNK = 1000;

export interface PaymentsDeps extends ServiceDeps {
  accounts(db: Db, ids: readonly string[]): Promise<Map<string, BillingAccountView>>;
  invoices: Pick<InvoicesService, "settleMany">;
  /** The catalog's reversal fee in a currency, or null when the catalog has none. */
  reversalFee(currency: string): Promise<ReversalFee | null>;
  chargeFee(tx: Db, billingAccountId: string, paymentId: string, fee: ReversalFee): Promise<void>;
}

export interface ReversalFee {
  priceId: string;
  name: string;
  amount: string;
  currency: string;
  taxClass: string;
  taxIncluded: boolean;
  offeringVersion: number;
}

export interface PaymentRequest {
  billingAccountId: string;
  /** Decimal text, positive. */
  amount: string;
  currency: string;
  /** A stored method of the account (its id) or a kind. */
  methodId: string;
  items?: Array<{ billId: string; amount?: string }>;
  paymentDate?: Date;
  name?: string;
  description?: string;
  channel?: string;
  correlatorId?: string;
  authorizationCode?: string;
  idempotencyKey?: string;
}

export interface RefundRequest {
  billingAccountId: string;
  amount: string;
  currency: string;
  methodId: string;
  paymentId?: string;
  name?: string;
  description?: string;
  reason?: string;
  idempotencyKey?: string;
}

export type PaymentOutcome =
  | { status: "created" | "replayed"; payment: PaymentResource }
  | { status: "rejected"; error: AppError };

/** What writePayments did with each request, by position, and the created payments presented. */
export interface WrittenPayments {
  outcomes: Array<
    | { status: "rejected"; error: AppError }
    | { status: "accepted" | "replay"; id: string }
    | { status: "sameAs"; index: number }
  >;
  presented: Map<string, PaymentResource>;
}

type PaymentRow = typeof payments.$inferSelect;
type RefundRow = typeof refunds.$inferSelect;
type MethodRow = typeof paymentMethods.$inferSelect;

export interface MoneyValue {
  unit: string;
  value: number;
}

export interface PaymentResource {
  id: string;
  href: string;
  "@type": "Payment";
  [key: string]: unknown;
}

function tmfMoney(amount: Money | string, currency: string): MoneyValue {
  return { unit: currency, value: amountToJsonNumber(new Money(amount)) };
}

function amountIn(text: string, currency: string, field: string): MinorAmount {
  const decimals = currencyMinorUnits(currency);
  try {
    return MinorAmount.parse(new Money(text).toFixed(), decimals);
  } catch {
    throw new AppError("bad_request", "invalid_amount", `${field}: at most ${decimals} decimals in ${currency}`, field);
  }
}

export class PaymentsService {
  constructor(private readonly deps: PaymentsDeps) {}

  // -------------------------------------------------------------------------------------------------------------
  // Payments in

  /** One payment (TMF676 POST): created, or the first answer again for a repeated Idempotency-Key. */
  async record(actor: Actor, request: PaymentRequest): Promise<{ created: boolean; payment: PaymentResource }> {
    const [outcome] = await this.recordMany(actor, [request]);
    if (outcome === undefined) throw new Error("a payment gave no outcome");
    if (outcome.status === "rejected") throw outcome.error;
    return { created: outcome.status === "created", payment: outcome.payment };
  }

  /**
   * Many payments (an import: lockbox files, migrations), each with its own outcome, in chunks of one transaction
   * each; a payment refused for its own reasons leaves the others be.
   */
  async recordMany(actor: Actor, requests: readonly PaymentRequest[]): Promise<PaymentOutcome[]> {
    const outcomes: PaymentOutcome[] = [];
    for (let start = 0; start < requests.length; start += IMPORT_CHUNK) {
      outcomes.push(...(await this.recordChunk(actor, requests.slice(start, start + IMPORT_CHUNK))));
    }
    return outcomes;
  }

  private async recordChunk(actor: Actor, requests: readonly PaymentRequest[]): Promise<PaymentOutcome[]> {
    const written = await this.deps.database.transaction((tx) => this.writePayments(tx, actor, requests)); // Replays are presented as they stand now (their allocations may have moved on since: a reversal).
    const replays = new Map(
      (
        await this.presentMany(
          this.deps.database.db,
          written.outcomes.flatMap((outcome) => (outcome.status === "replay" ? [outcome.id] : [])),
        )
      ).map((payment) => [payment.id, payment]),
    );
    const resolve = (index: number): PaymentOutcome => {
      const outcome = written.outcomes[index];
      if (outcome === undefined) throw new Error(`no outcome for payment ${index}`);
      switch (outcome.status) {
        case "rejected":
          return outcome;
        case "accepted":
          return { status: "created", payment: written.presented.get(outcome.id) as PaymentResource };
        case "replay":
          return { status: "replayed", payment: replays.get(outcome.id) as PaymentResource };
        case "sameAs": {
          // A key repeated within one import: the first's outcome, as a replay.
          const first = resolve(outcome.index);
          return first.status === "rejected" ? first : { status: "replayed", payment: first.payment };
        }
      }
    };
    return written.outcomes.map((_, index) => resolve(index));
  }

  /**
   * Payments written in the caller's transaction (the API's chunks, a statement's matched entries): the accounts
   * locked, each request checked and allocated, entries, rows and allocations written set-based, events and audit.
   */
  async writePayments(tx: Db, actor: Actor, requests: readonly PaymentRequest[]): Promise<WrittenPayments> {
    const hashes = requests.map((request) => requestHash(request));
    const outcomes: WrittenPayments["outcomes"] = [];

    const accountIds = [...new Set(requests.map((request) => request.billingAccountId).filter(isId))];
    await lockAccounts(tx, accountIds);
    const now = this.deps.clock.now();
    const keys = requests.flatMap((request) => (request.idempotencyKey === undefined ? [] : [request.idempotencyKey]));
    const existing = new Map(
      (keys.length === 0 ? [] : await tx.select().from(payments).where(inArray(payments.idempotencyKey, keys))).map(
        (row) => [row.idempotencyKey as string, row],
      ),
    );
    const accounts = await this.deps.accounts(tx, accountIds);
    const methodIds = [...new Set(requests.map((request) => request.methodId).filter(isId))];
    const methods = new Map(
      (methodIds.length === 0
        ? []
        : await tx.select().from(paymentMethods).where(inArray(paymentMethods.id, methodIds))
      ).map((row) => [row.id, row]),
    );
    const billIds = [
      ...new Set(requests.flatMap((request) => (request.items ?? []).map((item) => item.billId)).filter(isId)),
    ];
    const bills = await billsOf(tx, billIds);
    const open = await openItemsOf(tx, accountIds);
    const seenKeys = new Map<string, number>();
    const entries: NewEntry[] = [];
    const rows: Array<typeof payments.$inferInsert> = [];
    const planned: PlannedAllocation[] = [];
    for (const [index, request] of requests.entries()) {
      try {
        const key = request.idempotencyKey;
        if (key !== undefined) {
          const first = existing.get(key);
          if (first !== undefined) {
            if (first.requestHash !== hashes[index]) throw keyReused();
            if (!mayReadAccount(actor, first.billingAccountId)) throw keyReused();
            outcomes.push({ status: "replay", id: first.id });
            continue;
          }
          const earlier = seenKeys.get(key);
          if (earlier !== undefined) {
            if (hashes[earlier] !== hashes[index]) throw keyReused();
            outcomes.push({ status: "sameAs", index: earlier });
            continue;
          }
          seenKeys.set(key, index);
        }
        const { account, amount } = this.moneyFor(actor, accounts.get(request.billingAccountId), request);
        if (account.accountType === "prepaid") {
          throw new AppError(
            "unprocessable",
            "prepaid_account",
            `account.id: ${account.id} is prepaid; its money is a top-up of the line's balance (TMF654 topupBalance), not a payment`,
            "account.id",
          );
        }
        const method = methodOf(request.methodId, methods, account.id);
        const caps = new Map<string, MinorAmount>();
        const named: OpenItem[] = [];
        const items = open.get(account.id) ?? [];
        let itemsTotal = MinorAmount.zero(amount.decimals);
        for (const [position, item] of (request.items ?? []).entries()) {
          const field = `paymentItem[${position}].item.id`;
          const bill = bills.get(item.billId);
          if (bill === undefined || bill.billingAccountId !== account.id || bill.kind === "creditNote") {
            throw new AppError(
              "unprocessable",
              "unknown_bill",
              `${field}: no bill ${item.billId} of account ${account.id} to pay`,
              field,
            );
          }
          if (item.amount !== undefined) {
            const itemAmount = amountIn(item.amount, account.currency, `paymentItem[${position}].amount.value`);
            if (!itemAmount.isPositive()) {
              throw new AppError(
                "bad_request",
                "invalid_amount",
                `paymentItem[${position}].amount.value: must be above zero`,
                `paymentItem[${position}].amount.value`,
              );
            }
            caps.set(item.billId, itemAmount);
            itemsTotal = itemsTotal.plus(itemAmount);
          }
          const openItem = items.find((candidate) => candidate.id === item.billId);
          if (openItem !== undefined && !named.includes(openItem)) named.push(openItem);
        }
        if (itemsTotal.gt(amount)) {
          throw new AppError(
            "unprocessable",
            "items_exceed_payment",
            `paymentItem: the items' amounts (${itemsTotal.toFixed()}) exceed the payment's (${amount.toFixed()})`,
            "paymentItem",
          );
        }
        const id = newId(now.getTime());
        const credit: Credit = { entryId: id, billingAccountId: account.id, available: amount, seq: 0 };
        let matchedBy: "items" | "reference" | "oldest" | "none" = "none";
        const allocated: PlannedAllocation[] = [];
        if ((request.items ?? []).length > 0) {
          matchedBy = "items";
          allocated.push(...applyCredit(credit, named, caps));
        } else if (request.description !== undefined) {
          const quoted = quotedItems(request.description, items);
          if (quoted.length > 0) {
            matchedBy = "reference";
            allocated.push(...applyCredit(credit, quoted));
          }
        }
        const rest = applyCredit(credit, defaultOrder(items));
        if (matchedBy === "none" && rest.length > 0) matchedBy = "oldest";
        allocated.push(...rest);
        planned.push(...allocated);
        entries.push({
          id,
          billingAccountId: account.id,
          kind: "payment",
          amount: amount.negated(),
          currency: account.currency,
          at: now,
          description: `Payment ${request.description ?? request.name ?? id}`,
        });
        rows.push({
          id,
          billingAccountId: account.id,
          entryId: id,
          amount: amount.toMoney(),
          currency: account.currency,
          paymentMethodId: method.stored?.id ?? null,
          methodKind: method.kind,
          paymentDate: request.paymentDate ?? now,
          name: request.name ?? null,
          description: request.description ?? null,
          channel: request.channel ?? null,
          correlatorId: request.correlatorId ?? null,
          authorizationCode: request.authorizationCode ?? null,
          matchedBy,
          status: "succeeded",
          statusDate: now,
          idempotencyKey: request.idempotencyKey ?? null,
          requestHash: request.idempotencyKey === undefined ? null : (hashes[index] ?? null),
          createdAt: now,
        });
        outcomes.push({ status: "accepted", id });
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        outcomes.push({ status: "rejected", error });
      }
    }
    await writeEntries(tx, entries);
    for (let start = 0; start < rows.length; start += 2000) {
      await tx.insert(payments).values(rows.slice(start, start + 2000));
    }
    await writeAllocations(tx, planned, now);
    await this.deps.invoices.settleMany(tx, invoicesTouched(planned));
    // Money for a closed account has nothing to pay: it goes back as a closing account's credit does.
    const closed = new Set(rows.map((row) => row.billingAccountId as string));
    for (const accountId of closed) {
      if (accounts.get(accountId)?.state === "closed") await this.refundOnClose(tx, accountId);
    }
    const created = rows.map((row) => row.id as string);
    const presented = await this.presentMany(tx, created);
    await this.announce(tx, actor, "Create", "create", presented);
    return { outcomes, presented: new Map(presented.map((payment) => [payment.id, payment])) };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reversal: a chargeback or a returned debit

  async reverse(
    actor: Actor,
    paymentId: string,
    request: { reasonCode: string; note?: string },
  ): Promise<PaymentResource> {
    const reason = REVERSAL_REASONS[request.reasonCode];
    if (reason === undefined) {
      throw new AppError(
        "bad_request",
        "invalid_field",
        `reasonCode: one of ${Object.keys(REVERSAL_REASONS).join(", ")}`,
        "reasonCode",
      );
    }
    const found = await this.find(this.deps.database.db, actor, paymentId);
    if (found.status === "pending") {
      // The bank may still collect it: its statement reverses it with the return (or confirms it collected).
      throw new AppError(
        "conflict",
        "payment_pending",
        `payment ${paymentId} is a direct debit not yet collected; a return in the bank's statement reverses it`,
      );
    }
    // The catalog is read before the transaction (embedded PGlite has one session).
    const fee = reason.fee ? await this.deps.reversalFee(found.currency) : null;
    await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [found.billingAccountId]);
      await this.reverseWithin(tx, actor, paymentId, { ...request, fee });
    });
    return this.get(actor, paymentId);
  }

  /**
   * A reversal in the caller's transaction, the account already locked: the reversal entry, the payment's
   * allocations undone (bills reopen), the fee, the account's other credit applied to what reopened. A pending
   * direct debit returned before the engine saw it collected is collected first: the bank booked both.
   */
  async reverseWithin(
    tx: Db,
    actor: Actor,
    paymentId: string,
    request: { reasonCode: string; note?: string | undefined; fee: ReversalFee | null },
  ): Promise<void> {
    const { fee } = request;
    const reason = REVERSAL_REASONS[request.reasonCode];
    if (reason === undefined) throw new Error(`unknown reversal reason ${request.reasonCode}`);
    const [locked] = await tx.select().from(payments).where(eq(payments.id, paymentId)).for("update");
    if (locked?.status === "pending") await this.collectDebits(tx, [paymentId]);
    const [payment] = await tx.select().from(payments).where(eq(payments.id, paymentId));
    if (payment === undefined) throw notFound("payment", paymentId);
    if (payment.status === "reversed") {
      throw new AppError(
        "conflict",
        "already_reversed",
        `payment ${paymentId} was reversed on ${payment.statusDate.toISOString()} (${payment.reversalReason})`,
      );
    }
    const entryId = payment.entryId as string;
    const now = this.deps.clock.now();
    const reversalId = newId(now.getTime());
    const decimals = currencyMinorUnits(payment.currency);
    const paid = MinorAmount.parse(payment.amount.toFixed(), decimals);
    await writeEntries(tx, [
      {
        id: reversalId,
        billingAccountId: payment.billingAccountId,
        kind: "reversal",
        amount: paid,
        currency: payment.currency,
        at: now,
        description: `Reversal of payment ${payment.id}: ${request.reasonCode} ${reason.text}`,
      },
    ]);
    // Every standing allocation of the payment undone (bills reopen), then the payment settles its reversal.
    const reopened = await undoAllocations(tx, entryId, now);
    await writeAllocations(
      tx,
      [
        {
          entryId,
          billingAccountId: payment.billingAccountId,
          kind: "entry",
          targetId: reversalId,
          amount: paid,
        },
      ],
      now,
    );
    await tx
      .update(payments)
      .set({
        status: "reversed",
        statusDate: now,
        reversalEntryId: reversalId,
        reversalReason: request.reasonCode,
        reversalNote: request.note ?? null,
      })
      .where(eq(payments.id, payment.id));
    if (fee !== null) await this.deps.chargeFee(tx, payment.billingAccountId, payment.id, fee);
    // Other credit the account has goes to what reopened.
    const reapplied = await applyUnappliedCredit(tx, [payment.billingAccountId], now);
    await this.deps.invoices.settleMany(tx, [...reopened, ...invoicesTouched(reapplied)]);
    const [presented] = await this.presentMany(tx, [payment.id]);
    await this.deps.events.record(tx, {
      api: "paymentManagement",
      resource: "payment",
      change: "StateChange",
      resourceId: payment.id,
      body: presented,
    });
    await this.deps.audit.record(tx, actor, {
      action: "reverse",
      entityType: "payment",
      entityId: payment.id,
      before: { status: payment.status },
      after: {
        status: "reversed",
        reasonCode: request.reasonCode,
        fee: fee === null ? null : `${fee.amount} ${fee.currency}`,
      },
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Direct debits: pending until collected

  /**
   * Pending payments for the debits of a pain.008 file, in the caller's transaction: no ledger entry and no
   * allocation yet (no money has moved; the bill stays open, and not overdue, until the collection date).
   */
  async recordPendingDebits(
    tx: Db,
    actor: Actor,
    debits: ReadonlyArray<{
      id: string;
      billingAccountId: string;
      amount: Money;
      currency: string;
      collectionDate: Date;
      description: string;
    }>,
  ): Promise<void> {
    if (debits.length === 0) return;
    const now = this.deps.clock.now();
    for (let start = 0; start < debits.length; start += 2000) {
      await tx.insert(payments).values(
        debits.slice(start, start + 2000).map((debit) => ({
          id: debit.id,
          billingAccountId: debit.billingAccountId,
          entryId: null,
          amount: debit.amount,
          currency: debit.currency,
          paymentMethodId: null,
          methodKind: "directDebit",
          paymentDate: debit.collectionDate,
          name: "SEPA direct debit",
          description: debit.description,
          channel: "sepa-direct-debit",
          matchedBy: "items",
          status: "pending",
          statusDate: now,
          createdAt: now,
        })),
      );
    }
    await this.announce(
      tx,
      actor,
      "Create",
      "create",
      await this.presentMany(
        tx,
        debits.map((debit) => debit.id),
      ),
    );
  }

  /**
   * Direct debits collected (their collection date came, or the statement shows the bank booked them), in the
   * caller's transaction: each pending payment gets its ledger entry and is allocated to its bill first, then to the
   * account's other open items in the law's order; the rest is credit. Payments no longer pending are left alone.
   */
  async collectDebits(tx: Db, paymentIds: readonly string[]): Promise<string[]> {
    if (paymentIds.length === 0) return [];
    // Accounts first, then the payments (the order every writer of an account's money takes).
    const owners = await tx
      .select({ billingAccountId: payments.billingAccountId })
      .from(payments)
      .where(and(inArray(payments.id, [...paymentIds]), eq(payments.status, "pending")));
    await lockAccounts(
      tx,
      owners.map((row) => row.billingAccountId),
    );
    const rows = await tx
      .select({ payment: payments, invoiceId: directDebits.invoiceId })
      .from(payments)
      .innerJoin(directDebits, eq(directDebits.id, payments.id))
      .where(and(inArray(payments.id, [...paymentIds]), eq(payments.status, "pending")))
      .for("update", { of: payments });
    if (rows.length === 0) return [];
    const now = this.deps.clock.now();
    const accountIds = [...new Set(rows.map((row) => row.payment.billingAccountId))];
    const open = await openItemsOf(tx, accountIds);
    const entries: NewEntry[] = [];
    const planned: PlannedAllocation[] = [];
    for (const { payment, invoiceId } of rows) {
      const amount = MinorAmount.parse(payment.amount.toFixed(), currencyMinorUnits(payment.currency));
      entries.push({
        id: payment.id,
        billingAccountId: payment.billingAccountId,
        kind: "payment",
        amount: amount.negated(),
        currency: payment.currency,
        at: now,
        description: `Payment ${payment.description ?? payment.id}`,
      });
      const items = open.get(payment.billingAccountId) ?? [];
      const credit: Credit = {
        entryId: payment.id,
        billingAccountId: payment.billingAccountId,
        available: amount,
        seq: 0,
      };
      planned.push(
        ...applyCredit(
          credit,
          items.filter((item) => item.id === invoiceId),
        ),
      );
      planned.push(...applyCredit(credit, defaultOrder(items)));
    }
    const ids = rows.map((row) => row.payment.id);
    await writeEntries(tx, entries);
    await tx
      .update(payments)
      .set({ entryId: sql`${payments.id}`, status: "succeeded", statusDate: now })
      .where(inArray(payments.id, ids));
    await tx
      .update(directDebits)
      .set({ status: "collected", statusDate: now })
      .where(and(inArray(directDebits.id, ids), eq(directDebits.status, "pending")));
    await writeAllocations(tx, planned, now);
    await this.deps.invoices.settleMany(tx, invoicesTouched(planned));
    await this.announce(tx, SYSTEM_ACTOR, "StateChange", "collect", await this.presentMany(tx, ids));
    return ids;
  }

  /** Hub events and audit rows for payments written or changed in this transaction. */
  private async announce(
    tx: Db,
    actor: Actor,
    change: "Create" | "StateChange",
    action: string,
    presented: readonly PaymentResource[],
  ): Promise<void> {
    for (const payment of presented) {
      await this.deps.events.record(tx, {
        api: "paymentManagement",
        resource: "payment",
        change,
        resourceId: payment.id,
        body: payment,
      });
      await this.deps.audit.record(tx, actor, {
        action,
        entityType: "payment",
        entityId: payment.id,
        after: {
          account: payment.account,
          status: payment.status,
          totalAmount: payment.totalAmount,
          paymentItem: payment.paymentItem,
        },
      });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Refunds: only from unapplied credit

  async refund(actor: Actor, request: RefundRequest): Promise<{ created: boolean; refund: object }> {
    const hash = requestHash(request);
    if (request.idempotencyKey !== undefined) {
      const replay = await this.refundReplay(actor, request.idempotencyKey, hash);
      if (replay !== undefined) return { created: false, refund: replay };
    }
    const id = await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [request.billingAccountId]);
      const { account, amount } = this.moneyFor(
        actor,
        (await this.deps.accounts(tx, [request.billingAccountId])).get(request.billingAccountId),
        request,
      );
      const stored = isId(request.methodId)
        ? (await tx.select().from(paymentMethods).where(eq(paymentMethods.id, request.methodId)))[0]
        : undefined;
      const method = methodOf(request.methodId, new Map(stored === undefined ? [] : [[stored.id, stored]]), account.id);
      let paymentEntry: string | null = null;
      if (request.paymentId !== undefined) {
        const [payment] = isId(request.paymentId)
          ? await tx.select().from(payments).where(eq(payments.id, request.paymentId))
          : [];
        if (payment === undefined || payment.billingAccountId !== account.id) {
          throw new AppError(
            "unprocessable",
            "unknown_payment",
            `payment.id: no payment ${request.paymentId} of account ${account.id}`,
            "payment.id",
          );
        }
        paymentEntry = payment.entryId;
      }
      const now = this.deps.clock.now();
      const refundId = await this.writeRefund(tx, actor, {
        account,
        amount,
        stored: method.stored,
        methodKind: method.kind,
        paymentId: request.paymentId ?? null,
        paymentEntry,
        name: request.name ?? null,
        description: request.description ?? null,
        reason: request.reason ?? null,
        status: "completed",
        idempotencyKey: request.idempotencyKey ?? null,
        requestHash: request.idempotencyKey === undefined ? null : hash,
        now,
      });
      return refundId;
    });
    return { created: true, refund: await this.getRefund(actor, id) };
  }

  /**
   * An account that closes with credit gets it back: to its default payment method, or reported for a manual refund
   * when it has none (`manual`). In the closing transaction.
   */
  async refundOnClose(tx: Db, billingAccountId: string): Promise<void> {
    const credits = (await creditsOf(tx, [billingAccountId])).get(billingAccountId) ?? [];
    if (credits.length === 0) return;
    const account = (await this.deps.accounts(tx, [billingAccountId])).get(billingAccountId);
    if (account === undefined) return;
    let amount = MinorAmount.zero(currencyMinorUnits(account.currency));
    for (const credit of credits) amount = amount.plus(credit.available);
    const [stored] = await tx
      .select()
      .from(paymentMethods)
      .where(
        and(
          eq(paymentMethods.billingAccountId, billingAccountId),
          eq(paymentMethods.isDefault, true),
          eq(paymentMethods.state, "active"),
        ),
      );
    await this.writeRefund(tx, SYSTEM_CLOSER, {
      account,
      amount,
      stored: stored ?? null,
      methodKind: (stored?.kind as MethodKind | undefined) ?? null,
      paymentId: null,
      paymentEntry: null,
      name: "Credit refunded at account closure",
      description: null,
      reason: "account closed with credit",
      status: "requested",
      idempotencyKey: null,
      requestHash: null,
      now: this.deps.clock.now(),
    });
  }

  private async writeRefund(
    tx: Db,
    actor: Actor,
    refund: {
      account: BillingAccountView;
      amount: MinorAmount;
      stored: MethodRow | null;
      methodKind: MethodKind | null;
      paymentId: string | null;
      paymentEntry: string | null;
      name: string | null;
      description: string | null;
      reason: string | null;
      status: "requested" | "completed";
      idempotencyKey: string | null;
      requestHash: string | null;
      now: Date;
    },
  ): Promise<string> {
    const { account, amount, now } = refund;
    const credits = (await creditsOf(tx, [account.id])).get(account.id) ?? [];
    // The named payment's credit first, then the oldest.
    credits.sort((a, b) => Number(b.entryId === refund.paymentEntry) - Number(a.entryId === refund.paymentEntry));
    let available = MinorAmount.zero(amount.decimals);
    for (const credit of credits) available = available.plus(credit.available);
    if (amount.gt(available)) {
      throw new AppError(
        "unprocessable",
        "refund_exceeds_credit",
        `totalAmount.value: account ${account.id} has ${available.toFixed()} ${account.currency} of unapplied credit; a refund is never more`,
        "totalAmount.value",
      );
    }
    const id = newId(now.getTime());
    await writeEntries(tx, [
      {
        id,
        billingAccountId: account.id,
        kind: "refund",
        amount,
        currency: account.currency,
        at: now,
        description: `Refund ${refund.description ?? refund.reason ?? id}`,
      },
    ]);
    await tx.insert(refunds).values({
      id,
      billingAccountId: account.id,
      entryId: id,
      amount: amount.toMoney(),
      currency: account.currency,
      paymentMethodId: refund.stored?.id ?? null,
      methodKind: refund.methodKind,
      paymentId: refund.paymentId,
      name: refund.name,
      description: refund.description,
      reason: refund.reason,
      status: refund.status,
      statusDate: now,
      manual: refund.status === "requested" && refund.stored === null,
      idempotencyKey: refund.idempotencyKey,
      requestHash: refund.requestHash,
      createdAt: now,
    });
    const target: OpenItem = {
      kind: "entry",
      cost: false,
      id,
      billingAccountId: account.id,
      currency: account.currency,
      open: amount,
      dueDate: "",
      seq: 0,
      number: null,
      paymentReference: null,
      onHold: false,
    };
    const planned = credits.flatMap((credit) => applyCredit(credit, [target]));
    await writeAllocations(tx, planned, now);
    const [presented] = await this.presentRefunds(tx, [id]);
    await this.deps.events.record(tx, {
      api: "paymentManagement",
      resource: "refund",
      change: "Create",
      resourceId: id,
      body: presented,
    });
    await this.deps.audit.record(tx, actor, {
      action: "create",
      entityType: "refund",
      entityId: id,
      after: { account: account.id, amount: amount.toFixed(), status: refund.status, reason: refund.reason },
    });
    return id;
  }

  private async refundReplay(actor: Actor, key: string, hash: string): Promise<object | undefined> {
    const [row] = await this.deps.database.db.select().from(refunds).where(eq(refunds.idempotencyKey, key));
    if (row === undefined) return undefined;
    if (row.requestHash !== hash || !mayReadAccount(actor, row.billingAccountId)) throw keyReused();
    return this.getRefund(actor, row.id);
  }

  /** Finance reports a requested refund paid out. */
  async completeRefund(actor: Actor, id: string): Promise<object> {
    await this.deps.database.transaction(async (tx) => {
      const [row] = isId(id) ? await tx.select().from(refunds).where(eq(refunds.id, id)).for("update") : [];
      if (row === undefined) throw notFound("refund", id);
      if (row.status === "completed") {
        throw new AppError("conflict", "illegal_transition", `refund ${id} is completed already`);
      }
      const now = this.deps.clock.now();
      await tx.update(refunds).set({ status: "completed", statusDate: now }).where(eq(refunds.id, id));
      const [presented] = await this.presentRefunds(tx, [id]);
      await this.deps.events.record(tx, {
        api: "paymentManagement",
        resource: "refund",
        change: "StateChange",
        resourceId: id,
        body: presented,
      });
      await this.deps.audit.record(tx, actor, {
        action: "complete",
        entityType: "refund",
        entityId: id,
        before: { status: row.status },
        after: { status: "completed" },
      });
    });
    return this.getRefund(actor, id);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads

  /** The account a payment or refund names (404 if the caller may not see it) and its amount in the account's money. */
  private moneyFor(
    actor: Actor,
    account: BillingAccountView | undefined,
    request: { billingAccountId: string; currency: string; amount: string },
  ): { account: BillingAccountView; amount: MinorAmount } {
    if (account === undefined || !mayReadAccount(actor, request.billingAccountId)) {
      throw new AppError(
        "not_found",
        "not_found",
        `billingAccount ${request.billingAccountId} does not exist`,
        "account.id",
      );
    }
    if (request.currency !== account.currency) {
      throw new AppError(
        "unprocessable",
        "currency_mismatch",
        `totalAmount.unit: the account is billed in ${account.currency}, not ${request.currency}`,
        "totalAmount.unit",
      );
    }
    const amount = amountIn(request.amount, account.currency, "totalAmount.value");
    if (!amount.isPositive()) {
      throw new AppError("bad_request", "invalid_amount", "totalAmount.value: must be above zero", "totalAmount.value");
    }
    return { account, amount };
  }

  private async find(db: Db, actor: Actor, id: string): Promise<PaymentRow> {
    const [row] = isId(id) ? await db.select().from(payments).where(eq(payments.id, id)) : [];
    if (row === undefined || !mayReadAccount(actor, row.billingAccountId)) throw notFound("payment", id);
    return row;
  }

  async get(actor: Actor, id: string): Promise<PaymentResource> {
    const row = await this.find(this.deps.database.db, actor, id);
    const [payment] = await this.presentMany(this.deps.database.db, [row.id]);
    return payment as PaymentResource;
  }

  async list(actor: Actor, request: ListRequest): Promise<{ items: PaymentResource[]; total: number }> {
    const columns = { status: payments.status, correlatorId: payments.correlatorId };
    return this.page(payments, columns, actor, request, (db, ids) => this.presentMany(db, ids));
  }

  /** One page of payments or refunds in their order of writing (a subscriber: its own), presented. */
  private async page<R>(
    table: typeof payments | typeof refunds,
    columns: Record<string, AnyColumn>,
    actor: Actor,
    request: ListRequest,
    present: (db: Db, ids: string[]) => Promise<R[]>,
  ): Promise<{ items: R[]; total: number }> {
    const db = this.deps.database.db;
    const where = listFilters({ id: table.id, "account.id": table.billingAccountId, ...columns }, request, [
      actor.role === "subscriber" ? eq(table.billingAccountId, actor.billingAccountId ?? "") : undefined,
    ]);
    const [rows, counted] = await Promise.all([
      db
        .select({ id: table.id })
        .from(table)
        .where(where)
        .orderBy(asc(table.createdAt), asc(table.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(table).where(where),
    ]);
    return {
      items: await present(
        db,
        rows.map((row) => row.id),
      ),
      total: counted[0]?.total ?? 0,
    };
  }

  async getRefund(actor: Actor, id: string): Promise<object> {
    const db = this.deps.database.db;
    const [row] = isId(id) ? await db.select().from(refunds).where(eq(refunds.id, id)) : [];
    if (row === undefined || !mayReadAccount(actor, row.billingAccountId)) throw notFound("refund", id);
    const [refund] = await this.presentRefunds(db, [id]);
    return refund as object;
  }

  async listRefunds(actor: Actor, request: ListRequest): Promise<{ items: object[]; total: number }> {
    return this.page(refunds, { status: refunds.status }, actor, request, (db, ids) => this.presentRefunds(db, ids));
  }

  /** TMF676 Payments with their standing allocations as `paymentItem` (two statements for any number). */
  async presentMany(db: Db, ids: readonly string[]): Promise<PaymentResource[]> {
    if (ids.length === 0) return [];
    const rows = await db
      .select()
      .from(payments)
      .where(inArray(payments.id, [...ids]));
    const byEntry = await standingAllocations(
      db,
      rows.flatMap((row) => (row.entryId === null ? [] : [row.entryId])),
    );
    const pending = rows.filter((row) => row.status === "pending").map((row) => row.id);
    const debits = new Map(
      (pending.length === 0
        ? []
        : await db
            .select({ id: directDebits.id, invoiceId: directDebits.invoiceId, amount: directDebits.amount })
            .from(directDebits)
            .where(inArray(directDebits.id, pending))
      ).map((debit) => [debit.id, debit]),
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.flatMap((id) => {
      const row = byId.get(id);
      if (row === undefined) return [];
      const debit = debits.get(row.id);
      if (debit !== undefined) {
        // A direct debit not yet collected: the bill it is for, nothing allocated yet.
        const item = { id: debit.invoiceId, href: `${BILL_PATH}/${debit.invoiceId}`, "@referredType": "CustomerBill" };
        const planned = {
          amount: tmfMoney(debit.amount, row.currency),
          totalAmount: tmfMoney(debit.amount, row.currency),
          item,
        };
        return [presentPayment(row, [planned], new Money(0))];
      }
      const items = row.entryId === null ? [] : (byEntry.get(row.entryId) ?? []);
      let used = new Money(0);
      for (const item of items) used = used.plus(item.amount);
      const paymentItem = items
        .filter((item) => item.debitKind !== "reversal")
        .map((item) => ({
          amount: tmfMoney(item.amount, row.currency),
          totalAmount: tmfMoney(item.amount, row.currency),
          item:
            item.invoiceId !== null
              ? {
                  id: item.invoiceId,
                  href: `${BILL_PATH}/${item.invoiceId}`,
                  ...(item.number === null ? {} : { name: item.number }),
                  "@referredType": "CustomerBill",
                }
              : {
                  id: item.debitEntryId as string,
                  name: item.debitKind ?? "entry",
                  "@referredType": "ReceivableEntry",
                },
        }));
      return [presentPayment(row, paymentItem, row.status === "reversed" ? new Money(0) : row.amount.minus(used))];
    });
  }

  private async presentRefunds(db: Db, ids: readonly string[]): Promise<object[]> {
    if (ids.length === 0) return [];
    const rows = await db
      .select()
      .from(refunds)
      .where(inArray(refunds.id, [...ids]));
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.flatMap((id) => {
      const row = byId.get(id);
      return row === undefined ? [] : [presentRefund(row)];
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Payment methods of a billing account

  async methods(actor: Actor, billingAccountId: string): Promise<object[]> {
    await this.accountOf(actor, billingAccountId);
    const rows = await this.deps.database.db
      .select()
      .from(paymentMethods)
      .where(and(eq(paymentMethods.billingAccountId, billingAccountId), eq(paymentMethods.state, "active")))
      .orderBy(asc(paymentMethods.createdAt), asc(paymentMethods.id));
    return rows.map(presentMethod);
  }

  async method(actor: Actor, billingAccountId: string, id: string): Promise<object> {
    return presentMethod(await this.methodRow(this.deps.database.db, actor, billingAccountId, id));
  }

  async addMethod(actor: Actor, billingAccountId: string, input: MethodInput): Promise<object> {
    await this.accountOf(actor, billingAccountId);
    const id = await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [billingAccountId]);
      const now = this.deps.clock.now();
      const others = await tx
        .select({ id: paymentMethods.id })
        .from(paymentMethods)
        .where(and(eq(paymentMethods.billingAccountId, billingAccountId), eq(paymentMethods.state, "active")));
      const isDefault = input.isDefault === true || others.length === 0;
      if (isDefault) await this.clearDefault(tx, billingAccountId, now);
      const methodId = newId(now.getTime());
      await tx.insert(paymentMethods).values({
        id: methodId,
        billingAccountId,
        kind: input.kind,
        name: input.name ?? null,
        isDefault,
        iban: input.iban ?? null,
        bic: input.bic ?? null,
        accountHolder: input.accountHolder ?? null,
        mandateReference: input.mandateReference ?? null,
        provider: input.provider ?? null,
        token: input.token ?? null,
        brand: input.brand ?? null,
        lastFour: input.lastFour ?? null,
        expiry: input.expiry ?? null,
        createdAt: now,
        updatedAt: now,
      });
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "paymentMethod",
        entityId: methodId,
        after: { billingAccountId, kind: input.kind, isDefault },
      });
      return methodId;
    });
    return this.method(actor, billingAccountId, id);
  }

  async changeMethod(
    actor: Actor,
    billingAccountId: string,
    id: string,
    patch: { name?: string; isDefault?: boolean },
  ): Promise<object> {
    await this.methodRow(this.deps.database.db, actor, billingAccountId, id);
    await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [billingAccountId]);
      const now = this.deps.clock.now();
      const row = await this.methodRow(tx, actor, billingAccountId, id);
      if (patch.isDefault === false && row.isDefault) {
        throw new AppError(
          "conflict",
          "default_required",
          "isDefault: make another method the default instead; an account with methods keeps one default",
          "isDefault",
        );
      }
      if (patch.isDefault === true && !row.isDefault) await this.clearDefault(tx, billingAccountId, now);
      await tx
        .update(paymentMethods)
        .set({
          ...(patch.name === undefined ? {} : { name: patch.name }),
          ...(patch.isDefault === undefined ? {} : { isDefault: patch.isDefault }),
          updatedAt: now,
        })
        .where(eq(paymentMethods.id, id));
      await this.deps.audit.record(tx, actor, {
        action: "update",
        entityType: "paymentMethod",
        entityId: id,
        before: { name: row.name, isDefault: row.isDefault },
        after: patch,
      });
    });
    return this.method(actor, billingAccountId, id);
  }

  /** A removed method stays for the payments that name it; the oldest other becomes the default. */
  async removeMethod(actor: Actor, billingAccountId: string, id: string): Promise<void> {
    await this.methodRow(this.deps.database.db, actor, billingAccountId, id);
    await this.deps.database.transaction(async (tx) => {
      await lockAccounts(tx, [billingAccountId]);
      const now = this.deps.clock.now();
      const row = await this.methodRow(tx, actor, billingAccountId, id);
      await tx
        .update(paymentMethods)
        .set({ state: "removed", isDefault: false, updatedAt: now })
        .where(eq(paymentMethods.id, id));
      if (row.isDefault) {
        const [next] = await tx
          .select({ id: paymentMethods.id })
          .from(paymentMethods)
          .where(and(eq(paymentMethods.billingAccountId, billingAccountId), eq(paymentMethods.state, "active")))
          .orderBy(asc(paymentMethods.createdAt), asc(paymentMethods.id))
          .limit(1);
        if (next !== undefined) {
          await tx
            .update(paymentMethods)
            .set({ isDefault: true, updatedAt: now })
            .where(eq(paymentMethods.id, next.id));
        }
      }
      await this.deps.audit.record(tx, actor, {
        action: "remove",
        entityType: "paymentMethod",
        entityId: id,
        before: { kind: row.kind, isDefault: row.isDefault },
      });
    });
  }

  private async clearDefault(tx: Db, billingAccountId: string, now: Date): Promise<void> {
    await tx
      .update(paymentMethods)
      .set({ isDefault: false, updatedAt: now })
      .where(and(eq(paymentMethods.billingAccountId, billingAccountId), eq(paymentMethods.isDefault, true)));
  }

  private async accountOf(actor: Actor, billingAccountId: string): Promise<BillingAccountView> {
    const account = (await this.deps.accounts(this.deps.database.db, [billingAccountId])).get(billingAccountId);
    if (account === undefined || !mayReadAccount(actor, billingAccountId)) {
      throw notFound("billingAccount", billingAccountId);
    }
    return account;
  }

  private async methodRow(db: Db, actor: Actor, billingAccountId: string, id: string): Promise<MethodRow> {
    if (!mayReadAccount(actor, billingAccountId)) throw notFound("billingAccount", billingAccountId);
    const [row] = isId(id) ? await db.select().from(paymentMethods).where(eq(paymentMethods.id, id)) : [];
    if (row === undefined || row.billingAccountId !== billingAccountId || row.state !== "active") {
      throw notFound("paymentMethod", id);
    }
    return row;
  }
}

export interface MethodInput {
  kind: "bankTransfer" | "directDebit" | "card";
  name?: string;
  isDefault?: boolean;
  iban?: string;
  bic?: string;
  accountHolder?: string;
  mandateReference?: string;
  provider?: string;
  token?: string;
  brand?: string;
  lastFour?: string;
  expiry?: string;
}

const SYSTEM_CLOSER: Actor = { keyId: null, role: "system", requestId: null, billingAccountId: null };

function keyReused(): AppError {
  return new AppError(
    "conflict",
    "idempotency_key_reused",
    "Idempotency-Key was used for a different payment; a retry must repeat the first request exactly",
  );
}

function methodOf(
  methodId: string,
  stored: ReadonlyMap<string, MethodRow>,
  billingAccountId: string,
): { kind: MethodKind; stored: MethodRow | null } {
  const row = stored.get(methodId);
  if (row !== undefined && row.billingAccountId === billingAccountId && row.state === "active") {
    return { kind: row.kind as MethodKind, stored: row };
  }
  if ((METHOD_KINDS as readonly string[]).includes(methodId)) return { kind: methodId as MethodKind, stored: null };
  throw new AppError(
    "unprocessable",
    "unknown_payment_method",
    `paymentMethod.id: ${methodId} is neither a payment method of the account nor one of ${METHOD_KINDS.join(", ")}`,
    "paymentMethod.id",
  );
}

function presentPayment(row: PaymentRow, paymentItem: object[], unapplied: Money): PaymentResource {
  return {
    id: row.id,
    href: `${PAYMENT_PATH}/${row.id}`,
    "@type": "Payment",
    ...(row.name === null ? {} : { name: row.name }),
    ...(row.description === null ? {} : { description: row.description }),
    ...(row.correlatorId === null ? {} : { correlatorId: row.correlatorId }),
    ...(row.authorizationCode === null ? {} : { authorizationCode: row.authorizationCode }),
    paymentDate: row.paymentDate.toISOString(),
    status: row.status,
    statusDate: row.statusDate.toISOString(),
    account: {
      id: row.billingAccountId,
      href: `${ACCOUNT_PATH}/${row.billingAccountId}`,
      "@referredType": "BillingAccount",
    },
    amount: tmfMoney(row.amount, row.currency),
    totalAmount: tmfMoney(row.amount, row.currency),
    paymentMethod:
      row.paymentMethodId === null
        ? { id: row.methodKind, name: row.methodKind, "@referredType": "PaymentMethod" }
        : { id: row.paymentMethodId, name: row.methodKind, "@referredType": "PaymentMethod" },
    ...(row.channel === null ? {} : { channel: { id: row.channel, name: row.channel } }),
    paymentItem,
    /** Extensions: what is left as the account's credit, how the bills were found, the reversal. */
    unappliedAmount: tmfMoney(unapplied, row.currency),
    matchedBy: row.matchedBy,
    ...(row.reversalReason === null
      ? {}
      : {
          reversal: {
            reasonCode: row.reversalReason,
            reason: REVERSAL_REASONS[row.reversalReason]?.text ?? row.reversalReason,
            ...(row.reversalNote === null ? {} : { note: row.reversalNote }),
            date: row.statusDate.toISOString(),
          },
        }),
  };
}

function presentRefund(row: RefundRow): object {
  return {
    id: row.id,
    href: `${REFUND_PATH}/${row.id}`,
    "@type": "Refund",
    ...(row.name === null ? {} : { name: row.name }),
    ...(row.description === null ? {} : { description: row.description }),
    refundDate: row.createdAt.toISOString(),
    status: row.status,
    statusDate: row.statusDate.toISOString(),
    account: {
      id: row.billingAccountId,
      href: `${ACCOUNT_PATH}/${row.billingAccountId}`,
      "@referredType": "BillingAccount",
    },
    amount: tmfMoney(row.amount, row.currency),
    totalAmount: tmfMoney(row.amount, row.currency),
    // TMF676 requires a method: the stored one, else the kind named, else a manual refund's.
    paymentMethod: {
      id: row.paymentMethodId ?? row.methodKind ?? "manual",
      name: row.methodKind ?? "manual refund",
      "@referredType": "PaymentMethod",
    },
    ...(row.paymentId === null
      ? {}
      : { payment: { id: row.paymentId, href: `${PAYMENT_PATH}/${row.paymentId}`, "@referredType": "Payment" } }),
    /** Extensions: why, and whether finance pays it by hand (no method to pay it to). */
    ...(row.reason === null ? {} : { reason: row.reason }),
    manual: row.manual,
  };
}

function presentMethod(row: MethodRow): object {
  return {
    id: row.id,
    kind: row.kind,
    ...(row.name === null ? {} : { name: row.name }),
    isDefault: row.isDefault,
    billingAccount: { id: row.billingAccountId },
    ...(row.iban === null ? {} : { iban: maskIban(row.iban) }),
    ...(row.bic === null ? {} : { bic: row.bic }),
    ...(row.accountHolder === null ? {} : { accountHolder: row.accountHolder }),
    ...(row.mandateReference === null ? {} : { mandateReference: row.mandateReference }),
    ...(row.provider === null ? {} : { provider: row.provider }),
    ...(row.brand === null ? {} : { brand: row.brand }),
    ...(row.lastFour === null ? {} : { lastFour: row.lastFour }),
    ...(row.expiry === null ? {} : { expiry: row.expiry }),
    createdAt: row.createdAt.toISOString(),
  };
}

/** An IBAN as shown back: its country, check digits and last four characters (the rest is not needed to pick it). */
/** An IBAN as it is shown: its country, check digits and last four characters. */
export function maskIban(iban: string): string {
  return `${iban.slice(0, 4)}${"*".repeat(Math.max(0, iban.length - 8))}${iban.slice(-4)}`;
}
