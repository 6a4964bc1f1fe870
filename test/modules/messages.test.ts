import t from "tap";
import { httpGatewayChannel } from "../../src/modules/notifications/message-channel.js";
import { expectError, startEngine } from "../support/engine.js";
import { createCustomer } from "../support/fixtures.js";
import { startReceiver } from "../support/receiver.js";
import { RecordingChannel } from "../support/recording-channel.js";

/** The customer message channel: the HTTP gateway against a local server, and the stored log agents read. */

const message = {
  id: "0190f0f0-0000-7000-8000-000000000001",
  channel: "sms" as const,
  to: "+4915112345678",
  body: "Your line is active",
};
const noPause = async () => {};

t.test("the HTTP gateway: success, 5xx retried, 4xx not retried, timeouts, unreachable", async (t) => {
  const gateway = await startReceiver();
  t.teardown(() => gateway.close());
  // A generous timeout where attempts are counted (a loaded machine must not turn a slow answer into a retry), a
  // short one where the gateway hangs.
  const channel = httpGatewayChannel(gateway.url, { timeoutMs: 5_000, pause: noPause });
  const impatient = httpGatewayChannel(gateway.url, { timeoutMs: 300, pause: noPause });

  t.same(await channel.send(message), { status: "sent", attempts: 1 });
  const first = gateway.received[0];
  t.same(JSON.parse(first?.body ?? "{}"), message);
  t.equal(first?.headers["idempotency-key"], message.id);

  gateway.answers.push(503, 502);
  t.same(await channel.send(message), { status: "sent", attempts: 3 }, "two 5xx, then success");
  gateway.answers.push(500, 500, 500);
  t.same(await channel.send(message), { status: "failed", attempts: 3, error: "gateway answered 500" });
  gateway.answers.push(422);
  t.same(
    await channel.send(message),
    { status: "failed", attempts: 1, error: "gateway answered 422" },
    "a refusal is final",
  );
  gateway.answers.push("hang", "hang", "hang");
  t.same(await impatient.send(message), { status: "failed", attempts: 3, error: "gateway timed out" });
  const closed = httpGatewayChannel("http://127.0.0.1:9/none", { timeoutMs: 300, pause: noPause });
  t.same(await closed.send(message), { status: "failed", attempts: 3, error: "gateway unreachable" });
});

t.test("without a gateway, messages are stored as undelivered and agents read them per customer", async (t) => {
  const engine = await startEngine(t);
  const customer = await createCustomer(engine, {
    contactMedium: [
      { mediumType: "email", characteristic: { emailAddress: "ada@example.org" } },
      { mediumType: "mobile", preferred: true, characteristic: { phoneNumber: "+4915112345678" } },
    ],
  });
  const url = `/api/v1/customers/${customer.id}/messages`;
  const sms = await engine.request("POST", url, { body: { channel: "sms", body: "Hello" } });
  t.equal(sms.statusCode, 201, sms.body);
  t.match(sms.json(), {
    to: "+4915112345678",
    status: "undelivered",
    reason: "agent",
    lastError: "no message gateway is configured",
  });
  const email = await engine.request("POST", url, { body: { channel: "email", subject: "Welcome", body: "Hello" } });
  t.equal(email.json().to, "ada@example.org");
  const log = await engine.request("GET", url, { query: { status: "undelivered" } });
  t.equal(log.headers["x-total-count"], "2");
  expectError(
    t,
    await engine.request("POST", url, { body: { channel: "sms", to: "0151 123", body: "x" } }),
    400,
    "invalid_field",
    "to",
  );
  expectError(
    t,
    await engine.request("POST", url, { body: { channel: "fax", body: "x" } }),
    400,
    "invalid_field",
    "channel",
  );
  const unknown = "/api/v1/customers/00000000-0000-7000-8000-000000000000/messages";
  expectError(t, await engine.request("POST", unknown, { body: { channel: "sms", body: "x" } }), 404, "not_found");
  const silent = await createCustomer(engine);
  expectError(
    t,
    await engine.request("POST", `/api/v1/customers/${silent.id}/messages`, { body: { channel: "email", body: "x" } }),
    422,
    "no_contact",
    "to",
  );
  expectError(t, await engine.request("GET", url, { key: engine.keys.finance }), 403, "role_not_allowed");
});

