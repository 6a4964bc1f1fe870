import type { SuspensionReason } from "../catalog/index.js";

/**
 * The installed product as subscriptions hands it to other modules (charging, orders, and billing to come): its
 * own type, not the table's row type, so the table can change without other modules seeing it. The tables file
 * checks that its row has this shape.
 */

/**
 * A price as the line bought it: the catalog's price in the account's currency at the time of the order, with the
 * terms its invoices follow. The terms are optional because rows written before they existed have none; such a
 * row means the catalog's defaults: billing "advance", taxIncluded false, chargedWhenSuspended [] (no suspended day
 * charged). Orders write all three for recurring prices and taxIncluded for one-time prices.
 */
export interface BoughtPrice {
  priceId: string;
  name: string;
  type: "recurring" | "oneTime";
  period?: string;
  amount: string;
  currency: string;
  taxClass: string;
  /** Recurring prices: "advance" (the coming period) or "arrears" (the period that ended). */
  billing?: "advance" | "arrears";
  /** The amount includes the tax. */
  taxIncluded?: boolean;
  /** Recurring prices: the suspension reasons (customerRequest, dunning, nonRenewal, fraud) still charged. */
  chargedWhenSuspended?: SuspensionReason[];
}

/** A contract term as bought: its length and when it ends, and the early termination fee per month left. */
export interface BoughtTerm {
  id: string;
  name: string;
  months: number;
  endsAt: string;
  feePerMonth: string;
}

/**
 * A promotion as the order gave it to a product (TMF622 priceAlteration): the catalog's terms in the account's
 * currency, for `cycles` bill periods from the one holding `firstCycleFrom` (the activation; null until then).
 */
export interface BoughtPromotion {
  id: string;
  name: string;
  percentOff?: string;
  /** Per cycle, in the product's currency. */
  amountOff?: string;
  cycles: number;
  /** The bought prices it takes off. */
  priceIds: string[];
  firstCycleFrom: string | null;
}

/** A plan (one per line) or an add-on under it. */
export interface Product {
  id: string;
  billingAccountId: string;
  customerId: string;
  offeringId: string;
  offeringVersion: number;
  name: string;
  /** "plan" or "addon" */
  kind: string;
  parentId: string | null;
  /** created, pendingActive, active, suspended, pendingTerminate, terminated, aborted */
  status: string;
  msisdn: string | null;
  iccid: string | null;
  currency: string;
  prices: BoughtPrice[];
  term: BoughtTerm | null;
  promotions: BoughtPromotion[];
  orderId: string;
  createdAt: Date;
  updatedAt: Date;
  activatedAt: Date | null;
  terminatedAt: Date | null;
  /** Why the line is barred on the network (credit, dunning, fraud, customerRequest); empty: not barred. */
  barringReasons: string[];
}
