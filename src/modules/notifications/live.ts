import { createHash, randomBytes } from "node:crypto";
import { and, eq, gt, isNull, lt } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import type { RawData, WebSocket } from "ws";
import type { Actor } from "../../platform/audit.js";
import type { Broadcast } from "../../platform/broadcast.js";
import type { Db } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import { isId, newId } from "../../shared/ids.js";
import {
  API_KEY_CACHE_TTL_MS,
  WS_HEARTBEAT_MS,
  WS_REPLAY_PAGE,
  WS_SEND_QUEUE_BYTES,
  WS_TICKET_TTL_MS,
} from "../../shared/limits.js";
import { ALERTS_CHANNEL, type AlertsService, type PresentedAlert } from "./alerts.service.js";
import { wsTickets } from "./notifications.tables.js";

/**
 * Close codes of `/api/v1/ws`, each with a reason text. 1007/1008/1009/1003 are the protocol's own; 44xx mirror
 * the HTTP statuses a REST call would have answered.
 */
export const WS_CLOSE = {
  /** 1001: the server is shutting down; reconnect with `after`. */
  goingAway: 1001,
  /** 1003: a binary frame. */
  unsupported: 1003,
  /** 1007: a text frame that is not JSON. */
  malformed: 1007,
  /** 1008: a JSON frame the server does not understand. */
  policy: 1008,
  /** 1009: a frame over WS_MAX_FRAME_BYTES (closed by the WebSocket layer itself). */
  tooBig: 1009,
  /** 4400: a bad query parameter (`after`). */
  badRequest: 4400,
  /** 4401: no ticket, or an unknown, expired or used one. */
  unauthorized: 4401,
  /** 4408: the client read too slowly and its send queue filled; reconnect with `after` to catch up. */
  slowConsumer: 4408,
  /** 4429: the API key already has as many connections open as it may (per API process). */
  tooMany: 4429,
} as const;

export interface LiveDeps extends ServiceDeps {
  alerts: AlertsService;
  broadcast: Broadcast;
  log: FastifyBaseLogger;
  billingAccountExists(db: Db, id: string): Promise<boolean>;
  /** From the access module: the ids among these of keys that still work (not revoked, not expired). */
  liveKeyIds(ids: readonly string[]): Promise<Set<string>>;
  /** Open connections one API key may hold on one API process. */
  maxSocketsPerKey: number;
}

interface Scope {
  /** The one account a connection follows, or null: every account (staff). */
  billingAccountId: string | null;
  keyId: string;
}

/** How many alert ids a connection remembers having sent, so a relayed duplicate is not sent twice. */
const REMEMBERED_IDS = 1_024;
/** Alerts held for a connection while its replay runs; more means it is far behind and must reconnect. */
const HELD_MAX = 1_000;

/** One connected client: what it follows, what it was sent, and the live alerts held while its replay runs. */
class Client {
  alive = true;
  replaying = true;
  held: PresentedAlert[] = [];
  readonly sent = new Set<string>();
  closed = false;

  constructor(
    readonly socket: WebSocket,
    readonly scope: Scope,
  ) {}

  /** Sends an alert once; a client whose send queue is full is closed (it reconnects with `after`). */
  deliver(alert: PresentedAlert): void {
    if (this.closed || this.sent.has(alert.id)) return;
    if (this.replaying) {
      if (this.held.length >= HELD_MAX)
        this.close(WS_CLOSE.slowConsumer, "too many alerts behind; reconnect with after");
      else this.held.push(alert);
      return;
    }
    this.send({ type: "alert", alert });
    this.remember(alert.id);
  }

  /** Notes an alert as sent, forgetting the oldest beyond REMEMBERED_IDS. */
  remember(id: string): void {
    this.sent.add(id);
    if (this.sent.size > REMEMBERED_IDS) this.sent.delete(this.sent.values().next().value as string);
  }

