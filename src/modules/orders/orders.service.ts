import { and, asc, count, eq, inArray, lte, type SQL } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { Actor } from "../../platform/audit.js";
import type { Db } from "../../platform/database.js";
import { sqlState } from "../../platform/error-handler.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import { requestHash as hashOf, type ListRequest, TMF_BASE } from "../../platform/tmf.js";
import { addMonthsUtc } from "../../shared/calendar.js";
import { isId, newId } from "../../shared/ids.js";
import { ORDER_RECOVERY_AFTER_SECONDS } from "../../shared/limits.js";
import {
  type CatalogService,
  type CatalogSnapshot,
  type Offering,
  type Promotion,
  priceTerms,
} from "../catalog/index.js";
import type { CustomerServices } from "../customers/index.js";
import type { InventoryService } from "../inventory/index.js";
import type { MessagesService } from "../notifications/index.js";
import type { BoughtPrice, BoughtPromotion, BoughtTerm } from "../subscriptions/index.js";
import { type OneTimeCharge, PRODUCT_PATH, type SubscriptionsService } from "../subscriptions/index.js";
import type { ProductOrder, ProductOrderCreate } from "./orders.schemas.js";
import {
  cancelProductOrders,
  type OrderItemRecord,
  type ProductOrderRow,
  productOrders,
  type RejectionReason,
  type SagaProgress,
} from "./orders.tables.js";

export const ORDER_PATH = `${TMF_BASE.ordering}/productOrder`;
export const CANCEL_PATH = `${TMF_BASE.ordering}/cancelProductOrder`;

/** One-time fees every new line pays, by catalog offering id; a premium number adds the third. */
const LINE_FEES = ["fee-activation", "fee-sim"] as const;
const PREMIUM_NUMBER_FEE = "fee-premium-number";

export interface OrdersDeps extends ServiceDeps {
  catalog: CatalogService;
  customers: CustomerServices;
  inventory: InventoryService;
  subscriptions: SubscriptionsService;
  messages: MessagesService;
  log: FastifyBaseLogger;
  /** How fulfilment starts after an order is acknowledged: at once in the background, or by the caller (tests). */
  schedule: "background" | "manual";
}

class Interrupted extends Error {
  constructor(
    readonly outcome: "failed" | "cancelled",
    reason: string,
  ) {
    super(reason);
  }
}

/** A catalog promotion as a product keeps it: its terms in the account's currency, its first cycle set at activation. */
function boughtPromotion(promotion: Promotion, offering: Offering, currency: string): BoughtPromotion {
  return {
    id: promotion.id,
    name: promotion.name,
    ...(promotion.percentOff !== undefined ? { percentOff: promotion.percentOff } : {}),
    ...(promotion.amountOff !== undefined ? { amountOff: promotion.amountOff[currency] ?? "0" } : {}),
    cycles: promotion.cycles,
    priceIds: promotion.prices.filter((priceId) => offering.prices.some((price) => price.id === priceId)),
    firstCycleFrom: null,
  };
}

function characteristic(item: ProductOrderCreate["productOrderItem"][number], name: string): string | undefined {
  return item.product?.productCharacteristic?.find((entry) => entry.name === name)?.value;
}

/** Free as reservation sees it: available, or held by a reservation or quarantine that has run out. */
function isFree(
  resource: { state: string; reservedUntil: Date | null; quarantineUntil: Date | null },
  now: Date,
): boolean {
  if (resource.state === "available") return true;
  if (resource.state === "reserved") return resource.reservedUntil !== null && resource.reservedUntil <= now;
  if (resource.state === "quarantine") return resource.quarantineUntil !== null && resource.quarantineUntil <= now;
  return false;
}

/** The billing account id of an order that named none (or none that could be an id): it shows no account. */
const NO_ACCOUNT = "00000000-0000-0000-0000-000000000000";

function present(row: ProductOrderRow): ProductOrder {
  const offeringPath = `${TMF_BASE.catalog}/productOffering`;
  return {
    id: row.id,
    href: `${ORDER_PATH}/${row.id}`,
    "@type": "ProductOrder",
    state: row.state,
    orderDate: row.createdAt.toISOString(),
    ...(row.completedAt ? { completionDate: row.completedAt.toISOString() } : {}),
    // An order that named no account, or none that could be one, stores the nil id and shows no account.
    ...(row.billingAccountId === NO_ACCOUNT
      ? {}
      : {
          billingAccount: {
            id: row.billingAccountId,
            href: `${TMF_BASE.account}/billingAccount/${row.billingAccountId}`,
            "@referredType": "BillingAccount",
          },
        }),
    relatedParty: row.customerId
      ? [
          {
            id: row.customerId,
            href: `${TMF_BASE.customer}/customer/${row.customerId}`,
            role: "customer",
            "@referredType": "Customer",
          },
        ]
      : [],
    productOrderItem: row.items.map((item) => ({
      id: item.id,
      action: item.action,
      state: item.state,
      ...(item.offeringId
        ? {
            productOffering: {
              id: item.offeringId,
              href: `${offeringPath}/${item.offeringId}`,
              ...(item.offeringName ? { name: item.offeringName } : {}),
              ...(item.offeringVersion ? { version: String(item.offeringVersion) } : {}),
              "@referredType": "ProductOffering",
            },
          }
        : {}),
      product: {
        ...(item.productId ? { id: item.productId, href: `${PRODUCT_PATH}/${item.productId}` } : {}),
        productCharacteristic: [
          ...(item.msisdn ? [{ name: "msisdn", value: item.msisdn }] : []),
          ...(item.iccid ? [{ name: "iccid", value: item.iccid }] : []),
        ],
        ...(item.lineId !== undefined
          ? {
              productRelationship: [
                {
                  relationshipType: "reliesOn",
                  product: { id: item.lineId, href: `${PRODUCT_PATH}/${item.lineId}`, "@referredType": "Product" },
                },
              ],
            }
          : {}),
      },
      productOrderItemRelationship: item.reliesOn ? [{ id: item.reliesOn, relationshipType: "reliesOn" }] : [],
    })),
    rejectionReason: row.rejection,
    ...(row.failureReason ? { failureReason: row.failureReason } : {}),
    ...(row.cancellationReason ? { cancellationReason: row.cancellationReason } : {}),
  };
}

