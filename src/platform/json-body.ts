import secureJson from "secure-json-parse";
import { AppError } from "./errors.js";

/**
 * Request bodies are parsed here, once, for every JSON content type (API.md): bytes must be valid UTF-8,
 * no string may hold NUL or a lone surrogate, no object may repeat a key (parsers disagree on which
 * copy wins, so an attacker could show one value to a proxy and another to us), and prototype keys
 * are refused. The checks walk the text once; bodies are bounded by the body limit.
 */
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decode(raw: Buffer): string {
  try {
    return utf8.decode(raw);
  } catch {
    // TextDecoder throws TypeError on the first invalid sequence.
    throw new AppError("bad_request", "invalid_encoding", "request body is not valid UTF-8");
  }
}

/** A text body (CSV): valid UTF-8 without NUL characters. */
export function parseTextBody(raw: Buffer): string {
  const text = decode(raw);
  if (text.includes("\u0000")) throw new AppError("bad_request", "invalid_string", "request body contains NUL");
  return text;
}

export function parseJsonBody(raw: Buffer): unknown {
  const text = decode(raw);
  if (text.trim() === "") throw new AppError("bad_request", "malformed_json", "request body is empty");
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: "error", constructorAction: "error" });
  } catch (error) {
    // SyntaxError from JSON.parse, or secure-json-parse refusing __proto__/constructor keys.
    const detail = error instanceof Error ? error.message : "unparseable";
    throw new AppError("bad_request", "malformed_json", `request body is not valid JSON: ${detail}`);
  }
  assertCleanJsonText(text);
  return value;
}

/**
 * Walks JSON text that JSON.parse already accepted and rejects duplicate keys, NUL characters and lone
 * surrogates, naming the path where each was found. `repeatable` names keys a known sender legitimately
 * repeats (FreeSWITCH's top-level `callflow`); the parse keeps the last copy of those.
 */
export function assertCleanJsonText(
  text: string,
  repeatable: (key: string, depth: number) => boolean = () => false,
): void {
  // One frame per open container: the keys seen so far (objects) or null (arrays), and the path.
  const stack: Array<{ keys: Set<string> | null; path: string; index: number }> = [];
  let pendingKey: string | null = null;
  const pathOf = () => {
    const top = stack[stack.length - 1];
    if (!top) return "body";
    if (top.keys === null) return `${top.path}[${top.index}]`;
    return pendingKey === null ? top.path : joinPath(top.path, pendingKey);
  };
  let i = 0;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const end = stringEnd(text, i);
      const raw = text.slice(i + 1, end);
      const value = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
      if (value.includes("\u0000")) {
        throw new AppError("bad_request", "invalid_string", `${pathOf()}: strings must not contain NUL`, pathOf());
      }
      if (!value.isWellFormed()) {
        throw new AppError("bad_request", "invalid_string", `${pathOf()}: string is not valid Unicode`, pathOf());
      }
      i = end + 1;
      const top = stack[stack.length - 1];
      if (top?.keys && pendingKey === null && nextSignificant(text, i) === 0x3a /* : */) {
        if (top.keys.has(value) && !repeatable(value, stack.length)) {
          const field = joinPath(top.path, value);
          throw new AppError("bad_request", "duplicate_key", `${field}: key appears more than once`, field);
        }
        top.keys.add(value);
        pendingKey = value;
      }
      continue;
    }
    if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      stack.push({ keys: ch === 0x7b ? new Set() : null, path: pathOf(), index: 0 });
      pendingKey = null;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
      pendingKey = null;
    } else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top && top.keys === null) top.index += 1;
      pendingKey = null;
    }
    i += 1;
  }
}

function joinPath(parent: string, key: string): string {
  const segment = /^[A-Za-z_@$][A-Za-z0-9_@$-]*$/.test(key) ? key : JSON.stringify(key);
  return parent === "body" ? segment : `${parent}.${segment}`;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch === 0x5c /* \ */) i += 2;
    else if (ch === 0x22) return i;
    else i += 1;
  }
  return i;
}

function nextSignificant(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch !== 0x20 && ch !== 0x0a && ch !== 0x0d && ch !== 0x09) return ch;
    i += 1;
  }
  return -1;
}
