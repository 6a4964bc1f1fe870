import fc from "fast-check";
import t from "tap";
import { divideHalfUp, formatScaled, MinorAmount, parseScaled } from "../../src/shared/minor-units.js";
import { Money } from "../../src/shared/money.js";

/** Exact amounts in minor units: parsing, formatting and half-up division agree with decimal.js. */

t.test("decimal text in and out", async (t) => {
  t.equal(parseScaled("12.34", 6), 12_340_000n);
  t.equal(parseScaled("-0.5", 2), -50n);
  t.equal(parseScaled("19.990000", 2), 1999n, "trailing zeros beyond the scale are no decimals");
  t.equal(parseScaled("7", 0), 7n);
  t.equal(formatScaled(-5n, 2), "-0.05");
  t.equal(formatScaled(1999n, 2), "19.99");
  t.equal(formatScaled(7n, 0), "7");
  for (const bad of ["", "-", ".5", "5.", "1.2.3", "1e5", "abc", " 1", "1,5", "+1"]) {
    t.throws(() => parseScaled(bad, 2), RangeError, `${JSON.stringify(bad)} refused`);
  }
  t.throws(() => parseScaled("12.345", 2), /more than 2 decimals/, "a third decimal is refused, never dropped");
});

t.test("half-up division is decimal.js's ROUND_HALF_UP (half away from zero)", async (t) => {
  t.equal(divideHalfUp(5n, 2n), 3n);
  t.equal(divideHalfUp(-5n, 2n), -3n);
  t.equal(divideHalfUp(4n, 3n), 1n);
  t.equal(divideHalfUp(-4n, 3n), -1n);
  fc.assert(
    fc.property(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }), fc.bigInt({ min: 1n, max: 10n ** 9n }), (n, d) => {
      const expected = new Money(n.toString()).dividedBy(d.toString()).toDecimalPlaces(0, Money.ROUND_HALF_UP);
      return divideHalfUp(n, d).toString() === expected.toFixed(0);
    }),
    { numRuns: 2000, seed: 23 },
  );
  t.pass("2,000 random quotients agree");
});

t.test("MinorAmount reads like a decimal", async (t) => {
  const a = MinorAmount.parse("10.05", 2);
  const b = MinorAmount.parse("0.10", 2);
  t.equal(a.plus(b).toFixed(), "10.15");
  t.equal(b.minus(a).toFixed(2), "-9.95");
  t.equal(b.minus(a).abs().toFixed(), "9.95");
  t.equal(a.toFixed(4), "10.0500", "more decimals pad with zeros");
  t.throws(() => a.toFixed(1), RangeError, "fewer decimals would round: refused");
  t.ok(a.gt(b) && b.lt(a) && a.gte(a) && a.eq(MinorAmount.parse("10.05", 2)));
  t.equal(a.toMoney().toFixed(), "10.05");
  t.equal(JSON.stringify({ a }), '{"a":"10.05"}');
  t.equal(MinorAmount.parse("1500", 0).toFixed(), "1500", "JPY has no minor unit");
});
