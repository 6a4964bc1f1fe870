import { createHmac } from "node:crypto";
import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { HUB_MAX_ATTEMPTS } from "../../src/shared/limits.js";
import { expectError, startEngine } from "../support/engine.js";
import { createBillingAccount, createIndividual } from "../support/fixtures.js";
import { startReceiver } from "../support/receiver.js";

/** Outbox events for every state change, and their signed, retried delivery to hub callbacks. */

const ACCOUNT_HUB = "/tmf-api/accountManagement/v4/hub";

function verify(secret: string, header: string, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = createHmac("sha256", secret).update(`${match[1]}.${body}`).digest("hex");
  return expected === match[2];
}

t.test("state changes write TMF events to the outbox in their own transaction", async (t) => {
  const engine = await startEngine(t);
  const party = await createIndividual(engine);
  await engine.request("PATCH", party.href, { body: { title: "Countess" } });
  await engine.request("PATCH", party.href, { body: { status: "validated" } });
  await engine.request("DELETE", party.href);
  const events = await engine.sql<{
    event_type: string;
    api: string;
    payload: { event: { individual: { id: string } } };
  }>("select event_type, api, payload from outbox_events where resource_id = $1 order by id", [party.id]);
  t.same(
    events.map((event) => event.event_type),
    [
      "IndividualCreateEvent",
      "IndividualAttributeValueChangeEvent",
      "IndividualStateChangeEvent",
      "IndividualDeleteEvent",
    ],
  );
  t.ok(events.every((event) => event.api === "party" && event.payload.event.individual.id === party.id));
  const failed = await engine.request("PATCH", party.href, { body: { status: "initialized" } });
  t.equal(failed.statusCode, 404);
  t.equal(await engine.count("outbox_events", "resource_id = $1", [party.id]), 4, "a refused change writes no event");

  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const catalogEvents = await engine.count(
    "outbox_events",
    "api = 'productCatalogManagement' and event_type = 'ProductOfferingCreateEvent'",
  );
  t.equal(catalogEvents, 14, "one event per published offering");
});

t.test("a hub receives matching events once, signed with its secret", async (t) => {
  const engine = await startEngine(t);
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const hub = await engine.request("POST", ACCOUNT_HUB, {
    body: { callback: receiver.url, query: "eventType=BillingAccountCreateEvent,BillingAccountStateChangeEvent" },
  });
  t.equal(hub.statusCode, 201, hub.body);
  const { secret, id } = hub.json();
  t.ok(hub.headers.location);

  const account = await createBillingAccount(engine);
  await engine.request("PATCH", account.href, { body: { name: "renamed" } });
  await engine.request("PATCH", account.href, { body: { state: "suspended" } });
  const first = await engine.app.services.hubs.deliverOnce();
  t.same(first, { delivered: 2, retrying: 0, failed: 0 });
  t.same(await engine.app.services.hubs.deliverOnce(), { delivered: 0, retrying: 0, failed: 0 }, "nothing twice");
  t.equal(receiver.received.length, 2);
  const types = receiver.received.map((request) => JSON.parse(request.body).eventType);
  t.same(
    types,
    ["BillingAccountCreateEvent", "BillingAccountStateChangeEvent"],
    "the attribute change was filtered out",
  );
  for (const request of receiver.received) {
    t.ok(verify(secret, String(request.headers["x-bss-signature"]), request.body), "the signature verifies");
    t.equal(request.headers["x-bss-event-id"], JSON.parse(request.body).eventId);
  }
  const state = JSON.parse(receiver.received[1]?.body ?? "{}");
  t.equal(state.event.billingAccount.state, "suspended");
  t.notOk(
    verify("wrong-secret", String(receiver.received[0]?.headers["x-bss-signature"]), receiver.received[0]?.body ?? ""),
  );
  const log = await engine.request("GET", `/api/v1/hub-subscriptions/${id}/deliveries`);
  t.same(
    log.json().map((delivery: { status: string }) => delivery.status),
    ["delivered", "delivered"],
  );
});

