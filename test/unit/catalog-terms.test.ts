import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import t, { type Test } from "tap";
import { SUSPENSION_REASONS, type TaxClass } from "../../src/modules/catalog/catalog.schemas.js";
import { CatalogError, loadCatalog } from "../../src/modules/catalog/catalog-load.js";
import {
  issuingEntityFor,
  nextRateChange,
  priceTerms,
  taxRateAt,
  taxRatesOn,
} from "../../src/modules/catalog/catalog-terms.js";

/**
 * The catalog terms invoice arithmetic reads (issue 23): how prices are billed and taxed, tax classes with EN 16931
 * categories and dated rates, tariffs' tax, amount-off promotions and issuing entities. Each loader rule is proved
 * by breaking a copy of the shipped catalog and finding the problem at its file and path.
 */

const CATALOG_DIR = path.resolve("catalog");

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

/** The problems of a catalog as "file: path: message" lines. */
function problemsOf(t: Test, directory: string): string[] {
  const error = t.throws(() => loadCatalog(directory)) as CatalogError;
  t.ok(error instanceof CatalogError, "the catalog is refused");
  return (error.problems ?? []).map((problem) => `${problem.file}: ${problem.path}: ${problem.message}`);
}

function expectProblems(t: Test, lines: string[], expected: string[]): void {
  for (const line of expected) t.ok(lines.includes(line), `reports "${line}"`);
}

// biome-ignore lint/suspicious/noExplicitAny: test fixtures find entries in arbitrary JSON.
const byId = (list: any[], id: string) => list.find((entry: { id: string }) => entry.id === id);

t.test(
  "the shipped catalog carries every term, both billing kinds, dated rates and two issuing entities",
  async (t) => {
    const catalog = loadCatalog(CATALOG_DIR);
    const prices = catalog.offerings.flatMap((offering) => offering.prices);
    for (const price of prices) {
      t.type(price.taxIncluded, "boolean", `${price.id} says whether tax is included`);
      if (price.type === "recurring") {
        t.ok(price.billing === "advance" || price.billing === "arrears", `${price.id} has a billing`);
        t.ok(Array.isArray(price.chargedWhenSuspended), `${price.id} names its charged suspension reasons`);
      } else {
        t.equal(price.billing, undefined, `${price.id} (one-time) has no billing`);
      }
    }
    t.ok(
      prices.some((price) => price.billing === "arrears"),
      "an arrears price",
    );
    t.ok(
      prices.some((price) => price.billing === "advance"),
      "an advance price",
    );
    const postpaidM = byId(catalog.offerings, "plan-postpaid-m");
    t.match(postpaidM.prices[0], { billing: "advance", taxIncluded: true, chargedWhenSuspended: ["dunning"] });
    for (const tariff of catalog.tariffs) t.match(tariff, { taxClass: "vat-standard", taxIncluded: true });
    t.same(
      catalog.issuingEntities.map((entity) => [entity.id, entity.countries ?? [entity.country]]),
      [
        ["telco-de", ["DE", "AT"]],
        ["telco-uk", ["GB"]],
      ],
    );
    const standard = byId(catalog.taxClasses, "vat-standard") as TaxClass;
    t.equal(standard.category, "S");
    t.ok(
      standard.rates.some((rate) => rate.validFrom !== undefined),
      "a rate change is written as dated rates",
    );
    t.ok(
      catalog.promotions.some((promotion) => promotion.amountOff !== undefined),
      "an amount-off promotion",
    );
    t.same([...SUSPENSION_REASONS], ["customerRequest", "dunning", "nonRenewal", "fraud"]);
  },
);

