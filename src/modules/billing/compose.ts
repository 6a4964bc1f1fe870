import {
  type BillCycle,
  cyclePeriod,
  dateOfDayNumber,
  formatLocalDate,
  localDayNumber,
  localMidnightUtc,
  type Period,
  prorationBasis,
} from "../../shared/calendar.js";
import { currencyMinorUnits } from "../../shared/currency.js";
import { Money, RoundingMode } from "../../shared/money.js";

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
 *   the new cycle's full period that ends with it), rounded half-up to the currency's minor unit, and the last piece
 *   of the period takes the remainder, so the pieces of a whole period add up to its price exactly. A day belongs to
 *   the state the product is in at the end of it: activation counts its day, termination does not.
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
 * - **Tax** (EN 16931): each line's rate is the one valid on the last day of its service period (the day the supply
 *   is complete) for the account's tax jurisdiction, else its country; reverse-charged accounts turn category S
 *   into AE at 0 %. Per category and rate: tax = round(Σ nets × rate) for tax-exclusive prices (BR-CO-17), and for
 *   tax-inclusive prices tax = round(Σ gross × rate / (1 + rate)) with the nets allocated so that they add up to the
 *   gross less that tax (the last line takes the remainder). A class with no rate there is a problem, never a zero.
 */

export const SUSPENSION_REASONS = ["customerRequest", "dunning", "nonRenewal", "fraud"] as const;
export type SuspensionReason = (typeof SUSPENSION_REASONS)[number];
export const TAX_CATEGORIES = ["S", "Z", "E", "O", "AE"] as const;
export type TaxCategory = (typeof TAX_CATEGORIES)[number];

export interface TaxRateTerms {
  jurisdiction: string;
  /** A fraction: "0.19". */
  rate: string;
  /** "YYYY-MM-DD"; omitted, since always. */
  validFrom?: string | undefined;
  category?: TaxCategory | undefined;
}

export interface TaxClassTerms {
  id: string;
  name: string;
  category: TaxCategory;
  exemptionReason?: string | undefined;
  rates: readonly TaxRateTerms[];
}

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
  productId: string;
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

