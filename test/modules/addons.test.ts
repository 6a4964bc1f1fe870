import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { chargingEngine, postCdrs, voiceCdr } from "../support/charging.js";
import { drivers, type Engine, everyCase, startEngine } from "../support/engine.js";
import { activateLine, billingAccountBody, createBillingAccount, orderReadyAccount } from "../support/fixtures.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";

/**
 * An add-on added to a line the account already has (TMF622 `product.productRelationship` reliesOn an owned
 * product): fulfilled by the order saga (created under the line, activated, its fees charged, its allowance granted
 * from the day it starts, billed from that day), refused with a reason when the line or the add-on does not allow
 * it, and undone like any other order. On every database driver.
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const CANCEL = "/tmf-api/productOrderingManagement/v4/cancelProductOrder";
const PRODUCTS = "/tmf-api/productInventory/v4/product";
const PREVIEW = "/api/v1/billing/preview";

/** An order adding one add-on to an existing line, in the TMF622 shape. */
function addonOrder(accountId: string, lineId: string, offeringId: string) {
  return {
    billingAccount: { id: accountId },
    productOrderItem: [addonItem("1", lineId, offeringId)],
  };
}

function addonItem(id: string, lineId: string, offeringId: string) {
  return {
    id,
    action: "add",
    productOffering: { id: offeringId },
    product: { productRelationship: [{ relationshipType: "reliesOn", product: { id: lineId } }] },
  };
}

/** Places an order and fulfils it at once (manual fulfilment); answers the order as it ends. */
async function placeAndFulfil(engine: Engine, body: unknown) {
  const placed = await engine.request("POST", ORDERS, { body });
  if (placed.statusCode !== 201) throw new Error(`order: ${placed.statusCode} ${placed.body}`);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  return (await engine.request("GET", placed.json().href)).json();
}

/** The rows an order may write besides itself: none of them may change when it is rejected. */
async function footprint(engine: Engine) {
  return {
    products: await engine.count("products"),
    history: await engine.count("product_history"),
    charges: await engine.count("one_time_charges"),
    buckets: await engine.count("allowance_buckets"),
    reserved: await engine.count("inventory_resources", "state <> 'available'"),
  };
}

