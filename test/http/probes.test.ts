import t from "tap";
import { loggerOptions } from "../../src/platform/logger.js";
import { REDACTED } from "../../src/shared/redact.js";
import { chargingEngine, voiceCdr } from "../support/charging.js";
import { drivers, expectError, startEngine } from "../support/engine.js";
import { activateLine, createBillingAccount } from "../support/fixtures.js";
import { openLive, ticketFor } from "../support/ws.js";

/**
 * Probes an attacker sent (issue 20), replayed: each answered a 500 or leaked something before its fix; each must
 * now be a clear 4xx that changes nothing.
 */

const ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount";

for (const driver of drivers) {
  t.test(`${driver}: NUL and invalid UTF-8 in path and query values are a 400 naming the parameter`, async (t) => {
    const engine = await startEngine(t, { driver });
    const account = await createBillingAccount(engine);
    const probes: Array<[string, string]> = [
      [`${ACCOUNTS}?name=%00`, "name"],
      [`${ACCOUNTS}?name=a%00b&state=active`, "name"],
      [`${ACCOUNTS}?name=%C3%28`, "name"],
      [`${ACCOUNTS}?na%00me=x`, "query"],
      [`${ACCOUNTS}/%00${account.id}`, "path"],
      [`${ACCOUNTS}/${account.id}%FF`, "path"],
      ["/api/v1/cdr-sources/%00", "path"],
      [`/tmf-api/usageManagement/v4/usage?usageType=%00`, "usageType"],
    ];
    for (const [url, field] of probes) {
      const answer = await engine.request("GET", url);
      expectError(t, answer, 400, "invalid_parameter", field);
    }
    const patched = await engine.request("PATCH", `${ACCOUNTS}/${account.id}%00`, { body: { name: "x" } });
    expectError(t, patched, 400, "invalid_parameter", "path");
    t.not((await engine.request("GET", `${ACCOUNTS}/${account.id}`)).json().name, "x", "nothing changed");
    t.equal(
      (await engine.request("GET", `${ACCOUNTS}?name=${encodeURIComponent("Main ü")}`)).statusCode,
      200,
      "UTF-8 is fine",
    );
  });
}

for (const driver of drivers) {
  t.test(
    `${driver}: amounts the charging store cannot hold exactly are a 422 naming the limit, nothing written`,
    async (t) => {
      const { engine, accountId } = await chargingEngine(t, driver, "prepaid");
      const { lineId } = await activateLine(engine, accountId, "plan-prepaid-payg");
      const balance = "/tmf-api/prepayBalanceManagement/v4";
      const send = (kind: string, amount: number, key: string) =>
        engine.request("POST", `${balance}/${kind}`, {
          key: engine.keys.crm,
          headers: { "idempotency-key": key },
          body: { amount: { amount, units: "EUR" }, product: { id: lineId }, reason: "probe" },
        });
      for (const [kind, amount] of [
        ["topupBalance", 99_999_999_999],
        ["topupBalance", 9_007_199_255],
        ["adjustBalance", -99_999_999_999],
      ] as const) {
        const answer = await send(kind, amount, `huge-${kind}-${amount}`);
        expectError(t, answer, 422, "amount_out_of_range", "amount.amount");
        t.match(answer.json().message, "9007199254.740991", "names the limit");
      }
      t.equal((await send("topupBalance", 9_000_000_000, "big-1")).statusCode, 201, "just under the limit is fine");
      expectError(t, await send("topupBalance", 9_000_000, "big-2"), 422, "amount_out_of_range", "amount.amount");
      t.equal(await engine.count("balance_operations", "kind = 'topup'"), 1, "only the top-up that fits was written");
      const limited = await engine.request("PATCH", `${ACCOUNTS}/${accountId}`, {
        body: { creditLimit: { unit: "EUR", value: 10_000_000_000 } },
      });
      expectError(t, limited, 422, "amount_out_of_range", "creditLimit.value");
    },
  );
}

for (const driver of drivers) {
  t.test(
    `${driver}: revoking a key closes its sockets at once and voids its tickets; sockets per key are capped`,
    async (t) => {
      const engine = await startEngine(t, { driver, env: { BSS_WS_MAX_SOCKETS_PER_KEY: "2" } });
      const account = await createBillingAccount(engine);
      const issued = await engine.request("POST", "/api/v1/api-keys", {
        body: { name: "doomed subscriber", role: "subscriber", billingAccountId: account.id },
      });
      const { key, href } = issued.json();
      const other = await engine.subscriberKey(account.id);
      const open = await openLive(engine, `?ticket=${await ticketFor(engine, key)}`);
      await open.waitFor("ready");
      const bystander = await openLive(engine, `?ticket=${await ticketFor(engine, other)}`);
      await bystander.waitFor("ready");
      const spare = await ticketFor(engine, key);

      // The cap: a second socket is fine, a third for the same key is closed with 4429 (another key is not counted).
      const second = await openLive(engine, `?ticket=${await ticketFor(engine, key)}`);
      await second.waitFor("ready");
      const third = await openLive(engine, `?ticket=${await ticketFor(engine, key)}`);
      t.same(await third.closed, {
        code: 4429,
        reason: "this API key already has 2 connections open; close one first",
      });
      second.socket.close();
      await second.closed;

      t.equal((await engine.request("DELETE", href)).statusCode, 204);
      // Closed by the revocation itself, long before the periodic re-check (API_KEY_CACHE_TTL_MS) could run.
      const closed = await Promise.race([
        open.closed,
        new Promise((resolve) => setTimeout(() => resolve("still open"), 2_000)),
      ]);
      t.same(closed, { code: 4401, reason: "the API key was revoked or expired" }, "the key's socket closed at once");
      const late = await openLive(engine, `?ticket=${spare}`);
      t.same(await late.closed, { code: 4401, reason: "the ticket's API key is revoked or expired" });
      t.equal(await engine.count("ws_tickets", "used_at is null"), 0, "the key's unused tickets were voided");
      t.equal(bystander.socket.readyState, bystander.socket.OPEN, "another key's socket stays open");
      bystander.socket.close();
      await bystander.closed;
    },
  );
}

