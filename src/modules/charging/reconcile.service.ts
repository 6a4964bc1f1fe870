import { sql } from "drizzle-orm";
import type { Clock } from "../../platform/clock.js";
import { type Database, queryRows } from "../../platform/database.js";
import { cyclePeriod } from "../../shared/calendar.js";
import { DEDUPE_REBUILD_DAYS, RECONCILE_PAGE } from "../../shared/limits.js";
import { Money, toMicro } from "../../shared/money.js";
import type { CustomerServices } from "../customers/index.js";
import type { SubscriptionsService } from "../subscriptions/index.js";
import type { RatedResult } from "./rating.service.js";
import {
  type AccountSnapshot,
  type AccountState,
  type ChargingStore,
  type LineState,
  operationMark,
} from "./store/charging-store.js";

export interface ReconcileReport {
  accounts: number;
  mismatched: Array<{ accountId: string; differences: string[] }>;
  rebuilt: number;
}

export interface ReconcileDeps {
  database: Database;
  clock: Clock;
  store: ChargingStore;
  customers: CustomerServices;
  subscriptions: Pick<SubscriptionsService, "accountsWithLines" | "lineIdsOnNetwork">;
  /** A fencing token above every token a worker holds now (a new epoch); workers re-acquire their leases. */
  newEpoch: () => Promise<number>;
}

/** The store id of a top-up or adjustment, as BalancesService derived it from the account and Idempotency-Key. */
function operationStoreId(accountId: string, kind: string, idempotencyKey: string): string {
  // Top-ups and adjustments are marked by the client's key (an adjustment's as `adjust:`); shares and rollovers by
  // their own.
  if (kind !== "topup" && kind !== "adjustment") return operationMark(accountId, idempotencyKey);
  const key = idempotencyKey.slice(idempotencyKey.indexOf(":") + 1);
  return operationMark(accountId, `${kind === "topup" ? "topup" : "adjust"}:${key}`);
}

/**
 * Reconciliation (DESIGN.md §2, §4 step 7): the charging store is a hot copy; PostgreSQL is the ledger. For each
 * account this computes what the store should hold — every line's prepaid balance (top-ups + adjustments −
 * charges), every bucket's grant and use (grants + bucket adjustments; draws of rated rows), spend to date per
 * period (charges − postpaid credits), crossed thresholds and recent dedupe marks — compares it with the store,
 * and rebuilds the account in one atomic replace under a new fencing epoch, so a worker priced against the old
 * state cannot write over the rebuilt one.
 */
export class ReconcileService {
  constructor(private readonly deps: ReconcileDeps) {}