t.test("with a gateway configured, messages go out through it", async (t) => {
  const gateway = await startReceiver();
  t.teardown(() => gateway.close());
  const engine = await startEngine(t, { env: { BSS_MESSAGE_GATEWAY_URL: gateway.url } });
  const customer = await createCustomer(engine, {
    contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+447700900123" } }],
  });
  const sent = await engine.request("POST", `/api/v1/customers/${customer.id}/messages`, {
    body: { channel: "sms", to: "+447700900123", body: "Your order was received" },
  });
  t.match(sent.json(), { status: "sent", attempts: 1 });
  t.equal(JSON.parse(gateway.received[0]?.body ?? "{}").to, "+447700900123");
});

t.test("a recording channel (tests only) sees exactly what would be sent", async (t) => {
  const channel = new RecordingChannel();
  const engine = await startEngine(t, { messageChannel: channel });
  const customer = await createCustomer(engine, {
    contactMedium: [
      { mediumType: "email", characteristic: { emailAddress: "Ops@Example.org" } },
      { mediumType: "mobile", characteristic: { phoneNumber: "+447700900123" } },
    ],
  });
  await engine.request("POST", `/api/v1/customers/${customer.id}/messages`, {
    body: { channel: "email", to: "ops@example.org", subject: "Hi", body: "Test" },
  });
  t.match(channel.sent, [{ channel: "email", to: "ops@example.org", subject: "Hi", body: "Test" }]);
});

t.test("messages go only to the customer's own contacts; subjects and names refuse control characters", async (t) => {
  const channel = new RecordingChannel();
  const engine = await startEngine(t, { messageChannel: channel });
  const customer = await createCustomer(engine, {
    contactMedium: [
      { mediumType: "email", characteristic: { emailAddress: "ada@example.org" } },
      { mediumType: "phone", characteristic: { phoneNumber: "+4930123456" } },
    ],
  });
  const url = `/api/v1/customers/${customer.id}/messages`;
  const send = (body: Record<string, unknown>) => engine.request("POST", url, { body });
  // The probes: the operator's gateway used as a relay to anyone, and a header injected through the subject.
  expectError(t, await send({ channel: "sms", to: "+447700900999", body: "win" }), 422, "not_own_contact", "to");
  expectError(t, await send({ channel: "email", to: "victim@example.com", body: "x" }), 422, "not_own_contact", "to");
  const injected = await send({ channel: "email", subject: "Hi\r\nBcc: victim@example.com", body: "x" });
  expectError(t, injected, 400, "invalid_field", "subject");
  t.match(injected.json().message, "subject: must be one line without control characters");
  expectError(t, await send({ channel: "email", subject: "Hi\u0000", body: "x" }), 400, "invalid_string", "subject");
  expectError(t, await send({ channel: "sms", body: "bell\u0007" }), 400, "invalid_field", "body");
  t.equal(channel.sent.length, 0, "nothing reached the gateway");
  t.equal(await engine.count("customer_messages"), 0, "nothing stored");

  const fine = await send({ channel: "email", to: "ADA@example.org", subject: "Bill", body: "Line 1\nLine 2\tend" });
  t.equal(fine.statusCode, 201, "an own address (any case), a multi-line body");
  t.equal((await send({ channel: "sms", to: "+4930123456", body: "x" })).statusCode, 201, "an own phone number");

  for (const [path, body, field] of [
    ["/tmf-api/party/v4/individual", { givenName: "Ada\r\nX", familyName: "L" }, "givenName"],
    ["/tmf-api/party/v4/individual", { givenName: "Ada", familyName: "L\u001b[31m" }, "familyName"],
    ["/tmf-api/party/v4/organization", { tradingName: "Acme\u0085" }, "tradingName"],
    ["/api/v1/api-keys", { name: "ops\nkey", role: "crm" }, "name"],
  ] as const) {
    expectError(t, await engine.request("POST", path, { body }), 400, "invalid_field", field);
  }
  const renamed = await engine.request("PATCH", `/tmf-api/customerManagement/v4/customer/${customer.id}`, {
    body: { name: "Ada\u0007" },
  });
  expectError(t, renamed, 400, "invalid_field", "name");
});
