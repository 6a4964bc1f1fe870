import { createHash } from "node:crypto";
import {
  CDR_FUTURE_SKEW_SECONDS,
  CDR_MAX_AGE_DAYS,
  CDR_MAX_DURATION_SECONDS,
  CDR_MAX_MESSAGES,
  CDR_MAX_VOLUME_BYTES,
} from "../../shared/limits.js";
import type { Direction, Service } from "../catalog/index.js";
import { type NumberRules, normalizeNumber } from "./numbers.js";

export const CDR_FORMATS = ["native", "tmf635", "freeswitch", "asterisk"] as const;
export type CdrFormat = (typeof CDR_FORMATS)[number];

/** The native fields of a CDR (API.md, "CDRs in"); anything else in a native record is refused. */
export const CDR_FIELDS = [
  "recordType",
  "cdrId",
  "source",
  "servedMSISDN",
  "servedIMSI",
  "calledNumber",
  "recordOpeningTime",
  "duration",
  "dataVolumeUplink",
  "dataVolumeDownlink",
  "messages",
  "direction",
  "visitedNetwork",
  "ratingGroup",
] as const;
const FIELD_SET: ReadonlySet<string> = new Set(CDR_FIELDS);

/** A validated, normalized record: what is stored and what guiding and rating read. */
export interface CdrRecord {
  format: CdrFormat;
  source: string;
  cdrId: string;
  recordType: Service;
  servedMsisdn: string | null;
  servedImsi: string | null;
  calledNumber: string | null;
  direction: Direction;
  visitedNetwork: string | null;
  ratingGroup: number | null;
  startedAtMs: number;
  duration: number | null;
  volumeUplink: number | null;
  volumeDownlink: number | null;
  messages: number | null;
  chargeable: boolean;
  note: string | null;
}

export interface Rejection {
  field: string;
  reason: string;
}

export type Checked = { ok: true; record: CdrRecord } | { ok: false; rejection: Rejection };

/** A registered element: how its numbers are written. Unknown or disabled sources are refused per record. */
export interface SourceRules extends NumberRules {
  id: string;
  timeZone: string;
}

export interface CheckContext {
  format: CdrFormat;
  nowMs: number;
  sourceOf(id: string): SourceRules | undefined;
  /** The sources the sender's key may send for (API key `cdrSources`); absent: any. */
  sendsFor?: ReadonlySet<string>;
  /** Switch formats say whether a leg is charged; native records always are. */
  chargeable?: boolean;
  note?: string;
}

const CDR_ID = /^[\x21-\x7e]{1,128}$/;
const SOURCE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const IMSI = /^[0-9]{14,15}$/;
const PLMN = /^[0-9]{5,6}$/;
/** ISO 8601 with a date, a time and an offset; a time without a zone is ambiguous and refused. */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;
const DAY_MS = 86_400_000;
const RATING_GROUP_MAX = 4_294_967_295;

class Refused extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function refuse(field: string, reason: string): never {
  throw new Refused(field, reason);
}

function text(record: Record<string, unknown>, field: string, required: boolean): string | null {
  const value = record[field];
  if (value === undefined || value === null) {
    if (required) refuse(field, "is required");
    return null;
  }
  if (typeof value !== "string") refuse(field, `must be a string, not ${describe(value)}`);
  if (value.includes("\u0000")) refuse(field, "must not contain NUL");
  return value;
}

function integer(record: Record<string, unknown>, field: string, min: number, max: number): number | null {
  const value = record[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isInteger(value))
    refuse(field, `must be a whole number, not ${describe(value)}`);
  if (value < min || value > max) refuse(field, `must be from ${min} to ${max}, not ${value}`);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return Number.isFinite(value) ? "a fraction" : "an infinite number";
  return `a ${typeof value}`;
}

function onlyFor(record: Record<string, unknown>, field: string, type: Service, allowed: readonly Service[]): void {
  if (record[field] !== undefined && !allowed.includes(type)) {
    refuse(field, `applies to ${allowed.join(" and ")} records, not ${type}`);
  }
}

