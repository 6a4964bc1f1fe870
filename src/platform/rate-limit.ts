import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import { AppError } from "./errors.js";

export interface RateLimits {
  /** Requests per minute per staff or subscriber key; 0: no limit. */
  perMinute: number;
  /** Requests per minute per network key (network elements post CDRs in bursts); 0: no limit. */
  networkPerMinute: number;
}

/**
 * Per-key rate limits (@fastify/rate-limit): counted in this API process's memory, so the CDR path gains no
 * round trip; with several API processes behind a balancer a key may send up to the limit to each. Runs after
 * authentication (a route-level onRequest hook follows the app-level one), so the key is known; public routes
 * (health, readiness, documentation, the WebSocket upgrade, which has its own per-key socket cap) are not
 * limited. An exceeded limit answers 429 with Retry-After and the TMF error body.
 */
export async function registerRateLimits(app: FastifyInstance, limits: RateLimits): Promise<void> {
  const limitOf = (role: string | undefined) => (role === "network" ? limits.networkPerMinute : limits.perMinute);
  await app.register(rateLimit, {
    global: true,
    timeWindow: 60_000,
    max: (request) => limitOf(request.principal?.role),
    keyGenerator: (request) => request.principal?.keyId ?? request.ip,
    allowList: (request) => request.principal === null || limitOf(request.principal.role) === 0,
    // Many keys hold a counter each; the least recently seen are forgotten first.
    cache: 100_000,
    addHeadersOnExceeding: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true },
    errorResponseBuilder: (_request, context) =>
      new AppError(
        "rate_limited",
        "rate_limited",
        `this API key sent more than ${context.max} requests in a minute; retry in ${context.after}`,
      ),
  });
}
