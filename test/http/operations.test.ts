import t from "tap";
import { buildApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { hasServers, startEngine } from "../support/engine.js";
import { freePort } from "../support/services.js";

/** Liveness, readiness, metrics and the OpenAPI description. */

t.test("health is public; readiness reports the database and Redis", async (t) => {
  const engine = await startEngine(t);
  const health = await engine.request("GET", "/health", { key: null });
  t.same(health.json(), { status: "ok" });
  const ready = await engine.request("GET", "/ready", { key: null });
  t.equal(ready.statusCode, 200);
  t.equal(ready.json().checks.database.status, "up");
  t.equal(ready.json().checks.redis.status, hasServers ? "up" : "embedded");
});

t.test("readiness answers 503 with the TMF error body when Redis is down", async (t) => {
  const port = await freePort();
  const config = {
    ...loadConfig({ REDIS_URL: `redis://127.0.0.1:${port}`, LOG_LEVEL: "silent" }),
    dataDir: "memory://",
  };
  const app = await buildApp(config, { logger: false });
  t.teardown(() => app.close());
  const response = await app.inject({ method: "GET", url: "/ready" });
  t.equal(response.statusCode, 503);
  const body = response.json();
  t.equal(body.code, "not_ready");
  t.equal(body.status, "503");
  t.equal(body.checks.redis.status, "down");
  t.equal(body.checks.database.status, "up");
  t.match(body.message, /redis/);
});

t.test("metrics: per-route counts and latency, pool gauges, admin only", async (t) => {
  const engine = await startEngine(t);
  await engine.request("GET", "/tmf-api/party/v4/individual");
  await engine.request("GET", "/tmf-api/party/v4/individual/00000000-0000-7000-8000-000000000000");
  t.equal((await engine.request("GET", "/metrics", { key: null })).statusCode, 401);
  t.equal((await engine.request("GET", "/metrics", { key: engine.keys.crm })).statusCode, 403);
  const metrics = await engine.request("GET", "/metrics");
  t.equal(metrics.statusCode, 200);
  t.match(metrics.headers["content-type"], /text\/plain/);
  const text = metrics.body;
  t.match(text, /bss_http_requests_total\{method="GET",route="\/tmf-api\/party\/v4\/individual",status_code="200"\} 1/);
  t.match(
    text,
    /bss_http_requests_total\{method="GET",route="\/tmf-api\/party\/v4\/individual\/:id",status_code="404"\} 1/,
  );
  t.match(
    text,
    /bss_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/tmf-api\/party\/v4\/individual"\}/,
  );
  t.match(text, /bss_db_pool_max_connections \d+/);
  t.match(text, /bss_db_transactions_in_flight 0/);
  if (hasServers) t.match(text, /bss_redis_connected 1/);
});

t.test("the OpenAPI description lists every API route with bearer auth", async (t) => {
  const engine = await startEngine(t);
  const docs = await engine.request("GET", "/docs/json", { key: null });
  t.equal(docs.statusCode, 200);
  const spec = docs.json();
  t.equal(spec.openapi, "3.0.3");
  t.same(spec.components.securitySchemes.apiKey, { type: "http", scheme: "bearer" });
  for (const path of [
    "/tmf-api/party/v4/individual",
    "/tmf-api/party/v4/organization/{id}",
    "/tmf-api/customerManagement/v4/customer",
    "/tmf-api/accountManagement/v4/billingAccount/{id}",
    "/api/v1/api-keys",
    "/api/v1/audit-events",
  ]) {
    t.ok(spec.paths[path], `documents ${path}`);
  }
  t.ok(spec.paths["/tmf-api/accountManagement/v4/billingAccount"].post.requestBody, "bodies are described");
  t.equal((await engine.request("GET", "/docs", { key: null })).statusCode, 200, "the UI answers");
});
