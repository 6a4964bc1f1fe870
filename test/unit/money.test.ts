import fc from "fast-check";
import t from "tap";
import { amountToJsonNumber, Money, parseDecimalText, parseJsonAmount, roundMoney } from "../../src/shared/money.js";

const cents = { maxDecimals: 2, allowNegative: false };

t.test("a JSON amount converts to the decimal of its shortest text, exactly", async (t) => {
  t.equal((parseJsonAmount(0.1, cents) as InstanceType<typeof Money>).toFixed(), "0.1");
  t.equal((parseJsonAmount(100.5, cents) as InstanceType<typeof Money>).toFixed(), "100.5");
  // 0.1 + 0.2 as a float is 0.30000000000000004: seventeen digits, refused rather than rounded.
  t.equal(parseJsonAmount(0.1 + 0.2, { maxDecimals: 6, allowNegative: false }), "too_many_digits");
});

t.test("amount limits: negative, too many decimals, too large, not finite", async (t) => {
  t.equal(parseJsonAmount(-1, cents), "negative");
  t.equal(parseJsonAmount(1.234, cents), "too_many_decimals");
  t.equal(parseJsonAmount(1e13, cents), "too_large");
  t.equal(parseJsonAmount(Number.POSITIVE_INFINITY, cents), "not_finite");
  t.equal(parseJsonAmount(Number.NaN, cents), "not_finite");
  t.equal((parseJsonAmount(-0, cents) as InstanceType<typeof Money>).toFixed(), "0");
  t.equal(parseDecimalText("12.345678", { maxDecimals: 6, allowNegative: true }).toString(), "12.345678");
  t.equal(parseDecimalText("1e5", cents), "not_finite");
});

t.test("amounts with at most 15 significant digits survive the JSON number round trip", async (t) => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: -(10n ** 15n) + 1n, max: 10n ** 15n - 1n }),
      fc.integer({ min: 0, max: 6 }),
      (units, scale) => {
        const amount = new Money(units.toString()).div(new Money(10).pow(scale));
        const text = JSON.stringify({ value: amountToJsonNumber(amount) });
        const back = new Money(String((JSON.parse(text) as { value: number }).value));
        return back.eq(amount);
      },
    ),
  );
  t.throws(() => amountToJsonNumber(new Money("1234567890.1234567")), RangeError);
});

t.test("rounding happens with a named mode", async (t) => {
  t.equal(roundMoney(new Money("2.345"), 2, "halfUp").toFixed(), "2.35");
  t.equal(roundMoney(new Money("2.345"), 2, "halfEven").toFixed(), "2.34");
  t.equal(roundMoney(new Money("2.341"), 2, "up").toFixed(), "2.35");
  t.equal(roundMoney(new Money("-2.349"), 2, "down").toFixed(), "-2.34");
});
