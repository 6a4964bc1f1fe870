import t from "tap";
import { httpProvisioning } from "../../src/modules/provisioning/provisioning.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { ManualClock } from "../../src/platform/clock.js";
import { expectError, startEngine } from "../support/engine.js";
import {
  activateLine,
  billingAccountBody,
  createBillingAccount,
  createCustomer,
  lineOrder,
  orderReadyAccount,
} from "../support/fixtures.js";
import { startReceiver } from "../support/receiver.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";

/** Order validation, compensation at each step, idempotency, cancellation, contention, the HTTP network adapter. */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const CANCEL = "/tmf-api/productOrderingManagement/v4/cancelProductOrder";
const RESOURCES = "/tmf-api/resourceInventoryManagement/v4/resource";

t.test("a well-formed order that breaks rules is stored rejected with every reason, reserving nothing", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine);
  const other = await createBillingAccount(engine);
  const held = await engine.request("POST", "/api/v1/inventory/reservations", {
    body: { "@type": "MSISDN", value: "+4915100000005" },
  });
  t.equal(held.statusCode, 201);
  const response = await engine.request("POST", ORDERS, {
    body: {
      billingAccount: { id: accountId },
      productOrderItem: [
        { id: "1", action: "add", productOffering: { id: "plan-postpaid-classic" } },
        { id: "2", action: "add", productOffering: { id: "addon-data-5gb" } },
        { id: "3", action: "add", productOffering: { id: "plan-prepaid-s" } },
        { id: "4", action: "add", productOffering: { id: "plan-business-pro" } },
        {
          id: "5",
          action: "add",
          productOffering: { id: "plan-postpaid-m" },
          product: { productCharacteristic: [{ name: "msisdn", value: "+4915100000005" }] },
        },
        { id: "6", action: "add", productOffering: { id: "fee-sim" } },
        {
          id: "7",
          action: "add",
          productOffering: { id: "addon-international-100" },
          productOrderItemRelationship: [{ id: "6", relationshipType: "reliesOn" }],
        },
        { id: "8", action: "modify", productOffering: { id: "plan-postpaid-m" } },
        { id: "9", action: "add", productOffering: { id: "plan-gold" } },
      ],
    },
  });
  t.equal(response.statusCode, 201, response.body);
  const order = response.json();
  t.equal(order.state, "rejected");
  const codes = order.rejectionReason.map(
    (reason: { code: string; orderItemId?: string }) => `${reason.orderItemId}:${reason.code}`,
  );
  for (const expected of [
    "1:not_sellable",
    "1:not_valid_now",
    "2:addon_without_plan",
    "3:payment_type",
    "4:business_only",
    "5:number_taken",
    "6:fee_not_orderable",
    "7:addon_without_plan",
    "8:unsupported_action",
    "9:unknown_offering",
  ]) {
    t.ok(codes.includes(expected), `reports ${expected}`);
  }
  t.equal(await engine.count("inventory_resources", "state = 'reserved'"), 1, "only the test's own reservation");
  t.equal(await engine.count("products"), 0);

  const foreign = await engine.request("POST", ORDERS, {
    body: {
      billingAccount: { id: other.id },
      productOrderItem: [{ id: "1", action: "delete", product: { id: "00000000-0000-7000-8000-000000000000" } }],
    },
  });
  t.match(foreign.json().rejectionReason, [{ code: "unknown_product" }]);
  const unknownAccount = await engine.request("POST", ORDERS, {
    body: lineOrder("00000000-0000-7000-8000-000000000000"),
  });
  t.match(unknownAccount.json(), { state: "rejected", rejectionReason: [{ code: "unknown_account" }] });
  // TMF622 makes billingAccount optional: a standard client's order without one is created, and rejected.
  const { billingAccount: _named, ...withoutAccount } = lineOrder(accountId);
  const noAccount = await engine.request("POST", ORDERS, { body: withoutAccount });
  t.equal(noAccount.statusCode, 201, noAccount.body);
  t.match(noAccount.json(), { state: "rejected", rejectionReason: [{ code: "missing_account" }] });
  t.notOk("billingAccount" in noAccount.json(), "no account shown");
  t.equal((await engine.request("GET", noAccount.json().href)).json().state, "rejected", "stored");
  expectError(
    t,
    await engine.request("POST", ORDERS, { body: { billingAccount: { id: accountId }, productOrderItem: [] } }),
    400,
    "invalid_field",
    "productOrderItem",
  );
  expectError(
    t,
    await engine.request("POST", ORDERS, { key: engine.keys.finance, body: lineOrder(accountId) }),
    403,
    "role_not_allowed",
  );
});

