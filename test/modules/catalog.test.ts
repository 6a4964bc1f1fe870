import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { CatalogError, loadCatalog } from "../../src/modules/catalog/catalog-load.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { drivers, everyCase, expectError, hasServers, startEngine } from "../support/engine.js";

/** Catalog files: validation, versioned publishing, TMF620 reads and the cache across processes. */

const CATALOG_DIR = path.resolve("catalog");
const PO = "/tmf-api/productCatalogManagement/v4/productOffering";
const POP = "/tmf-api/productCatalogManagement/v4/productOfferingPrice";

function copyCatalog(t: Test): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bss-catalog-"));
  cpSync(CATALOG_DIR, directory, { recursive: true });
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

// biome-ignore lint/suspicious/noExplicitAny: test fixtures edit arbitrary JSON.
function edit(directory: string, file: string, change: (json: any) => void): void {
  const full = path.join(directory, file);
  const json = JSON.parse(readFileSync(full, "utf8"));
  change(json);
  writeFileSync(full, JSON.stringify(json, null, 2));
}

t.test(
  "the default catalog is valid: two currencies, plans of both payment types, add-ons, fees, tariffs",
  async (t) => {
    const catalog = loadCatalog(CATALOG_DIR);
    t.same(catalog.root.currencies, ["EUR", "GBP"]);
    const kinds = new Set(catalog.offerings.map((offering) => offering.kind));
    t.same([...kinds].sort(), ["addon", "fee", "plan"]);
    const plans = catalog.offerings.filter((offering) => offering.kind === "plan");
    t.ok(plans.some((plan) => plan.paymentTypes?.includes("prepaid")));
    t.ok(plans.some((plan) => plan.paymentTypes?.includes("postpaid")));
    t.ok(
      plans.some((plan) => plan.businessOnly),
      "a business-only plan",
    );
    t.ok(
      plans.some((plan) => plan.allowances?.some((allowance) => allowance.rolloverMaxUnits)),
      "rollover",
    );
    t.ok(
      plans.some((plan) => plan.allowances?.some((allowance) => allowance.shared)),
      "shared allowance",
    );
    t.ok(
      plans.some((plan) => (plan.terms?.length ?? 0) > 0),
      "a contract term with early termination fee",
    );
    t.ok(catalog.promotions.length > 0);
    t.equal(catalog.compiledTariffs.size, 2);
    for (const tariff of catalog.compiledTariffs.values()) {
      const destinations = tariff.definition.destinations?.map((destination) => destination.id) ?? [];
      for (const id of ["national", "national-mobile", "premium", "international-eu", "international-world"]) {
        t.ok(destinations.includes(id), `${tariff.id} prices ${id}`);
      }
      t.ok(
        tariff.definition.rates.some((rate) => rate.direction === "incoming" && rate.roaming !== undefined),
        "incoming while roaming",
      );
    }
  },
);

t.test("an invalid catalog lists every problem with file and path", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "offerings/plans.json", (plans) => {
    plans[0].specification = "no-such-spec";
    plans[0].allowances[2].shared = true;
    plans[1].categories = ["nowhere"];
    plans[2].prices[0].amounts.EUR = "-1.00";
    plans[3].prices[0].amounts.GBP = "35.1234567";
    delete plans[4].prices[0].amounts.GBP;
  });
  edit(directory, "tariffs/tariff-de-eur.json", (tariff) => {
    tariff.timeBands.push({ id: "evening", days: ["mon"], from: "18:00", to: "20:00", priority: 1 });
  });
  const error = t.throws(() => loadCatalog(directory)) as CatalogError;
  t.ok(error instanceof CatalogError);
  const lines = error.problems.map((problem) => `${problem.file}: ${problem.path}: ${problem.message}`);
  for (const expected of [
    /^offerings\/plans\.json: \[0\]\.specification: unknown specification no-such-spec$/,
    /^offerings\/plans\.json: \[0\]\.allowances\[2\]\.shared: only billCycle allowances can be shared$/,
    /^offerings\/plans\.json: \[1\]\.categories\[0\]: unknown category nowhere$/,
    /^offerings\/plans\.json: \[2\]\.prices\[0\]\.amounts\.EUR: must not be negative$/,
    /^offerings\/plans\.json: \[3\]\.prices\[0\]\.amounts\.GBP: has more than 6 decimals$/,
    /^offerings\/plans\.json: \[4\]\.prices\[0\]\.amounts: has no amount in GBP$/,
    /^tariffs\/tariff-de-eur\.json: timeBands: peak and evening overlap on mon at 18:00 with equal priority$/,
  ]) {
    t.ok(
      lines.some((line) => expected.test(line)),
      `reports ${expected}`,
    );
  }
});

