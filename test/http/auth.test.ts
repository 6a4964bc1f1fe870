import { Writable } from "node:stream";
import t from "tap";
import { buildApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { expectError, startEngine } from "../support/engine.js";
import { createBillingAccount } from "../support/fixtures.js";

/** API keys: issue, use, expire, revoke, bootstrap; secrets never stored, returned or logged. */

const KEYS = "/api/v1/api-keys";

t.test("a key is shown once, stored only as a hash, and carries one role", async (t) => {
  const engine = await startEngine(t);
  const created = await engine.request("POST", KEYS, { body: { name: "crm desk 1", role: "crm" } });
  t.equal(created.statusCode, 201);
  const { id, key, prefix } = created.json();
  t.match(key, /^bss_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
  t.ok(key.startsWith(prefix), "the prefix identifies the key");
  t.notOk("key" in (await engine.request("GET", `${KEYS}/${id}`)).json(), "GET never returns the secret");
  t.notOk(JSON.stringify((await engine.request("GET", KEYS)).json()).includes(key), "lists never do either");
  const [row] = await engine.sql<{ secret_hash: string }>("select secret_hash from api_keys where id = $1", [id]);
  t.match(row?.secret_hash, /^[0-9a-f]{64}$/, "only a SHA-256 is stored");
  const audit = await engine.sql<{ after: unknown }>("select after from audit_log where entity_id = $1", [id]);
  t.notOk(JSON.stringify(audit).includes(key), "the audit row holds no secret");

  const asCrm = await engine.request("GET", "/tmf-api/party/v4/individual", { key });
  t.equal(asCrm.statusCode, 200);
  expectError(t, await engine.request("GET", KEYS, { key }), 403, "role_not_allowed");
});

t.test("malformed, unknown, expired and revoked keys answer 401", async (t) => {
  const engine = await startEngine(t);
  const url = "/tmf-api/party/v4/individual";
  expectError(t, await engine.request("GET", url, { key: null }), 401, "missing_api_key");
  expectError(
    t,
    await engine.request("GET", url, { key: null, headers: { authorization: "Basic YWRtaW46YWRtaW4=" } }),
    401,
    "invalid_api_key",
  );
  expectError(t, await engine.request("GET", url, { key: "bss_00000000_unknown" }), 401, "invalid_api_key");
  expectError(t, await engine.request("GET", url, { key: "x".repeat(300) }), 401, "invalid_api_key");

  const expiring = await engine.request("POST", KEYS, {
    body: { name: "temp", role: "crm", expiresAt: "2026-03-15T11:00:00Z" },
  });
  const temp = expiring.json().key as string;
  t.equal((await engine.request("GET", url, { key: temp })).statusCode, 200);
  engine.clock.set("2026-03-15T11:00:01Z");
  expectError(t, await engine.request("GET", url, { key: temp }), 401, "invalid_api_key");
  t.equal((await engine.request("GET", expiring.json().href)).json().status, "expired");
  expectError(
    t,
    await engine.request("POST", KEYS, { body: { name: "past", role: "crm", expiresAt: "2020-01-01T00:00:00Z" } }),
    400,
    "invalid_field",
    "expiresAt",
  );

  const doomed = await engine.request("POST", KEYS, { body: { name: "doomed", role: "finance" } });
  t.equal((await engine.request("GET", url, { key: doomed.json().key })).statusCode, 200, "cached as valid");
  t.equal((await engine.request("DELETE", doomed.json().href)).statusCode, 204);
  expectError(t, await engine.request("GET", url, { key: doomed.json().key }), 401, "invalid_api_key");
  expectError(t, await engine.request("DELETE", doomed.json().href), 409, "already_revoked");
  t.equal((await engine.request("GET", doomed.json().href)).json().status, "revoked");
});

t.test("key rules: names, subscriber binding, the last admin key", async (t) => {
  const engine = await startEngine(t);
  expectError(
    t,
    await engine.request("POST", KEYS, { body: { name: "test crm", role: "crm" } }),
    409,
    "duplicate_name",
    "name",
  );
  expectError(
    t,
    await engine.request("POST", KEYS, { body: { name: "s", role: "subscriber" } }),
    400,
    "invalid_field",
    "billingAccountId",
  );
  const account = await createBillingAccount(engine);
  expectError(
    t,
    await engine.request("POST", KEYS, { body: { name: "c", role: "crm", billingAccountId: account.id } }),
    400,
    "invalid_field",
    "billingAccountId",
  );
  expectError(
    t,
    await engine.request("POST", KEYS, {
      body: { name: "s", role: "subscriber", billingAccountId: "00000000-0000-7000-8000-000000000000" },
    }),
    422,
    "unknown_reference",
    "billingAccountId",
  );
  expectError(
    t,
    await engine.request("POST", KEYS, { body: { name: "s", role: "root" } }),
    400,
    "invalid_field",
    "role",
  );
  const bound = await engine.request("POST", KEYS, {
    body: { name: "s", role: "subscriber", billingAccountId: account.id },
  });
  t.equal(bound.statusCode, 201);
  t.equal(bound.json().billingAccountId, account.id);

  const admins = (await engine.request("GET", KEYS, { query: { role: "admin" } })).json();
  t.equal(admins.length, 1);
  const last = await engine.request("DELETE", admins[0].href);
  expectError(t, last, 409, "last_admin_key");
  const second = await engine.request("POST", KEYS, { body: { name: "second admin", role: "admin" } });
  t.equal(
    (await engine.request("DELETE", admins[0].href, { key: second.json().key })).statusCode,
    204,
    "with another admin it can go",
  );
});

t.test("bootstrap: the configured key becomes the first admin key, once; else one is generated", async (t) => {
  const engine = await startEngine(t);
  await engine.sql("delete from api_keys");
  const configured = "configured-admin-key-0123456789-abcdef";
  const first = await engine.app.services.access.ensureBootstrapKey(SYSTEM_ACTOR, configured);
  t.same(first, { created: true, generated: null });
  t.equal((await engine.request("GET", KEYS, { key: configured })).statusCode, 200);
  const again = await engine.app.services.access.ensureBootstrapKey(
    SYSTEM_ACTOR,
    "another-admin-key-0123456789-abcdefgh",
  );
  t.same(again, { created: false, generated: null }, "a second start changes nothing");

  await engine.sql("delete from api_keys");
  const generated = await engine.app.services.access.ensureBootstrapKey(SYSTEM_ACTOR, undefined);
  t.type(generated.generated, "string");
  t.equal((await engine.request("GET", KEYS, { key: generated.generated as string })).statusCode, 200);
});

t.test("logs carry request ids but never keys or authorization headers", async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = { ...loadConfig({ LOG_LEVEL: "info" }), dataDir: "memory://" };
  const app = await buildApp(config, { logStream: sink });
  t.teardown(() => app.close());
  const { key } = await app.services.access.create(SYSTEM_ACTOR, { name: "logged", role: "admin" });
  await app.inject({
    method: "GET",
    url: `/api/v1/api-keys?ticket=${key}`,
    headers: { authorization: `Bearer ${key}` },
  });
  await app.inject({ method: "GET", url: "/nowhere", headers: { authorization: `Bearer ${key}` } });
  const text = lines.join("");
  t.ok(lines.length >= 4, "requests were logged");
  t.notOk(text.includes(key), "the key appears nowhere in the logs");
  t.match(text, /"reqId":"[0-9a-f-]{36}"/, "each line has its request id");
});
