import { RatingService, startRatingLoop } from "../../src/modules/charging/rating.service.js";
import type { MessageChannel } from "../../src/modules/notifications/message-channel.js";
import { type Engine, startEngine } from "./engine.js";

/**
 * The engine as `npm start` runs it embedded, for scenarios on the test clock through the API: its own rating loop
 * (the clock route drains the queue before each move), orders fulfilled in the background, the clock moved by the
 * admin route (each crossed day's jobs run in order).
 */
export async function clockEngine(
  t: Parameters<typeof startEngine>[0],
  options: { messageChannel?: MessageChannel; start?: string } = {},
) {
  const engine = await startEngine(t, {
    driver: "pglite",
    testClock: true,
    // Where business time starts (BSS_TEST_CLOCK_START): the scenario's first date, whatever today is.
    ...(options.start === undefined ? {} : { env: { BSS_TEST_CLOCK_START: options.start } }),
    orderFulfilment: "background",
    ...(options.messageChannel === undefined ? {} : { messageChannel: options.messageChannel }),
  });
  const loop = startRatingLoop(
    engine.app.services.charging.rating,
    engine.app.services.charging.leases("embedded"),
    engine.app.log,
    RatingService.jobs({ ...engine.app.services.charging, usage: engine.app.services.usage.usage }, engine.config),
  );
  t.teardown(() => loop.stop());
  /** A call that must succeed; its JSON answer. */
  const api = async (method: string, url: string, body?: unknown, key = engine.keys.admin) => {
    const answer = await engine.request(method, url, { key, ...(body === undefined ? {} : { body }) });
    if (answer.statusCode >= 300) throw new Error(`${method} ${url}: ${answer.statusCode} ${answer.body}`);
    return answer.json();
  };
  const moveTo = (to: string) => api("POST", "/api/v1/admin/clock", { to });
  return { engine, api, moveTo, waitForOrder: (id: string) => waitForOrder(engine, id) };
}

/** An order placed through the API, once it is completed (fulfilled in the background). */
export async function waitForOrder(engine: Engine, id: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const order = (await engine.request("GET", `/tmf-api/productOrderingManagement/v4/productOrder/${id}`)).json();
    if (order.state === "completed") return order;
    if (order.state === "failed" || order.state === "rejected" || Date.now() > deadline) {
      throw new Error(`order ${id} is ${order.state}: ${JSON.stringify(order)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