  send(frame: unknown): void {
    if (this.closed) return;
    if (this.socket.bufferedAmount > WS_SEND_QUEUE_BYTES) {
      this.close(WS_CLOSE.slowConsumer, "send queue full; reconnect with after=<last alert id>");
      return;
    }
    this.socket.send(JSON.stringify(frame));
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close(code, reason);
  }
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * The live side of alerts (API.md `/api/v1/ws`): single-use tickets, connections by account, replay after a
 * cursor, and fan-out of every alert published on ALERTS_CHANNEL by any process (Redis pub/sub, or in-process in
 * embedded mode) to the connections of this process that follow its account.
 */
export class LiveHub {
  readonly #clients = new Map<string | null, Set<Client>>();
  /** Open connections per API key. */
  readonly #perKey = new Map<string, number>();
  #heartbeat: NodeJS.Timeout | null = null;
  #keyCheck: NodeJS.Timeout | null = null;

  constructor(private readonly deps: LiveDeps) {}

  async start(): Promise<void> {
    await this.deps.broadcast.subscribe(ALERTS_CHANNEL, (message) => {
      let alert: PresentedAlert;
      try {
        alert = JSON.parse(message) as PresentedAlert;
      } catch {
        return;
      }
      this.fanOut(alert);
    });
    this.#heartbeat = setInterval(() => this.beat(), WS_HEARTBEAT_MS);
    this.#heartbeat.unref();
    // A revocation closes sockets at once through pub/sub; this re-check covers a lost message and expired keys.
    this.#keyCheck = setInterval(() => {
      this.closeDeadKeys().catch((error: unknown) =>
        this.deps.log.warn({ err: error }, "re-checking socket keys failed"),
      );
    }, API_KEY_CACHE_TTL_MS);
    this.#keyCheck.unref();
  }

  stop(): void {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#keyCheck !== null) clearInterval(this.#keyCheck);
    for (const clients of this.#clients.values()) {
      for (const client of clients) client.close(WS_CLOSE.goingAway, "server shutting down; reconnect with after");
    }
    this.#clients.clear();
    this.#perKey.clear();
  }

  /** Connections open in this process (metrics, tests). */
  get connections(): number {
    let total = 0;
    for (const clients of this.#clients.values()) total += clients.size;
    return total;
  }

  /**
   * A ticket for one connection within WS_TICKET_TTL_MS. A subscriber's follows its own account (naming another
   * is a 404); staff may name an account or follow every account.
   */
  async issueTicket(actor: Actor, billingAccountId: string | undefined) {
    if (actor.keyId === null) throw new AppError("unauthorized", "missing_api_key", "a ticket needs an API key");
    let scope: string | null;
    if (actor.role === "subscriber") {
      if (billingAccountId !== undefined && billingAccountId !== actor.billingAccountId) {
        throw notFound("billingAccount", billingAccountId);
      }
      scope = actor.billingAccountId;
    } else {
      if (
        billingAccountId !== undefined &&
        (!isId(billingAccountId) || !(await this.deps.billingAccountExists(this.deps.database.db, billingAccountId)))
      ) {
        throw notFound("billingAccount", billingAccountId);
      }
      scope = billingAccountId ?? null;
    }
    const now = this.deps.clock.now();
    const id = newId(now.getTime());
    const ticket = randomBytes(32).toString("base64url");
    const expiresAt = new Date(now.getTime() + WS_TICKET_TTL_MS);
    await this.deps.database.transaction(async (tx) => {
      await tx.insert(wsTickets).values({
        id,
        ticketHash: sha256(ticket),
        keyId: actor.keyId as string,
        role: actor.role,
        billingAccountId: scope,
        createdAt: now,
        expiresAt,
      });
      await this.deps.audit.record(tx, actor, {
        action: "issue",
        entityType: "wsTicket",
        entityId: id,
        after: { billingAccountId: scope, expiresAt: expiresAt.toISOString() },
      });
    });
    return {
      id,
      "@type": "WebSocketTicket" as const,
      ticket,
      expiresAt: expiresAt.toISOString(),
      ...(scope === null ? {} : { billingAccountId: scope }),
      url: "/api/v1/ws",
    };
  }

  /**
   * Consumes a ticket: its scope, or why it is refused. A ticket works once, within its lifetime, and only while
   * the key that obtained it works (a revocation voids the key's tickets; an expired key's are refused here).
   */
  async redeem(ticket: string): Promise<Scope | { refused: string }> {
    const db = this.deps.database.db;
    const now = this.deps.clock.now();
    const hash = sha256(ticket);
    const [used] = await db
      .update(wsTickets)
      .set({ usedAt: now })
      .where(and(eq(wsTickets.ticketHash, hash), isNull(wsTickets.usedAt), gt(wsTickets.expiresAt, now)))
      .returning();
    const [known] = used ? [used] : await db.select().from(wsTickets).where(eq(wsTickets.ticketHash, hash));
    if (!known) return { refused: "unknown ticket" };
    if (!(await this.deps.liveKeyIds([known.keyId])).has(known.keyId)) {
      return { refused: "the ticket's API key is revoked or expired" };
    }
    if (used) return { billingAccountId: used.billingAccountId, keyId: used.keyId };
    if (known.usedAt !== null) return { refused: "ticket already used; obtain a new one" };
    return { refused: "ticket expired; obtain a new one" };
  }

  /** In the transaction that revokes a key: its unused tickets can no longer be used. */
  async voidTickets(tx: Db, keyId: string, now: Date): Promise<void> {
    await tx
      .update(wsTickets)
      .set({ usedAt: now })
      .where(and(eq(wsTickets.keyId, keyId), isNull(wsTickets.usedAt)));
  }

  /** Closes this process's connections opened with a key that no longer works. */
  closeKey(keyId: string): void {
    for (const clients of this.#clients.values()) {
      for (const client of clients) {
        if (client.scope.keyId === keyId) client.close(WS_CLOSE.unauthorized, "the API key was revoked or expired");
      }
    }
  }

  private async closeDeadKeys(): Promise<void> {
    const keys = [...this.#perKey.keys()];
    if (keys.length === 0) return;
    const live = await this.deps.liveKeyIds(keys);
    for (const keyId of keys) if (!live.has(keyId)) this.closeKey(keyId);
  }

  /** Tickets that expired an hour ago or more are of no use to anyone: deleted. */
  async purgeTickets(): Promise<number> {
    const before = new Date(this.deps.clock.now().getTime() - 3_600_000);
    const gone = await this.deps.database.db
      .delete(wsTickets)
      .where(lt(wsTickets.expiresAt, before))
      .returning({ id: wsTickets.id });
    return gone.length;
  }

  /**
   * A new connection. Frames are read from the first moment (so none is missed while the ticket is checked);
   * the only frame a client sends is `{"type":"ping"}`. Then the ticket, then the replay of what came after the
   * client's cursor, then live alerts.
   */
  accept(socket: WebSocket, query: { ticket?: string; after?: string }): void {
    let client: Client | null = null;
    let closed = false;
    const refuse = (code: number, reason: string) => {
      closed = true;
      if (client !== null) client.close(code, reason);
      else socket.close(code, reason);
    };
    socket.on("message", (data: RawData, isBinary: boolean) => {
      if (closed) return;
      if (isBinary) return refuse(WS_CLOSE.unsupported, "binary frames are not accepted; send JSON text");
      let frame: unknown;
      try {
        frame = JSON.parse(data.toString("utf8"));
      } catch {
        return refuse(WS_CLOSE.malformed, "malformed frame: not JSON");
      }
      const type = frame !== null && typeof frame === "object" ? (frame as { type?: unknown }).type : undefined;
      if (type !== "ping") return refuse(WS_CLOSE.policy, 'unknown frame: the only client frame is {"type":"ping"}');
      if (client !== null) client.send({ type: "pong" });
      else socket.send(JSON.stringify({ type: "pong" }));
    });
    socket.on("pong", () => {
      if (client !== null) client.alive = true;
    });
    socket.on("close", () => {
      closed = true;
      if (client !== null) this.remove(client);
    });

    if (query.ticket === undefined || query.ticket === "") {
      refuse(WS_CLOSE.unauthorized, "no ticket: obtain one with POST /api/v1/ws/tickets");
      return;
    }
    if (query.after !== undefined && !/^(0|[1-9][0-9]{0,17})$/.test(query.after)) {
      refuse(WS_CLOSE.badRequest, "after: must be the id of the last alert received");
      return;
    }
    const ticket = query.ticket;
    const after = query.after === undefined ? null : Number(query.after);
    void (async () => {
      const scope = await this.redeem(ticket);
      if (closed) return;
      if ("refused" in scope) return refuse(WS_CLOSE.unauthorized, scope.refused);
      if ((this.#perKey.get(scope.keyId) ?? 0) >= this.deps.maxSocketsPerKey) {
        return refuse(
          WS_CLOSE.tooMany,
          `this API key already has ${this.deps.maxSocketsPerKey} connections open; close one first`,
        );
      }
      client = new Client(socket, scope);
      this.add(client);
      client.send({
        type: "ready",
        ...(scope.billingAccountId === null ? {} : { billingAccountId: scope.billingAccountId }),
      });
      if (after !== null) await this.replay(client, after);
      client.replaying = false;
      const held = client.held;
      client.held = [];
      for (const alert of held.sort((a, b) => Number(a.id) - Number(b.id))) client.deliver(alert);
    })().catch((error: unknown) => {
      this.deps.log.error({ err: error }, "opening a WebSocket connection failed");
      refuse(1011, "internal error; try again");
    });
  }

  /** Sends every stored alert after the cursor, a page at a time, waiting for each page to be written out. */
  private async replay(client: Client, after: number): Promise<void> {
    let cursor = after;
    let count = 0;
    for (;;) {
      const page = await this.deps.alerts.after(client.scope.billingAccountId, cursor, WS_REPLAY_PAGE);
      for (const alert of page) {
        if (client.closed) return;
        client.send({ type: "alert", alert });
        client.remember(alert.id);
      }
      count += page.length;
      if (page.length < WS_REPLAY_PAGE) break;
      cursor = Number(page[page.length - 1]?.id);
      // Backpressure: the next page waits until this one is mostly written out (a client that stops reading
      // is closed by send() once its queue is full).
      while (!client.closed && client.socket.bufferedAmount > WS_SEND_QUEUE_BYTES / 4) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    client.send({ type: "replayed", count });
  }

  private fanOut(alert: PresentedAlert): void {
    const account = alert.billingAccount?.id;
    if (account !== undefined) for (const client of this.#clients.get(account) ?? []) client.deliver(alert);
    for (const client of this.#clients.get(null) ?? []) client.deliver(alert);
  }

  private add(client: Client): void {
    const key = client.scope.billingAccountId;
    const clients = this.#clients.get(key) ?? new Set();
    clients.add(client);
    this.#clients.set(key, clients);
    this.#perKey.set(client.scope.keyId, (this.#perKey.get(client.scope.keyId) ?? 0) + 1);
  }

  private remove(client: Client): void {
    client.closed = true;
    const clients = this.#clients.get(client.scope.billingAccountId);
    if (clients?.delete(client) !== true) return;
    if (clients.size === 0) this.#clients.delete(client.scope.billingAccountId);
    const open = (this.#perKey.get(client.scope.keyId) ?? 1) - 1;
    if (open === 0) this.#perKey.delete(client.scope.keyId);
    else this.#perKey.set(client.scope.keyId, open);
  }

  /** Pings every client; one that did not answer the last ping is gone and its socket is dropped. */
  private beat(): void {
    for (const clients of this.#clients.values()) {
      for (const client of clients) {
        if (!client.alive) {
          client.socket.terminate();
          this.remove(client);
          continue;
        }
        client.alive = false;
        client.socket.ping();
      }
    }
  }
}
