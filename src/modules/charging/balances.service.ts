import { and, asc, count, eq, inArray, type SQL } from "drizzle-orm";
import type { Actor, AuditLog } from "../../platform/audit.js";
import type { Clock } from "../../platform/clock.js";
import type { Database } from "../../platform/database.js";
import { AppError, invalidField, notFound } from "../../platform/errors.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, TMF_BASE, tmfRef } from "../../platform/tmf.js";
import { cyclePeriod } from "../../shared/calendar.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { isId, newId } from "../../shared/ids.js";
import { CHARGING_AMOUNT_MAX } from "../../shared/limits.js";
import {
  amountToJsonNumber,
  chargingRangeProblem,
  describeAmountProblem,
  fromMicro,
  type Money,
  parseJsonAmount,
  toMicro,
} from "../../shared/money.js";
import type { CustomerServices } from "../customers/index.js";
import type { Product, SubscriptionsService } from "../subscriptions/index.js";
import { allowanceBuckets, type BucketRow, balanceOperations } from "./charging.tables.js";
import { type AccountState, type ChargingStore, MICRO_LIMIT, operationMark } from "./store/charging-store.js";
import { balanceThresholds, creditLimitThreshold, SERVICE_UNITS, type ThresholdTable } from "./thresholds.js";

export const BALANCE_BASE = "/tmf-api/prepayBalanceManagement/v4";
const UNITS = SERVICE_UNITS;
/** Accounts counted per statement when staff page through every account's buckets. */
const BUCKET_WALK = 500;
const UNIT_SERVICES = new Map<string, keyof typeof UNITS>([
  ["second", "voice"],
  ["message", "sms"],
  ["byte", "data"],
]);

export interface Quantity {
  amount: number;
  units: string;
}

export interface BalanceRequest {
  amount: Quantity;
  bucket?: { id: string };
  product?: { id: string };
  /** TMF654 names the account too; when sent, it must be the line's. */
  partyAccount?: { id: string };
  reason?: string;
}

export interface BalancesDeps {
  database: Database;
  clock: Clock;
  audit: AuditLog;
  store: ChargingStore;
  customers: CustomerServices;
  subscriptions: SubscriptionsService;
  thresholds: ThresholdTable;
}

type OperationRow = typeof balanceOperations.$inferSelect;
type Profile = NonNullable<Awaited<ReturnType<CustomerServices["chargingProfile"]>>>;

/** The store's id for an operation: the same request (account and key) always names the same operation. */

/**
 * Prepaid balances and allowances over TMF654: top-ups and adjustments (each a ledger row, applied to the
 * charging store once per Idempotency-Key), buckets with what is left, and each account's accumulated balance.
 * The store applies first, because it is where a debit or a bucket change is checked atomically; the ledger
 * row follows at once, and a retry with the same key completes whichever half a crash left undone.
 */
export class BalancesService {
  constructor(private readonly deps: BalancesDeps) {}

  private async lineFor(actor: Actor, request: BalanceRequest) {
    const id = request.product?.id ?? request.bucket?.id;
    if (id === undefined) throw invalidField("product", "name the line (product.id) or its bucket (bucket.id)");
    const db = this.deps.database.db;
    let line: Product | undefined;
    let bucket: BucketRow | undefined;
    if (isId(id)) {
      line = await this.deps.subscriptions.find(db, id);
      if (line === undefined && request.bucket !== undefined) {
        [bucket] = await db.select().from(allowanceBuckets).where(eq(allowanceBuckets.id, id));
        // A shared bucket is the account's: any live line of it answers for the bucket.
        if (bucket?.shared) [line] = await this.deps.subscriptions.liveLines(db, bucket.billingAccountId);
        else if (bucket) line = await this.deps.subscriptions.find(db, bucket.productId);
      }
    }
    if (line?.kind !== "plan" || (actor.role === "subscriber" && actor.billingAccountId !== line.billingAccountId)) {
      throw notFound(request.bucket !== undefined ? "bucket" : "product", id);
    }
    if (request.partyAccount !== undefined && request.partyAccount.id !== line.billingAccountId) {
      throw invalidField(
        "partyAccount.id",
        `is not the account of ${request.bucket !== undefined ? "bucket" : "line"} ${id}`,
      );
    }
    if (line.status === "terminated" || line.status === "aborted") {
      throw new AppError("conflict", "line_ended", `line ${line.id} has ended (${line.status})`);
    }
    const profile = (await this.deps.customers.chargingProfile(db, line.billingAccountId)) as Profile;
    return { line, bucket, profile };
  }

