import { createHash } from "node:crypto";

/**
 * The charging store (DESIGN.md §2, §4 step 3): the hot copy of every account's money and allowances, changed
 * only by one atomic step per account. Two implementations obey this contract — Redis (one Lua script per
 * call, all keys of an account under one hash tag) and an in-process store for embedded mode — and one
 * contract test file runs against both.
 *
 * Amounts are integers in micro-units (10^-6 of the currency) as bigint; Lua holds them as doubles, exact up to
 * 2^53, so every amount crossing the boundary is checked against MICRO_LIMIT. Allowance units are whole
 * seconds, messages or bytes. Rounding never happens here.
 */

/** The largest magnitude of a micro-unit amount either store accepts (2^53 − 1: exact in Lua's doubles). */
export const MICRO_LIMIT = 9_007_199_254_740_991n;

export interface BucketState {
  id: string;
  granted: number;
  used: number;
}

export interface LineState {
  productId: string;
  /** Prepaid lines carry a monetary balance; postpaid lines do not (null). */
  balance: bigint | null;
  /** Ordered by bucket id. */
  buckets: BucketState[];
}

export interface AccountState {
  accountId: string;
  /** Bumped by every change; a step priced against another version is refused. */
  version: number;
  /** The highest fencing token that has written to this account. */
  fence: number;
  /** Spend to date per spend period (postpaid bill period), micro-units. */
  spend: Map<string, bigint>;
  lines: Map<string, LineState>;
  /** Threshold keys already crossed (each names its own period). */
  crossed: Set<string>;
}

export interface Draw {
  bucketId: string;
  units: number;
  /** Who holds the bucket when it is not the event's line: the account, for a shared bucket. */
  holder?: string;
}

/** One rated event, priced by the worker against the state version it read. */
export interface ChargeEvent {
  usageId: string;
  productId: string;
  /** The spend period the event counts in. */
  period: string;
  /** Allowance consumed, bucket by bucket (buckets before money). */
  draws: Draw[];
  /** Money charged after allowances, micro-units, ≥ 0. */
  charge: bigint;
  /** Whether the charge comes off the line's prepaid balance. */
  prepaid: boolean;
  /** What a replay of this event answers (the rated summary), stored with the dedupe mark. */
  result: string;
  /** The worker knows the store has applied this event (it is sent only to get its stored result). */
  known?: boolean;
}

/**
 * A threshold to watch while applying: `up` fires when the metric reaches `value` from below (spend, bucket
 * use), `down` when it falls below `value` (a prepaid balance). The key names the threshold and its period, so
 * each fires once per period.
 */
export interface Threshold {
  key: string;
  metric: "spend" | "balance" | "bucket";
  direction: "up" | "down";
  value: bigint;
  /** spend: the period; balance and bucket: the line; bucket: the bucket. */
  period?: string;
  productId?: string;
  bucketId?: string;
}

export interface StepRequest {
  accountId: string;
  fence: number;
  version: number;
  events: ChargeEvent[];
  thresholds: Threshold[];
  /**
   * Priced without reading the applied marks (against state the worker kept from its last step): an event the
   * store has applied that is not marked `known` makes the step answer version_mismatch, so the worker reads and
   * prices again rather than apply events priced as if that one were new.
   */
  strict?: boolean;
}

export interface Crossing {
  key: string;
  usageId: string;
  /** The metric's value after the event that crossed (micro-units or units). */
  value: bigint;
}

export interface EventOutcome {
  usageId: string;
  duplicate: boolean;
  result: string;
  /** The thresholds this event crossed, also on a replay: a crash between the step and the ledger loses none. */
  crossings: Crossing[];
}

export type StepResult =
  | { status: "applied"; version: number; outcomes: EventOutcome[] }
  | { status: "version_mismatch"; version: number }
  | { status: "fenced"; fence: number }
  | { status: "refused"; reason: string };

export interface NewLine {
  productId: string;
  balance: bigint | null;
  buckets: Array<{ id: string; granted: number }>;
}

/**
 * Money or units moved outside rating (a top-up, an adjustment), applied once per id. Each part is optional:
 * a prepaid line's balance, a spend period's spend to date (a postpaid credit), a bucket's grant.
 */
export interface Adjustment {
  accountId: string;
  id: string;
  productId: string;
  balance?: bigint;
  spend?: { period: string; delta: bigint };
  bucket?: { bucketId: string; delta: number };
  /** Balance thresholds to re-arm once the balance is back at or above their value. */
  rearm: Array<{ key: string; value: bigint }>;
  /** Spend thresholds to re-arm once a credit takes spend back below their value. */
  rearmSpend?: Array<{ key: string; value: bigint }>;
}