t.test("failures retry with exponential backoff, and a callback that keeps failing is parked", async (t) => {
  const engine = await startEngine(t);
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const hub = (await engine.request("POST", ACCOUNT_HUB, { body: { callback: receiver.url } })).json();
  await createBillingAccount(engine);
  const hubs = engine.app.services.hubs;

  receiver.answers.push(503, 500);
  t.same(await hubs.deliverOnce(), { delivered: 0, retrying: 1, failed: 0 });
  t.same(await hubs.deliverOnce(), { delivered: 0, retrying: 0, failed: 0 }, "not due before its backoff");
  engine.clock.advanceSeconds(2);
  t.same(await hubs.deliverOnce(), { delivered: 0, retrying: 1, failed: 0 });
  engine.clock.advanceSeconds(3);
  t.same(await hubs.deliverOnce(), { delivered: 0, retrying: 0, failed: 0 }, "the second backoff is 4 s");
  engine.clock.advanceSeconds(1);
  t.same(await hubs.deliverOnce(), { delivered: 1, retrying: 0, failed: 0 });
  const [delivery] = (await engine.request("GET", `/api/v1/hub-subscriptions/${hub.id}/deliveries`)).json();
  t.same(
    delivery.log.map((attempt: { statusCode: number }) => attempt.statusCode),
    [503, 500, 200],
  );

  await createBillingAccount(engine);
  for (let attempt = 1; attempt <= HUB_MAX_ATTEMPTS; attempt++) {
    receiver.answers.push(500);
    await hubs.deliverOnce();
    engine.clock.advanceSeconds(4000);
  }
  const parked = (await engine.request("GET", "/api/v1/hub-subscriptions", { query: { status: "parked" } })).json();
  t.equal(parked.length, 1);
  t.match(parked[0].parkedReason, /8 attempts failed; last: callback answered 500/);
  await createBillingAccount(engine);
  const before = receiver.received.length;
  t.same(await hubs.deliverOnce(), { delivered: 0, retrying: 0, failed: 0 }, "a parked hub gets nothing");
  t.equal(receiver.received.length, before);

  const resumed = await engine.request("PATCH", `/api/v1/hub-subscriptions/${hub.id}`, { body: { status: "active" } });
  t.equal(resumed.json().status, "active");
  t.same(
    await hubs.deliverOnce(),
    { delivered: 2, retrying: 0, failed: 0 },
    "the failed and the waiting events go out",
  );
});

t.test("a callback that does not answer times out and is retried", async (t) => {
  const engine = await startEngine(t);
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const hub = (await engine.request("POST", ACCOUNT_HUB, { body: { callback: receiver.url } })).json();
  await createBillingAccount(engine);
  receiver.answers.push("hang");
  t.same(await engine.app.services.hubs.deliverOnce(), { delivered: 0, retrying: 1, failed: 0 });
  const [delivery] = (await engine.request("GET", `/api/v1/hub-subscriptions/${hub.id}/deliveries`)).json();
  t.equal(delivery.lastError, "timed out");
});

t.test("callbacks to internal addresses are refused unless allowed; bad hubs change nothing", async (t) => {
  const engine = await startEngine(t, { env: { BSS_CALLBACK_ALLOW: "" } });
  for (const callback of [
    "http://127.0.0.1:9/x",
    "http://169.254.169.254/latest/meta-data",
    "http://10.1.2.3/",
    "http://[::1]:8080/",
    "http://localhost:9/",
  ]) {
    expectError(
      t,
      await engine.request("POST", ACCOUNT_HUB, { body: { callback } }),
      400,
      "forbidden_callback",
      "callback",
    );
  }
  expectError(
    t,
    await engine.request("POST", ACCOUNT_HUB, { body: { callback: "ftp://example.com/x" } }),
    400,
    "invalid_callback",
    "callback",
  );
  expectError(
    t,
    await engine.request("POST", ACCOUNT_HUB, { body: { callback: "http://user:pw@example.com/" } }),
    400,
    "invalid_callback",
    "callback",
  );
  expectError(
    t,
    await engine.request("POST", ACCOUNT_HUB, { body: { callback: "not a url" } }),
    400,
    "invalid_callback",
    "callback",
  );
  expectError(
    t,
    await engine.request("POST", ACCOUNT_HUB, { body: { callback: "https://example.com/", query: "state=active" } }),
    400,
    "invalid_query",
    "query",
  );
  expectError(
    t,
    await engine.request("POST", ACCOUNT_HUB, { key: engine.keys.finance, body: { callback: "https://example.com/" } }),
    403,
    "role_not_allowed",
  );
  t.equal(await engine.count("hub_subscriptions"), 0);
});

