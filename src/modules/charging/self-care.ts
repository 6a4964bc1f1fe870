import { sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { AlertFields, type AlertSink } from "../../platform/alerts.js";
import type { Actor } from "../../platform/audit.js";
import { actorOf } from "../../platform/auth.js";
import type { Clock } from "../../platform/clock.js";
import type { Database } from "../../platform/database.js";
import { queryRows } from "../../platform/database.js";
import { notFound } from "../../platform/errors.js";
import { errorResponses, IdParamsSchema, TMF_BASE, tmfRef } from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { cyclePeriod } from "../../shared/calendar.js";
import { isId } from "../../shared/ids.js";
import { SELF_CARE_RECENT } from "../../shared/limits.js";
import { fromMicro, type Money } from "../../shared/money.js";
import type { CustomerServices } from "../customers/index.js";
import type { BalancesService } from "./balances.service.js";
import type { ChargingStore } from "./store/charging-store.js";

export interface SelfCareDeps {
  database: Database;
  clock: Clock;
  store: ChargingStore;
  customers: CustomerServices;
  balances: BalancesService;
  alerts: AlertSink;
}

const amount = (value: Money, units: string) => ({ amount: value.toFixed(), units });

/**
 * What a subscriber sees of its own account (DESIGN.md §1, subscribers): its balance or spend to date with the
 * limits, its allowances (used, remaining, reset date), its latest rated usage and alerts; nothing else. Staff
 * see the same for any account, to help a subscriber on the phone. Another account is a 404 for a subscriber.
 */
export class SelfCareService {
  constructor(private readonly deps: SelfCareDeps) {}

  async summary(actor: Actor, accountId: string) {
    const db = this.deps.database.db;
    const profile = isId(accountId) ? await this.deps.customers.chargingProfile(db, accountId) : undefined;
    if (!profile || (actor.role === "subscriber" && actor.billingAccountId !== accountId)) {
      throw notFound("billingAccount", accountId);
    }
    const nowMs = this.deps.clock.now().getTime();
    const [state, usage, alerts] = await Promise.all([
      this.deps.store.read(accountId),
      queryRows<{
        usage_id: string;
        product_id: string;
        started_at: Date | string;
        record_type: string;
        destination: string | null;
        roaming: string | null;
        quantity: string;
        allowance_units: string;
        amount: string;
        currency: string;
      }>(
        db,
        sql`select usage_id, product_id, started_at, record_type, destination, roaming, quantity::text as quantity,
              allowance_units::text as allowance_units, amount::text as amount, currency
            from rated_usage where billing_account_id = ${accountId}
            order by started_at desc, usage_id desc limit ${SELF_CARE_RECENT}`,
      ),
      this.deps.alerts.recent(accountId, SELF_CARE_RECENT),
    ]);
    const allowances = await this.deps.balances.allowances(accountId, state);
    const currency = profile.currency;
    const period = cyclePeriod(nowMs, profile.cycle);
    const lines = [...state.lines.values()];
    const balance =
      profile.accountType === "prepaid"
        ? {
            balance: amount(fromMicro(lines.reduce((sum, line) => sum + (line.balance ?? 0n), 0n)), currency),
            lines: lines
              .filter((line) => line.balance !== null)
              .map((line) => ({
                product: tmfRef(`${TMF_BASE.productInventory}/product`, line.productId, "Product"),
                balance: amount(fromMicro(line.balance as bigint), currency),
              })),
          }
        : {
            spendToDate: amount(fromMicro(state.spend.get(period.key) ?? 0n), currency),
            period: {
              startDateTime: new Date(period.startMs).toISOString(),
              endDateTime: new Date(period.endMs).toISOString(),
            },
            ...(profile.creditLimit === null ? {} : { creditLimit: amount(profile.creditLimit, currency) }),
            ...(profile.billLimit === null ? {} : { billLimit: amount(profile.billLimit, currency) }),
          };
    return {
      billingAccount: tmfRef(`${TMF_BASE.account}/billingAccount`, accountId, "BillingAccount"),
      accountType: profile.accountType,
      currency,
      ...balance,
      allowances: allowances
        .filter((allowance) => allowance.status === "active")
        .map(({ bucket, name, unit, granted, used }) => ({
          id: bucket.id,
          name,
          usageType: bucket.service,
          units: unit,
          granted,
          used,
          remaining: granted - used,
          resetDate: bucket.periodEnd.toISOString(),
          isShared: bucket.shared,
          ...(bucket.shared
            ? {}
            : { product: tmfRef(`${TMF_BASE.productInventory}/product`, bucket.productId, "Product") }),
        })),
      recentUsage: usage.map((row) => ({
        usage: tmfRef(`${TMF_BASE.usage}/usage`, row.usage_id, "Usage"),
        product: tmfRef(`${TMF_BASE.productInventory}/product`, row.product_id, "Product"),
        date: new Date(row.started_at).toISOString(),
        usageType: row.record_type,
        ...(row.destination === null ? {} : { destination: row.destination }),
        ...(row.roaming === null ? {} : { roaming: row.roaming }),
        quantity: Number(row.quantity),
        allowanceUnits: Number(row.allowance_units),
        charge: { amount: row.amount, units: row.currency },
      })),
      alerts,
    };
  }
}

const Text = Type.String();
const Ref = Type.Object({ id: Text, href: Text, "@referredType": Text });
const Amount = Type.Object({ amount: Text, units: Text });
const SelfCareSchema = Type.Object({
  billingAccount: Ref,
  accountType: Text,
  currency: Text,
  balance: Type.Optional(Amount),
  lines: Type.Optional(Type.Array(Type.Object({ product: Ref, balance: Amount }))),
  spendToDate: Type.Optional(Amount),
  period: Type.Optional(Type.Object({ startDateTime: Text, endDateTime: Text })),
  creditLimit: Type.Optional(Amount),
  billLimit: Type.Optional(Amount),
  allowances: Type.Array(
    Type.Object({
      id: Text,
      name: Text,
      usageType: Text,
      units: Text,
      granted: Type.Integer(),
      used: Type.Integer(),
      remaining: Type.Integer(),
      resetDate: Text,
      isShared: Type.Boolean(),
      product: Type.Optional(Ref),
    }),
  ),
  recentUsage: Type.Array(
    Type.Object({
      usage: Ref,
      product: Ref,
      date: Text,
      usageType: Text,
      destination: Type.Optional(Text),
      roaming: Type.Optional(Text),
      quantity: Type.Integer(),
      allowanceUnits: Type.Integer(),
      charge: Amount,
    }),
  ),
  alerts: Type.Array(Type.Object(AlertFields)),
});

export function selfCareRoutes(selfCare: SelfCareService) {
  return async (instance: FastifyInstance) => {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.get(
      "/api/v1/self-care/:id",
      {
        config: { roles: ["subscriber", "admin", "crm", "finance"] },
        schema: {
          tags: ["alerts"],
          summary:
            "A billing account as its subscriber sees it: balance or spend to date with limits, allowances (used, remaining, reset date), latest usage and alerts",
          params: IdParamsSchema,
          response: { 200: SelfCareSchema, ...errorResponses(404) },
        },
      },
      async (request) => selfCare.summary(actorOf(request), request.params.id),
    );
  };
}
