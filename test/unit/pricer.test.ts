import fc from "fast-check";
import t from "tap";
import { compileTariff, TariffError } from "../../src/modules/catalog/tariff-compile.js";
import { priceEvent, RatingError, type RatingEvent } from "../../src/modules/rating/pricer.js";
import { sampleTariff } from "../fixtures/tariffs.js";

const tariff = compileTariff(sampleTariff());
// Monday 16 March 2026; Berlin is UTC+1 in March.
const MON_10 = Date.parse("2026-03-16T10:00:00+01:00");
const voice = (overrides: Partial<RatingEvent>): RatingEvent => ({
  service: "voice",
  direction: "outgoing",
  startMs: MON_10,
  quantity: 120,
  calledNumber: "+4915112345678",
  ...overrides,
});
const price = (event: RatingEvent, allowance = 0) => priceEvent(tariff, event, allowance);

t.test("the worked example: 0.40 + 0.20 first minute + 0.10/min per second is exactly 0.70", async (t) => {
  const priced = price(voice({ quantity: 120 }));
  t.equal(priced.total.toFixed(), "0.7");
  t.equal(priced.subtotal.toFixed(), "0.7", "no float residue before rounding either");
  t.same(
    priced.parts.map((part) => [part.rateId, part.increments, part.chargedUnits, part.amount.toFixed()]),
    [
      ["mobile-peak", 1, 60, "0.2"],
      ["mobile-peak", 60, 60, "0.1"],
    ],
  );
  t.equal(priced.connectionFee.toFixed(), "0.4");
  t.equal(priced.destination, "mobile");
});

t.test("increments round usage up, within each step", async (t) => {
  t.equal(price(voice({ quantity: 1 })).total.toFixed(), "0.6", "one second pays the whole first minute");
  t.equal(price(voice({ quantity: 61 })).chargedUnits, 61);
  t.equal(price(voice({ quantity: 61 })).total.toFixed(), "0.6", "0.40 + 0.20 + 1 s of 0.10/min rounds to 0.60");
  const national = price(voice({ quantity: 61, calledNumber: "+493012345" }));
  t.equal(national.chargedUnits, 120, "per-minute increments");
  t.equal(national.total.toFixed(), "0.18");
});

t.test("zero duration costs nothing, not even the connection fee", async (t) => {
  const priced = price(voice({ quantity: 0 }));
  t.equal(priced.total.toFixed(), "0");
  t.same(priced.parts, []);
});

t.test("longest prefix wins among overlapping prefixes", async (t) => {
  t.equal(price(voice({ calledNumber: "+4990012345" })).destination, "premium");
  t.equal(price(voice({ calledNumber: "+4930123456" })).destination, "national");
  t.equal(price(voice({ calledNumber: "+4915112345" })).destination, "mobile");
  t.throws(() => price(voice({ calledNumber: "+33123456789" })), RatingError, "no destination, no rate");
});

t.test("a call across a band boundary is split and each part priced in its band", async (t) => {
  // 19:59 on a Monday: 60 s of peak, then off-peak from 20:00.
  const priced = price(voice({ startMs: Date.parse("2026-03-16T19:59:00+01:00"), quantity: 180 }));
  t.same(
    priced.parts.map((part) => [part.band, part.fromUnit, part.toUnit, part.chargedUnits, part.amount.toFixed()]),
    [
      ["peak", 0, 60, 60, "0.2"],
      ["offpeak", 60, 180, 120, "0.12"],
    ],
  );
  t.equal(priced.total.toFixed(), "0.72", "0.40 connection + 0.20 + 2 min at 0.06");
});

t.test("band boundary exactly at the start, and midnight", async (t) => {
  const atEight = price(voice({ startMs: Date.parse("2026-03-16T08:00:00+01:00"), quantity: 60 }));
  t.same(
    atEight.parts.map((part) => part.band),
    ["peak"],
    "08:00 is already peak",
  );
  const beforeEight = price(voice({ startMs: Date.parse("2026-03-16T07:59:30+01:00"), quantity: 60 }));
  t.same(
    beforeEight.parts.map((part) => [part.band, part.fromUnit, part.toUnit, part.chargedUnits]),
    [
      ["offpeak", 0, 30, 30],
      ["peak", 30, 60, 60],
    ],
    "each band's piece is charged in its own rate's increments",
  );
  t.equal(beforeEight.total.toFixed(), "0.23", "30 s off-peak at 0.06/min + peak's first minute 0.20; no fee off-peak");
  // Friday 23:59:30 into Saturday: off-peak on both sides, so no split is reported.
  const midnight = price(voice({ startMs: Date.parse("2026-03-20T23:59:30+01:00"), quantity: 60 }));
  t.equal(midnight.parts.length, 1);
  t.equal(midnight.parts[0]?.band, "offpeak");
});

