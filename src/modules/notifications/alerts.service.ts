import { and, asc, count, desc, eq, gt, inArray, isNull, lt, sql } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { AlertDraft, AlertKind, AlertSink, RaisedAlert } from "../../platform/alerts.js";
import { type Actor, SYSTEM_ACTOR } from "../../platform/audit.js";
import type { Broadcast } from "../../platform/broadcast.js";
import { afterCommit, type Db } from "../../platform/database.js";
import { notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, TMF_BASE, tmfRef } from "../../platform/tmf.js";
import { ALERT_RELAY_BATCH, ALERT_RELAY_GRACE_MS } from "../../shared/limits.js";
import type { MessagesService } from "./messages.service.js";
import { type AlertRow, alerts } from "./notifications.tables.js";

/** The channel API processes' WebSocket hubs listen on (Redis pub/sub, or in-process in embedded mode). */
export const ALERTS_CHANNEL = "alerts";

export const ALERTS_PATH = "/api/v1/alerts";

/** The alert as every channel presents it (REST, WebSocket, hub event body). */
export function presentAlert(alert: RaisedAlert) {
  return {
    id: alert.id,
    href: `${ALERTS_PATH}/${alert.id}`,
    "@type": "Alert" as const,
    kind: alert.kind,
    message: alert.message,
    raisedAt: alert.raisedAt,
    billingAccount: tmfRef(`${TMF_BASE.account}/billingAccount`, alert.billingAccountId, "BillingAccount"),
    ...(alert.productId === null
      ? {}
      : { product: tmfRef(`${TMF_BASE.productInventory}/product`, alert.productId, "Product") }),
    ...(alert.bucketId === undefined
      ? {}
      : { bucket: tmfRef("/tmf-api/prepayBalanceManagement/v4/bucket", alert.bucketId, "Bucket") }),
    ...(alert.period === undefined ? {} : { period: alert.period }),
    ...(alert.threshold === undefined ? {} : { threshold: alert.threshold }),
    ...(alert.value === undefined ? {} : { value: alert.value }),
    ...(alert.usageId === undefined ? {} : { usage: tmfRef(`${TMF_BASE.usage}/usage`, alert.usageId, "Usage") }),
  };
}
export type PresentedAlert = ReturnType<typeof presentAlert>;

type Body = Omit<AlertDraft, "dedupeKey" | "kind" | "billingAccountId" | "productId">;

function raised(row: AlertRow): RaisedAlert {
  const body = row.body as Body;
  return {
    ...body,
    dedupeKey: row.dedupeKey,
    kind: row.kind as AlertKind,
    billingAccountId: row.billingAccountId,
    productId: row.productId,
    id: String(row.id),
    raisedAt: row.raisedAt.toISOString(),
  };
}

export interface AlertsDeps extends ServiceDeps {
  broadcast: Broadcast;
  messages: MessagesService;
  log: FastifyBaseLogger;
  /** Where a billing account's customer takes messages: its customer, channel and address, or null (none). */
  recipientOf(
    billingAccountId: string,
  ): Promise<{ customerId: string; channel: "sms" | "email"; address: string } | null>;
  billingAccountExists(db: Db, id: string): Promise<boolean>;
}

/**
 * Alerts (DESIGN.md §5): recorded once in the transaction of what caused them (a crossing, a barring), each with
 * a TMF event in the outbox for hub callbacks; after the commit published to every API process for WebSocket
 * clients; then handed to the message channel. A relay pass repeats a publish or a message a crash left undone,
 * so every alert reaches every channel even if the process that raised it died just after its commit.
 */
export class AlertsService implements AlertSink {
  constructor(private readonly deps: AlertsDeps) {}

  async record(tx: Db, drafts: readonly AlertDraft[]): Promise<RaisedAlert[]> {
    if (drafts.length === 0) return [];
    const now = this.deps.clock.now();
    const rows = await tx
      .insert(alerts)
      .values(
        drafts.map(({ dedupeKey, kind, billingAccountId, productId, ...body }) => ({
          dedupeKey,
          kind,
          billingAccountId,
          productId,
          body,
          raisedAt: now,
        })),
      )
      .onConflictDoNothing({ target: alerts.dedupeKey })
      .returning();
    const out = rows.sort((a, b) => a.id - b.id).map(raised);
    for (const alert of out) {
      await this.deps.events.record(tx, {
        api: "prepayBalanceManagement",
        resource: "alert",
        change: "Create",
        resourceId: alert.id,
        body: presentAlert(alert),
      });
    }
    if (out.length > 0) afterCommit(tx, () => void this.announce(out));
    return out;
  }

  async announce(raisedAlerts: readonly RaisedAlert[]): Promise<void> {
    try {
      await this.publish(this.deps.database.db, raisedAlerts);
    } catch (error) {
      this.deps.log.warn({ err: error }, "announcing alerts failed; the relay publishes them");
    }
  }

  /** Publishes alerts to every API process, in id order, then marks them published. */
  private async publish(db: Db, raisedAlerts: readonly RaisedAlert[]): Promise<void> {
    if (raisedAlerts.length === 0) return;
    for (const alert of raisedAlerts) {
      await this.deps.broadcast.publish(ALERTS_CHANNEL, JSON.stringify(presentAlert(alert)));
    }
    await this.mark(
      db,
      "publishedAt",
      raisedAlerts.map((alert) => Number(alert.id)),
    );
  }

  private async mark(db: Db, column: "publishedAt" | "messagedAt", ids: readonly number[]): Promise<void> {
    if (ids.length > 0)
      await db
        .update(alerts)
        .set({ [column]: this.deps.clock.now() })
        .where(inArray(alerts.id, [...ids]));
  }

