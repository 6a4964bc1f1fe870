import { and, asc, count, desc, eq, gt, inArray, isNotNull, isNull, notInArray, or, type SQL, sql } from "drizzle-orm";
import type { AlertSink } from "../../platform/alerts.js";
import type { Actor } from "../../platform/audit.js";
import { afterCommit, type Db } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ChangeKind } from "../../platform/events.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, TMF_BASE, tmfRef } from "../../platform/tmf.js";
import { isId, newId } from "../../shared/ids.js";
import { amountToJsonNumber, Money } from "../../shared/money.js";
import { canTransition, type StateMachine, transitionRefusal } from "../../shared/state-machine.js";
import { SUSPENSION_REASONS, type SuspensionReason } from "../catalog/index.js";
import type { InventoryService } from "../inventory/index.js";
import type { LineOnNetwork, NetworkOperation, Provisioning } from "../provisioning/index.js";
import type { BoughtPrice, BoughtPromotion, BoughtTerm, Product as ProductRecord } from "./products.js";
import { oneTimeCharges, productHistory, products } from "./subscriptions.tables.js";

export const PRODUCT_PATH = `${TMF_BASE.productInventory}/product`;

export const PRODUCT_LIFECYCLE: StateMachine<string> = {
  created: ["pendingActive", "aborted"],
  pendingActive: ["active", "aborted"],
  active: ["suspended", "pendingTerminate"],
  suspended: ["active", "pendingTerminate"],
  pendingTerminate: ["terminated"],
  terminated: [],
  aborted: [],
};

/** One status change of a product, as billing reads a product's dated history. */
export interface ProductStatusChange {
  at: Date;
  fromStatus: string | null;
  toStatus: string;
  /** Why the product is suspended after this change; null unless toStatus is suspended. */
  suspensionReason: SuspensionReason | null;
}

export interface SubscriptionsDeps extends ServiceDeps {
  provisioning: Provisioning;
  inventory: InventoryService;
  /** Barring and unbarring a line for credit alert its subscriber (in the same transaction). */
  alerts: AlertSink;
}

/** Why a line may be barred on the network; each is set and lifted on its own. */
export const BARRING_REASONS = ["credit", "dunning", "fraud", "customerRequest"] as const;
export type BarringReason = (typeof BARRING_REASONS)[number];

export interface NewProduct {
  offeringId: string;
  offeringVersion: number;
  name: string;
  kind: "plan" | "addon";
  prices: BoughtPrice[];
  term: BoughtTerm | null;
  promotions?: BoughtPromotion[];
}

export interface NewLine {
  billingAccountId: string;
  customerId: string;
  currency: string;
  orderId: string;
  msisdn: string;
  iccid: string;
  plan: NewProduct;
  addons: NewProduct[];
}

export interface OneTimeCharge {
  productId: string;
  priceId: string;
  name: string;
  amount: string;
  currency: string;
  taxClass: string;
  /** Whether the amount includes tax (the price's term when ordered). */
  taxIncluded: boolean;
  offeringVersion: number;
}

/** The promotions a product got on one of its prices, as TMF637 price alterations (none: the field is left out). */
function promotionsOn(row: ProductRecord, priceId: string) {
  const alterations = row.promotions
    .filter((promotion) => promotion.priceIds.includes(priceId))
    .map((promotion) => ({
      name: promotion.name,
      priceType: "discount",
      applicationDuration: promotion.cycles,
      price:
        promotion.percentOff !== undefined
          ? { percentage: amountToJsonNumber(new Money(promotion.percentOff)) }
          : {
              dutyFreeAmount: { unit: row.currency, value: amountToJsonNumber(new Money(promotion.amountOff ?? "0")) },
            },
      productOfferingPrice: ref(
        `${TMF_BASE.catalog}/productOfferingPrice`,
        promotion.amountOff !== undefined ? `${promotion.id}.${row.currency.toLowerCase()}` : promotion.id,
        promotion.name,
        "ProductOfferingPrice",
      ),
    }));
  return alterations.length === 0 ? {} : { productPriceAlteration: alterations };
}

const ref = (path: string, id: string, name: string | undefined, referredType: string) =>
  tmfRef(path, id, referredType, name);

