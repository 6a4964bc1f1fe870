import { AppError } from "../../platform/errors.js";
import { parseJsonBody } from "../../platform/json-body.js";
import type { Rejection } from "./cdr-record.js";

/** One record of a batch as it arrived: parsed, or refused on its own (bad UTF-8, bad JSON, duplicate keys). */
export type BodyItem = { value: unknown; line?: number } | { rejection: Rejection; line?: number };

/**
 * Splits a CDR batch into its records before anything is decoded, so a record with invalid UTF-8, a NUL, a
 * duplicate key or broken JSON is refused alone and the others go on (API.md: every rule per record).
 * JSON arrays are split on the bytes: the structural characters are ASCII, which UTF-8 never uses inside a
 * multi-byte character, so depth and string state can be tracked byte by byte. Only when the array itself
 * is broken (no `[`, an unterminated string) is the whole body refused, because no record boundary can be
 * trusted after that point. NDJSON is split on newlines.
 */
export function splitJsonArray(raw: Buffer, max: number): BodyItem[] {
  let i = skipSpace(raw, 0);
  if (raw[i] === 0xef && raw[i + 1] === 0xbb && raw[i + 2] === 0xbf) i = skipSpace(raw, i + 3);
  if (raw[i] !== 0x5b /* [ */) {
    throw new AppError("bad_request", "malformed_json", "the body must be a JSON array of CDRs (or NDJSON)", "body");
  }
  i = skipSpace(raw, i + 1);
  const items: BodyItem[] = [];
  if (raw[i] === 0x5d /* ] */) return expectEnd(raw, i + 1, items);
  for (;;) {
    const start = i;
    let depth = 0;
    while (i < raw.length) {
      const byte = raw[i] as number;
      if (byte === 0x22 /* " */) {
        i = stringEnd(raw, i);
        continue;
      }
      if (byte === 0x7b || byte === 0x5b) depth += 1;
      else if (byte === 0x7d || byte === 0x5d) {
        if (depth === 0) {
          if (byte === 0x5d) break;
          throw new AppError(
            "bad_request",
            "malformed_json",
            `record ${items.length}: unexpected '}' in the array`,
            "body",
          );
        }
        depth -= 1;
      } else if (byte === 0x2c /* , */ && depth === 0) break;
      i += 1;
    }
    if (i >= raw.length) {
      throw new AppError(
        "bad_request",
        "malformed_json",
        `record ${items.length}: the JSON array is not closed`,
        "body",
      );
    }
    items.push(parseItem(raw.subarray(start, i)));
    if (items.length > max) throw tooManyRecords(max);
    if (raw[i] === 0x5d) return expectEnd(raw, i + 1, items);
    i = skipSpace(raw, i + 1);
  }
}

export function splitNdjson(raw: Buffer, max: number): BodyItem[] {
  const items: BodyItem[] = [];
  let start = 0;
  let line = 1;
  while (start <= raw.length) {
    let end = raw.indexOf(0x0a, start);
    if (end === -1) end = raw.length;
    const trimmed = trimSpace(raw.subarray(start, end));
    if (trimmed.length > 0) {
      items.push({ ...parseItem(trimmed), line });
      if (items.length > max) throw tooManyRecords(max);
    }
    start = end + 1;
    line += 1;
  }
  return items;
}

/** Splitting stops at the first record past the limit: a hostile body costs no more than a full batch. */
export function tooManyRecords(max: number): AppError {
  return new AppError("payload_too_large", "too_many_records", `a request carries at most ${max} records`);
}

function parseItem(bytes: Buffer): BodyItem {
  if (bytes.length === 0) return { rejection: { field: "record", reason: "is empty" } };
  try {
    return { value: parseJsonBody(bytes) };
  } catch (error) {
    if (error instanceof AppError) {
      return { rejection: { field: error.field ?? "record", reason: error.message.replace(/^request body /, "") } };
    }
    throw error;
  }
}

function expectEnd(raw: Buffer, from: number, items: BodyItem[]): BodyItem[] {
  if (skipSpace(raw, from) !== raw.length) {
    throw new AppError("bad_request", "malformed_json", "unexpected content after the JSON array", "body");
  }
  return items;
}

function stringEnd(raw: Buffer, start: number): number {
  let i = start + 1;
  while (i < raw.length) {
    const byte = raw[i];
    if (byte === 0x5c /* \ */) i += 2;
    else if (byte === 0x22) return i + 1;
    else i += 1;
  }
  throw new AppError("bad_request", "malformed_json", "a string in the JSON array is not closed", "body");
}

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function skipSpace(raw: Buffer, from: number): number {
  let i = from;
  while (i < raw.length && isSpace(raw[i])) i += 1;
  return i;
}

function trimSpace(bytes: Buffer): Buffer {
  let start = 0;
  let end = bytes.length;
  while (start < end && isSpace(bytes[start])) start += 1;
  while (end > start && isSpace(bytes[end - 1])) end -= 1;
  return bytes.subarray(start, end);
}
