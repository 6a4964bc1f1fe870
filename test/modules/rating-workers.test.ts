import { Redis } from "ioredis";
import t from "tap";
import { redisShardLeases } from "../../src/modules/charging/leases.js";
import { POISON_DELIVERIES } from "../../src/modules/charging/rating.service.js";
import { drivers, type Engine, hasServers, services, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";

/** Leases, fencing and poison records: the loop's promises when workers pause, die or meet a bad record. */

let sequence = 0;
async function postCall(engine: Engine, msisdn: string) {
  sequence += 1;
  const answer = await engine.request("POST", "/api/v1/cdrs", {
    key: engine.keys.network,
    body: [
      {
        recordType: "voice",
        cdrId: `lw-${sequence}`,
        source: "msc-1",
        servedMSISDN: msisdn,
        calledNumber: "+33123456789",
        recordOpeningTime: "2026-03-15T10:05:00Z",
        duration: 60,
      },
    ],
  });
  if (answer.json().accepted !== 1) throw new Error(answer.body);
}

async function prepare(t: Parameters<typeof startEngine>[0], driver: Engine["driver"]) {
  const engine = await startEngine(t, { driver });
  const { accountId } = await orderReadyAccount(engine);
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const { msisdn } = await activateLine(engine, accountId);
  return { engine, accountId, msisdn };
}

for (const driver of drivers) {
  t.test(`[${driver}] a poison record goes to suspense after bounded deliveries; the others are rated`, async (t) => {
    const { engine, accountId, msisdn } = await prepare(t, driver);
    const { accountId: healthy } = await orderReadyAccount(engine, { numbers: ["+4915100000300", "+4915100000301"] });
    const other = await activateLine(engine, healthy);
    const store = engine.app.services.charging.store;
    const step = store.step.bind(store);
    // The step fails for one account, every time (a record the loop cannot apply).
    store.step = async (request) => {
      if (request.accountId === accountId) throw new Error("simulated failure in the charging step");
      return step(request);
    };
    await postCall(engine, msisdn);
    await postCall(engine, other.msisdn);
    const rating = engine.app.services.charging.rating;
    t.equal(await rating.rateOnce("w"), 1, "the healthy account's record is rated and acknowledged");
    for (let pass = 2; pass < POISON_DELIVERIES; pass++)
      t.equal(await rating.rateOnce("w"), 0, `pass ${pass}: retried`);
    t.equal(await rating.rateOnce("w"), 1, "after the last delivery the poison record is settled");
    t.equal(await rating.rateOnce("w"), 0, "and nothing is left");
    const [suspense] = await engine.sql<{ reason: string; message: string }>(
      "select reason, message from usage_suspense where resolved_at is null",
    );
    t.equal(suspense?.reason, "rating_failed");
    t.match(suspense?.message, /rating failed 5 times: simulated failure/);
    t.equal(await engine.count("rated_usage"), 1);
    store.step = step;
  });
}

t.test(
  "a lease taken over from a paused worker: its late writes are fenced, nothing charged twice",
  { skip: !hasServers && "needs Redis" },
  async (t) => {
    const { engine, accountId, msisdn } = await prepare(t, "postgres");
    const client = new Redis(services.redisUrl as string, { keyPrefix: engine.config.redisKeyPrefix });
    t.teardown(() => client.disconnect());
    const rating = engine.app.services.charging.rating;
    const queue = engine.app.services.charging.queue;
    const shard = queue.shardOf(accountId);

    const first = redisShardLeases(client, queue.shards, "worker-a", 300);
    const heldA = await first.refresh();
    t.equal(heldA.size, queue.shards, "alone, worker A holds every shard");
    await postCall(engine, msisdn);
    t.equal(await rating.rateOnce("worker-a", 100, heldA), 1);

    // A pauses (its entries for the next call already handed to it), its leases lapse, B takes over.
    await postCall(engine, msisdn);
    const handedToA = await queue.read(shard, "worker-a", 100, 0);
    t.equal(handedToA.length, 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const second = redisShardLeases(client, queue.shards, "worker-b", 5_000);
    const heldB = await second.refresh();
    t.ok((heldB.get(shard) ?? 0) > (heldA.get(shard) ?? 0), "B's token is larger");
    t.equal(await rating.rateOnce("worker-b", 100, heldB), 1, "B claims A's pending entry and rates it");

    // A wakes and writes what it was handed, with its old token: refused.
    let fenced = false;
    try {
      await rating.rate(handedToA, heldA.get(shard));
    } catch (error) {
      fenced = error instanceof Error && error.message.startsWith("fenced");
    }
    t.ok(fenced, "the step refuses the old token");
    const state = await engine.app.services.charging.store.read(accountId);
    t.equal(state.spend.get("2026-03-01"), 580_000n, "two calls of 0.29, each charged once");
    t.equal(await engine.count("rated_usage"), 2);
    t.equal(state.fence, heldB.get(shard), "the account remembers B's token");
    await second.releaseAll();
  },
);
