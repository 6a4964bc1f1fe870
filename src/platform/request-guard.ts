import type { FastifyInstance } from "fastify";
import { AppError } from "./errors.js";

/**
 * Path and query values must decode to valid UTF-8 without NUL: PostgreSQL refuses a NUL in text (and a database
 * error is no answer for a client), and a byte sequence that is not UTF-8 has no meaning as an id or a filter.
 * Checked on the raw URL before routing, so every route (and a 404) answers the same 400 naming the parameter.
 */
export function registerRequestGuard(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    const url = request.raw.url ?? "";
    const mark = url.indexOf("?");
    checkValue(mark === -1 ? url : url.slice(0, mark), "path", "path");
    if (mark === -1) return;
    for (const pair of url.slice(mark + 1).split("&")) {
      const equals = pair.indexOf("=");
      const name = equals === -1 ? pair : pair.slice(0, equals);
      const decodedName = checkValue(name, "query", "query parameter name");
      if (equals !== -1) checkValue(pair.slice(equals + 1), decodedName, `query parameter ${decodedName}`);
    }
  });
}

function checkValue(raw: string, field: string, what: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    // URIError: a %-escape that is malformed or does not decode to UTF-8.
    throw new AppError("bad_request", "invalid_parameter", `${what}: is not valid percent-encoded UTF-8`, field);
  }
  if (decoded.includes("\u0000")) {
    throw new AppError("bad_request", "invalid_parameter", `${what}: must not contain a NUL character`, field);
  }
  return decoded;
}