  private money(quantity: Quantity, profile: Profile, allowNegative: boolean): Money {
    if (quantity.units !== profile.currency) {
      throw invalidField("amount.units", `must be the account's currency ${profile.currency}`);
    }
    const parsed = parseJsonAmount(quantity.amount, {
      maxDecimals: currencyMinorUnits(profile.currency),
      allowNegative,
    });
    if (typeof parsed === "string") {
      throw invalidField("amount.amount", describeAmountProblem(parsed, currencyMinorUnits(profile.currency)));
    }
    if (parsed.isZero()) throw invalidField("amount.amount", "must not be zero");
    const outOfRange = chargingRangeProblem(parsed);
    if (outOfRange !== null) {
      throw new AppError("unprocessable", "amount_out_of_range", `amount.amount: ${outOfRange}`, "amount.amount");
    }
    return parsed;
  }

  /**
   * Refuses a change that would take a prepaid balance past what the store holds exactly (checked against the
   * store's state before anything is written; the Lua step would otherwise lose exactness silently).
   */
  private async checkBalanceRange(accountId: string, productId: string, delta: bigint): Promise<void> {
    const state = await this.deps.store.read(accountId);
    const after = (state.lines.get(productId)?.balance ?? 0n) + delta;
    if (after > MICRO_LIMIT || after < -MICRO_LIMIT) {
      throw new AppError(
        "unprocessable",
        "amount_out_of_range",
        `amount.amount: the balance would pass ${CHARGING_AMOUNT_MAX}, the most the charging store holds exactly`,
        "amount.amount",
      );
    }
  }

  private async thresholds(productId: string, currency: string) {
    return balanceThresholds(productId, currency, await this.deps.thresholds.rows()).map((threshold) => ({
      key: threshold.key,
      value: threshold.value,
    }));
  }

  /** A top-up of a prepaid line: money in, the line unbarred once its balance is back at or above zero. */
  async topUp(actor: Actor, request: BalanceRequest, key: string | undefined) {
    const { line, profile } = await this.lineFor(actor, request);
    if (profile.accountType !== "prepaid") {
      throw new AppError(
        "unprocessable",
        "not_prepaid",
        "only prepaid lines are topped up; credit postpaid accounts with adjustBalance",
      );
    }
    const amount = this.money(request.amount, profile, false);
    const idempotencyKey = key ?? newId(this.deps.clock.now().getTime());
    await this.ensureLine(profile, line);
    await this.checkBalanceRange(profile.id, line.id, toMicro(amount));
    const applied = await this.deps.store.adjust({
      accountId: profile.id,
      id: operationMark(profile.id, `topup:${idempotencyKey}`),
      productId: line.id,
      balance: toMicro(amount),
      rearm: await this.thresholds(line.id, profile.currency),
    });
    if (applied.status === "refused") throw new AppError("unprocessable", "refused", applied.reason);
    const row = await this.record(actor, "topup", profile, line, { amount, reason: request.reason }, idempotencyKey);
    if (line.barringReasons.includes("credit") && applied.balance !== null && applied.balance >= 0n) {
      await this.deps.subscriptions.setBarring(actor, line.id, "credit", false, "unbarred: topped up");
    }
    return { resource: this.presentOperation(row, applied.balance, null), created: applied.status === "applied" };
  }

