import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { spawnWorker } from "../support/charging.js";
import { hasServers, startEngine } from "../support/engine.js";
import { lineOrder, orderReadyAccount } from "../support/fixtures.js";

/**
 * `npm run worker` as its own process: CDRs accepted by the API are rated by the worker from Redis, ledger rows
 * land in PostgreSQL, and SIGTERM stops it cleanly (exit 0) after the batch in hand.
 */
t.test(
  "a rating worker process rates what the API accepted",
  { skip: !hasServers && "needs PostgreSQL and Redis" },
  async (t) => {
    const engine = await startEngine(t, { driver: "postgres" });
    const { accountId } = await orderReadyAccount(engine);
    const placed = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
      body: lineOrder(accountId),
    });
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
    const records = Array.from({ length: 50 }, (_, index) => ({
      recordType: "voice",
      cdrId: `w-${index}`,
      source: "msc-1",
      servedMSISDN: "+4915100000000",
      calledNumber: index % 2 === 0 ? "+4930123456" : "+33123456789",
      recordOpeningTime: "2026-03-15T10:05:00Z",
      duration: 60,
    }));
    const posted = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: records });
    t.equal(posted.json().accepted, 50);

    const { child: worker, exited } = spawnWorker(engine, "warn");
    t.teardown(() => {
      if (worker.exitCode === null) worker.kill("SIGKILL");
    });
    const deadline = Date.now() + 30_000;
    while ((await engine.count("rated_usage")) < 50 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.equal(await engine.count("rated_usage"), 50, "all rated by the worker");
    const state = await engine.app.services.charging.store.read(accountId);
    // 25 calls of 60 s to France at 0.29/min; the national ones come out of the allowance.
    t.equal(state.spend.get("2026-03-01"), 7_250_000n, "spend to date, written by the worker into the same Redis");
    worker.kill("SIGTERM");
    t.equal(await exited, 0, "stops cleanly on SIGTERM");
  },
);