/**
 * A period's end for a bucket that rolls over: its unused units, up to `cap`, move into a new bucket `to` held
 * by the same holder, at once and once per id. What is left above the cap stays in `from` (usable only by late
 * events of its own period). Refused when `from` has no state.
 */
export interface Rollover {
  accountId: string;
  id: string;
  holder: string;
  from: string;
  to: string;
  cap: number;
}

export type RolloverResult =
  | { status: "applied" | "duplicate"; version: number; units: number }
  | { status: "refused"; reason: string };

export type AdjustResult =
  | {
      status: "applied" | "duplicate";
      version: number;
      balance: bigint | null;
      spend: bigint | null;
      bucket: { granted: number; used: number } | null;
    }
  | { status: "refused"; reason: string };

/** An account's whole state as the ledger says it is, for a rebuild. */
export interface AccountSnapshot {
  accountId: string;
  version: number;
  fence: number;
  spend: Map<string, bigint>;
  lines: LineState[];
  crossed: string[];
  /** Dedupe marks: usage id → stored result and crossings, as the step would have stored them. */
  marks: Array<{ id: string; result: string; crossings: Crossing[] }>;
  /** Adjustment marks (their ids). */
  adjustments: string[];
}

export interface ChargingStore {
  readonly kind: "redis" | "in-process";
  read(accountId: string): Promise<AccountState>;
  /**
   * What a rating step needs, in one consistent read: the account's counters, the given lines (and holders) that
   * have state, and which of the usage ids the store has applied already.
   */
  readForRating(
    accountId: string,
    productIds: readonly string[],
    usageIds: readonly string[],
  ): Promise<{ state: AccountState; applied: Set<string> }>;
  /** Adds a line's balance and buckets where they do not exist yet (a new line or a new allowance period). */
  grant(accountId: string, line: NewLine): Promise<number>;
  step(request: StepRequest): Promise<StepResult>;
  /**
   * Applies an adjustment. Refused, changing nothing, when the line has no state (or no prepaid balance for a
   * balance change), when a debit would take a balance below zero, a credit would take spend below zero, or
   * a grant would fall below what is used.
   */
  adjust(adjustment: Adjustment): Promise<AdjustResult>;
  /** Carries a bucket's unused units into its rollover bucket; a repeat answers the units moved the first time. */
  rollover(rollover: Rollover): Promise<RolloverResult>;
  /** Which of these usage ids the store has applied already (their dedupe marks exist). */
  applied(accountId: string, usageIds: readonly string[]): Promise<Set<string>>;
  /** Replaces an account's whole state at once (reconciliation). */
  replace(snapshot: AccountSnapshot): Promise<void>;
  /** Whether the store has been initialized from the ledger (false after Redis came back empty). */
  initialized(): Promise<boolean>;
  markInitialized(): Promise<void>;
  close(): Promise<void>;
}

/** The store's once-mark of a ledger operation (a top-up, an adjustment, an allowance move) of an account. */
export function operationMark(accountId: string, key: string): string {
  return createHash("sha256").update(`${accountId}\u0000${key}`).digest("base64url");
}

/** Whether a step's event moves a threshold's metric: its period's spend, its line's balance, or its bucket. */
export function watches(threshold: Threshold, event: ChargeEvent): boolean {
  if (threshold.metric === "spend") return threshold.period === event.period;
  if (threshold.metric === "balance") return threshold.productId === event.productId;
  return event.draws.some((draw) => draw.bucketId === threshold.bucketId);
}

export function checkMicro(value: bigint, what: string): void {
  if (value > MICRO_LIMIT || value < -MICRO_LIMIT) throw new RangeError(`${what} is beyond the store's exact range`);
}

/** The metric a threshold watches, in an account's state. */
export function metricOf(state: AccountState, threshold: Threshold): bigint | null {
  if (threshold.metric === "spend") return state.spend.get(threshold.period ?? "") ?? 0n;
  const line = state.lines.get(threshold.productId ?? "");
  if (line === undefined) return null;
  if (threshold.metric === "balance") return line.balance;
  const bucket = line.buckets.find((candidate) => candidate.id === threshold.bucketId);
  return bucket === undefined ? null : BigInt(bucket.used);
}

export function crossed(threshold: Threshold, before: bigint, after: bigint): boolean {
  return threshold.direction === "up"
    ? before < threshold.value && after >= threshold.value
    : before >= threshold.value && after < threshold.value;
}
