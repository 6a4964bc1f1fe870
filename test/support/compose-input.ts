import type {
  ComposeInput,
  Draft,
  DraftLine,
  LineKind,
  OneTimeChargeInput,
  PriceTerms,
  ProductInput,
  PromotionTerms,
  SpendCreditInput,
  SuspensionReason,
  TaxClassTerms,
  UsageInput,
} from "../../src/modules/billing/compose.js";
import { type BillCycle, cyclePeriod, type Period } from "../../src/shared/calendar.js";

/**
 * Builders for `composeInvoice` inputs (test/unit/compose-cases.test.ts and compose-properties.test.ts): an account,
 * products with their dated history and prices, one-time charges, usage summaries, spend credits and a catalog of
 * tax classes. Instants are written as ISO strings with their offset, so a case reads as the wall clock it means.
 */

export const BERLIN = "Europe/Berlin";

/** An instant from an ISO string with its offset ("2027-02-10T10:00:00+01:00"). */
export function at(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`not an instant: ${iso}`);
  return ms;
}

/** The catalog's tax classes used by the cases: Germany, the UK, Japan, New Zealand and California. */
export function taxCatalog(extra: readonly TaxClassTerms[] = []): Map<string, TaxClassTerms> {
  const classes: TaxClassTerms[] = [
    {
      id: "standard",
      name: "Standard rate",
      category: "S",
      rates: [
        { jurisdiction: "DE", rate: "0.19" },
        { jurisdiction: "GB", rate: "0.20" },
        { jurisdiction: "JP", rate: "0.10" },
        { jurisdiction: "NZ", rate: "0.15" },
        { jurisdiction: "US-CA", rate: "0.0725" },
      ],
    },
    { id: "reduced", name: "Reduced rate", category: "S", rates: [{ jurisdiction: "DE", rate: "0.07" }] },
    { id: "zero", name: "Zero rated", category: "Z", rates: [{ jurisdiction: "DE", rate: "0" }] },
    {
      id: "exempt",
      name: "Exempt",
      category: "E",
      exemptionReason: "Exempt (§ 4 UStG)",
      rates: [{ jurisdiction: "DE", rate: "0" }],
    },
    { id: "frOnly", name: "France only", category: "S", rates: [{ jurisdiction: "FR", rate: "0.20" }] },
    {
      id: "future",
      name: "Valid from 2030",
      category: "S",
      rates: [{ jurisdiction: "DE", rate: "0.19", validFrom: "2030-01-01" }],
    },
  ];
  return new Map([...classes, ...extra].map((terms) => [terms.id, terms]));
}

export function price(fields: Partial<PriceTerms> & { priceId: string; amount: string }): PriceTerms {
  return {
    name: fields.priceId,
    type: "recurring",
    currency: "EUR",
    taxClass: "standard",
    billing: "advance",
    taxIncluded: false,
    chargedWhenSuspended: [],
    ...fields,
  };
}

export type HistoryEntry = [atMs: number, status: string, reason?: SuspensionReason];

/** A product: its history as `[instant, status, reason?]` and one set of prices from its creation on. */
export function product(fields: {
  id: string;
  prices: readonly PriceTerms[];
  history: readonly HistoryEntry[];
  currency?: string;
  promotions?: readonly PromotionTerms[];
  usageTax?: ProductInput["usageTax"];
  kind?: "plan" | "addon";
  /** Further price sets from later instants (a plan change). */
  later?: ReadonlyArray<{ fromMs: number; prices: readonly PriceTerms[] }>;
}): ProductInput {
  const first = fields.history[0]?.[0] ?? 0;
  return {
    id: fields.id,
    name: fields.id,
    kind: fields.kind ?? "plan",
    parentId: null,
    currency: fields.currency ?? "EUR",
    history: fields.history.map(([atMs, status, reason]) => ({ atMs, status, suspensionReason: reason ?? null })),
    prices: [{ fromMs: first, prices: fields.prices }, ...(fields.later ?? [])],
    promotions: fields.promotions ?? [],
    usageTax: fields.usageTax === undefined ? { taxClass: "standard", taxIncluded: false } : fields.usageTax,
  };
}

export function promotion(fields: Partial<PromotionTerms> & { id: string; startMs: number }): PromotionTerms {
  return { name: `Promotion ${fields.id}`, cycles: 1, priceIds: [], ...fields };
}

export function oneTime(fields: Partial<OneTimeChargeInput> & { id: string; amount: string; atMs: number }) {
  return {
    productId: "p1",
    name: fields.id,
    currency: "EUR",
    taxClass: "standard",
    taxIncluded: false,
    ...fields,
  } satisfies OneTimeChargeInput;
}

