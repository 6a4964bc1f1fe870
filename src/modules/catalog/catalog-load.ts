import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { isValidBIC, isValidIBAN } from "ibantools";
import type { TObject } from "typebox";
import { canonicalTimeZone, isCalendarDate } from "../../shared/calendar.js";
import { isCountryCode, isTaxJurisdiction } from "../../shared/contact.js";
import { isSepaCreditorId } from "../../shared/creditor-reference.js";
import { isCurrencyCode } from "../../shared/currency.js";
import { Money } from "../../shared/money.js";
import { vatIdCountry, vatIdProblem } from "../../shared/vat-id.js";
import {
  type CatalogRoot,
  CatalogRootSchema,
  type DunningAction,
  type DunningPolicy,
  DunningPolicySchema,
  EXEMPT_CATEGORIES,
  type IssuingEntity,
  IssuingEntitySchema,
  type Offering,
  OfferingSchema,
  type Promotion,
  PromotionSchema,
  type Specification,
  SpecificationSchema,
  type TaxClass,
  TaxClassSchema,
} from "./catalog.schemas.js";
import { billedCountries, withPriceDefaults } from "./catalog-terms.js";
import type { TariffDefinition } from "./tariff.schemas.js";
import { type CompiledTariff, compileTariff, TariffError } from "./tariff-compile.js";

/**
 * Reads and validates the catalog folder. Every problem is collected with its file and JSON path, and a
 * catalog with any problem is refused whole: nothing of it is published. The definition it returns has every
 * defaulted field written out (a price's billing, taxIncluded, chargedWhenSuspended; a tariff's and a term's
 * taxIncluded), so what is published says what it means without the reader knowing the defaults.
 *
 *   catalog.json          the catalog, its currencies and categories
 *   tax-classes.json      [tax class]
 *   specifications.json   [product specification]
 *   promotions.json       [promotion]
 *   issuing-entities.json [issuing entity]: the companies that issue the bills, by the countries they bill
 *   dunning-policies.json [dunning policy]: the steps for accounts that do not pay, per jurisdiction and segment
 *   offerings/*.json      [product offering] per file
 *   tariffs/*.json        one tariff per file
 */

export interface CatalogProblem {
  file: string;
  path: string;
  message: string;
}

export class CatalogError extends Error {
  override name = "CatalogError";
  constructor(readonly problems: readonly CatalogProblem[]) {
    super(
      `the catalog has ${problems.length} problem(s):\n${problems.map((p) => `  ${p.file}: ${p.path}: ${p.message}`).join("\n")}`,
    );
  }
}

export interface CatalogDefinition {
  root: CatalogRoot;
  taxClasses: TaxClass[];
  specifications: Specification[];
  offerings: Offering[];
  promotions: Promotion[];
  issuingEntities: IssuingEntity[];
  dunningPolicies: DunningPolicy[];
  tariffs: TariffDefinition[];
  compiledTariffs: Map<string, CompiledTariff>;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));
const validators = new Map<TObject, ValidateFunction>();