t.test("omitted terms load as their defaults: advance, tax excluded, no suspended day charged", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "offerings/plans.json", (plans) => {
    const plan = byId(plans, "plan-postpaid-m");
    for (const price of plan.prices) {
      delete price.billing;
      delete price.taxIncluded;
      delete price.chargedWhenSuspended;
    }
    delete plan.terms[0].taxIncluded;
  });
  edit(directory, "offerings/fees.json", (fees) => {
    delete byId(fees, "fee-sim").prices[0].taxIncluded;
  });
  edit(directory, "tariffs/tariff-de-eur.json", (tariff) => {
    delete tariff.taxIncluded;
  });
  const catalog = loadCatalog(directory);
  const plan = byId(catalog.offerings, "plan-postpaid-m");
  t.same(plan.prices[0], {
    id: "price-postpaid-m-monthly",
    name: "Postpaid M, monthly",
    type: "recurring",
    amounts: { EUR: "19.99", GBP: "17.99" },
    taxClass: "vat-standard",
    period: "billCycle",
    billing: "advance",
    taxIncluded: false,
    chargedWhenSuspended: [],
  });
  t.equal(plan.terms[0].taxIncluded, false, "a term's fee is net by default");
  const sim = byId(catalog.offerings, "fee-sim").prices[0];
  t.equal(sim.taxIncluded, false);
  t.notOk("billing" in sim, "a one-time price gets no billing");
  t.notOk("chargedWhenSuspended" in sim, "nor suspension terms");
  t.equal(byId(catalog.tariffs, "tariff-de-eur").taxIncluded, false);
  t.equal(catalog.compiledTariffs.get("tariff-de-eur")?.taxIncluded, false);
  t.equal(catalog.compiledTariffs.get("tariff-de-eur")?.taxClass, "vat-standard");
});

t.test("price terms: billing and suspension only on recurring prices, prepaid periods in advance", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "offerings/fees.json", (fees) => {
    Object.assign(byId(fees, "fee-sim").prices[0], { billing: "advance", chargedWhenSuspended: ["dunning"] });
  });
  edit(directory, "offerings/plans.json", (plans) => {
    byId(plans, "plan-prepaid-s").prices[0].billing = "arrears";
    byId(plans, "plan-postpaid-m").prices[0].chargedWhenSuspended = ["dunning", "holiday"];
    byId(plans, "plan-postpaid-l").prices[0].chargedWhenSuspended = ["fraud", "fraud"];
    byId(plans, "plan-business-pro").prices[0].billing = "monthly";
    byId(plans, "plan-postpaid-classic").prices[0].taxIncluded = "yes";
  });
  const lines = problemsOf(t, directory);
  expectProblems(t, lines, [
    "offerings/fees.json: [1].prices[0].billing: only recurring prices are billed in advance or arrears",
    "offerings/fees.json: [1].prices[0].chargedWhenSuspended: only recurring prices are charged while suspended",
    "offerings/plans.json: [0].prices[0].billing: 30-day periods are paid when they start (advance), not in arrears",
  ]);
  for (const pattern of [
    /^offerings\/plans\.json: \[2\]\.prices\[0\]\.chargedWhenSuspended\[1\]: /,
    /^offerings\/plans\.json: \[3\]\.prices\[0\]\.chargedWhenSuspended: must NOT have duplicate items/,
    /^offerings\/plans\.json: \[4\]\.prices\[0\]\.billing: /,
    /^offerings\/plans\.json: \[5\]\.prices\[0\]\.taxIncluded: must be boolean/,
  ]) {
    t.ok(
      lines.some((line) => pattern.test(line)),
      `reports ${pattern}`,
    );
  }
});

t.test("a catalog tariff names a known tax class; taxIncluded is a boolean", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "tariffs/tariff-de-eur.json", (tariff) => {
    delete tariff.taxClass;
  });
  edit(directory, "tariffs/tariff-uk-gbp.json", (tariff) => {
    tariff.taxClass = "vat-reduced";
    tariff.taxIncluded = 1;
  });
  const lines = problemsOf(t, directory);
  expectProblems(t, lines, ["tariffs/tariff-de-eur.json: taxClass: is required of a catalog tariff"]);
  t.ok(
    lines.some((line) => /^tariffs\/tariff-uk-gbp\.json: taxIncluded: must be boolean/.test(line)),
    "taxIncluded must be a boolean",
  );

  const unknown = copyCatalog(t);
  edit(unknown, "tariffs/tariff-uk-gbp.json", (tariff) => {
    tariff.taxClass = "vat-reduced";
  });
  expectProblems(t, problemsOf(t, unknown), ["tariffs/tariff-uk-gbp.json: taxClass: unknown tax class vat-reduced"]);
});

