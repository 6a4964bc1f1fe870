import { and, asc, count, eq, lt } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import type { Db } from "../../platform/database.js";
import { insertDeferred } from "../../platform/deferred-inserts.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { listFilters } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import { isId, newId } from "../../shared/ids.js";
import { MESSAGE_PENDING_BATCH, MESSAGE_PENDING_RESEND_MS } from "../../shared/limits.js";
import type { MessageChannel } from "./message-channel.js";
import { customerMessages } from "./notifications.tables.js";

export interface MessageRequest {
  customerId: string;
  channel: "sms" | "email";
  /** One of the customer's own addresses on the channel; omitted, its preferred one. */
  to?: string;
  subject?: string;
  body: string;
  /** Why the message was sent ("agent", "order.received", …), for the log. */
  reason: string;
}

export interface MessagesDeps extends ServiceDeps {
  channel: MessageChannel;
  /** From the customers module: whether the customer exists, and its address on a channel. */
  contactOf(
    customerId: string,
    channel: "sms" | "email",
  ): Promise<{ exists: boolean; address: string | null; addresses: string[] }>;
}

function present(row: typeof customerMessages.$inferSelect) {
  return {
    id: row.id,
    channel: row.channel,
    to: row.recipient,
    ...(row.subject !== null ? { subject: row.subject } : {}),
    body: row.body,
    reason: row.reason,
    status: row.status,
    attempts: row.attempts,
    ...(row.lastError !== null ? { lastError: row.lastError } : {}),
    createdAt: row.createdAt.toISOString(),
    ...(row.sentAt !== null ? { sentAt: row.sentAt.toISOString() } : {}),
  };
}

/** Customer messages: stored first, then sent through the channel, the outcome recorded on the stored row. */
export class MessagesService {
  private readonly sentListeners: Array<(message: { id: string; reason: string; sentAt: Date }) => Promise<void>> = [];

  constructor(private readonly deps: MessagesDeps) {}

  /** Called once a message reached the channel (the bill that told a subscriber becomes "sent"). */
  onSent(listener: (message: { id: string; reason: string; sentAt: Date }) => Promise<void>): void {
    this.sentListeners.push(listener);
  }

  async send(actor: Actor, request: MessageRequest) {
    const contact = await this.deps.contactOf(request.customerId, request.channel);
    if (!contact.exists) throw notFound("customer", request.customerId);
    // Only to the customer's own contacts: the operator's gateway must not become anyone's free SMS and mail relay.
    const same = (a: string, b: string) =>
      request.channel === "email" ? a.toLowerCase() === b.toLowerCase() : a === b;
    if (request.to !== undefined && !contact.addresses.some((address) => same(address, request.to as string))) {
      throw new AppError(
        "unprocessable",
        "not_own_contact",
        `to: ${request.to} is not one of customer ${request.customerId}'s ${request.channel === "sms" ? "phone numbers" : "e-mail addresses"}; add it to the customer's contactMedium first`,
        "to",
      );
    }
    const to = request.to ?? contact.address;
    if (to === null) {
      throw new AppError(
        "unprocessable",
        "no_contact",
        `to: customer ${request.customerId} has no ${request.channel} contact`,
        "to",
      );
    }
    const id = await this.deps.database.transaction((tx) => this.queue(tx, actor, { ...request, to }));
    return present(await this.deliver(id));
  }

  /** Stores a message to send (status pending) with the caller's transaction; answers its id. */
  async queue(tx: Db, actor: Actor, request: MessageRequest & { to: string }): Promise<string> {
    const now = this.deps.clock.now();
    const id = newId(now.getTime());
    await tx.insert(customerMessages).values({
      id,
      customerId: request.customerId,
      channel: request.channel,
      recipient: request.to,
      subject: request.subject ?? null,
      body: request.body,
      reason: request.reason,
      status: "pending",
      attempts: 0,
      createdAt: now,
    });
    await this.deps.audit.record(tx, actor, {
      action: "send",
      entityType: "customerMessage",
      entityId: id,
      after: { customerId: request.customerId, channel: request.channel, to: request.to, reason: request.reason },
    });
    return id;
  }

  /**
   * Stores messages to send (status pending), ids chosen by the caller, with its transaction, in one statement at
   * commit and without an audit row each: for documents whose own audit row says they were issued (bill runs write
   * thousands). Delivered by `deliver`, or by `deliverPending` if the process stops first.
   */
  async queueMany(tx: Db, messages: ReadonlyArray<MessageRequest & { id: string; to: string }>): Promise<void> {
    const now = this.deps.clock.now();
    for (const message of messages) {
      await insertDeferred(tx, customerMessages, {
        id: message.id,
        customerId: message.customerId,
        channel: message.channel,
        recipient: message.to,
        subject: message.subject ?? null,
        body: message.body,
        reason: message.reason,
        status: "pending",
        attempts: 0,
        createdAt: now,
      });
    }
  }

  /**
   * Sends a stored message through the channel and records the outcome. The message id is the gateway's
   * idempotency key, so sending a message again (a resend after a crash) reaches the customer once.
   */
  async deliver(id: string): Promise<typeof customerMessages.$inferSelect> {
    const db = this.deps.database.db;
    const [stored] = await db.select().from(customerMessages).where(eq(customerMessages.id, id));
    if (!stored) throw notFound("customerMessage", id);
    if (stored.status !== "pending") return stored;
    const result = await this.deps.channel.send({
      id,
      channel: stored.channel as "sms" | "email",
      to: stored.recipient,
      body: stored.body,
      ...(stored.subject !== null ? { subject: stored.subject } : {}),
    });
    const [row] = await db
      .update(customerMessages)
      .set({
        status: result.status,
        attempts: stored.attempts + result.attempts,
        lastError: result.error ?? null,
        sentAt: result.status === "sent" ? this.deps.clock.now() : null,
      })
      .where(and(eq(customerMessages.id, id), eq(customerMessages.status, "pending")))
      .returning();
    if (row?.status === "sent" && row.sentAt !== null) {
      for (const listener of this.sentListeners) await listener({ id: row.id, reason: row.reason, sentAt: row.sentAt });
    }
    return row ?? stored;
  }

  /** Messages left pending by a process that stopped between storing and sending them: sent now. */
  async deliverPending(): Promise<number> {
    const before = new Date(this.deps.clock.now().getTime() - MESSAGE_PENDING_RESEND_MS);
    const rows = await this.deps.database.db
      .select({ id: customerMessages.id })
      .from(customerMessages)
      .where(and(eq(customerMessages.status, "pending"), lt(customerMessages.createdAt, before)))
      .orderBy(asc(customerMessages.id))
      .limit(MESSAGE_PENDING_BATCH);
    for (const row of rows) await this.deliver(row.id);
    return rows.length;
  }

  async list(customerId: string, request: ListRequest) {
    if (!isId(customerId) || !(await this.deps.contactOf(customerId, "email")).exists)
      throw notFound("customer", customerId);
    const db = this.deps.database.db;
    const where = listFilters(
      { id: customerMessages.id, status: customerMessages.status, channel: customerMessages.channel },
      request,
      [eq(customerMessages.customerId, customerId)],
    );
    const rows = await db
      .select()
      .from(customerMessages)
      .where(where)
      .orderBy(asc(customerMessages.id))
      .offset(request.offset)
      .limit(request.limit);
    const [counted] = await db.select({ total: count() }).from(customerMessages).where(where);
    return { items: rows.map(present), total: counted?.total ?? 0 };
  }
}