  /**
   * An adjustment: money on a prepaid line (either sign), a credit to a postpaid account's spend to date (positive
   * amounts credit the customer), or units on an allowance bucket. A postpaid credit that takes spend back below
   * the credit limit lifts credit barring.
   */
  async adjust(actor: Actor, request: BalanceRequest, key: string | undefined) {
    const { line, bucket, profile } = await this.lineFor(actor, request);
    const idempotencyKey = key ?? newId(this.deps.clock.now().getTime());
    await this.ensureLine(profile, line);
    const id = operationMark(profile.id, `adjust:${idempotencyKey}`);
    let parts: { amount?: Money; units?: number; bucketId?: string; service?: string };
    let applied: Awaited<ReturnType<ChargingStore["adjust"]>>;
    const service = UNIT_SERVICES.get(request.amount.units);
    if (service !== undefined) {
      if (bucket === undefined)
        throw invalidField("bucket.id", `units of ${request.amount.units} adjust an allowance bucket`);
      if (bucket.service !== service)
        throw invalidField(
          "amount.units",
          `bucket ${bucket.id} counts ${UNITS[bucket.service as keyof typeof UNITS]}s`,
        );
      if (!Number.isSafeInteger(request.amount.amount) || request.amount.amount === 0) {
        throw invalidField("amount.amount", "must be a whole, non-zero number of units");
      }
      await this.deps.store.grant(profile.id, {
        productId: bucket.productId,
        balance: null,
        buckets: [{ id: bucket.id, granted: bucket.granted }],
      });
      parts = { units: request.amount.amount, bucketId: bucket.id, service };
      applied = await this.deps.store.adjust({
        accountId: profile.id,
        id,
        productId: bucket.productId,
        bucket: { bucketId: bucket.id, delta: request.amount.amount },
        rearm: [],
      });
    } else {
      const amount = this.money(request.amount, profile, true);
      if (profile.accountType === "prepaid") await this.checkBalanceRange(profile.id, line.id, toMicro(amount));
      parts = { amount };
      applied =
        profile.accountType === "prepaid"
          ? await this.deps.store.adjust({
              accountId: profile.id,
              id,
              productId: line.id,
              balance: toMicro(amount),
              rearm: await this.thresholds(line.id, profile.currency),
            })
          : await this.postpaidCredit(profile, line, id, amount);
    }
    if (applied.status === "refused") throw new AppError("unprocessable", "adjustment_refused", applied.reason);
    const row = await this.record(
      actor,
      "adjustment",
      profile,
      line,
      { ...parts, reason: request.reason },
      idempotencyKey,
    );
    await this.liftCreditBarring(actor, profile, line, applied);
    const resource = this.presentOperation(row, applied.balance, service === undefined ? null : service);
    return { resource, created: applied.status === "applied" };
  }

  /** A credit to spend to date; the credit-limit threshold re-arms once spend is back under the limit. */
  private postpaidCredit(profile: Profile, line: Product, id: string, amount: Money) {
    const period = cyclePeriod(this.deps.clock.now().getTime(), profile.cycle).key;
    return this.deps.store.adjust({
      accountId: profile.id,
      id,
      productId: line.id,
      spend: { period, delta: -toMicro(amount) },
      rearm: [],
      rearmSpend: profile.creditLimit === null ? [] : [creditLimitThreshold(profile.id, period, profile.creditLimit)],
    });
  }