t.test("a holiday band outranks the weekday's peak", async (t) => {
  const christmas = price(voice({ startMs: Date.parse("2026-12-25T10:00:00+01:00"), quantity: 60 }));
  t.equal(christmas.parts[0]?.band, "holiday");
  t.equal(christmas.total.toFixed(), "0.06");
});

t.test("minimum and maximum charges, both modes of the maximum", async (t) => {
  const short = price(voice({ calledNumber: "+493012345", quantity: 10 }));
  t.ok(short.minimumApplied);
  t.equal(short.total.toFixed(), "0.1");
  const capped = price(voice({ calledNumber: "+4990012345", quantity: 3600 }));
  t.ok(capped.maximumApplied);
  t.equal(capped.total.toFixed(), "30");
  const limited = price(voice({ calledNumber: "+12125550100", quantity: 1200 }));
  t.ok(limited.maximumExceeded, "limit mode reports the excess");
  t.notOk(limited.maximumApplied);
  t.equal(limited.total.toFixed(), "19.99", "and does not cap the price; rounding down");
});

t.test("rates with 6 decimals and per-6-second increments round once", async (t) => {
  const priced = price(voice({ calledNumber: "+442071234567", quantity: 7 }));
  t.equal(priced.chargedUnits, 12);
  t.equal(priced.subtotal.toFixed(), "0.1999998");
  t.equal(priced.total.toFixed(), "0.19");
});

t.test("SMS per message, data per byte block priced at session start", async (t) => {
  const sms = price({
    service: "sms",
    direction: "outgoing",
    startMs: MON_10,
    quantity: 3,
    calledNumber: "+4915112345678",
  });
  t.equal(sms.total.toFixed(), "0.27");
  const data = price({
    service: "data",
    direction: "outgoing",
    startMs: Date.parse("2026-03-16T19:59:59+01:00"),
    quantity: 1_048_577,
  });
  t.equal(data.chargedUnits, 1_049_600, "rounded up to whole kilobytes");
  t.equal(data.parts.length, 1, "data is not split at band boundaries");
  t.equal(data.total.toFixed(), "0.5", "0.49 per MB on 1025 KB, rounded up");
});

t.test("roaming: zone by network or country, incoming while roaming, unknown networks", async (t) => {
  const france = price(voice({ visitedNetwork: "20810", quantity: 45 }));
  t.equal(france.roaming, "eu");
  t.equal(france.total.toFixed(), "0.12", "two 30 s increments at 0.12/min");
  t.equal(price(voice({ visitedNetwork: "21401", quantity: 60 })).roaming, "eu");
  const { calledNumber: _unused, ...withoutNumber } = voice({
    direction: "incoming",
    visitedNetwork: "20801",
    quantity: 100,
  });
  const incoming = price(withoutNumber);
  t.equal(incoming.total.toFixed(), "0.05");
  t.equal(price(voice({ direction: "incoming", quantity: 600 })).total.toFixed(), "0", "incoming at home is free");
  t.equal(price(voice({ visitedNetwork: "26201" })).roaming, "home");
  const error = t.throws(() => price(voice({ visitedNetwork: "31026" }))) as RatingError;
  t.equal(error.code, "no_roaming_zone");
});

t.test(
  "allowances: consumed first in increments; fully covered costs nothing; partial pays the rest and the fee",
  async (t) => {
    const covered = price(voice({ quantity: 90 }), 600);
    t.equal(covered.total.toFixed(), "0");
    t.equal(covered.allowanceUnits, 90);
    t.equal(covered.connectionFee.toFixed(), "0", "no connection fee when fully covered");
    const tenSeconds = price(voice({ quantity: 10 }), 600);
    t.equal(tenSeconds.allowanceUnits, 60, "the first-minute increment is consumed whole");
    const partial = price(voice({ quantity: 120 }), 90);
    t.equal(partial.allowanceUnits, 90);
    t.same(
      partial.parts.map((part) => [part.fromUnit, part.chargedUnits]),
      [[90, 30]],
    );
    t.equal(partial.total.toFixed(), "0.45", "0.40 fee + 30 s at 0.10/min");
    const tooSmall = price(voice({ quantity: 120 }), 30);
    t.equal(tooSmall.allowanceUnits, 0, "30 s cannot cover a 60 s increment");
    t.equal(tooSmall.total.toFixed(), "0.7");
  },
);