function validatorFor(schema: TObject): ValidateFunction {
  let validate = validators.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

function pointer(error: ErrorObject, base: string): { path: string; message: string } {
  const inner = error.instancePath
    .replace(/^\//, "")
    .replace(/\/(\d+)/g, "[$1]")
    .replace(/\//g, ".");
  const at = [base, inner].filter(Boolean).join(".").replace(/\.\[/g, "[");
  const params = error.params as Record<string, unknown>;
  if (error.keyword === "required") return { path: `${at}.${String(params.missingProperty)}`, message: "is required" };
  if (error.keyword === "additionalProperties") {
    return { path: `${at}.${String(params.additionalProperty)}`, message: "is not a known field" };
  }
  return { path: at || "(root)", message: error.message ?? "is invalid" };
}

function decimals(text: string): number {
  return text.includes(".") ? (text.split(".")[1] ?? "").length : 0;
}

export function loadCatalog(directory: string): CatalogDefinition {
  const problems: CatalogProblem[] = [];
  const problem = (file: string, at: string, message: string) => problems.push({ file, path: at, message });

  const readJson = (relative: string): unknown => {
    const file = path.join(directory, relative);
    try {
      return JSON.parse(readFileSync(file, "utf8")) as unknown;
    } catch (error) {
      // A missing or unparseable file is a catalog problem like any other, reported with the rest.
      problem(relative, "(file)", error instanceof Error ? error.message : "cannot be read");
      return undefined;
    }
  };
  const listFiles = (relative: string): string[] => {
    const folder = path.join(directory, relative);
    try {
      if (!statSync(folder).isDirectory()) return [];
    } catch {
      problem(relative, "(folder)", "does not exist");
      return [];
    }
    return readdirSync(folder)
      .filter((name) => name.endsWith(".json"))
      .sort()
      .map((name) => path.join(relative, name));
  };
  const check = <T>(file: string, value: unknown, schema: TObject, at: string): T | undefined => {
    const validate = validatorFor(schema);
    if (validate(value)) return value as T;
    for (const error of validate.errors ?? []) {
      const { path: where, message } = pointer(error, at);
      problem(file, where, message);
    }
    return undefined;
  };
  const checkList = <T>(
    file: string,
    value: unknown,
    schema: TObject,
  ): Array<{ item: T; at: string; file: string }> => {
    if (!Array.isArray(value)) {
      if (value !== undefined) problem(file, "(root)", "must be an array");
      return [];
    }
    return value.flatMap((item, index) => {
      const at = `[${index}]`;
      const valid = check<T>(file, item, schema, at);
      return valid === undefined ? [] : [{ item: valid, at, file }];
    });
  };

  const root = check<CatalogRoot>("catalog.json", readJson("catalog.json"), CatalogRootSchema, "");
  const taxClasses = checkList<TaxClass>("tax-classes.json", readJson("tax-classes.json"), TaxClassSchema);
  const specifications = checkList<Specification>(
    "specifications.json",
    readJson("specifications.json"),
    SpecificationSchema,
  );
  const promotions = checkList<Promotion>("promotions.json", readJson("promotions.json"), PromotionSchema);
  const offerings = listFiles("offerings").flatMap((file) => checkList<Offering>(file, readJson(file), OfferingSchema));
  const issuingEntities = checkList<IssuingEntity>(
    "issuing-entities.json",
    readJson("issuing-entities.json"),
    IssuingEntitySchema,
  );

  const dunningPolicies = checkList<DunningPolicy>(
    "dunning-policies.json",
    readJson("dunning-policies.json"),
    DunningPolicySchema,
  );

  const compiledTariffs = new Map<string, CompiledTariff>();
  const tariffFiles: Array<{ file: string; tariff: CompiledTariff }> = [];
  for (const file of listFiles("tariffs")) {
    const definition = readJson(file);
    if (definition === undefined) continue;
    try {
      const compiled = compileTariff(definition);
      if (compiledTariffs.has(compiled.id)) problem(file, "id", `duplicates tariff ${compiled.id}`);
      const tariff = { ...compiled, definition: { ...compiled.definition, taxIncluded: compiled.taxIncluded } };
      compiledTariffs.set(compiled.id, tariff);
      tariffFiles.push({ file, tariff });
    } catch (error) {
      if (!(error instanceof TariffError)) throw error;
      for (const tariffProblem of error.problems) problem(file, tariffProblem.path, tariffProblem.message);
    }
  }

  const currencies = root?.currencies ?? [];
  root?.currencies.forEach((currency, index) => {
    if (!isCurrencyCode(currency))
      problem("catalog.json", `currencies[${index}]`, `${currency} is not an ISO 4217 code`);
  });
  const categoryIds = new Set(root?.categories.map((category) => category.id));
  root?.categories.forEach((category, index) => {
    if (category.parent !== undefined && !categoryIds.has(category.parent)) {
      problem("catalog.json", `categories[${index}].parent`, `unknown category ${category.parent}`);
    }
  });

  const unique = <T extends { id: string }>(entries: Array<{ item: T; at: string; file: string }>, kind: string) => {
    const seen = new Map<string, string>();
    for (const entry of entries) {
      const earlier = seen.get(entry.item.id);
      if (earlier !== undefined)
        problem(entry.file, `${entry.at}.id`, `duplicates ${kind} ${entry.item.id} (first in ${earlier})`);
      seen.set(entry.item.id, entry.file);
    }
    return new Set(seen.keys());
  };
  const taxIds = unique(taxClasses, "tax class");
  const specificationIds = unique(specifications, "specification");
  unique(promotions, "promotion");
  const offeringIds = unique(offerings, "offering");
  const plans = new Map(
    offerings.filter((entry) => entry.item.kind === "plan").map((entry) => [entry.item.id, entry.item]),
  );

  for (const { item, at } of taxClasses)
    checkTaxClass(item, at, (where, message) => problem("tax-classes.json", where, message));
  for (const { file, tariff } of tariffFiles) {
    // Usage charges land on invoices, so every catalog tariff says how they are taxed.
    if (tariff.taxClass === null) problem(file, "taxClass", "is required of a catalog tariff");
    else if (!taxIds.has(tariff.taxClass)) problem(file, "taxClass", `unknown tax class ${tariff.taxClass}`);
  }
  checkIssuingEntities(issuingEntities, (where, message) => problem("issuing-entities.json", where, message));

  /** Amounts in every catalog currency and no other, not negative, at most 6 decimals. */
  const checkAmounts = (file: string, at: string, amounts: Record<string, string>) => {
    for (const currency of currencies) {
      if (amounts[currency] === undefined) problem(file, at, `has no amount in ${currency}`);
    }
    for (const [currency, amount] of Object.entries(amounts)) {
      if (!currencies.includes(currency)) problem(file, `${at}.${currency}`, `${currency} is not a catalog currency`);
      if (amount.startsWith("-")) problem(file, `${at}.${currency}`, "must not be negative");
      if (decimals(amount) > 6) problem(file, `${at}.${currency}`, "has more than 6 decimals");
    }
  };

  const priceIds = new Map<string, { recurring: boolean }>();
  for (const { item, at, file } of offerings) {
    if (!specificationIds.has(item.specification))
      problem(file, `${at}.specification`, `unknown specification ${item.specification}`);
    item.categories.forEach((category, index) => {
      if (!categoryIds.has(category)) problem(file, `${at}.categories[${index}]`, `unknown category ${category}`);
    });
    if (item.validTo !== undefined && Date.parse(item.validTo) <= Date.parse(item.validFrom)) {
      problem(file, `${at}.validTo`, "must be after validFrom");
    }
    item.prices.forEach((price, index) => {
      const where = `${at}.prices[${index}]`;
      if (priceIds.has(price.id)) problem(file, `${where}.id`, `duplicates price ${price.id}`);
      priceIds.set(price.id, { recurring: price.type === "recurring" });
      if (!taxIds.has(price.taxClass)) problem(file, `${where}.taxClass`, `unknown tax class ${price.taxClass}`);
      if ((price.type === "recurring") !== (price.period !== undefined)) {
        problem(file, `${where}.period`, "recurring prices name a period; one-time prices do not");
      }
      if (price.type !== "recurring") {
        if (price.billing !== undefined)
          problem(file, `${where}.billing`, "only recurring prices are billed in advance or arrears");
        if (price.chargedWhenSuspended !== undefined)
          problem(file, `${where}.chargedWhenSuspended`, "only recurring prices are charged while suspended");
      } else if (price.period === "30days" && price.billing === "arrears") {
        // A 30-day period is prepaid: its price is taken from the balance when the period starts.
        problem(file, `${where}.billing`, "30-day periods are paid when they start (advance), not in arrears");
      }
      checkAmounts(file, `${where}.amounts`, price.amounts);
    });
    item.terms?.forEach((term, index) => {
      const where = `${at}.terms[${index}]`;
      if (!taxIds.has(term.taxClass)) problem(file, `${where}.taxClass`, `unknown tax class ${term.taxClass}`);
      checkAmounts(file, `${where}.earlyTerminationFeePerMonth`, term.earlyTerminationFeePerMonth);
    });
    if (item.kind === "plan") {
      for (const currency of currencies) {
        const tariffId = item.tariffs?.[currency];
        if (tariffId === undefined) {
          problem(file, `${at}.tariffs`, `has no tariff for ${currency}`);
          continue;
        }
        const tariff = compiledTariffs.get(tariffId);
        if (tariff === undefined) problem(file, `${at}.tariffs.${currency}`, `unknown tariff ${tariffId}`);
        else if (tariff.currency !== currency)
          problem(file, `${at}.tariffs.${currency}`, `tariff ${tariffId} is in ${tariff.currency}`);
      }
    } else if (item.tariffs !== undefined) {
      problem(file, `${at}.tariffs`, "only plans carry tariffs");
    }
    if (item.compatiblePlans !== undefined && item.kind !== "addon")
      problem(file, `${at}.compatiblePlans`, "only add-ons name compatible plans");
    item.compatiblePlans?.forEach((plan, index) => {
      if (!plans.has(plan)) problem(file, `${at}.compatiblePlans[${index}]`, `${plan} is not a plan of this catalog`);
    });
    // Allowances name destinations and roaming zones of the tariffs they will be consumed against.
    const tariffsInScope =
      item.kind === "plan"
        ? [item]
        : (item.compatiblePlans ?? [...plans.keys()]).flatMap((plan) =>
            plans.get(plan) ? [plans.get(plan) as Offering] : [],
          );
    const scopeTariffs = tariffsInScope.flatMap((plan) =>
      Object.values(plan.tariffs ?? {}).flatMap((id) =>
        compiledTariffs.get(id) ? [compiledTariffs.get(id) as CompiledTariff] : [],
      ),
    );
    const allowanceIds = new Set<string>();
    item.allowances?.forEach((allowance, index) => {
      const where = `${at}.allowances[${index}]`;
      if (allowanceIds.has(allowance.id)) problem(file, `${where}.id`, `duplicates allowance ${allowance.id}`);
      allowanceIds.add(allowance.id);
      if (item.kind === "fee") problem(file, where, "fees carry no allowances");
      for (const tariff of scopeTariffs) {
        const destinations = new Set(tariff.definition.destinations?.map((destination) => destination.id));
        const zones = new Set(tariff.definition.roamingZones?.map((zone) => zone.id));
        allowance.destinations?.forEach((destination, i) => {
          if (!destinations.has(destination))
            problem(file, `${where}.destinations[${i}]`, `tariff ${tariff.id} has no destination ${destination}`);
        });
        allowance.roaming?.forEach((zone, i) => {
          if (!zones.has(zone))
            problem(file, `${where}.roaming[${i}]`, `tariff ${tariff.id} has no roaming zone ${zone}`);
        });
      }
      if (allowance.shared === true && allowance.period !== "billCycle") {
        // Rolling periods start at each line's own activation: there is no one period for the account to share.
        problem(file, `${where}.shared`, "only billCycle allowances can be shared");
      }
      if (allowance.rolloverMaxUnits !== undefined && allowance.service !== "data") {
        problem(file, `${where}.rolloverMaxUnits`, "only data allowances roll over");
      }
    });
  }

  for (const { item, at } of promotions) {
    if ((item.percentOff === undefined) === (item.amountOff === undefined)) {
      problem("promotions.json", at, "names exactly one of percentOff and amountOff");
    }
    if (item.percentOff !== undefined) {
      const percent = new Money(item.percentOff);
      if (percent.lte(0) || percent.gt(100) || decimals(item.percentOff) > 6) {
        problem("promotions.json", `${at}.percentOff`, "must be more than 0 and at most 100");
      }
    }
    if (item.amountOff !== undefined) {
      checkAmounts("promotions.json", `${at}.amountOff`, item.amountOff);
      for (const [currency, amount] of Object.entries(item.amountOff)) {
        if (new Money(amount).isZero())
          problem("promotions.json", `${at}.amountOff.${currency}`, "must be more than 0");
      }
    }
    item.prices.forEach((priceId, index) => {
      const price = priceIds.get(priceId);
      if (price === undefined) problem("promotions.json", `${at}.prices[${index}]`, `unknown price ${priceId}`);
      else if (!price.recurring)
        problem("promotions.json", `${at}.prices[${index}]`, `price ${priceId} is not recurring`);
    });
  }
  if (offeringIds.size === 0 && problems.length === 0) problem("offerings", "(folder)", "has no offerings");
  unique(dunningPolicies, "dunning policy");
  const oneTime = new Map(
    offerings.map(({ item }) => [item.id, item.prices.some((price) => price.type === "oneTime")] as const),
  );
  checkDunningPolicies(dunningPolicies, currencies, oneTime, (where, message) =>
    problem("dunning-policies.json", where, message),
  );

  if (problems.length > 0 || root === undefined) throw new CatalogError(problems);
  return {
    root,
    taxClasses: taxClasses.map((entry) => entry.item),
    specifications: specifications.map((entry) => entry.item),
    offerings: offerings.map((entry) => withOfferingDefaults(entry.item)),
    promotions: promotions.map((entry) => entry.item),
    issuingEntities: issuingEntities.map((entry) => entry.item),
    dunningPolicies: dunningPolicies.map((entry) => entry.item),
    tariffs: tariffFiles.map((entry) => entry.tariff.definition),
    compiledTariffs,
  };
}

function withOfferingDefaults(offering: Offering): Offering {
  return {
    ...offering,
    prices: offering.prices.map(withPriceDefaults),
    ...(offering.terms
      ? { terms: offering.terms.map((term) => ({ ...term, taxIncluded: term.taxIncluded ?? false })) }
      : {}),
  };
}

type Report = (path: string, message: string) => void;

const EXEMPT = new Set<string>(EXEMPT_CATEGORIES);

/**
 * A tax class's rates against EN 16931: a standard-rated (S) rate is more than 0 and every other category's is 0;
 * E, O and AE say why (BR-E-10, BR-O-10, BR-AE-10) and S and Z do not (BR-S-10, BR-Z-10); one rate per
 * jurisdiction and start date, so the rate of a day is never ambiguous.
 */
function checkTaxClass(taxClass: TaxClass, at: string, problem: Report): void {
  const exemptionRule = (category: string) =>
    `category ${category} carries no exemption reason (EN 16931 BR-${category}-10); only E, O and AE do`;
  if (EXEMPT.has(taxClass.category) && taxClass.exemptionReason === undefined) {
    problem(
      `${at}.exemptionReason`,
      `is required for category ${taxClass.category} (EN 16931 BR-${taxClass.category}-10)`,
    );
  }
  if (!EXEMPT.has(taxClass.category) && taxClass.exemptionReason !== undefined) {
    problem(`${at}.exemptionReason`, exemptionRule(taxClass.category));
  }
  const starts = new Set<string>();
  taxClass.rates.forEach((rate, index) => {
    const where = `${at}.rates[${index}]`;
    if (!isTaxJurisdiction(rate.jurisdiction)) problem(`${where}.jurisdiction`, "is not an ISO 3166 code");
    const value = new Money(rate.rate);
    if (value.isNegative() || value.gt(1) || decimals(rate.rate) > 6) {
      problem(`${where}.rate`, "must be a fraction from 0 to 1 with at most 6 decimals");
    }
    const category = rate.category ?? taxClass.category;
    if (category === "S" && !value.gt(0)) problem(`${where}.rate`, "a rate of category S is more than 0");
    if (category !== "S" && !value.isZero()) problem(`${where}.rate`, `a rate of category ${category} is 0`);
    const reasoned =
      rate.exemptionReason !== undefined || (category === taxClass.category && taxClass.exemptionReason !== undefined);
    if (EXEMPT.has(category) && !reasoned) {
      problem(`${where}.exemptionReason`, `is required for category ${category} (EN 16931 BR-${category}-10)`);
    }
    if (!EXEMPT.has(category) && rate.exemptionReason !== undefined) {
      problem(`${where}.exemptionReason`, exemptionRule(category));
    }
    if (rate.validFrom !== undefined && !isCalendarDate(rate.validFrom)) {
      problem(`${where}.validFrom`, "is not a calendar date");
    }
    const key = `${rate.jurisdiction}|${rate.validFrom ?? ""}`;
    if (starts.has(key)) {
      problem(
        rate.validFrom === undefined ? `${where}.jurisdiction` : `${where}.validFrom`,
        rate.validFrom === undefined
          ? `${rate.jurisdiction} already has a rate without validFrom`
          : `${rate.jurisdiction} already has a rate from ${rate.validFrom}`,
      );
    }
    starts.add(key);
  });
}

/**
 * What the law of a jurisdiction asks before a consumer's service is barred for debt, where the engine knows it.
 * Germany, Telecommunications Act (TKG) § 61: at least 100 EUR of undisputed arrears, a written notice at least two
 * weeks ahead that names the barring, outgoing calls barred first and all calls no earlier than a week later.
 */
export const BARRING_LAW: Readonly<
  Record<string, { law: string; minimum: Record<string, string>; noticeDays: number; fullAfterOutgoingDays: number }>
> = {
  DE: { law: "TKG § 61", minimum: { EUR: "100" }, noticeDays: 14, fullAfterOutgoingDays: 7 },
};

const BARRING_ACTIONS: readonly DunningAction[] = ["outgoingBarring", "fullBarring", "suspension", "termination"];

/**
 * Dunning policies: steps in the order of their days (a later step never comes earlier), each action at most once
 * but reminders, barring before suspension before termination, fees only on reminders; one policy per jurisdiction,
 * segment and currency; a catalog currency; the reconnection fee an offering with a one-time price; and, for consumers where the
 * law is known (BARRING_LAW), no barring earlier than it allows.
 */
function checkDunningPolicies(
  policies: Array<{ item: DunningPolicy; at: string }>,
  currencies: readonly string[],
  /** Offerings by id: whether each has a one-time price. */
  offerings: ReadonlyMap<string, boolean>,
  problem: Report,
): void {
  const scopes = new Map<string, string>();
  for (const { item, at } of policies) {
    const scope = `${item.jurisdiction}/${item.segment ?? "any"}/${item.currency}`;
    const other = scopes.get(scope);
    if (other !== undefined) problem(`${at}.segment`, `${scope} is already dunned by policy ${other}`);
    scopes.set(scope, item.id);
    if (!currencies.includes(item.currency)) problem(`${at}.currency`, `${item.currency} is not a catalog currency`);
    if (item.reconnectionFee !== undefined) {
      const fee = offerings.get(item.reconnectionFee);
      if (fee === undefined) problem(`${at}.reconnectionFee`, `unknown offering ${item.reconnectionFee}`);
      else if (!fee) problem(`${at}.reconnectionFee`, `${item.reconnectionFee} has no one-time price`);
    }
    const ids = new Set<string>();
    const dayOf = new Map<DunningAction, number>();
    item.steps.forEach((step, index) => {
      const where = `${at}.steps[${index}]`;
      if (ids.has(step.id)) problem(`${where}.id`, `duplicates step ${step.id}`);
      ids.add(step.id);
      const previous = item.steps[index - 1];
      if (previous !== undefined && step.daysPastDue < previous.daysPastDue) {
        problem(
          `${where}.daysPastDue`,
          `${step.daysPastDue} comes before the previous step's ${previous.daysPastDue}: steps are in the order of their days`,
        );
      }
      if (step.action !== "reminder") {
        if (dayOf.has(step.action)) problem(`${where}.action`, `${step.action} appears twice`);
        const rank = BARRING_ACTIONS.indexOf(step.action);
        const later = BARRING_ACTIONS.slice(rank + 1).find((action) => dayOf.has(action));
        if (later !== undefined) problem(`${where}.action`, `${step.action} comes after ${later}`);
        dayOf.set(step.action, step.daysPastDue);
      }
      if (step.fee !== undefined && step.action !== "reminder")
        problem(`${where}.fee`, "only a reminder carries a fee");
      for (const announced of step.announces ?? []) {
        if (!BARRING_ACTIONS.includes(announced))
          problem(`${where}.announces`, `${announced} is not announced: only barring, suspension and termination are`);
        const target = item.steps.findIndex((candidate) => candidate.action === announced);
        if (target === -1) problem(`${where}.announces`, `announces ${announced}, which the policy does not have`);
        else if (target < index) problem(`${where}.announces`, `announces ${announced}, which comes before it`);
      }
    });
    const law = BARRING_LAW[item.jurisdiction];
    if (law === undefined || item.segment === "Organization") continue;
    const barring = item.steps.filter((step) => BARRING_ACTIONS.includes(step.action));
    if (barring.length === 0) continue;
    const minimum = law.minimum[item.currency];
    if (minimum !== undefined && new Money(item.barringMinimum).lt(minimum)) {
      problem(
        `${at}.barringMinimum`,
        `${law.law}: no barring for less than ${minimum} ${item.currency} of undisputed arrears`,
      );
    }
    for (const step of barring) {
      const index = item.steps.indexOf(step);
      const notice = item.steps.find(
        (candidate) =>
          (candidate.announces ?? []).includes(step.action) &&
          candidate.daysPastDue + law.noticeDays <= step.daysPastDue,
      );
      if (notice === undefined) {
        problem(
          `${at}.steps[${index}].daysPastDue`,
          `${law.law}: ${step.action} needs a written notice that names it at least ${law.noticeDays} days before`,
        );
      }
    }
    const outgoing = dayOf.get("outgoingBarring");
    const full = dayOf.get("fullBarring");
    if (full !== undefined) {
      const index = item.steps.findIndex((step) => step.action === "fullBarring");
      if (outgoing === undefined)
        problem(`${at}.steps[${index}].action`, `${law.law}: outgoing calls are barred first`);
      else if (full < outgoing + law.fullAfterOutgoingDays) {
        problem(
          `${at}.steps[${index}].daysPastDue`,
          `${law.law}: full barring no earlier than ${law.fullAfterOutgoingDays} days after outgoing barring (day ${outgoing})`,
        );
      }
    }
  }
}

/**
 * Issuing entities: unique ids, one entity per billed country, a VAT ID of the entity's own country in a valid
 * format, a known time zone, and series prefixes no two series share (a number must name one document).
 */
function checkIssuingEntities(entities: Array<{ item: IssuingEntity; at: string }>, problem: Report): void {
  const ids = new Map<string, string>();
  const billers = new Map<string, string>();
  const prefixes = new Map<string, string>();
  for (const { item, at } of entities) {
    if (ids.has(item.id)) problem(`${at}.id`, `duplicates issuing entity ${item.id}`);
    ids.set(item.id, at);
    if (!isCountryCode(item.country)) problem(`${at}.country`, "is not an ISO 3166-1 alpha-2 code");
    if (!isCountryCode(item.address.country)) problem(`${at}.address.country`, "is not an ISO 3166-1 alpha-2 code");
    const vatProblem = vatIdProblem(item.vatId);
    if (vatProblem !== null) problem(`${at}.vatId`, vatProblem);
    else if (vatIdCountry(item.vatId) !== item.country) {
      problem(
        `${at}.vatId`,
        `is a VAT ID of ${vatIdCountry(item.vatId)}, the entity is established in ${item.country}`,
      );
    }
    if (canonicalTimeZone(item.timeZone) === null) problem(`${at}.timeZone`, "is not an IANA time zone");
    if (item.bankAccount !== undefined) {
      if (!isValidIBAN(item.bankAccount.iban))
        problem(`${at}.bankAccount.iban`, "is not a valid IBAN (electronic format, mod 97)");
      if (item.bankAccount.bic !== undefined && !isValidBIC(item.bankAccount.bic)) {
        problem(`${at}.bankAccount.bic`, "is not a valid BIC");
      }
    }
    if (item.sepaCreditorId !== undefined) {
      if (!isSepaCreditorId(item.sepaCreditorId))
        problem(`${at}.sepaCreditorId`, "is not a SEPA creditor identifier (check digits mod 97)");
      else if (item.bankAccount === undefined)
        problem(`${at}.bankAccount`, "is needed with a SEPA creditor identifier (the account debits are credited to)");
    }
    billedCountries(item).forEach((country, index) => {
      const where = item.countries === undefined ? `${at}.country` : `${at}.countries[${index}]`;
      if (item.countries !== undefined && !isCountryCode(country)) {
        problem(where, "is not an ISO 3166-1 alpha-2 code");
      }
      const other = billers.get(country);
      if (other !== undefined) problem(where, `${country} is already billed by issuing entity ${other}`);
      else billers.set(country, item.id);
    });
    for (const kind of ["invoice", "creditNote"] as const) {
      const prefix = item.series[kind];
      const other = prefixes.get(prefix);
      if (other !== undefined) problem(`${at}.series.${kind}`, `${prefix} is already the prefix of the ${other}`);
      else prefixes.set(prefix, `${kind} series of ${item.id}`);
    }
  }
}