  private async liftCreditBarring(
    actor: Actor,
    profile: Profile,
    line: Product,
    applied: Extract<Awaited<ReturnType<ChargingStore["adjust"]>>, { status: "applied" | "duplicate" }>,
  ): Promise<void> {
    if (profile.accountType === "prepaid") {
      if (line.barringReasons.includes("credit") && applied.balance !== null && applied.balance >= 0n) {
        await this.deps.subscriptions.setBarring(actor, line.id, "credit", false, "unbarred: balance adjusted");
      }
      return;
    }
    if (applied.spend === null || profile.creditLimit === null || applied.spend >= toMicro(profile.creditLimit)) return;
    for (const barred of await this.deps.subscriptions.liveLines(this.deps.database.db, profile.id)) {
      if (barred.barringReasons.includes("credit")) {
        await this.deps.subscriptions.setBarring(
          actor,
          barred.id,
          "credit",
          false,
          "unbarred: spend back under the credit limit",
        );
      }
    }
  }

  /** Whether a postpaid account's spend to date in the current bill period is at or over its credit limit. */
  async overCreditLimit(accountId: string, state: AccountState): Promise<boolean> {
    const profile = await this.deps.customers.chargingProfile(this.deps.database.db, accountId);
    if (profile?.accountType !== "postpaid" || profile.creditLimit === null) return false;
    const period = cyclePeriod(this.deps.clock.now().getTime(), profile.cycle);
    return (state.spend.get(period.key) ?? 0n) >= toMicro(profile.creditLimit);
  }

  /**
   * A postpaid account's credit barring against its spend in the current period: under the limit, its credit-barred
   * lines get their service back; at or over it, its lines are barred. Called after the limit changed, and by the
   * hourly review when a new period has begun (its spend restarts at zero).
   */
  async reviewCreditBarring(
    actor: Actor,
    accountId: string,
    why = "unbarred: the credit limit was raised",
  ): Promise<void> {
    const db = this.deps.database.db;
    const profile = await this.deps.customers.chargingProfile(db, accountId);
    if (profile?.accountType !== "postpaid") return;
    const state = await this.deps.store.read(accountId);
    const period = cyclePeriod(this.deps.clock.now().getTime(), profile.cycle);
    const spend = state.spend.get(period.key) ?? 0n;
    const over = profile.creditLimit !== null && spend >= toMicro(profile.creditLimit);
    for (const line of await this.deps.subscriptions.liveLines(db, accountId)) {
      const barred = line.barringReasons.includes("credit");
      if (over && !barred) {
        await this.deps.subscriptions.setBarring(
          actor,
          line.id,
          "credit",
          true,
          "barred: the credit limit is below the spend to date",
        );
      } else if (!over && barred) {
        await this.deps.subscriptions.setBarring(actor, line.id, "credit", false, why);
      }
    }
  }

  /** A line the store does not hold yet (nothing rated, no top-up) gets its state first. */
  private async ensureLine(profile: Profile, line: Product): Promise<void> {
    await this.deps.store.grant(profile.id, {
      productId: line.id,
      balance: profile.accountType === "prepaid" ? 0n : null,
      buckets: [],
    });
  }

  private async record(
    actor: Actor,
    kind: "topup" | "adjustment",
    profile: Profile,
    line: Product,
    parts: { amount?: Money; units?: number; bucketId?: string; service?: string; reason?: string | undefined },
    idempotencyKey: string,
  ): Promise<OperationRow> {
    return this.deps.database.transaction(async (tx) => {
      const [inserted] = await tx
        .insert(balanceOperations)
        .values({
          id: newId(this.deps.clock.now().getTime()),
          kind,
          billingAccountId: profile.id,
          productId: line.id,
          bucketId: parts.bucketId ?? null,
          amount: parts.amount ?? null,
          units: parts.units ?? null,
          currency: profile.currency,
          reason: parts.reason ?? null,
          idempotencyKey: `${kind}:${idempotencyKey}`,
          createdAt: this.deps.clock.now(),
        })
        .onConflictDoNothing()
        .returning();
      if (inserted) {
        await this.deps.audit.record(tx, actor, {
          action: kind,
          entityType: kind === "topup" ? "topupBalance" : "adjustBalance",
          entityId: inserted.id,
          after: this.presentOperation(inserted, null, parts.service ?? null),
        });
        return inserted;
      }
      const [existing] = await tx
        .select()
        .from(balanceOperations)
        .where(
          and(
            eq(balanceOperations.billingAccountId, profile.id),
            eq(balanceOperations.idempotencyKey, `${kind}:${idempotencyKey}`),
          ),
        );
      const same =
        existing !== undefined &&
        existing.productId === line.id &&
        (existing.amount?.toFixed() ?? null) === (parts.amount?.toFixed() ?? null) &&
        existing.units === (parts.units ?? null);
      if (!same) {
        throw new AppError("conflict", "idempotency_key_reused", "this Idempotency-Key was used for another request");
      }
      return existing;
    });
  }