export function parseTimestamp(value: string): number | null {
  const match = TIMESTAMP.exec(value);
  if (!match) return null;
  const [, , month, day, hour, minute, second, , , offsetHours, offsetMinutes] = match;
  if (Number(month) < 1 || Number(month) > 12 || Number(day) < 1 || Number(day) > 31) return null;
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return null;
  if (offsetHours !== undefined && (Number(offsetHours) > 18 || Number(offsetMinutes) > 59)) return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return null;
  // Date.parse rolls 2026-02-30 over into March; the calendar date must exist as written.
  const local = new Date(ms + offsetOf(match) * 60_000);
  if (local.getUTCDate() !== Number(day)) return null;
  return ms;
}

function offsetOf(match: RegExpExecArray): number {
  const zone = match[8];
  if (zone === "Z" || zone === undefined) return 0;
  const minutes = Number(match[9]) * 60 + Number(match[10]);
  return zone.startsWith("-") ? -minutes : minutes;
}

/**
 * Checks one record on its own (API.md: every rule applies per record, never to the whole batch) and
 * normalizes it. The first problem found is the answer, naming the field and the reason.
 */
export function checkCdr(input: unknown, context: CheckContext): Checked {
  try {
    return { ok: true, record: normalize(input, context) };
  } catch (error) {
    if (error instanceof Refused) return { ok: false, rejection: { field: error.field, reason: error.reason } };
    throw error;
  }
}

function normalize(input: unknown, context: CheckContext): CdrRecord {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    refuse("record", `must be a JSON object, not ${describe(input)}`);
  }
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!FIELD_SET.has(key)) refuse(key, "is not a CDR field");
  }
  const recordType = text(record, "recordType", true) as string;
  if (recordType !== "voice" && recordType !== "sms" && recordType !== "data") {
    refuse("recordType", "must be voice, sms or data");
  }
  const cdrId = text(record, "cdrId", true) as string;
  if (!CDR_ID.test(cdrId)) refuse("cdrId", "must be 1 to 128 printable ASCII characters without spaces");
  const sourceId = text(record, "source", true) as string;
  if (!SOURCE_ID.test(sourceId)) refuse("source", "must be 1 to 64 letters, digits, '.', '_', ':' or '-'");
  if (context.sendsFor !== undefined && !context.sendsFor.has(sourceId)) {
    refuse("source", "this API key may not send records for this source (the key's cdrSources name the ones it may)");
  }
  const source = context.sourceOf(sourceId);
  if (source === undefined) refuse("source", `is not a registered, active CDR source (see /api/v1/cdr-sources)`);

  const msisdn = text(record, "servedMSISDN", false);
  const imsi = text(record, "servedIMSI", false);
  if (msisdn === null && imsi === null) refuse("servedMSISDN", "servedMSISDN or servedIMSI is required");
  let servedMsisdn: string | null = null;
  if (msisdn !== null) {
    const normalized = normalizeNumber(msisdn, source, false);
    if (!normalized.ok) refuse("servedMSISDN", normalized.reason);
    servedMsisdn = normalized.value;
  }
  if (imsi !== null && !IMSI.test(imsi)) refuse("servedIMSI", "must be 14 or 15 digits");

  const called = text(record, "calledNumber", recordType !== "data");
  let calledNumber: string | null = null;
  if (called !== null) {
    const normalized = normalizeNumber(called, source, true);
    if (!normalized.ok) refuse("calledNumber", normalized.reason);
    calledNumber = normalized.value;
  }

  const opening = text(record, "recordOpeningTime", true) as string;
  const startedAtMs = parseTimestamp(opening);
  if (startedAtMs === null) {
    refuse("recordOpeningTime", "must be an ISO 8601 date and time with an offset, e.g. 2026-11-23T10:15:00+01:00");
  }
  if (startedAtMs > context.nowMs + CDR_FUTURE_SKEW_SECONDS * 1000) {
    refuse("recordOpeningTime", `is more than ${CDR_FUTURE_SKEW_SECONDS} seconds in the future`);
  }
  if (startedAtMs < context.nowMs - CDR_MAX_AGE_DAYS * DAY_MS) {
    refuse("recordOpeningTime", `is more than ${CDR_MAX_AGE_DAYS} days old`);
  }

  onlyFor(record, "dataVolumeUplink", recordType, ["data"]);
  onlyFor(record, "dataVolumeDownlink", recordType, ["data"]);
  onlyFor(record, "messages", recordType, ["sms"]);
  onlyFor(record, "duration", recordType, ["voice", "data"]);
  const duration = integer(record, "duration", 0, CDR_MAX_DURATION_SECONDS);
  if (recordType === "voice" && duration === null) refuse("duration", "is required for voice records");
  const volumeUplink = integer(record, "dataVolumeUplink", 0, CDR_MAX_VOLUME_BYTES);
  const volumeDownlink = integer(record, "dataVolumeDownlink", 0, CDR_MAX_VOLUME_BYTES);
  if (recordType === "data" && volumeUplink === null && volumeDownlink === null) {
    refuse("dataVolumeUplink", "dataVolumeUplink or dataVolumeDownlink is required for data records");
  }
  const messages = recordType === "sms" ? (integer(record, "messages", 1, CDR_MAX_MESSAGES) ?? 1) : null;

  const direction = text(record, "direction", false) ?? "outgoing";
  if (direction !== "outgoing" && direction !== "incoming") refuse("direction", "must be outgoing or incoming");
  const visitedNetwork = text(record, "visitedNetwork", false);
  if (visitedNetwork !== null && !PLMN.test(visitedNetwork)) {
    refuse("visitedNetwork", "must be a PLMN id: MCC and MNC, 5 or 6 digits");
  }
  const ratingGroup = integer(record, "ratingGroup", 0, RATING_GROUP_MAX);

  return {
    format: context.format,
    source: sourceId,
    cdrId,
    recordType,
    servedMsisdn,
    servedImsi: imsi,
    calledNumber,
    direction,
    visitedNetwork,
    ratingGroup,
    startedAtMs,
    duration,
    volumeUplink,
    volumeDownlink,
    messages,
    chargeable: context.chargeable ?? true,
    note: context.note ?? null,
  };
}

