import {
  type BillCycle,
  billingDayOfMonth,
  cyclePeriod,
  dateOfDayNumber,
  formatLocalDate,
  localDate,
  localDayNumber,
  localMidnightUtc,
  type Period,
  prorationBasis,
} from "../../shared/calendar.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { divideHalfUp, MinorAmount, parseScaled, powerOfTen } from "../../shared/minor-units.js";
import { Money } from "../../shared/money.js";
import {
  SUSPENSION_REASONS,
  type SuspensionReason,
  type TaxClass,
  taxRateAt,
  type VatCategory,
} from "../catalog/index.js";

/**
 * The arithmetic of a bill (DESIGN.md §10 "Composition is pure"): `composeInvoice(input)` takes what a repository
 * loaded and returns the lines, the tax summary and the totals, with no I/O and no clock. Preview, on-demand bills,
 * final bills and bill runs call it; properties and independent cases check it.
 *
 * Order of operations, for every charge: price → proration → promotion → tax.
 *
 * - **Periods.** A cycle invoice carries its usage period's usage and arrears charges and the next period's advance
 *   charges (`usagePeriod`, `advancePeriod`); a final bill has no advance period. Periods come from the account's
 *   bill cycle (`cyclePeriod`), a transition period after a change of cycle included.
 * - **Proration by days.** A period is cut into pieces at the local days (account zone) where a product's status or
 *   price changed; a piece's share is `price × days / days of the period` (a transition period's days count against
 *   the new cycle's full period that ends with it), rounded half-up to the currency's minor unit and never more than
 *   is left, and the last piece of the period takes the remainder, so the pieces of a whole period add up to its
 *   price exactly (a transition period's: to its share of the price, rounded once, which is also what it is charged
 *   in advance). A day belongs to the state the product is in at the end of it: activation counts its day,
 *   termination does not.
 * - **Billable.** Active (and pending termination) products are charged; suspended ones only when the price's
 *   `chargedWhenSuspended` names the suspension's reason.
 * - **Advance prices.** The invoice at a period's start charged the whole period in advance when the product was
 *   billable at that instant, at the price then in effect and with the promotion of that cycle. The invoice after
 *   it settles the period: what it did not charge (a line activated inside it, a price that began inside it) is
 *   charged for its billable pieces; what it charged for days that were not billable (suspension not charged,
 *   termination, a price that ended) is credited as its own line: those pieces of what was charged, remainder rule
 *   included, so a credit never exceeds its charge and a first and a final bill add up to the periods' prices.
 * - **Arrears prices** are charged for the usage period's billable pieces.
 * - **Promotions** apply to the charges of the cycles they cover (cycle 1 is the period holding the promotion's
 *   start): percent-off ones first, then amount-off ones, each in id order, each on what is left of the line,
 *   rounded half-up; an amount off is per cycle and is never more than what is left, so no charge turns negative.
 * - **Exact money.** Amounts arrive as decimal text (at most 6 decimals, like every catalog amount) and are
 *   computed as whole micro-units and whole minor units of the account's currency (bigint, `shared/minor-units.ts`):
 *   exact like decimal.js and fast enough for bill runs. Lines and totals are `MinorAmount`s.
 * - **Tax** (EN 16931): each line's rate is the one valid on the last day of its service period (the day the supply
 *   is complete) for the account's tax jurisdiction (its country's when the class names no rate for the
 *   subdivision); reverse-charged accounts turn category S into AE at 0 %, and a tax-inclusive price is charged
 *   without the domestic VAT it includes. Per category and rate: tax = round(Σ nets × rate) for tax-exclusive prices (BR-CO-17), and for
 *   tax-inclusive prices tax = round(Σ gross × rate / (1 + rate)) with the nets allocated so that they add up to the
 *   gross less that tax (largest remainder: each line within a cent of its exact share). A class with no rate
 *   there is a problem, never a zero.
 */

export type { SuspensionReason };
export { SUSPENSION_REASONS };
/** EN 16931 VAT category codes. */
export type TaxCategory = VatCategory;
/** A tax class as the catalog states it: its category, its dated rates per jurisdiction, its exemption reason. */
export type TaxClassTerms = TaxClass;

export interface PriceTerms {
  priceId: string;
  name: string;
  type: "recurring" | "oneTime";
  amount: string;
  currency: string;
  taxClass: string;
  billing: "advance" | "arrears";
  taxIncluded: boolean;
  chargedWhenSuspended: readonly SuspensionReason[];
}

export interface PromotionTerms {
  id: string;
  name: string;
  percentOff?: string | undefined;
  /** Per cycle, in the account's currency. */
  amountOff?: string | undefined;
  cycles: number;
  priceIds: readonly string[];
  /** Its first cycle is the bill period holding this instant. */
  startMs: number;
}

export interface ProductInput {
  id: string;
  name: string;
  kind: "plan" | "addon";
  parentId: string | null;
  currency: string;
  /** Every status the product went through, in time order (the first is its creation). */
  history: ReadonlyArray<{ atMs: number; status: string; suspensionReason: SuspensionReason | null }>;
  /** The recurring prices in effect from each instant, in time order (a plan change adds an entry). */
  prices: ReadonlyArray<{ fromMs: number; prices: readonly PriceTerms[] }>;
  promotions: readonly PromotionTerms[];
  /** How usage and spend credits of this line are taxed (its plan's tariff; add-ons have none). */
  usageTax: { taxClass: string; taxIncluded: boolean } | null;
}

