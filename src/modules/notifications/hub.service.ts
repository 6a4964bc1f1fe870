import { createHmac, randomBytes } from "node:crypto";
import { and, asc, count, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { fetch } from "undici";
import type { Actor, AuditLog } from "../../platform/audit.js";
import type { CallbackPolicy } from "../../platform/callback-policy.js";
import type { Clock } from "../../platform/clock.js";
import type { Database } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import { EVENT_APIS, type EventApi } from "../../platform/events.js";
import { outboxEvents } from "../../platform/outbox.tables.js";
import type { SecretBox } from "../../platform/secrets.js";
import { listFilters } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import { newId } from "../../shared/ids.js";
import {
  HUB_BACKOFF_BASE_SECONDS,
  HUB_BACKOFF_MAX_SECONDS,
  HUB_DELIVERY_TIMEOUT_MS,
  HUB_DISPATCH_BATCH,
  HUB_MAX_ATTEMPTS,
  HUB_SEND_BATCH,
  HUB_SENDING_LEASE_SECONDS,
  HUB_SUBSCRIPTIONS_MAX,
} from "../../shared/limits.js";
import { matchesHubFilter, parseHubQuery } from "./hub-filter.js";
import {
  type HubDeliveryRow,
  type HubSubscriptionRow,
  hubDeliveries,
  hubDeliveryAttempts,
  hubSubscriptions,
} from "./notifications.tables.js";

export interface HubDeps {
  database: Database;
  audit: AuditLog;
  clock: Clock;
  secrets: SecretBox;
  callbacks: CallbackPolicy;
}

export interface HubSubscription {
  id: string;
  href: string;
  callback: string;
  query?: string;
  api: string;
  status: string;
  parkedReason?: string;
  createdAt: string;
}

/** The signature header a receiver verifies: HMAC-SHA256 over "<unix seconds>.<body>" with the hub secret. */
export function signDelivery(secret: string, timestampSeconds: number, body: string): string {
  const digest = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
  return `t=${timestampSeconds},v1=${digest}`;
}

export function backoffSeconds(attempts: number): number {
  return Math.min(HUB_BACKOFF_BASE_SECONDS * 2 ** Math.max(0, attempts - 1), HUB_BACKOFF_MAX_SECONDS);
}

function present(row: HubSubscriptionRow): HubSubscription {
  return {
    id: row.id,
    href: `${EVENT_APIS[row.api as EventApi]}/hub/${row.id}`,
    callback: row.callback,
    ...(row.query !== null ? { query: row.query } : {}),
    api: row.api,
    status: row.status,
    ...(row.parkedReason !== null ? { parkedReason: row.parkedReason } : {}),
    createdAt: row.createdAt.toISOString(),
  };
}

/**
 * Hub subscriptions and the delivery of outbox events to them: a dispatcher fans new outbox events out to
 * matching subscriptions (one delivery row each), a sender POSTs due deliveries signed with the hub secret,
 * retries with exponential backoff and parks a subscription whose deliveries keep failing.
 */
export class HubService {
  constructor(private readonly deps: HubDeps) {}

  async subscribe(actor: Actor, api: EventApi, input: { callback: string; query?: string }) {
    parseHubQuery(input.query);
    await this.deps.callbacks.check(input.callback);
    const secret = randomBytes(32).toString("base64url");
    const now = this.deps.clock.now();
    return this.deps.database.transaction(async (tx) => {
      const [existing] = await tx
        .select({ total: count() })
        .from(hubSubscriptions)
        .where(eq(hubSubscriptions.api, api));
      if ((existing?.total ?? 0) >= HUB_SUBSCRIPTIONS_MAX) {
        throw new AppError("unprocessable", "too_many_subscriptions", `at most ${HUB_SUBSCRIPTIONS_MAX} hubs per API`);
      }
      const [row] = await tx
        .insert(hubSubscriptions)
        .values({
          id: newId(now.getTime()),
          api,
          callback: input.callback,
          query: input.query?.trim() ? input.query.trim() : null,
          sealedSecret: this.deps.secrets.seal(secret),
          status: "active",
          parkedReason: null,
          createdBy: actor.keyId,
          createdAt: now,
          updatedAt: now,
        })
        .returning();
      const subscription = present(row as HubSubscriptionRow);
      await this.deps.audit.record(tx, actor, {
        action: "create",
        entityType: "hub",
        entityId: subscription.id,
        after: subscription,
      });
      return { ...subscription, secret };
    });
  }

  async unsubscribe(actor: Actor, api: EventApi, id: string): Promise<void> {
    await this.deps.database.transaction(async (tx) => {
      const [row] = await tx
        .delete(hubSubscriptions)
        .where(and(eq(hubSubscriptions.id, id), eq(hubSubscriptions.api, api)))
        .returning();
      if (!row) throw notFound("hub", id);
      await this.deps.audit.record(tx, actor, {
        action: "delete",
        entityType: "hub",
        entityId: id,
        before: present(row),
      });
    });
  }

  async list(request: ListRequest): Promise<{ items: HubSubscription[]; total: number }> {
    const db = this.deps.database.db;
    const where = listFilters(
      { id: hubSubscriptions.id, api: hubSubscriptions.api, status: hubSubscriptions.status },
      request,
    );
    const rows = await db
      .select()
      .from(hubSubscriptions)
      .where(where)
      .orderBy(asc(hubSubscriptions.id))
      .offset(request.offset)
      .limit(request.limit);
    const [counted] = await db.select({ total: count() }).from(hubSubscriptions).where(where);
    return { items: rows.map(present), total: counted?.total ?? 0 };
  }

  async deliveries(subscriptionId: string, request: ListRequest) {
    const db = this.deps.database.db;
    const [subscription] = await db.select().from(hubSubscriptions).where(eq(hubSubscriptions.id, subscriptionId));
    if (!subscription) throw notFound("hub", subscriptionId);
    const where = and(
      eq(hubDeliveries.subscriptionId, subscriptionId),
      listFilters({ id: hubDeliveries.id, status: hubDeliveries.status }, request),
    );
    const rows = await db
      .select({ delivery: hubDeliveries, eventId: outboxEvents.eventId, eventType: outboxEvents.eventType })
      .from(hubDeliveries)
      .innerJoin(outboxEvents, eq(outboxEvents.id, hubDeliveries.outboxId))
      .where(where)
      .orderBy(asc(hubDeliveries.id))
      .offset(request.offset)
      .limit(request.limit);
    const [counted] = await db.select({ total: count() }).from(hubDeliveries).where(where);
    const ids = rows.map((row) => row.delivery.id);
    const attempts =
      ids.length === 0
        ? []
        : await db
            .select()
            .from(hubDeliveryAttempts)
            .where(inArray(hubDeliveryAttempts.deliveryId, ids))
            .orderBy(asc(hubDeliveryAttempts.id));
    return {
      total: counted?.total ?? 0,
      items: rows.map(({ delivery, eventId, eventType }) => ({
        id: String(delivery.id),
        eventId,
        eventType,
        status: delivery.status,
        attempts: delivery.attempts,
        nextAttemptAt: delivery.nextAttemptAt.toISOString(),
        ...(delivery.deliveredAt ? { deliveredAt: delivery.deliveredAt.toISOString() } : {}),
        ...(delivery.lastStatusCode !== null ? { lastStatusCode: delivery.lastStatusCode } : {}),
        ...(delivery.lastError !== null ? { lastError: delivery.lastError } : {}),
        log: attempts
          .filter((attempt) => attempt.deliveryId === delivery.id)
          .map((attempt) => ({
            attempt: attempt.attempt,
            attemptedAt: attempt.attemptedAt.toISOString(),
            ...(attempt.statusCode !== null ? { statusCode: attempt.statusCode } : {}),
            ...(attempt.error !== null ? { error: attempt.error } : {}),
            durationMs: attempt.durationMs,
          })),
      })),
    };
  }

  /** Un-parks a subscription and requeues its failed deliveries. */
  async resume(actor: Actor, id: string): Promise<HubSubscription> {
    return this.deps.database.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const [row] = await tx
        .update(hubSubscriptions)
        .set({ status: "active", parkedReason: null, updatedAt: now })
        .where(eq(hubSubscriptions.id, id))
        .returning();
      if (!row) throw notFound("hub", id);
      await tx
        .update(hubDeliveries)
        .set({ status: "pending", attempts: 0, nextAttemptAt: now })
        .where(and(eq(hubDeliveries.subscriptionId, id), eq(hubDeliveries.status, "failed")));
      const subscription = present(row);
      await this.deps.audit.record(tx, actor, {
        action: "resume",
        entityType: "hub",
        entityId: id,
        after: subscription,
      });
      return subscription;
    });
  }

  /**
   * Fans new outbox events out to matching subscriptions (one delivery row each) and marks them taken. Rows
   * are claimed with SKIP LOCKED, so dispatchers in several processes share the work, and an event committed
   * after a later one is still found: there is no cursor to pass it by. Events of APIs nobody subscribes to are
   * marked without reading their payloads. Returns how many events were taken.
   */
  async dispatch(limit = HUB_DISPATCH_BATCH): Promise<number> {
    return this.deps.database.transaction(async (tx) => {
      const due = await tx
        .select({ id: outboxEvents.id, api: outboxEvents.api })
        .from(outboxEvents)
        .where(isNull(outboxEvents.dispatchedAt))
        .orderBy(asc(outboxEvents.id))
        .limit(limit)
        .for("update", { skipLocked: true });
      if (due.length === 0) return 0;
      const subscriptions = await tx.select().from(hubSubscriptions);
      const apis = new Set(subscriptions.map((subscription) => subscription.api));
      const wanted = due.filter((event) => apis.has(event.api)).map((event) => event.id);
      const events =
        wanted.length === 0 ? [] : await tx.select().from(outboxEvents).where(inArray(outboxEvents.id, wanted));
      const filters = new Map(
        subscriptions.map((subscription) => [subscription.id, parseHubQuery(subscription.query ?? undefined)]),
      );
      const now = this.deps.clock.now();
      const rows = events.flatMap((event) =>
        subscriptions
          .filter((subscription) => subscription.api === event.api)
          .filter((subscription) =>
            matchesHubFilter(filters.get(subscription.id) ?? [], event.payload as Record<string, unknown>),
          )
          .map((subscription) => ({
            subscriptionId: subscription.id,
            outboxId: event.id,
            status: "pending",
            attempts: 0,
            nextAttemptAt: now,
          })),
      );
      if (rows.length > 0) await tx.insert(hubDeliveries).values(rows).onConflictDoNothing();
      await tx
        .update(outboxEvents)
        .set({ dispatchedAt: now })
        .where(
          inArray(
            outboxEvents.id,
            due.map((event) => event.id),
          ),
        );
      return due.length;
    });
  }

  /** Claims due deliveries (skipping rows another sender holds) with a lease, so a crash mid-send retries. */
  private async claim(limit: number): Promise<HubDeliveryRow[]> {
    return this.deps.database.transaction(async (tx) => {
      const now = this.deps.clock.now();
      const due = await tx
        .select({ id: hubDeliveries.id })
        .from(hubDeliveries)
        .innerJoin(hubSubscriptions, eq(hubSubscriptions.id, hubDeliveries.subscriptionId))
        .where(
          and(
            eq(hubSubscriptions.status, "active"),
            or(
              and(eq(hubDeliveries.status, "pending"), lte(hubDeliveries.nextAttemptAt, now)),
              and(eq(hubDeliveries.status, "sending"), lte(hubDeliveries.lockedUntil, now)),
            ),
          ),
        )
        .orderBy(asc(hubDeliveries.id))
        .limit(limit)
        .for("update", { of: hubDeliveries, skipLocked: true });
      if (due.length === 0) return [];
      return tx
        .update(hubDeliveries)
        .set({
          status: "sending",
          attempts: sql`${hubDeliveries.attempts} + 1`,
          lockedUntil: new Date(now.getTime() + HUB_SENDING_LEASE_SECONDS * 1000),
        })
        .where(
          inArray(
            hubDeliveries.id,
            due.map((row) => row.id),
          ),
        )
        .returning();
    });
  }

  /** Sends what is due once. Returns the outcome counts, for the loop's logs and for tests. */
  async sendDue(limit = HUB_SEND_BATCH): Promise<{ delivered: number; retrying: number; failed: number }> {
    const claimed = await this.claim(limit);
    const outcome = { delivered: 0, retrying: 0, failed: 0 };
    for (const delivery of claimed) {
      const result = await this.sendOne(delivery);
      outcome[result] += 1;
    }
    return outcome;
  }

  /** One pass of the delivery loop: dispatch new events, then send what is due. */
  async deliverOnce() {
    await this.dispatch();
    return this.sendDue();
  }

  private async sendOne(delivery: HubDeliveryRow): Promise<"delivered" | "retrying" | "failed"> {
    const db = this.deps.database.db;
    const [subscription] = await db
      .select()
      .from(hubSubscriptions)
      .where(eq(hubSubscriptions.id, delivery.subscriptionId));
    const [event] = await db.select().from(outboxEvents).where(eq(outboxEvents.id, delivery.outboxId));
    if (!subscription || !event) return "failed";
    const body = JSON.stringify(event.payload);
    const started = performance.now();
    const attemptedAt = this.deps.clock.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      await this.deps.callbacks.check(subscription.callback);
      const timestamp = Math.floor(attemptedAt.getTime() / 1000);
      const response = await fetch(subscription.callback, {
        dispatcher: this.deps.callbacks.dispatcher,
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-bss-event-id": event.eventId,
          "x-bss-event-type": event.eventType,
          "x-bss-signature": signDelivery(this.deps.secrets.open(subscription.sealedSecret), timestamp, body),
        },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(HUB_DELIVERY_TIMEOUT_MS),
      });
      statusCode = response.status;
      await response.body?.cancel();
      if (statusCode < 200 || statusCode >= 300) error = `callback answered ${statusCode}`;
    } catch (failure) {
      // Refused, timed out, blocked by the callback policy: recorded as this attempt's outcome and retried.
      error = failure instanceof Error ? (failure.name === "TimeoutError" ? "timed out" : failure.message) : "failed";
    }
    const durationMs = Math.round(performance.now() - started);
    // Only while this sender still holds the lease: a delivery reclaimed by another sender is its business now.
    const mine = and(
      eq(hubDeliveries.id, delivery.id),
      eq(hubDeliveries.status, "sending"),
      eq(hubDeliveries.attempts, delivery.attempts),
    );
    return this.deps.database.transaction(async (tx) => {
      await tx.insert(hubDeliveryAttempts).values({
        deliveryId: delivery.id,
        attempt: delivery.attempts,
        attemptedAt,
        statusCode,
        error,
        durationMs,
      });
      if (error === null) {
        await tx
          .update(hubDeliveries)
          .set({
            status: "delivered",
            deliveredAt: attemptedAt,
            lockedUntil: null,
            lastStatusCode: statusCode,
            lastError: null,
          })
          .where(eq(hubDeliveries.id, delivery.id));
        return "delivered" as const;
      }
      const exhausted = delivery.attempts >= HUB_MAX_ATTEMPTS;
      await tx
        .update(hubDeliveries)
        .set({
          status: exhausted ? "failed" : "pending",
          lockedUntil: null,
          lastStatusCode: statusCode,
          lastError: error,
          nextAttemptAt: new Date(attemptedAt.getTime() + backoffSeconds(delivery.attempts) * 1000),
        })
        .where(mine);
      if (!exhausted) return "retrying" as const;
      await tx
        .update(hubSubscriptions)
        .set({
          status: "parked",
          parkedReason: `${HUB_MAX_ATTEMPTS} attempts failed; last: ${error}`,
          updatedAt: attemptedAt,
        })
        .where(eq(hubSubscriptions.id, subscription.id));
      return "failed" as const;
    });
  }
}