export function usage(
  fields: Partial<UsageInput> & { summaryId: string; usagePeriod: string; amount: string },
): UsageInput {
  return {
    productId: "p1",
    service: "data",
    zone: null,
    quantity: 1,
    chargedUnits: 1,
    currency: "EUR",
    fromSeq: 1,
    toSeq: 1,
    ...fields,
  };
}

export function spendCredit(fields: Partial<SpendCreditInput> & { id: string; amount: string; atMs: number }) {
  return { productId: "p1", currency: "EUR", reason: null, ...fields } satisfies SpendCreditInput;
}

export interface AccountOptions {
  currency?: string;
  cycle?: BillCycle;
  taxJurisdiction?: string;
  reverseCharge?: boolean;
  accountType?: "prepaid" | "postpaid";
  paymentTermsDays?: number;
}

export interface InvoiceOptions extends AccountOptions {
  products?: readonly ProductInput[];
  oneTimeCharges?: readonly OneTimeChargeInput[];
  usage?: readonly UsageInput[];
  spendCredits?: readonly SpendCreditInput[];
  taxClasses?: ReadonlyMap<string, TaxClassTerms>;
  receivables?: ComposeInput["receivables"];
  /** Drop history entries and price sets after the issue instant (what a repository would have loaded then). */
  trim?: boolean;
}

function account(options: AccountOptions): ComposeInput["account"] {
  return {
    id: "acc-1",
    accountType: options.accountType ?? "postpaid",
    currency: options.currency ?? "EUR",
    cycle: options.cycle ?? { billCycleDay: 1, timeZone: BERLIN },
    taxJurisdiction: options.taxJurisdiction ?? "DE",
    paymentTermsDays: options.paymentTermsDays ?? 14,
    reverseCharge: options.reverseCharge ?? false,
  };
}

function base(options: InvoiceOptions, issueMs: number) {
  const trim = options.trim ?? true;
  const products = (options.products ?? []).map((entry) =>
    trim
      ? {
          ...entry,
          history: entry.history.filter((item) => item.atMs <= issueMs),
          prices: entry.prices.filter((segment, index) => index === 0 || segment.fromMs <= issueMs),
        }
      : entry,
  );
  return {
    account: account(options),
    issueMs,
    products: products.filter((entry) => entry.history.length > 0),
    oneTimeCharges: options.oneTimeCharges ?? [],
    usage: options.usage ?? [],
    spendCredits: options.spendCredits ?? [],
    taxClasses: options.taxClasses ?? taxCatalog(),
    receivables: options.receivables,
  };
}

/**
 * The cycle invoice made at a period boundary: the usage period that ended there and the next period in advance,
 * both from the account's cycle (`cyclePeriod`), issued at the boundary unless `issueMs` says otherwise.
 */
export function cycleInvoice(boundaryMs: number, options: InvoiceOptions = {}, issueMs = boundaryMs): ComposeInput {
  const cycle = account(options).cycle;
  return {
    kind: "cycle",
    usagePeriod: cyclePeriod(boundaryMs - 1, cycle),
    advancePeriod: cyclePeriod(boundaryMs, cycle),
    ...base(options, issueMs),
  };
}

/** The final bill made at an instant (a termination): the period holding it, no advance period. */
export function finalBill(issueMs: number, options: InvoiceOptions = {}): ComposeInput {
  const cycle = account(options).cycle;
  return { kind: "final", usagePeriod: cyclePeriod(issueMs, cycle), advancePeriod: null, ...base(options, issueMs) };
}

/** The lines of a draft that match: by kind, price, and the start of the service period. */
export function linesOf(
  draft: Draft,
  match: { kind?: LineKind; priceId?: string; productId?: string; period?: Period | null },
): DraftLine[] {
  return draft.lines.filter(
    (entry) =>
      (match.kind === undefined || entry.kind === match.kind) &&
      (match.priceId === undefined || entry.priceId === match.priceId) &&
      (match.productId === undefined || entry.productId === match.productId) &&
      (match.period === undefined ||
        (match.period === null ? entry.period === null : entry.period?.startMs === match.period.startMs)),
  );
}

/** The one line that matches; throws when there is none or more than one. */
export function lineOf(draft: Draft, match: Parameters<typeof linesOf>[1]): DraftLine {
  const found = linesOf(draft, match);
  if (found.length !== 1) {
    const shown = draft.lines.map((entry) => `${entry.kind} ${entry.key} ${entry.charge.toFixed()}`).join("; ");
    throw new Error(`expected one line for ${JSON.stringify(match)}, found ${found.length}: ${shown}`);
  }
  return found[0] as DraftLine;
}

/** Every line as `kind priceId charge`, for messages. */
export function describe(draft: Draft): string {
  return draft.lines.map((entry) => `${entry.kind}:${entry.priceId ?? entry.key}=${entry.charge.toFixed()}`).join(", ");
}
