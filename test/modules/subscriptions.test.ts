import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { drivers, expectError, startEngine } from "../support/engine.js";
import { createBillingAccount, lineOrder, orderReadyAccount } from "../support/fixtures.js";
import { RecordingProvisioning } from "../support/recording-provisioning.js";

/**
 * What billing reads of installed products (issue 23): a suspension's reason in the dated history, the history of
 * many products at once, and every product of an account. Run on every database driver (the history's check
 * constraint is the database's).
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const PRODUCTS = "/tmf-api/productInventory/v4/product";

for (const driver of drivers) {
  t.test(`[${driver}] a suspension records its reason; billing reads it in the dated history`, async (t) => {
    const engine = await startEngine(t, { driver, provisioning: new RecordingProvisioning() });
    const { accountId } = await orderReadyAccount(engine);
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
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    const items = (await engine.request("GET", placed.json().href)).json().productOrderItem;
    const lineId = items[0].product.id as string;
    const addonId = items[1].product.id as string;
    const subscriptions = engine.app.services.subscriptions;

    engine.clock.set("2026-03-20T10:00:00Z");
    const suspended = await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "suspended" } });
    t.equal(suspended.statusCode, 200, suspended.body);
    t.match(suspended.json().statusHistory.at(-1), {
      status: "suspended",
      reason: "suspended on request",
      suspensionReason: "customerRequest",
    });
    // Barring a suspended line is no new suspension: its row carries the suspension's reason on.
    engine.clock.set("2026-03-21T10:00:00Z");
    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "credit", true, "barred: test"), true);
    engine.clock.set("2026-03-25T10:00:00Z");
    const resumed = await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "active" } });
    t.equal(resumed.statusCode, 200, resumed.body);
    t.notOk("suspensionReason" in resumed.json().statusHistory.at(-1), "an active product has no suspension reason");

    const db = engine.app.database.db;
    const unknown = "019cf000-0000-7000-8000-00000000ffff";
    const history = await subscriptions.historyOf(db, [lineId, addonId, unknown, "not-an-id"]);
    t.same([...history.keys()].sort(), [lineId, addonId, unknown].sort(), "every product asked for, by valid id");
    t.same(history.get(unknown), []);
    const line = history.get(lineId) ?? [];
    t.same(
      line.map((change) => [change.at.toISOString(), change.fromStatus, change.toStatus, change.suspensionReason]),
      [
        ["2026-03-15T10:00:00.000Z", null, "created", null],
        ["2026-03-15T10:00:00.000Z", "created", "pendingActive", null],
        ["2026-03-15T10:00:00.000Z", "pendingActive", "active", null],
        ["2026-03-20T10:00:00.000Z", "active", "suspended", "customerRequest"],
        ["2026-03-21T10:00:00.000Z", "suspended", "suspended", "customerRequest"],
        ["2026-03-25T10:00:00.000Z", "suspended", "active", null],
      ],
      "in the order it happened, each suspension with its reason",
    );
    t.same(
      (history.get(addonId) ?? []).map((change) => [change.toStatus, change.suspensionReason]),
      [
        ["created", null],
        ["pendingActive", null],
        ["active", null],
        ["suspended", "customerRequest"],
        ["active", null],
      ],
      "the add-on follows its line, with the same reason",
    );

    // The database refuses a suspension without a reason, a reason on another status, and unknown reasons.
    for (const [toStatus, reason] of [
      ["suspended", null],
      ["active", "customerRequest"],
      ["suspended", "holiday"],
    ]) {
      await t.rejects(
        engine.sql(
          `insert into product_history (product_id, at, from_status, to_status, reason, suspension_reason)
             values ($1, now(), 'active', $2, 'test', $3)`,
          [lineId, toStatus, reason],
        ),
        `${toStatus} with ${reason} is refused`,
      );
    }

    // Every product of the account, terminated ones included; another account's none.
    const disconnect = await engine.request("POST", ORDERS, {
      body: {
        billingAccount: { id: accountId },
        productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
      },
    });
    t.equal(disconnect.statusCode, 201, disconnect.body);
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, disconnect.json().id);
    const products = await subscriptions.productsOfAccount(db, accountId);
    t.same(
      products.map((product) => [product.id, product.kind, product.status]),
      [
        [lineId, "plan", "terminated"],
        [addonId, "addon", "terminated"],
      ],
    );
    const other = await createBillingAccount(engine);
    t.same(await subscriptions.productsOfAccount(db, other.id), []);
    t.same(await subscriptions.productsOfAccount(db, "not-an-id"), []);
    expectError(
      t,
      await engine.request("PATCH", `${PRODUCTS}/${lineId}`, { body: { status: "suspended" } }),
      409,
      "illegal_transition",
    );
  });
}