for (const driver of drivers) {
  t.test(
    `[${driver}] publishing: nothing on a second run, a new version for a change, old versions readable`,
    async (t) => {
      const engine = await startEngine(t, { driver });
      const catalog = engine.app.services.catalog;
      const directory = copyCatalog(t);
      const first = await catalog.publish(SYSTEM_ACTOR, directory);
      t.ok(first.publicationId !== null);
      t.ok(first.created > 20);
      t.same(await catalog.publish(SYSTEM_ACTOR, directory), {
        publicationId: null,
        created: 0,
        changed: 0,
        retired: 0,
      });
      const rowsAfterTwo = await engine.count("catalog_entities");

      const before = await engine.request("GET", `${POP}/price-postpaid-m-monthly.eur`);
      t.same(before.json().price, { unit: "EUR", value: 19.99 });
      t.equal(before.json().version, "1");

      engine.clock.set("2026-04-01T00:00:00Z");
      edit(directory, "offerings/plans.json", (plans) => {
        plans.find((plan: { id: string }) => plan.id === "plan-postpaid-m").prices[0].amounts.EUR = "21.99";
      });
      edit(directory, "offerings/fees.json", (fees) =>
        fees.splice(
          fees.findIndex((fee: { id: string }) => fee.id === "fee-premium-number"),
          1,
        ),
      );
      const second = await catalog.publish(SYSTEM_ACTOR, directory);
      t.match(second, { changed: 1, created: 0, retired: 1 });
      t.equal(await engine.count("catalog_entities"), rowsAfterTwo + 1, "one new version row");

      const now = await engine.request("GET", `${POP}/price-postpaid-m-monthly.eur`);
      t.same(now.json().price, { unit: "EUR", value: 21.99 });
      t.equal(now.json().version, "2");
      const old = await engine.request("GET", `${POP}/price-postpaid-m-monthly.eur`, { query: { version: "1" } });
      t.same(old.json().price, { unit: "EUR", value: 19.99 }, "subscribers keep the price they bought");
      t.equal(old.json().validFor.endDateTime, "2026-04-01T00:00:00.000Z", "the old version ends where the new begins");
      expectError(t, await engine.request("GET", `${PO}/fee-premium-number`), 404, "not_found");
      t.equal((await engine.request("GET", `${PO}/fee-premium-number`, { query: { version: "1" } })).statusCode, 200);
      const audit = await engine.sql("select * from audit_log where entity_type = 'catalogPublication'");
      t.equal(audit.length, 2, "each publication is audited; the no-op is not");
    },
  );

  if (everyCase(driver))
    t.test(`[${driver}] an invalid catalog publishes nothing`, async (t) => {
      const engine = await startEngine(t, { driver });
      const directory = copyCatalog(t);
      edit(directory, "promotions.json", (promotions) => {
        promotions[0].prices = ["price-activation"];
      });
      await t.rejects(engine.app.services.catalog.publish(SYSTEM_ACTOR, directory), CatalogError);
      t.equal(await engine.count("catalog_entities"), 0);
      t.equal(await engine.count("catalog_publications"), 0);
    });

  if (everyCase(driver))
    t.test(`[${driver}] TMF620 reads: lists, filters, fields, references, roles`, async (t) => {
      const engine = await startEngine(t, { driver });
      await engine.app.services.catalog.publish(SYSTEM_ACTOR, CATALOG_DIR);
      const plans = await engine.request("GET", PO, { query: { offeringKind: "plan", isSellable: "true" } });
      t.equal(plans.statusCode, 200);
      t.ok(plans.json().length >= 4);
      t.ok(plans.json().every((plan: { isSellable: boolean }) => plan.isSellable));
      const retired = await engine.request("GET", PO, { query: { lifecycleStatus: "retired" } });
      t.same(
        retired.json().map((offering: { id: string }) => offering.id),
        ["plan-postpaid-classic"],
      );
      const paged = await engine.request("GET", PO, { query: { limit: "2", offset: "1", fields: "name" } });
      t.equal(paged.headers["x-total-count"], "14");
      t.equal(paged.json().length, 2);
      t.same(Object.keys(paged.json()[0]).sort(), ["@type", "href", "id", "name"]);

      const m = (await engine.request("GET", `${PO}/plan-postpaid-m`)).json();
      t.equal(m.productSpecification.id, "mobile-line");
      t.same(m.productOfferingTerm, [{ name: "24-month contract", duration: { amount: 24, units: "month" } }]);
      t.ok(
        m.productOfferingPrice.some((ref: { id: string }) => ref.id === "promo-m-20-off-3"),
        "the promotion is one of its prices",
      );
      t.match(m.allowance, [{ id: "voice", service: "voice", units: 30000, isShared: false }]);
      const promo = (await engine.request("GET", `${POP}/promo-m-20-off-3`)).json();
      t.match(promo, { priceType: "discount", percentage: 20, applicationDuration: 3 });
      for (const resource of ["productSpecification", "category", "catalog"]) {
        const list = await engine.request("GET", `/tmf-api/productCatalogManagement/v4/${resource}`);
        t.equal(list.statusCode, 200, resource);
        t.ok(list.json().length > 0, `${resource} has entries`);
      }
      const category = (
        await engine.request("GET", "/tmf-api/productCatalogManagement/v4/category/plans-postpaid")
      ).json();
      t.equal(category.isRoot, false);
      t.ok(category.productOffering.some((ref: { id: string }) => ref.id === "plan-postpaid-m"));
      expectError(t, await engine.request("GET", PO, { key: engine.keys.network }), 403, "role_not_allowed");
      expectError(
        t,
        await engine.request("GET", PO, { query: { offeringKind: "gadget" } }),
        400,
        "invalid_parameter",
        "offeringKind",
      );
      expectError(t, await engine.request("GET", `${PO}/nothing`), 404, "not_found");
    });
}