t.test("unsubscribe: 204, then 404; another API's hub path does not reach it", async (t) => {
  const engine = await startEngine(t);
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const hub = (await engine.request("POST", ACCOUNT_HUB, { body: { callback: receiver.url } })).json();
  expectError(t, await engine.request("DELETE", `/tmf-api/party/v4/hub/${hub.id}`), 404, "not_found");
  t.equal((await engine.request("DELETE", hub.href)).statusCode, 204);
  expectError(t, await engine.request("DELETE", hub.href), 404, "not_found");
});

t.test("deliveries connect only to the addresses the policy allows, whatever DNS says at send time", async (t) => {
  const { CallbackPolicy } = await import("../../src/platform/callback-policy.js");
  const { fetch } = await import("undici");
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const byName = receiver.url.replace("127.0.0.1", "localhost");
  const strict = new CallbackPolicy([]);
  t.teardown(() => strict.close());
  await t.rejects(
    fetch(byName, { method: "POST", body: "{}", dispatcher: strict.dispatcher }),
    { cause: { message: /resolved to .* an internal address/ } },
    "a name resolving to loopback is refused at connect",
  );
  t.equal(receiver.received.length, 0, "nothing reached the receiver");
  const allowed = new CallbackPolicy(["localhost"]);
  t.teardown(() => allowed.close());
  const response = await fetch(byName, { method: "POST", body: "{}", dispatcher: allowed.dispatcher });
  t.equal(response.status, 200, "an allowed host connects");
  await response.body?.cancel();
  await t.rejects(
    strict.check("http://[64:ff9b::a00:1]/"),
    { code: "forbidden_callback" },
    "NAT64 addresses are internal too",
  );
});

t.test("IPv6 forms are judged by the range they really reach, not by how they are spelled", async (t) => {
  const { CallbackPolicy } = await import("../../src/platform/callback-policy.js");
  const strict = new CallbackPolicy([]);
  t.teardown(() => strict.close());
  for (const host of [
    "[::7f00:1]", // IPv4-compatible loopback
    "[::127.0.0.1]", // the same, dotted
    "[::ffff:127.0.0.1]", // mapped
    "[::ffff:0:7f00:1]", // translated (RFC 6145)
    "[64:ff9b::7f00:1]", // NAT64 of loopback
    "[2002:7f00:1::1]", // 6to4 of loopback
    "[2002:a9fe:a9fe::1]", // 6to4 of the cloud metadata address
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]", // Teredo whose client is 127.0.0.1
    "[fec0::1]", // site-local
    "[fe80::1]", // link-local
    "[fd00::1]", // unique local
    "[2001:db8::1]", // documentation
    "[::]", // unspecified
    "[ff02::1]", // multicast
    "0x7f.1", // 127.0.0.1 spelled in hex
    "2130706433", // 127.0.0.1 as one number
    "192.0.2.1", // documentation (TEST-NET-1)
    "100.64.0.1", // carrier-grade NAT
  ]) {
    await t.rejects(strict.check(`http://${host}/hook`), { code: "forbidden_callback" }, `${host} is refused`);
  }
  for (const host of ["[2606:4700:4700::1111]", "[64:ff9b::808:808]", "[2002:808:808::1]", "8.8.8.8"]) {
    t.equal((await strict.check(`http://${host}/hook`)).protocol, "http:", `${host} is global`);
  }
  const operator = new CallbackPolicy(["127.0.0.1", "fd12::/16"]);
  t.teardown(() => operator.close());
  for (const host of ["127.0.0.1", "[::ffff:127.0.0.1]", "[fd12:3::1]"]) {
    t.equal((await operator.check(`http://${host}/hook`)).protocol, "http:", `${host} is allowed by the operator`);
  }
  await t.rejects(operator.check("http://[fd13::1]/"), { code: "forbidden_callback" }, "outside the allowed range");

  // Subscribing through the API answers the same, and stores nothing.
  const engine = await startEngine(t, { env: { BSS_CALLBACK_ALLOW: "" } });
  for (const callback of ["http://[::7f00:1]/", "http://[::ffff:0:7f00:1]/", "http://[2002:7f00:1::1]/"]) {
    expectError(t, await engine.request("POST", ACCOUNT_HUB, { body: { callback } }), 400, "forbidden_callback");
  }
  t.equal(await engine.count("hub_subscriptions"), 0);
});