export interface ComposeInput {
  kind: "cycle" | "final";
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

export interface DraftLine {
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
  /** Prorated, before any promotion, as priced (including tax when `taxIncluded`). */
  amount: Money;
  discount: Money;
  promotions: Array<{ id: string; name: string; amount: Money }>;
  /** `amount − discount`, as priced. */
  charge: Money;
  taxIncluded: boolean;
  taxClass: string;
  taxCategory: TaxCategory;
  taxRate: Money;
  /** Why a line carries no tax (EN 16931 BT-120), for categories other than S and Z. */
  exemptionReason: string | null;
  /** The line's net without tax (allocated for tax-inclusive prices). */
  net: Money;
  /** Usage lines: from an earlier period than the invoice's. */
  late: boolean;
  usage: { service: string; zone: string | null; usagePeriod: string; quantity: number; chargedUnits: number } | null;
}

export interface TaxSubtotal {
  category: TaxCategory;
  rate: Money;
  taxable: Money;
  tax: Money;
  exemptionReason: string | null;
}

export interface Draft {
  accountId: string;
  kind: "cycle" | "final";
  currency: string;
  usagePeriod: Period;
  advancePeriod: Period | null;
  issueDate: string;
  dueDate: string;
  lines: DraftLine[];
  taxes: TaxSubtotal[];
  net: Money;
  tax: Money;
  gross: Money;
  previousBalance: Money;
  paymentsSince: Money;
  creditsSince: Money;
  totalDue: Money;
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

const ZERO = new Money(0);
const HALF_UP = RoundingMode.halfUp;

export const REVERSE_CHARGE_REASON = "Reverse charge";

export function composeInvoice(input: ComposeInput): Draft {
  const { account } = input;
  const decimals = currencyMinorUnits(account.currency);
  const problems: ComposeProblem[] = [];
  const lines: DraftLine[] = [];
  const notes: string[] = [];
  const usageMarks: Array<{ summaryId: string; toSeq: number }> = [];
  const round = (amount: Money) => amount.toDecimalPlaces(decimals, HALF_UP);
  const taxOf = taxResolver(input, problems);
  const issueDay = localDayNumber(input.issueMs, zoneAt(account.cycle, input.issueMs));

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
      recurringLines(input, product, decimals, taxOf, lines);
    }
    for (const charge of input.oneTimeCharges) {
      if (charge.currency !== account.currency) {
        currencyProblem(`one-time charge ${charge.id}`, charge.currency);
        continue;
      }
      const amount = round(new Money(charge.amount));
      const day = localDayNumber(charge.atMs, zoneAt(account.cycle, charge.atMs));
      lines.push(
        line({
          key: `otc:${charge.id}`,
          kind: "oneTime",
          productId: charge.productId,
          priceId: null,
          name: charge.name,
          period: null,
          amount,
          taxIncluded: charge.taxIncluded,
          tax: taxOf(charge.taxClass, day),
        }),
      );
    }
    const usageTax = new Map(input.products.map((product) => [product.id, product.usageTax]));
    for (const usage of [...input.usage].sort(compareUsage)) {
      usageMarks.push({ summaryId: usage.summaryId, toSeq: usage.toSeq });
      if (usage.currency !== account.currency) {
        currencyProblem(`usage summary ${usage.summaryId}`, usage.currency);
        continue;
      }
      const amount = round(new Money(usage.amount));
      if (amount.isZero()) continue;
      const terms = usageTax.get(usage.productId);
      if (terms === undefined || terms === null) {
        problems.push({
          code: "unknown_tax_class",
          message: `usage of product ${usage.productId} has no tariff tax class`,
        });
        continue;
      }
      const late = usage.usagePeriod !== input.usagePeriod.key;
      const endDay = late ? lastDayOfKey(usage.usagePeriod, account.cycle) : lastDay(input.usagePeriod, account.cycle);
      lines.push({
        ...line({
          key: `usage:${usage.summaryId}:${usage.toSeq}`,
          kind: "usage",
          productId: usage.productId,
          priceId: null,
          name: usageName(usage, late),
          period: late ? null : { startMs: input.usagePeriod.startMs, endMs: input.usagePeriod.endMs },
          amount,
          taxIncluded: terms.taxIncluded,
          tax: taxOf(terms.taxClass, endDay),
        }),
        late,
        usage: {
          service: usage.service,
          zone: usage.zone,
          usagePeriod: usage.usagePeriod,
          quantity: usage.quantity,
          chargedUnits: usage.chargedUnits,
        },
      });
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
          amount: round(new Money(credit.amount)).negated(),
          taxIncluded: terms.taxIncluded,
          tax: taxOf(terms.taxClass, day),
        }),
      );
    }
  }
  if (problems.length > 0) throw new ComposeError(dedupe(problems));

  const taxes = taxLines(lines, decimals);
  const net = lines.reduce((sum, entry) => sum.plus(entry.net), ZERO);
  const tax = taxes.reduce((sum, entry) => sum.plus(entry.tax), ZERO);
  const gross = net.plus(tax);
  const receivables = input.receivables;
  const previousBalance = new Money(receivables?.previousBalance ?? 0);
  const paymentsSince = new Money(receivables?.paymentsSince ?? 0);
  const creditsSince = new Money(receivables?.creditsSince ?? 0);
  if (lines.length === 0 && account.accountType === "postpaid") notes.push("Nothing to bill for this period.");
  return {
    accountId: account.id,
    kind: input.kind,
    currency: account.currency,
    usagePeriod: input.usagePeriod,
    advancePeriod: input.advancePeriod,
    issueDate: formatLocalDate(dateOfDayNumber(issueDay)),
    dueDate: formatLocalDate(dateOfDayNumber(issueDay + account.paymentTermsDays)),
    lines,
    taxes,
    net,
    tax,
    gross,
    previousBalance,
    paymentsSince,
    creditsSince,
    totalDue: previousBalance.minus(paymentsSince).minus(creditsSince).plus(gross),
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
  exemptionReason: string | null;
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

function recurringLines(input: ComposeInput, product: ProductInput, decimals: number, taxOf: TaxOf, out: DraftLine[]) {
  const cycle = input.account.cycle;
  const period = input.usagePeriod;
  const pieces = piecesOf(product, period, cycle);
  const basis = prorationBasis(period, cycle);
  const zone = zoneAt(cycle, period.startMs);
  const basisDays = localDayNumber(basis.endMs, zone) - localDayNumber(basis.startMs, zone);
  const leadDays = localDayNumber(period.startMs, zone) - localDayNumber(basis.startMs, zone);
  const periodDays = basisDays - leadDays;
  const endDay = lastDay(period, cycle);
  // What the invoice at the period's start charged in advance (a final bill settles against it as a cycle one does).
  const chargedAtStart = stateAt(product, period.startMs);
  const priceIds = new Set(product.prices.flatMap((segment) => segment.prices.map((price) => price.priceId)));

  for (const priceId of priceIds) {
    // The price's amount in each piece where it is in effect (a plan change may change it within a period).
    const terms = pieces.map((piece) => piece.prices.find((price) => price.priceId === priceId) ?? null);
    const sample = terms.find((entry) => entry !== null) ?? null;
    if (sample === null || sample.type !== "recurring") continue;
    const advance = sample.billing === "advance";
    const charged = advance ? chargedAtStart?.prices.find((price) => price.priceId === priceId) : undefined;
    const chargedBillable = charged !== undefined && chargedAtStart !== null && billable(chargedAtStart, charged);
    const tax = taxOf(sample.taxClass, endDay);
    if (chargedBillable && charged !== undefined) {
      // Charged whole at the period's start: credit what was charged for the days it was not billable at that price.
      const advanced = advanceCharge(product, charged, period, cycle, decimals);
      const shares = shareOf(advanced.amount.minus(advanced.discount.total), pieces, 0, periodDays, decimals);
      let credit = ZERO;
      let creditDays = 0;
      pieces.forEach((piece, index) => {
        const same = terms[index];
        if (same === null || same === undefined || same.amount !== charged.amount || !billable(piece, same)) {
          credit = credit.plus(shares[index] as Money);
          creditDays += piece.toDay - piece.fromDay;
        }
      });
      if (creditDays > 0 && !credit.isZero()) {
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
            amount: credit.negated(),
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
      const shares = shareOf(new Money(amountText), pieces, leadDays, basisDays, decimals);
      let amount = ZERO;
      let days = 0;
      pieces.forEach((piece, index) => {
        const entry = terms[index];
        if (entry === null || entry === undefined || entry.amount !== amountText || !billable(piece, entry)) return;
        amount = amount.plus(shares[index] as Money);
        days += piece.toDay - piece.fromDay;
      });
      if (days === 0) continue;
      const discount = promotionDiscount(product, price, amount, period, cycle, decimals);
      out.push(
        line({
          key: `recurring:${product.id}:${priceId}:${period.key}:${amountText}`,
          kind: "recurring",
          productId: product.id,
          priceId,
          name: days === periodDays && leadDays === 0 ? price.name : `${price.name}: ${days} of ${basisDays} days`,
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
    const charge = advanceCharge(product, price, next, cycle, decimals);
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
function advanceCharge(product: ProductInput, price: PriceTerms, period: Period, cycle: BillCycle, decimals: number) {
  const basis = prorationBasis(period, cycle);
  const zone = zoneAt(cycle, period.startMs);
  const basisDays = localDayNumber(basis.endMs, zone) - localDayNumber(basis.startMs, zone);
  const days = localDayNumber(period.endMs, zone) - localDayNumber(period.startMs, zone);
  const whole = new Money(price.amount);
  const amount = days >= basisDays ? whole : whole.times(days).dividedBy(basisDays).toDecimalPlaces(decimals, HALF_UP);
  return { amount, days, basisDays, discount: promotionDiscount(product, price, amount, period, cycle, decimals) };
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
 * An amount's pieces over a period's pieces with the remainder rule: `lead` days of the basis lie before the
 * period (a transition period's basis), every piece is `amount × days / basisDays` rounded half-up, and the last
 * piece of the basis takes the remainder. Only the period's pieces are returned.
 */
function shareOf(
  amount: Money,
  pieces: ReadonlyArray<Pick<Piece, "fromDay" | "toDay">>,
  leadDays: number,
  basisDays: number,
  decimals: number,
): Money[] {
  const shares: Money[] = [];
  let assigned = leadDays > 0 ? amount.times(leadDays).dividedBy(basisDays).toDecimalPlaces(decimals, HALF_UP) : ZERO;
  pieces.forEach((piece, index) => {
    const days = piece.toDay - piece.fromDay;
    const share =
      index === pieces.length - 1
        ? amount.minus(assigned)
        : amount.times(days).dividedBy(basisDays).toDecimalPlaces(decimals, HALF_UP);
    assigned = assigned.plus(share);
    shares.push(share);
  });
  return shares;
}

/** The discounts of the promotions covering a price in a period, in the documented order. */
function promotionDiscount(
  product: ProductInput,
  price: PriceTerms,
  amount: Money,
  period: Period,
  cycle: BillCycle,
  decimals: number,
): { total: Money; applied: Array<{ id: string; name: string; amount: Money }> } {
  const applying = product.promotions
    .filter((promotion) => promotion.priceIds.includes(price.priceId) && covers(promotion, period, cycle))
    .sort(
      (a, b) =>
        Number(a.percentOff === undefined) - Number(b.percentOff === undefined) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  let left = amount;
  const applied: Array<{ id: string; name: string; amount: Money }> = [];
  for (const promotion of applying) {
    if (!left.isPositive() || left.isZero()) break;
    const off =
      promotion.percentOff !== undefined
        ? left.times(promotion.percentOff).dividedBy(100).toDecimalPlaces(decimals, HALF_UP)
        : Money.min(new Money(promotion.amountOff ?? 0), left);
    const capped = Money.min(off, left);
    if (capped.isZero()) continue;
    left = left.minus(capped);
    applied.push({ id: promotion.id, name: promotion.name, amount: capped });
  }
  return { total: amount.minus(left), applied };
}

/** Whether a period is one of a promotion's cycles (cycle 1 holds its start). */
function covers(promotion: PromotionTerms, period: Period, cycle: BillCycle): boolean {
  if (period.endMs <= promotion.startMs) return false;
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

function line(fields: {
  key: string;
  kind: LineKind;
  productId: string | null;
  priceId: string | null;
  name: string;
  period: { startMs: number; endMs: number } | null;
  days?: number;
  basisDays?: number;
  amount: Money;
  discount?: { total: Money; applied: Array<{ id: string; name: string; amount: Money }> };
  taxIncluded: boolean;
  tax: ResolvedTax;
}): DraftLine {
  const discount = fields.discount?.total ?? ZERO;
  const charge = fields.amount.minus(discount);
  return {
    key: fields.key,
    kind: fields.kind,
    productId: fields.productId,
    priceId: fields.priceId,
    name: fields.name,
    period: fields.period,
    days: fields.days ?? null,
    basisDays: fields.basisDays ?? null,
    amount: fields.amount,
    discount,
    promotions: fields.discount?.applied ?? [],
    charge,
    taxIncluded: fields.taxIncluded,
    taxClass: fields.tax.taxClass,
    taxCategory: fields.tax.category,
    taxRate: fields.tax.rate,
    exemptionReason: fields.tax.exemptionReason,
    net: charge,
    late: false,
    usage: null,
  };
}

function taxResolver(input: ComposeInput, problems: ComposeProblem[]): TaxOf {
  const jurisdiction = input.account.taxJurisdiction;
  const country = jurisdiction.slice(0, 2);
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
      resolved = { taxClass, category: "S", rate: ZERO, exemptionReason: null };
    } else {
      const rate = rateOn(terms, jurisdiction, date) ?? rateOn(terms, country, date);
      if (rate === undefined) {
        problems.push({
          code: "no_tax_rate",
          message: `tax class ${taxClass} has no rate for ${jurisdiction} on ${date}`,
        });
        resolved = { taxClass, category: terms.category, rate: ZERO, exemptionReason: null };
      } else {
        const category = rate.category ?? terms.category;
        resolved =
          input.account.reverseCharge && category === "S"
            ? { taxClass, category: "AE", rate: ZERO, exemptionReason: REVERSE_CHARGE_REASON }
            : {
                taxClass,
                category,
                rate: new Money(rate.rate),
                exemptionReason: category === "S" || category === "Z" ? null : (terms.exemptionReason ?? null),
              };
      }
    }
    cache.set(cacheKey, resolved);
    return resolved;
  };
}

/** The rate of a jurisdiction valid on a date: the latest `validFrom` not after it. */
function rateOn(terms: TaxClassTerms, jurisdiction: string, date: string): TaxRateTerms | undefined {
  let found: TaxRateTerms | undefined;
  for (const rate of terms.rates) {
    if (rate.jurisdiction !== jurisdiction) continue;
    const from = rate.validFrom ?? "";
    if (from > date) continue;
    if (found === undefined || (found.validFrom ?? "") < from) found = rate;
  }
  return found;
}

/**
 * The tax summary per category and rate, and every line's net: tax-exclusive lines are their own nets; the
 * tax-inclusive ones of a rate share the tax of their summed gross and their nets are allocated to add up.
 */
function taxLines(lines: DraftLine[], decimals: number): TaxSubtotal[] {
  const groups = new Map<string, { category: TaxCategory; rate: Money; lines: DraftLine[] }>();
  for (const entry of lines) {
    const key = `${entry.taxCategory}|${entry.taxRate.toFixed()}`;
    let group = groups.get(key);
    if (group === undefined) {
      group = { category: entry.taxCategory, rate: entry.taxRate, lines: [] };
      groups.set(key, group);
    }
    group.lines.push(entry);
  }
  const subtotals: TaxSubtotal[] = [];
  for (const group of groups.values()) {
    const exclusive = group.lines.filter((entry) => !entry.taxIncluded);
    const inclusive = group.lines.filter((entry) => entry.taxIncluded);
    const exclusiveNet = exclusive.reduce((sum, entry) => sum.plus(entry.charge), ZERO);
    let tax = exclusiveNet.times(group.rate).toDecimalPlaces(decimals, HALF_UP);
    let taxable = exclusiveNet;
    if (inclusive.length > 0) {
      const gross = inclusive.reduce((sum, entry) => sum.plus(entry.charge), ZERO);
      const onePlus = group.rate.plus(1);
      const inclusiveTax = gross.times(group.rate).dividedBy(onePlus).toDecimalPlaces(decimals, HALF_UP);
      const nets = gross.minus(inclusiveTax);
      let allocated = ZERO;
      inclusive.forEach((entry, index) => {
        entry.net =
          index === inclusive.length - 1
            ? nets.minus(allocated)
            : entry.charge.dividedBy(onePlus).toDecimalPlaces(decimals, HALF_UP);
        allocated = allocated.plus(entry.net);
      });
      tax = tax.plus(inclusiveTax);
      taxable = taxable.plus(nets);
    }
    const reason = group.lines.find((entry) => entry.exemptionReason !== null)?.exemptionReason ?? null;
    subtotals.push({ category: group.category, rate: group.rate, taxable, tax, exemptionReason: reason });
  }
  return subtotals.sort((a, b) => (a.category < b.category ? -1 : a.category > b.category ? 1 : a.rate.cmp(b.rate)));
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