t.test(
  "a publication in one process reaches another process's cache",
  { skip: hasServers ? false : "needs PostgreSQL and Redis" },
  async (t) => {
    const publisher = await startEngine(t, { driver: "postgres" });
    const directory = copyCatalog(t);
    await publisher.app.services.catalog.publish(SYSTEM_ACTOR, directory);
    // A second engine on the same database and Redis prefix, as a second API process would be.
    const { buildApp } = await import("../../src/app.js");
    const reader = await buildApp({ ...publisher.config, catalogRefreshSeconds: 0 }, { logger: false });
    t.teardown(() => reader.close());
    const priceOf = async () =>
      (await reader.services.catalog.snapshot()).offerings.get("plan-postpaid-m")?.content.prices[0]?.amounts.EUR ?? "";
    t.equal(await priceOf(), "19.99");
    edit(directory, "offerings/plans.json", (plans) => {
      plans.find((plan: { id: string }) => plan.id === "plan-postpaid-m").prices[0].amounts.EUR = "24.99";
    });
    await publisher.app.services.catalog.publish(SYSTEM_ACTOR, directory);
    let seen = await priceOf();
    for (let attempt = 0; attempt < 50 && seen !== "24.99"; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen = await priceOf();
    }
    t.equal(seen, "24.99", "the other process reloaded after the broadcast");
  },
);

t.test("dunning policies are checked when published: order, actions and the law of their jurisdiction", async (t) => {
  const shipped = loadCatalog(CATALOG_DIR).dunningPolicies;
  t.same(
    shipped.map((policy) => policy.id),
    ["dunning-de-consumer", "dunning-de-business", "dunning-gb"],
  );
  const directory = copyCatalog(t);
  edit(directory, "dunning-policies.json", (policies) => {
    // German consumers: barring for 50 EUR, a notice only a week ahead, full barring three days after outgoing.
    policies[0].barringMinimum = "50.00";
    policies[0].steps[1].daysPastDue = 21;
    policies[0].steps[3].daysPastDue = 30;
    policies[0].reconnectionFee = "plan-postpaid-m";
    // Steps out of order, an unknown action, a fee on a barring, a notice of a step the policy lacks.
    policies[2].steps[0].daysPastDue = 30;
    policies[1].steps[2].action = "disconnectEverything";
    policies[2].steps[2].fee = "1.00";
    policies[2].reconnectionFee = "no-such-offering";
    policies.push({ ...policies[2], id: "dunning-gb-2" });
  });
  const error = t.throws(() => loadCatalog(directory)) as CatalogError;
  t.ok(error instanceof CatalogError);
  const lines = error.problems.map((problem) => `${problem.file}: ${problem.path}: ${problem.message}`);
  for (const expected of [
    /^dunning-policies\.json: \[0\]\.barringMinimum: TKG § 61: no barring for less than 100 EUR/,
    /^dunning-policies\.json: \[0\]\.steps\[2\]\.daysPastDue: TKG § 61: outgoingBarring needs a written notice that names it at least 14 days before$/,
    /^dunning-policies\.json: \[0\]\.steps\[3\]\.daysPastDue: TKG § 61: full barring no earlier than 7 days after outgoing barring \(day 28\)$/,
    /^dunning-policies\.json: \[2\]\.steps\[1\]\.daysPastDue: 14 comes before the previous step's 30/,
    /^dunning-policies\.json: \[1\]\.steps\[2\]\.action: /,
    /^dunning-policies\.json: \[2\]\.steps\[2\]\.fee: only a reminder carries a fee$/,
    /^dunning-policies\.json: \[2\]\.reconnectionFee: unknown offering no-such-offering$/,
    /^dunning-policies\.json: \[0\]\.reconnectionFee: plan-postpaid-m has no one-time price$/,
    /^dunning-policies\.json: \[3\]\.(id|segment): /,
  ]) {
    t.ok(
      lines.some((line) => expected.test(line)),
      `reports ${expected}`,
    );
  }
  t.comment(lines.filter((line) => line.startsWith("dunning")).join("\n"));
});
