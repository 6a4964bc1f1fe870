import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyLoggerOptions } from "fastify";
import type { LoggerOptions } from "pino";
import { REDACTED, SECRET_FIELD_NAMES } from "../shared/redact.js";

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * pino options: structured JSON, request ids (the caller's X-Request-Id when it looks like one), and
 * redaction of credentials and SIM secrets wherever they appear in a logged object.
 */
export function loggerOptions(level: string): FastifyLoggerOptions & LoggerOptions {
  const secretPaths = SECRET_FIELD_NAMES.flatMap((name) => [name, `*.${name}`, `*.*.${name}`]);
  return {
    level,
    redact: {
      paths: ["req.headers.authorization", 'req.headers["x-api-key"]', "req.headers.cookie", ...secretPaths],
      censor: REDACTED,
    },
    serializers: {
      req(request: { method: string; url: string; ip: string }) {
        return { method: request.method, url: redactQuery(request.url), remoteAddress: request.ip };
      },
    },
  };
}

/** Query parameters that carry credentials (WebSocket tickets) are masked in logged URLs. */
export function redactQuery(url: string): string {
  return url.replace(/([?&](?:ticket|token|key|apiKey)=)[^&]*/gi, `$1${REDACTED}`);
}

export function requestIdFor(request: IncomingMessage): string {
  const header = request.headers["x-request-id"];
  return typeof header === "string" && REQUEST_ID_PATTERN.test(header) ? header : randomUUID();
}