t.test("another account's product cannot be disconnected", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine);
  const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
  const lineId = (await engine.request("GET", placed.href)).json().productOrderItem[0].product.id;
  const customer = await createCustomer(engine);
  const stranger = (
    await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
      body: billingAccountBody(customer.id),
    })
  ).json();
  const attempt = await engine.request("POST", ORDERS, {
    body: {
      billingAccount: { id: stranger.id },
      productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
    },
  });
  t.match(attempt.json(), { state: "rejected", rejectionReason: [{ code: "unknown_product" }] });
  t.equal((await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`)).json().status, "active");
});

t.test("a failure at each fulfilment step leaves nothing reserved or half-active", async (t) => {
  for (const step of ["sim", "activate", "cancel-during-activate"] as const) {
    await t.test(step, async (t) => {
      const network = new RecordingProvisioning();
      const engine = await startEngine(t, { provisioning: network });
      const { accountId } = await orderReadyAccount(engine, { sims: step === "sim" ? 0 : 2 });
      const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
      if (step === "activate") network.failing.add("activate");
      if (step === "cancel-during-activate") {
        const gate = network.hold("activate");
        const running = engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
        await gate.reached;
        const cancel = await engine.request("POST", CANCEL, {
          body: { productOrder: { id: placed.id }, cancellationReason: "changed mind" },
        });
        t.equal(cancel.statusCode, 201);
        t.equal(cancel.json().state, "inProgress");
        gate.release();
        await running;
        t.equal((await engine.request("GET", cancel.json().href)).json().state, "done");
        t.same(
          network.calls.map((call) => call.operation),
          ["activate", "terminate"],
          "the activated line is taken back",
        );
      } else {
        await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
      }
      const order = (await engine.request("GET", placed.href)).json();
      t.equal(order.state, step === "cancel-during-activate" ? "cancelled" : "failed", JSON.stringify(order));
      t.equal(
        await engine.count("inventory_resources", "state <> 'available'"),
        0,
        "every number and SIM is free again",
      );
      t.equal(await engine.count("products", "status not in ('aborted')"), 0, "no product is left half-active");
      t.equal(await engine.count("one_time_charges"), 0, "nothing is charged");
      if (step !== "cancel-during-activate")
        t.match(order.failureReason, step === "sim" ? /no available SIMCard/ : /network did not confirm activate/);
    });
  }
});

t.test("an order retried with its Idempotency-Key changes nothing", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine);
  const headers = { "idempotency-key": "crm-7f3a" };
  const first = await engine.request("POST", ORDERS, { headers, body: lineOrder(accountId) });
  const second = await engine.request("POST", ORDERS, { headers, body: lineOrder(accountId) });
  t.equal(second.statusCode, 201);
  t.equal(second.json().id, first.json().id);
  t.equal(second.headers["idempotent-replayed"], "true");
  t.equal(await engine.count("product_orders"), 1);
  expectError(
    t,
    await engine.request("POST", ORDERS, { headers, body: lineOrder(accountId, "plan-postpaid-l") }),
    409,
    "idempotency_key_reused",
  );
  const raced = await Promise.all(
    Array.from({ length: 5 }, () =>
      engine.request("POST", ORDERS, { headers: { "idempotency-key": "crm-race" }, body: lineOrder(accountId) }),
    ),
  );
  t.equal(new Set(raced.map((response) => response.json().id)).size, 1, "parallel retries share one order");
});

t.test("cancellation: an acknowledged order at once, a completed one never", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine);
  const waiting = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  const cancel = await engine.request("POST", CANCEL, { body: { productOrder: { id: waiting.id } } });
  t.equal(cancel.json().state, "done");
  t.equal((await engine.request("GET", waiting.href)).json().state, "cancelled");
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, waiting.id);
  t.equal(await engine.count("products"), 0, "a cancelled order is not fulfilled later");

  const done = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, done.id);
  expectError(
    t,
    await engine.request("POST", CANCEL, { body: { productOrder: { id: done.id } } }),
    409,
    "illegal_transition",
  );
  expectError(
    t,
    await engine.request("POST", CANCEL, { body: { productOrder: { id: "nope" } } }),
    422,
    "unknown_order",
    "productOrder.id",
  );
});

t.test("20 concurrent orders for the last 5 numbers: 5 lines, 15 failed orders, nothing assigned twice", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100000000", "+4915100000004"], sims: 20 });
  const placed = await Promise.all(
    Array.from({ length: 20 }, () => engine.request("POST", ORDERS, { body: lineOrder(accountId) })),
  );
  await Promise.all(placed.map((response) => engine.app.services.orders.fulfil(SYSTEM_ACTOR, response.json().id)));
  const states = (await engine.request("GET", ORDERS, { query: { limit: "50" } }))
    .json()
    .map((order: { state: string }) => order.state);
  t.equal(states.filter((state: string) => state === "completed").length, 5);
  t.equal(states.filter((state: string) => state === "failed").length, 15);
  const live = await engine.sql<{ msisdn: string }>(
    "select msisdn from products where kind = 'plan' and status = 'active'",
  );
  t.equal(new Set(live.map((row) => row.msisdn)).size, 5, "five distinct numbers");
  t.equal(await engine.count("inventory_resources", "type = 'SIMCard' and state = 'assigned'"), 5, "and five SIMs");
  t.equal(await engine.count("inventory_resources", "state = 'reserved'"), 0, "no reservation left behind");
});

t.test("the HTTP network adapter: confirms, retries 5xx, gives up on timeouts and refusals", async (t) => {
  const network = await startReceiver();
  t.teardown(() => network.close());
  // A generous timeout where answers are counted (a loaded machine must not turn a slow answer into a retry), a
  // short one where the network hangs.
  const adapter = httpProvisioning(network.url, { timeoutMs: 5_000, pause: async () => {} });
  const impatient = httpProvisioning(network.url, { timeoutMs: 200, pause: async () => {} });
  const line = { productId: "p1", msisdn: "+4915100000000", iccid: "8949", imsi: "262010000000001" };
  await adapter.apply("activate", line);
  t.match(JSON.parse(network.received[0]?.body ?? "{}"), { operation: "activate", requestId: "p1:activate", line });
  network.answers.push(503, 500);
  await adapter.apply("suspend", line);
  t.equal(network.received.length, 4, "two failures, then success");
  network.answers.push("hang", "hang", "hang");
  await t.rejects(impatient.apply("resume", line), /resume failed: network timed out/);
  network.answers.push(400);
  await t.rejects(adapter.apply("terminate", line), /terminate failed: network answered 400/);

  const engine = await startEngine(t, { env: { BSS_NETWORK_URL: network.url } });
  const { accountId } = await orderReadyAccount(engine);
  network.answers.push(500, 500, 500);
  const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
  t.equal((await engine.request("GET", placed.href)).json().state, "failed", "retried, then failed and compensated");
  t.equal((await engine.request("GET", RESOURCES, { query: { lifecycleState: "reserved" } })).json().length, 0);
});

t.test("more steps failing in turn: no number left, and the last step after the network said yes", async (t) => {
  await t.test("no number", async (t) => {
    const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
    const { accountId } = await orderReadyAccount(engine, { numbers: ["+4915100000000", "+4915100000000"] });
    const taken = await engine.request("POST", "/api/v1/inventory/reservations", {
      body: { "@type": "MSISDN", value: "+4915100000000" },
    });
    t.equal(taken.statusCode, 201);
    const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
    const order = (await engine.request("GET", placed.href)).json();
    t.match(order, { state: "failed", failureReason: /no available MSISDN/ });
    t.equal(await engine.count("inventory_resources", "type = 'SIMCard' and state <> 'available'"), 0);
    t.equal(await engine.count("products"), 0, "the transaction that reserves also creates: nothing is left");
  });
  await t.test("reservation lapsed while the network worked", async (t) => {
    const network = new RecordingProvisioning();
    const engine = await startEngine(t, { provisioning: network, env: { BSS_RESERVATION_SECONDS: "60" } });
    const { accountId } = await orderReadyAccount(engine);
    const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
    const gate = network.hold("activate");
    const running = engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
    await gate.reached;
    engine.clock.advanceSeconds(120);
    gate.release();
    await running;
    const order = (await engine.request("GET", placed.href)).json();
    t.match(order, { state: "failed", failureReason: /reservation .* does not exist/ });
    t.same(
      network.calls.map((call) => call.operation),
      ["activate", "terminate"],
      "the line is taken back on the network",
    );
    t.equal(await engine.count("products", "status <> 'aborted'"), 0);
    t.equal(await engine.count("one_time_charges"), 0);
    t.equal(await engine.count("inventory_resources", "state = 'assigned'"), 0);
  });
});

t.test("the simulated network can be told to fail, and an order then fails and compensates", async (t) => {
  const engine = await startEngine(t);
  const { accountId } = await orderReadyAccount(engine);
  const told = await engine.request("POST", "/api/v1/network-simulator/failures", {
    body: { operation: "activate", count: 1 },
  });
  t.same(told.json(), { pendingFailures: { activate: 1 } });
  const first = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, first.id);
  t.match((await engine.request("GET", first.href)).json(), { state: "failed", failureReason: /told to fail/ });
  const second = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, second.id);
  t.equal((await engine.request("GET", second.href)).json().state, "completed", "the next one goes through");
  expectError(
    t,
    await engine.request("POST", "/api/v1/network-simulator/failures", { body: { operation: "explode", count: 1 } }),
    400,
    "invalid_field",
    "operation",
  );
});

t.test("a subscriber key reads its own lines only; orders run in the background by default", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning(), orderFulfilment: "background" });
  const { accountId } = await orderReadyAccount(engine);
  const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  const settled = await engine.app.services.orders.settle(placed.id);
  t.equal(settled.state, "completed");
  const lineId = settled.productOrderItem[0]?.product?.id as string;
  const mine = await engine.subscriberKey(accountId);
  t.equal(
    (await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`, { key: mine })).statusCode,
    200,
  );
  const other = await createBillingAccount(engine);
  const theirs = await engine.subscriberKey(other.id);
  expectError(
    t,
    await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`, { key: theirs }),
    404,
    "not_found",
  );
  t.equal((await engine.request("GET", "/tmf-api/productInventory/v4/product", { key: theirs })).json().length, 0);
  expectError(
    t,
    await engine.request("PATCH", `/tmf-api/productInventory/v4/product/${lineId}`, {
      key: mine,
      body: { status: "suspended" },
    }),
    403,
    "role_not_allowed",
  );
  const filtered = await engine.request("GET", "/tmf-api/productInventory/v4/product", {
    query: { msisdn: "+4915100000000", status: "active" },
  });
  t.same(
    filtered.json().map((product: { id: string }) => product.id),
    [lineId],
  );
});

t.test("a line still being activated cannot be set active or suspended by hand", async (t) => {
  const network = new RecordingProvisioning();
  const engine = await startEngine(t, { provisioning: network });
  const { accountId } = await orderReadyAccount(engine);
  const placed = (await engine.request("POST", ORDERS, { body: lineOrder(accountId) })).json();
  const gate = network.hold("activate");
  const running = engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
  await gate.reached;
  const [pending] = await engine.sql<{ id: string }>("select id from products where kind = 'plan'");
  const url = `/tmf-api/productInventory/v4/product/${pending?.id}`;
  expectError(t, await engine.request("PATCH", url, { body: { status: "active" } }), 409, "illegal_transition");
  expectError(t, await engine.request("PATCH", url, { body: { status: "suspended" } }), 409, "illegal_transition");
  gate.release();
  await running;
  t.equal((await engine.request("GET", placed.href)).json().state, "completed");
  t.same(
    network.calls.map((call) => call.operation),
    ["activate"],
    "nothing was pushed for the refused changes",
  );
});

t.test("a contract term ends after calendar months, clamped at the month's end (one calendar)", async (t) => {
  const engine = await startEngine(t, { clock: new ManualClock("2028-02-29T10:00:00Z") });
  const { accountId } = await orderReadyAccount(engine);
  const { lineId } = await activateLine(engine, accountId, "plan-postpaid-m");
  const product = (await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`)).json();
  t.same(
    product.productTerm,
    [
      {
        name: "24-month contract",
        duration: { amount: 24, units: "month" },
        validFor: { endDateTime: "2030-02-28T10:00:00.000Z" },
      },
    ],
    "24 months from 29 February 2028 end on 28 February 2030, not 1 March",
  );
});