export function presentProduct(
  row: ProductRecord,
  history: Array<typeof productHistory.$inferSelect>,
  children: ProductRecord[],
) {
  return {
    id: row.id,
    href: `${PRODUCT_PATH}/${row.id}`,
    "@type": "Product" as const,
    name: row.name,
    status: row.status,
    isBundle: children.length > 0,
    startDate: (row.activatedAt ?? row.createdAt).toISOString(),
    ...(row.terminatedAt ? { terminationDate: row.terminatedAt.toISOString() } : {}),
    productOffering: {
      ...ref(`${TMF_BASE.catalog}/productOffering`, row.offeringId, undefined, "ProductOffering"),
      version: String(row.offeringVersion),
    },
    billingAccount: ref(`${TMF_BASE.account}/billingAccount`, row.billingAccountId, undefined, "BillingAccount"),
    relatedParty: [
      { ...ref(`${TMF_BASE.customer}/customer`, row.customerId, undefined, "Customer"), role: "customer" },
    ],
    productCharacteristic: [
      ...(row.msisdn ? [{ name: "msisdn", value: row.msisdn }] : []),
      ...(row.iccid ? [{ name: "iccid", value: row.iccid }] : []),
      ...(row.barringReasons.length > 0 ? [{ name: "barred", value: row.barringReasons.join(",") }] : []),
    ],
    productPrice: row.prices.map((price) => ({
      name: price.name,
      priceType: price.type,
      ...(price.period ? { recurringChargePeriod: price.period } : {}),
      price: { dutyFreeAmount: { unit: price.currency, value: amountToJsonNumber(new Money(price.amount)) } },
      productOfferingPrice: ref(
        `${TMF_BASE.catalog}/productOfferingPrice`,
        `${price.priceId}.${price.currency.toLowerCase()}`,
        undefined,
        "ProductOfferingPrice",
      ),
      ...promotionsOn(row, price.priceId),
    })),
    productTerm: row.term
      ? [
          {
            name: row.term.name,
            duration: { amount: row.term.months, units: "month" },
            validFor: { endDateTime: row.term.endsAt },
          },
        ]
      : [],
    productRelationship: [
      ...(row.parentId
        ? [{ relationshipType: "reliesOn", product: ref(PRODUCT_PATH, row.parentId, undefined, "Product") }]
        : []),
      ...children.map((child) => ({
        relationshipType: "bundles",
        product: ref(PRODUCT_PATH, child.id, child.name, "Product"),
      })),
    ],
    statusHistory: history.map((entry) => ({
      status: entry.toStatus,
      at: entry.at.toISOString(),
      reason: entry.reason,
      ...(entry.suspensionReason ? { suspensionReason: entry.suspensionReason } : {}),
      ...(entry.orderId ? { orderId: entry.orderId } : {}),
    })),
    orderId: row.orderId,
  };
}
export type Product = ReturnType<typeof presentProduct>;

/**
 * A line as guiding sees it (DESIGN.md §4, step 2): it holds its number and SIM from its creation until it
 * ends (terminated or aborted), so a CDR is guided by the line that held the number at the CDR's time.
 */
/**
 * A line as rating needs it: the plan product, its add-ons (all of them; rating checks their dates) and its
 * dated status changes, so rating knows the line's status at each event's time.
 */
export interface LineForRating {
  plan: ProductRecord;
  addons: ProductRecord[];
  history: Array<{ atMs: number; status: string }>;
}

export interface GuidingLine {
  productId: string;
  billingAccountId: string;
  msisdn: string;
  imsi: string | null;
  status: string;
  fromMs: number;
  /** When the line stopped holding the number; null while it still does. */
  toMs: number | null;
  /** Grows with every change of the line (its latest history row): an older snapshot never replaces a newer one. */
  version: number;
}

export type GuidingFilter =
  | { after: string | null; limit: number }
  | { productIds: readonly string[] }
  | { msisdns: readonly string[] }
  | { imsis: readonly string[] };

/**
 * Lines and their add-ons: the only place a product changes state. Orders, suspend/resume and (later)
 * collections and charging come through here; every change is a dated history row, an audit row and an event,
 * and changes a live line sees on the network are pushed there first.
 */
export class SubscriptionsService {
  private readonly lineListeners: Array<(productIds: string[]) => void> = [];
  /** The lines changed in each open transaction, told to the listeners when it commits. */
  private readonly changedLines = new WeakMap<Db, Set<string>>();

  constructor(private readonly deps: SubscriptionsDeps) {}

  /**
   * Called with the ids of plan products whose state changed (the line itself or one of its add-ons), once the
   * change is committed.
   */
  onLineChange(listener: (productIds: string[]) => void): void {
    this.lineListeners.push(listener);
  }

  /**
   * Tells the line listeners of a changed line once its transaction commits, once per line and transaction: a line
   * activated with its add-ons, or suspended with them, is one change for the listeners.
   */
  private lineChanged(tx: Db, lineId: string): void {
    const pending = this.changedLines.get(tx);
    if (pending !== undefined) {
      pending.add(lineId);
      return;
    }
    const lineIds = new Set([lineId]);
    this.changedLines.set(tx, lineIds);
    afterCommit(tx, () => {
      this.changedLines.delete(tx);
      for (const listener of this.lineListeners) listener([...lineIds]);
    });
  }

  /** Every product (line or add-on) of an account on an offering, whatever its status. */
  async productsOn(db: Db, billingAccountId: string, offeringId: string): Promise<ProductRecord[]> {
    if (!isId(billingAccountId)) return [];
    return db
      .select()
      .from(products)
      .where(and(eq(products.billingAccountId, billingAccountId), eq(products.offeringId, offeringId)))
      .orderBy(asc(products.id));
  }

  /**
   * Every product of an account — lines and add-ons, in every status, terminated and aborted ones included — in id
   * order: what billing composes an account's bill from.
   */
  async productsOfAccount(db: Db, billingAccountId: string): Promise<ProductRecord[]> {
    if (!isId(billingAccountId)) return [];
    return db.select().from(products).where(eq(products.billingAccountId, billingAccountId)).orderBy(asc(products.id));
  }