t.test("property: cost never decreases with duration", async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 7200 }),
      fc.integer({ min: 0, max: 600 }),
      fc.integer({ min: 0, max: 86_400 * 7 }),
      (duration, extra, startOffset) => {
        const startMs = MON_10 + startOffset * 1000;
        const shorter = price(voice({ startMs, quantity: duration }));
        const longer = price(voice({ startMs, quantity: duration + extra }));
        return longer.total.gte(shorter.total);
      },
    ),
  );
});

t.test(
  "property: the parts of a split call add up to its price, and uniform rates do not care about splits",
  async () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7200 }),
        fc.integer({ min: 0, max: 86_400 * 7 }),
        (duration, startOffset) => {
          const priced = price(voice({ startMs: MON_10 + startOffset * 1000, quantity: duration }));
          const { numerator, denominator } = priced.subtotalExact;
          const sum = priced.parts.reduce(
            (total, part) => total.plus(part.price.times(part.chargedUnits).times(denominator / part.per)),
            priced.connectionFee.times(denominator),
          );
          const covered = priced.parts.reduce((total, part) => total + part.chargedUnits, 0);
          return sum.eq(numerator) && covered === priced.chargedUnits && covered >= duration;
        },
      ),
    );
    const uniform = compileTariff({
      ...sampleTariff(),
      rates: [
        {
          id: "flat",
          service: "voice",
          steps: [{ from: 0, price: "0.07", per: 60, increment: 1 }],
          rounding: { mode: "halfUp", decimals: 6 },
        },
      ],
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 7200 }),
        fc.integer({ min: 0, max: 86_400 * 7 }),
        (duration, startOffset) => {
          const startMs = MON_10 + startOffset * 1000;
          const cut = Math.floor(duration / 2);
          const whole = priceEvent(uniform, voice({ startMs, quantity: duration }));
          const first = priceEvent(uniform, voice({ startMs, quantity: cut }));
          const second = priceEvent(uniform, voice({ startMs: startMs + cut * 1000, quantity: duration - cut }));
          // One `per` (60) throughout: the exact numerators must add up.
          return whole.subtotalExact.numerator.eq(first.subtotalExact.numerator.plus(second.subtotalExact.numerator));
        },
      ),
    );
  },
);

t.test("property: charged units are whole increments covering the usage", async () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 50_000_000 }), (bytes) => {
      const priced = price({ service: "data", direction: "outgoing", startMs: MON_10, quantity: bytes });
      return priced.chargedUnits % 1024 === 0 && priced.chargedUnits >= bytes && priced.chargedUnits - bytes < 1024;
    }),
  );
});

t.test("tariff validation lists every problem with its path", async (t) => {
  const broken = sampleTariff();
  broken.currency = "XYZ";
  broken.timeZone = "Mars/Base";
  broken.timeBands.push({ id: "clash", days: ["mon"], from: "09:00", to: "10:00", priority: 1 });
  broken.timeBands = broken.timeBands.filter((band) => band.id !== "offpeak");
  const rate = broken.rates[0];
  if (rate) {
    rate.destination = "nowhere";
    rate.steps = [
      { from: 0, price: "0.1234567", per: 60, increment: 7 },
      { from: 60, price: "0.1", per: 60, increment: 1 },
    ];
  }
  broken.rates.push({ ...(broken.rates[2] as (typeof broken.rates)[number]), id: "national-again" });
  const error = t.throws(() => compileTariff(broken)) as TariffError;
  t.ok(error instanceof TariffError);
  const messages = error.problems.map((problem) => `${problem.path}: ${problem.message}`);
  for (const expected of [
    /^currency: /,
    /^timeZone: /,
    /^timeBands: no band covers mon at 00:00/,
    /^timeBands: peak and clash overlap on mon at 09:00 with equal priority/,
    /^rates\[0\]\.destination: unknown destination nowhere/,
    /^rates\[0\]\.steps\[0\]\.price: has more than 6 decimals/,
    /^rates\[0\]\.steps\[0\]\.increment: must divide/,
    /^rates\[\d+\]: applies to the same events as rate national/,
  ]) {
    t.ok(
      messages.some((message) => expected.test(message)),
      `reports ${expected}`,
    );
  }
  const schemaError = t.throws(() =>
    compileTariff({ id: "x", currency: "EUR", rates: [{ price: -1 }] }),
  ) as TariffError;
  t.ok(schemaError.problems.length >= 3, "schema problems are all listed too");
});