t.test("tax classes follow EN 16931: rate by category, exemption reasons, one rate per day", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "tax-classes.json", (classes) => {
    classes.push(
      {
        id: "broken-standard",
        name: "S with a zero rate and a reason",
        category: "S",
        exemptionReason: "no reason",
        rates: [
          { jurisdiction: "DE", rate: "0" },
          { jurisdiction: "FR", rate: "0.2", category: "O" },
          { jurisdiction: "ES-CN", rate: "0", category: "O" },
          { jurisdiction: "GB", rate: "0.2", exemptionReason: "standard rates say no reason" },
        ],
      },
      {
        id: "broken-exempt",
        name: "E without a reason, with a positive rate",
        category: "E",
        rates: [
          { jurisdiction: "DE", rate: "0.07" },
          { jurisdiction: "AT", rate: "0", category: "Z" },
        ],
      },
      {
        id: "broken-dates",
        name: "Two rates for one day",
        category: "Z",
        rates: [
          { jurisdiction: "DE", rate: "0" },
          { jurisdiction: "DE", rate: "0" },
          { jurisdiction: "GB", rate: "0", validFrom: "2021-01-01" },
          { jurisdiction: "GB", rate: "0", validFrom: "2021-01-01" },
          { jurisdiction: "FR", rate: "0", validFrom: "2021-02-30" },
          { jurisdiction: "ES", rate: "0", category: "AE", exemptionReason: "Reverse charge" },
        ],
      },
      { id: "no-category", name: "A class without a category", rates: [{ jurisdiction: "DE", rate: "0.19" }] },
      {
        id: "bad-category",
        name: "A class with an unknown category",
        category: "K",
        rates: [{ jurisdiction: "DE", rate: "0.19", validFrom: "1 July 2020" }],
      },
    );
  });
  const lines = problemsOf(t, directory);
  expectProblems(t, lines, [
    "tax-classes.json: [2].exemptionReason: category S carries no exemption reason (EN 16931 BR-S-10); only E, O and AE do",
    "tax-classes.json: [2].rates[0].rate: a rate of category S is more than 0",
    "tax-classes.json: [2].rates[1].rate: a rate of category O is 0",
    "tax-classes.json: [2].rates[1].exemptionReason: is required for category O (EN 16931 BR-O-10)",
    "tax-classes.json: [2].rates[2].exemptionReason: is required for category O (EN 16931 BR-O-10)",
    "tax-classes.json: [2].rates[3].exemptionReason: category S carries no exemption reason (EN 16931 BR-S-10); only E, O and AE do",
    "tax-classes.json: [3].exemptionReason: is required for category E (EN 16931 BR-E-10)",
    "tax-classes.json: [3].rates[0].rate: a rate of category E is 0",
    "tax-classes.json: [4].rates[1].jurisdiction: DE already has a rate without validFrom",
    "tax-classes.json: [4].rates[3].validFrom: GB already has a rate from 2021-01-01",
    "tax-classes.json: [4].rates[4].validFrom: is not a calendar date",
    "tax-classes.json: [5].category: is required",
  ]);
  t.ok(
    lines.some((line) => line.startsWith("tax-classes.json: [6].category: ")),
    "an unknown category",
  );
  t.ok(
    lines.some((line) => line.startsWith("tax-classes.json: [6].rates[0].validFrom: ")),
    "a validFrom that is not YYYY-MM-DD",
  );
  const reported = (at: string) => lines.filter((line) => line.startsWith(`tax-classes.json: ${at}`));
  t.same(reported("[3].rates[1]"), [], "a Z rate of 0 in an E class needs no reason");
  t.same(reported("[4].rates[5]"), [], "an AE rate with its own reason is valid");
  t.same(reported("[0]"), [], "the shipped classes are valid");
  t.same(reported("[1]"), []);
});