export interface OneTimeChargeInput {
  id: string;
  /** Null for a fee of the account's (a reversal fee). */
  productId: string | null;
  name: string;
  amount: string;
  currency: string;
  taxClass: string;
  taxIncluded: boolean;
  atMs: number;
}

export interface UsageInput {
  summaryId: string;
  productId: string;
  /** The bill period key the usage counts in. */
  usagePeriod: string;
  service: string;
  zone: string | null;
  quantity: number;
  chargedUnits: number;
  /** The amount of the rated rows not billed yet (fromSeq…toSeq). */
  amount: string;
  currency: string;
  fromSeq: number;
  toSeq: number;
}

export interface SpendCreditInput {
  id: string;
  productId: string;
  /** Positive: what the customer is credited. */
  amount: string;
  currency: string;
  atMs: number;
  reason: string | null;
}

/** What the receivables ledger says before this invoice (the next issue fills it; all zero is valid). */
export interface ReceivablesInput {
  previousBalance: string;
  paymentsSince: string;
  creditsSince: string;
}

/**
 * cycle: the usage period's usage and arrears charges and the next period in advance; final: the last bill of an
 * account (no advance period); interim: usage and one-time charges to date, on demand (recurring charges stay with
 * the cycle invoice).
 */
export type InvoiceKind = "cycle" | "final" | "interim";

export interface ComposeInput {
  kind: InvoiceKind;
  account: {
    id: string;
    accountType: "prepaid" | "postpaid";
    currency: string;
    cycle: BillCycle;
    taxJurisdiction: string;
    paymentTermsDays: number;
    /** A business customer in another EU country with a VAT ID: the buyer accounts for the VAT (AE). */
    reverseCharge: boolean;
  };
  usagePeriod: Period;
  advancePeriod: Period | null;
  issueMs: number;
  products: readonly ProductInput[];
  oneTimeCharges: readonly OneTimeChargeInput[];
  usage: readonly UsageInput[];
  spendCredits: readonly SpendCreditInput[];
  taxClasses: ReadonlyMap<string, TaxClassTerms>;
  receivables?: ReceivablesInput | undefined;
}

export type LineKind = "recurring" | "oneTime" | "usage" | "credit" | "unused";

/** What a line is, the same while it is composed and in the draft. */
interface LineIdentity {
  /** Stable within an account's bill: what the line is and for which period. */
  key: string;
  kind: LineKind;
  productId: string | null;
  priceId: string | null;
  name: string;
  /** The service period the line charges or credits. */
  period: { startMs: number; endMs: number } | null;
  /** Days charged of `basisDays` (recurring lines). */
  days: number | null;
  basisDays: number | null;
  /** The one-time charge a line bills (each is billed once). */
  oneTimeChargeId: string | null;
  /** The usage summary a usage line bills: its rated rows fromSeq…toSeq. */
  summary: { id: string; fromSeq: number; toSeq: number } | null;
}

export interface DraftLine extends LineIdentity {
  /** Prorated, before any promotion, as priced (including tax when `taxIncluded`). */
  amount: MinorAmount;
  discount: MinorAmount;
  promotions: Array<{ id: string; name: string; amount: MinorAmount }>;
  /** `amount − discount`, as priced. */
  charge: MinorAmount;
  taxIncluded: boolean;
  taxClass: string;
  taxCategory: TaxCategory;
  taxRate: Money;
  /** Why a line carries no tax (EN 16931 BT-120), for categories other than S and Z. */
  exemptionReason: string | null;
  /** The line's net without tax (allocated for tax-inclusive prices). */
  net: MinorAmount;
  /**
   * The line's tax, for showing it per line (TMF678 appliedTax): what a tax-inclusive charge holds beyond its net, or
   * a tax-exclusive net at its rate rounded half-up. The bill's tax is computed per rate (`taxes`), not summed from these.
   */
  lineTax: MinorAmount;
  /** Usage lines: from an earlier period than the invoice's. */
  late: boolean;
  usage: { service: string; zone: string | null; usagePeriod: string; quantity: number; chargedUnits: number } | null;
}

export interface TaxSubtotal {
  category: TaxCategory;
  rate: Money;
  taxable: MinorAmount;
  tax: MinorAmount;
  exemptionReason: string | null;
}

export interface Draft {
  accountId: string;
  kind: InvoiceKind;
  currency: string;
  usagePeriod: Period;
  advancePeriod: Period | null;
  issueDate: string;
  dueDate: string;
  /** The zone the issue and due dates are the account's local dates in. */
  timeZone: string;
  lines: DraftLine[];
  taxes: TaxSubtotal[];
  net: MinorAmount;
  tax: MinorAmount;
  gross: MinorAmount;
  previousBalance: MinorAmount;
  paymentsSince: MinorAmount;
  creditsSince: MinorAmount;
  totalDue: MinorAmount;
  reverseCharge: boolean;
  /** The highest sequence billed per usage summary (every summary read, lines or not). */
  usageMarks: Array<{ summaryId: string; toSeq: number }>;
  /** Why the bill is empty or what it leaves out, in words. */
  notes: string[];
}

export interface ComposeProblem {
  code: "currency_mismatch" | "no_tax_rate" | "unknown_tax_class";
  message: string;
}

