import type { Actor } from "../../platform/audit.js";
import type { Clock } from "../../platform/clock.js";
import type { Database, Db } from "../../platform/database.js";
import { AppError, notFound } from "../../platform/errors.js";
import { type BillCycle, cyclePeriod, type Period } from "../../shared/calendar.js";
import type { Money } from "../../shared/money.js";
import { PRICE_DEFAULTS } from "../catalog/index.js";
import type { SpendCredit, UnbilledUsage } from "../charging/index.js";
import type { BoughtPrice, Product } from "../subscriptions/index.js";
import {
  ComposeError,
  type ComposeInput,
  composeInvoice,
  type Draft,
  type InvoiceKind,
  type PriceTerms,
  type ProductInput,
  type SuspensionReason,
  type TaxClassTerms,
} from "./compose.js";

/**
 * Billing's reads and the preview (DESIGN.md §10): the repository side of `composeInvoice`. It loads what the pure
 * composition needs through the owning modules' services (accounts, products and their history, one-time charges,
 * usage summaries and spend credits, the catalog's tax terms and issuing entities) and never writes.
 */

/** What billing needs of a billing account. */
export interface BillingAccountView {
  id: string;
  customerId: string;
  accountType: "prepaid" | "postpaid";
  currency: string;
  cycle: BillCycle;
  taxJurisdiction: string;
  paymentTermsDays: number;
  vatId: string | null;
  isOrganization: boolean;
  /** active | suspended | closed … (a closed account still receives money: it is refunded). */
  state?: string;
}

export interface ProductHistoryEntry {
  at: Date;
  fromStatus: string | null;
  toStatus: string;
  suspensionReason: SuspensionReason | null;
}

export interface UnbilledOneTimeCharge {
  id: string;
  /** The product it belongs to, or null for a fee of the account's. */
  productId: string | null;
  priceId: string;
  name: string;
  amount: Money;
  currency: string;
  taxClass: string;
  taxIncluded: boolean;
  createdAt: Date;
}

export interface IssuingEntityView {
  id: string;
  name: string;
  country: string;
  vatId: string;
  /** The zone of its books: a document's year is its issue date's there. */
  timeZone: string;
  /** The prefixes of its number series. */
  series: { invoice: string; creditNote: string };
}

export interface BillingDeps {
  database: Database;
  clock: Clock;
  account(db: Db, id: string): Promise<BillingAccountView | undefined>;
  products(db: Db, billingAccountId: string): Promise<Product[]>;
  history(db: Db, productIds: string[]): Promise<Map<string, ProductHistoryEntry[]>>;
  oneTimeCharges(db: Db, billingAccountId: string): Promise<UnbilledOneTimeCharge[]>;
  usage: {
    unbilled(billingAccountId: string, throughPeriod: string, db?: Db): Promise<UnbilledUsage[]>;
    spendCredits(billingAccountId: string, period: { startMs: number; endMs: number }, db?: Db): Promise<SpendCredit[]>;
  };
  catalog: {
    taxClasses(): Promise<ReadonlyMap<string, TaxClassTerms>>;
    /** How a plan's usage is taxed: its tariff's tax class, in the account's currency. */
    usageTax(
      offeringId: string,
      version: number,
      currency: string,
    ): Promise<{ taxClass: string; taxIncluded: boolean } | undefined>;
    issuingEntityFor(country: string): Promise<IssuingEntityView | undefined>;
  };
  /** Whether a VAT ID's country and the issuer's make an intra-EU B2B supply (reverse charge). */
  reverseCharged(vatId: string, issuerCountry: string): boolean;
}

export type PreviewPeriod = "current" | "last";

export interface Preview {
  draft: Draft;
  account: BillingAccountView;
  issuer: IssuingEntityView;
}

export class BillingService {
  constructor(private readonly deps: BillingDeps) {}

  /**
   * The bill an account would get, written nowhere: "current" is the invoice at the end of the period running
   * now (its usage to date, the next period in advance), "last" the one at the start of it.
   */
  async preview(actor: Actor, billingAccountId: string, which: PreviewPeriod): Promise<Preview> {
    const db = this.deps.database.db;
    const account = await this.deps.account(db, billingAccountId);
    if (account === undefined || (actor.role === "subscriber" && actor.billingAccountId !== account.id)) {
      throw notFound("billingAccount", billingAccountId);
    }
    const now = this.deps.clock.now().getTime();
    const current = cyclePeriod(now, account.cycle);
    const [usagePeriod, advancePeriod] =
      which === "current"
        ? [current, cyclePeriod(current.endMs, account.cycle)]
        : [cyclePeriod(current.startMs - 1, account.cycle), current];
    const { input, issuer } = await this.inputs(db, account, {
      kind: "cycle",
      usagePeriod,
      advancePeriod,
      issueMs: advancePeriod.startMs,
    });
    try {
      return { draft: composeInvoice(input), account, issuer };
    } catch (error) {
      if (error instanceof ComposeError) {
        throw new AppError("unprocessable", error.problems[0]?.code ?? "cannot_compose", error.message);
      }
      throw error;
    }
  }