/**
 * Product orders (TMF622): validated against the catalog in force and the account, stored (a well-formed
 * order that breaks a rule is stored as rejected with every reason), then fulfilled as explicit steps —
 * reserve number and SIM, create the products pending activation, activate on the network, then assign,
 * activate and record one-time charges in one transaction. An add-on for a line the account already has (TMF622
 * `product.productRelationship` reliesOn the line) goes through the same steps: created under its line, pending,
 * with the new lines' products, and activated with them; the line carries it on the network. A failure or a
 * cancellation at any step undoes the earlier ones in reverse.
 */
export class OrdersService {
  readonly #running = new Map<string, Promise<void>>();
  readonly #received = new Map<string, Promise<void>>();

  constructor(private readonly deps: OrdersDeps) {}

  async list(request: ListRequest) {
    const db = this.deps.database.db;
    const where = listFilters(
      {
        id: productOrders.id,
        state: productOrders.state,
        "billingAccount.id": productOrders.billingAccountId,
        orderDate: productOrders.createdAt,
        completionDate: productOrders.completedAt,
      },
      request,
    );
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(productOrders)
        .where(where)
        .orderBy(asc(productOrders.id))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(productOrders).where(where),
    ]);
    return { items: rows.map(present), total: counted[0]?.total ?? 0 };
  }

  async get(id: string): Promise<ProductOrder> {
    const row = await this.find(this.deps.database.db, id);
    if (!row) throw notFound("productOrder", id);
    return present(row);
  }

  private async find(db: Db, id: string, lock = false): Promise<ProductOrderRow | undefined> {
    if (!isId(id)) return undefined;
    const query = db.select().from(productOrders).where(eq(productOrders.id, id));
    const [row] = lock ? await query.for("update") : await query;
    return row;
  }

  /** Places an order. With an idempotency key, a retry of the same request returns the first order unchanged. */
  async place(
    actor: Actor,
    body: ProductOrderCreate,
    idempotencyKey: string | undefined,
  ): Promise<{ order: ProductOrder; replayed: boolean }> {
    const requestHash = hashOf(body);
    if (idempotencyKey !== undefined) {
      const replay = await this.replay(idempotencyKey, requestHash);
      if (replay) return { order: replay, replayed: true };
    }
    const { items, rejection, customerId } = await this.validate(body);
    const now = this.deps.clock.now();
    const state = rejection.length > 0 ? "rejected" : "acknowledged";
    let row: ProductOrderRow;
    try {
      row = await this.deps.database.transaction(async (tx) => {
        const [inserted] = await tx
          .insert(productOrders)
          .values({
            id: newId(now.getTime()),
            idempotencyKey: idempotencyKey ?? null,
            requestHash,
            billingAccountId:
              body.billingAccount !== undefined && isId(body.billingAccount.id) ? body.billingAccount.id : NO_ACCOUNT,
            customerId,
            state,
            items: items.map((item) => ({ ...item, state: state === "rejected" ? "rejected" : "acknowledged" })),
            rejection,
            progress: { lines: [] },
            cancelRequested: false,
            createdBy: actor.keyId,
            createdAt: now,
            updatedAt: now,
            ...(state === "rejected" ? { completedAt: now } : {}),
          })
          .returning();
        const created = inserted as ProductOrderRow;
        await this.record(tx, actor, "Create", created);
        return created;
      });
    } catch (error) {
      // Two requests with the same key raced: the loser answers with the winner's order.
      if (idempotencyKey !== undefined && sqlState(error) === "23505") {
        const replay = await this.replay(idempotencyKey, requestHash);
        if (replay) return { order: replay, replayed: true };
      }
      throw error;
    }
    if (state === "acknowledged") {
      // The customer hears of the order without the agent waiting for the message to go out; later messages of
      // the order wait for this one, so "received" always comes before "active" or "failed".
      const received = this.notify(row, "order.received", `Your order ${row.id} was received and is being processed.`);
      this.#received.set(row.id, received);
      received.finally(() => this.#received.delete(row.id)).catch(() => {});
      if (this.deps.schedule === "background") {
        // Registered now, started once the answer is on its way: settle() finds it either way.
        this.fulfil(actor, row.id, true).catch((error: unknown) =>
          this.deps.log.error({ err: error, orderId: row.id }, "fulfilment crashed"),
        );
      }
    }
    return { order: present(row), replayed: false };
  }

  private async replay(key: string, requestHash: string): Promise<ProductOrder | null> {
    const [existing] = await this.deps.database.db
      .select()
      .from(productOrders)
      .where(eq(productOrders.idempotencyKey, key));
    if (!existing) return null;
    if (existing.requestHash !== requestHash) {
      throw new AppError("conflict", "idempotency_key_reused", "Idempotency-Key was used for a different order");
    }
    return present(existing);
  }

  private async record(tx: Db, actor: Actor, change: "Create" | "StateChange", row: ProductOrderRow): Promise<void> {
    const order = present(row);
    await this.deps.audit.record(tx, actor, {
      action: change === "Create" ? "create" : "update",
      entityType: "productOrder",
      entityId: row.id,
      after: order,
    });
    await this.deps.events.record(tx, {
      api: "productOrderingManagement",
      resource: "productOrder",
      change,
      resourceId: row.id,
      body: order,
    });
  }

  /** Every rule an order must meet; all failures are listed, none stops the others from being checked. */
  private async validate(body: ProductOrderCreate) {
    const reasons: RejectionReason[] = [];
    const reject = (code: string, reason: string, orderItemId?: string) =>
      reasons.push({ code, reason, ...(orderItemId !== undefined ? { orderItemId } : {}) });
    const db = this.deps.database.db;
    const accountId = body.billingAccount?.id;
    const account = accountId === undefined ? undefined : await this.deps.customers.accountForOrder(db, accountId);
    // Ending a line is always possible: a disconnect-only order does not ask for an active account.
    const disconnectOnly = body.productOrderItem.every((item) => item.action === "delete");
    if (accountId === undefined) reject("missing_account", "billingAccount: the order names the account it charges");
    else if (!account) reject("unknown_account", `billing account ${accountId} does not exist`);
    else if (!disconnectOnly) {
      if (account.state !== "active") reject("account_not_active", `billing account ${account.id} is ${account.state}`);
      if (account.customerStatus !== "approved")
        reject("customer_not_approved", `the account's customer is ${account.customerStatus}`);
    }
    const snapshot = await this.deps.catalog.snapshot();
    const now = this.deps.clock.now();
    const items: OrderItemRecord[] = [];
    const seen = new Set<string>();
    const actions = new Set(body.productOrderItem.map((item) => item.action));
    if (actions.has("add") && actions.has("delete"))
      reject("mixed_actions", "place new lines and disconnections in separate orders");
    const planItems = new Map<string, Offering>();
    for (const item of body.productOrderItem) {
      if (seen.has(item.id)) reject("duplicate_item", `item id ${item.id} is used twice`, item.id);
      seen.add(item.id);
      if (item.action === "add") {
        const entry = item.productOffering ? snapshot.offerings.get(item.productOffering.id) : undefined;
        if (!item.productOffering) {
          reject("missing_offering", "an add item names a productOffering", item.id);
          continue;
        }
        if (!entry) {
          reject("unknown_offering", `offering ${item.productOffering.id} is not in the catalog`, item.id);
          continue;
        }
        const offering = entry.content;
        const record: OrderItemRecord = {
          id: item.id,
          action: "add",
          state: "acknowledged",
          offeringId: offering.id,
          offeringVersion: entry.info.version,
          offeringName: offering.name,
        };
        items.push(record);
        if (!offering.isSellable || offering.lifecycleStatus !== "active")
          reject("not_sellable", `${offering.id} is not sold any more`, item.id);
        if (
          Date.parse(offering.validFrom) > now.getTime() ||
          (offering.validTo && Date.parse(offering.validTo) <= now.getTime())
        ) {
          reject("not_valid_now", `${offering.id} is not on sale at this date`, item.id);
        }
        if (offering.kind === "fee")
          reject("fee_not_orderable", `${offering.id} is a fee; it is charged with the line`, item.id);
        const promotionIds = this.orderedPromotions(item, offering, snapshot, account?.currency, now, (code, reason) =>
          reject(code, reason, item.id),
        );
        if (promotionIds.length > 0) record.promotionIds = promotionIds;
        if (account) {
          if (offering.paymentTypes && !offering.paymentTypes.includes(account.accountType)) {
            reject("payment_type", `${offering.id} is not sold to ${account.accountType} accounts`, item.id);
          }
          if (offering.businessOnly && !account.isOrganization)
            reject("business_only", `${offering.id} is for business customers only`, item.id);
          if (offering.kind === "plan" && offering.tariffs?.[account.currency] === undefined) {
            reject("currency", `${offering.id} is not sold in ${account.currency}`, item.id);
          }
          // An add-on's prices must be in the account's currency (a bought price is never made up).
          if (
            offering.kind === "addon" &&
            offering.prices.some((price) => price.amounts[account.currency] === undefined)
          ) {
            reject("currency", `${offering.id} is not sold in ${account.currency}`, item.id);
          }
        }
        const relation = item.productOrderItemRelationship?.find(
          (entryRelation) => entryRelation.relationshipType === "reliesOn",
        );
        if (offering.kind === "plan") {
          planItems.set(item.id, offering);
          if (relation) reject("plan_relies_on", "a plan starts a line; it cannot rely on another item", item.id);
          const msisdn = characteristic(item, "msisdn");
          const iccid = characteristic(item, "iccid");
          if (msisdn !== undefined) {
            record.msisdn = msisdn;
            const number = await this.deps.inventory.findByValue(db, "MSISDN", msisdn);
            if (!number) reject("unknown_number", `number ${msisdn} is not in the inventory`, item.id);
            else if (!isFree(number, now)) reject("number_taken", `number ${msisdn} is not available`, item.id);
          }
          if (iccid !== undefined) {
            record.iccid = iccid;
            const sim = await this.deps.inventory.findByValue(db, "SIMCard", iccid);
            if (!sim) reject("unknown_sim", `SIM ${iccid} is not in the inventory`, item.id);
            else if (!isFree(sim, now)) reject("sim_taken", `SIM ${iccid} is not available`, item.id);
          }
        }
        if (offering.kind === "addon") {
          const line = item.product?.productRelationship?.find((entry) => entry.relationshipType === "reliesOn");
          if (relation && line) {
            reject(
              "addon_ambiguous_line",
              `${offering.id} relies on item ${relation.id} and on product ${line.product.id ?? "(none)"}; name one line`,
              item.id,
            );
          } else if (line) {
            if (line.product.id !== undefined) record.lineId = line.product.id;
            await this.checkLine(db, account?.id, line.product.id, offering, (code, reason) =>
              reject(code, reason, item.id),
            );
          } else if (relation) record.reliesOn = relation.id;
          else
            reject(
              "addon_without_plan",
              `${offering.id} needs a line: a plan item of the same order (productOrderItemRelationship reliesOn) or a line of the account (product.productRelationship reliesOn)`,
              item.id,
            );
        }
      } else if (item.action === "delete") {
        const productId = item.product?.id;
        const product = productId ? await this.deps.subscriptions.find(db, productId) : undefined;
        items.push({ id: item.id, action: "delete", state: "acknowledged", ...(productId ? { productId } : {}) });
        if (!product || (account && product.billingAccountId !== account.id)) {
          reject("unknown_product", `product ${productId ?? "(none)"} is not on this account`, item.id);
        } else if (product.kind !== "plan") {
          reject("not_a_line", `product ${product.id} is an add-on; disconnect its line`, item.id);
        } else if (product.status !== "active" && product.status !== "suspended") {
          reject("product_not_live", `product ${product.id} is ${product.status}`, item.id);
        } else {
          const record = items[items.length - 1] as OrderItemRecord;
          if (product.msisdn) record.msisdn = product.msisdn;
        }
      } else {
        reject("unsupported_action", `action ${item.action} is not supported (add, delete)`, item.id);
      }
    }
    // Add-ons after every plan is known: compatible, and relying on a plan item rather than another add-on.
    for (const record of items.filter((item) => item.reliesOn !== undefined)) {
      const plan = planItems.get(record.reliesOn as string);
      const offering = snapshot.offerings.get(record.offeringId ?? "")?.content;
      if (!plan) reject("addon_without_plan", `item ${record.reliesOn} is not a plan of this order`, record.id);
      else if (offering?.compatiblePlans && !offering.compatiblePlans.includes(plan.id)) {
        reject("incompatible_addon", `${offering.id} cannot be added to ${plan.id}`, record.id);
      }
    }
    // A line holds an add-on once (the catalog has no add-on that stacks): one item per add-on and line.
    const addonsByLine = new Map<string, string>();
    for (const record of items.filter((item) => item.reliesOn !== undefined || item.lineId !== undefined)) {
      const key = `${record.reliesOn !== undefined ? `item:${record.reliesOn}` : `product:${record.lineId}`}|${record.offeringId}`;
      const first = addonsByLine.get(key);
      if (first !== undefined)
        reject("duplicate_addon", `item ${first} adds ${record.offeringId} to the same line already`, record.id);
      else addonsByLine.set(key, record.id);
    }
    return { items, rejection: reasons, customerId: account?.customerId ?? null };
  }

  /**
   * An add-on for a line the account already has (TMF622 `product.productRelationship` reliesOn an owned product):
   * the product must be this account's line, active, on a plan the add-on is sold for, and not hold the add-on
   * already. Problems are rejected with the reason.
   */
  private async checkLine(
    db: Db,
    accountId: string | undefined,
    lineId: string | undefined,
    offering: Offering,
    reject: (code: string, reason: string) => void,
  ): Promise<void> {
    const line = lineId === undefined ? undefined : await this.deps.subscriptions.find(db, lineId);
    // Without a known account no product is "on this account": nothing about another's line is told.
    if (!line || line.billingAccountId !== accountId) {
      reject("unknown_product", `product ${lineId ?? "(none)"} is not on this account`);
      return;
    }
    const refusal = this.deps.subscriptions.refuseAddon(
      line,
      offering.id,
      await this.deps.subscriptions.addonsOf(db, line.id),
    );
    if (refusal !== null) reject(refusal.code, refusal.reason);
    else if (offering.compatiblePlans && !offering.compatiblePlans.includes(line.offeringId))
      reject("incompatible_addon", `${offering.id} cannot be added to ${line.offeringId}`);
  }

  /**
   * The promotions an add item asks for (TMF622 `itemPrice[].priceAlteration[].productOfferingPrice.id`: a
   * promotion's TMF620 price, `promo-…` or, for an amount off, `promo-….eur`): each must be in the catalog, on offer
   * now, take something off one of the offering's prices, and have an amount in the account's currency. Problems
   * are rejected with the reason; the promotion ids come back.
   */
  private orderedPromotions(
    item: ProductOrderCreate["productOrderItem"][number],
    offering: Offering,
    snapshot: CatalogSnapshot,
    currency: string | undefined,
    now: Date,
    reject: (code: string, reason: string) => void,
  ): string[] {
    const ids: string[] = [];
    for (const price of item.itemPrice ?? []) {
      for (const alteration of price.priceAlteration ?? []) {
        const named = alteration.productOfferingPrice?.id;
        if (named === undefined) {
          reject("missing_promotion", "a priceAlteration names its productOfferingPrice");
          continue;
        }
        // An amount off is one TMF620 price per currency: "promo-….eur" names the promotion in euros.
        const suffix = currency === undefined ? null : `.${currency.toLowerCase()}`;
        const id = suffix !== null && named.endsWith(suffix) ? named.slice(0, -suffix.length) : named;
        const promotion = snapshot.promotions.get(id)?.content;
        if (promotion === undefined) {
          reject("unknown_promotion", `promotion ${named} is not in the catalog`);
          continue;
        }
        if (
          Date.parse(promotion.validFrom) > now.getTime() ||
          (promotion.validTo !== undefined && Date.parse(promotion.validTo) <= now.getTime())
        ) {
          reject("promotion_not_valid_now", `promotion ${id} is not on offer at this date`);
          continue;
        }
        if (!promotion.prices.some((priceId) => offering.prices.some((own) => own.id === priceId))) {
          reject("promotion_not_applicable", `promotion ${id} takes nothing off ${offering.id}`);
          continue;
        }
        if (
          promotion.amountOff !== undefined &&
          currency !== undefined &&
          promotion.amountOff[currency] === undefined
        ) {
          reject("promotion_not_applicable", `promotion ${id} has no amount in ${currency}`);
          continue;
        }
        if (ids.includes(id)) reject("duplicate_promotion", `promotion ${id} is named twice`);
        else ids.push(id);
      }
    }
    return ids;
  }

  private async save(
    actor: Actor,
    id: string,
    change: (row: ProductOrderRow) => Partial<ProductOrderRow>,
    event = true,
  ): Promise<ProductOrderRow> {
    return this.deps.database.transaction(async (tx) => {
      const row = (await this.find(tx, id, true)) as ProductOrderRow;
      const [updated] = await tx
        .update(productOrders)
        .set({ ...change(row), updatedAt: this.deps.clock.now() })
        .where(eq(productOrders.id, id))
        .returning();
      if (event) await this.record(tx, actor, "StateChange", updated as ProductOrderRow);
      return updated as ProductOrderRow;
    });
  }

  /** Runs an acknowledged order to its end. Safe to call twice: the second call finds it taken. */
  async fulfil(actor: Actor, id: string, deferred = false): Promise<void> {
    const running = this.#running.get(id);
    if (running) return running;
    const start = deferred ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve();
    const work = start.then(() => this.run(actor, id)).finally(() => this.#running.delete(id));
    this.#running.set(id, work);
    return work;
  }

  /** Waits for fulfilment running in this process (tests and the bench use it to settle an order). */
  async settle(id: string): Promise<ProductOrder> {
    await this.#running.get(id);
    return this.get(id);
  }

  private async run(actor: Actor, id: string): Promise<void> {
    const started = await this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, id, true);
      if (row?.state !== "acknowledged") return null;
      const [updated] = await tx
        .update(productOrders)
        .set({
          state: "inProgress",
          items: row.items.map((item) => ({ ...item, state: "inProgress" })),
          updatedAt: this.deps.clock.now(),
        })
        .where(eq(productOrders.id, id))
        .returning();
      await this.record(tx, actor, "StateChange", updated as ProductOrderRow);
      return updated as ProductOrderRow;
    });
    if (started === null) return;
    try {
      if (started.items.every((item) => item.action === "delete")) await this.disconnect(actor, started);
      else await this.connect(actor, started);
    } catch (error) {
      const outcome = error instanceof Interrupted ? error.outcome : "failed";
      // Domain errors say what went wrong in words a customer may read; anything else is logged, not echoed.
      const reason =
        error instanceof Interrupted || error instanceof AppError
          ? error.message
          : `an internal error stopped fulfilment; quote order ${id} to the operator`;
      if (!(error instanceof Interrupted) && !(error instanceof AppError))
        this.deps.log.error({ err: error, orderId: id }, "fulfilment failed");
      await this.compensate(actor, id, outcome, reason);
    }
  }

  private async checkCancelled(id: string): Promise<void> {
    const row = await this.find(this.deps.database.db, id);
    if (row?.cancelRequested) throw new Interrupted("cancelled", row.cancellationReason ?? "cancelled on request");
  }

  private async progress(actor: Actor, id: string, progress: SagaProgress): Promise<void> {
    await this.save(actor, id, () => ({ progress }), false);
  }

  private async connect(actor: Actor, order: ProductOrderRow): Promise<void> {
    const snapshot = await this.deps.catalog.snapshot();
    const db = this.deps.database.db;
    const account = await this.deps.customers.accountForOrder(db, order.billingAccountId);
    if (!account) throw new Interrupted("failed", "the billing account disappeared");
    const progress: SagaProgress = { lines: [] };
    const plans = order.items.filter(
      (item) => item.action === "add" && item.reliesOn === undefined && item.lineId === undefined,
    );
    const lineAddons = order.items.filter((item) => item.action === "add" && item.lineId !== undefined);

    // Steps 1 and 2 in one transaction: reserve a number and a SIM per line and create its products, pending
    // activation. If anything is missing, nothing of it exists afterwards, so there is nothing to undo yet.
    // The price's terms are kept with it (defaults written out), so a later catalog change never rebills a line.
    const prices = (offering: Offering): BoughtPrice[] =>
      offering.prices.map((price) => ({
        priceId: price.id,
        name: price.name,
        type: price.type,
        ...(price.period ? { period: price.period } : {}),
        amount: price.amounts[account.currency] ?? "0",
        currency: account.currency,
        taxClass: price.taxClass,
        ...priceTerms(price),
      }));
    const term = (offering: Offering): BoughtTerm | null => {
      const first = offering.terms?.[0];
      if (!first) return null;
      // Calendar months, clamped: a 24-month term from 29 February 2028 ends on 28 February 2030.
      const ends = addMonthsUtc(this.deps.clock.now(), first.durationMonths);
      return {
        id: first.id,
        name: first.name,
        months: first.durationMonths,
        endsAt: ends.toISOString(),
        feePerMonth: first.earlyTerminationFeePerMonth[account.currency] ?? "0",
      };
    };
    const product = (item: OrderItemRecord) => {
      const entry = snapshot.offerings.get(item.offeringId ?? "");
      if (!entry) throw new Interrupted("failed", `offering ${item.offeringId} left the catalog`);
      return {
        offeringId: entry.content.id,
        offeringVersion: item.offeringVersion ?? entry.info.version,
        name: entry.content.name,
        offering: entry.content,
        promotions: (item.promotionIds ?? []).map((id) => {
          const promotion = snapshot.promotions.get(id)?.content;
          if (!promotion) throw new Interrupted("failed", `promotion ${id} left the catalog`);
          return boughtPromotion(promotion, entry.content, account.currency);
        }),
      };
    };
    await this.deps.database.transaction(async (tx) => {
      for (const item of plans) {
        const number = await this.deps.inventory.reserve(
          actor,
          { "@type": "MSISDN", ...(item.msisdn ? { value: item.msisdn } : { category: "regular" }) },
          tx,
        );
        const sim = await this.deps.inventory.reserve(
          actor,
          { "@type": "SIMCard", ...(item.iccid ? { value: item.iccid } : {}) },
          tx,
        );
        const plan = product(item);
        const addons = order.items.filter((other) => other.reliesOn === item.id).map(product);
        const created = await this.deps.subscriptions.createPending(tx, actor, {
          billingAccountId: account.id,
          customerId: account.customerId,
          currency: account.currency,
          orderId: order.id,
          msisdn: number.resource.value,
          iccid: sim.resource.value,
          plan: { ...plan, kind: "plan", prices: prices(plan.offering), term: term(plan.offering) },
          addons: addons.map((addon) => ({
            ...addon,
            kind: "addon" as const,
            prices: prices(addon.offering),
            term: null,
          })),
        });
        progress.lines.push({
          itemId: item.id,
          numberReservation: number.id,
          simReservation: sim.id,
          msisdn: number.resource.value,
          iccid: sim.resource.value,
          imsi: sim.held.imsi ?? "",
          numberCategory: number.held.category ?? "regular",
          productId: created.plan.id,
          addonIds: created.addons.map((addon) => addon.id),
        });
      }
      // Add-ons to lines the account has: created under their line, which is checked again under its lock.
      for (const item of lineAddons) {
        const addon = product(item);
        const created = await this.deps.subscriptions.createPendingAddon(tx, actor, {
          lineId: item.lineId as string,
          billingAccountId: account.id,
          orderId: order.id,
          addon: { ...addon, kind: "addon", prices: prices(addon.offering), term: null },
        });
        const line = await this.deps.subscriptions.find(tx, item.lineId as string);
        progress.addons = [
          ...(progress.addons ?? []),
          { itemId: item.id, lineId: item.lineId as string, productId: created.id, msisdn: line?.msisdn ?? "" },
        ];
      }
      await tx
        .update(productOrders)
        .set({ progress, updatedAt: this.deps.clock.now() })
        .where(eq(productOrders.id, order.id));
    });
    await this.checkCancelled(order.id);

    // Step 3: activate on the network.
    for (const line of progress.lines) {
      const row = await this.deps.subscriptions.find(db, line.productId as string);
      if (!row) throw new Interrupted("failed", "a product of the order disappeared");
      // Marked before the call: a call that times out may still have reached the network, and compensation
      // must then take the line back there too (terminate is idempotent on the network's side).
      line.activated = true;
      await this.progress(actor, order.id, progress);
      await this.deps.subscriptions.push("activate", {
        productId: row.id,
        msisdn: line.msisdn as string,
        iccid: line.iccid as string,
        imsi: line.imsi ?? "",
      });
    }
    await this.checkCancelled(order.id);

    // Step 4: assign, activate and charge in one transaction, then the order is complete.
    const fees = (offeringId: string) =>
      snapshot.offerings.get(offeringId)?.content.prices.filter((price) => price.type === "oneTime") ?? [];
    const completed = await this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, order.id, true);
      if (row?.cancelRequested) throw new Interrupted("cancelled", row.cancellationReason ?? "cancelled on request");
      if (row?.state !== "inProgress") throw new Interrupted("failed", "the order was taken over by recovery");
      const charges: OneTimeCharge[] = [];
      for (const line of progress.lines) {
        const productId = line.productId as string;
        await this.deps.inventory.assign(actor, line.numberReservation as string, productId, tx);
        await this.deps.inventory.assign(actor, line.simReservation as string, productId, tx);
        await this.deps.subscriptions.activate(tx, actor, [productId, ...(line.addonIds ?? [])], order.id);
        const lineFees = [...LINE_FEES, ...(line.numberCategory === "premium" ? [PREMIUM_NUMBER_FEE] : [])];
        for (const feeId of lineFees) {
          for (const price of fees(feeId)) {
            charges.push({
              productId,
              priceId: price.id,
              name: price.name,
              amount: price.amounts[account.currency] ?? "0",
              currency: account.currency,
              taxClass: price.taxClass,
              taxIncluded: priceTerms(price).taxIncluded,
              offeringVersion: snapshot.offerings.get(feeId)?.info.version ?? 1,
            });
          }
        }
        const planItem = order.items.find((item) => item.id === line.itemId) as OrderItemRecord;
        const addonItems = order.items.filter((item) => item.reliesOn === line.itemId);
        [planItem, ...addonItems].forEach((item, index) => {
          const owner = index === 0 ? productId : (line.addonIds?.[index - 1] ?? productId);
          for (const price of fees(item.offeringId ?? "")) {
            charges.push({
              productId: owner,
              priceId: price.id,
              name: price.name,
              amount: price.amounts[account.currency] ?? "0",
              currency: account.currency,
              taxClass: price.taxClass,
              taxIncluded: priceTerms(price).taxIncluded,
              offeringVersion: item.offeringVersion ?? 1,
            });
          }
        });
      }
      // Add-ons to lines the account has: activated under their line (still active), their own fees charged.
      for (const added of progress.addons ?? []) {
        await this.deps.subscriptions.activate(tx, actor, [added.productId], order.id);
        const item = order.items.find((entry) => entry.id === added.itemId) as OrderItemRecord;
        for (const price of fees(item.offeringId ?? "")) {
          charges.push({
            productId: added.productId,
            priceId: price.id,
            name: price.name,
            amount: price.amounts[account.currency] ?? "0",
            currency: account.currency,
            taxClass: price.taxClass,
            taxIncluded: priceTerms(price).taxIncluded,
            offeringVersion: item.offeringVersion ?? 1,
          });
        }
      }
      await this.deps.subscriptions.recordCharges(tx, account.id, order.id, charges);
      const items = (row as ProductOrderRow).items.map((item) => {
        if (item.lineId !== undefined) {
          const added = progress.addons?.find((entry) => entry.itemId === item.id);
          return { ...item, state: "completed", ...(added ? { productId: added.productId } : {}) };
        }
        const line = progress.lines.find((entry) => entry.itemId === item.id || entry.itemId === item.reliesOn);
        const addonIndex = order.items
          .filter((other) => other.reliesOn === item.reliesOn)
          .findIndex((other) => other.id === item.id);
        const productId = item.reliesOn === undefined ? line?.productId : line?.addonIds?.[addonIndex];
        return {
          ...item,
          state: "completed",
          ...(productId ? { productId } : {}),
          ...(item.reliesOn === undefined && line ? { msisdn: line.msisdn, iccid: line.iccid } : {}),
        };
      });
      const [updated] = await tx
        .update(productOrders)
        .set({
          state: "completed",
          items,
          progress,
          completedAt: this.deps.clock.now(),
          updatedAt: this.deps.clock.now(),
        })
        .where(eq(productOrders.id, order.id))
        .returning();
      await this.record(tx, actor, "StateChange", updated as ProductOrderRow);
      return updated as ProductOrderRow;
    });
    for (const line of progress.lines) {
      await this.notify(completed, "line.active", `Your line ${line.msisdn} is active.`);
    }
    for (const added of progress.addons ?? []) {
      const name = order.items.find((item) => item.id === added.itemId)?.offeringName ?? "Your add-on";
      await this.notify(completed, "addon.active", `${name} is active on your line ${added.msisdn}.`);
    }
  }

  private async disconnect(actor: Actor, order: ProductOrderRow): Promise<void> {
    for (const item of order.items) {
      await this.checkCancelled(order.id);
      await this.deps.subscriptions.terminate(actor, item.productId as string, order.id);
      // Each line ended is recorded at once (and keeps the order's heartbeat fresh for recovery).
      await this.save(
        actor,
        order.id,
        (row) => ({
          items: row.items.map((other) => (other.id === item.id ? { ...other, state: "completed" } : other)),
        }),
        false,
      );
    }
    const completed = await this.save(actor, order.id, (row) => ({
      state: "completed",
      items: row.items.map((item) => ({ ...item, state: "completed" })),
      completedAt: this.deps.clock.now(),
    }));
    await this.notify(completed, "line.disconnected", `Your line was disconnected (order ${order.id}).`);
  }

  /**
   * Undoes what the saga did, in reverse: lines activated on the network are terminated there, products are
   * aborted, reservations released; then the order is failed or cancelled with the reason.
   */
  private async compensate(actor: Actor, id: string, outcome: "failed" | "cancelled", reason: string): Promise<void> {
    const row = await this.find(this.deps.database.db, id);
    if (!row || (row.state !== "inProgress" && row.state !== "acknowledged")) return;
    const lines = [...row.progress.lines].reverse();
    for (const line of lines.filter((entry) => entry.activated)) {
      try {
        await this.deps.subscriptions.push("terminate", {
          productId: line.productId as string,
          msisdn: line.msisdn as string,
          iccid: line.iccid as string,
          imsi: line.imsi ?? "",
        });
      } catch (error) {
        // The network keeps a line we could not take back: logged for the operator; the products are aborted.
        this.deps.log.error(
          { err: error, orderId: id, productId: line.productId },
          "compensation could not terminate a line on the network",
        );
      }
    }
    const finished = await this.deps.database.transaction(async (tx) => {
      const current = await this.find(tx, id, true);
      // Another process finished or undid the order meanwhile: its outcome stands.
      if (!current || (current.state !== "inProgress" && current.state !== "acknowledged")) return null;
      // Add-ons to lines the account has reached nothing on the network: aborting them is the whole undo.
      await this.deps.subscriptions.abort(
        tx,
        actor,
        [...(row.progress.addons ?? [])].reverse().map((added) => added.productId),
        `order ${outcome}: ${reason}`,
        id,
      );
      for (const line of lines) {
        await this.deps.subscriptions.abort(
          tx,
          actor,
          [...(line.addonIds ?? []), ...(line.productId ? [line.productId] : [])],
          `order ${outcome}: ${reason}`,
          id,
        );
        for (const reservation of [line.simReservation, line.numberReservation]) {
          if (reservation === undefined) continue;
          await this.deps.inventory.releaseReservation(actor, reservation, tx).catch((error: unknown) => {
            // Already expired or taken over: nothing of ours to release.
            if (!(error instanceof AppError && error.kind === "not_found")) throw error;
          });
        }
      }
      const [updated] = await tx
        .update(productOrders)
        .set({
          state: outcome,
          items: current.items.map((item) => ({ ...item, state: item.state === "completed" ? "completed" : outcome })),
          failureReason: outcome === "failed" ? reason : null,
          completedAt: this.deps.clock.now(),
          updatedAt: this.deps.clock.now(),
        })
        .where(eq(productOrders.id, id))
        .returning();
      await this.record(tx, actor, "StateChange", updated as ProductOrderRow);
      return updated as ProductOrderRow;
    });
    if (finished !== null && outcome === "failed") {
      await this.notify(finished, "order.failed", `Your order ${id} could not be completed: ${reason}`);
    }
  }

  /** TMF622 cancelProductOrder: at once before fulfilment starts, at the next step while it runs, never after. */
  async cancel(actor: Actor, orderId: string, reason: string | undefined) {
    const now = this.deps.clock.now();
    const result = await this.deps.database.transaction(async (tx) => {
      const row = await this.find(tx, orderId, true);
      if (!row)
        throw new AppError(
          "unprocessable",
          "unknown_order",
          `productOrder.id: order ${orderId} does not exist`,
          "productOrder.id",
        );
      if (row.state !== "acknowledged" && row.state !== "inProgress") {
        throw new AppError(
          "conflict",
          "illegal_transition",
          `productOrder cannot be cancelled from ${row.state}; only acknowledged or inProgress orders can`,
        );
      }
      const immediate = row.state === "acknowledged";
      const [updated] = await tx
        .update(productOrders)
        .set({
          cancelRequested: true,
          cancellationReason: reason ?? "cancelled on request",
          ...(immediate
            ? {
                state: "cancelled",
                items: row.items.map((item) => ({ ...item, state: "cancelled" })),
                completedAt: now,
              }
            : {}),
          updatedAt: now,
        })
        .where(eq(productOrders.id, orderId))
        .returning();
      if (immediate) await this.record(tx, actor, "StateChange", updated as ProductOrderRow);
      const [cancel] = await tx
        .insert(cancelProductOrders)
        .values({
          id: newId(now.getTime()),
          orderId,
          state: immediate ? "done" : "inProgress",
          reason: reason ?? null,
          createdAt: now,
        })
        .returning();
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "cancelProductOrder",
        entityId: (cancel as { id: string }).id,
        after: { orderId, reason },
      });
      return cancel as typeof cancelProductOrders.$inferSelect;
    });
    const [done] = await this.cancelRows(eq(cancelProductOrders.id, result.id));
    return presentCancel(result, done?.order ?? null);
  }

  /** Cancellation requests, a page at a time (TMF622 list): `id`, `productOrder.id` and `creationDate` filter. */
  async listCancels(request: ListRequest) {
    const where = listFilters(
      {
        id: cancelProductOrders.id,
        "productOrder.id": cancelProductOrders.orderId,
        creationDate: cancelProductOrders.createdAt,
      },
      request,
    );
    const [rows, counted] = await Promise.all([
      this.cancelRows(where).orderBy(asc(cancelProductOrders.id)).offset(request.offset).limit(request.limit),
      this.deps.database.db.select({ total: count() }).from(cancelProductOrders).where(where),
    ]);
    return { items: rows.map((row) => presentCancel(row.cancel, row.order)), total: counted[0]?.total ?? 0 };
  }

  async getCancel(id: string) {
    const [row] = isId(id) ? await this.cancelRows(eq(cancelProductOrders.id, id)) : [];
    if (!row) throw notFound("cancelProductOrder", id);
    return presentCancel(row.cancel, row.order);
  }

  /** Cancellation rows with what their order is now (its state says whether the cancellation is done). */
  private cancelRows(where: SQL | undefined) {
    return this.deps.database.db
      .select({
        cancel: cancelProductOrders,
        order: { state: productOrders.state, completedAt: productOrders.completedAt },
      })
      .from(cancelProductOrders)
      .innerJoin(productOrders, eq(productOrders.id, cancelProductOrders.orderId))
      .where(where)
      .$dynamic();
  }

  /** Orders an earlier process left behind: acknowledged ones are fulfilled, stale in-progress ones undone. */
  async recover(actor: Actor): Promise<number> {
    const before = new Date(this.deps.clock.now().getTime() - ORDER_RECOVERY_AFTER_SECONDS * 1000);
    const stale = await this.deps.database.db
      .select({ id: productOrders.id, state: productOrders.state })
      .from(productOrders)
      .where(and(inArray(productOrders.state, ["acknowledged", "inProgress"]), lte(productOrders.updatedAt, before)))
      .limit(50);
    for (const order of stale) {
      if (this.#running.has(order.id)) continue;
      try {
        if (order.state === "acknowledged") {
          await this.fulfil(actor, order.id);
          continue;
        }
        // Claimed only if nobody touched it since: a process still working on it keeps it.
        const [claimed] = await this.deps.database.db
          .update(productOrders)
          .set({ updatedAt: this.deps.clock.now() })
          .where(
            and(
              eq(productOrders.id, order.id),
              eq(productOrders.state, "inProgress"),
              lte(productOrders.updatedAt, before),
            ),
          )
          .returning({ id: productOrders.id });
        if (claimed) await this.compensate(actor, order.id, "failed", "fulfilment was interrupted");
      } catch (error) {
        // One order that cannot be recovered must not stop the others; it is tried again on the next pass.
        this.deps.log.error({ err: error, orderId: order.id }, "order recovery failed");
      }
    }
    return stale.length;
  }

  private async notify(order: ProductOrderRow, reason: string, text: string): Promise<void> {
    if (!order.customerId) return;
    if (reason !== "order.received") await this.#received.get(order.id);
    try {
      await this.deps.messages.send(
        { keyId: null, role: "system", requestId: null, billingAccountId: null },
        {
          customerId: order.customerId,
          channel: "sms",
          body: text,
          reason,
        },
      );
    } catch (error) {
      // A customer without a mobile number gets no SMS; the order does not depend on it.
      if (!(error instanceof AppError && error.code === "no_contact"))
        this.deps.log.warn({ err: error, orderId: order.id }, "order message not sent");
    }
  }
}

function presentCancel(
  row: typeof cancelProductOrders.$inferSelect,
  order: { state: string; completedAt: Date | null } | null,
) {
  const done = order?.state === "cancelled";
  return {
    id: row.id,
    href: `${CANCEL_PATH}/${row.id}`,
    "@type": "CancelProductOrder" as const,
    state: done ? "done" : order?.state === "inProgress" ? "inProgress" : "terminatedWithError",
    creationDate: row.createdAt.toISOString(),
    ...(row.reason ? { cancellationReason: row.reason } : {}),
    ...(done && order?.completedAt ? { effectiveCancellationDate: order.completedAt.toISOString() } : {}),
    productOrder: { id: row.orderId, href: `${ORDER_PATH}/${row.orderId}`, "@referredType": "ProductOrder" },
  };
}
