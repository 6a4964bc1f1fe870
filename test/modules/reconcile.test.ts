import { Redis } from "ioredis";
import t from "tap";
import { compare } from "../../src/modules/charging/reconcile.service.js";
import { postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, type Engine, services, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";

/**
 * Reconciliation: the store emptied mid-stream (Redis restarted without its data) is rebuilt from the ledger —
 * balances, buckets, spend, crossings and dedupe marks — under a new fencing epoch; records that arrive during
 * the rebuild and replays of old ones are applied exactly once; afterwards ledger = store for every account.
 */

const BASE = "/tmf-api/prepayBalanceManagement/v4";
async function call(engine: Engine, msisdn: string, calledNumber: string, duration: number) {
  await postCdrs(engine, [voiceCdr(msisdn, calledNumber, duration)]);
}

/** Empties the charging store the way a Redis restart without persistence does. */
async function emptyStore(engine: Engine) {
  if (engine.driver === "pglite") {
    await engine.app.services.charging.store.close();
    return;
  }
  const redis = new Redis(services.redisUrl as string);
  const keys = await redis.keys(`${engine.config.redisKeyPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}

for (const driver of drivers) {
  t.test(
    `[${driver}] an emptied store is rebuilt from the ledger; records during the rebuild count once`,
    async (t) => {
      const engine = await startEngine(t, { driver });
      const { charging } = engine.app.services;
      await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
      const post = await orderReadyAccount(engine);
      const postLine = await activateLine(engine, post.accountId);
      const pre = await orderReadyAccount(engine, {
        numbers: ["+4915100000400", "+4915100000409"],
        accountType: "prepaid",
      });
      const preLine = await activateLine(engine, pre.accountId, "plan-prepaid-s");

      await call(engine, postLine.msisdn, "+4930123456", 600);
      await call(engine, postLine.msisdn, "+33123456789", 120);
      await call(engine, preLine.msisdn, "+33123456789", 240);
      const shard = charging.queue.shardOf(pre.accountId);
      const replayable = (await charging.queue.read(shard, "w", 100, 0)).filter(
        (entry) => entry.usage.billingAccountId === pre.accountId,
      );
      await charging.queue.ack(shard, await charging.rating.rate(replayable));
      await charging.rating.rateOnce("w");
      await engine.request("POST", `${BASE}/topupBalance`, {
        headers: { "idempotency-key": "t1" },
        body: { amount: { amount: 10, units: "EUR" }, product: { id: preLine.lineId } },
      });
      const buckets = (
        await engine.request("GET", `${BASE}/bucket`, { query: { "partyAccount.id": post.accountId } })
      ).json();
      const voice = buckets.find((bucket: { usageType: string }) => bucket.usageType === "voice");
      await engine.request("POST", `${BASE}/adjustBalance`, {
        headers: { "idempotency-key": "a1" },
        body: { amount: { amount: 300, units: "second" }, bucket: { id: voice.id }, reason: "goodwill" },
      });
      await engine.request("POST", `${BASE}/adjustBalance`, {
        headers: { "idempotency-key": "a2" },
        body: { amount: { amount: 0.2, units: "EUR" }, product: { id: postLine.lineId }, reason: "goodwill" },
      });
      const before = {
        post: await charging.store.read(post.accountId),
        pre: await charging.store.read(pre.accountId),
      };
      t.same((await charging.reconcile.run("check")).mismatched, [], "before anything fails, store = ledger");

      await emptyStore(engine);
      const broken = await charging.reconcile.run("check");
      t.equal(broken.mismatched.length, 2, "both accounts differ from the ledger");
      t.notOk(await charging.store.initialized(), "the store knows it is empty");
      // A record arrives while the store is empty and being rebuilt.
      await call(engine, postLine.msisdn, "+33123456789", 60);

      const rebuilt = await charging.reconcile.run("rebuild");
      t.equal(rebuilt.rebuilt, 2);
      t.ok(await charging.store.initialized());
      const after = await charging.store.read(pre.accountId);
      t.equal(
        after.lines.get(preLine.lineId)?.balance,
        before.pre.lines.get(preLine.lineId)?.balance,
        "prepaid balance",
      );
      t.same(
        after.lines.get(preLine.lineId)?.buckets,
        before.pre.lines.get(preLine.lineId)?.buckets,
        "prepaid buckets",
      );
      const afterPost = await charging.store.read(post.accountId);
      t.same(afterPost.spend, before.post.spend, "spend to date, the credit included");
      t.same(
        afterPost.lines.get(postLine.lineId)?.buckets,
        before.post.lines.get(postLine.lineId)?.buckets,
        "grants with their adjustment",
      );

      if (driver === "postgres") {
        // Workers holding tokens from before the rebuild are fenced until they take new leases.
        t.equal(await charging.rating.rateOnce("w"), 0, "the old token is refused; the record waits on its shard");
        charging.rating.fence = 2_000_000;
      }
      // An old record replayed after the rebuild is recognised by its rebuilt dedupe mark.
      await charging.queue.ack(shard, await charging.rating.rate(replayable, charging.rating.fence));
      await charging.rating.rateOnce("w");
      const final = await charging.store.read(post.accountId);
      t.equal(
        final.spend.get("2026-03-01"),
        (before.post.spend.get("2026-03-01") ?? 0n) + 290_000n,
        "the record from during the rebuild counted once",
      );
      t.equal(
        (await charging.store.read(pre.accountId)).lines.get(preLine.lineId)?.balance,
        before.pre.lines.get(preLine.lineId)?.balance,
        "the replay counted nothing",
      );
      t.same((await charging.reconcile.run("check")).mismatched, [], "ledger = store for every account");
      const ledger = await charging.reconcile.ledgerOf(post.accountId, 0);
      t.same(ledger && compare(ledger, final), []);
    },
  );
}
