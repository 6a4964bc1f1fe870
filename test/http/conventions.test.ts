import t from "tap";
import { expectError, startEngine } from "../support/engine.js";
import { billingAccountBody, createBillingAccount, createCustomer, createIndividual } from "../support/fixtures.js";

/** The HTTP conventions of API.md, proven on the customer resources: errors, bodies, lists, writes. */

const IND = "/tmf-api/party/v4/individual";
const BA = "/tmf-api/accountManagement/v4/billingAccount";

t.test("bad bodies get the TMF error body, the field and the reason, and change nothing", async (t) => {
  const engine = await startEngine(t);
  const customer = await createCustomer(engine);
  const auditBefore = await engine.count("audit_log");
  const post = (options: Parameters<typeof engine.request>[2]) => engine.request("POST", BA, options);
  const good = billingAccountBody(customer.id);

  expectError(
    t,
    await post({ rawBody: '{"name": ', headers: { "content-type": "application/json" } }),
    400,
    "malformed_json",
  );
  expectError(t, await post({ rawBody: " ", headers: { "content-type": "application/json" } }), 400, "malformed_json");
  // No body at all is no body: a create then misses what it requires.
  const empty = await post({ rawBody: "", headers: { "content-type": "application/json" } });
  expectError(t, empty, 400, "invalid_field");
  t.comment(empty.json().message);
  expectError(t, await post({ body: { ...good, billCycleDay: "15" } }), 400, "invalid_field", "billCycleDay");
  expectError(t, await post({ body: { ...good, billCycleDay: 32 } }), 400, "invalid_field", "billCycleDay");
  expectError(t, await post({ body: { ...good, name: undefined } }), 400, "invalid_field", "name");
  expectError(t, await post({ body: { ...good, currency: "XYZ" } }), 400, "invalid_field", "currency");
  expectError(t, await post({ body: { ...good, currency: "eur" } }), 400, "invalid_field", "currency");
  expectError(t, await post({ body: { ...good, timeZone: "Mars/Olympus" } }), 400, "invalid_field", "timeZone");
  expectError(t, await post({ body: { ...good, taxJurisdiction: "XX" } }), 400, "invalid_field", "taxJurisdiction");
  expectError(
    t,
    await post({ body: { ...good, creditLimit: { unit: "USD", value: 10 } } }),
    400,
    "invalid_field",
    "creditLimit.unit",
  );
  expectError(
    t,
    await post({ body: { ...good, creditLimit: { unit: "EUR", value: -1 } } }),
    400,
    "invalid_field",
    "creditLimit.value",
  );
  expectError(
    t,
    await post({ body: { ...good, creditLimit: { unit: "EUR", value: 1.001 } } }),
    400,
    "invalid_field",
    "creditLimit.value",
  );
  expectError(
    t,
    await post({ body: { ...good, creditLimit: { unit: "EUR", value: 1e300 } } }),
    400,
    "invalid_field",
    "creditLimit.value",
  );
  expectError(
    t,
    await post({ body: { ...good, creditLimit: { unit: "EUR", value: "10" } } }),
    400,
    "invalid_field",
    "creditLimit.value",
  );
  expectError(
    t,
    await post({
      rawBody: JSON.stringify(good).replace('"name":', '"name":"x","name":'),
      headers: { "content-type": "application/json" },
    }),
    400,
    "duplicate_key",
    "name",
  );
  expectError(
    t,
    await post({ rawBody: '{"name":"a\\u0000b"}', headers: { "content-type": "application/json" } }),
    400,
    "invalid_string",
    "name",
  );
  expectError(
    t,
    await post({ rawBody: '{"name":"\\ud800"}', headers: { "content-type": "application/json" } }),
    400,
    "invalid_string",
    "name",
  );
  expectError(
    t,
    await post({
      rawBody: Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
      headers: { "content-type": "application/json" },
    }),
    400,
    "invalid_encoding",
  );
  expectError(
    t,
    await post({ rawBody: '{"__proto__":{"admin":true}}', headers: { "content-type": "application/json" } }),
    400,
    "malformed_json",
  );
  expectError(
    t,
    await post({ rawBody: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" } }),
    415,
    "unsupported_media_type",
  );
  expectError(
    t,
    await post({
      rawBody: "x".repeat(engine.config.bodyLimitBytes + 1),
      headers: { "content-type": "application/json" },
    }),
    413,
    "body_too_large",
  );
  expectError(t, await post({ body: [good] }), 400, "invalid_field");
  expectError(
    t,
    await post({
      body: { ...good, relatedParty: [{ id: "00000000-0000-7000-8000-000000000000", "@referredType": "Customer" }] },
    }),
    422,
    "unknown_reference",
    "relatedParty[0].id",
  );
  expectError(
    t,
    await post({ body: { ...good, relatedParty: [{ id: "not-an-id", "@referredType": "Customer" }] } }),
    422,
    "unknown_reference",
    "relatedParty[0].id",
  );

  t.equal(await engine.count("billing_accounts"), 0, "no billing account was written");
  t.equal(await engine.count("audit_log"), auditBefore, "no audit row was written");
});

t.test("TMF resources ignore attributes they do not implement but accept the rest", async (t) => {
  const engine = await startEngine(t);
  const customer = await createCustomer(engine);
  const response = await engine.request("POST", BA, {
    body: {
      ...billingAccountBody(customer.id),
      "@schemaLocation": "https://example.com/x.json",
      paymentStatus: "paid",
    },
  });
  t.equal(response.statusCode, 201);
  t.notOk("@schemaLocation" in response.json(), "the extension is not echoed");
});

t.test("native bodies refuse unknown fields", async (t) => {
  const engine = await startEngine(t);
  const response = await engine.request("POST", "/api/v1/api-keys", { body: { name: "x", role: "crm", admin: true } });
  expectError(t, response, 400, "invalid_field", "admin");
});

t.test("create answers 201 with Location; get, unknown ids and unknown routes", async (t) => {
  const engine = await startEngine(t);
  const created = await engine.request("POST", IND, { body: { givenName: "Alan", familyName: "Turing" } });
  t.equal(created.statusCode, 201);
  const { id, href } = created.json();
  t.equal(created.headers.location, href);
  t.equal(href, `${IND}/${id}`);
  t.equal(created.json()["@type"], "Individual");
  t.equal((await engine.request("GET", href)).json().fullName, "Alan Turing");
  expectError(t, await engine.request("GET", `${IND}/00000000-0000-7000-8000-000000000000`), 404, "not_found");
  expectError(t, await engine.request("GET", `${IND}/not-a-uuid`), 404, "not_found");
  expectError(t, await engine.request("GET", "/tmf-api/nothing/here"), 404, "route_not_found");
  expectError(t, await engine.request("PUT", IND), 404, "route_not_found");
});

t.test("lists page, filter, select fields and count", async (t) => {
  const engine = await startEngine(t);
  for (const [givenName, status] of [
    ["A", "initialized"],
    ["B", "validated"],
    ["C", "validated"],
    ["D", "initialized"],
    ["E", "initialized"],
  ]) {
    await createIndividual(engine, { givenName, status });
  }
  const page = await engine.request("GET", IND, { query: { offset: "1", limit: "2" } });
  t.equal(page.statusCode, 200);
  t.equal(page.headers["x-total-count"], "5");
  t.equal(page.headers["x-result-count"], "2");
  t.same(
    page.json().map((item: { givenName: string }) => item.givenName),
    ["B", "C"],
    "created order, offset applied",
  );

  const filtered = await engine.request("GET", IND, { query: { status: "validated" } });
  t.equal(filtered.headers["x-total-count"], "2");
  const either = await engine.request("GET", IND, { query: { givenName: "A,E" } });
  t.same(
    either.json().map((item: { givenName: string }) => item.givenName),
    ["A", "E"],
    "comma means OR",
  );
  const both = await engine.request("GET", IND, { query: { givenName: "A,B", status: "validated" } });
  t.same(
    both.json().map((item: { givenName: string }) => item.givenName),
    ["B"],
    "fields AND",
  );

  const narrow = await engine.request("GET", IND, { query: { fields: "givenName", limit: "1" } });
  t.same(Object.keys(narrow.json()[0]).sort(), ["@type", "givenName", "href", "id"]);
  const one = await engine.request("GET", narrow.json()[0].href, { query: { fields: "status" } });
  t.same(Object.keys(one.json()).sort(), ["@type", "href", "id", "status"]);

  expectError(
    t,
    await engine.request("GET", IND, { query: { fields: "secretColumn" } }),
    400,
    "invalid_parameter",
    "fields",
  );
  expectError(t, await engine.request("GET", IND, { query: { status: "alive" } }), 400, "invalid_parameter", "status");
  expectError(t, await engine.request("GET", IND, { query: { limit: "100000" } }), 400, "invalid_parameter", "limit");
  expectError(t, await engine.request("GET", IND, { query: { limit: "ten" } }), 400, "invalid_parameter", "limit");
  expectError(
    t,
    await engine.request("GET", IND, { query: { stauts: "validated" } }),
    400,
    "invalid_parameter",
    "stauts",
  );
});

t.test("PATCH is a merge patch under both content types; null removes; illegal transitions are 409", async (t) => {
  const engine = await startEngine(t);
  const account = await createBillingAccount(engine, { description: "first" });
  const url = `${BA}/${account.id}`;

  const merged = await engine.request("PATCH", url, {
    body: { billLimit: { unit: "EUR", value: 80 }, description: null },
    headers: { "content-type": "application/merge-patch+json" },
  });
  t.equal(merged.statusCode, 200, merged.body);
  t.same(merged.json().billLimit, { unit: "EUR", value: 80 });
  t.notOk("description" in merged.json(), "null removed the description");
  t.same(merged.json().creditLimit, { unit: "EUR", value: 100 }, "untouched fields stay");

  const plain = await engine.request("PATCH", url, { body: { state: "suspended" } });
  t.equal(plain.statusCode, 200);
  t.equal(plain.json().state, "suspended");
  t.equal((await engine.request("PATCH", url, { body: { state: "closed" } })).json().state, "closed");
  const reopen = await engine.request("PATCH", url, { body: { state: "active" } });
  expectError(t, reopen, 409, "illegal_transition");
  t.match(reopen.json().message, /closed is final/);

  expectError(t, await engine.request("PATCH", url, { body: {} }), 400, "invalid_field");
  expectError(t, await engine.request("PATCH", url, { body: { name: null } }), 400, "invalid_field", "name");
  expectError(t, await engine.request("PATCH", url, { body: { currency: "USD" } }), 422, "immutable_field", "currency");
  expectError(
    t,
    await engine.request("PATCH", `${BA}/00000000-0000-7000-8000-000000000000`, { body: { name: "x" } }),
    404,
    "not_found",
  );
});

t.test("the engine's own request id is returned; a caller's id is kept beside it, never in its place", async (t) => {
  const engine = await startEngine(t);
  const mine = await engine.request("GET", IND, { headers: { "x-request-id": "crm-trace-0001" } });
  t.match(mine.headers["x-request-id"], /^[0-9a-f-]{36}$/, "the engine's id");
  t.equal(mine.headers["x-caller-request-id"], "crm-trace-0001", "the caller's, in its own header");
  const bogus = await engine.request("GET", IND, { headers: { "x-request-id": "<script>" } });
  t.match(bogus.headers["x-request-id"], /^[0-9a-f-]{36}$/);
  t.equal(bogus.headers["x-caller-request-id"], undefined, "a value that is no trace id is not echoed");
  // Two writes claiming the same caller id are two audit rows with two request ids of the engine.
  for (let i = 0; i < 2; i++) {
    const created = await engine.request("POST", IND, {
      headers: { "x-request-id": "forged-id-0001" },
      body: { givenName: `Probe${i}`, familyName: "Caller" },
    });
    t.equal(created.statusCode, 201, created.body);
  }
  const audit = await engine.sql<{ request_id: string; caller_request_id: string }>(
    "select request_id, caller_request_id from audit_log where caller_request_id = 'forged-id-0001'",
  );
  t.equal(audit.length, 2);
  t.not(audit[0]?.request_id, audit[1]?.request_id, "each write has the engine's own request id");
  t.ok(
    audit.every((row) => row.request_id !== "forged-id-0001"),
    "the caller's value is never the request id",
  );
});

t.test(
  "a JSON content type with no body is no body: DELETE and body-less actions work (TMF clients send it)",
  async (t) => {
    const engine = await startEngine(t);
    const json = { "content-type": "application/json" };
    const issued = await engine.request("POST", "/api/v1/api-keys", { body: { name: "to drop", role: "crm" } });
    const dropped = await engine.request("DELETE", issued.json().href, { rawBody: "", headers: json });
    t.equal(dropped.statusCode, 204, "DELETE with Content-Type: application/json and no body");
    const ticket = await engine.request("POST", "/api/v1/ws/tickets", { rawBody: "", headers: json });
    t.equal(ticket.statusCode, 201, "a POST action whose body is optional");
    const listed = await engine.request("GET", BA, { rawBody: "", headers: json });
    t.equal(listed.statusCode, 200, "GET with the header");
  },
);
