import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { chargingEngine, postCdrs, voiceCdr } from "../support/charging.js";
import { drivers } from "../support/engine.js";
import { activateLine } from "../support/fixtures.js";

/**
 * Barring has reasons (DESIGN.md §10): each is set and lifted on its own, the network is unbarred only when none is
 * left, and postpaid credit barring lasts for its bill period: the hourly review lifts it once the next one began.
 */

const PRODUCTS = "/tmf-api/productInventory/v4/product";

for (const driver of drivers) {
  t.test(`[${driver}] lifting one reason never lifts another`, async (t) => {
    const { engine, accountId, network } = await chargingEngine(t, driver, "postpaid");
    const { lineId } = await activateLine(engine, accountId, "plan-postpaid-m");
    const subscriptions = engine.app.services.subscriptions;
    const operations = () =>
      network.calls.filter((call) => call.operation !== "activate").map((call) => call.operation);
    const barredFor = async () =>
      (await engine.request("GET", `${PRODUCTS}/${lineId}`))
        .json()
        .productCharacteristic.find((c: { name: string }) => c.name === "barred")?.value;

    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "credit", true, "barred: test credit"), true);
    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "dunning", true, "barred: test dunning"), true);
    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "dunning", true, "again"), false, "set once");
    t.same(operations(), ["bar"], "the network is barred once");
    t.equal(await barredFor(), "credit,dunning");

    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "credit", false, "unbarred: credit"), true);
    t.same(operations(), ["bar"], "still barred for dunning: no unbar");
    t.equal(await barredFor(), "dunning");
    t.equal(await subscriptions.setBarring(SYSTEM_ACTOR, lineId, "dunning", false, "unbarred: paid"), true);
    t.same(operations(), ["bar", "unbar"], "the last reason lifted unbars the network");
    t.equal(await barredFor(), undefined);
    t.same(
      (await engine.sql<{ kind: string }>("select kind from alerts where product_id = $1 order by id", [lineId])).map(
        (row) => row.kind,
      ),
      ["lineBarred", "lineUnbarred"],
      "the subscriber hears when the line stops and starts working",
    );
  });
}

t.test("credit barring lasts for its bill period: the review lifts it once the next one began", async (t) => {
  const { engine, accountId, network } = await chargingEngine(t, drivers[0] ?? "pglite", "postpaid");
  const first = await activateLine(engine, accountId, "plan-postpaid-m");
  const second = await activateLine(engine, accountId, "plan-postpaid-m");
  // 15 March 2026: 30 minutes to Japan three times, 44.70 each, over the 100.00 credit limit: both lines barred.
  await postCdrs(engine, [
    voiceCdr(first.msisdn, "+81312345678", 1800),
    voiceCdr(first.msisdn, "+81312345678", 1800, "2026-03-15T10:06:00Z"),
    voiceCdr(first.msisdn, "+81312345678", 1800, "2026-03-15T10:07:00Z"),
  ]);
  await engine.app.services.charging.rating.rateOnce("test");
  const count = (operation: string) => network.calls.filter((call) => call.operation === operation).length;
  t.equal(count("bar"), 2, "both lines barred");

  // Later in March the spend still stands: the review keeps them barred.
  engine.clock.set("2026-03-31T20:00:00Z");
  t.same(await engine.app.services.charging.reviewCreditBarring(), { accounts: 1 });
  t.equal(count("unbar"), 0, "March's spend is still over the limit");

  // 1 April in Berlin (the account's cycle day 1): a new period, its spend at zero; both lines work again.
  engine.clock.set("2026-03-31T22:30:00Z");
  await engine.app.services.charging.reviewCreditBarring();
  t.same(
    network.calls
      .filter((call) => call.operation === "unbar")
      .map((call) => call.line.productId)
      .sort(),
    [first.lineId, second.lineId].sort(),
  );
  t.same(await engine.app.services.charging.reviewCreditBarring(), { accounts: 0 }, "nothing left barred for credit");
  const jobs = (await engine.request("GET", "/api/v1/admin/jobs")).json();
  t.ok(
    jobs.some((job: { name: string; every: string }) => job.name === "credit-barring-review" && job.every === "hour"),
    "an hourly job runs the review",
  );
});
