import secureJson from "secure-json-parse";
import { AppError } from "../../../platform/errors.js";
import { assertCleanJsonText } from "../../../platform/json-body.js";
import type { MapResult, RecordRejection } from "./mapped.js";

/**
 * FreeSWITCH `mod_json_cdr` posts, one call leg per request (API.md "CDRs in").
 *
 * What arrives on the wire depends on the module's `encode` parameter (mod_json_cdr.c, `process_cdr`):
 * - `encode=false`: the record as JSON, `Content-Type: application/json`.
 * - `encode=true`: `cdr=<the JSON, URL-encoded>`, `Content-Type: application/x-www-form-urlencoded`.
 * - `encode=base64`: `cdr=<the JSON, base64>` (not URL-escaped, so `+` and `/` arrive as they are),
 *   `Content-Type: application/x-www-form-base64-encoded`.
 * Independently, `encode-values` (default true) URL-encodes every value in `variables` with
 * `switch_url_encode` (`%20` for a space, `%2B` for `+`, never `+` for a space); `callflow` profile
 * values are written as they are. The module retries on anything but 2xx, so the same leg can arrive
 * more than once: the call leg's `uuid` is the idempotency key.
 */

export type DecodedBody = { ok: true; cdr: unknown } | { ok: false; rejection: RecordRejection };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Turns a mod_json_cdr request body into the parsed record, whatever `encode` mode produced it. Never
 * throws: bad input becomes a rejection naming "body" (the request as a whole) or "cdr" (the form field)
 * and why. The work is linear in the body size.
 */
export function decodeFreeswitchBody(contentType: string | undefined, raw: Buffer): DecodedBody {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return refuse("body", "is not valid UTF-8");
  }
  if (text.includes("\u0000")) return refuse("body", "contains a NUL character");
  const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  switch (mediaType) {
    case "application/json":
      return parseCdrJson(text, "body");
    case "application/x-www-form-urlencoded":
    case "application/x-www-form-base64-encoded":
      return decodeForm(text);
    case "":
      // No content type at all (a replay from the module's error directory, say): go by the first byte.
      if (text.trimStart().startsWith("{")) return parseCdrJson(text, "body");
      if (text.trimStart().startsWith("cdr=")) return decodeForm(text);
      return refuse("body", "is neither a JSON object nor a form with a cdr field");
    default:
      return refuse(
        "body",
        `has content type "${mediaType}"; mod_json_cdr sends application/json, application/x-www-form-urlencoded or application/x-www-form-base64-encoded`,
      );
  }
}

/**
 * A `cdr=` form body. The value is URL-encoded JSON (`encode=true`) or base64 JSON (`encode=base64`); which
 * one is decided by the value itself, not the content type, because proxies and hand-written relays get the
 * content type wrong: URL-decoded JSON starts with `{`, base64 never does. Base64 is checked on the value
 * with `+` kept as `+` (only %-escapes undone), since mod_json_cdr does not escape its base64.
 */
function decodeForm(text: string): DecodedBody {
  let value: string | undefined;
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = formDecode(eq === -1 ? pair : pair.slice(0, eq), true);
    if (key !== "cdr") continue;
    if (value !== undefined) return refuse("cdr", "appears more than once in the form");
    value = eq === -1 ? "" : pair.slice(eq + 1).trim();
  }
  if (value === undefined) return refuse("cdr", "is missing: a mod_json_cdr form body is cdr=<record>");
  if (value === "") return refuse("cdr", "is empty");
  const asJson = formDecode(value, true);
  if (asJson === null) return refuse("cdr", "has a malformed %-escape or escapes bytes that are not UTF-8");
  if (asJson.trimStart().startsWith("{")) return parseCdrJson(asJson, "cdr");
  const asBase64 = formDecode(value, false);
  if (asBase64 !== null && isCanonicalBase64(asBase64)) {
    let json: string;
    try {
      json = utf8.decode(Buffer.from(asBase64, "base64"));
    } catch {
      return refuse("cdr", "is base64 of bytes that are not UTF-8");
    }
    if (json.includes("\u0000")) return refuse("cdr", "is base64 of text containing a NUL character");
    return parseCdrJson(json, "cdr");
  }
  return refuse("cdr", "is neither URL-encoded JSON nor base64 (encode=true or encode=base64)");
}

/** Percent-decoding of one form component; `+` is a space only when `plusIsSpace`. null if malformed. */
function formDecode(component: string, plusIsSpace: boolean): string | null {
  const spaced = plusIsSpace ? component.replaceAll("+", " ") : component;
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    // URIError: a % not followed by two hex digits, or escapes that do not form UTF-8.
    return null;
  }
}

