import WebSocket from "ws";
import type { Engine } from "./engine.js";

/** A WebSocket client of `/api/v1/ws` for tests: every frame it got, waits for frames, and how it was closed. */
export interface LiveClient {
  socket: WebSocket;
  frames: Array<Record<string, unknown>>;
  /** Alert frames' alerts, in arrival order. */
  alerts(): Array<Record<string, unknown>>;
  /** Resolves when `count` frames matching `type` have arrived (rejects after `ms`). */
  waitFor(type: string, count?: number, ms?: number): Promise<Array<Record<string, unknown>>>;
  closed: Promise<{ code: number; reason: string }>;
}

function wrap(socket: WebSocket): LiveClient {
  const frames: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  socket.on("message", (data) => {
    frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.on("close", (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const wake of waiters.splice(0)) wake();
    });
  });
  socket.on("error", () => {});
  const client: LiveClient = {
    socket,
    frames,
    alerts: () =>
      frames.filter((frame) => frame.type === "alert").map((frame) => frame.alert as Record<string, unknown>),
    async waitFor(type, count = 1, ms = 5_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const matching = frames.filter((frame) => frame.type === type);
        if (matching.length >= count) return matching;
        if (Date.now() > deadline || socket.readyState === WebSocket.CLOSED) {
          throw new Error(`waited for ${count} ${type} frame(s); got ${JSON.stringify(frames)}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    closed,
  };
  return client;
}

/**
 * Opens `/api/v1/ws` on the engine over loopback (the engine starts listening on a free port the first time).
 * (@fastify/websocket's injectWS sends the protocol version as a number, which ws 8.23 refuses.)
 */
export async function openLive(engine: Engine, query: string): Promise<LiveClient> {
  const address = engine.app.server.address();
  const base =
    address !== null && typeof address === "object"
      ? `http://127.0.0.1:${address.port}`
      : await engine.app.listen({ port: 0, host: "127.0.0.1" });
  return connectLive(base, query);
}

/** Opens `/api/v1/ws` on a listening server over the network. */
export async function connectLive(baseUrl: string, query: string): Promise<LiveClient> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/api/v1/ws${query}`);
  const client = wrap(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return client;
}

/** A ticket for a key (the subscriber's or staff's), optionally naming an account. */
export async function ticketFor(engine: Engine, key: string, billingAccountId?: string): Promise<string> {
  const answer = await engine.request("POST", "/api/v1/ws/tickets", {
    key,
    body: billingAccountId === undefined ? {} : { billingAccountId },
  });
  if (answer.statusCode !== 201) throw new Error(`ticket: ${answer.statusCode} ${answer.body}`);
  return answer.json().ticket as string;
}