  /**
   * One relay pass: publishes alerts still unpublished ALERT_RELAY_GRACE_MS after they were raised (their
   * raiser died between commit and publish, or Redis was away), then hands unmessaged alerts to the message
   * channel and sends the messages. Answers how many of each it handled.
   */
  async relay(): Promise<{ published: number; messaged: number }> {
    const before = new Date(this.deps.clock.now().getTime() - ALERT_RELAY_GRACE_MS);
    const published = await this.deps.database.transaction(async (tx) => {
      const rows = await tx
        .select()
        .from(alerts)
        .where(and(isNull(alerts.publishedAt), lt(alerts.raisedAt, before)))
        .orderBy(asc(alerts.id))
        .limit(ALERT_RELAY_BATCH)
        .for("update", { skipLocked: true });
      await this.publish(tx, rows.map(raised));
      return rows.length;
    });
    // Messages: each alert becomes one stored message in the same transaction that marks it messaged, so a
    // crash leaves either both or neither; the stored message is then sent (a pending one is resent later).
    // Recipients are looked up first, outside the transaction (PGlite has one session: no reads beside it).
    const waiting = await this.deps.database.db
      .select({ id: alerts.id, billingAccountId: alerts.billingAccountId })
      .from(alerts)
      .where(isNull(alerts.messagedAt))
      .orderBy(asc(alerts.id))
      .limit(ALERT_RELAY_BATCH);
    const recipients = new Map<string, Awaited<ReturnType<AlertsDeps["recipientOf"]>>>();
    for (const { billingAccountId } of waiting) {
      if (!recipients.has(billingAccountId))
        recipients.set(billingAccountId, await this.deps.recipientOf(billingAccountId));
    }
    const queued =
      waiting.length === 0
        ? []
        : await this.deps.database.transaction(async (tx) => {
            const rows = await tx
              .select()
              .from(alerts)
              .where(
                and(
                  inArray(
                    alerts.id,
                    waiting.map((row) => row.id),
                  ),
                  isNull(alerts.messagedAt),
                ),
              )
              .orderBy(asc(alerts.id))
              .for("update", { skipLocked: true });
            const ids: string[] = [];
            for (const row of rows) {
              const recipient = recipients.get(row.billingAccountId);
              if (!recipient) continue;
              ids.push(
                await this.deps.messages.queue(tx, SYSTEM_ACTOR, {
                  customerId: recipient.customerId,
                  channel: recipient.channel,
                  to: recipient.address,
                  body: raised(row).message,
                  reason: `alert.${row.kind}`,
                }),
              );
            }
            await this.mark(
              tx,
              "messagedAt",
              rows.map((row) => row.id),
            );
            return ids;
          });
    for (const id of queued) await this.deps.messages.deliver(id);
    return { published, messaged: queued.length };
  }

  /** Alerts in id order after `afterId`, of one account or of all (null): a reconnecting client's replay. */
  async after(accountId: string | null, afterId: number, limit: number): Promise<PresentedAlert[]> {
    const rows = await this.deps.database.db
      .select()
      .from(alerts)
      .where(and(gt(alerts.id, afterId), accountId === null ? undefined : eq(alerts.billingAccountId, accountId)))
      .orderBy(asc(alerts.id))
      .limit(limit);
    return rows.map((row) => presentAlert(raised(row)));
  }

  /** An account's latest alerts, newest first (self-care). */
  async recent(accountId: string, limit: number): Promise<PresentedAlert[]> {
    const rows = await this.deps.database.db
      .select()
      .from(alerts)
      .where(eq(alerts.billingAccountId, accountId))
      .orderBy(desc(alerts.id))
      .limit(limit);
    return rows.map((row) => presentAlert(raised(row)));
  }

  /** Alerts, newest first; a subscriber sees its own account's, and naming another account is a 404. */
  async list(actor: Actor, request: ListRequest) {
    const db = this.deps.database.db;
    const named = request.filters.billingAccountId ?? [];
    if (actor.role === "subscriber") {
      const other = named.find((id) => id !== actor.billingAccountId);
      if (other !== undefined) throw notFound("billingAccount", other);
    } else {
      for (const id of named) if (!(await this.deps.billingAccountExists(db, id))) throw notFound("billingAccount", id);
    }
    const where = listFilters(
      { id: alerts.id, billingAccountId: alerts.billingAccountId, kind: alerts.kind, productId: alerts.productId },
      request,
      [actor.role === "subscriber" ? eq(alerts.billingAccountId, actor.billingAccountId ?? "") : undefined],
    );
    const [rows, counted] = await Promise.all([
      db.select().from(alerts).where(where).orderBy(desc(alerts.id)).offset(request.offset).limit(request.limit),
      db.select({ total: count() }).from(alerts).where(where),
    ]);
    return { items: rows.map((row) => presentAlert(raised(row))), total: counted[0]?.total ?? 0 };
  }

  async get(actor: Actor, id: string) {
    const [row] = /^[1-9][0-9]{0,17}$/.test(id)
      ? await this.deps.database.db
          .select()
          .from(alerts)
          .where(eq(alerts.id, Number(id)))
      : [];
    if (!row || (actor.role === "subscriber" && actor.billingAccountId !== row.billingAccountId)) {
      throw notFound("alert", id);
    }
    return presentAlert(raised(row));
  }

  /** The newest alert id (a client connecting without a cursor starts after it). */
  async latestId(): Promise<number> {
    const [row] = await this.deps.database.db
      .select({ id: sql<number>`coalesce(max(${alerts.id}), 0)::bigint` })
      .from(alerts);
    return Number(row?.id ?? 0);
  }
}
