import t from "tap";
import { chargingEngine, postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, type Engine, everyCase, type startEngine } from "../support/engine.js";
import { activateLine } from "../support/fixtures.js";

/**
 * The rating loop end to end: CDRs posted over HTTP, rated from the queue by the worker's service, balances and
 * buckets in the charging store, ledger rows in PostgreSQL — exactly once, and ledger = store after draining.
 */

/** Ledger = store: every line's bucket use and balance, and the account's spend, from both sides. */
async function assertLedgerMatchesStore(t: Tap, engine: Engine, accountId: string) {
  const state = await engine.app.services.charging.store.read(accountId);
  const spend = await engine.sql<{ period: string; micro: string }>(
    "select spend_period as period, (sum(amount) * 1000000)::bigint::text as micro from rated_usage where billing_account_id = $1 group by spend_period",
    [accountId],
  );
  t.same(
    Object.fromEntries(
      [...state.spend].filter(([, value]) => value !== 0n).map(([period, value]) => [period, value.toString()]),
    ),
    Object.fromEntries(spend.filter((row) => row.micro !== "0").map((row) => [row.period, row.micro])),
    "spend to date: store = ledger",
  );
  const draws = await engine.sql<{ bucket: string; units: string }>(
    "select d->>'bucketId' as bucket, sum((d->>'units')::bigint)::text as units from rated_usage r, jsonb_array_elements(r.draws) d where r.billing_account_id = $1 group by 1",
    [accountId],
  );
  for (const line of state.lines.values()) {
    for (const bucket of line.buckets) {
      const ledger = Number(draws.find((row) => row.bucket === bucket.id)?.units ?? 0);
      t.equal(bucket.used, ledger, `bucket ${bucket.id}: store = ledger`);
    }
  }
}
type Tap = Parameters<typeof startEngine>[0] & {
  same: (...args: unknown[]) => void;
  equal: (...args: unknown[]) => void;
};

