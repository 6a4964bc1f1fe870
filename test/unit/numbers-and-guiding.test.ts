import t from "tap";
import type { GuidingLine } from "../../src/modules/subscriptions/subscriptions.service.js";
import { LineIndex } from "../../src/modules/usage/line-index.js";
import { type NumberRules, normalizeNumber } from "../../src/modules/usage/numbers.js";

const germany: NumberRules = {
  countryCode: "49",
  nationalPrefix: "0",
  internationalPrefix: "00",
  bareNumbers: "international",
};
const nanp: NumberRules = {
  countryCode: "1",
  nationalPrefix: "1",
  internationalPrefix: "011",
  bareNumbers: "national",
};

t.test("numbers are normalized to E.164 with the source's rules", async (t) => {
  const cases: Array<[string, NumberRules, boolean, string | RegExp]> = [
    ["+4915112345678", germany, false, "+4915112345678"],
    ["004930123456", germany, false, "+4930123456"],
    ["015112345678", germany, false, "+4915112345678"],
    ["4915112345678", germany, false, "+4915112345678"],
    ["112", germany, true, "112"],
    ["*100#", germany, true, "*100#"],
    ["2125551234", nanp, false, "+12125551234"],
    ["12125551234", nanp, false, "+12125551234"],
    ["01144207946000", nanp, false, "+44207946000"],
    ["112", germany, false, /too short/],
    ["+49 151", germany, false, /digits/],
    ["+0123456789", germany, false, /not an E.164/],
    ["1".repeat(40), germany, false, /1 to 32/],
    ["+49151' OR 1=1", germany, true, /digits/],
  ];
  for (const [written, rules, shortCode, expected] of cases) {
    const result = normalizeNumber(written, rules, shortCode);
    if (typeof expected === "string") t.same(result, { ok: true, value: expected }, written);
    else t.match(result, { ok: false, reason: expected }, written);
  }
});

const line = (version: number, overrides: Partial<GuidingLine> = {}): GuidingLine => ({
  productId: "p1",
  billingAccountId: "a1",
  msisdn: "+4915100000000",
  imsi: "262010000000001",
  status: "active",
  fromMs: 1_000,
  toMs: null,
  version,
  ...overrides,
});

t.test("the guiding index never lets an older snapshot replace a newer one", async (t) => {
  const index = new LineIndex({ guidingLines: async () => [] });
  const query = { servedMsisdn: "+4915100000000", servedImsi: null, startedAtMs: 5_000 };
  index.apply([line(3)]);
  t.match(index.guide(query), { ok: true, productId: "p1" });
  index.apply([line(5, { status: "terminated", toMs: 4_000 })]);
  t.match(index.guide(query), { ok: false, reason: "no_line_at_time" });
  index.apply([line(4)]);
  t.match(index.guide(query), { ok: false, reason: "no_line_at_time" }, "a slow, older read lands late and is ignored");
  t.match(index.guide({ ...query, startedAtMs: 2_000 }), { ok: true }, "a CDR from before the end is still the line's");
  t.match(index.guide({ servedMsisdn: null, servedImsi: "262010000000001", startedAtMs: 2_000 }), { ok: true });
  index.apply([line(6, { productId: "p2", billingAccountId: "a2", fromMs: 4_500, imsi: null })]);
  t.match(index.guide(query), { ok: true, productId: "p2" }, "the number's next line");
  index.apply([line(7, { productId: "p3", msisdn: "+4915100000009", imsi: "262010000000009", fromMs: 0 })]);
  t.match(index.guide({ ...query, servedImsi: "262010000000009" }), { ok: false, reason: "identity_mismatch" });
});

t.test("a full load keeps what was applied while it ran", async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const index = new LineIndex({
    guidingLines: async () => {
      await gate;
      return [line(1)];
    },
  });
  const loading = index.loadAll({} as never);
  index.apply([line(2, { status: "terminated", toMs: 2_000 })]);
  release();
  await loading;
  t.match(index.guide({ servedMsisdn: "+4915100000000", servedImsi: null, startedAtMs: 3_000 }), {
    ok: false,
    reason: "no_line_at_time",
  });
});
