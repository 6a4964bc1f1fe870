import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { drivers, expectError, startEngine } from "../support/engine.js";
import { lineOrder, orderReadyAccount } from "../support/fixtures.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";

/** From order to active line and back: add → suspend → resume → disconnect → quarantine → available again. */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const PRODUCTS = "/tmf-api/productInventory/v4/product";
const RESOURCES = "/tmf-api/resourceInventoryManagement/v4/resource";

for (const driver of drivers)
  t.test(`[${driver}] a line's whole life`, async (t) => {
    const network = new RecordingProvisioning();
    const engine = await startEngine(t, { driver, provisioning: network, env: { BSS_QUARANTINE_DAYS: "90" } });
    const { accountId, customerId } = await orderReadyAccount(engine);
    const orders = engine.app.services.orders;

    const placed = await engine.request("POST", ORDERS, {
      body: lineOrder(accountId, "plan-postpaid-m", [
        {
          id: "2",
          action: "add",
          productOffering: { id: "addon-data-5gb" },
          productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
        },
      ]),
    });
    t.equal(placed.statusCode, 201, placed.body);
    t.equal(placed.json().state, "acknowledged");
    t.equal(placed.headers.location, placed.json().href);

    await orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    const order = (await engine.request("GET", placed.json().href)).json();
    t.equal(order.state, "completed", JSON.stringify(order));
    t.same(
      order.productOrderItem.map((item: { state: string }) => item.state),
      ["completed", "completed"],
    );
    const lineId = order.productOrderItem[0].product.id as string;
    const msisdn = order.productOrderItem[0].product.productCharacteristic.find(
      (c: { name: string }) => c.name === "msisdn",
    ).value;
    t.equal(msisdn, "+4915100000000", "the first free regular number");
    t.same(
      network.calls.map((call) => call.operation),
      ["activate"],
    );
    t.match(network.calls[0]?.line, { productId: lineId, msisdn, imsi: /^26201/ });

    const line = (await engine.request("GET", `${PRODUCTS}/${lineId}`)).json();
    t.match(line, { status: "active", isBundle: true, productOffering: { id: "plan-postpaid-m", version: "1" } });
    t.same(
      line.statusHistory.map((entry: { status: string }) => entry.status),
      ["created", "pendingActive", "active"],
    );
    t.equal(line.productRelationship[0].relationshipType, "bundles");
    t.same(line.productPrice[0].price, { dutyFreeAmount: { unit: "EUR", value: 19.99 } }, "the price bought");
    t.equal(line.productTerm[0].duration.amount, 24);
    const number = (await engine.request("GET", RESOURCES, { query: { value: msisdn } })).json()[0];
    t.match(number, {
      lifecycleState: "assigned",
      resourceStatus: "reserved",
      usageState: "active",
      assignedTo: lineId,
    });
    const charges = await engine.sql<{ price_id: string; amount: string; source: string; source_id: string }>(
      "select price_id, amount::text, source, source_id from one_time_charges where order_id = $1 order by price_id",
      [order.id],
    );
    t.same(charges, [
      { price_id: "price-activation", amount: "9.990000", source: "order", source_id: order.id },
      { price_id: "price-sim", amount: "4.990000", source: "order", source_id: order.id },
    ]);
    const messages = (await engine.request("GET", `/api/v1/customers/${customerId}/messages`)).json();
    t.same(
      messages.map((message: { reason: string }) => message.reason),
      ["order.received", "line.active"],
    );

    t.equal(
      (await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "suspended" } })).json().status,
      "suspended",
    );
    const addon = (await engine.request("GET", line.productRelationship[0].product.href)).json();
    t.equal(addon.status, "suspended", "add-ons follow their line");
    expectError(
      t,
      await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "suspended" } }),
      409,
      "illegal_transition",
    );
    t.equal(
      (await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "active" } })).json().status,
      "active",
    );
    t.same(
      network.calls.map((call) => call.operation),
      ["activate", "suspend", "resume"],
    );

    const disconnect = await engine.request("POST", ORDERS, {
      body: {
        billingAccount: { id: accountId },
        productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
      },
    });
    t.equal(disconnect.json().state, "acknowledged", disconnect.body);
    await orders.fulfil(SYSTEM_ACTOR, disconnect.json().id);
    t.equal((await engine.request("GET", disconnect.json().href)).json().state, "completed");
    t.equal((await engine.request("GET", `${PRODUCTS}/${lineId}`)).json().status, "terminated");
    const released = (await engine.request("GET", RESOURCES, { query: { value: msisdn } })).json()[0];
    t.equal(released.lifecycleState, "quarantine");
    const sim = (
      await engine.request("GET", RESOURCES, { query: { "@type": "SIMCard", lifecycleState: "retired" } })
    ).json();
    t.equal(sim.length, 1, "the SIM is retired");

    const again = await engine.request("POST", ORDERS, {
      body: {
        billingAccount: { id: accountId },
        productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
      },
    });
    t.equal(again.json().state, "rejected", "a terminated product cannot be disconnected again");
    t.match(again.json().rejectionReason, [{ code: "product_not_live", orderItemId: "1" }]);

    engine.clock.advanceSeconds(90 * 86_400);
    await engine.app.services.inventory.expire(SYSTEM_ACTOR);
    t.equal(
      (await engine.request("GET", RESOURCES, { query: { value: msisdn } })).json()[0].lifecycleState,
      "available",
    );
  });