t.test("promotions take exactly one of percentOff and amountOff, an amount in every currency", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "promotions.json", (promotions) => {
    const base = { cycles: 3, prices: ["price-postpaid-m-monthly"], validFrom: "2026-01-01T00:00:00Z" };
    promotions.push(
      { ...base, id: "both", name: "Both", percentOff: "10", amountOff: { EUR: "1.00", GBP: "1.00" } },
      { ...base, id: "neither", name: "Neither" },
      { ...base, id: "no-gbp", name: "No GBP", amountOff: { EUR: "1.00" } },
      { ...base, id: "zero", name: "Zero", amountOff: { EUR: "0.00", GBP: "1.123456789" } },
      { ...base, id: "too-much", name: "Too much", percentOff: "100.5" },
    );
  });
  expectProblems(t, problemsOf(t, directory), [
    "promotions.json: [2]: names exactly one of percentOff and amountOff",
    "promotions.json: [3]: names exactly one of percentOff and amountOff",
    "promotions.json: [4].amountOff: has no amount in GBP",
    "promotions.json: [5].amountOff.EUR: must be more than 0",
    "promotions.json: [5].amountOff.GBP: has more than 6 decimals",
    "promotions.json: [6].percentOff: must be more than 0 and at most 100",
  ]);
});

t.test("issuing entities: unique ids and prefixes, one entity per country, valid VAT ID and zone", async (t) => {
  const directory = copyCatalog(t);
  edit(directory, "issuing-entities.json", (entities) => {
    const [de, uk] = entities;
    entities.push(
      { ...de, id: "telco-de", countries: ["AT", "FR"], series: { invoice: "AT-INV", creditNote: "AT-INV" } },
      {
        ...uk,
        id: "telco-gb",
        vatId: "GB12345678",
        timeZone: "Europe/Londres",
        series: { invoice: "UK-INV", creditNote: "GB-CN" },
      },
      { ...uk, id: "telco-ch", country: "CH", countries: ["ZZ"], series: { invoice: "CH-INV", creditNote: "CH-CN" } },
      { ...uk, id: "telco-ie", countries: ["IE"], series: { invoice: "IE-INV", creditNote: "ie-cn" } },
    );
  });
  const lines = problemsOf(t, directory);
  expectProblems(t, lines, [
    "issuing-entities.json: [2].id: duplicates issuing entity telco-de",
    "issuing-entities.json: [2].countries[0]: AT is already billed by issuing entity telco-de",
    "issuing-entities.json: [2].series.creditNote: AT-INV is already the prefix of the invoice series of telco-de",
    "issuing-entities.json: [3].vatId: must be GB and 9 or 12 digits, GD and 000–499, or HA and 500–999",
    "issuing-entities.json: [3].timeZone: is not an IANA time zone",
    "issuing-entities.json: [4].vatId: is a VAT ID of GB, the entity is established in CH",
    "issuing-entities.json: [4].countries[0]: is not an ISO 3166-1 alpha-2 code",
  ]);
  expectProblems(t, lines, [
    "issuing-entities.json: [3].series.invoice: UK-INV is already the prefix of the invoice series of telco-uk",
    "issuing-entities.json: [3].country: GB is already billed by issuing entity telco-uk",
  ]);
  t.ok(
    lines.some((line) => line.startsWith("issuing-entities.json: [5].series.creditNote: must match pattern")),
    "a prefix of lower-case letters",
  );
  t.notOk(
    lines.some((line) => line.startsWith("issuing-entities.json: [2].countries[1]")),
    "FR is billed by no one else",
  );

  const clash = copyCatalog(t);
  edit(clash, "issuing-entities.json", (entities) => {
    entities[1].series.invoice = "DE-INV";
    entities[1].countries = ["GB", "DE"];
    entities[1].country = "ZZ";
  });
  expectProblems(t, problemsOf(t, clash), [
    "issuing-entities.json: [1].series.invoice: DE-INV is already the prefix of the invoice series of telco-de",
    "issuing-entities.json: [1].countries[1]: DE is already billed by issuing entity telco-de",
    "issuing-entities.json: [1].country: is not an ISO 3166-1 alpha-2 code",
  ]);

  const missing = copyCatalog(t);
  rmSync(path.join(missing, "issuing-entities.json"));
  t.ok(
    problemsOf(t, missing).some((line) => line.startsWith("issuing-entities.json: (file): ")),
    "the file is required",
  );
});

