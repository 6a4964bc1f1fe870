import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { Type } from "typebox";
import type { Database } from "./database.js";
import { errorResponses } from "./tmf.js";

/** A Redis connection as metrics see it; null in embedded mode. */
interface RedisStatus {
  readonly status: string;
}

/**
 * Prometheus metrics with one registry per app instance (the global registry throws on a second
 * buildApp in the same process, as tests do): per-route request counts and latency histograms, and
 * gauges of the database pool and the Redis connection.
 */
export function registerMetrics(app: FastifyInstance, database: Database, redis: RedisStatus | null): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "bss_" });
  const requests = new Counter({
    name: "bss_http_requests_total",
    help: "HTTP requests by method, route and status code",
    labelNames: ["method", "route", "status_code"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "bss_http_request_duration_seconds",
    help: "HTTP request latency by method and route",
    labelNames: ["method", "route"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  new Gauge({
    name: "bss_db_pool_max_connections",
    help: "Most connections the database pool opens",
    registers: [registry],
    collect() {
      this.set(database.stats().poolMax);
    },
  });
  new Gauge({
    name: "bss_db_transactions_in_flight",
    help: "Database transactions open right now, each holding a pool connection",
    registers: [registry],
    collect() {
      this.set(database.stats().transactionsInFlight);
    },
  });
  new Gauge({
    name: "bss_redis_connected",
    help: "1 when the Redis connection is ready, 0 when it is not, absent in embedded mode",
    registers: [registry],
    collect() {
      if (redis !== null) this.set(redis.status === "ready" ? 1 : 0);
    },
  });

  app.addHook("onResponse", async (request, reply) => {
    // Unmatched URLs share one label so that scanners cannot grow the label set without bound.
    const route = request.routeOptions.url ?? "unmatched";
    requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.get(
    "/metrics",
    {
      config: { roles: ["admin"] },
      schema: {
        tags: ["operations"],
        summary: "Prometheus metrics (text exposition format)",
        response: { 200: Type.String(), ...errorResponses() },
      },
    },
    async (_request, reply) => {
      reply.header("content-type", registry.contentType);
      return registry.metrics();
    },
  );
  return registry;
}