/** The background grant at activation (charging listens to line changes) has made the product's buckets. */
async function bucketsOf(engine: Engine, productId: string) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const rows = await engine.sql<{ id: string; granted: string; period_start: Date }>(
      "select id::text, granted::text, period_start from allowance_buckets where source_product_id = $1",
      [productId],
    );
    if (rows.length > 0 || Date.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const driver of drivers) {
  t.test(
    `[${driver}] an add-on added to an active line on the 20th: active, usable, billed from the 20th`,
    async (t) => {
      const { engine, accountId, network } = await chargingEngine(t, driver, "postpaid");
      // 15 March 2026: the line; the account bills on the 1st, in Europe/Berlin.
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
      const callsBefore = network.calls.length;

      engine.clock.set("2026-03-20T10:00:00Z");
      const placed = await engine.request("POST", ORDERS, {
        body: addonOrder(accountId, lineId, "addon-international-100"),
      });
      t.equal(placed.statusCode, 201, placed.body);
      t.match(placed.json(), {
        state: "acknowledged",
        rejectionReason: [],
        productOrderItem: [
          {
            id: "1",
            action: "add",
            productOffering: { id: "addon-international-100" },
            product: {
              productRelationship: [
                { relationshipType: "reliesOn", product: { id: lineId, href: `${PRODUCTS}/${lineId}` } },
              ],
            },
            productOrderItemRelationship: [],
          },
        ],
      });
      await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
      const order = (await engine.request("GET", placed.json().href)).json();
      t.equal(order.state, "completed", JSON.stringify(order));
      const addonId = order.productOrderItem[0].product.id as string;
      t.ok(addonId, "the item names the add-on it made");
      t.equal(order.productOrderItem[0].state, "completed");

      const addon = (await engine.request("GET", `${PRODUCTS}/${addonId}`)).json();
      t.match(addon, {
        status: "active",
        name: "International 100",
        startDate: "2026-03-20T10:00:00.000Z",
        productOffering: { id: "addon-international-100" },
        billingAccount: { id: accountId },
        productRelationship: [{ relationshipType: "reliesOn", product: { id: lineId } }],
        orderId: order.id,
      });
      t.same(
        addon.statusHistory.map((entry: { status: string; at: string; orderId: string }) => [
          entry.status,
          entry.at,
          entry.orderId,
        ]),
        [
          ["created", "2026-03-20T10:00:00.000Z", order.id],
          ["pendingActive", "2026-03-20T10:00:00.000Z", order.id],
          ["active", "2026-03-20T10:00:00.000Z", order.id],
        ],
        "dated history, each change by the order",
      );
      const [row] = await engine.sql<{ parent_id: string; kind: string }>(
        "select parent_id::text, kind from products where id = $1",
        [addonId],
      );
      t.same(row, { parent_id: lineId, kind: "addon" }, "stored under the line");
      const line = (await engine.request("GET", `${PRODUCTS}/${lineId}`)).json();
      t.match(line, { status: "active", isBundle: true, productRelationship: [{ relationshipType: "bundles" }] });
      t.equal(network.calls.length, callsBefore, "the network is not asked: the line carries the add-on");
      t.equal(await engine.count("one_time_charges", "product_id = $1", [addonId]), 0, "International 100 has no fee");
      t.ok(
        (await engine.count("outbox_events", "resource_id = $1", [addonId])) >= 3,
        "an event for its creation and each status change",
      );
      t.ok((await engine.count("audit_log", "entity_id = $1", [addonId])) >= 3, "and an audit row for each");

      // Its allowance from the 20th: 6,000 seconds × 12 of March's 31 days (20th to 31st), rounded down.
      const buckets = await bucketsOf(engine, addonId);
      t.same(
        buckets.map((bucket) => Number(bucket.granted)),
        [Math.floor((6000 * 12) / 31)],
        "granted at activation, prorated from the 20th",
      );
      // A call to France is covered by the add-on's minutes.
      const call = await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120, "2026-03-20T10:05:00Z")]);
      await engine.app.services.charging.rating.rateOnce("test");
      const [rated] = await engine.sql<{ amount: string; draws: Array<{ bucketId: string; units: number }> }>(
        "select amount::text, draws from rated_usage where usage_id = $1",
        [call.records[0].usageId],
      );
      t.equal(Number(rated?.amount), 0, "nothing to pay");
      t.same(rated?.draws, [{ bucketId: buckets[0]?.id, units: 120 }], "drawn from the add-on's bucket");

      // The bill at the end of March: the add-on from the 20th (7.99 × 12 / 31 = 3.0929 → 3.09, in arrears).
      const preview = await engine.request("POST", PREVIEW, { body: { billingAccountId: accountId } });
      t.equal(preview.statusCode, 200, preview.body);
      const lines = preview.json().appliedCustomerBillingRate as Array<{
        type: string;
        name: string;
        amount: { value: string };
        product?: { id: string };
      }>;
      const addonLines = lines.filter((entry) => entry.product?.id === addonId);
      t.match(
        addonLines,
        [
          {
            type: "recurring",
            name: "International 100, monthly: 12 of 31 days",
            amount: { value: "3.09" },
            characteristic: [
              { name: "days", value: 12 },
              { name: "periodDays", value: 31 },
            ],
          },
        ],
        "the add-on's recurring price, prorated from the 20th",
      );
      t.equal(addonLines.length, 1, "in arrears: nothing for April yet");
    },
  );

  if (everyCase(driver))
    t.test(`[${driver}] an add-on's one-time fee is a charge of its order; the customer hears of it`, async (t) => {
      const engine = await startEngine(t, { driver, provisioning: new RecordingProvisioning() });
      const { accountId } = await orderReadyAccount(engine);
      const { lineId } = await activateLine(engine, accountId, "plan-postpaid-m");
      engine.clock.set("2026-03-20T10:00:00Z");
      const order = await placeAndFulfil(engine, addonOrder(accountId, lineId, "addon-roaming-world-pack"));
      t.equal(order.state, "completed", JSON.stringify(order));
      const packId = order.productOrderItem[0].product.id as string;
      const charges = await engine.sql<{ product_id: string; order_id: string; price_id: string; amount: string }>(
        "select product_id::text, order_id::text, price_id, amount::text from one_time_charges where order_id = $1",
        [order.id],
      );
      t.same(
        charges.map((charge) => [charge.product_id, charge.price_id, Number(charge.amount)]),
        [[packId, "price-roaming-world-pack", 14.99]],
        "the pack's price, once, on the pack",
      );
      const messages = await engine.sql<{ reason: string; body: string }>(
        "select reason, body from customer_messages order by created_at, id",
      );
      t.match(
        messages.filter((message) => message.reason === "addon.active"),
        [{ body: /World roaming pack is active on your line \+49/ }],
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] every rule an add-on to an existing line breaks is a reason; nothing is written`, async (t) => {
      const engine = await startEngine(t, { driver, provisioning: new RecordingProvisioning() });
      const { accountId, customerId } = await orderReadyAccount(engine);
      const withData = await placeAndFulfil(engine, {
        billingAccount: { id: accountId },
        productOrderItem: [
          { id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } },
          {
            id: "2",
            action: "add",
            productOffering: { id: "addon-data-5gb" },
            productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
          },
        ],
      });
      const lineId = withData.productOrderItem[0].product.id as string;
      const dataId = withData.productOrderItem[1].product.id as string;
      const suspended = (await activateLine(engine, accountId)).lineId;
      const patched = await engine.request("PATCH", `${PRODUCTS}/${suspended}`, { body: { status: "suspended" } });
      t.equal(patched.statusCode, 200, patched.body);
      const ended = (await activateLine(engine, accountId)).lineId;
      const disconnect = await placeAndFulfil(engine, {
        billingAccount: { id: accountId },
        productOrderItem: [{ id: "1", action: "delete", product: { id: ended } }],
      });
      t.equal(disconnect.state, "completed");

      // Another account's line; a prepaid line; a business line on a plan the data add-on is not sold for.
      const other = await createBillingAccount(engine);
      const foreign = (await activateLine(engine, other.id)).lineId;
      const prepaid = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
        body: billingAccountBody(customerId, { accountType: "prepaid", creditLimit: undefined }),
      });
      const prepaidLine = (await activateLine(engine, prepaid.json().id, "plan-prepaid-s")).lineId;
      const organization = await engine.request("POST", "/tmf-api/party/v4/organization", {
        body: { tradingName: "Alpenfunk GmbH" },
      });
      const business = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
        body: {
          name: "Alpenfunk",
          relatedParty: [{ id: organization.json().id, "@referredType": "Organization" }],
          billCycleDay: 1,
          timeZone: "Europe/Berlin",
          taxJurisdiction: "DE",
        },
      });
      t.equal(business.statusCode, 201, business.body);
      const businessLine = (await activateLine(engine, business.json().id, "plan-business-pro")).lineId;
      // An account in a currency the catalog does not sell in (it can have no line, so it names another's).
      const dollars = await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
        body: billingAccountBody(customerId, { currency: "USD", creditLimit: { unit: "USD", value: 100 } }),
      });
      t.equal(dollars.statusCode, 201, dollars.body);

      const before = await footprint(engine);
      const cases: Array<{ name: string; body: unknown; codes: string[] }> = [
        {
          name: "a product that does not exist",
          body: addonOrder(accountId, "019cf000-0000-7000-8000-00000000ffff", "addon-international-100"),
          codes: ["unknown_product"],
        },
        {
          name: "another account's line",
          body: addonOrder(accountId, foreign, "addon-international-100"),
          codes: ["unknown_product"],
        },
        {
          name: "no id at all (a product by value)",
          body: {
            billingAccount: { id: accountId },
            productOrderItem: [
              {
                id: "1",
                action: "add",
                productOffering: { id: "addon-international-100" },
                product: { productRelationship: [{ relationshipType: "reliesOn", product: { name: "my line" } }] },
              },
            ],
          },
          codes: ["unknown_product"],
        },
        {
          name: "an add-on, not a line",
          body: addonOrder(accountId, dataId, "addon-international-100"),
          codes: ["not_a_line"],
        },
        {
          name: "a suspended line",
          body: addonOrder(accountId, suspended, "addon-international-100"),
          codes: ["line_not_active"],
        },
        {
          name: "a terminated line",
          body: addonOrder(accountId, ended, "addon-international-100"),
          codes: ["line_not_active"],
        },
        {
          name: "an add-on not sold to prepaid accounts",
          body: addonOrder(prepaid.json().id, prepaidLine, "addon-international-100"),
          codes: ["payment_type"],
        },
        {
          name: "an add-on not sold in the account's currency",
          body: addonOrder(dollars.json().id, lineId, "addon-international-100"),
          codes: ["currency", "unknown_product"],
        },
        {
          name: "an add-on not sold for the line's plan",
          body: addonOrder(business.json().id, businessLine, "addon-data-5gb"),
          codes: ["incompatible_addon"],
        },
        {
          name: "an add-on the line has already",
          body: addonOrder(accountId, lineId, "addon-data-5gb"),
          codes: ["addon_already_active"],
        },
        {
          name: "the same add-on twice in one order",
          body: {
            billingAccount: { id: accountId },
            productOrderItem: [
              addonItem("1", lineId, "addon-international-100"),
              addonItem("2", lineId, "addon-international-100"),
            ],
          },
          codes: ["duplicate_addon"],
        },
        {
          name: "both a plan item and an existing line",
          body: {
            billingAccount: { id: accountId },
            productOrderItem: [
              { id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } },
              {
                ...addonItem("2", lineId, "addon-international-100"),
                productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
              },
            ],
          },
          codes: ["addon_ambiguous_line"],
        },
      ];
      for (const { name, body, codes } of cases) {
        const response = await engine.request("POST", ORDERS, { body });
        t.equal(response.statusCode, 201, `${name}: created`);
        const order = response.json();
        t.equal(order.state, "rejected", `${name}: rejected`);
        t.same(
          order.rejectionReason.map((reason: { code: string }) => reason.code).sort(),
          [...codes].sort(),
          `${name}: ${codes.join(", ")}`,
        );
        t.ok(
          order.rejectionReason.every((reason: { reason: string }) => reason.reason.length > 0),
          `${name}: says why`,
        );
        await engine.app.services.orders.fulfil(SYSTEM_ACTOR, order.id);
        t.equal((await engine.request("GET", order.href)).json().state, "rejected", `${name}: never fulfilled`);
      }
      t.same(await footprint(engine), before, "no product, history, charge, bucket or reservation written");
      const reasons = (
        await engine.request("POST", ORDERS, { body: addonOrder(accountId, suspended, "addon-data-5gb") })
      )
        .json()
        .rejectionReason.map((reason: { reason: string }) => reason.reason);
      t.match(reasons, [/is suspended; add-ons are added to active lines; resume it first/]);
    });

  if (everyCase(driver))
    t.test(
      `[${driver}] checked again at fulfilment: a second order for the add-on, a line suspended meanwhile`,
      async (t) => {
        const engine = await startEngine(t, { driver, provisioning: new RecordingProvisioning() });
        const { accountId } = await orderReadyAccount(engine);
        const { lineId } = await activateLine(engine, accountId);
        engine.clock.set("2026-03-20T10:00:00Z");
        // Two orders for the same add-on pass validation together; the line's lock lets one through.
        const [first, second] = await Promise.all(
          [1, 2].map(() =>
            engine.request("POST", ORDERS, { body: addonOrder(accountId, lineId, "addon-international-100") }),
          ),
        );
        t.equal(first?.json().state, "acknowledged");
        t.equal(second?.json().state, "acknowledged");
        await Promise.all(
          [first, second].map((placed) => engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed?.json().id)),
        );
        const states = await Promise.all(
          [first, second].map(async (placed) => (await engine.request("GET", placed?.json().href)).json()),
        );
        t.same(states.map((order) => order.state).sort(), ["completed", "failed"]);
        t.match(states.find((order) => order.state === "failed")?.failureReason, /already has addon-international-100/);
        t.equal(
          await engine.count("products", "parent_id = $1 and status = 'active'", [lineId]),
          1,
          "the line holds the add-on once",
        );
        t.equal(await engine.count("products", "parent_id = $1", [lineId]), 1, "the refused one was never created");

        // A line suspended between the order and its fulfilment takes no add-on.
        const late = (
          await engine.request("POST", ORDERS, { body: addonOrder(accountId, lineId, "addon-data-5gb") })
        ).json();
        t.equal(late.state, "acknowledged");
        const suspended = await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "suspended" } });
        t.equal(suspended.statusCode, 200, suspended.body);
        await engine.app.services.orders.fulfil(SYSTEM_ACTOR, late.id);
        const failed = (await engine.request("GET", late.href)).json();
        t.equal(failed.state, "failed");
        t.match(failed.failureReason, /is suspended/);
        t.equal(await engine.count("products", "offering_id = 'addon-data-5gb'"), 0, "nothing created");
      },
    );

  if (everyCase(driver))
    t.test(`[${driver}] undone like any order: cancelled while a new line of the same order activates`, async (t) => {
      const network = new RecordingProvisioning();
      const engine = await startEngine(t, { driver, provisioning: network });
      const { accountId } = await orderReadyAccount(engine);
      const { lineId } = await activateLine(engine, accountId);
      // One order: a new line, and an add-on for the line the account has.
      const placed = (
        await engine.request("POST", ORDERS, {
          body: {
            billingAccount: { id: accountId },
            productOrderItem: [
              { id: "1", action: "add", productOffering: { id: "plan-postpaid-l" } },
              addonItem("2", lineId, "addon-international-100"),
            ],
          },
        })
      ).json();
      t.equal(placed.state, "acknowledged", JSON.stringify(placed.rejectionReason));
      const gate = network.hold("activate");
      const running = engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.id);
      await gate.reached;
      // While the network works, the add-on waits under its line, and the order's progress says so.
      const [progress] = await engine.sql<{ progress: { addons?: Array<{ lineId: string; productId: string }> } }>(
        "select progress from product_orders where id = $1",
        [placed.id],
      );
      const pendingId = progress?.progress.addons?.[0]?.productId as string;
      t.equal(progress?.progress.addons?.[0]?.lineId, lineId);
      t.same(await engine.sql("select status, parent_id::text from products where id = $1", [pendingId]), [
        { status: "pendingActive", parent_id: lineId },
      ]);
      const cancel = await engine.request("POST", CANCEL, { body: { productOrder: { id: placed.id } } });
      t.equal(cancel.statusCode, 201, cancel.body);
      gate.release();
      await running;
      t.equal((await engine.request("GET", placed.href)).json().state, "cancelled");
      t.same(
        await engine.sql("select status from products where id = $1", [pendingId]),
        [{ status: "aborted" }],
        "the add-on is aborted",
      );
      t.equal((await engine.request("GET", `${PRODUCTS}/${lineId}`)).json().status, "active", "its line is untouched");
      t.equal(await engine.count("one_time_charges", "order_id = $1", [placed.id]), 0, "nothing charged");
    });

  if (everyCase(driver))
    t.test(`[${driver}] an order left acknowledged by a crash is fulfilled by recovery`, async (t) => {
      const engine = await startEngine(t, { driver, provisioning: new RecordingProvisioning() });
      const { accountId } = await orderReadyAccount(engine);
      const { lineId } = await activateLine(engine, accountId);
      const placed = (
        await engine.request("POST", ORDERS, { body: addonOrder(accountId, lineId, "addon-international-100") })
      ).json();
      engine.clock.set("2026-03-15T10:05:00Z");
      await engine.app.services.orders.recover(SYSTEM_ACTOR);
      const order = (await engine.request("GET", placed.href)).json();
      t.equal(order.state, "completed");
      t.equal(
        await engine.count("products", "id = $1 and parent_id = $2 and status = 'active'", [
          order.productOrderItem[0].product.id,
          lineId,
        ]),
        1,
      );
    });
}