  /** Everything `composeInvoice` needs for one account and one invoice, read in one pass. */
  async inputs(
    db: Db,
    account: BillingAccountView,
    invoice: { kind: InvoiceKind; usagePeriod: Period; advancePeriod: Period | null; issueMs: number },
  ): Promise<{ input: ComposeInput; issuer: IssuingEntityView }> {
    const country = account.taxJurisdiction.slice(0, 2);
    const issuer = await this.deps.catalog.issuingEntityFor(country);
    if (issuer === undefined) {
      throw new AppError(
        "unprocessable",
        "no_issuing_entity",
        `no issuing entity of the catalog bills ${country}, the country of the account's tax jurisdiction`,
      );
    }
    const base = {
      kind: invoice.kind,
      account: {
        id: account.id,
        accountType: account.accountType,
        currency: account.currency,
        cycle: account.cycle,
        taxJurisdiction: account.taxJurisdiction,
        paymentTermsDays: account.paymentTermsDays,
        reverseCharge:
          account.isOrganization && account.vatId !== null && this.deps.reverseCharged(account.vatId, issuer.country),
      },
      usagePeriod: invoice.usagePeriod,
      advancePeriod: invoice.advancePeriod,
      issueMs: invoice.issueMs,
      taxClasses: await this.deps.catalog.taxClasses(),
    };
    if (account.accountType === "prepaid") {
      // Prepaid lines and their usage are never invoiced: nothing else to read.
      return { input: { ...base, products: [], oneTimeCharges: [], usage: [], spendCredits: [] }, issuer };
    }
    const all = await this.deps.products(db, account.id);
    const [allCharges, usage, credits] = await Promise.all([
      this.deps.oneTimeCharges(db, account.id),
      this.deps.usage.unbilled(account.id, invoice.usagePeriod.key, db),
      // Credits to a period's spend are billed with that period's cycle invoice.
      invoice.kind === "interim"
        ? Promise.resolve([])
        : this.deps.usage.spendCredits(account.id, invoice.usagePeriod, db),
    ]);
    // One-time charges recorded by the end of the usage period (a preview of an earlier invoice leaves out later ones).
    const charges = allCharges.filter((charge) => charge.createdAt.getTime() < invoice.usagePeriod.endMs);
    // Products that ended before the usage period have nothing left to charge or credit, unless late usage or a
    // credit on them is billed now (their tariff taxes it).
    const referenced = new Set([...usage.map((row) => row.productId), ...credits.map((row) => row.productId)]);
    const products = all.filter(
      (product) =>
        product.status !== "aborted" &&
        (product.terminatedAt === null ||
          product.terminatedAt.getTime() >= invoice.usagePeriod.startMs ||
          referenced.has(product.id)),
    );
    const history = await this.deps.history(
      db,
      products.map((product) => product.id),
    );
    const usageTaxes = await Promise.all(
      products.map((product) =>
        product.kind === "plan"
          ? this.deps.catalog.usageTax(product.offeringId, product.offeringVersion, product.currency)
          : Promise.resolve(undefined),
      ),
    );
    const productInputs: ProductInput[] = [];
    for (const [index, product] of products.entries()) {
      const usageTax = usageTaxes[index] ?? null;
      productInputs.push({
        id: product.id,
        name: product.name,
        kind: product.kind === "plan" ? "plan" : "addon",
        parentId: product.parentId,
        currency: product.currency,
        history: (history.get(product.id) ?? []).map((entry) => ({
          atMs: entry.at.getTime(),
          status: entry.toStatus,
          suspensionReason: entry.suspensionReason,
        })),
        prices: [
          {
            fromMs: product.createdAt.getTime(),
            prices: product.prices.filter((price) => price.type === "recurring").map(priceTerms),
          },
        ],
        // The promotions the order gave the product, from the cycle holding its activation.
        promotions: product.promotions.map((promotion) => ({
          id: promotion.id,
          name: promotion.name,
          percentOff: promotion.percentOff,
          amountOff: promotion.amountOff,
          cycles: promotion.cycles,
          priceIds: promotion.priceIds,
          startMs: Date.parse(promotion.firstCycleFrom ?? (product.activatedAt ?? product.createdAt).toISOString()),
        })),
        usageTax,
      });
    }
    return {
      input: {
        ...base,
        products: productInputs,
        oneTimeCharges: charges.map((charge) => ({
          id: charge.id,
          productId: charge.productId,
          name: charge.name,
          amount: charge.amount.toFixed(),
          currency: charge.currency,
          taxClass: charge.taxClass,
          taxIncluded: charge.taxIncluded,
          atMs: charge.createdAt.getTime(),
        })),
        usage: usage.map((summary) => ({
          summaryId: summary.id,
          productId: summary.productId,
          usagePeriod: summary.usagePeriod,
          service: summary.service,
          zone: summary.zone,
          quantity: summary.unbilledQuantity,
          chargedUnits: summary.unbilledChargedUnits,
          amount: summary.unbilledAmount.toFixed(),
          currency: summary.currency,
          fromSeq: summary.fromSeq,
          toSeq: summary.toSeq,
        })),
        spendCredits: credits.map((credit) => ({
          id: credit.id,
          productId: credit.productId,
          amount: credit.amount.toFixed(),
          currency: credit.currency,
          atMs: credit.at.getTime(),
          reason: credit.reason,
        })),
      },
      issuer,
    };
  }
}

/** A bought price with its terms; rows written before the terms existed read as the catalog's defaults. */
export function priceTerms(price: BoughtPrice): PriceTerms {
  return {
    priceId: price.priceId,
    name: price.name,
    type: price.type,
    amount: price.amount,
    currency: price.currency,
    taxClass: price.taxClass,
    billing: price.billing ?? PRICE_DEFAULTS.billing,
    taxIncluded: price.taxIncluded ?? PRICE_DEFAULTS.taxIncluded,
    chargedWhenSuspended: price.chargedWhenSuspended ?? PRICE_DEFAULTS.chargedWhenSuspended,
  };
}