/** Standard padded base64 that re-encodes to itself (rejects stray characters and non-zero padding bits). */
function isCanonicalBase64(value: string): boolean {
  if (value.length === 0 || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false;
  return Buffer.from(value, "base64").toString("base64") === value;
}

/**
 * Parses the record's JSON text. Beyond JSON.parse: prototype keys are refused (secure-json-parse), and
 * so are repeated keys, NUL characters and lone surrogates in strings (findJsonTextProblem). The record
 * must be an object.
 */
function parseCdrJson(text: string, field: "body" | "cdr"): DecodedBody {
  if (text.trim() === "") return refuse(field, "is empty");
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: "error", constructorAction: "error" });
  } catch (error) {
    const detail = error instanceof Error ? error.message : "unparseable";
    return refuse(field, `is not valid JSON: ${detail}`);
  }
  const problem = findJsonTextProblem(text);
  if (problem !== undefined) return refuse(field, problem);
  if (!isObject(value)) return refuse(field, "must be a JSON object (one mod_json_cdr record)");
  return { ok: true, cdr: value };
}

/**
 * Repeated keys, NUL characters and lone surrogates are refused like in every JSON body, with one exception:
 * FreeSWITCH before 1.10 wrote one top-level `callflow` key per caller profile (a transferred call has
 * several); JSON.parse keeps the last, and callflow is only a fallback source here.
 */
function findJsonTextProblem(text: string): string | undefined {
  try {
    assertCleanJsonText(text, (key, depth) => depth === 1 && key === "callflow");
    return undefined;
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const at = error.field ?? "(top level)";
    if (error.code === "duplicate_key") return `repeats the key ${at}`;
    return error.message.includes("NUL")
      ? `has a NUL character at ${at}`
      : `has a string that is not valid Unicode at ${at}`;
  }
}

/**
 * Maps one mod_json_cdr record (one call leg) to the native CDR fields.
 *
 * - `cdrId`: `variables.uuid`, else the callflow profile's `uuid` (the leg's id; the idempotency key).
 * - `direction`: FreeSWITCH's direction is the leg's, seen from the switch. `inbound` is a leg that came
 *   into the switch from the subscriber's device, i.e. the subscriber's `outgoing` call; `outbound` is a leg
 *   the switch placed towards the subscriber, i.e. an `incoming` call.
 * - `servedMSISDN` / `calledNumber`: for outgoing, the caller and the destination; for incoming, the
 *   destination (the subscriber being called) is served and `calledNumber` holds the other party, which on
 *   an incoming leg is the caller.
 * - `recordOpeningTime`: the answer time if the leg was answered, else the start time; epochs carry no zone,
 *   so the ISO string is UTC ("Z").
 * - `duration`: `billsec` (answer to hangup), never `duration` (which includes ringing); 0 when the leg is not
 *   chargeable.
 * - A leg without an answer time, or with `billsec` 0, is recorded but not chargeable, with the hangup cause.
 *
 * Values under `variables` are URL-decoded as they are used; numbers are otherwise kept as written (a `sip:`
 * prefix and `@host` suffix are dropped), since normalization to E.164 is per source and happens later.
 */
export function mapFreeswitchCdr(cdr: unknown, source: string): MapResult {
  try {
    return { ok: true, cdr: mapLeg(cdr, source) };
  } catch (error) {
    if (error instanceof Rejected) return { ok: false, rejection: { field: error.field, reason: error.reason } };
    throw error;
  }
}

/** Thrown by the mapping helpers and turned into a rejection by mapFreeswitchCdr; never escapes. */
class Rejected extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

function fail(field: string, reason: string): never {
  throw new Rejected(field, reason);
}

type Json = Record<string, unknown>;

function mapLeg(cdr: unknown, source: string) {
  if (!isObject(cdr)) fail("body", "a mod_json_cdr record must be a JSON object");
  const vars = cdr.variables;
  if (!isObject(vars)) fail("variables", "is missing or not an object");
  const profile = callerProfile(cdr.callflow);

  const cdrId =
    variable(vars, "uuid") ??
    profileValue(profile, "uuid") ??
    fail("variables.uuid", "is missing: the call leg's uuid is its idempotency key");
  const direction = legDirection(vars, cdr.channel_data);
  const caller =
    firstNumber([
      () => variable(vars, "caller_id_number"),
      () => profileValue(profile, "caller_id_number"),
      () => profileValue(profile, "ani"),
      () => variable(vars, "sip_from_user"),
    ]) ?? fail("variables.caller_id_number", "is missing, and so are callflow caller_id_number, ani and sip_from_user");
  const callee =
    firstNumber([
      () => variable(vars, "destination_number"),
      () => profileValue(profile, "destination_number"),
      () => variable(vars, "sip_to_user"),
    ]) ?? fail("variables.destination_number", "is missing, and so are callflow destination_number and sip_to_user");

  const start = epochMs(vars, "start_uepoch", "start_epoch");
  if (start === undefined) fail("variables.start_epoch", "is missing: the leg has no start time");
  if (start.ms === 0) fail(`variables.${start.field}`, "is 0: the leg has no start time");
  const answer = epochMs(vars, "answer_uepoch", "answer_epoch");
  const answered = answer !== undefined && answer.ms > 0;
  const billsec = wholeSeconds(vars, "billsec");
  const cause = variable(vars, "hangup_cause");

  const chargeable = answered && billsec > 0;
  let note: string | undefined;
  if (!answered) note = `unanswered (${cause ?? "no answer time"})`;
  else if (billsec === 0) note = `billsec 0 (${cause ?? "answered"})`;
  return {
    record: {
      recordType: "voice",
      cdrId,
      source,
      servedMSISDN: direction === "outgoing" ? caller : callee,
      calledNumber: direction === "outgoing" ? callee : caller,
      recordOpeningTime: new Date(answered ? answer.ms : start.ms).toISOString(),
      duration: chargeable ? billsec : 0,
      direction,
    },
    chargeable,
    ...(note === undefined ? {} : { note }),
  };
}