  /**
   * An operation as TMF654 shows it: applied at once, so `completed`; money in the account's currency, or units of
   * an allowance bucket's service (`service`, the bucket's, for an operation on one).
   */
  presentOperation(row: OperationRow, balance: bigint | null, service: string | null) {
    const kind = row.kind === "topup" ? "topupBalance" : "adjustBalance";
    const line = tmfRef(`${TMF_BASE.productInventory}/product`, row.productId ?? "", "Product");
    const units = service === null ? undefined : UNITS[service as keyof typeof UNITS];
    return {
      id: row.id,
      href: `${BALANCE_BASE}/${kind}/${row.id}`,
      "@type": row.kind === "topup" ? ("TopupBalance" as const) : ("AdjustBalance" as const),
      status: "completed" as const,
      confirmationDate: row.createdAt.toISOString(),
      amount:
        row.amount !== null
          ? { amount: amountToJsonNumber(row.amount), units: row.currency }
          : { amount: row.units ?? 0, units: units ?? "unit" },
      usageType: row.bucketId === null ? "monetary" : (service ?? "other"),
      bucket: tmfRef(`${BALANCE_BASE}/bucket`, row.bucketId ?? row.productId ?? "", "Bucket"),
      product: [line],
      partyAccount: tmfRef(`${TMF_BASE.account}/billingAccount`, row.billingAccountId, "BillingAccount"),
      ...(row.reason === null ? {} : { reason: row.reason }),
      ...(balance === null
        ? {}
        : {
            remainingValue: {
              amount: amountToJsonNumber(fromMicro(balance)),
              units: row.currency,
            },
          }),
    };
  }

  async listOperations(actor: Actor, kind: "topup" | "adjustment", request: ListRequest) {
    const db = this.deps.database.db;
    const conditions: Array<SQL | undefined> = [eq(balanceOperations.kind, kind)];
    if (actor.role === "subscriber")
      conditions.push(eq(balanceOperations.billingAccountId, actor.billingAccountId ?? ""));
    const where = listFilters(
      { id: balanceOperations.id, "partyAccount.id": balanceOperations.billingAccountId },
      request,
      conditions,
    );
    const [rows, counted] = await Promise.all([
      this.operationRows(where).orderBy(asc(balanceOperations.id)).offset(request.offset).limit(request.limit),
      db.select({ total: count() }).from(balanceOperations).where(where),
    ]);
    return {
      items: rows.map((row) => this.presentOperation(row.operation, null, row.service)),
      total: counted[0]?.total ?? 0,
    };
  }

  /** Operations with the service of the bucket they moved units on (null for money). */
  private operationRows(where: SQL | undefined) {
    return this.deps.database.db
      .select({ operation: balanceOperations, service: allowanceBuckets.service })
      .from(balanceOperations)
      .leftJoin(allowanceBuckets, eq(allowanceBuckets.id, balanceOperations.bucketId))
      .where(where)
      .$dynamic();
  }

  async getOperation(actor: Actor, kind: "topup" | "adjustment", id: string) {
    const [found] = isId(id) ? await this.operationRows(eq(balanceOperations.id, id)) : [];
    const row = found?.operation;
    if (!row || row.kind !== kind || (actor.role === "subscriber" && actor.billingAccountId !== row.billingAccountId)) {
      throw notFound(kind === "topup" ? "topupBalance" : "adjustBalance", id);
    }
    return this.presentOperation(row, null, found?.service ?? null);
  }