  /**
   * The dated status changes of products, each product's in the order they happened (by history row id), with the
   * reason of each suspension: the history billing prorates by. Every valid id asked for is a key (its list empty
   * when the product has no history, so unknown products too).
   */
  async historyOf(db: Db, productIds: readonly string[]): Promise<Map<string, ProductStatusChange[]>> {
    const wanted = [...new Set(productIds.filter(isId))];
    const answer = new Map<string, ProductStatusChange[]>(wanted.map((id) => [id, []]));
    if (wanted.length === 0) return answer;
    const rows = await db
      .select({
        productId: productHistory.productId,
        at: productHistory.at,
        fromStatus: productHistory.fromStatus,
        toStatus: productHistory.toStatus,
        suspensionReason: productHistory.suspensionReason,
      })
      .from(productHistory)
      .where(inArray(productHistory.productId, wanted))
      .orderBy(asc(productHistory.id));
    for (const { productId, suspensionReason, ...change } of rows) {
      answer.get(productId)?.push({ ...change, suspensionReason: suspensionReason as SuspensionReason | null });
    }
    return answer;
  }

  /** An account's one-time charges no invoice has billed yet, in the order they were recorded. */
  async unbilledCharges(db: Db, billingAccountId: string) {
    if (!isId(billingAccountId)) return [];
    return db
      .select()
      .from(oneTimeCharges)
      .where(and(eq(oneTimeCharges.billingAccountId, billingAccountId), isNull(oneTimeCharges.billedAt)))
      .orderBy(asc(oneTimeCharges.createdAt), asc(oneTimeCharges.id));
  }

  /**
   * When each account's last line ended: the latest termination of its lines when every line has ended, null when
   * one is still live (or it has none), by account id.
   */
  async lineEndings(db: Db, billingAccountIds: readonly string[]): Promise<Map<string, Date | null>> {
    const wanted = [...new Set(billingAccountIds.filter(isId))];
    const endings = new Map<string, Date | null>(wanted.map((id) => [id, null]));
    if (wanted.length === 0) return endings;
    const rows = await db
      .select({
        accountId: products.billingAccountId,
        live: sql<boolean>`bool_or(${products.status} not in ('terminated', 'aborted'))`,
        endedAt: sql<Date | string | null>`max(${products.terminatedAt})`,
      })
      .from(products)
      .where(and(inArray(products.billingAccountId, wanted), eq(products.kind, "plan")))
      .groupBy(products.billingAccountId);
    for (const row of rows) {
      endings.set(row.accountId, row.live || row.endedAt === null ? null : new Date(row.endedAt));
    }
    return endings;
  }

  /** Accounts whose every line has ended, the last before `before`, in id order after `afterId`. */
  async accountsEndedBefore(db: Db, before: Date, afterId: string, limit: number): Promise<string[]> {
    const rows = await db
      .select({ accountId: products.billingAccountId })
      .from(products)
      .where(and(eq(products.kind, "plan"), gt(products.billingAccountId, afterId)))
      .groupBy(products.billingAccountId)
      .having(
        and(
          sql`bool_and(${products.status} in ('terminated', 'aborted'))`,
          sql`max(${products.terminatedAt}) < ${before.toISOString()}::timestamptz`,
        ),
      )
      .orderBy(asc(products.billingAccountId))
      .limit(limit);
    return rows.map((row) => row.accountId);
  }

