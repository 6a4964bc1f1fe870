import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { sampleTariff } from "../fixtures/tariffs.js";
import { expectError, startEngine } from "../support/engine.js";

/** POST /api/v1/rating/quote against inline tariffs, catalog tariffs and plans. */

const QUOTE = "/api/v1/rating/quote";
const voiceEvent = {
  recordType: "voice",
  recordOpeningTime: "2026-03-16T10:00:00+01:00",
  duration: 120,
  calledNumber: "+4915112345678",
};

t.test("the worked example through the endpoint: exactly 0.70", async (t) => {
  const engine = await startEngine(t);
  const response = await engine.request("POST", QUOTE, { body: { inlineTariff: sampleTariff(), event: voiceEvent } });
  t.equal(response.statusCode, 200, response.body);
  const quote = response.json();
  t.equal(quote.total, "0.70");
  t.equal(quote.connectionFee, "0.4");
  t.same(
    quote.parts.map((part: { band: string; chargedUnits: number; amount: string }) => [
      part.band,
      part.chargedUnits,
      part.amount,
    ]),
    [
      ["peak", 60, "0.2"],
      ["peak", 60, "0.1"],
    ],
  );
  t.match(quote, {
    currency: "EUR",
    unit: "second",
    destination: "mobile",
    roaming: "home",
    rounding: { mode: "halfUp", decimals: 2 },
  });
  t.equal(
    await engine.count("audit_log", "action <> 'create' or entity_type <> 'apiKey'"),
    0,
    "a quote writes nothing",
  );
});

t.test("plans and catalog tariffs, with the plan's allowances applied", async (t) => {
  const engine = await startEngine(t);
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const plain = await engine.request("POST", QUOTE, {
    body: { plan: "plan-postpaid-m", currency: "GBP", event: { ...voiceEvent, calledNumber: "+447700900123" } },
  });
  t.equal(plain.statusCode, 200, plain.body);
  t.equal(plain.json().tariff.id, "tariff-uk-gbp");
  t.equal(plain.json().destination, "national-mobile");
  const covered = await engine.request("POST", QUOTE, {
    body: { plan: "plan-postpaid-m", currency: "EUR", applyPlanAllowances: true, event: voiceEvent },
  });
  t.equal(covered.json().total, "0.00");
  t.equal(covered.json().allowanceUnits, 120);
  const international = await engine.request("POST", QUOTE, {
    body: {
      plan: "plan-postpaid-m",
      currency: "EUR",
      applyPlanAllowances: true,
      event: { ...voiceEvent, calledNumber: "+33142685300" },
    },
  });
  t.equal(international.json().allowanceUnits, 0, "national minutes do not cover international calls");
  t.equal(international.json().total, "0.58");
  const data = await engine.request("POST", QUOTE, {
    body: {
      tariff: "tariff-de-eur",
      event: {
        recordType: "data",
        recordOpeningTime: "2026-03-16T10:00:00Z",
        dataVolumeUplink: 1024,
        dataVolumeDownlink: 1047552,
      },
    },
  });
  t.equal(data.json().total, "0.49");
  t.equal(data.json().tariff.version, 1);
});

t.test("clear errors: unknown plan, no rate, invalid inline tariff, ambiguous source, missing quantity", async (t) => {
  const engine = await startEngine(t);
  await engine.app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  expectError(
    t,
    await engine.request("POST", QUOTE, { body: { plan: "plan-gold", currency: "EUR", event: voiceEvent } }),
    422,
    "unknown_plan",
    "plan",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, { body: { plan: "addon-data-5gb", event: voiceEvent } }),
    422,
    "unknown_plan",
    "plan",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, { body: { plan: "plan-postpaid-m", event: voiceEvent } }),
    400,
    "invalid_field",
    "currency",
  );
  const noRate = await engine.request("POST", QUOTE, {
    body: { inlineTariff: sampleTariff(), event: { ...voiceEvent, calledNumber: "+33142685300" } },
  });
  expectError(t, noRate, 422, "no_rate", "event");
  t.match(noRate.json().message, /no rate for voice outgoing at home to \+33142685300 \(no destination matches\)/);
  const badTariff = { ...sampleTariff(), currency: "XYZ", timeZone: "Nowhere/Land" };
  const invalid = await engine.request("POST", QUOTE, { body: { inlineTariff: badTariff, event: voiceEvent } });
  expectError(t, invalid, 400, "invalid_tariff", "inlineTariff.currency");
  t.match(invalid.json().message, /2 problem\(s\).*timeZone/);
  expectError(
    t,
    await engine.request("POST", QUOTE, {
      body: { tariff: "tariff-de-eur", plan: "plan-postpaid-m", event: voiceEvent },
    }),
    400,
    "invalid_field",
    "plan",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, {
      body: { tariff: "tariff-de-eur", event: { ...voiceEvent, duration: undefined } },
    }),
    400,
    "invalid_field",
    "event.duration",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, {
      body: { tariff: "tariff-de-eur", event: { ...voiceEvent, duration: "60" } },
    }),
    400,
    "invalid_field",
    "event.duration",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, {
      body: { tariff: "tariff-de-eur", event: { ...voiceEvent, calledNumber: "0151 123" } },
    }),
    400,
    "invalid_field",
    "event.calledNumber",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, { body: { tariff: "tariff-de-eur", event: voiceEvent, extra: 1 } }),
    400,
    "invalid_field",
    "extra",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, { body: { tariff: "tariff-xx", event: voiceEvent } }),
    422,
    "unknown_tariff",
    "tariff",
  );
  expectError(
    t,
    await engine.request("POST", QUOTE, {
      key: engine.keys.network,
      body: { tariff: "tariff-de-eur", event: voiceEvent },
    }),
    403,
    "role_not_allowed",
  );
});
