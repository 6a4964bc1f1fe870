import t, { type Test } from "tap";

type Tap = Test;

import { chargingEngine, postCdrs } from "../support/charging.js";
import { drivers, type Engine } from "../support/engine.js";
import { activateLine } from "../support/fixtures.js";

/**
 * The allowance model (issue 9): the first period prorated by the days left, buckets shared by an account's
 * lines (TMF654 isShared), unused units rolled into the next period up to a cap, the renewal job, and the ledger
 * agreeing with the store through all of it (reconciliation finds nothing to fix).
 */

const BASE = "/tmf-api/prepayBalanceManagement/v4";
const GiB = 1_073_741_824;
let sequence = 0;

function dataCdr(msisdn: string, bytes: number, at: string) {
  sequence += 1;
  return {
    recordType: "data",
    cdrId: `d-${process.pid}-${sequence}`,
    source: "msc-1",
    servedMSISDN: msisdn,
    recordOpeningTime: at,
    dataVolumeUplink: 0,
    dataVolumeDownlink: bytes,
    ratingGroup: 10,
  };
}

interface Bucket {
  id: string;
  name: string;
  usageType: string;
  isShared: boolean;
  status: string;
  remainingValue: { amount: number };
  initialValue: { amount: number };
  validFor: { startDateTime: string; endDateTime: string };
  product?: { id: string };
}

async function buckets(engine: Engine, accountId: string): Promise<Bucket[]> {
  const answer = await engine.request("GET", `${BASE}/bucket`, { query: { "partyAccount.id": accountId } });
  if (answer.statusCode !== 200) throw new Error(answer.body);
  return (answer.json() as Bucket[]).filter((bucket) => bucket.usageType === "data");
}

async function ledgerMatchesStore(t: Tap, engine: Engine, accountId: string) {
  const report = await engine.app.services.charging.reconcile.run("check", [accountId]);
  t.same(report.mismatched, [], "reconciliation finds the store and the ledger equal");
}

