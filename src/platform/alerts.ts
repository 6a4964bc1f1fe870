import { Type } from "typebox";
import type { Db } from "./database.js";

/**
 * Alerts to subscribers (DESIGN.md §5): what a module that notices a crossing or a barring hands to the
 * notifications module. Recorded in the caller's transaction, so an alert exists exactly when what caused it
 * does; announced after the commit, for live delivery.
 */
export type AlertKind =
  | "billLimit"
  | "spendAmount"
  | "creditLimit"
  | "allowance"
  | "lowBalance"
  | "balanceExhausted"
  | "lineBarred"
  | "lineUnbarred";

export const ALERT_KINDS: readonly AlertKind[] = [
  "billLimit",
  "spendAmount",
  "creditLimit",
  "allowance",
  "lowBalance",
  "balanceExhausted",
  "lineBarred",
  "lineUnbarred",
];

/** An amount or a count of units, as TMF654 Quantities, with the amount as exact decimal text. */
export interface AlertQuantity {
  amount: string;
  units: string;
}

export interface AlertDraft {
  /** What makes the alert once: the same key recorded twice (a retry, a replay) raises nothing the second time. */
  dedupeKey: string;
  kind: AlertKind;
  billingAccountId: string;
  productId: string | null;
  bucketId?: string;
  /** The bill period (postpaid spend) the threshold belongs to. */
  period?: string;
  /** The threshold: an amount or units, with the percentage it stands for when it is one. */
  threshold?: AlertQuantity & { percent?: string };
  /** The metric after the event: spend, balance, or units used of the bucket. */
  value?: AlertQuantity;
  /** The rated usage whose event crossed the threshold. */
  usageId?: string;
  /** The words the subscriber reads (WebSocket, SMS, e-mail). */
  message: string;
}

/** An alert as stored: its id orders alerts for replay. */
export interface RaisedAlert extends AlertDraft {
  id: string;
  raisedAt: string;
}

export interface AlertSink {
  /** Records drafts with the caller's transaction; answers the ones that are new (duplicates are skipped). */
  record(tx: Db, drafts: readonly AlertDraft[]): Promise<RaisedAlert[]>;
  /** After the commit: hands new alerts to live delivery. Never throws; a relay repeats what failed. */
  announce(alerts: readonly RaisedAlert[]): Promise<void>;
  /** An account's latest alerts as the API presents them, newest first (self-care). */
  recent(billingAccountId: string, limit: number): Promise<object[]>;
}

/** The alert as the API presents it (REST, WebSocket frames, self-care). */
const Ref = Type.Object({ id: Type.String(), href: Type.String(), "@referredType": Type.String() });
const Quantity = Type.Object({ amount: Type.String(), units: Type.String() });
export const AlertFields = {
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Alert"),
  kind: Type.String({ description: ALERT_KINDS.join(", ") }),
  message: Type.String(),
  raisedAt: Type.String(),
  billingAccount: Ref,
  product: Type.Optional(Ref),
  bucket: Type.Optional(Ref),
  period: Type.Optional(Type.String()),
  threshold: Type.Optional(
    Type.Object({ amount: Type.String(), units: Type.String(), percent: Type.Optional(Type.String()) }),
  ),
  value: Type.Optional(Quantity),
  usage: Type.Optional(Ref),
};
