import t from "tap";
import { postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, type Engine, everyCase, expectError, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";
import { startReceiver } from "../support/receiver.js";
import { RecordingChannel } from "../support/recording-channel.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";
import { openLive, ticketFor } from "../support/ws.js";

/**
 * Alerts (DESIGN.md §5): crossings and barring become alerts once, whatever retries happen; they reach a connected
 * WebSocket client, hub callbacks and the message channel; a reconnecting client replays what it missed; tickets
 * and frames are checked; a subscriber sees only its own account.
 */

const BA = "/tmf-api/accountManagement/v4/billingAccount";
const BALANCES = "/tmf-api/prepayBalanceManagement/v4";

async function start(
  t: Parameters<typeof startEngine>[0],
  driver: Engine["driver"],
  accountType: "prepaid" | "postpaid",
) {
  const network = new RecordingProvisioning();
  const channel = new RecordingChannel();
  const engine = await startEngine(t, { driver, provisioning: network, messageChannel: channel });
  const { accountId } = await orderReadyAccount(engine, { accountType });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const rate = async () => engine.app.services.charging.rating.rateOnce("test");
  const call = async (msisdn: string, calledNumber: string, duration: number) => {
    await postCdrs(engine, [voiceCdr(msisdn, calledNumber, duration)]);
    await rate();
  };
  return { engine, accountId, network, channel, call, rate };
}

const kindsOf = (alerts: Array<Record<string, unknown>>) =>
  alerts.map((alert) => `${alert.kind}${(alert.threshold as { percent?: string } | undefined)?.percent ?? ""}`);

for (const driver of drivers) {
  t.test(`[${driver}] postpaid: crossings reach the live client, hubs and the message channel once`, async (t) => {
    const { engine, accountId, channel, call } = await start(t, driver, "postpaid");
    const patched = await engine.request("PATCH", `${BA}/${accountId}`, {
      body: { billLimit: { unit: "EUR", value: 100 }, creditLimit: { unit: "EUR", value: 500 } },
    });
    t.equal(patched.statusCode, 200, patched.body);
    const { lineId, msisdn } = await activateLine(engine, accountId);
    const own = await engine.subscriberKey(accountId);

    const receiver = await startReceiver();
    t.teardown(() => receiver.close());
    const hub = await engine.request("POST", `${BALANCES}/hub`, {
      key: engine.keys.crm,
      body: { callback: receiver.url, query: "eventType=AlertCreateEvent" },
    });
    t.equal(hub.statusCode, 201, hub.body);

    const client = await openLive(engine, `?ticket=${await ticketFor(engine, own)}`);
    t.match((await client.waitFor("ready"))[0], { type: "ready", billingAccountId: accountId });
    const staff = await openLive(engine, `?ticket=${await ticketFor(engine, engine.keys.crm)}`);
    await staff.waitFor("ready");

    await call(msisdn, "+81312345678", 1800); // 44.70: under 50 %
    t.same(client.alerts(), [], "no threshold crossed yet");
    await call(msisdn, "+81312345678", 1800); // 89.40: crosses 50 % and 80 % of the 100.00 bill limit
    const alerts = (await client.waitFor("alert", 2)).map((frame) => frame.alert as Record<string, unknown>);
    t.same(kindsOf(alerts), ["billLimit50", "billLimit80"], "both crossings, in order");
    t.match(alerts[1], {
      "@type": "Alert",
      kind: "billLimit",
      billingAccount: { id: accountId },
      product: { id: lineId },
      period: "2026-03-01",
      threshold: { amount: "80", units: "EUR", percent: "80" },
      value: { amount: "89.4", units: "EUR" },
      message: "You have used 80% of your bill limit of 100.00 EUR for 2026-03-01: 89.40 EUR so far.",
    });
    await staff.waitFor("alert", 2);
    t.same(kindsOf(staff.alerts()), ["billLimit50", "billLimit80"], "a staff stream of every account sees them too");

    // A crash after the charging step but before the commit: the retry's step answers the stored crossing, the
    // commit raises its alert; a crash after the commit but before the acknowledgement raises nothing again.
    await postCdrs(engine, [voiceCdr(msisdn, "+81312345678", 1800)]); // 134.10: crosses 100 %
    const rating = engine.app.services.charging.rating;
    const queue = engine.app.services.charging.queue;
    const shard = queue.shardOf(accountId);
    const entries = await queue.read(shard, "test", 10, 0);
    const database = engine.app.database;
    const transaction = database.transaction;
    database.transaction = async () => {
      database.transaction = transaction;
      throw new Error("crash before commit");
    };
    await t.rejects(rating.rate(entries), /crash before commit/);
    t.equal(await engine.count("alerts", "kind = 'billLimit'"), 2, "nothing committed by the crashed attempt");
    await rating.rate(entries);
    await rating.rate(entries);
    await queue.ack(
      shard,
      entries.map((entry) => entry.id),
    );
    await client.waitFor("alert", 3);
    t.same(kindsOf(client.alerts()), ["billLimit50", "billLimit80", "billLimit100"], "each threshold once");
    t.equal(await engine.count("alerts"), 3, "three alerts stored");
    t.equal(await engine.count("threshold_crossings"), 3);

    // Stored and listed per account, newest first.
    const listed = await engine.request("GET", "/api/v1/alerts", { key: own });
    t.equal(listed.statusCode, 200);
    t.same(
      listed.json().map((alert: { threshold: { percent: string } }) => alert.threshold.percent),
      ["100", "80", "50"],
    );
    t.equal(listed.headers["x-total-count"], "3");
    const one = await engine.request("GET", `/api/v1/alerts/${listed.json()[0].id}`, { key: own });
    t.equal(one.json().kind, "billLimit");
    const filtered = await engine.request("GET", `/api/v1/alerts?billingAccountId=${accountId}&kind=allowance`);
    t.same(filtered.json(), []);
    expectError(t, await engine.request("GET", "/api/v1/alerts?kind=nonsense"), 400, "invalid_parameter");

    // The message channel: one SMS per alert to the customer's mobile, once, even when the relay runs again.
    await engine.app.services.alerts.relay();
    await engine.app.services.alerts.relay();
    const alerted = channel.sent.filter((message) => /bill limit/.test(message.body));
    t.same(
      alerted.map((message) => [message.channel, message.to]),
      [
        ["sms", "+4915799999999"],
        ["sms", "+4915799999999"],
        ["sms", "+4915799999999"],
      ],
    );
    t.match(alerted[2]?.body, /100% of your bill limit/);
    t.equal(await engine.count("customer_messages", "reason = 'alert.billLimit' and status = 'sent'"), 3);

    // Hub callbacks: one AlertCreateEvent per alert.
    await engine.app.services.hubs.deliverOnce();
    const events = receiver.received.map((request) => JSON.parse(request.body));
    // Hub deliveries run in parallel: receivers order by the event, not by arrival.
    t.same(events.map((event) => `${event.eventType} ${event.event.alert.threshold.percent}`).sort(), [
      "AlertCreateEvent 100",
      "AlertCreateEvent 50",
      "AlertCreateEvent 80",
    ]);

    // An alert whose publish was lost (its raiser died after the commit) is published by the relay, and a
    // client that already has it is not sent it twice.
    await engine.sql("update alerts set published_at = null where id = (select max(id) from alerts)");
    const late = await openLive(engine, `?ticket=${await ticketFor(engine, own)}`);
    await late.waitFor("ready");
    engine.clock.advanceSeconds(3);
    t.same(await engine.app.services.alerts.relay(), { published: 1, messaged: 0 });
    await late.waitFor("alert", 1);
    t.same(kindsOf(late.alerts()), ["billLimit100"], "the relay published it");
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(client.alerts().length, 3, "the client that had it got no duplicate");

    // Self-care: the subscriber's own balance, allowances, usage and alerts.
    const care = await engine.request("GET", `/api/v1/self-care/${accountId}`, { key: own });
    t.equal(care.statusCode, 200, care.body);
    t.match(care.json(), {
      billingAccount: { id: accountId },
      accountType: "postpaid",
      spendToDate: { amount: "134.1", units: "EUR" },
      billLimit: { amount: "100", units: "EUR" },
      creditLimit: { amount: "500", units: "EUR" },
    });
    t.equal(care.json().recentUsage.length, 3);
    t.match(care.json().recentUsage[0], {
      usageType: "voice",
      quantity: 1800,
      charge: { amount: "44.7", units: "EUR" },
    });
    t.same(
      care
        .json()
        .allowances.map((bucket: { usageType: string; used: number }) => `${bucket.usageType} ${bucket.used}`)
        .sort(),
      ["data 0", "sms 0", "voice 0"],
      "international calls use no allowance",
    );
    t.match(care.json().allowances[0], { resetDate: "2026-03-31T22:00:00.000Z" });
    t.equal(care.json().alerts.length, 3);
    for (const live of [client, staff, late]) live.socket.close();
  });

  if (everyCase(driver))
    t.test(`[${driver}] replay after reconnect; allowance alerts; no duplicates`, async (t) => {
      const { engine, accountId, call } = await start(t, driver, "postpaid");
      const { msisdn } = await activateLine(engine, accountId);
      const own = await engine.subscriberKey(accountId);
      const first = await openLive(engine, `?ticket=${await ticketFor(engine, own)}`);
      await first.waitFor("ready");
      // 30,000 s a month, prorated from the 15th: three national calls of 5,000 s cross 80 % once.
      await call(msisdn, "+4930123456", 5_000);
      await call(msisdn, "+4930123456", 5_000);
      await call(msisdn, "+4930123456", 5_000);
      const seen = await first.waitFor("alert", 1);
      const last = (seen[seen.length - 1]?.alert as { id: string } | undefined)?.id ?? "0";
      t.match(seen[0]?.alert, {
        kind: "allowance",
        threshold: { percent: "80", units: "second" },
        value: { units: "second" },
      });
      first.socket.close();
      await first.closed;

      // Missed while away: the rest of the allowance (100 %) and the calls beyond it.
      await call(msisdn, "+4930123456", 5_000);
      for (let i = 0; i < 3; i++) await call(msisdn, "+81312345678", 1800); // over the 100.00 credit limit: barred
      const missed = await engine.request("GET", "/api/v1/alerts", { key: own });
      const expected = missed
        .json()
        .map((alert: { id: string }) => alert.id)
        .filter((id: string) => Number(id) > Number(last))
        .reverse();
      t.same(
        missed
          .json()
          .map((alert: { kind: string }) => alert.kind)
          .reverse(),
        ["allowance", "allowance", "creditLimit", "lineBarred"],
        "the rest of the allowance, the credit limit and the barring were raised while the client was away",
      );

      const again = await openLive(engine, `?ticket=${await ticketFor(engine, own)}&after=${last}`);
      const replayed = await again.waitFor("replayed");
      t.equal(replayed[0]?.count, expected.length);
      t.same(
        again.alerts().map((alert) => alert.id),
        expected,
        "exactly what came after the last id seen, in order",
      );
      await call(msisdn, "+81312345678", 1800);
      await new Promise((resolve) => setTimeout(resolve, 50));
      t.equal(
        new Set(again.alerts().map((alert) => alert.id)).size,
        again.alerts().length,
        "never the same alert twice",
      );
      again.socket.close();
    });

  if (everyCase(driver))
    t.test(`[${driver}] prepaid: low balance re-arms after a top-up; barred and unbarred are alerts`, async (t) => {
      const { engine, accountId, call, channel } = await start(t, driver, "prepaid");
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-prepaid-payg");
      const own = await engine.subscriberKey(accountId);
      const client = await openLive(engine, `?ticket=${await ticketFor(engine, own)}`);
      await client.waitFor("ready");
      await call(msisdn, "+33123456789", 120); // 0.00 → −0.58: exhausted and barred
      const topUp = (amount: number, key: string) =>
        engine.request("POST", `${BALANCES}/topupBalance`, {
          key: engine.keys.crm,
          headers: { "idempotency-key": key },
          body: { amount: { amount, units: "EUR" }, product: { id: lineId } },
        });
      t.equal((await topUp(5, "k1")).statusCode, 201); // 4.42, unbarred
      await call(msisdn, "+33123456789", 540); // 1.81: low balance
      await call(msisdn, "+33123456789", 30); // 1.66: still low, no second alert
      await topUp(3, "k2"); // 4.66: re-armed
      await call(msisdn, "+33123456789", 540); // 2.05
      await call(msisdn, "+33123456789", 120); // 1.47: low again
      await client.waitFor("alert", 5);
      t.same(kindsOf(client.alerts()), ["balanceExhausted", "lineBarred", "lineUnbarred", "lowBalance", "lowBalance"]);
      const lows = client.alerts().filter((alert) => alert.kind === "lowBalance");
      t.same(
        lows.map((alert) => (alert.value as { amount: string }).amount),
        ["1.81", "1.47"],
        "fired, re-armed by the top-up, fired again",
      );
      t.match(lows[0], { threshold: { amount: "2", units: "EUR" }, message: /balance is 1.81 EUR, below 2.00 EUR/ });
      await engine.app.services.alerts.relay();
      t.equal(
        await engine.count("customer_messages", "reason like 'alert.%' and status = 'sent'"),
        5,
        "one message per alert",
      );
      const messageIds = await engine.sql<{ id: string }>(
        "select id from customer_messages where reason like 'alert.%'",
      );
      t.ok(
        messageIds.every((row) => channel.sent.filter((message) => message.id === row.id).length === 1),
        "each reached the channel once",
      );
      const care = await engine.request("GET", `/api/v1/self-care/${accountId}`, { key: own });
      t.match(care.json(), {
        accountType: "prepaid",
        balance: { amount: "1.47", units: "EUR" },
        lines: [{ product: { id: lineId } }],
      });
      client.socket.close();
    });

  if (everyCase(driver))
    t.test(`[${driver}] another account's alerts, balance and usage are 404 to a subscriber`, async (t) => {
      const { engine, accountId, call } = await start(t, driver, "prepaid");
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-prepaid-payg");
      await call(msisdn, "+33123456789", 120);
      const [alert] = (await engine.request("GET", "/api/v1/alerts")).json();
      const [usage] = await engine.sql<{ usage_id: string }>("select usage_id from rated_usage");
      const other = await orderReadyAccount(engine, {
        numbers: ["+4915100000200", "+4915100000201"],
        accountType: "prepaid",
      });
      const stranger = await engine.subscriberKey(other.accountId);
      const own = await engine.subscriberKey(accountId);
      t.equal((await engine.request("GET", `/api/v1/alerts/${alert.id}`, { key: own })).statusCode, 200);
      expectError(t, await engine.request("GET", `/api/v1/alerts/${alert.id}`, { key: stranger }), 404, "not_found");
      expectError(
        t,
        await engine.request("GET", `/api/v1/alerts?billingAccountId=${accountId}`, { key: stranger }),
        404,
        "not_found",
      );
      t.same((await engine.request("GET", "/api/v1/alerts", { key: stranger })).json(), [], "its own list is empty");
      expectError(
        t,
        await engine.request("GET", `/api/v1/self-care/${accountId}`, { key: stranger }),
        404,
        "not_found",
      );
      expectError(
        t,
        await engine.request("GET", `${BALANCES}/accumulatedBalance/${accountId}`, { key: stranger }),
        404,
        "not_found",
      );
      expectError(
        t,
        await engine.request("GET", `/tmf-api/usageManagement/v4/usage/${usage?.usage_id}`, { key: stranger }),
        404,
        "not_found",
      );
      expectError(t, await engine.request("GET", `${BALANCES}/bucket/${lineId}`, { key: stranger }), 404, "not_found");
      expectError(
        t,
        await engine.request("POST", "/api/v1/ws/tickets", { key: stranger, body: { billingAccountId: accountId } }),
        404,
        "not_found",
      );
      expectError(t, await engine.request("GET", "/api/v1/alerts/12x"), 404, "not_found");
      expectError(t, await engine.request("GET", `/api/v1/self-care/${other.customerId}`), 404, "not_found");
      // A stranger's live stream carries nothing of this account.
      const watching = await openLive(engine, `?ticket=${await ticketFor(engine, stranger)}`);
      await watching.waitFor("ready");
      await call(msisdn, "+33123456789", 120);
      await new Promise((resolve) => setTimeout(resolve, 50));
      t.same(watching.alerts(), []);
      watching.socket.close();
    });
}

t.test("WebSocket tickets and frames: refused with a clear close code, nothing leaked", async (t) => {
  const engine = await startEngine(t);
  const { accountId } = await orderReadyAccount(engine);
  const own = await engine.subscriberKey(accountId);
  const refused = async (query: string) => (await openLive(engine, query)).closed;

  t.same(await refused(""), { code: 4401, reason: "no ticket: obtain one with POST /api/v1/ws/tickets" });
  t.same(await refused("?ticket=not-a-ticket"), { code: 4401, reason: "unknown ticket" });
  const ticket = await ticketFor(engine, own);
  const used = await openLive(engine, `?ticket=${ticket}`);
  await used.waitFor("ready");
  t.same(await refused(`?ticket=${ticket}`), { code: 4401, reason: "ticket already used; obtain a new one" });
  const stale = await ticketFor(engine, own);
  engine.clock.advanceSeconds(31);
  t.same(await refused(`?ticket=${stale}`), { code: 4401, reason: "ticket expired; obtain a new one" });
  t.same(await refused(`?ticket=${await ticketFor(engine, own)}&after=-1`), {
    code: 4400,
    reason: "after: must be the id of the last alert received",
  });

  const frame = async (send: (socket: import("ws").WebSocket) => void) => {
    const client = await openLive(engine, `?ticket=${await ticketFor(engine, own)}`);
    await client.waitFor("ready");
    send(client.socket);
    return client;
  };
  const pinged = await frame((socket) => socket.send(JSON.stringify({ type: "ping" })));
  await pinged.waitFor("pong");
  t.pass("a ping is answered with a pong");
  t.same(await (await frame((socket) => socket.send("{not json"))).closed, {
    code: 1007,
    reason: "malformed frame: not JSON",
  });
  t.same(await (await frame((socket) => socket.send(JSON.stringify({ type: "subscribe", account: "x" })))).closed, {
    code: 1008,
    reason: 'unknown frame: the only client frame is {"type":"ping"}',
  });
  t.same(await (await frame((socket) => socket.send(Buffer.from([1, 2, 3]), { binary: true }))).closed, {
    code: 1003,
    reason: "binary frames are not accepted; send JSON text",
  });
  t.equal((await (await frame((socket) => socket.send("x".repeat(5_000)))).closed).code, 1009, "an oversized frame");
  t.equal(engine.app.services.live.connections, 2, "only the healthy connections remain");

  // A plain GET is told to upgrade; tickets need a key and a known account; nothing of them reaches an answer.
  expectError(t, await engine.request("GET", "/api/v1/ws"), 426, "upgrade_required");
  expectError(t, await engine.request("POST", "/api/v1/ws/tickets", { key: null, body: {} }), 401, "missing_api_key");
  expectError(
    t,
    await engine.request("POST", "/api/v1/ws/tickets", { key: engine.keys.network, body: {} }),
    403,
    "role_not_allowed",
  );
  expectError(
    t,
    await engine.request("POST", "/api/v1/ws/tickets", {
      body: { billingAccountId: "00000000-0000-7000-8000-000000000000" },
    }),
    404,
    "not_found",
  );
  expectError(t, await engine.request("POST", "/api/v1/ws/tickets", { body: { extra: 1 } }), 400, "invalid_field");
  const issued = await engine.request("POST", "/api/v1/ws/tickets", { key: own, body: {} });
  t.match(issued.json(), { "@type": "WebSocketTicket", billingAccountId: accountId, url: "/api/v1/ws" });
  const [row] = await engine.sql<{ ticket_hash: string }>("select ticket_hash from ws_tickets where id = $1", [
    issued.json().id,
  ]);
  t.not(row?.ticket_hash, issued.json().ticket, "only a hash of the ticket is stored");
  t.equal(await engine.app.services.live.purgeTickets(), 0, "tickets are kept an hour after they expire");
  engine.clock.advanceSeconds(3_700);
  t.ok((await engine.app.services.live.purgeTickets()) >= 8, "then purged");
  used.socket.close();
  pinged.socket.close();
});
