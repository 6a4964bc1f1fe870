import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { startEngine } from "../support/engine.js";
import { lineOrder, orderReadyAccount } from "../support/fixtures.js";

/**
 * The catalog terms as billing reads them (issue 23): issuing entities published as catalog entities and found by
 * country, the current tax class, tariff and promotion, a plan version's usage tax, the TMF620 tax items with their
 * EN 16931 category and the rates in force, and the terms an order keeps on what a line bought.
 */

const CATALOG_DIR = path.resolve("catalog");
const POP = "/tmf-api/productCatalogManagement/v4/productOfferingPrice";

function copyCatalog(t: Test): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bss-catalog-terms-"));
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

t.test("issuing entities are published and found by the country they bill; the current terms are read", async (t) => {
  const engine = await startEngine(t);
  const catalog = engine.app.services.catalog;
  await catalog.publish(SYSTEM_ACTOR, CATALOG_DIR);
  t.equal(await engine.count("catalog_entities", "kind = 'issuingEntity'"), 2, "one entity row each");

  const de = await catalog.issuingEntityFor("DE");
  t.match(de, {
    id: "telco-de",
    vatId: "DE123456789",
    country: "DE",
    timeZone: "Europe/Berlin",
    series: { invoice: "DE-INV", creditNote: "DE-CN" },
    address: { city: "Berlin", country: "DE" },
  });
  t.equal((await catalog.issuingEntityFor("AT"))?.id, "telco-de");
  t.equal((await catalog.issuingEntityFor("ES-CN"))?.id, undefined, "no entity bills Spain");
  t.equal((await catalog.issuingEntityFor("GB"))?.id, "telco-uk");
  t.equal((await catalog.issuingEntity("telco-uk"))?.vatId, "GB123456789");
  t.equal(await catalog.issuingEntity("telco-fr"), undefined);

  t.match(await catalog.taxClass("vat-standard"), { category: "S", rates: [{ jurisdiction: "DE", rate: "0.19" }] });
  t.equal(await catalog.taxClass("vat-reduced"), undefined);
  t.same([...(await catalog.taxClasses()).keys()].sort(), ["vat-exempt", "vat-standard"]);
  t.match(await catalog.tariff("tariff-uk-gbp"), { currency: "GBP", taxClass: "vat-standard", taxIncluded: true });
  t.equal(await catalog.tariff("tariff-fr-eur"), undefined);
  t.match(await catalog.promotion("promo-business-pro-10-off-6"), { amountOff: { EUR: "10.00", GBP: "9.00" } });

  t.same(await catalog.usageTax("plan-postpaid-m", 1, "GBP"), {
    tariffId: "tariff-uk-gbp",
    taxClass: "vat-standard",
    taxIncluded: true,
  });
  t.equal(await catalog.usageTax("plan-postpaid-m", 1, "CHF"), undefined, "no tariff in that currency");
  t.equal(await catalog.usageTax("addon-data-5gb", 1, "EUR"), undefined, "add-ons carry no tariff");
  t.equal(await catalog.usageTax("plan-postpaid-m", 7, "EUR"), undefined, "no such version");
});

t.test("a plan's usage tax follows the version the line bought, the tariff as it is now", async (t) => {
  const engine = await startEngine(t);
  const catalog = engine.app.services.catalog;
  const directory = copyCatalog(t);
  await catalog.publish(SYSTEM_ACTOR, directory);
  engine.clock.set("2026-04-01T00:00:00Z");
  // Version 2 of Postpaid M prices EUR usage with a new tariff, taxed otherwise; the old tariff changes too.
  edit(directory, "tariffs/tariff-de-eur.json", (tariff) => {
    tariff.taxIncluded = false;
    writeFileSync(
      path.join(directory, "tariffs/tariff-de-eur-exempt.json"),
      JSON.stringify({ ...tariff, id: "tariff-de-eur-exempt", taxClass: "vat-exempt" }),
    );
  });
  edit(directory, "offerings/plans.json", (plans) => {
    plans.find((plan: { id: string }) => plan.id === "plan-postpaid-m").tariffs.EUR = "tariff-de-eur-exempt";
  });
  t.match(await catalog.publish(SYSTEM_ACTOR, directory), { created: 1, changed: 2 });
  t.same(
    await catalog.usageTax("plan-postpaid-m", 1, "EUR"),
    { tariffId: "tariff-de-eur", taxClass: "vat-standard", taxIncluded: false },
    "version 1's tariff, read as it is now",
  );
  t.same(await catalog.usageTax("plan-postpaid-m", 2, "EUR"), {
    tariffId: "tariff-de-eur-exempt",
    taxClass: "vat-exempt",
    taxIncluded: false,
  });
  t.same(await catalog.usageTax("plan-postpaid-m", 2, "GBP"), {
    tariffId: "tariff-uk-gbp",
    taxClass: "vat-standard",
    taxIncluded: true,
  });
});

