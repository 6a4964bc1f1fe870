import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyLoggerOptions } from "fastify";
import { type LoggerOptions, stdSerializers } from "pino";
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
      // postgres.js errors carry the failed statement's parameters (customer data, secrets before sealing):
      // the statement is kept for diagnosis, its parameters never reach a log.
      err(error: Error) {
        const serialized = stdSerializers.err(error);
        if ("parameters" in serialized) serialized.parameters = REDACTED;
        if ("args" in serialized) serialized.args = REDACTED;
        return serialized;
      },
      req(request: { method: string; url: string; ip: string; headers: IncomingMessage["headers"] }) {
        const caller = callerRequestIdOf(request.headers);
        return {
          method: request.method,
          url: redactQuery(request.url),
          remoteAddress: request.ip,
          ...(caller === null ? {} : { callerRequestId: caller }),
        };
      },
    },
  };
}

/** Query parameters that carry credentials (WebSocket tickets) are masked in logged URLs. */
export function redactQuery(url: string): string {
  return url.replace(/([?&](?:ticket|token|key|apiKey)=)[^&]*/gi, `$1${REDACTED}`);
}

/**
 * The engine's own id for a request, always generated: a caller's X-Request-Id is the caller's to choose (and so
 * to repeat or forge), so it is kept beside it (`callerRequestIdOf`), never in its place.
 */
export function requestIdFor(_request: IncomingMessage): string {
  return randomUUID();
}

/** The caller's X-Request-Id when it looks like one (a trace id of its own), for logs, audit rows and the answer. */
export function callerRequestIdOf(headers: IncomingMessage["headers"]): string | null {
  const header = headers["x-request-id"];
  return typeof header === "string" && REQUEST_ID_PATTERN.test(header) ? header : null;
}