  async run(mode: "check" | "rebuild", only?: readonly string[]): Promise<ReconcileReport> {
    const report: ReconcileReport = { accounts: 0, mismatched: [], rebuilt: 0 };
    const fence = mode === "rebuild" ? await this.deps.newEpoch() : 0;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const page =
        only !== undefined
          ? only.map((id) => ({ id }))
          : (await this.deps.subscriptions.accountsWithLines(this.deps.database.db, after, RECONCILE_PAGE)).map(
              (id) => ({ id }),
            );
      for (const { id } of page) {
        report.accounts += 1;
        const ledger = await this.ledgerOf(id, fence);
        if (ledger === null) continue;
        const differences = compare(ledger, await this.deps.store.read(id));
        if (differences.length > 0) report.mismatched.push({ accountId: id, differences });
        if (mode === "rebuild") {
          await this.deps.store.replace(ledger);
          report.rebuilt += 1;
        }
      }
      if (only !== undefined || page.length < RECONCILE_PAGE) break;
      after = (page[page.length - 1] as { id: string }).id;
    }
    if (mode === "rebuild" && only === undefined) await this.deps.store.markInitialized();
    return report;
  }

  /** What the store should hold for an account, from the ledger alone. */
  async ledgerOf(accountId: string, fence: number): Promise<AccountSnapshot | null> {
    const db = this.deps.database.db;
    const profile = await this.deps.customers.chargingProfile(db, accountId);
    if (profile === undefined) return null;
    const prepaid = profile.accountType === "prepaid";
    const [lines, buckets, charges, operations, draws, spend, crossings, recent] = await Promise.all([
      this.deps.subscriptions.lineIdsOnNetwork(db, accountId),
      queryRows<{ id: string; product_id: string; granted: string }>(
        db,
        sql`select id::text, product_id::text, granted::text from allowance_buckets where billing_account_id = ${accountId}::uuid`,
      ),
      queryRows<{ product_id: string; total: string }>(
        db,
        sql`select product_id::text, sum(amount)::text as total from rated_usage
            where billing_account_id = ${accountId}::uuid group by product_id`,
      ),
      queryRows<{
        kind: string;
        product_id: string;
        bucket_id: string | null;
        amount: string | null;
        units: string | null;
        idempotency_key: string;
        created_at: Date | string;
      }>(
        db,
        sql`select kind, product_id::text, bucket_id::text, amount::text, units::text, idempotency_key, created_at
            from balance_operations where billing_account_id = ${accountId}::uuid`,
      ),
      queryRows<{ bucket: string; units: string }>(
        db,
        sql`select d->>'bucketId' as bucket, sum((d->>'units')::bigint)::text as units
            from rated_usage r, jsonb_array_elements(r.draws) d
            where r.billing_account_id = ${accountId}::uuid group by 1`,
      ),
      queryRows<{ period: string; total: string }>(
        db,
        sql`select spend_period as period, sum(amount)::text as total from rated_usage
            where billing_account_id = ${accountId}::uuid group by spend_period`,
      ),
      queryRows<{ key: string; kind: string; usage_id: string; value: string }>(
        db,
        sql`select key, kind, usage_id::text, value from threshold_crossings where billing_account_id = ${accountId}::uuid`,
      ),
      queryRows<Record<string, unknown>>(
        db,
        sql`select usage_id::text as "usageId", billing_account_id::text as "billingAccountId",
              product_id::text as "productId", started_at as "startedAt", tariff_id as "tariffId",
              tariff_version as "tariffVersion", record_type as "recordType", destination, roaming,
              quantity::text as quantity, allowance_units::text as "allowanceUnits",
              charged_units::text as "chargedUnits", draws, amount::text as amount, currency, prepaid,
              spend_period as "spendPeriod"
            from rated_usage
            where billing_account_id = ${accountId}::uuid
              and rated_at >= ${new Date(this.deps.clock.now().getTime() - DEDUPE_REBUILD_DAYS * 86_400_000).toISOString()}::timestamptz`,
      ),
    ]);

    const charged = new Map(charges.map((row) => [row.product_id, new Money(row.total)]));
    const spendBy = new Map(spend.map((row) => [row.period, new Money(row.total)]));
    const balanceBy = new Map<string, Money>();
    const grantDelta = new Map<string, number>();
    for (const operation of operations) {
      if (operation.bucket_id !== null && operation.units !== null) {
        grantDelta.set(operation.bucket_id, (grantDelta.get(operation.bucket_id) ?? 0) + Number(operation.units));
      } else if (operation.amount !== null) {
        const amount = new Money(operation.amount);
        if (prepaid)
          balanceBy.set(operation.product_id, (balanceBy.get(operation.product_id) ?? new Money(0)).plus(amount));
        else {
          const period = cyclePeriod(new Date(operation.created_at).getTime(), profile.cycle).key;
          spendBy.set(period, (spendBy.get(period) ?? new Money(0)).minus(amount));
        }
      }
    }
    const used = new Map(draws.map((row) => [row.bucket, Number(row.units)]));
    // Shared buckets are held by the account itself, beside its lines.
    const holders = buckets.some((bucket) => bucket.product_id === accountId) ? [...lines, accountId] : lines;
    const lineStates: LineState[] = holders.map((id) => {
      const balance =
        prepaid && id !== accountId
          ? toMicro((balanceBy.get(id) ?? new Money(0)).minus(charged.get(id) ?? new Money(0)))
          : null;
      return {
        productId: id,
        balance,
        buckets: buckets
          .filter((bucket) => bucket.product_id === id)
          .map((bucket) => ({
            id: bucket.id,
            granted: Number(bucket.granted) + (grantDelta.get(bucket.id) ?? 0),
            used: used.get(bucket.id) ?? 0,
          }))
          .sort((a, b) => a.id.localeCompare(b.id)),
      };
    });
    const balanceOf = new Map(lineStates.map((line) => [line.productId, line.balance]));
    // Balance thresholds re-arm after a top-up: one stays crossed only while the balance is still below it.
    const crossed = [
      ...new Set(
        crossings
          .filter((crossing) => {
            if (crossing.kind === "credit-limit") {
              // Re-armed by a credit: crossed only while spend is still at or over the limit in the key.
              const [, , period, limit] = crossing.key.split(":");
              const spent = spendBy.get(period ?? "") ?? new Money(0);
              return limit !== undefined && spent.greaterThanOrEqualTo(limit);
            }
            if (crossing.kind !== "low-balance" && crossing.kind !== "balance-exhausted") return true;
            const [, productId, value] = crossing.key.split(":");
            const balance = balanceOf.get(productId ?? "");
            return (
              balance !== null &&
              balance !== undefined &&
              balance < (value === undefined ? 0n : toMicro(new Money(value)))
            );
          })
          .map((crossing) => crossing.key),
      ),
    ];
    const crossingsOf = new Map<string, typeof crossings>();
    for (const crossing of crossings)
      crossingsOf.set(crossing.usage_id, [...(crossingsOf.get(crossing.usage_id) ?? []), crossing]);
    const marks = recent.map((row) => {
      const result: RatedResult = {
        usageId: String(row.usageId),
        billingAccountId: String(row.billingAccountId),
        productId: String(row.productId),
        startedAt: new Date(row.startedAt as string).toISOString(),
        tariffId: String(row.tariffId),
        tariffVersion: Number(row.tariffVersion),
        recordType: String(row.recordType),
        destination: (row.destination as string | null) ?? null,
        roaming: String(row.roaming),
        quantity: Number(row.quantity),
        allowanceUnits: Number(row.allowanceUnits),
        chargedUnits: Number(row.chargedUnits),
        draws: (typeof row.draws === "string" ? JSON.parse(row.draws) : row.draws) as RatedResult["draws"],
        amount: new Money(String(row.amount)).toFixed(),
        currency: String(row.currency),
        prepaid: Boolean(row.prepaid),
        spendPeriod: String(row.spendPeriod),
      };
      return {
        id: result.usageId,
        result: JSON.stringify(result),
        crossings: (crossingsOf.get(result.usageId) ?? []).map((crossing) => ({
          key: crossing.key,
          usageId: crossing.usage_id,
          value: BigInt(crossing.value),
        })),
      };
    });
    return {
      accountId,
      version: this.deps.clock.now().getTime(),
      fence,
      spend: new Map([...spendBy].map(([period, amount]) => [period, toMicro(amount)])),
      lines: lineStates,
      crossed,
      marks,
      adjustments: operations.map((operation) =>
        operationStoreId(accountId, operation.kind, operation.idempotency_key),
      ),
    };
  }
}