  /**
   * An account's buckets: one monetary bucket per prepaid line that reached the network (its balance from the
   * charging store; zero for a line that has neither rated nor been topped up), in line order, then its allowance
   * buckets, newest periods first.
   */
  async buckets(actor: Actor, accountId: string) {
    const db = this.deps.database.db;
    if (actor.role === "subscriber" && actor.billingAccountId !== accountId) return [];
    const profile = await this.deps.customers.chargingProfile(db, accountId);
    if (!profile) return [];
    const [state, lineIds] = await Promise.all([
      this.deps.store.read(accountId),
      profile.accountType === "prepaid" ? this.deps.subscriptions.lineIdsOnNetwork(db, accountId) : [],
    ]);
    const account = tmfRef(`${TMF_BASE.account}/billingAccount`, accountId, "BillingAccount");
    const monetary = lineIds.map((productId) => ({
      id: productId,
      href: `${BALANCE_BASE}/bucket/${productId}`,
      "@type": "Bucket" as const,
      name: "prepaid balance",
      usageType: "monetary",
      isShared: false,
      status: "active",
      remainingValue: {
        amount: amountToJsonNumber(fromMicro(state.lines.get(productId)?.balance ?? 0n)),
        units: profile.currency,
      },
      product: [tmfRef(`${TMF_BASE.productInventory}/product`, productId, "Product")],
      partyAccount: account,
    }));
    const allowances = (await this.allowances(accountId, state)).map(
      ({ bucket, name, unit, granted, used, status }) => ({
        id: bucket.id,
        href: `${BALANCE_BASE}/bucket/${bucket.id}`,
        "@type": "Bucket" as const,
        name,
        usageType: bucket.service,
        isShared: bucket.shared,
        status,
        remainingValue: { amount: granted - used, units: unit },
        initialValue: { amount: granted, units: unit },
        validFor: { startDateTime: bucket.periodStart.toISOString(), endDateTime: bucket.periodEnd.toISOString() },
        // A shared bucket belongs to the account, not to one line.
        ...(bucket.shared
          ? {}
          : { product: [tmfRef(`${TMF_BASE.productInventory}/product`, bucket.productId, "Product")] }),
        partyAccount: account,
      }),
    );
    return [...monetary, ...allowances];
  }