/**
 * A channel variable, URL-decoded (encode-values=true is FreeSWITCH's default; a value that was not encoded
 * decodes to itself unless it holds a `%`). Absent, null and empty are all "absent".
 */
function variable(vars: Json, name: string): string | undefined {
  const raw = vars[name];
  if (raw === undefined || raw === null || raw === "") return undefined;
  if (typeof raw !== "string") fail(`variables.${name}`, "must be a string");
  let value = raw;
  if (raw.includes("%")) {
    try {
      value = decodeURIComponent(raw);
    } catch {
      fail(`variables.${name}`, "has a malformed %-escape (variable values are URL-encoded)");
    }
  }
  if (value.includes("\u0000")) fail(`variables.${name}`, "contains a NUL character");
  return value === "" ? undefined : value;
}

/** The caller profile of the leg: `callflow` is an array of profiles (newest first) since 1.10, an object before. */
function callerProfile(callflow: unknown): { path: string; values: Json } | undefined {
  const [flow, path] = Array.isArray(callflow) ? [callflow[0], "callflow[0]"] : [callflow, "callflow"];
  if (!isObject(flow) || !isObject(flow.caller_profile)) return undefined;
  return { path: `${path}.caller_profile`, values: flow.caller_profile };
}

/** A caller profile value: FreeSWITCH writes these without URL-encoding, so they are taken as they are. */
function profileValue(profile: { path: string; values: Json } | undefined, name: string): string | undefined {
  const value = profile?.values[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") fail(`${profile?.path}.${name}`, "must be a string");
  return value;
}

/** The first candidate that yields a number; later candidates are not read (nor their encoding checked). */
function firstNumber(candidates: Array<() => string | undefined>): string | undefined {
  for (const candidate of candidates) {
    const value = candidate();
    if (value === undefined) continue;
    const number = stripSipUri(value);
    if (number !== "") return number;
  }
  return undefined;
}

/** `sip:+4930123@host;user=phone` → `+4930123`. Nothing else is touched: normalization is per source, later. */
function stripSipUri(value: string): string {
  let number = value.trim().replace(/^sips?:/i, "");
  const at = number.indexOf("@");
  if (at !== -1) number = number.slice(0, at);
  return number;
}

function legDirection(vars: Json, channelData: unknown): "outgoing" | "incoming" {
  const fromChannel = isObject(channelData) && typeof channelData.direction === "string" ? channelData.direction : "";
  const direction = (variable(vars, "direction") ?? fromChannel).toLowerCase();
  if (direction === "inbound") return "outgoing";
  if (direction === "outbound") return "incoming";
  return fail("variables.direction", `must be "inbound" or "outbound", got "${direction}"`);
}

/** 2000-01-01 to 2100-01-01: an epoch outside this is a broken clock or a mangled field, not a call. */
const EARLIEST_MS = Date.UTC(2000, 0, 1);
const LATEST_MS = Date.UTC(2100, 0, 1);

/**
 * An instant from the microsecond variable (preferred: it keeps the sub-second part) or the second one.
 * undefined when neither is present; ms 0 when FreeSWITCH wrote "0" (the event never happened).
 */
function epochMs(vars: Json, microsName: string, secondsName: string): { ms: number; field: string } | undefined {
  const micros = variable(vars, microsName);
  if (micros !== undefined) {
    if (!/^\d{1,17}$/.test(micros))
      fail(`variables.${microsName}`, `must be microseconds since the epoch, got "${micros}"`);
    return checkedEpoch(Math.floor(Number(micros) / 1000), microsName);
  }
  const seconds = variable(vars, secondsName);
  if (seconds === undefined) return undefined;
  if (!/^\d{1,11}$/.test(seconds))
    fail(`variables.${secondsName}`, `must be seconds since the epoch, got "${seconds}"`);
  return checkedEpoch(Number(seconds) * 1000, secondsName);
}

function checkedEpoch(ms: number, field: string): { ms: number; field: string } {
  if (ms !== 0 && (ms < EARLIEST_MS || ms >= LATEST_MS)) {
    fail(`variables.${field}`, "is not a plausible time (before 2000 or after 2099)");
  }
  return { ms, field };
}

function wholeSeconds(vars: Json, name: string): number {
  const value = variable(vars, name);
  if (value === undefined) fail(`variables.${name}`, "is missing");
  if (!/^\d{1,9}$/.test(value))
    fail(`variables.${name}`, `must be a non-negative whole number of seconds, got "${value}"`);
  return Number(value);
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function refuse(field: string, reason: string): { ok: false; rejection: RecordRejection } {
  return { ok: false, rejection: { field, reason } };
}
