import t, { type Test } from "tap";
import { chargingEngine, postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, type Engine, expectError, type startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";

/** TMF654 over the rating loop: top-ups, adjustments, buckets, accumulated balances, barring lifted, ledger = store. */

const BASE = "/tmf-api/prepayBalanceManagement/v4";

async function start(
  t: Parameters<typeof startEngine>[0],
  driver: Engine["driver"],
  accountType: "prepaid" | "postpaid",
) {
  const { engine, accountId, network } = await chargingEngine(t, driver, accountType);
  const line = (plan: string) => activateLine(engine, accountId, plan);
  const call = async (msisdn: string, calledNumber: string, duration: number) => {
    await postCdrs(engine, [voiceCdr(msisdn, calledNumber, duration)]);
    await engine.app.services.charging.rating.rateOnce("test");
  };
  return { engine, accountId, network, line, call };
}

/** Prepaid conservation: top-ups + adjustments − charges (ledger) = the store's balance. */
async function balanceMatchesLedger(t: Test, engine: Engine, accountId: string, lineId: string) {
  const [ledger] = await engine.sql<{ micro: string }>(
    `select ((coalesce((select sum(amount) from balance_operations where product_id = $1 and amount is not null), 0)
       - coalesce((select sum(amount) from rated_usage where product_id = $1), 0)) * 1000000)::bigint::text as micro`,
    [lineId],
  );
  const state = await engine.app.services.charging.store.read(accountId);
  t.equal(state.lines.get(lineId)?.balance?.toString(), ledger?.micro, "top-ups + adjustments − charges = balance");
}

for (const driver of drivers) {
  t.test(`[${driver}] prepaid: a top-up pays the debt, lifts barring and re-arms the low-balance alert`, async (t) => {
    const { engine, accountId, network, line, call } = await start(t, driver, "prepaid");
    const { lineId, msisdn } = await line("plan-prepaid-payg");
    await call(msisdn, "+33123456789", 120); // 0.58
    t.equal(network.calls.filter((c) => c.operation === "bar").length, 1, "barred at once");

    const topUp = (amount: unknown, key: string, extra: Record<string, unknown> = {}) =>
      engine.request("POST", `${BASE}/topupBalance`, {
        key: engine.keys.crm,
        headers: { "idempotency-key": key },
        body: { amount: { amount, units: "EUR" }, product: { id: lineId }, ...extra },
      });
    const first = await topUp(5, "k1");
    t.equal(first.statusCode, 201, first.body);
    t.match(first.json(), {
      "@type": "TopupBalance",
      status: "completed",
      product: [{ id: lineId }],
      amount: { amount: 5, units: "EUR" },
      remainingValue: { amount: 4.42, units: "EUR" },
      usageType: "monetary",
    });
    t.equal(first.headers.location, first.json().href);
    t.same(
      network.calls.map((c) => c.operation),
      ["activate", "bar", "unbar"],
      "unbarred once the debt is paid",
    );
    const retry = await topUp(5, "k1");
    t.equal(retry.statusCode, 200);
    t.equal(retry.json().id, first.json().id, "a retry answers the first top-up");
    expectError(t, await topUp(6, "k1"), 409, "idempotency_key_reused");
    expectError(t, await topUp(-1, "k2"), 400, "invalid_field");
    expectError(t, await topUp(0.001, "k3"), 400, "invalid_field");
    expectError(
      t,
      await engine.request("POST", `${BASE}/topupBalance`, {
        body: { amount: { amount: 5, units: "GBP" }, product: { id: lineId } },
      }),
      400,
      "invalid_field",
    );
    expectError(t, await topUp(5, "k4", { product: { id: "00000000-0000-7000-8000-000000000000" } }), 404, "not_found");
    expectError(t, await engine.request("POST", `${BASE}/topupBalance`, { body: { amount: 5 } }), 400, "invalid_field");
    t.equal(await engine.count("balance_operations"), 1, "refused top-ups left nothing");

    // 4.42 → 1.81 crosses the 2.00 low-balance threshold once; a top-up re-arms it; the next drop fires again.
    await call(msisdn, "+33123456789", 540); // 2.61
    await call(msisdn, "+33123456789", 30); // 0.15
    await topUp(3, "k5");
    await call(msisdn, "+33123456789", 540); // 4.66 → 2.05, still above
    await call(msisdn, "+33123456789", 120); // 2.05 → 1.47 crosses again
    const lows = await engine.sql<{ kind: string; value: string }>(
      "select kind, value from threshold_crossings where kind = 'low-balance' order by usage_id",
    );
    t.same(
      lows.map((row) => row.value),
      ["1810000", "1470000"],
      "the low-balance alert fired, re-armed after the top-up, and fired again",
    );
    await balanceMatchesLedger(t, engine, accountId, lineId);
    const prepaidSummaries = await engine.sql<{ prepaid: boolean }>(
      "select prepaid from usage_summaries where billing_account_id = $1",
      [accountId],
    );
    t.ok(prepaidSummaries.length > 0, "prepaid usage is summarised too (for revenue reports)");
    t.ok(
      prepaidSummaries.every((row) => row.prepaid),
      "and flagged prepaid",
    );

    const other = await orderReadyAccount(engine, {
      numbers: ["+4915100000200", "+4915100000201"],
      accountType: "prepaid",
    });
    const stranger = await engine.subscriberKey(other.accountId);
    expectError(
      t,
      await engine.request("GET", `${BASE}/topupBalance/${first.json().id}`, { key: stranger }),
      404,
      "not_found",
    );
    const own = await engine.subscriberKey(accountId);
    t.equal((await engine.request("GET", `${BASE}/topupBalance`, { key: own })).json().length, 2);
    t.same((await engine.request("GET", `${BASE}/topupBalance`, { key: stranger })).json(), []);
    const accumulated = await engine.request("GET", `${BASE}/accumulatedBalance/${accountId}`, { key: own });
    t.match(accumulated.json(), { name: "prepaid balance", totalBalance: { amount: 1.47, units: "EUR" } });
    expectError(
      t,
      await engine.request("GET", `${BASE}/accumulatedBalance/${accountId}`, { key: stranger }),
      404,
      "not_found",
    );
    // The list (TMF654): staff see every account's, a subscriber its own; partyAccount.id narrows it.
    const all = await engine.request("GET", `${BASE}/accumulatedBalance`);
    t.equal(all.headers["x-total-count"], "2", "every account, for staff");
    t.same(
      all
        .json()
        .map((item: { id: string }) => item.id)
        .sort(),
      [accountId, other.accountId].sort(),
    );
    const mine = await engine.request("GET", `${BASE}/accumulatedBalance`, { key: own });
    t.match(mine.json(), [{ id: accountId, totalBalance: { amount: 1.47, units: "EUR" } }]);
    const peeking = `${BASE}/accumulatedBalance?partyAccount.id=${other.accountId}`;
    t.same((await engine.request("GET", peeking, { key: own })).json(), [], "another account's: nothing");
    t.equal((await engine.request("GET", peeking)).json()[0].id, other.accountId, "staff narrow by partyAccount.id");
    const buckets = await engine.request("GET", `${BASE}/bucket`, { key: own });
    t.match(buckets.json(), [{ id: lineId, usageType: "monetary", remainingValue: { amount: 1.47, units: "EUR" } }]);

    // Staff list every account's buckets without a filter (TMF654), paged over buckets, account by account. The
    // other account's new prepaid line has neither rated nor been topped up: its balance is zero, not absent.
    const otherLine = await activateLine(engine, other.accountId, "plan-prepaid-payg");
    const ofAccount = async (id: string) =>
      (await engine.request("GET", `${BASE}/bucket`, { query: { "partyAccount.id": id } })).json();
    const expected = [...(await ofAccount(accountId)), ...(await ofAccount(other.accountId))].sort((a, b) =>
      a.partyAccount.id.localeCompare(b.partyAccount.id),
    );
    t.ok(expected.length >= 2, "both accounts have buckets");
    t.match(
      expected.find((bucket: { id: string }) => bucket.id === otherLine.lineId),
      { usageType: "monetary", remainingValue: { amount: 0, units: "EUR" } },
    );
    const every = await engine.request("GET", `${BASE}/bucket`);
    t.equal(every.headers["x-total-count"], String(expected.length), "the total counts every account's buckets");
    t.same(every.json(), expected, "in account order, each account's as its own list gives them");
    for (let offset = 0; offset < expected.length; offset++) {
      const one = await engine.request("GET", `${BASE}/bucket`, { query: { offset: String(offset), limit: "1" } });
      t.same(one.json(), [expected[offset]], `offset ${offset}`);
      t.equal(one.headers["x-total-count"], String(expected.length));
    }
    const byId = await engine.request("GET", `${BASE}/bucket`, { query: { id: `${otherLine.lineId},${lineId}` } });
    t.same(
      byId
        .json()
        .map((bucket: { id: string }) => bucket.id)
        .sort(),
      [lineId, otherLine.lineId].sort(),
    );
    const mineById = await engine.request("GET", `${BASE}/bucket`, {
      key: own,
      query: { id: `${otherLine.lineId},${lineId}` },
    });
    t.same(
      mineById.json().map((bucket: { id: string }) => bucket.id),
      [lineId],
      "a subscriber: only its own",
    );

    // TMF654 sends the product as a one-item list; the engine's own clients send the object.
    const listed = await topUp(0.01, "k9", { product: [{ id: lineId }], partyAccount: { id: accountId } });
    t.equal(listed.statusCode, 201, listed.body);
    expectError(
      t,
      await topUp(0.01, "k10", { partyAccount: { id: other.accountId } }),
      400,
      "invalid_field",
      "partyAccount.id",
    );
  });

  t.test(
    `[${driver}] postpaid: a credit adjustment under the limit lifts barring; buckets and accumulated balance`,
    async (t) => {
      const { engine, accountId, network, line, call } = await start(t, driver, "postpaid");
      const first = await line("plan-postpaid-m");
      const second = await line("plan-postpaid-m");
      await call(first.msisdn, "+4930123456", 600);
      for (let i = 0; i < 3; i++) await call(first.msisdn, "+81312345678", 1800); // 3 × 44.70
      t.equal(network.calls.filter((c) => c.operation === "bar").length, 2);
      const adjust = (body: Record<string, unknown>, key: string, role: "finance" | "network" = "finance") =>
        engine.request("POST", `${BASE}/adjustBalance`, {
          key: engine.keys[role],
          headers: { "idempotency-key": key },
          body,
        });
      expectError(
        t,
        await adjust(
          { amount: { amount: 200, units: "EUR" }, product: { id: first.lineId }, reason: "too much" },
          "a0",
        ),
        422,
        "adjustment_refused",
      );
      expectError(
        t,
        await adjust(
          { amount: { amount: 10, units: "EUR" }, product: { id: first.lineId }, reason: "x" },
          "a1",
          "network",
        ),
        403,
        "role_not_allowed",
      );
      const credited = await adjust(
        { amount: { amount: 40, units: "EUR" }, product: { id: first.lineId }, reason: "goodwill" },
        "a2",
      );
      t.equal(credited.statusCode, 201, credited.body);
      t.same(
        network.calls
          .filter((c) => c.operation === "unbar")
          .map((c) => c.line.productId)
          .sort(),
        [first.lineId, second.lineId].sort(),
        "spend back under the credit limit: both lines unbarred",
      );
      const accumulated = (await engine.request("GET", `${BASE}/accumulatedBalance/${accountId}`)).json();
      t.match(accumulated, {
        name: "spend to date",
        totalBalance: { amount: 94.1, units: "EUR" },
        creditLimit: { amount: 100, units: "EUR" },
        validFor: { startDateTime: "2026-02-28T23:00:00.000Z", endDateTime: "2026-03-31T22:00:00.000Z" },
      });

      const buckets = (
        await engine.request("GET", `${BASE}/bucket`, { query: { "partyAccount.id": accountId } })
      ).json();
      const voice = buckets.find(
        (bucket: { product: Array<{ id: string }>; usageType: string }) =>
          bucket.product[0]?.id === first.lineId && bucket.usageType === "voice",
      );
      // The line started on 15 March: 17 of March's 31 days, so 30,000 × 17 / 31 = 16,451 s (rounded down).
      t.match(voice, {
        remainingValue: { amount: 15_851, units: "second" },
        initialValue: { amount: 16_451 },
        status: "active",
      });
      expectError(
        t,
        await adjust({ amount: { amount: -15_852, units: "second" }, bucket: { id: voice.id }, reason: "x" }, "b1"),
        422,
        "adjustment_refused",
      );
      const more = await adjust(
        { amount: { amount: 600, units: "second" }, bucket: { id: voice.id }, reason: "compensation" },
        "b2",
      );
      t.equal(more.statusCode, 201, more.body);
      t.match(more.json(), { usageType: "voice", amount: { amount: 600, units: "second" }, status: "completed" });
      t.match((await engine.request("GET", more.json().href)).json(), {
        usageType: "voice",
        amount: { units: "second" },
      });
      const after = (await engine.request("GET", `${BASE}/bucket/${voice.id}`)).json();
      t.match(after, { remainingValue: { amount: 16_451 }, initialValue: { amount: 17_051 } });
      expectError(
        t,
        await adjust({ amount: { amount: 5, units: "byte" }, bucket: { id: voice.id }, reason: "x" }, "b3"),
        400,
        "invalid_field",
      );
      // TMF654 makes `reason` optional: a standard client's minimal adjustment is accepted.
      const bare = await adjust({ amount: { amount: 1, units: "EUR" }, product: { id: first.lineId } }, "a3");
      t.equal(bare.statusCode, 201, bare.body);
      t.notOk(bare.json().reason, "no reason stored");
      t.equal(await engine.count("balance_operations"), 3, "refused adjustments left no ledger row");

      // Rating uses the adjusted grant: 16,451 s more are covered (17,051 granted, 600 used).
      await call(first.msisdn, "+4930123456", 16_451);
      const covered = await engine.sql<{ amount: string }>(
        "select amount::text from rated_usage order by usage_id desc limit 1",
      );
      t.equal(Number(covered[0]?.amount), 0, "covered by the adjusted bucket");
      // The credit re-armed the credit limit: going over it again bars again.
      await call(first.msisdn, "+81312345678", 1800);
      t.equal(network.calls.filter((c) => c.operation === "bar").length, 4, "both lines barred again");
    },
  );
}