  /**
   * Buckets a page at a time (TMF654 list), account by account in id order, each account's as `buckets` gives
   * them: `id` names buckets, `partyAccount.id` accounts; a subscriber sees its own account's only. Without
   * either, staff page through every account that has lines: each account's buckets are counted in SQL (its
   * prepaid lines on the network and its allowance rows, a batch of accounts a statement), and only the accounts
   * on the page are read from the charging store.
   */
  async bucketList(actor: Actor, request: ListRequest) {
    const page = <T>(all: T[]) => ({
      items: all.slice(request.offset, request.offset + request.limit),
      total: all.length,
    });
    const named = request.filters["partyAccount.id"];
    const scope = actor.role === "subscriber" ? [actor.billingAccountId ?? ""] : named;
    const ids = request.filters.id;
    if (ids !== undefined) {
      const found = await Promise.all([...new Set(ids)].map((id) => (isId(id) ? this.bucket(actor, id) : undefined)));
      return page(
        found.flatMap((bucket) =>
          bucket === undefined || (scope !== undefined && !scope.includes(bucket.partyAccount.id)) ? [] : [bucket],
        ),
      );
    }
    if (scope !== undefined) {
      return page((await Promise.all([...new Set(scope)].map((id) => this.buckets(actor, id)))).flat());
    }
    const items: Awaited<ReturnType<BalancesService["buckets"]>> = [];
    let total = 0;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const accounts = await this.deps.subscriptions.accountsWithLines(this.deps.database.db, after, BUCKET_WALK);
      const counts = await this.bucketCounts(accounts);
      for (const accountId of accounts) {
        const held = counts.get(accountId) ?? 0;
        if (held > 0 && total + held > request.offset && items.length < request.limit) {
          const from = Math.max(0, request.offset - total);
          const buckets = await this.buckets(actor, accountId);
          items.push(...buckets.slice(from, from + request.limit - items.length));
        }
        total += held;
      }
      if (accounts.length < BUCKET_WALK) return { items, total };
      after = accounts[accounts.length - 1] as string;
    }
  }

  /** How many buckets each of these accounts has (as `buckets` lists them), in three statements. */
  private async bucketCounts(accountIds: readonly string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (accountIds.length === 0) return counts;
    const db = this.deps.database.db;
    const profiles = await this.deps.customers.chargingProfiles(db, accountIds);
    const prepaid = [...profiles.values()].filter((profile) => profile.accountType === "prepaid");
    const [lines, allowances] = await Promise.all([
      this.deps.subscriptions.lineIdsOnNetworkOf(
        db,
        prepaid.map((profile) => profile.id),
      ),
      db
        .select({ accountId: allowanceBuckets.billingAccountId, held: count() })
        .from(allowanceBuckets)
        .where(inArray(allowanceBuckets.billingAccountId, [...profiles.keys()]))
        .groupBy(allowanceBuckets.billingAccountId),
    ]);
    for (const [accountId, ids] of lines) counts.set(accountId, ids.length);
    for (const row of allowances) counts.set(row.accountId, (counts.get(row.accountId) ?? 0) + row.held);
    return counts;
  }

  /**
   * An account's allowance buckets, newest periods first, each with what is granted and used (from the store's
   * state the caller read) and whether its period is over.
   */
  async allowances(accountId: string, state: AccountState) {
    const rows = await this.deps.database.db
      .select()
      .from(allowanceBuckets)
      .where(eq(allowanceBuckets.billingAccountId, accountId));
    const nowMs = this.deps.clock.now().getTime();
    return rows
      .sort((a, b) => b.periodStart.getTime() - a.periodStart.getTime() || a.id.localeCompare(b.id))
      .map((bucket) => {
        const held = state.lines.get(bucket.productId)?.buckets.find((candidate) => candidate.id === bucket.id);
        return {
          bucket,
          name: `${bucket.offeringId} ${bucket.allowanceId}${bucket.rolledFrom === null ? "" : " rollover"}`,
          unit: UNITS[bucket.service as keyof typeof UNITS],
          granted: held?.granted ?? bucket.granted,
          used: held?.used ?? 0,
          status: bucket.periodEnd.getTime() <= nowMs ? ("expired" as const) : ("active" as const),
        };
      });
  }

  /** One bucket by id: an allowance bucket, or a prepaid line's monetary bucket (the line's id). */
  async bucket(actor: Actor, id: string) {
    const db = this.deps.database.db;
    const [allowance] = await db.select().from(allowanceBuckets).where(eq(allowanceBuckets.id, id));
    const accountId = allowance?.billingAccountId ?? (await this.deps.subscriptions.find(db, id))?.billingAccountId;
    if (accountId === undefined) return undefined;
    return (await this.buckets(actor, accountId)).find((bucket) => bucket.id === id);
  }

  /**
   * Every account's accumulated balance, a page at a time (TMF654 list): staff see every account, a subscriber its
   * own; `partyAccount.id` and `id` (both the account's id) narrow it.
   */
  async accumulatedList(actor: Actor, request: ListRequest) {
    const named = [...(request.filters.id ?? []), ...(request.filters["partyAccount.id"] ?? [])];
    const scope = actor.role === "subscriber" ? [actor.billingAccountId ?? ""] : null;
    const wanted = scope === null ? named : named.length === 0 ? scope : named.filter((id) => scope.includes(id));
    const filters = named.length === 0 && scope === null ? {} : { id: wanted };
    const db = this.deps.database.db;
    const page = await this.deps.customers.accountIds(db, { ...request, filters, ranges: [] });
    // The page's profiles in one statement; each account's state from the charging store.
    const profiles = await this.deps.customers.chargingProfiles(db, page.ids);
    const prepaidLines = await this.deps.subscriptions.lineIdsOnNetworkOf(
      db,
      [...profiles.values()].filter((profile) => profile.accountType === "prepaid").map((profile) => profile.id),
    );
    const items = await Promise.all(
      page.ids.flatMap((id) => {
        const profile = profiles.get(id);
        return profile === undefined
          ? []
          : [
              this.deps.store
                .read(id)
                .then((state) => this.presentAccumulated(id, profile, state, prepaidLines.get(id) ?? [])),
            ];
      }),
    );
    return { items, total: page.total };
  }

  /** Spend to date (postpaid) or the sum of the lines' balances (prepaid), with the limits that apply. */
  async accumulated(actor: Actor, accountId: string) {
    const db = this.deps.database.db;
    const profile = isId(accountId) ? await this.deps.customers.chargingProfile(db, accountId) : undefined;
    if (!profile || (actor.role === "subscriber" && actor.billingAccountId !== accountId)) {
      throw notFound("accumulatedBalance", accountId);
    }
    const [state, lineIds] = await Promise.all([
      this.deps.store.read(accountId),
      profile.accountType === "prepaid" ? this.deps.subscriptions.lineIdsOnNetwork(db, accountId) : [],
    ]);
    return this.presentAccumulated(accountId, profile, state, lineIds);
  }

  /** `lineIds`: a prepaid account's lines on the network, whose monetary buckets the balance sums. */
  private presentAccumulated(accountId: string, profile: Profile, state: AccountState, lineIds: readonly string[]) {
    const period = cyclePeriod(this.deps.clock.now().getTime(), profile.cycle);
    const micro =
      profile.accountType === "prepaid"
        ? [...state.lines.values()].reduce((sum, line) => sum + (line.balance ?? 0n), 0n)
        : (state.spend.get(period.key) ?? 0n);
    const value = (amount: Money) => ({ amount: amountToJsonNumber(amount), units: profile.currency });
    return {
      id: accountId,
      href: `${BALANCE_BASE}/accumulatedBalance/${accountId}`,
      "@type": "AccumulatedBalance" as const,
      name: profile.accountType === "prepaid" ? "prepaid balance" : "spend to date",
      totalBalance: value(fromMicro(micro)),
      partyAccount: tmfRef(`${TMF_BASE.account}/billingAccount`, accountId, "BillingAccount"),
      ...(profile.accountType === "postpaid"
        ? {
            validFor: {
              startDateTime: new Date(period.startMs).toISOString(),
              endDateTime: new Date(period.endMs).toISOString(),
            },
            ...(profile.creditLimit === null ? {} : { creditLimit: value(profile.creditLimit) }),
            ...(profile.billLimit === null ? {} : { billLimit: value(profile.billLimit) }),
          }
        : {}),
      // TMF654 asks for at least one bucket; an account with none (a postpaid account without allowances, whose
      // accumulated balance is its spend to date) leaves the list out rather than send it empty.
      ...bucketRefs(state, lineIds),
    };
  }
}

/** The buckets an accumulated balance aggregates: each prepaid line's monetary bucket, then the allowances held. */
function bucketRefs(state: AccountState, lineIds: readonly string[]) {
  const refs = [
    ...lineIds.map((id) => tmfRef(`${BALANCE_BASE}/bucket`, id, "Bucket")),
    ...[...state.lines.values()].flatMap((line) =>
      line.buckets.map((bucket) => tmfRef(`${BALANCE_BASE}/bucket`, bucket.id, "Bucket")),
    ),
  ];
  return refs.length === 0 ? {} : { bucket: refs };
}