t.test("an account with a live line cannot close; its line can always be disconnected, then it closes", async (t) => {
  const engine = await startEngine(t, { provisioning: new RecordingProvisioning() });
  const { accountId } = await orderReadyAccount(engine);
  const { lineId, msisdn } = await activateLine(engine, accountId);
  const account = `/tmf-api/accountManagement/v4/billingAccount/${accountId}`;
  const refused = await engine.request("PATCH", account, { body: { state: "closed" } });
  expectError(t, refused, 409, "account_not_closable");
  t.match(refused.json().message, lineId, "names the line");
  t.match(refused.json().message, msisdn, "and its number");
  t.equal((await engine.request("GET", account)).json().state, "active", "nothing changed");

  // Suspended (as dunning will): a disconnect order still ends the line.
  t.equal((await engine.request("PATCH", account, { body: { state: "suspended" } })).statusCode, 200);
  const placed = await engine.request("POST", ORDERS, {
    body: {
      billingAccount: { id: accountId },
      productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
    },
  });
  t.equal(placed.json().state, "acknowledged", placed.body);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  t.equal((await engine.request("GET", `/tmf-api/productInventory/v4/product/${lineId}`)).json().status, "terminated");
  const adding = await engine.request("POST", ORDERS, { body: lineOrder(accountId) });
  t.match(
    adding.json(),
    { state: "rejected", rejectionReason: [{ code: "account_not_active" }] },
    "new lines still not",
  );
  const closed = await engine.request("PATCH", account, { body: { state: "closed" } });
  t.equal(closed.statusCode, 200, closed.body);
  t.equal(closed.json().state, "closed");
});