for (const driver of drivers) {
  t.test(`${driver}: a network key sends only for its own CDR sources`, async (t) => {
    const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
    const { msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
    await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-2", countryCode: "49" } });
    const issue = (body: Record<string, unknown>) => engine.request("POST", "/api/v1/api-keys", { body });
    expectError(t, await issue({ name: "n0", role: "network" }), 400, "invalid_field", "cdrSources");
    expectError(t, await issue({ name: "n0", role: "crm", cdrSources: ["msc-1"] }), 400, "invalid_field", "cdrSources");
    expectError(t, await issue({ name: "n0", role: "network", cdrSources: ["*", "msc-1"] }), 400, "invalid_field");
    expectError(t, await issue({ name: "n0", role: "network", cdrSources: ["msc-9"] }), 422, "unknown_reference");
    expectError(t, await issue({ name: "n0", role: "network", cdrSources: ["bad source"] }), 400, "invalid_field");
    const issued = await issue({ name: "msc-1 element", role: "network", cdrSources: ["msc-1"] });
    t.equal(issued.statusCode, 201);
    t.same(issued.json().cdrSources, ["msc-1"]);
    const own = issued.json().key as string;

    // The attack: posting as msc-2 with the id msc-2's real record will carry, so the real one becomes a conflict.
    const forged = { ...voiceCdr(msisdn, "+33123456789", 60), source: "msc-2", cdrId: "real-1" };
    const answer = await engine.request("POST", "/api/v1/cdrs", { key: own, body: [forged] });
    t.equal(answer.statusCode, 200);
    t.match(answer.json().records[0], { outcome: "rejected", field: "source", reason: /may not send records/ });
    const tmf = await engine.request("POST", "/tmf-api/usageManagement/v4/usage", {
      key: own,
      body: {
        usageType: "voice",
        usageCharacteristic: Object.entries(forged)
          .filter(([name]) => name !== "recordType")
          .map(([name, value]) => ({ name, value })),
      },
    });
    expectError(t, tmf, 403, "source_not_allowed", "usageCharacteristic.source");
    const switchDoor = await engine.request("POST", "/api/v1/cdrs/asterisk?source=msc-2", {
      key: own,
      rawBody: "",
      headers: { "content-type": "text/csv" },
    });
    expectError(t, switchDoor, 403, "source_not_allowed", "source");
    t.equal(await engine.count("usage_records", "source = 'msc-2'"), 0, "nothing stored for the other source");

    const real = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: [forged] });
    t.equal(real.json().records[0].outcome, "accepted", "the element's real record is accepted, not a conflict");
    const mine = await engine.request("POST", "/api/v1/cdrs", {
      key: own,
      body: [voiceCdr(msisdn, "+33123456789", 60)],
    });
    t.equal(mine.json().records[0].outcome, "accepted", "its own source's records are accepted");
  });
}

t.test("floods: per-key rate limits answer 429 with Retry-After and the TMF body; other keys go on", async (t) => {
  const engine = await startEngine(t, {
    env: { BSS_RATE_LIMIT_PER_MINUTE: "5", BSS_RATE_LIMIT_NETWORK_PER_MINUTE: "8" },
  });
  const list = (key: string) => engine.request("GET", ACCOUNTS, { key });
  for (let i = 0; i < 5; i++) {
    const answer = await list(engine.keys.crm);
    t.equal(answer.statusCode, 200);
    t.equal(answer.headers["x-ratelimit-remaining"], String(4 - i), "the remaining allowance is told");
  }
  const limited = await list(engine.keys.crm);
  expectError(t, limited, 429, "rate_limited");
  t.match(limited.json().message, /more than 5 requests in a minute; retry in/);
  t.ok(Number(limited.headers["retry-after"]) > 0, "Retry-After in seconds");
  t.equal((await list(engine.keys.finance)).statusCode, 200, "another key is not limited by this one's flood");
  t.equal((await engine.request("GET", "/health", { key: null })).statusCode, 200, "health is never limited");
  const cdrs = () =>
    engine.request("GET", "/api/v1/cdr-sources", { key: engine.keys.network }).then((answer) => answer.statusCode);
  const network = [];
  for (let i = 0; i < 9; i++) network.push(await cdrs());
  t.same(network, [200, 200, 200, 200, 200, 200, 200, 200, 429], "network keys have their own, larger limit");
  const writes = await engine.request("POST", "/tmf-api/party/v4/individual", {
    key: engine.keys.crm,
    body: { givenName: "Flood", familyName: "Writer" },
  });
  expectError(t, writes, 429, "rate_limited");
  t.equal(await engine.count("individuals", "given_name = 'Flood'"), 0, "a limited write changes nothing");
});

t.test("a failed statement's parameters never reach the log", async (t) => {
  const serialize = loggerOptions("info").serializers?.err as unknown as (error: Error) => Record<string, unknown>;
  const error = Object.assign(new Error("invalid byte sequence"), {
    query: "select * from billing_accounts where name = $1",
    parameters: ["Ada Lovelace", "secret-pin-1234"],
  });
  const logged = serialize(error);
  t.equal(logged.query, error.query, "the statement stays, for diagnosis");
  t.equal(logged.parameters, REDACTED, "its parameters do not");
  t.notMatch(JSON.stringify(logged), "secret-pin-1234");
});
