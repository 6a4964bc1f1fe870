import t from "tap";
import { startEngine } from "../support/engine.js";
import { createBillingAccount } from "../support/fixtures.js";

/**
 * The attacker's probes of issue 20 replayed over real HTTP against a listening engine: the ones that found
 * something (each fixed and tested on its own in probes.test.ts and the module tests) and a sample of those that
 * held. Every answer must be the TMF error body with a 4xx, never a 5xx, and nothing may change.
 */

interface Probe {
  name: string;
  method: string;
  path: string;
  key?: "admin" | "crm" | "network" | "finance" | "subscriber" | "none" | "bogus";
  body?: string;
  contentType?: string;
  status: number;
  code?: string;
}

t.test("probes over HTTP: clear 4xx answers in the TMF shape, nothing changed", async (t) => {
  const engine = await startEngine(t, { env: { BSS_CALLBACK_ALLOW: "" } });
  const base = await engine.app.listen({ port: 0, host: "127.0.0.1" });
  const mine = await createBillingAccount(engine);
  const theirs = await createBillingAccount(engine);
  const subscriber = await engine.subscriberKey(mine.id);
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-2", countryCode: "49" } });
  const element = (
    await engine.request("POST", "/api/v1/api-keys", {
      body: { name: "msc-1 only", role: "network", cdrSources: ["msc-1"] },
    })
  ).json().key as string;
  const keys: Record<string, string | null> = {
    ...engine.keys,
    subscriber,
    none: null,
    bogus: "bss_00000000_notakeyatallnotakeyatallnotakey",
  };
  const ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount";
  const before = await engine.count("audit_log");

  const probes: Probe[] = [
    // Authentication and roles.
    { name: "no key", method: "GET", path: ACCOUNTS, key: "none", status: 401, code: "missing_api_key" },
    { name: "unknown key", method: "GET", path: ACCOUNTS, key: "bogus", status: 401, code: "invalid_api_key" },
    { name: "network key reads customers", method: "GET", path: ACCOUNTS, key: "network", status: 403 },
    { name: "subscriber lists keys", method: "GET", path: "/api/v1/api-keys", key: "subscriber", status: 403 },
    {
      name: "subscriber reads another account",
      method: "GET",
      path: `${ACCOUNTS}/${theirs.id}`,
      key: "subscriber",
      status: 404,
    },
    {
      name: "subscriber reads another account's self-care",
      method: "GET",
      path: `/api/v1/self-care/${theirs.id}`,
      key: "subscriber",
      status: 404,
    },
    // Bodies.
    { name: "malformed JSON", method: "POST", path: ACCOUNTS, body: '{"name":', status: 400, code: "malformed_json" },
    { name: "wrong type", method: "POST", path: ACCOUNTS, body: '{"name":42}', status: 400 },
    { name: "prototype pollution", method: "POST", path: ACCOUNTS, body: '{"__proto__":{"x":1}}', status: 400 },
    {
      name: "huge body",
      method: "POST",
      path: ACCOUNTS,
      body: JSON.stringify({ name: "x".repeat(2_000_000) }),
      status: 413,
    },
    { name: "text/plain body", method: "POST", path: ACCOUNTS, body: "{}", contentType: "text/plain", status: 415 },
    {
      name: "CR/LF in a name",
      method: "POST",
      path: "/tmf-api/party/v4/individual",
      body: '{"givenName":"A\\r\\nB","familyName":"C"}',
      status: 400,
    },
    // Queries and paths.
    {
      name: "NUL in a query value",
      method: "GET",
      path: `${ACCOUNTS}?name=%00`,
      status: 400,
      code: "invalid_parameter",
    },
    { name: "SQL in a filter", method: "GET", path: `${ACCOUNTS}?state=active'%20or%201=1--`, status: 400 },
    { name: "unknown id", method: "GET", path: `${ACCOUNTS}/00000000-0000-7000-8000-000000000000`, status: 404 },
    { name: "id that is not an id", method: "GET", path: `${ACCOUNTS}/..%2F..%2Fetc%2Fpasswd`, status: 404 },
    { name: "limit beyond the maximum", method: "GET", path: `${ACCOUNTS}?limit=100000`, status: 400 },
    // Hub callbacks into the operator's network.
    {
      name: "callback to cloud metadata",
      method: "POST",
      path: "/tmf-api/accountManagement/v4/hub",
      body: '{"callback":"http://169.254.169.254/latest/meta-data"}',
      status: 400,
      code: "forbidden_callback",
    },
    {
      name: "callback to IPv4-compatible loopback",
      method: "POST",
      path: "/tmf-api/accountManagement/v4/hub",
      body: '{"callback":"http://[::7f00:1]/"}',
      status: 400,
      code: "forbidden_callback",
    },
    // CDRs.
    {
      name: "a record for another element's source",
      method: "POST",
      path: "/api/v1/cdrs/asterisk?source=msc-2",
      key: "network",
      body: "",
      contentType: "text/csv",
      status: 403,
      code: "source_not_allowed",
    },
    // Messages.
    {
      name: "SMS to a stranger",
      method: "POST",
      path: `/api/v1/customers/${mine.customerId}/messages`,
      body: '{"channel":"sms","to":"+447700900999","body":"win"}',
      status: 422,
      code: "not_own_contact",
    },
    // Illegal transitions and duplicates.
    {
      name: "an unknown state",
      method: "PATCH",
      path: `${ACCOUNTS}/${mine.id}`,
      body: '{"state":"deleted"}',
      contentType: "application/merge-patch+json",
      status: 400,
    },
    {
      name: "a duplicate CDR source",
      method: "POST",
      path: "/api/v1/cdr-sources",
      body: '{"id":"msc-1","countryCode":"49"}',
      status: 409,
      code: "duplicate",
    },
  ];

  for (const probe of probes) {
    const key = probe.key === "network" ? element : keys[probe.key ?? "admin"];
    const headers: Record<string, string> = {};
    if (key !== null && key !== undefined) headers.authorization = `Bearer ${key}`;
    if (probe.body !== undefined) headers["content-type"] = probe.contentType ?? "application/json";
    const response = await fetch(`${base}${probe.path}`, {
      method: probe.method,
      headers,
      ...(probe.body === undefined ? {} : { body: probe.body }),
    });
    const text = await response.text();
    t.equal(response.status, probe.status, `${probe.name}: ${response.status} ${text.slice(0, 200)}`);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      t.fail(`${probe.name}: the answer is not JSON`);
    }
    t.equal(body.status, String(probe.status), `${probe.name}: the TMF error body`);
    t.type(body.reason, "string", `${probe.name}: a reason`);
    if (probe.code !== undefined) t.equal(body.code, probe.code, `${probe.name}: code ${probe.code}`);
  }
  t.equal(await engine.count("hub_subscriptions"), 0, "no hub was made");
  t.equal(await engine.count("customer_messages"), 0, "no message was sent");
  t.equal(await engine.count("usage_records"), 0, "no CDR was stored");
  t.equal(await engine.count("audit_log"), before, "nothing was written");
});