export class ComposeError extends Error {
  override name = "ComposeError";
  constructor(readonly problems: readonly ComposeProblem[]) {
    super(problems.map((problem) => problem.message).join("; "));
  }
}

/** Prices, rates and percentages are read as whole micro-units (10^-6). */
const MICRO_SCALE = 6;
const MICRO = powerOfTen(MICRO_SCALE);

export const REVERSE_CHARGE_REASON = "Reverse charge";

export function composeInvoice(input: ComposeInput): Draft {
  const { account } = input;
  const decimals = currencyMinorUnits(account.currency);
  const problems: ComposeProblem[] = [];
  const lines: Line[] = [];
  const notes: string[] = [];
  const usageMarks: Array<{ summaryId: string; toSeq: number }> = [];
  const minor = minorReader(decimals);
  const taxOf = taxResolver(input, problems);
  const issueZone = zoneAt(account.cycle, input.issueMs);
  const issueDay = localDayNumber(input.issueMs, issueZone);

  if (account.accountType === "prepaid") {
    notes.push("A prepaid account pays its lines and usage from its balance: nothing is invoiced.");
  } else {
    const currencyProblem = (what: string, currency: string) =>
      problems.push({
        code: "currency_mismatch",
        message: `${what} is in ${currency}, the account bills in ${account.currency}`,
      });
    for (const product of input.products) {
      if (product.currency !== account.currency) {
        currencyProblem(`product ${product.id}`, product.currency);
        continue;
      }
      for (const segment of product.prices) {
        for (const price of segment.prices) {
          if (price.currency !== account.currency) currencyProblem(`price ${price.priceId}`, price.currency);
        }
      }
      if (input.kind !== "interim") recurringLines(input, product, minor, taxOf, lines);
    }
    for (const charge of input.oneTimeCharges) {
      if (charge.currency !== account.currency) {
        currencyProblem(`one-time charge ${charge.id}`, charge.currency);
        continue;
      }
      const amount = minor.of(charge.amount);
      const day = localDayNumber(charge.atMs, zoneAt(account.cycle, charge.atMs));
      const entry = line({
        key: `otc:${charge.id}`,
        kind: "oneTime",
        productId: charge.productId,
        priceId: null,
        name: charge.name,
        period: null,
        amount,
        taxIncluded: charge.taxIncluded,
        tax: taxOf(charge.taxClass, day),
      });
      entry.oneTimeChargeId = charge.id;
      lines.push(entry);
    }
    const usageTax = new Map(input.products.map((product) => [product.id, product.usageTax]));
    const currentEndDay = lastDay(input.usagePeriod, account.cycle);
    const currentPeriod = { startMs: input.usagePeriod.startMs, endMs: input.usagePeriod.endMs };
    for (const usage of [...input.usage].sort(compareUsage)) {
      usageMarks.push({ summaryId: usage.summaryId, toSeq: usage.toSeq });
      if (usage.currency !== account.currency) {
        currencyProblem(`usage summary ${usage.summaryId}`, usage.currency);
        continue;
      }
      const amount = minor.of(usage.amount);
      if (amount === 0n) continue;
      const terms = usageTax.get(usage.productId);
      if (terms === undefined || terms === null) {
        problems.push({
          code: "unknown_tax_class",
          message: `usage of product ${usage.productId} has no tariff tax class`,
        });
        continue;
      }
      const late = usage.usagePeriod !== input.usagePeriod.key;
      const endDay = late ? lastDayOfKey(usage.usagePeriod, account.cycle) : currentEndDay;
      const entry = line({
        key: `usage:${usage.summaryId}:${usage.toSeq}`,
        kind: "usage",
        productId: usage.productId,
        priceId: null,
        name: usageName(usage, late),
        period: late ? null : currentPeriod,
        amount,
        taxIncluded: terms.taxIncluded,
        tax: taxOf(terms.taxClass, endDay),
      });
      entry.late = late;
      entry.summary = { id: usage.summaryId, fromSeq: usage.fromSeq, toSeq: usage.toSeq };
      entry.usage = {
        service: usage.service,
        zone: usage.zone,
        usagePeriod: usage.usagePeriod,
        quantity: usage.quantity,
        chargedUnits: usage.chargedUnits,
      };
      lines.push(entry);
    }
    for (const credit of input.spendCredits) {
      if (credit.currency !== account.currency) {
        currencyProblem(`credit ${credit.id}`, credit.currency);
        continue;
      }
      const terms = usageTax.get(credit.productId);
      if (terms === undefined || terms === null) {
        problems.push({ code: "unknown_tax_class", message: `credit ${credit.id} names no line with a tariff` });
        continue;
      }
      const day = localDayNumber(credit.atMs, zoneAt(account.cycle, credit.atMs));
      lines.push(
        line({
          key: `credit:${credit.id}`,
          kind: "credit",
          productId: credit.productId,
          priceId: null,
          name: credit.reason === null ? "Credit" : `Credit: ${credit.reason}`,
          period: null,
          amount: -minor.of(credit.amount),
          taxIncluded: terms.taxIncluded,
          tax: taxOf(terms.taxClass, day),
        }),
      );
    }
  }
  if (problems.length > 0) throw new ComposeError(dedupe(problems));

  const taxes = taxLines(lines);
  let net = 0n;
  for (const entry of lines) net += entry.net;
  let tax = 0n;
  for (const subtotal of taxes) tax += subtotal.tax;
  const gross = net + tax;
  const receivables = input.receivables;
  const previousBalance = parseScaled(receivables?.previousBalance ?? "0", decimals);
  const paymentsSince = parseScaled(receivables?.paymentsSince ?? "0", decimals);
  const creditsSince = parseScaled(receivables?.creditsSince ?? "0", decimals);
  const amount = (units: bigint) => new MinorAmount(units, decimals);
  if (lines.length === 0 && account.accountType === "postpaid") notes.push("Nothing to bill for this period.");
  return {
    accountId: account.id,
    kind: input.kind,
    currency: account.currency,
    usagePeriod: input.usagePeriod,
    advancePeriod: input.advancePeriod,
    issueDate: formatLocalDate(dateOfDayNumber(issueDay)),
    timeZone: issueZone,
    dueDate: formatLocalDate(dateOfDayNumber(issueDay + account.paymentTermsDays)),
    lines: lines.map((entry) => draftLine(entry, decimals)),
    taxes: taxes.map((subtotal) => ({
      category: subtotal.category,
      rate: subtotal.rate,
      taxable: amount(subtotal.taxable),
      tax: amount(subtotal.tax),
      exemptionReason: subtotal.exemptionReason,
    })),
    net: amount(net),
    tax: amount(tax),
    gross: amount(gross),
    previousBalance: amount(previousBalance),
    paymentsSince: amount(paymentsSince),
    creditsSince: amount(creditsSince),
    totalDue: amount(previousBalance - paymentsSince - creditsSince + gross),
    reverseCharge: account.reverseCharge,
    usageMarks,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Recurring charges

interface ResolvedTax {
  taxClass: string;
  category: TaxCategory;
  rate: Money;
  /** The rate in micro-units (0.19 → 190,000). */
  micro: bigint;
  exemptionReason: string | null;
  /** Reverse charge: the domestic rate a tax-inclusive price includes, taken out of it (micro-units), else 0. */
  domesticMicro: bigint;
}

type TaxOf = (taxClass: string, day: number) => ResolvedTax;

/** One state of a product over days of a period: billable or not, and with which prices. */
interface Piece {
  fromDay: number;
  toDay: number;
  status: string;
  suspensionReason: SuspensionReason | null;
  prices: readonly PriceTerms[];
}

function recurringLines(input: ComposeInput, product: ProductInput, minor: MinorReader, taxOf: TaxOf, out: Line[]) {
  const cycle = input.account.cycle;
  const period = input.usagePeriod;
  const pieces = piecesOf(product, period, cycle);
  const { days: periodDays, basisDays } = daysOf(period, cycle);
  const endDay = lastDay(period, cycle);
  // What the invoice at the period's start charged in advance (a final bill settles against it as a cycle one does).
  const chargedAtStart = stateAt(product, period.startMs);
  const priceIds = new Set<string>();
  for (const segment of product.prices) for (const price of segment.prices) priceIds.add(price.priceId);

  for (const priceId of priceIds) {
    // The price's amount in each piece where it is in effect (a plan change may change it within a period).
    const terms = pieces.map((piece) => piece.prices.find((price) => price.priceId === priceId) ?? null);
    // A price in effect at the period's start but replaced on its first day is in no piece, yet was charged.
    const atStart = chargedAtStart?.prices.find((price) => price.priceId === priceId);
    const sample = terms.find((entry) => entry !== null) ?? atStart ?? null;
    if (sample === null || sample.type !== "recurring") continue;
    const advance = sample.billing === "advance";
    const charged = advance ? atStart : undefined;
    const chargedBillable = charged !== undefined && chargedAtStart !== null && billable(chargedAtStart, charged);
    const tax = taxOf(sample.taxClass, endDay);
    if (chargedBillable && charged !== undefined) {
      // Charged whole at the period's start: credit what was charged for the days it was not billable at that price.
      const advanced = advanceCharge(product, charged, period, cycle, minor);
      const net = advanced.amount - advanced.discount.total;
      const shares = shareOf(net, 1n, pieces, periodDays, net);
      let credit = 0n;
      let creditDays = 0;
      pieces.forEach((piece, index) => {
        const same = terms[index];
        if (same === null || same === undefined || same.amount !== charged.amount || !billable(piece, same)) {
          credit += shares[index] as bigint;
          creditDays += piece.toDay - piece.fromDay;
        }
      });
      if (creditDays > 0 && credit !== 0n) {
        out.push(
          line({
            key: `unused:${product.id}:${priceId}:${period.key}`,
            kind: "unused",
            productId: product.id,
            priceId,
            name: `${charged.name}: unused ${creditDays} of ${periodDays} days`,
            period: { startMs: period.startMs, endMs: period.endMs },
            days: creditDays,
            basisDays,
            amount: -credit,
            taxIncluded: charged.taxIncluded,
            tax,
          }),
        );
      }
      // A price that began inside the period, or changed its amount, is charged below for its own pieces.
    }
    // Charged for its billable pieces: arrears prices, and advance prices the period's start did not charge.
    const chargedAmount = chargedBillable ? charged?.amount : undefined;
    const byAmount = new Map<string, PriceTerms>();
    terms.forEach((entry, index) => {
      if (entry === null || entry === undefined || !billable(pieces[index] as Piece, entry)) return;
      if (advance && entry.amount === chargedAmount) return;
      byAmount.set(entry.amount, entry);
    });
    for (const [amountText, price] of byAmount) {
      const micro = minor.micro(amountText);
      const shares = shareOf(
        micro,
        minor.microPerMinor,
        pieces,
        basisDays,
        periodShare(micro, periodDays, basisDays, minor),
      );
      let amount = 0n;
      let days = 0;
      pieces.forEach((piece, index) => {
        const entry = terms[index];
        if (entry === null || entry === undefined || entry.amount !== amountText || !billable(piece, entry)) return;
        amount += shares[index] as bigint;
        days += piece.toDay - piece.fromDay;
      });
      if (days === 0) continue;
      const discount = promotionDiscount(product, price, amount, period, cycle, minor);
      out.push(
        line({
          key: `recurring:${product.id}:${priceId}:${period.key}:${amountText}`,
          kind: "recurring",
          productId: product.id,
          priceId,
          name: days === basisDays ? price.name : `${price.name}: ${days} of ${basisDays} days`,
          period: { startMs: period.startMs, endMs: period.endMs },
          days,
          basisDays,
          amount,
          discount,
          taxIncluded: price.taxIncluded,
          tax,
        }),
      );
    }
  }

  // The next period in advance, at the prices and state the product has when the invoice is made.
  const next = input.advancePeriod;
  if (next === null) return;
  const state = stateAt(product, next.startMs);
  if (state === null) return;
  for (const price of state.prices) {
    if (price.type !== "recurring" || price.billing !== "advance" || !billable(state, price)) continue;
    const charge = advanceCharge(product, price, next, cycle, minor);
    out.push(
      line({
        key: `recurring:${product.id}:${price.priceId}:${next.key}:${price.amount}`,
        kind: "recurring",
        productId: product.id,
        priceId: price.priceId,
        name:
          charge.days === charge.basisDays ? price.name : `${price.name}: ${charge.days} of ${charge.basisDays} days`,
        period: { startMs: next.startMs, endMs: next.endMs },
        days: charge.days,
        basisDays: charge.basisDays,
        amount: charge.amount,
        discount: charge.discount,
        taxIncluded: price.taxIncluded,
        tax: taxOf(price.taxClass, lastDay(next, cycle)),
      }),
    );
  }
}

/**
 * What an advance price charges for a whole period at its start: the price (a transition period's share of it,
 * rounded once) less the promotions of that cycle.
 */
function advanceCharge(product: ProductInput, price: PriceTerms, period: Period, cycle: BillCycle, minor: MinorReader) {
  const { days, basisDays } = daysOf(period, cycle);
  const amount = periodShare(minor.micro(price.amount), days, basisDays, minor);
  return { amount, days, basisDays, discount: promotionDiscount(product, price, amount, period, cycle, minor) };
}

/** A period's local days, and those of the period its charges are prorated against (a transition period's basis). */
function daysOf(period: Period, cycle: BillCycle): { days: number; basisDays: number } {
  const basis = prorationBasis(period, cycle);
  const zone = zoneAt(cycle, period.startMs);
  return {
    days: localDayNumber(period.endMs, zone) - localDayNumber(period.startMs, zone),
    basisDays: localDayNumber(basis.endMs, zone) - localDayNumber(basis.startMs, zone),
  };
}

/** Whether a state is charged for a price: active, or suspended for a reason the price still charges. */
function billable(state: Pick<Piece, "status" | "suspensionReason">, price: PriceTerms): boolean {
  if (state.status === "active" || state.status === "pendingTerminate") return true;
  return (
    state.status === "suspended" &&
    state.suspensionReason !== null &&
    price.chargedWhenSuspended.includes(state.suspensionReason)
  );
}

/** The product's status and prices at an instant, or null before it exists. */
function stateAt(product: ProductInput, atMs: number): Piece | null {
  let status: { status: string; suspensionReason: SuspensionReason | null } | null = null;
  for (const entry of product.history) {
    if (entry.atMs > atMs) break;
    status = entry;
  }
  if (status === null) return null;
  return {
    fromDay: 0,
    toDay: 0,
    status: status.status,
    suspensionReason: status.suspensionReason,
    prices: pricesAt(product, atMs),
  };
}

function pricesAt(product: ProductInput, atMs: number): readonly PriceTerms[] {
  let prices: readonly PriceTerms[] = product.prices[0]?.prices ?? [];
  for (const segment of product.prices) {
    if (segment.fromMs > atMs) break;
    prices = segment.prices;
  }
  return prices;
}

/**
 * The period's days cut where the product's status or prices change: a day belongs to the state at its end (the
 * last change made on it), so pieces start on change days. Days before the product existed have no status.
 */
function piecesOf(product: ProductInput, period: Period, cycle: BillCycle): Piece[] {
  const zone = zoneAt(cycle, period.startMs);
  const first = localDayNumber(period.startMs, zone);
  const last = localDayNumber(period.endMs, zone);
  let changesInside = false;
  for (const entry of product.history) if (entry.atMs >= period.startMs) changesInside = true;
  for (const segment of product.prices) if (segment.fromMs >= period.startMs) changesInside = true;
  if (!changesInside) {
    // Nothing changed since the period began (most products): one piece in the state it began with.
    const state = stateAt(product, period.startMs);
    return [
      {
        fromDay: first,
        toDay: last,
        status: state?.status ?? "none",
        suspensionReason: state?.suspensionReason ?? null,
        prices: state?.prices ?? pricesAt(product, period.startMs),
      },
    ];
  }
  const days = new Set<number>([first]);
  const add = (atMs: number) => {
    const day = localDayNumber(atMs, zone);
    if (day > first && day < last) days.add(day);
  };
  for (const entry of product.history) add(entry.atMs);
  for (const segment of product.prices) add(segment.fromMs);
  const starts = [...days].sort((a, b) => a - b);
  return starts.map((fromDay, index) => {
    const endOfDay = localMidnightUtc(zone, dateOfDayNumber(fromDay + 1)) - 1;
    const state = stateAt(product, endOfDay);
    return {
      fromDay,
      toDay: starts[index + 1] ?? last,
      status: state?.status ?? "none",
      suspensionReason: state?.suspensionReason ?? null,
      prices: state?.prices ?? pricesAt(product, endOfDay),
    };
  });
}

/**
 * An amount's pieces over a period's pieces with the remainder rule, in minor units. `total / divisor` is the price
 * (micro-units over micro-units per minor unit, or minor units over 1); a piece of `d` days is `price × d / basisDays`
 * rounded half-up, never more than is left of `whole` (the period's share of the price, rounded once), and the last
 * piece takes the remainder: the pieces add up to `whole` exactly and none is negative.
 */
function shareOf(
  total: bigint,
  divisor: bigint,
  pieces: ReadonlyArray<Pick<Piece, "fromDay" | "toDay">>,
  basisDays: number,
  whole: bigint,
): bigint[] {
  const denominator = BigInt(basisDays) * divisor;
  const shares: bigint[] = [];
  let assigned = 0n;
  const last = pieces.length - 1;
  for (let index = 0; index <= last; index++) {
    const piece = pieces[index] as Pick<Piece, "fromDay" | "toDay">;
    let share = whole - assigned;
    if (index < last) {
      const rounded = divideHalfUp(total * BigInt(piece.toDay - piece.fromDay), denominator);
      if (rounded < share) share = rounded;
    }
    assigned += share;
    shares.push(share);
  }
  return shares;
}

/** A period's share of a price in minor units: the whole price, or a transition period's days of its basis. */
function periodShare(micro: bigint, days: number, basisDays: number, minor: MinorReader): bigint {
  return days >= basisDays
    ? divideHalfUp(micro, minor.microPerMinor)
    : divideHalfUp(micro * BigInt(days), BigInt(basisDays) * minor.microPerMinor);
}

/** The discounts of the promotions covering a price in a period, in the documented order, in minor units. */
function promotionDiscount(
  product: ProductInput,
  price: PriceTerms,
  amount: bigint,
  period: Period,
  cycle: BillCycle,
  minor: MinorReader,
): Discount {
  if (product.promotions.length === 0 || amount <= 0n) return NO_DISCOUNT;
  const applying = product.promotions
    .filter((promotion) => promotion.priceIds.includes(price.priceId) && covers(promotion, period, cycle))
    .sort(
      (a, b) =>
        Number(a.percentOff === undefined) - Number(b.percentOff === undefined) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  let left = amount;
  const applied: Array<{ id: string; name: string; amount: bigint }> = [];
  for (const promotion of applying) {
    if (left <= 0n) break;
    const off =
      promotion.percentOff !== undefined
        ? divideHalfUp(left * minor.micro(promotion.percentOff), 100n * MICRO)
        : minor.of(promotion.amountOff ?? "0");
    const taken = off < left ? off : left;
    if (taken <= 0n) continue;
    left -= taken;
    applied.push({ id: promotion.id, name: promotion.name, amount: taken });
  }
  return { total: amount - left, applied };
}

/** Whether a period is one of a promotion's cycles (cycle 1 holds its start). */
function covers(promotion: PromotionTerms, period: Period, cycle: BillCycle): boolean {
  if (period.endMs <= promotion.startMs) return false;
  if (cycle.previous === undefined || cycle.previous === null) {
    // One cycle day and zone throughout: one period starts in each month, so cycles count in months of the keys.
    const start = localDate(new Date(promotion.startMs), cycle.timeZone);
    const firstMonth =
      start.year * 12 +
      start.month -
      (start.day >= billingDayOfMonth(cycle.billCycleDay, start.year, start.month) ? 1 : 2);
    const index = Number(period.key.slice(0, 4)) * 12 + Number(period.key.slice(5, 7)) - 1 - firstMonth + 1;
    return index >= 1 && index <= promotion.cycles;
  }
  let current = cyclePeriod(promotion.startMs, cycle);
  for (let index = 1; index <= promotion.cycles; index++) {
    if (current.startMs === period.startMs || (current.startMs < period.endMs && period.startMs < current.endMs)) {
      return true;
    }
    if (current.startMs >= period.endMs) return false;
    current = cyclePeriod(current.endMs, cycle);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Lines and tax

interface Discount {
  total: bigint;
  applied: ReadonlyArray<{ id: string; name: string; amount: bigint }>;
}

const NO_DISCOUNT: Discount = { total: 0n, applied: [] };

/** A line while it is composed: amounts in minor units. */
interface Line extends LineIdentity {
  amount: bigint;
  discount: Discount;
  charge: bigint;
  /** Set by the tax summary: the charge for tax-exclusive lines, the allocated net for tax-inclusive ones. */
  net: bigint;
  taxIncluded: boolean;
  tax: ResolvedTax;
  late: boolean;
  usage: DraftLine["usage"];
}

/** Reads decimal text as micro-units and as the currency's minor units (rounded half-up once). */
interface MinorReader {
  decimals: number;
  microPerMinor: bigint;
  micro(text: string): bigint;
  of(text: string): bigint;
}

function minorReader(decimals: number): MinorReader {
  const microPerMinor = powerOfTen(MICRO_SCALE - decimals);
  return {
    decimals,
    microPerMinor,
    micro: (text) => parseScaled(text, MICRO_SCALE),
    of: (text) => divideHalfUp(parseScaled(text, MICRO_SCALE), microPerMinor),
  };
}

function line(fields: {
  key: string;
  kind: LineKind;
  productId: string | null;
  priceId: string | null;
  name: string;
  period: { startMs: number; endMs: number } | null;
  days?: number;
  basisDays?: number;
  amount: bigint;
  discount?: Discount;
  taxIncluded: boolean;
  tax: ResolvedTax;
}): Line {
  let discount = fields.discount ?? NO_DISCOUNT;
  let amount = fields.amount;
  let taxIncluded = fields.taxIncluded;
  if (taxIncluded && fields.tax.domesticMicro > 0n) {
    // Reverse charge: the buyer accounts for the VAT, so a price that includes the domestic VAT is charged without
    // it (amount and discount each divided by 1 + rate, rounded half-up), as a tax-exclusive line.
    const onePlus = MICRO + fields.tax.domesticMicro;
    const net = (value: bigint) => divideHalfUp(value * MICRO, onePlus);
    amount = net(amount);
    discount = {
      total: net(discount.total),
      applied: discount.applied.map((applied) => ({ ...applied, amount: net(applied.amount) })),
    };
    taxIncluded = false;
  }
  return {
    key: fields.key,
    kind: fields.kind,
    productId: fields.productId,
    priceId: fields.priceId,
    name: fields.name,
    period: fields.period,
    days: fields.days ?? null,
    basisDays: fields.basisDays ?? null,
    oneTimeChargeId: null,
    summary: null,
    amount,
    discount,
    charge: amount - discount.total,
    net: amount - discount.total,
    taxIncluded,
    tax: fields.tax,
    late: false,
    usage: null,
  };
}

function draftLine(entry: Line, decimals: number): DraftLine {
  return {
    key: entry.key,
    oneTimeChargeId: entry.oneTimeChargeId,
    summary: entry.summary,
    kind: entry.kind,
    productId: entry.productId,
    priceId: entry.priceId,
    name: entry.name,
    period: entry.period,
    days: entry.days,
    basisDays: entry.basisDays,
    amount: new MinorAmount(entry.amount, decimals),
    discount: new MinorAmount(entry.discount.total, decimals),
    promotions:
      entry.discount.applied.length === 0
        ? []
        : entry.discount.applied.map((applied) => ({
            id: applied.id,
            name: applied.name,
            amount: new MinorAmount(applied.amount, decimals),
          })),
    charge: new MinorAmount(entry.charge, decimals),
    taxIncluded: entry.taxIncluded,
    taxClass: entry.tax.taxClass,
    taxCategory: entry.tax.category,
    taxRate: entry.tax.rate,
    exemptionReason: entry.tax.exemptionReason,
    net: new MinorAmount(entry.net, decimals),
    lineTax: new MinorAmount(
      entry.taxIncluded ? entry.charge - entry.net : divideHalfUp(entry.net * entry.tax.micro, MICRO),
      decimals,
    ),
    late: entry.late,
    usage: entry.usage,
  };
}

const ZERO_RATE = { rate: new Money(0), micro: 0n };

function taxResolver(input: ComposeInput, problems: ComposeProblem[]): TaxOf {
  const jurisdiction = input.account.taxJurisdiction;
  const cache = new Map<string, ResolvedTax>();
  return (taxClass, day) => {
    const cacheKey = `${taxClass}|${day}`;
    const cached = cache.get(cacheKey);
    if (cached !== undefined) return cached;
    const terms = input.taxClasses.get(taxClass);
    const date = formatLocalDate(dateOfDayNumber(day));
    let resolved: ResolvedTax;
    if (terms === undefined) {
      problems.push({ code: "unknown_tax_class", message: `tax class ${taxClass} is not in the catalog` });
      resolved = { taxClass, category: "S", ...ZERO_RATE, exemptionReason: null, domesticMicro: 0n };
    } else {
      const rate = taxRateAt(terms, jurisdiction, date);
      if (rate === undefined) {
        problems.push({
          code: "no_tax_rate",
          message: `tax class ${taxClass} has no rate for ${jurisdiction} on ${date}`,
        });
        resolved = { taxClass, category: terms.category, ...ZERO_RATE, exemptionReason: null, domesticMicro: 0n };
      } else {
        const category = rate.category;
        resolved =
          input.account.reverseCharge && category === "S"
            ? {
                taxClass,
                category: "AE",
                ...ZERO_RATE,
                exemptionReason: REVERSE_CHARGE_REASON,
                domesticMicro: parseScaled(rate.rate, MICRO_SCALE),
              }
            : {
                taxClass,
                category,
                rate: new Money(rate.rate),
                micro: parseScaled(rate.rate, MICRO_SCALE),
                exemptionReason: category === "S" || category === "Z" ? null : (rate.exemptionReason ?? null),
                domesticMicro: 0n,
              };
      }
    }
    cache.set(cacheKey, resolved);
    return resolved;
  };
}

/**
 * The tax summary per category and rate, and every line's net: tax-exclusive lines are their own nets; the
 * tax-inclusive ones of a rate share the tax of their summed gross and their nets are allocated to add up.
 */
function taxLines(
  lines: readonly Line[],
): Array<{ category: TaxCategory; rate: Money; taxable: bigint; tax: bigint; exemptionReason: string | null }> {
  const groups = new Map<string, { tax: ResolvedTax; lines: Line[] }>();
  for (const entry of lines) {
    const key = `${entry.tax.category}|${entry.tax.micro}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = { tax: entry.tax, lines: [] };
      groups.set(key, group);
    }
    group.lines.push(entry);
  }
  const taxes: Array<{
    category: TaxCategory;
    rate: Money;
    taxable: bigint;
    tax: bigint;
    exemptionReason: string | null;
  }> = [];
  for (const { tax: terms, lines: members } of groups.values()) {
    let exclusiveNet = 0n;
    let gross = 0n;
    const inclusive: Line[] = [];
    for (const entry of members) {
      if (entry.taxIncluded) {
        gross += entry.charge;
        inclusive.push(entry);
      } else {
        exclusiveNet += entry.charge;
        entry.net = entry.charge;
      }
    }
    let tax = divideHalfUp(exclusiveNet * terms.micro, MICRO);
    let taxable = exclusiveNet;
    if (inclusive.length > 0) {
      const onePlus = MICRO + terms.micro;
      const inclusiveTax = divideHalfUp(gross * terms.micro, onePlus);
      const inclusiveNets = gross - inclusiveTax;
      // Largest remainder: each line's net is its exact share gross / (1 + rate) rounded down, and the cents still
      // missing to reach the rate's nets go one each to the lines with the largest remainders, so every line's net
      // is within a cent of its exact share and the nets add up.
      const remainders: Array<{ entry: Line; remainder: bigint }> = [];
      let allocated = 0n;
      for (const entry of inclusive) {
        const scaled = entry.charge * MICRO;
        let floor = scaled / onePlus;
        if (scaled < 0n && floor * onePlus !== scaled) floor -= 1n;
        entry.net = floor;
        allocated += floor;
        remainders.push({ entry, remainder: scaled - floor * onePlus });
      }
      remainders.sort((a, b) => (b.remainder > a.remainder ? 1 : b.remainder < a.remainder ? -1 : 0));
      const missing = inclusiveNets - allocated;
      const step = missing >= 0n ? 1n : -1n;
      // Cents to add go to the largest remainders; cents to take back (never expected) come from the smallest.
      const order = missing >= 0n ? remainders : [...remainders].reverse();
      for (let left = missing, index = 0; left !== 0n; left -= step, index++) {
        (order[index % order.length] as { entry: Line }).entry.net += step;
      }
      tax += inclusiveTax;
      taxable += inclusiveNets;
    }
    const reason = members.find((entry) => entry.tax.exemptionReason !== null)?.tax.exemptionReason ?? null;
    taxes.push({ category: terms.category, rate: terms.rate, taxable, tax, exemptionReason: reason });
  }
  taxes.sort((a, b) => (a.category < b.category ? -1 : a.category > b.category ? 1 : a.rate.cmp(b.rate)));
  return taxes;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

function zoneAt(cycle: BillCycle, atMs: number): string {
  const previous = cycle.previous;
  return previous !== undefined && previous !== null && atMs < previous.untilMs ? previous.timeZone : cycle.timeZone;
}

/** The local day number of a period's last day (the day its supply is complete). */
function lastDay(period: Period, cycle: BillCycle): number {
  return localDayNumber(period.endMs - 1, zoneAt(cycle, period.endMs - 1));
}

/** The last day of the period a key names ("YYYY-MM-DD", its start). */
function lastDayOfKey(key: string, cycle: BillCycle): number {
  const [year, month, day] = key.split("-").map(Number);
  const date = { year: year ?? 1970, month: month ?? 1, day: day ?? 1 };
  const start = localMidnightUtc(zoneAt(cycle, localMidnightUtc(cycle.timeZone, date)), date);
  return lastDay(cyclePeriod(start, cycle), cycle);
}

const SERVICE_NAMES: Record<string, string> = { voice: "Calls", sms: "Messages", data: "Data" };

function usageName(usage: UsageInput, late: boolean): string {
  const service = SERVICE_NAMES[usage.service] ?? usage.service;
  const name = usage.zone === null ? service : `${service}, ${usage.zone}`;
  return late ? `${name} (late, period from ${usage.usagePeriod})` : name;
}

function compareUsage(a: UsageInput, b: UsageInput): number {
  return (
    compareText(a.usagePeriod, b.usagePeriod) ||
    compareText(a.productId, b.productId) ||
    compareText(a.service, b.service) ||
    compareText(a.zone ?? "", b.zone ?? "")
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function dedupe(problems: readonly ComposeProblem[]): ComposeProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    if (seen.has(problem.message)) return false;
    seen.add(problem.message);
    return true;
  });
}