t.test("TMF620 prices carry the EN 16931 category and the rates in force, up to date as days pass", async (t) => {
  const engine = await startEngine(t);
  const directory = copyCatalog(t);
  edit(directory, "tax-classes.json", (classes) => {
    classes[0].rates.push({ jurisdiction: "DE", rate: "0.21", validFrom: "2026-07-01" });
  });
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, directory);
  const taxOf = async () => (await engine.request("GET", `${POP}/price-postpaid-m-monthly.eur`)).json().tax;
  const before = await taxOf();
  t.same(
    before.filter((item: { jurisdiction: string }) => item.jurisdiction.startsWith("DE")),
    [{ taxCategory: "S", taxRate: 0.19, jurisdiction: "DE", taxClass: "vat-standard" }],
    "one DE rate, today's: not the 2020 cut, not July's",
  );
  t.same(
    before.find((item: { jurisdiction: string }) => item.jurisdiction === "ES-CN"),
    { taxCategory: "O", taxRate: 0, jurisdiction: "ES-CN", taxClass: "vat-standard" },
    "a rate's own category",
  );
  const fee = (await engine.request("GET", `${POP}/price-sim.gbp`)).json();
  t.ok(
    fee.tax.every((item: { taxCategory: string }) => ["S", "O"].includes(item.taxCategory)),
    "one-time prices too",
  );

  engine.clock.set("2026-07-01T00:00:00Z");
  const after = await taxOf();
  t.same(
    after.filter((item: { jurisdiction: string }) => item.jurisdiction === "DE"),
    [{ taxCategory: "S", taxRate: 0.21, jurisdiction: "DE", taxClass: "vat-standard" }],
    "the new rate shows from its first day without a publication",
  );

  const amountOff = await engine.request("GET", `${POP}/promo-business-pro-10-off-6.gbp`);
  t.equal(amountOff.statusCode, 200);
  t.match(amountOff.json(), {
    priceType: "discount",
    price: { unit: "GBP", value: 9 },
    applicationDuration: 6,
  });
  t.notOk("percentage" in amountOff.json());
  const offering = (
    await engine.request("GET", "/tmf-api/productCatalogManagement/v4/productOffering/plan-business-pro")
  ).json();
  const refs = offering.productOfferingPrice.map((ref: { id: string }) => ref.id);
  t.ok(refs.includes("promo-business-pro-10-off-6.eur"), "the offering names the promotion per currency");
  t.ok(refs.includes("promo-business-pro-10-off-6.gbp"));
  const events = await engine.sql<{ resource_id: string }>(
    "select resource_id from outbox_events where resource_id like 'promo-business-pro-10-off-6%' order by resource_id",
  );
  t.same(
    events.map((event) => event.resource_id),
    ["promo-business-pro-10-off-6.eur", "promo-business-pro-10-off-6.gbp"],
    "one create event per TMF price",
  );
});

t.test("an order keeps each price's billing and tax terms on what the line bought", async (t) => {
  const engine = await startEngine(t);
  const { accountId } = await orderReadyAccount(engine);
  const placed = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    body: lineOrder(accountId, "plan-postpaid-m", [
      {
        id: "2",
        action: "add",
        productOffering: { id: "addon-international-100" },
        productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
      },
    ]),
  });
  t.equal(placed.statusCode, 201, placed.body);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const rows = await engine.sql<{ kind: string; prices: unknown[] }>(
    "select kind, prices from products where status = 'active' order by kind desc",
  );
  t.same(
    rows.map((row) => [row.kind, row.prices]),
    [
      [
        "plan",
        [
          {
            priceId: "price-postpaid-m-monthly",
            name: "Postpaid M, monthly",
            type: "recurring",
            period: "billCycle",
            amount: "19.99",
            currency: "EUR",
            taxClass: "vat-standard",
            taxIncluded: true,
            billing: "advance",
            chargedWhenSuspended: ["dunning"],
          },
        ],
      ],
      [
        "addon",
        [
          {
            priceId: "price-international-100-monthly",
            name: "International 100, monthly",
            type: "recurring",
            period: "billCycle",
            amount: "7.99",
            currency: "EUR",
            taxClass: "vat-standard",
            taxIncluded: true,
            billing: "arrears",
            chargedWhenSuspended: ["dunning"],
          },
        ],
      ],
    ],
  );
});
