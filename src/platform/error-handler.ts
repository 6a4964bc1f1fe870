import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AppError, ERROR_STATUS, type ErrorKind, errorBody } from "./errors.js";
import { describeValidationError } from "./validation.js";

/** Fastify's own error codes we answer with a specific kind. */
const FASTIFY_CODES: Record<string, { kind: ErrorKind; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { kind: "payload_too_large", code: "body_too_large" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { kind: "unsupported_media_type", code: "unsupported_media_type" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { kind: "bad_request", code: "invalid_content_length" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { kind: "bad_request", code: "malformed_json" },
  FST_ERR_CTP_INVALID_JSON_BODY: { kind: "bad_request", code: "malformed_json" },
  FST_ERR_BAD_URL: { kind: "bad_request", code: "bad_url" },
};

/** Errors that mean a dependency is down, not that the request or the code is wrong. */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);
const UNAVAILABLE_NAMES = new Set(["MaxRetriesPerRequestError"]);

/** Follows `cause` links: drizzle wraps driver errors in DrizzleQueryError. */
function* causes(error: unknown): Generator<Record<string, unknown>> {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    yield current as Record<string, unknown>;
    current = (current as { cause?: unknown }).cause;
  }
}

export function isUnavailable(error: unknown): boolean {
  for (const cause of causes(error)) {
    if (typeof cause.code === "string" && UNAVAILABLE_CODES.has(cause.code)) return true;
    if (typeof cause.name === "string" && UNAVAILABLE_NAMES.has(cause.name)) return true;
    if (cause.message === "Connection is closed." || cause.message === "Command timed out") return true;
  }
  return false;
}

/** PostgreSQL's SQLSTATE of an error, looking through wrappers. */
export function sqlState(error: unknown): string | undefined {
  for (const cause of causes(error)) {
    if (typeof cause.code === "string" && /^[0-9A-Z]{5}$/.test(cause.code)) return cause.code;
  }
  return undefined;
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof AppError) {
      if (error.kind === "internal" || error.kind === "unavailable") request.log.error({ err: error }, error.message);
      return reply.code(error.status).send(errorBody(error.kind, error.code, error.message, error.field, error.errors));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation && fastifyError.validation.length > 0) {
      const part = fastifyError.validationContext ?? "body";
      const first = fastifyError.validation[0];
      const { field, reason } = first
        ? describeValidationError(first as Parameters<typeof describeValidationError>[0], part)
        : { field: part, reason: "is invalid" };
      return reply
        .code(400)
        .send(
          errorBody(
            "bad_request",
            part === "body" ? "invalid_field" : "invalid_parameter",
            `${field}: ${reason}`,
            field,
          ),
        );
    }
    const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
    if (mapped) {
      return reply.code(ERROR_STATUS[mapped.kind]).send(errorBody(mapped.kind, mapped.code, fastifyError.message));
    }
    if (isUnavailable(error)) {
      request.log.error({ err: error }, "dependency unavailable");
      reply.header("retry-after", "1");
      return reply
        .code(503)
        .send(errorBody("unavailable", "dependency_unavailable", "a dependency is unavailable; retry shortly"));
    }
    if (sqlState(error) === "23505") {
      // A unique constraint caught what a service did not check first (a race between two writers).
      request.log.warn({ err: error }, "unique violation reached the error handler");
      return reply.code(409).send(errorBody("conflict", "duplicate", "a resource with the same unique key exists"));
    }
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({
        code: fastifyError.code ? fastifyError.code.toLowerCase() : "bad_request",
        reason: "Bad request",
        message: fastifyError.message,
        status: String(status),
        "@type": "Error",
      });
    }
    request.log.error({ err: error }, "unhandled error");
    return reply
      .code(500)
      .send(errorBody("internal", "internal_error", `internal error; quote request id ${request.id} to the operator`));
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(errorBody("not_found", "route_not_found", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`));
  });
}