  /** Which of these one-time charges an invoice has billed already (a bill run checks its drafts are current). */
  async billedChargeIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
    const wanted = [...new Set(ids.filter(isId))];
    if (wanted.length === 0) return new Set();
    const rows = await db
      .select({ id: oneTimeCharges.id })
      .from(oneTimeCharges)
      .where(and(inArray(oneTimeCharges.id, wanted), isNotNull(oneTimeCharges.billedAt)));
    return new Set(rows.map((row) => row.id));
  }

  /**
   * Marks one-time charges billed by an invoice issued at `at` (with the caller's transaction); answers how many were
   * still unbilled. The invoice line that bills each is the link; this mark keeps them out of the next one.
   */
  async markChargesBilled(db: Db, ids: readonly string[], at: Date): Promise<number> {
    if (ids.length === 0) return 0;
    const rows = await db
      .update(oneTimeCharges)
      .set({ billedAt: at })
      .where(and(inArray(oneTimeCharges.id, [...ids]), isNull(oneTimeCharges.billedAt)))
      .returning({ id: oneTimeCharges.id });
    return rows.length;
  }

  /** Accounts that have lines (plan products, in any status), in id order after `afterId`: for paging through them. */
  async accountsWithLines(db: Db, afterId: string, limit: number): Promise<string[]> {
    const rows = await db
      .selectDistinct({ id: products.billingAccountId })
      .from(products)
      .where(and(eq(products.kind, "plan"), gt(products.billingAccountId, afterId)))
      .orderBy(asc(products.billingAccountId))
      .limit(limit);
    return rows.map((row) => row.id);
  }

  /** The ids of an account's lines that reached the network (neither aborted nor still being created), in id order. */
  async lineIdsOnNetwork(db: Db, billingAccountId: string): Promise<string[]> {
    return (await this.lineIdsOnNetworkOf(db, [billingAccountId])).get(billingAccountId) ?? [];
  }

  /** `lineIdsOnNetwork` for many accounts in one statement: each account's line ids in id order (absent: none). */
  async lineIdsOnNetworkOf(db: Db, billingAccountIds: readonly string[]): Promise<Map<string, string[]>> {
    const accounts = [...new Set(billingAccountIds.filter(isId))];
    const answer = new Map<string, string[]>();
    if (accounts.length === 0) return answer;
    const rows = await db
      .select({ id: products.id, accountId: products.billingAccountId })
      .from(products)
      .where(
        and(
          inArray(products.billingAccountId, accounts),
          eq(products.kind, "plan"),
          notInArray(products.status, ["aborted", "created", "pendingActive"]),
        ),
      )
      .orderBy(asc(products.id));
    for (const row of rows) answer.set(row.accountId, [...(answer.get(row.accountId) ?? []), row.id]);
    return answer;
  }

  /**
   * Which of these products are active, and which of these accounts have an active product on which offering
   * (keys `account|offering`): what allowance renewal asks before giving a holder its next period.
   */
  async activeAmong(
    db: Db,
    productIds: readonly string[],
    accountIds: readonly string[],
  ): Promise<{ products: Set<string>; accountOfferings: Set<string> }> {
    const ids = productIds.filter(isId);
    const accounts = accountIds.filter(isId);
    const answer = { products: new Set<string>(), accountOfferings: new Set<string>() };
    if (ids.length === 0 && accounts.length === 0) return answer;
    const rows = await db
      .select({ id: products.id, accountId: products.billingAccountId, offeringId: products.offeringId })
      .from(products)
      .where(
        and(
          eq(products.status, "active"),
          or(
            ids.length > 0 ? inArray(products.id, ids) : undefined,
            accounts.length > 0 ? inArray(products.billingAccountId, accounts) : undefined,
          ),
        ),
      );
    for (const row of rows) {
      answer.products.add(row.id);
      answer.accountOfferings.add(`${row.accountId}|${row.offeringId}`);
    }
    return answer;
  }

  /**
   * Why an account may not close, or null: its lines that have not ended (neither terminated nor aborted), by
   * number, which an agent ends first with a disconnect order.
   */
  async refuseAccountClose(db: Db, billingAccountId: string): Promise<string | null> {
    const lines = await this.accountLines(db, billingAccountId, notInArray(products.status, ["terminated", "aborted"]));
    if (lines.length === 0) return null;
    const listed = lines.map((line) => `${line.id} (${line.msisdn ?? "no number yet"}, ${line.status})`).join(", ");
    return `it has lines that have not ended: ${listed}; disconnect them first (productOrder with action delete)`;
  }

  /** The live lines (plan products, active or suspended) of an account. */
  async liveLines(db: Db, billingAccountId: string): Promise<ProductRecord[]> {
    return this.accountLines(db, billingAccountId, inArray(products.status, ["active", "suspended"]));
  }

  /** An account's lines (plan products) in the statuses `status` admits, in id order. */
  private async accountLines(db: Db, billingAccountId: string, status: SQL): Promise<ProductRecord[]> {
    if (!isId(billingAccountId)) return [];
    return db
      .select()
      .from(products)
      .where(and(eq(products.billingAccountId, billingAccountId), eq(products.kind, "plan"), status))
      .orderBy(asc(products.id));
  }

  /**
   * Sets or lifts one reason a live line is barred for (DESIGN.md §10 "Barring has reasons": credit, dunning, fraud,
   * customer request). The network is barred when the first reason is set and unbarred only when the last is
   * lifted, first, before the line records the change with a dated history row; lifting one reason never lifts
   * another. Answers whether anything changed.
   */
  async setBarring(actor: Actor, productId: string, reason: BarringReason, on: boolean, why: string): Promise<boolean> {
    const db = this.deps.database.db;
    const current = await this.find(db, productId);
    if (current?.kind !== "plan" || current.barringReasons.includes(reason) === on) return false;
    if (current.status !== "active" && current.status !== "suspended") return false;
    const network = (before: readonly string[]) => {
      const after = on ? [...before, reason] : before.filter((entry) => entry !== reason);
      return before.length === 0 && after.length > 0 ? "bar" : before.length > 0 && after.length === 0 ? "unbar" : null;
    };
    const operation = network(current.barringReasons);
    if (operation !== null) await this.push(operation, await this.lineOnNetwork(db, current));
    return this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, productId, true);
      if (!row || row.barringReasons.includes(reason) === on) return false;
      const reasons = on
        ? [...row.barringReasons, reason].sort()
        : row.barringReasons.filter((entry) => entry !== reason);
      await this.change(
        tx,
        actor,
        row,
        () => ({ barringReasons: reasons }),
        { toStatus: row.status, reason: why, orderId: null },
        {
          action: on ? "bar" : "unbar",
          change: "AttributeValueChange",
          before: { barringReasons: row.barringReasons },
        },
      );
      // The subscriber hears when the line stops or starts working, once per change (the row is locked).
      if (operation !== null) {
        const barred = operation === "bar";
        await this.deps.alerts.record(tx, [
          {
            dedupeKey: `${barred ? "line-barred" : "line-unbarred"}:${row.id}:${newId(this.deps.clock.now().getTime())}`,
            kind: barred ? "lineBarred" : "lineUnbarred",
            billingAccountId: row.billingAccountId,
            productId: row.id,
            message: barred ? `Your line ${row.name} is ${why}.` : `Your line ${row.name} works again (${why}).`,
          },
        ]);
      }
      return true;
    });
  }

  /** Accounts with a live line barred for a reason, in id order (the credit barring review pages through them). */
  async accountsWithBarring(db: Db, reason: BarringReason): Promise<string[]> {
    const rows = await db
      .selectDistinct({ id: products.billingAccountId })
      .from(products)
      .where(
        and(
          eq(products.kind, "plan"),
          inArray(products.status, ["active", "suspended"]),
          sql`${reason} = any(${products.barringReasons})`,
        ),
      )
      .orderBy(asc(products.billingAccountId));
    return rows.map((row) => row.id);
  }

  /** A line as rating needs it (see LineForRating). */
  async lineForRating(db: Db, productId: string): Promise<LineForRating | undefined> {
    return (await this.linesForRating(db, [productId])).get(productId);
  }

  /** Lines as rating needs them, many at once (a rating batch's), in three statements; unknown ids are absent. */
  async linesForRating(db: Db, productIds: readonly string[]): Promise<Map<string, LineForRating>> {
    const wanted = [...new Set(productIds.filter(isId))];
    const out = new Map<string, LineForRating>();
    if (wanted.length === 0) return out;
    const [plans, addons, history] = await Promise.all([
      db
        .select()
        .from(products)
        .where(and(inArray(products.id, wanted), eq(products.kind, "plan"))),
      db.select().from(products).where(inArray(products.parentId, wanted)).orderBy(asc(products.id)),
      db
        .select({ productId: productHistory.productId, at: productHistory.at, status: productHistory.toStatus })
        .from(productHistory)
        .where(inArray(productHistory.productId, wanted))
        .orderBy(asc(productHistory.id)),
    ]);
    for (const plan of plans) out.set(plan.id, { plan, addons: [], history: [] });
    for (const addon of addons) out.get(addon.parentId ?? "")?.addons.push(addon);
    for (const entry of history) {
      out.get(entry.productId)?.history.push({ atMs: entry.at.getTime(), status: entry.status });
    }
    return out;
  }

  /** Lines for the guiding index: a page of all of them by id, or those holding given ids, numbers or IMSIs. */
  async guidingLines(db: Db, filter: GuidingFilter): Promise<GuidingLine[]> {
    let where: SQL | undefined;
    let limit: number | undefined;
    if ("after" in filter) {
      where = filter.after === null ? undefined : gt(products.id, filter.after);
      limit = filter.limit;
    } else if ("productIds" in filter) {
      where = inArray(products.id, filter.productIds.filter(isId) as string[]);
    } else if ("msisdns" in filter) {
      where = inArray(products.msisdn, filter.msisdns as string[]);
    } else {
      const sims = await this.deps.inventory.simIdentities(db, "imsi", filter.imsis);
      where = inArray(
        products.iccid,
        sims.map((sim) => sim.iccid),
      );
    }
    const query = db
      .select({
        row: products,
        // Qualified by hand: drizzle prints a bare "id" here, which would name the history row's own id.
        version: sql<string>`(select coalesce(max(h.id), 0) from product_history h where h.product_id = "products"."id")`,
      })
      .from(products)
      .where(and(eq(products.kind, "plan"), where))
      .orderBy(asc(products.id));
    const selected = limit === undefined ? await query : await query.limit(limit);
    const rows = selected.map((item) => item.row);
    if (rows.length === 0) return [];
    const imsis = new Map(
      (
        await this.deps.inventory.simIdentities(
          db,
          "iccid",
          rows.map((row) => row.iccid ?? ""),
        )
      ).map((sim) => [sim.iccid, sim.imsi]),
    );
    return selected.map(({ row, version }) => ({
      version: Number(version),
      productId: row.id,
      billingAccountId: row.billingAccountId,
      msisdn: row.msisdn ?? "",
      imsi: imsis.get(row.iccid ?? "") ?? null,
      status: row.status,
      fromMs: row.createdAt.getTime(),
      toMs: row.terminatedAt?.getTime() ?? null,
    }));
  }

  private async presentRows(db: Db, rows: ProductRecord[]): Promise<Product[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((row) => row.id);
    const [history, children] = await Promise.all([
      db.select().from(productHistory).where(inArray(productHistory.productId, ids)).orderBy(asc(productHistory.id)),
      db.select().from(products).where(inArray(products.parentId, ids)).orderBy(asc(products.id)),
    ]);
    return rows.map((row) =>
      presentProduct(
        row,
        history.filter((entry) => entry.productId === row.id),
        children.filter((child) => child.parentId === row.id),
      ),
    );
  }

  async list(actor: Actor, request: ListRequest): Promise<{ items: Product[]; total: number }> {
    const db = this.deps.database.db;
    const scope = actor.role === "subscriber" ? eq(products.billingAccountId, actor.billingAccountId ?? "") : undefined;
    const where = listFilters(
      {
        id: products.id,
        status: products.status,
        name: products.name,
        "billingAccount.id": products.billingAccountId,
        "productOffering.id": products.offeringId,
        msisdn: products.msisdn,
      },
      request,
      [scope],
    );
    const [rows, counted] = await Promise.all([
      db.select().from(products).where(where).orderBy(asc(products.id)).offset(request.offset).limit(request.limit),
      db.select({ total: count() }).from(products).where(where),
    ]);
    return { items: await this.presentRows(db, rows), total: counted[0]?.total ?? 0 };
  }

  async find(db: Db, id: string, lock = false): Promise<ProductRecord | undefined> {
    if (!isId(id)) return undefined;
    const query = db.select().from(products).where(eq(products.id, id));
    const [row] = lock ? await query.for("update") : await query;
    return row;
  }

  async get(actor: Actor, id: string): Promise<Product> {
    const db = this.deps.database.db;
    const row = await this.find(db, id);
    if (!row || (actor.role === "subscriber" && actor.billingAccountId !== row.billingAccountId))
      throw notFound("product", id);
    const [product] = await this.presentRows(db, [row]);
    return product as Product;
  }

  private async move(
    tx: Db,
    actor: Actor,
    row: ProductRecord,
    to: string,
    reason: string,
    orderId: string | null,
    suspensionReason: SuspensionReason | null = null,
  ): Promise<ProductRecord> {
    if (!canTransition(PRODUCT_LIFECYCLE, row.status, to)) {
      throw new AppError(
        "conflict",
        "illegal_transition",
        transitionRefusal(PRODUCT_LIFECYCLE, "product", row.status, to),
      );
    }
    return this.change(
      tx,
      actor,
      row,
      (now) => ({
        status: to,
        // Activation starts the first cycle of the promotions the order gave the product.
        ...(to === "active" && row.activatedAt === null
          ? {
              activatedAt: now,
              promotions: row.promotions.map((promotion) =>
                promotion.firstCycleFrom === null ? { ...promotion, firstCycleFrom: now.toISOString() } : promotion,
              ),
            }
          : {}),
        ...(to === "terminated" || to === "aborted" ? { terminatedAt: now } : {}),
      }),
      { toStatus: to, reason, orderId, suspensionReason },
      { action: "update", change: "StateChange" },
    );
  }

  /**
   * One change of a product, recorded the one way every change is: the row, a dated history row, the line
   * listeners after commit, an audit row and an event. A change that leaves the product suspended records why: the
   * reason given (a suspension), or the reason of the suspension it stays in (barring a suspended line).
   */
  private async change(
    tx: Db,
    actor: Actor,
    row: ProductRecord,
    values: (now: Date) => Partial<typeof products.$inferInsert>,
    history: { toStatus: string; reason: string; orderId: string | null; suspensionReason?: SuspensionReason | null },
    record: { action: string; change: ChangeKind; before?: object },
  ): Promise<ProductRecord> {
    const suspensionReason =
      history.toStatus !== "suspended"
        ? null
        : (history.suspensionReason ?? (row.status === "suspended" ? await this.suspensionReasonOf(tx, row.id) : null));
    if (history.toStatus === "suspended" && suspensionReason === null) {
      throw new Error(`product ${row.id}: a suspension must say why (one of ${SUSPENSION_REASONS.join(", ")})`);
    }
    const now = this.deps.clock.now();
    const [updated] = await tx
      .update(products)
      .set({ ...values(now), updatedAt: now })
      .where(eq(products.id, row.id))
      .returning();
    await tx.insert(productHistory).values({
      productId: row.id,
      at: now,
      fromStatus: row.status,
      toStatus: history.toStatus,
      reason: history.reason,
      orderId: history.orderId,
      suspensionReason,
    });
    // An add-on's change is a change of its line as rating sees it (its allowances, its dates).
    const lineId = row.kind === "plan" ? row.id : row.parentId;
    if (lineId !== null) this.lineChanged(tx, lineId);
    const [presented] = await this.presentRows(tx, [updated as ProductRecord]);
    await this.deps.audit.record(tx, actor, {
      action: record.action,
      entityType: "product",
      entityId: row.id,
      ...(record.before === undefined ? {} : { before: record.before }),
      after: presented,
    });
    await this.deps.events.record(tx, {
      api: "productInventory",
      resource: "product",
      change: record.change,
      resourceId: row.id,
      body: presented,
    });
    return updated as ProductRecord;
  }

  /** Why a suspended product is suspended: the reason its latest suspension row recorded. */
  private async suspensionReasonOf(tx: Db, productId: string): Promise<SuspensionReason | null> {
    const [row] = await tx
      .select({ reason: productHistory.suspensionReason })
      .from(productHistory)
      .where(and(eq(productHistory.productId, productId), isNotNull(productHistory.suspensionReason)))
      .orderBy(desc(productHistory.id))
      .limit(1);
    return (row?.reason as SuspensionReason | undefined) ?? null;
  }

  /** A new line (plan and add-ons) created and moved to pendingActive, holding nothing on the network yet. */
  async createPending(tx: Db, actor: Actor, line: NewLine): Promise<{ plan: ProductRecord; addons: ProductRecord[] }> {
    const owner = {
      billingAccountId: line.billingAccountId,
      customerId: line.customerId,
      currency: line.currency,
      orderId: line.orderId,
    };
    const plan = await this.insertPending(tx, actor, owner, line.plan, {
      parentId: null,
      msisdn: line.msisdn,
      iccid: line.iccid,
    });
    const addons: ProductRecord[] = [];
    for (const addon of line.addons)
      addons.push(await this.insertPending(tx, actor, owner, addon, { parentId: plan.id }));
    return { plan, addons };
  }

  /**
   * An add-on for a line the account already has, created and moved to pendingActive under it (the caller's
   * transaction). The line is locked and must be this account's, active, and not already have the add-on's offering
   * (created, pending, active or suspended): two orders for the same add-on on one line meet at the lock, and the
   * second is refused. The catalog has no add-on that may be held twice on a line.
   */
  async createPendingAddon(
    tx: Db,
    actor: Actor,
    request: { lineId: string; billingAccountId: string; orderId: string; addon: NewProduct },
  ): Promise<ProductRecord> {
    const line = await this.find(tx, request.lineId, true);
    if (!line || line.billingAccountId !== request.billingAccountId)
      throw new AppError("unprocessable", "unknown_product", `product ${request.lineId} is not on this account`);
    const refusal = this.refuseAddon(line, request.addon.offeringId, await this.addonsOf(tx, line.id));
    if (refusal !== null) throw new AppError("conflict", refusal.code, refusal.reason);
    return this.insertPending(
      tx,
      actor,
      {
        billingAccountId: line.billingAccountId,
        customerId: line.customerId,
        currency: line.currency,
        orderId: request.orderId,
      },
      request.addon,
      { parentId: line.id },
    );
  }

  /**
   * Why an add-on on an offering may not be added to a product now, or null: the product must be a line (a plan),
   * active (a suspended line is resumed first; an ended one takes nothing), and hold no add-on of that offering that
   * has not ended. `addons` are the line's add-ons (addonsOf).
   */
  refuseAddon(
    line: ProductRecord,
    offeringId: string,
    addons: readonly ProductRecord[],
  ): { code: "not_a_line" | "line_not_active" | "addon_already_active"; reason: string } | null {
    if (line.kind !== "plan")
      return { code: "not_a_line", reason: `product ${line.id} is an add-on; add to its line ${line.parentId ?? ""}` };
    if (line.status !== "active") {
      const next = line.status === "suspended" ? "; resume it first" : "";
      return {
        code: "line_not_active",
        reason: `line ${line.id} is ${line.status}; add-ons are added to active lines${next}`,
      };
    }
    const held = addons.find(
      (addon) =>
        addon.offeringId === offeringId && !["pendingTerminate", "terminated", "aborted"].includes(addon.status),
    );
    if (held !== undefined)
      return {
        code: "addon_already_active",
        reason: `line ${line.id} already has ${offeringId} (product ${held.id}, ${held.status})`,
      };
    return null;
  }

  /** A line's add-ons, in every status, in id order. */
  async addonsOf(db: Db, lineId: string): Promise<ProductRecord[]> {
    if (!isId(lineId)) return [];
    return db.select().from(products).where(eq(products.parentId, lineId)).orderBy(asc(products.id));
  }

  /** One product created (history, audit, event) and moved to pendingActive: a new line's plan or an add-on. */
  private async insertPending(
    tx: Db,
    actor: Actor,
    owner: { billingAccountId: string; customerId: string; currency: string; orderId: string },
    product: NewProduct,
    place: { parentId: string | null; msisdn?: string; iccid?: string },
  ): Promise<ProductRecord> {
    const now = this.deps.clock.now();
    const [row] = await tx
      .insert(products)
      .values({
        id: newId(now.getTime()),
        billingAccountId: owner.billingAccountId,
        customerId: owner.customerId,
        offeringId: product.offeringId,
        offeringVersion: product.offeringVersion,
        name: product.name,
        kind: product.kind,
        parentId: place.parentId,
        status: "created",
        msisdn: product.kind === "plan" ? (place.msisdn ?? null) : null,
        iccid: product.kind === "plan" ? (place.iccid ?? null) : null,
        currency: owner.currency,
        prices: product.prices,
        term: product.term,
        promotions: product.promotions ?? [],
        orderId: owner.orderId,
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    const created = row as ProductRecord;
    await tx.insert(productHistory).values({
      productId: created.id,
      at: now,
      fromStatus: null,
      toStatus: "created",
      reason: "ordered",
      orderId: owner.orderId,
    });
    const [presented] = await this.presentRows(tx, [created]);
    await this.deps.audit.record(tx, actor, {
      action: "create",
      entityType: "product",
      entityId: created.id,
      after: presented,
    });
    await this.deps.events.record(tx, {
      api: "productInventory",
      resource: "product",
      change: "Create",
      resourceId: created.id,
      body: presented,
    });
    return this.move(tx, actor, created, "pendingActive", "awaiting activation", owner.orderId);
  }

  /**
   * Activates products of an order (a new line's plan before its add-ons). An add-on activates only under an active
   * line: a line suspended or ended while its add-on waited refuses it, and the order undoes the add-on.
   */
  async activate(tx: Db, actor: Actor, productIds: string[], orderId: string): Promise<void> {
    for (const id of productIds) {
      const parentId = (await this.find(tx, id))?.parentId ?? null;
      // The line is locked before its add-on, in the order suspension and termination lock them.
      if (parentId !== null) {
        const line = await this.find(tx, parentId, true);
        if (line?.status !== "active") {
          throw new AppError(
            "conflict",
            "line_not_active",
            `line ${parentId} is ${line?.status ?? "gone"}; the add-on ${id} was not activated`,
          );
        }
      }
      const row = await this.find(tx, id, true);
      if (!row) continue;
      // An add-on to a line that was live already reaches nothing on the network: the line carries it.
      const reason =
        parentId !== null && !productIds.includes(parentId) ? "added to its active line" : "activated on the network";
      await this.move(tx, actor, row, "active", reason, orderId);
    }
  }

  /** Undo for a line whose order failed or was cancelled before it went live. */
  async abort(tx: Db, actor: Actor, productIds: string[], reason: string, orderId: string): Promise<void> {
    for (const id of productIds) {
      const row = await this.find(tx, id, true);
      if (row && (row.status === "created" || row.status === "pendingActive"))
        await this.move(tx, actor, row, "aborted", reason, orderId);
    }
  }

  async recordCharges(tx: Db, billingAccountId: string, orderId: string, charges: OneTimeCharge[]): Promise<void> {
    await this.recordSourcedCharges(tx, billingAccountId, { source: "order", id: orderId, orderId }, charges);
  }

  /**
   * One-time charges from a source (an order's fees; a fee for a service: a reversed payment, a reconnection), billed
   * on the account's next invoice; each exists once per source, product and price (a retry records nothing twice).
   */
  async recordSourcedCharges(
    tx: Db,
    billingAccountId: string,
    from: { source: "order" | "fee" | "reconnection" | "reversal" | "termination"; id: string; orderId?: string },
    charges: Array<
      Omit<OneTimeCharge, "productId" | "offeringVersion"> & {
        productId: string | null;
        offeringVersion: number | null;
      }
    >,
  ): Promise<void> {
    if (charges.length === 0) return;
    const now = this.deps.clock.now();
    await tx
      .insert(oneTimeCharges)
      .values(
        charges.map((charge) => ({
          id: newId(now.getTime()),
          source: from.source,
          sourceId: from.id,
          productId: charge.productId,
          billingAccountId,
          orderId: from.orderId ?? null,
          priceId: charge.priceId,
          name: charge.name,
          amount: new Money(charge.amount),
          currency: charge.currency,
          taxClass: charge.taxClass,
          taxIncluded: charge.taxIncluded,
          offeringVersion: charge.offeringVersion,
          createdAt: now,
        })),
      )
      .onConflictDoNothing();
  }

  async lineOnNetwork(db: Db, row: ProductRecord): Promise<LineOnNetwork> {
    const sim = await this.deps.inventory.findByValue(db, "SIMCard", row.iccid ?? "");
    return { productId: row.id, msisdn: row.msisdn ?? "", iccid: row.iccid ?? "", imsi: sim?.imsi ?? "" };
  }

  /**
   * Suspend or resume a line (PATCH status): the network first, then the product and its add-ons. If the
   * network does not confirm, nothing changes and the caller hears why. A suspension records its reason: a
   * customer's request unless the caller (collections, later) says otherwise.
   */
  async changeStatus(
    actor: Actor,
    id: string,
    to: string,
    suspensionReason: SuspensionReason = "customerRequest",
  ): Promise<Product> {
    const db = this.deps.database.db;
    const current = await this.find(db, id);
    if (!current || (actor.role === "subscriber" && actor.billingAccountId !== current.billingAccountId))
      throw notFound("product", id);
    if (current.kind !== "plan")
      throw new AppError("conflict", "illegal_transition", "an add-on follows its line; change the line's status");
    const operations: Record<string, NetworkOperation> = { suspended: "suspend", active: "resume" };
    const operation = operations[to];
    // Only a live line is suspended or resumed here; activation belongs to its order.
    const from = to === "suspended" ? "active" : "suspended";
    if (operation === undefined || current.status !== from) {
      throw new AppError(
        "conflict",
        "illegal_transition",
        operation === undefined
          ? `status: only suspended and active can be set here; lines end through a delete order`
          : transitionRefusal(PRODUCT_LIFECYCLE, "product", current.status, to),
      );
    }
    const changeId = newId(this.deps.clock.now().getTime());
    await this.push(operation, { ...(await this.lineOnNetwork(db, current)), changeId });
    await this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, id, true);
      if (!row || row.status !== current.status)
        throw new AppError("conflict", "concurrent_change", "the line changed meanwhile; retry");
      const reason =
        to !== "suspended"
          ? "resumed on request"
          : suspensionReason === "customerRequest"
            ? "suspended on request"
            : `suspended (${suspensionReason})`;
      const why = to === "suspended" ? suspensionReason : null;
      await this.move(tx, actor, row, to, reason, null, why);
      const children = await tx
        .select()
        .from(products)
        .where(and(eq(products.parentId, id), eq(products.status, row.status)));
      for (const child of children) await this.move(tx, actor, child, to, reason, null, why);
    });
    return this.get(actor, id);
  }

  /** Ends a line (delete order): network first, then the products; the number rests in quarantine, the SIM retires. */
  async terminate(actor: Actor, id: string, orderId: string): Promise<void> {
    const db = this.deps.database.db;
    const current = await this.find(db, id);
    if (!current) throw notFound("product", id);
    await this.push("terminate", await this.lineOnNetwork(db, current));
    await this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, id, true);
      if (!row) throw notFound("product", id);
      const family = [row, ...(await tx.select().from(products).where(eq(products.parentId, id)))].filter(
        (product) => product.status === "active" || product.status === "suspended",
      );
      for (const product of family) {
        const ending = await this.move(tx, actor, product, "pendingTerminate", "disconnect ordered", orderId);
        await this.move(tx, actor, ending, "terminated", "disconnected on the network", orderId);
      }
      await this.deps.inventory.releaseFromHolder(tx, actor, "MSISDN", row.msisdn ?? "", row.id);
      await this.deps.inventory.releaseFromHolder(tx, actor, "SIMCard", row.iccid ?? "", row.id);
    });
  }

  async push(operation: NetworkOperation, line: LineOnNetwork): Promise<void> {
    try {
      await this.deps.provisioning.apply(operation, line);
    } catch (error) {
      throw new AppError(
        "unavailable",
        "network_unavailable",
        `the network did not confirm ${operation}: ${error instanceof Error ? error.message : "failed"}`,
      );
    }
  }
}