t.test("the rate of a day: the latest that started on or before it, a subdivision or its country", async (t) => {
  const standard = byId(loadCatalog(CATALOG_DIR).taxClasses, "vat-standard") as TaxClass;
  const rateOn = (jurisdiction: string, date: string) => taxRateAt(standard, jurisdiction, date);
  t.match(rateOn("DE", "2020-06-30"), { rate: "0.19", validFrom: null, category: "S" });
  t.match(rateOn("DE", "2020-07-01"), { rate: "0.16", validFrom: "2020-07-01" }, "the German cut's first day");
  t.match(rateOn("DE", "2020-12-31"), { rate: "0.16" });
  t.match(rateOn("DE", "2021-01-01"), { rate: "0.19", validFrom: "2021-01-01" });
  t.match(rateOn("DE-BY", "2020-08-01"), { rate: "0.16", jurisdiction: "DE" }, "a subdivision without a rate");
  t.same(rateOn("ES-CN", "2026-03-15"), {
    taxClass: "vat-standard",
    jurisdiction: "ES-CN",
    rate: "0",
    category: "O",
    validFrom: null,
    exemptionReason: "Not subject to EU VAT: the Canary Islands are outside the EU VAT area (IGIC applies)",
  });
  t.match(rateOn("ES", "2026-03-15"), { rate: "0.21", category: "S" });
  t.notOk("exemptionReason" in (rateOn("ES", "2026-03-15") ?? {}), "S rates carry no reason");
  t.equal(rateOn("US", "2026-03-15"), undefined, "no rate is undefined, never a zero");
  const exempt = byId(loadCatalog(CATALOG_DIR).taxClasses, "vat-exempt") as TaxClass;
  t.match(taxRateAt(exempt, "AT", "2026-03-15"), { category: "E", rate: "0", exemptionReason: /Exempt/ });

  const today = taxRatesOn(standard, "2026-03-15");
  t.same(
    today.map((rate) => `${rate.jurisdiction} ${rate.rate}`),
    ["DE 0.19", "AT 0.20", "GB 0.20", "FR 0.20", "ES 0.21", "ES-CN 0"],
    "one rate per jurisdiction: the one in force",
  );
  const dated: TaxClass = {
    id: "dated",
    name: "Only from a day",
    category: "S",
    rates: [{ jurisdiction: "DE", rate: "0.07", validFrom: "2026-04-01" }],
  };
  t.same(taxRatesOn(dated, "2026-03-31"), [], "a rate not yet in force is not shown");
  t.equal(nextRateChange([standard, dated], "2026-03-15"), "2026-04-01");
  t.equal(nextRateChange([standard, dated], "2026-04-01"), null);
  t.equal(nextRateChange([standard], "2020-06-30"), "2020-07-01");
});

t.test("issuing entity by country, and a bought price's terms with their defaults", async (t) => {
  const entities = loadCatalog(CATALOG_DIR).issuingEntities;
  t.equal(issuingEntityFor(entities, "DE")?.id, "telco-de");
  t.equal(issuingEntityFor(entities, "AT")?.id, "telco-de", "a country the entity names beside its own");
  t.equal(issuingEntityFor(entities, "GB")?.id, "telco-uk", "an entity without countries bills its own");
  t.equal(issuingEntityFor(entities, "DE-BY")?.id, "telco-de", "a jurisdiction is billed by its country's entity");
  t.equal(issuingEntityFor(entities, "FR"), undefined);

  const base = { id: "p", name: "P", amounts: { EUR: "1" }, taxClass: "vat-standard" };
  t.same(priceTerms({ ...base, type: "recurring", period: "billCycle" }), {
    taxIncluded: false,
    billing: "advance",
    chargedWhenSuspended: [],
  });
  t.same(priceTerms({ ...base, type: "oneTime", taxIncluded: true }), { taxIncluded: true });
  const charged = priceTerms({
    ...base,
    type: "recurring",
    period: "billCycle",
    billing: "arrears",
    chargedWhenSuspended: ["dunning"],
  });
  t.same(charged, { taxIncluded: false, billing: "arrears", chargedWhenSuspended: ["dunning"] });
});
