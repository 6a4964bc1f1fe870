import { asc, count, eq } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { equalityFilters } from "../../platform/sql.js";
import type { ListRequest } from "../../platform/tmf.js";
import { isId, newId } from "../../shared/ids.js";
import type { MessageChannel } from "./message-channel.js";
import { customerMessages } from "./notifications.tables.js";

export interface MessageRequest {
  customerId: string;
  channel: "sms" | "email";
  /** Omitted: the customer's own e-mail address or mobile number. */
  to?: string;
  subject?: string;
  body: string;
  /** Why the message was sent ("agent", "order.received", …), for the log. */
  reason: string;
}

export interface MessagesDeps extends ServiceDeps {
  channel: MessageChannel;
  /** From the customers module: whether the customer exists, and its address on a channel. */
  contactOf(customerId: string, channel: "sms" | "email"): Promise<{ exists: boolean; address: string | null }>;
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
  constructor(private readonly deps: MessagesDeps) {}

  async send(actor: Actor, request: MessageRequest) {
    const contact = await this.deps.contactOf(request.customerId, request.channel);
    if (!contact.exists) throw notFound("customer", request.customerId);
    const to = request.to ?? contact.address;
    if (to === null) {
      throw new AppError(
        "unprocessable",
        "no_contact",
        `to: customer ${request.customerId} has no ${request.channel} contact`,
        "to",
      );
    }
    const now = this.deps.clock.now();
    const id = newId(now.getTime());
    await this.deps.database.transaction(async (tx) => {
      await tx.insert(customerMessages).values({
        id,
        customerId: request.customerId,
        channel: request.channel,
        recipient: to,
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
        after: { customerId: request.customerId, channel: request.channel, to, reason: request.reason },
      });
    });
    const result = await this.deps.channel.send({
      id,
      channel: request.channel,
      to,
      body: request.body,
      ...(request.subject !== undefined ? { subject: request.subject } : {}),
    });
    const [row] = await this.deps.database.db
      .update(customerMessages)
      .set({
        status: result.status,
        attempts: result.attempts,
        lastError: result.error ?? null,
        sentAt: result.status === "sent" ? this.deps.clock.now() : null,
      })
      .where(eq(customerMessages.id, id))
      .returning();
    return present(row as typeof customerMessages.$inferSelect);
  }

  async list(customerId: string, request: ListRequest) {
    if (!isId(customerId) || !(await this.deps.contactOf(customerId, "email")).exists)
      throw notFound("customer", customerId);
    const db = this.deps.database.db;
    const where = equalityFilters(
      { status: customerMessages.status, channel: customerMessages.channel },
      request.filters,
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