for (const driver of drivers) {
  t.test(`[${driver}] postpaid: allowances first, money for the rest, rated exactly once`, async (t) => {
    const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
    const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
    const posted = await postCdrs(engine, [
      voiceCdr(msisdn, "+4930123456", 61),
      voiceCdr(msisdn, "+33123456789", 120),
      { ...voiceCdr(msisdn, "+4915199999999", 0), recordType: "sms", duration: undefined },
      {
        recordType: "data",
        cdrId: "data-1",
        source: "msc-1",
        servedMSISDN: msisdn,
        recordOpeningTime: "2026-03-15T10:06:00Z",
        dataVolumeDownlink: 1_000_000,
      },
    ]);
    t.equal(posted.accepted, 4);
    const rating = engine.app.services.charging.rating;
    t.equal(await rating.rateOnce("test"), 4, "four rated");
    t.equal(await rating.rateOnce("test"), 0, "the queue is drained");

    const rows = await engine.sql<{
      record_type: string;
      amount: string;
      allowance_units: string;
      destination: string | null;
    }>(
      "select record_type, amount::text, allowance_units::text, destination from rated_usage where billing_account_id = $1 order by started_at, record_type, usage_id",
      [accountId],
    );
    t.same(
      rows
        .map((row) => [row.record_type, row.destination, Number(row.amount), Number(row.allowance_units) > 0])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ["sms", "national-mobile", 0, true],
        ["voice", "national", 0, true],
        ["voice", "international-eu", 0.58, false],
        ["data", null, 0, true],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    const state = await engine.app.services.charging.store.read(accountId);
    const line = state.lines.get(lineId);
    t.equal(line?.balance, null, "postpaid lines carry no balance");
    t.equal(state.spend.get("2026-03-01"), 580_000n, "spend to date: 0.58 EUR in micro-units");
    t.equal(line?.buckets.length, 3, "the plan's three buckets were granted");
    await assertLedgerMatchesStore(t as unknown as Tap, engine, accountId);

    // A crash after the step but before the acknowledgement: the same entries are rated again.
    const again = await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120)]);
    t.equal(again.accepted, 1);
    const queue = engine.app.services.charging.queue;
    const shard = queue.shardOf(accountId);
    const entries = await queue.read(shard, "test", 10, 0);
    t.equal(entries.length, 1);
    await rating.rate(entries);
    await rating.rate(entries);
    await queue.ack(
      shard,
      entries.map((entry) => entry.id),
    );
    t.equal(await engine.count("rated_usage"), 5, "one more ledger row, not two");
    t.equal(
      (await engine.app.services.charging.store.read(accountId)).spend.get("2026-03-01"),
      1_160_000n,
      "charged once",
    );
    await assertLedgerMatchesStore(t as unknown as Tap, engine, accountId);
  });

  t.test(`[${driver}] postpaid credit limit: the crossing event is charged, every live line is barred`, async (t) => {
    const { engine, accountId, network } = await chargingEngine(t, driver, "postpaid");
    const first = await activateLine(engine, accountId, "plan-postpaid-m");
    const second = await activateLine(engine, accountId, "plan-postpaid-m");
    // 30 minutes to the rest of the world: 44.70 EUR each; the credit limit is 100 EUR.
    await postCdrs(engine, [
      voiceCdr(first.msisdn, "+81312345678", 1800),
      voiceCdr(first.msisdn, "+81312345678", 1800, "2026-03-15T10:06:00Z"),
      voiceCdr(first.msisdn, "+81312345678", 1800, "2026-03-15T10:07:00Z"),
    ]);
    await engine.app.services.charging.rating.rateOnce("test");
    const state = await engine.app.services.charging.store.read(accountId);
    t.equal(state.spend.get("2026-03-01"), 134_100_000n, "all three charged, the overshoot too");
    const crossings = await engine.sql<{ kind: string; value: string }>(
      "select kind, value from threshold_crossings where billing_account_id = $1 order by key",
      [accountId],
    );
    t.same(crossings, [{ kind: "credit-limit", value: "134100000" }], "recorded once");
    t.same(
      network.calls
        .filter((call) => call.operation === "bar")
        .map((call) => call.line.productId)
        .sort(),
      [first.lineId, second.lineId].sort(),
      "both lines barred on the network",
    );
    const product = (await engine.request("GET", `/tmf-api/productInventory/v4/product/${second.lineId}`)).json();
    t.same(
      product.productCharacteristic.find((c: { name: string }) => c.name === "barred"),
      { name: "barred", value: "credit" },
    );
    t.equal(product.status, "active", "barring does not change the status");

    // Raising the credit limit above the spend lifts the barring of every line.
    const raised = await engine.request("PATCH", `/tmf-api/accountManagement/v4/billingAccount/${accountId}`, {
      body: { creditLimit: { unit: "EUR", value: 200 } },
    });
    t.equal(raised.statusCode, 200, raised.body);
    const deadline = Date.now() + 5_000;
    while (network.calls.filter((call) => call.operation === "unbar").length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.same(
      network.calls
        .filter((call) => call.operation === "unbar")
        .map((call) => call.line.productId)
        .sort(),
      [first.lineId, second.lineId].sort(),
      "both lines unbarred",
    );
    const usage = await engine.request("GET", "/tmf-api/usageManagement/v4/usage", { query: { status: "rated" } });
    t.equal(usage.json().length, 3);
    t.match(usage.json()[0], {
      status: "rated",
      ratedProductUsage: [
        { usageRatingTag: "usage", taxExcludedRatingAmount: { unit: "EUR", value: 44.7 }, isBilled: false },
      ],
    });
  });

  t.test(`[${driver}] prepaid: the event that empties the balance is charged, the line barred`, async (t) => {
    const { engine, accountId, network } = await chargingEngine(t, driver, "prepaid");
    const { lineId, msisdn } = await activateLine(engine, accountId, "plan-prepaid-payg");
    await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120)]);
    await engine.app.services.charging.rating.rateOnce("test");
    const state = await engine.app.services.charging.store.read(accountId);
    t.equal(state.lines.get(lineId)?.balance, -580_000n, "the overshoot is a debt");
    t.same(
      network.calls.filter((call) => call.operation === "bar").map((call) => call.line.productId),
      [lineId],
    );
    const crossings = await engine.sql<{ kind: string }>("select kind from threshold_crossings order by key");
    t.same(crossings, [{ kind: "balance-exhausted" }]);
  });

  if (everyCase(driver))
    t.test(`[${driver}] a partly covered call: the allowance first, money from where it ran out`, async (t) => {
      const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
      // Granted at activation, before any usage, for the 17 of March's 31 days left (bills on the 1st): 30,000 s,
      // 100 SMS and 10 GiB prorated, rounded down.
      const deadline = Date.now() + 5_000;
      while (
        (await engine.app.services.charging.store.read(accountId)).lines.get(lineId) === undefined &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      t.same(
        (await engine.app.services.charging.store.read(accountId)).lines
          .get(lineId)
          ?.buckets.map((bucket) => [bucket.granted, bucket.used])
          .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
        [
          [54, 0],
          [16_451, 0],
          [5_888_261_615, 0],
        ],
      );
      await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 16_351), voiceCdr(msisdn, "+4930123456", 160)]);
      await engine.app.services.charging.rating.rateOnce("test");
      const rows = await engine.sql<{ allowance_units: string; charged_units: string; amount: string }>(
        "select allowance_units::text, charged_units::text, amount::text from rated_usage order by usage_id",
      );
      // Sunday off-peak national: 0.04 per minute, per second; the second call has 100 s left in the allowance.
      t.same(
        rows.map((row) => [Number(row.allowance_units), Number(row.charged_units), Number(row.amount)]),
        [
          [16_351, 0, 0],
          [100, 60, 0.04],
        ],
      );
      await assertLedgerMatchesStore(t as unknown as Tap, engine, accountId);
    });

  if (everyCase(driver))
    t.test(
      `[${driver}] a suspended line: events from before are rated, events from during wait in suspense`,
      async (t) => {
        const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
        const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
        engine.clock.set("2026-03-15T10:30:00Z");
        const suspended = await engine.request("PATCH", `/tmf-api/productInventory/v4/product/${lineId}`, {
          body: { status: "suspended" },
        });
        t.equal(suspended.statusCode, 200, suspended.body);
        const posted = await postCdrs(engine, [
          voiceCdr(msisdn, "+33123456789", 60, "2026-03-15T10:20:00Z"),
          voiceCdr(msisdn, "+33123456789", 60, "2026-03-15T10:40:00Z"),
        ]);
        await engine.app.services.charging.rating.rateOnce("test");
        t.equal(await engine.count("rated_usage"), 1, "the call from before the suspension is rated");
        const waiting = await engine.request("GET", `/api/v1/suspense/${posted.records[1].usageId}`);
        t.match(waiting.json(), { state: "open", reason: "line_suspended", message: /suspended at 2026-03-15T10:40/ });
      },
    );

  if (everyCase(driver))
    t.test(`[${driver}] a replay after a failed commit does not use the allowance twice`, async (t) => {
      const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
      const { msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
      const { queue, rating } = engine.app.services.charging;
      const shard = queue.shardOf(accountId);
      // 16,451 s granted for the rest of March.
      await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 16_401)]);
      const first = await queue.read(shard, "w", 10, 0);
      await rating.rate(first);
      // The step applied, but the ledger commit is lost: the row (and its summary, written in the same
      // transaction) is gone and the entry was never acknowledged.
      await engine.sql("delete from rated_usage");
      await engine.sql("delete from usage_summaries");
      await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 100)]);
      const second = await queue.read(shard, "w", 10, 0);
      await queue.ack(shard, await rating.rate([...first, ...second]));
      await queue.ack(
        shard,
        first.map((entry) => entry.id),
      );
      const rows = await engine.sql<{ allowance_units: string; charged_units: string }>(
        "select allowance_units::text, charged_units::text from rated_usage order by usage_id",
      );
      t.same(
        rows.map((row) => [Number(row.allowance_units), Number(row.charged_units)]),
        [
          [16_401, 0],
          [50, 50],
        ],
        "the replayed call's row is written again; the new call sees the 50 s really left",
      );
      await assertLedgerMatchesStore(t as unknown as Tap, engine, accountId);
    });

  if (everyCase(driver))
    t.test(`[${driver}] a new allowance period grants fresh buckets`, async (t) => {
      const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
      await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 600)]);
      await engine.app.services.charging.rating.rateOnce("test");
      // The account bills on the 1st in Europe/Berlin: a call on 2 April is in the next period.
      engine.clock.set("2026-04-02T10:00:00Z");
      await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 120, "2026-04-02T10:05:00Z")]);
      await engine.app.services.charging.rating.rateOnce("test");
      const buckets = await engine.sql<{ period_start: string; granted: string }>(
        "select period_start::text, granted::text from allowance_buckets where product_id = $1 and service = 'voice' order by period_start",
        [lineId],
      );
      t.equal(buckets.length, 2, "one voice bucket per period");
      const state = await engine.app.services.charging.store.read(accountId);
      const voiceIds = new Set(
        (
          await engine.sql<{ id: string }>(
            "select id::text from allowance_buckets where product_id = $1 and service = 'voice'",
            [lineId],
          )
        ).map((row) => row.id),
      );
      const voiceUse = state.lines
        .get(lineId)
        ?.buckets.filter((bucket) => voiceIds.has(bucket.id))
        .map((bucket) => [bucket.granted, bucket.used])
        .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0));
      t.same(
        voiceUse,
        [
          [16_451, 600],
          [30_000, 120],
        ],
        "March (prorated from the 15th) used 600 s; April grants all 30,000 s again and used 120 s",
      );
      await assertLedgerMatchesStore(t as unknown as Tap, engine, accountId);
    });

  if (everyCase(driver))
    t.test(
      `[${driver}] a line whose plan has no tariff in its currency goes to suspense with the reason`,
      async (t) => {
        const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
        const { msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
        await engine.sql("update products set currency = 'USD' where msisdn = $1", [msisdn]);
        const posted = await postCdrs(engine, [voiceCdr(msisdn, "+4930123456", 30)]);
        await engine.app.services.charging.rating.rateOnce("test");
        const suspense = await engine.request("GET", `/api/v1/suspense/${posted.records[0].usageId}`);
        t.match(suspense.json(), { state: "open", reason: "no_tariff", message: /no tariff in USD/ });
        t.equal(await engine.count("rated_usage"), 0);
      },
    );

  if (everyCase(driver))
    t.test(
      `[${driver}] usage summaries: what billing reads, numbered, billed by a mark, late CDRs after it`,
      async (t) => {
        const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
        const { msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
        const { rating, summaries } = engine.app.services.charging;
        // The allowance covers the first call; the 2nd and 3rd go to one summary (line, voice, international-eu).
        const posted = await postCdrs(engine, [
          voiceCdr(msisdn, "+4930123456", 60),
          voiceCdr(msisdn, "+33612345678", 120, "2026-03-15T10:06:00Z"),
          voiceCdr(msisdn, "+33612345678", 60, "2026-03-15T10:08:00Z"),
        ]);
        await rating.rateOnce("test");
        const [{ period } = { period: "" }] = await engine.sql<{ period: string }>(
          "select distinct spend_period as period from rated_usage",
        );
        const listed = await summaries.ofAccount(accountId, period);
        t.same(
          listed.map((summary) => [summary.service, summary.zone, summary.quantity, summary.lastSeq, summary.prepaid]),
          [
            ["voice", "international-eu", 180, 2, false],
            ["voice", "national", 60, 1, false],
          ].sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
        );
        const eu = listed.find((summary) => summary.zone === "international-eu");
        if (eu === undefined) throw new Error("no international-eu summary");
        const [eurows] = await engine.sql<{ amount: string }>(
          "select sum(amount)::text as amount from rated_usage where summary_id = $1",
          [eu.id],
        );
        t.equal(eu.amount.toFixed(6), eurows?.amount, "the summary's amount is its rows' sum");
        t.same(await summaries.ofAccount(accountId, "1999-01-01"), [], "another period: nothing");

        // The rows behind a summary, a page at a time, in their numbers.
        const first = await summaries.ratedRows(eu.id, { limit: 1 });
        t.same(
          first.rows.map((row) => [row.seq, row.usageId, row.billed]),
          [[1, posted.records[1].usageId, false]],
        );
        t.equal(first.nextAfterSeq, 1);
        const rest = await summaries.ratedRows(eu.id, { afterSeq: first.nextAfterSeq ?? 0, limit: 1 });
        t.same(
          rest.rows.map((row) => row.seq),
          [2],
        );
        const end = await summaries.ratedRows(eu.id, { afterSeq: 2 });
        t.same(end, { rows: [], nextAfterSeq: null });

        // An invoice records the highest number it billed on each summary (the billing issues write this mark).
        await engine.sql("update usage_summaries set billed_seq = last_seq where id = $1", [eu.id]);
        const usage = (id: string) => engine.request("GET", `/tmf-api/usageManagement/v4/usage/${id}`);
        t.match((await usage(posted.records[1].usageId)).json(), {
          status: "billed",
          ratedProductUsage: [{ isBilled: true }],
        });
        t.match((await usage(posted.records[0].usageId)).json(), { status: "rated" }, "another summary: not billed");

        // A late CDR of the same period after the mark: the next number, unbilled, the difference for the next bill.
        engine.clock.advanceSeconds(3600);
        const late = await postCdrs(engine, [voiceCdr(msisdn, "+33612345678", 30, "2026-03-15T10:30:00Z")]);
        await rating.rateOnce("test");
        const after = (await summaries.ofAccount(accountId, period)).find((summary) => summary.id === eu.id);
        t.match(after, { lastSeq: 3, billedSeq: 2, quantity: 210 });
        const lateRows = await summaries.ratedRows(eu.id, { afterSeq: 2 });
        t.same(
          lateRows.rows.map((row) => [row.seq, row.usageId, row.billed]),
          [[3, late.records[0].usageId, false]],
        );
        t.match((await usage(late.records[0].usageId)).json(), {
          status: "rated",
          ratedProductUsage: [{ isBilled: false }],
        });
        const billedList = await engine.request("GET", "/tmf-api/usageManagement/v4/usage", {
          query: { status: "billed" },
        });
        t.same(
          billedList
            .json()
            .map((item: { id: string }) => item.id)
            .sort(),
          [posted.records[1].usageId, posted.records[2].usageId].sort(),
        );
      },
    );
}