for (const driver of drivers) {
  t.test(`[${driver}] rollover: unused data moves into the next period, up to the cap`, async (t) => {
    const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
    const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
    const { rating } = engine.app.services.charging;
    await rating.grantLine(lineId);
    // Activated on 15 March, billed on the 1st (Europe/Berlin): 17 of 31 days, 10 GiB × 17 / 31 rounded down.
    const march = 5_888_261_615;
    engine.clock.set("2026-03-20T12:00:00Z");
    await postCdrs(engine, [dataCdr(msisdn, GiB, "2026-03-20T10:00:00Z")]);
    await rating.rateOnce("test");
    t.match(await buckets(engine, accountId), [
      { initialValue: { amount: march }, remainingValue: { amount: march - GiB } },
    ]);

    // 1 April, 10:00 Berlin: the renewal job opens April before any event.
    engine.clock.set("2026-04-01T08:00:00Z");
    t.equal(await rating.renew(), 1, "one line renewed");
    t.equal(await rating.renew(), 0, "and not twice");
    const left = march - GiB;
    const april = await buckets(engine, accountId);
    const rollover = april.find((bucket) => bucket.name.endsWith("rollover"));
    const fresh = april.find(
      (bucket) => bucket.validFor.startDateTime === "2026-03-31T22:00:00.000Z" && bucket !== rollover,
    );
    const old = april.find((bucket) => bucket.validFor.startDateTime === "2026-02-28T23:00:00.000Z");
    t.match(rollover, {
      isShared: false,
      status: "active",
      initialValue: { amount: left },
      remainingValue: { amount: left },
      validFor: { startDateTime: "2026-03-31T22:00:00.000Z", endDateTime: "2026-04-30T22:00:00.000Z" },
      product: [{ id: lineId }],
    });
    t.match(fresh, { initialValue: { amount: 10 * GiB }, remainingValue: { amount: 10 * GiB } }, "April in full");
    t.match(
      old,
      { status: "expired", initialValue: { amount: GiB }, remainingValue: { amount: 0 } },
      "March gave it up",
    );
    const moves = await engine.sql<{ kind: string; units: string }>(
      "select kind, units::text from balance_operations order by created_at",
    );
    t.same(moves, [{ kind: "rollover", units: String(-left) }], "the move is a ledger row");

    // A late March session finds March empty and uses what was carried out of it; April's own events use the
    // rollover first.
    const late = await postCdrs(engine, [
      dataCdr(msisdn, 2048, "2026-03-31T20:00:00Z"),
      dataCdr(msisdn, GiB, "2026-04-01T07:55:00Z"),
    ]);
    await rating.rateOnce("test");
    const rows = await engine.sql<{ usage_id: string; amount: string; draws: Array<{ bucketId: string }> }>(
      "select usage_id::text, amount::text, draws from rated_usage where usage_id in ($1::uuid, $2::uuid) order by started_at",
      late.records.map((record: { usageId: string }) => record.usageId),
    );
    t.same(
      rows.map((row) => [Number(row.amount), row.draws.map((draw) => draw.bucketId)]),
      [
        [0, [rollover?.id]],
        [0, [rollover?.id]],
      ],
    );
    const after = await buckets(engine, accountId);
    t.match(
      after.find((bucket) => bucket.id === rollover?.id),
      { remainingValue: { amount: left - 2048 - GiB } },
    );
    t.match(
      after.find((bucket) => bucket.id === fresh?.id),
      { remainingValue: { amount: 10 * GiB } },
    );
    t.match(
      after.find((bucket) => bucket.id === old?.id),
      { remainingValue: { amount: 0 } },
    );
    await ledgerMatchesStore(t, engine, accountId);

    // Rebuilt from the ledger alone, the store holds the same grants; the move is not made twice.
    await engine.app.services.charging.reconcile.run("rebuild", [accountId]);
    t.equal(await rating.renew(), 0);
    await postCdrs(engine, [dataCdr(msisdn, 1024, "2026-04-01T07:56:00Z")]);
    await rating.rateOnce("test");
    t.equal(await engine.count("balance_operations"), 1, "still one rollover row");
    await ledgerMatchesStore(t, engine, accountId);
  });

  t.test(`[${driver}] a shared bucket: every line adds its share and draws from it`, async (t) => {
    const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
    const first = await activateLine(engine, accountId, "plan-postpaid-l");
    const second = await activateLine(engine, accountId, "plan-postpaid-l");
    const { rating } = engine.app.services.charging;
    // Activation grants buckets after its commit, in the background; here it is awaited.
    await rating.grantLine(first.lineId);
    await rating.grantLine(second.lineId);
    // 40 GiB a line, shared; both started on 15 March: 17 of 31 days each.
    const share = Math.floor((40 * GiB * 17) / 31);
    const pool = (await buckets(engine, accountId)).filter((bucket) => bucket.isShared);
    t.equal(pool.length, 1, "one shared bucket for the account");
    t.match(pool[0], { initialValue: { amount: 2 * share }, remainingValue: { amount: 2 * share }, status: "active" });
    t.notOk(pool[0]?.product, "a shared bucket belongs to the account, not to a line");
    const poolId = pool[0]?.id as string;

    engine.clock.set("2026-03-20T12:00:00Z");
    await postCdrs(engine, [
      dataCdr(first.msisdn, 30 * GiB, "2026-03-20T10:00:00Z"),
      dataCdr(second.msisdn, 10 * GiB, "2026-03-20T11:00:00Z"),
    ]);
    await rating.rateOnce("test");
    const rated = await engine.sql<{ product_id: string; amount: string; draws: Array<{ bucketId: string }> }>(
      "select product_id::text, amount::text, draws from rated_usage order by started_at",
    );
    t.same(
      rated.map((row) => [row.product_id, Number(row.amount), row.draws.map((draw) => draw.bucketId)]),
      [
        [first.lineId, 0, [poolId]],
        [second.lineId, 0, [poolId]],
      ],
      "both lines drew from the one bucket",
    );
    const crossings = await engine.sql<{ key: string; product_id: string }>(
      "select key, product_id::text from threshold_crossings where kind = 'allowance' order by key",
    );
    t.same(
      crossings.map((row) => row.key),
      [`allowance:${poolId}:80%`],
      "80 % of the shared bucket crossed once, by the second line's session",
    );
    t.equal(crossings[0]?.product_id, second.lineId);

    // Support adds 1 GiB to the shared bucket.
    const added = await engine.request("POST", `${BASE}/adjustBalance`, {
      body: { bucket: { id: poolId }, amount: { amount: GiB, units: "byte" }, reason: "goodwill" },
      headers: { "idempotency-key": "pool-1" },
    });
    t.equal(added.statusCode, 201, added.body);
    const used = 40 * GiB;
    t.match(
      (await buckets(engine, accountId)).find((bucket) => bucket.id === poolId),
      {
        initialValue: { amount: 2 * share + GiB },
        remainingValue: { amount: 2 * share + GiB - used },
      },
    );

    // April: both lines' full shares, and the unused part (under the 20 GiB cap) rolled into a shared bucket.
    engine.clock.set("2026-04-01T08:00:00Z");
    t.equal(await rating.renew(), 2, "both lines of the account renewed");
    const april = (await buckets(engine, accountId)).filter(
      (bucket) => bucket.isShared && bucket.validFor.startDateTime === "2026-03-31T22:00:00.000Z",
    );
    t.same(
      april.map((bucket) => [bucket.name, bucket.initialValue.amount]).sort(),
      [
        ["plan-postpaid-l data", 80 * GiB],
        ["plan-postpaid-l data rollover", 2 * share + GiB - used],
      ].sort(),
    );
    await ledgerMatchesStore(t, engine, accountId);
    await engine.app.services.charging.reconcile.run("rebuild", [accountId]);
    await ledgerMatchesStore(t, engine, accountId);
  });

  t.test(`[${driver}] a shared bucket rolls over at most its cap`, async (t) => {
    const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
    const { lineId } = await activateLine(engine, accountId, "plan-postpaid-l");
    const { rating } = engine.app.services.charging;
    await rating.grantLine(lineId);
    // Nothing used: 40 GiB × 17 / 31 left in March, more than the 20 GiB cap.
    engine.clock.set("2026-04-01T08:00:00Z");
    t.equal(await rating.renew(), 1);
    const rolled = (await buckets(engine, accountId)).find((bucket) => bucket.name.endsWith("rollover"));
    t.match(rolled, { isShared: true, initialValue: { amount: 20 * GiB } });
    const march = (await buckets(engine, accountId)).find((bucket) => bucket.status === "expired");
    t.match(march, { initialValue: { amount: Math.floor((40 * GiB * 17) / 31) - 20 * GiB } }, "the rest stays behind");
    await ledgerMatchesStore(t, engine, accountId);
  });
}