/** Differences that matter: balances, buckets and non-zero spend; versions, fences and marks are bookkeeping. */
export function compare(ledger: AccountSnapshot, store: AccountState): string[] {
  const out: string[] = [];
  for (const line of ledger.lines) {
    const held = store.lines.get(line.productId);
    if (held === undefined) {
      if (line.balance !== null && line.balance !== 0n) out.push(`line ${line.productId}: missing from the store`);
      else if (line.buckets.some((bucket) => bucket.used > 0))
        out.push(`line ${line.productId}: missing from the store`);
      continue;
    }
    if ((held.balance ?? null) !== line.balance) {
      out.push(`line ${line.productId}: balance ${held.balance} in the store, ${line.balance} in the ledger`);
    }
    for (const bucket of line.buckets) {
      const mine = held.buckets.find((candidate) => candidate.id === bucket.id);
      if (mine === undefined) {
        if (bucket.used > 0) out.push(`bucket ${bucket.id}: missing from the store`);
      } else if (mine.used !== bucket.used || mine.granted !== bucket.granted) {
        out.push(
          `bucket ${bucket.id}: ${mine.used}/${mine.granted} in the store, ${bucket.used}/${bucket.granted} in the ledger`,
        );
      }
    }
  }
  const periods = new Set([...ledger.spend.keys(), ...store.spend.keys()]);
  for (const period of periods) {
    const a = ledger.spend.get(period) ?? 0n;
    const b = store.spend.get(period) ?? 0n;
    if (a !== b) out.push(`spend ${period}: ${b} in the store, ${a} in the ledger`);
  }
  return out;
}