/**
 * What makes two records "the same CDR": every normalized field that affects guiding or charging. A retry
 * carries the same digest (a duplicate); the same id with any other value is a conflict.
 */
export function digestOf(record: CdrRecord): string {
  const canonical = [
    record.recordType,
    record.servedMsisdn,
    record.servedImsi,
    record.calledNumber,
    record.direction,
    record.visitedNetwork,
    record.ratingGroup,
    record.startedAtMs,
    record.duration,
    record.volumeUplink,
    record.volumeDownlink,
    record.messages,
    record.chargeable,
  ];
  return createHash("sha256").update(JSON.stringify(canonical)).digest("base64url");
}

/** The fields of a stored record, back in the native names (for TMF635 characteristics and the queue). */
export function nativeFields(record: CdrRecord): Record<string, string | number> {
  const fields: Record<string, string | number> = {
    recordType: record.recordType,
    cdrId: record.cdrId,
    source: record.source,
    recordOpeningTime: new Date(record.startedAtMs).toISOString(),
    direction: record.direction,
  };
  if (record.servedMsisdn !== null) fields.servedMSISDN = record.servedMsisdn;
  if (record.servedImsi !== null) fields.servedIMSI = record.servedImsi;
  if (record.calledNumber !== null) fields.calledNumber = record.calledNumber;
  if (record.duration !== null) fields.duration = record.duration;
  if (record.volumeUplink !== null) fields.dataVolumeUplink = record.volumeUplink;
  if (record.volumeDownlink !== null) fields.dataVolumeDownlink = record.volumeDownlink;
  if (record.messages !== null) fields.messages = record.messages;
  if (record.visitedNetwork !== null) fields.visitedNetwork = record.visitedNetwork;
  if (record.ratingGroup !== null) fields.ratingGroup = record.ratingGroup;
  return fields;
}
