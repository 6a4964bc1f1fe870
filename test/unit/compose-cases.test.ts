import t from "tap";
import { ComposeError, composeInvoice, type Draft } from "../../src/modules/billing/compose.js";
import {
  at,
  BERLIN,
  cycleInvoice,
  finalBill,
  lineOf,
  linesOf,
  oneTime,
  price,
  product,
  promotion,
  spendCredit,
  taxCatalog,
  usage,
} from "../support/compose-input.js";

/**
 * `composeInvoice` against amounts worked out by hand from the rules in its header comment (DESIGN.md §10): every
 * expectation carries its arithmetic. Shares are `price × days / days of the period` rounded half-up, the last piece
 * of the period takes the remainder; tax per category and rate on the summed nets (EN 16931 BR-CO-17).
 * Berlin is UTC+1 until 28 March 2027 and UTC+2 from then to 31 October 2027.
 */

const totals = (draft: Draft) => [draft.net.toFixed(2), draft.tax.toFixed(2), draft.gross.toFixed(2)];

t.test("cycle day 31 in February 2027: the period ends on the 28th", async (t) => {
  const cycle = { billCycleDay: 31, timeZone: BERLIN };
  const p1 = product({
    id: "p1",
    prices: [
      price({ priceId: "plan", amount: "30.00" }),
      price({ priceId: "extra", amount: "14.00", billing: "arrears" }),
    ],
    history: [[at("2027-02-10T10:00:00+01:00"), "active"]],
  });
  // The invoice at 28 February 2027: usage period 31 January → 28 February (28 days: 31 Jan + 1–27 Feb), advance
  // period 28 February → 31 March (31 days: 28 Feb + 1–30 Mar).
  const draft = composeInvoice(cycleInvoice(at("2027-02-28T00:00:00+01:00"), { cycle, products: [p1] }));
  t.equal(draft.usagePeriod.key, "2027-01-31");
  t.equal(draft.usagePeriod.startMs, at("2027-01-31T00:00:00+01:00"));
  t.equal(draft.advancePeriod?.key, "2027-02-28");
  t.equal(draft.advancePeriod?.endMs, at("2027-03-31T00:00:00+02:00"), "31 March, summer time");

  // Pieces of the usage period: 31 Jan–9 Feb (10 days, not yet active), 10–27 Feb (18 days, active).
  // plan: 30 × 10 / 28 = 10.714… → 10.71; the last piece takes the remainder 30.00 − 10.71 = 19.29.
  const plan = lineOf(draft, { kind: "recurring", priceId: "plan", period: draft.usagePeriod });
  t.equal(plan.charge.toFixed(2), "19.29");
  t.equal(plan.days, 18);
  t.equal(plan.basisDays, 28);
  // extra (arrears): 14 × 10 / 28 = 5.00; remainder 14.00 − 5.00 = 9.00.
  t.equal(lineOf(draft, { priceId: "extra", period: draft.usagePeriod }).charge.toFixed(2), "9.00");
  // plan in advance for 28 Feb → 31 Mar, the whole period: 30.00. An arrears price has no advance line.
  const advance = lineOf(draft, { kind: "recurring", priceId: "plan", period: draft.advancePeriod });
  t.equal(advance.charge.toFixed(2), "30.00");
  t.equal(advance.days, 31);
  t.equal(linesOf(draft, { priceId: "extra", period: draft.advancePeriod }).length, 0);
  // net 19.29 + 9.00 + 30.00 = 58.29; tax round(58.29 × 0.19 = 11.0751) = 11.08; gross 69.37.
  t.same(totals(draft), ["58.29", "11.08", "69.37"]);

  // The next invoice, at 31 March: usage 28 Feb → 31 Mar, advance 31 March → 30 April (30 days).
  const next = composeInvoice(cycleInvoice(at("2027-03-31T00:00:00+02:00"), { cycle, products: [p1] }));
  t.equal(next.usagePeriod.key, "2027-02-28");
  t.equal(next.advancePeriod?.key, "2027-03-31");
  t.equal(next.advancePeriod?.endMs, at("2027-04-30T00:00:00+02:00"));
  // extra in arrears for the whole period: 14.00; plan was charged at its start: nothing to settle; April 30.00.
  t.equal(lineOf(next, { priceId: "extra", period: next.usagePeriod }).charge.toFixed(2), "14.00");
  t.equal(linesOf(next, { priceId: "plan", period: next.usagePeriod }).length, 0);
  t.equal(lineOf(next, { priceId: "plan", period: next.advancePeriod }).charge.toFixed(2), "30.00");
  // net 44.00; tax 44.00 × 0.19 = 8.36; gross 52.36.
  t.same(totals(next), ["44.00", "8.36", "52.36"]);
});

t.test("cycle day 31 in a leap year (2028): the period ends on 29 February", async (t) => {
  const cycle = { billCycleDay: 31, timeZone: BERLIN };
  const p1 = product({
    id: "p1",
    prices: [
      price({ priceId: "plan", amount: "30.00" }),
      price({ priceId: "extra", amount: "14.00", billing: "arrears" }),
    ],
    history: [[at("2028-02-10T10:00:00+01:00"), "active"]],
  });
  // Usage period 31 January → 29 February 2028: 29 days (31 Jan + 1–28 Feb); advance 29 Feb → 31 Mar: 31 days.
  const draft = composeInvoice(cycleInvoice(at("2028-02-29T00:00:00+01:00"), { cycle, products: [p1] }));
  t.equal(draft.usagePeriod.key, "2028-01-31");
  t.equal(draft.advancePeriod?.key, "2028-02-29");
  // Pieces: 31 Jan–9 Feb (10 days), 10–28 Feb (19 days).
  // plan: 30 × 10 / 29 = 10.3448… → 10.34; remainder 30.00 − 10.34 = 19.66.
  const plan = lineOf(draft, { priceId: "plan", period: draft.usagePeriod });
  t.equal(plan.charge.toFixed(2), "19.66");
  t.equal(plan.days, 19);
  t.equal(plan.basisDays, 29);
  // extra: 14 × 10 / 29 = 4.8275… → 4.83; remainder 14.00 − 4.83 = 9.17.
  t.equal(lineOf(draft, { priceId: "extra", period: draft.usagePeriod }).charge.toFixed(2), "9.17");
  t.equal(lineOf(draft, { priceId: "plan", period: draft.advancePeriod }).charge.toFixed(2), "30.00");
  // net 19.66 + 9.17 + 30.00 = 58.83; tax round(11.1777) = 11.18; gross 70.01.
  t.same(totals(draft), ["58.83", "11.18", "70.01"]);
});

t.test("the remainder rule: the last piece of a period takes what is left, not its own rounding", async (t) => {
  // 10.01 over February 2027 (28 days), active from the 15th: pieces 1–14 Feb (14 days) and 15–28 Feb (14 days).
  // First piece 10.01 × 14 / 28 = 5.005 → 5.01 (half-up); the last takes 10.01 − 5.01 = 5.00 (its own rounding
  // would say 5.01, and the two pieces would add up to 10.02).
  const p1 = product({
    id: "p1",
    prices: [price({ priceId: "plan", amount: "10.01", billing: "arrears" })],
    history: [[at("2027-02-15T08:00:00+01:00"), "active"]],
  });
  const draft = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [p1] }));
  t.equal(lineOf(draft, { priceId: "plan" }).charge.toFixed(2), "5.00");

  // The other half: active from long before and terminated on 15 February; in advance it paid 10.01 for February,
  // the final bill credits the last piece, 5.00, so the customer paid 5.01 for 1–14 February (5.01 + 5.00 = 10.01).
  const p2 = product({
    id: "p2",
    prices: [price({ priceId: "plan", amount: "10.01" })],
    history: [
      [at("2026-12-01T08:00:00+01:00"), "active"],
      [at("2027-02-15T08:00:00+01:00"), "terminated"],
    ],
  });
  const start = composeInvoice(cycleInvoice(at("2027-02-01T00:00:00+01:00"), { products: [p2] }));
  t.equal(lineOf(start, { priceId: "plan", period: start.advancePeriod }).charge.toFixed(2), "10.01");
  const final = composeInvoice(finalBill(at("2027-02-15T08:00:00+01:00"), { products: [p2] }));
  const unused = lineOf(final, { kind: "unused", priceId: "plan" });
  t.equal(unused.charge.toFixed(2), "-5.00");
  t.equal(unused.days, 14);
});

t.test("activation on the cycle day and on the day before it", async (t) => {
  const plan = price({ priceId: "plan", amount: "20.00" });

  // On the cycle day (1 March 2027, 09:00): the invoice at 1 March (issued at midnight, or later that morning) has
  // nothing for it: the line did not exist at the start of March, so March is not charged in advance there.
  const onDay = product({ id: "p1", prices: [plan], history: [[at("2027-03-01T09:00:00+01:00"), "active"]] });
  const atMidnight = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [onDay] }));
  t.equal(atMidnight.lines.length, 0, "nothing at midnight");
  t.ok(
    atMidnight.notes.some((note) => /nothing to bill/i.test(note)),
    "an empty postpaid bill says so",
  );
  const later = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [onDay] }, at("2027-03-01T10:00:00+01:00")),
  );
  t.equal(later.lines.length, 0, "nothing either when the run is after the activation: March had no line at its start");
  // The invoice at 1 April charges all of March (activation counts its day: 31 of 31 days = the price, one piece)
  // and April in advance: 20.00 + 20.00 = 40.00; tax 7.60; gross 47.60.
  const april = composeInvoice(cycleInvoice(at("2027-04-01T00:00:00+02:00"), { products: [onDay] }));
  const march = lineOf(april, { priceId: "plan", period: april.usagePeriod });
  t.equal(march.charge.toFixed(2), "20.00");
  t.equal(march.days, 31);
  t.equal(march.name, "plan", "a whole period carries the price's name alone");
  t.equal(lineOf(april, { priceId: "plan", period: april.advancePeriod }).charge.toFixed(2), "20.00");
  t.same(totals(april), ["40.00", "7.60", "47.60"]);

  // The day before (28 February 2027, 09:00): the invoice at 1 March charges 1 day of February's 28 and March.
  // Pieces 1–27 Feb (27 days): 20 × 27 / 28 = 19.2857… → 19.29; the last piece, 28 Feb, 20.00 − 19.29 = 0.71.
  const dayBefore = product({ id: "p1", prices: [plan], history: [[at("2027-02-28T09:00:00+01:00"), "active"]] });
  const first = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [dayBefore] }));
  const february = lineOf(first, { priceId: "plan", period: first.usagePeriod });
  t.equal(february.charge.toFixed(2), "0.71");
  t.equal(february.days, 1);
  t.equal(february.basisDays, 28);
  t.equal(february.name, "plan: 1 of 28 days");
  t.equal(lineOf(first, { priceId: "plan", period: first.advancePeriod }).charge.toFixed(2), "20.00");
  // net 20.71; tax round(20.71 × 0.19 = 3.9349) = 3.93; gross 24.64.
  t.same(totals(first), ["20.71", "3.93", "24.64"]);
});

t.test("termination the day after activation: a final bill", async (t) => {
  const plan = price({ priceId: "plan", amount: "30.00" });
  const p1 = product({
    id: "p1",
    prices: [plan],
    history: [
      [at("2027-03-10T10:00:00+01:00"), "active"],
      [at("2027-03-11T10:00:00+01:00"), "terminated"],
    ],
  });
  const draft = composeInvoice(finalBill(at("2027-03-11T10:00:00+01:00"), { products: [p1] }));
  t.equal(draft.kind, "final");
  t.equal(draft.advancePeriod, null);
  t.equal(draft.usagePeriod.key, "2027-03-01");
  // March (31 days) in pieces: 1–9 (9 days, no line), 10 (1 day, active: activation counts its day), 11–31 (21 days,
  // terminated: termination does not). 30 × 9 / 31 = 8.7096… → 8.71; 30 × 1 / 31 = 0.9677… → 0.97;
  // last 30.00 − 8.71 − 0.97 = 20.32. Charged: the active piece, 0.97.
  const line = lineOf(draft, { priceId: "plan" });
  t.equal(line.kind, "recurring");
  t.equal(line.charge.toFixed(2), "0.97");
  t.equal(line.days, 1);
  t.equal(line.basisDays, 31);
  t.equal(draft.lines.length, 1, "no advance line, no credit: March was never charged in advance");
  // tax round(0.97 × 0.19 = 0.1843) = 0.18; gross 1.15. Issued 11 March, due 14 days later.
  t.same(totals(draft), ["0.97", "0.18", "1.15"]);
  t.equal(draft.issueDate, "2027-03-11");
  t.equal(draft.dueDate, "2027-03-25");

  // A line charged in advance for March (active since January) and terminated on 11 March: the final bill credits
  // the unused pieces of what was charged. Pieces 1–10 (10 days): 30 × 10 / 31 = 9.677… → 9.68; the last, 11–31
  // (21 days), 30.00 − 9.68 = 20.32, credited.
  const old = product({
    id: "p2",
    prices: [plan],
    history: [
      [at("2027-01-15T10:00:00+01:00"), "active"],
      [at("2027-03-11T10:00:00+01:00"), "terminated"],
    ],
  });
  const credited = composeInvoice(finalBill(at("2027-03-11T10:00:00+01:00"), { products: [old] }));
  const unused = lineOf(credited, { kind: "unused", priceId: "plan" });
  t.equal(unused.charge.toFixed(2), "-20.32");
  t.equal(unused.days, 21);
  t.equal(unused.name, "plan: unused 21 of 31 days");
  // tax round(−20.32 × 0.19 = −3.8608) = −3.86; gross −24.18.
  t.same(totals(credited), ["-20.32", "-3.86", "-24.18"]);
});

t.test("suspension across the cycle day, not charged and charged by reason", async (t) => {
  const history: Array<[number, string, ("customerRequest" | "fraud")?]> = [
    [at("2027-01-01T10:00:00+01:00"), "active"],
    [at("2027-02-20T12:00:00+01:00"), "suspended", "customerRequest"],
    [at("2027-03-10T12:00:00+01:00"), "active"],
  ];
  const march1 = at("2027-03-01T00:00:00+01:00");
  const april1 = at("2027-04-01T00:00:00+02:00");

  await t.test("not charged while suspended", async (t) => {
    const p1 = product({ id: "p1", prices: [price({ priceId: "plan", amount: "20.00" })], history });
    // 1 March: February was charged 20.00 in advance (active on 1 Feb). Pieces 1–19 Feb (19 days, active) and 20–28
    // Feb (9 days, suspended): 20 × 19 / 28 = 13.5714… → 13.57; the last 20.00 − 13.57 = 6.43, credited.
    // March is not charged in advance: suspended at its start.
    const march = composeInvoice(cycleInvoice(march1, { products: [p1] }));
    const unused = lineOf(march, { kind: "unused", priceId: "plan" });
    t.equal(unused.charge.toFixed(2), "-6.43");
    t.equal(unused.days, 9);
    t.equal(linesOf(march, { period: march.advancePeriod }).length, 0, "no advance charge while suspended");
    // tax round(−6.43 × 0.19 = −1.2217) = −1.22; gross −7.65.
    t.same(totals(march), ["-6.43", "-1.22", "-7.65"]);
    // 1 April: March was not charged at its start. Pieces 1–9 Mar (9 days, suspended) and 10–31 Mar (22 days,
    // active): 20 × 9 / 31 = 5.8064… → 5.81; the last 20.00 − 5.81 = 14.19, charged. April in advance: 20.00.
    const april = composeInvoice(cycleInvoice(april1, { products: [p1] }));
    const resumed = lineOf(april, { kind: "recurring", priceId: "plan", period: april.usagePeriod });
    t.equal(resumed.charge.toFixed(2), "14.19");
    t.equal(resumed.days, 22);
    t.equal(lineOf(april, { priceId: "plan", period: april.advancePeriod }).charge.toFixed(2), "20.00");
    // net 34.19; tax round(6.4961) = 6.50; gross 40.69.
    t.same(totals(april), ["34.19", "6.50", "40.69"]);
  });

  await t.test("charged while suspended for a reason the price names", async (t) => {
    const charged = price({ priceId: "plan", amount: "20.00", chargedWhenSuspended: ["customerRequest"] });
    const p1 = product({ id: "p1", prices: [charged], history });
    // Suspension for a customer request is still charged: nothing to credit for February, March in advance.
    const march = composeInvoice(cycleInvoice(march1, { products: [p1] }));
    t.equal(linesOf(march, { kind: "unused" }).length, 0);
    t.equal(lineOf(march, { priceId: "plan", period: march.advancePeriod }).charge.toFixed(2), "20.00");
    t.same(totals(march), ["20.00", "3.80", "23.80"]);
    const april = composeInvoice(cycleInvoice(april1, { products: [p1] }));
    t.equal(linesOf(april, { period: april.usagePeriod }).length, 0, "March settled: nothing to add or credit");
    t.same(totals(april), ["20.00", "3.80", "23.80"]);
  });

  await t.test("not charged when the reason is not among those the price names", async (t) => {
    const charged = price({ priceId: "plan", amount: "20.00", chargedWhenSuspended: ["customerRequest"] });
    const fraud = history.map(([ms, status, reason]): [number, string, "fraud"?] =>
      reason === undefined ? [ms, status] : [ms, status, "fraud"],
    );
    const p1 = product({ id: "p1", prices: [charged], history: fraud });
    // As not charged: credit 6.43 for 20–28 February, no advance for March.
    const march = composeInvoice(cycleInvoice(march1, { products: [p1] }));
    t.equal(lineOf(march, { kind: "unused" }).charge.toFixed(2), "-6.43");
    t.equal(linesOf(march, { period: march.advancePeriod }).length, 0);
  });
});

t.test("a plan change inside a period: the old price credited, the new one charged, by days", async (t) => {
  const small = price({ priceId: "plan-s", amount: "20.00" });
  const large = price({ priceId: "plan-l", amount: "30.00" });
  const p1 = product({
    id: "p1",
    prices: [small],
    history: [[at("2027-01-10T10:00:00+01:00"), "active"]],
    later: [{ fromMs: at("2027-03-02T09:00:00+01:00"), prices: [large] }],
  });
  // 1 March: March in advance at the price then in effect, plan-s 20.00.
  const march = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [p1] }));
  t.equal(lineOf(march, { priceId: "plan-s", period: march.advancePeriod }).charge.toFixed(2), "20.00");
  // 1 April: March in pieces 1 March (1 day, plan-s) and 2–31 March (30 days, plan-l: the change day belongs to
  // the new price). plan-s: 20 × 1 / 31 = 0.645… → 0.65, the last piece 20.00 − 0.65 = 19.35, credited.
  // plan-l: 30 × 1 / 31 = 0.967… → 0.97, the last piece 30.00 − 0.97 = 29.03, charged. April: plan-l 30.00.
  const april = composeInvoice(cycleInvoice(at("2027-04-01T00:00:00+02:00"), { products: [p1] }));
  const unused = lineOf(april, { kind: "unused", priceId: "plan-s" });
  t.equal(unused.charge.toFixed(2), "-19.35");
  t.equal(unused.days, 30);
  const charged = lineOf(april, { kind: "recurring", priceId: "plan-l", period: april.usagePeriod });
  t.equal(charged.charge.toFixed(2), "29.03");
  t.equal(charged.days, 30);
  t.equal(lineOf(april, { priceId: "plan-l", period: april.advancePeriod }).charge.toFixed(2), "30.00");
  // March cost 20.00 − 19.35 + 29.03 = 29.68; the April invoice: −19.35 + 29.03 + 30.00 = 39.68;
  // tax round(39.68 × 0.19 = 7.5392) = 7.54; gross 47.22.
  t.same(totals(april), ["39.68", "7.54", "47.22"]);
});

t.test(
  "a plan change on the cycle day, after the bill run charged the old price: the old price is credited whole",
  async (t) => {
    const small = price({ priceId: "plan-s", amount: "20.00" });
    const large = price({ priceId: "plan-l", amount: "30.00" });
    const p1 = product({
      id: "p1",
      prices: [small],
      history: [[at("2027-01-10T10:00:00+01:00"), "active"]],
      later: [{ fromMs: at("2027-03-01T09:00:00+01:00"), prices: [large] }],
    });
    // The bill run at midnight on 1 March charged March at plan-s, 20.00 (the change came at 09:00).
    const march = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [p1] }));
    t.equal(lineOf(march, { priceId: "plan-s", period: march.advancePeriod }).charge.toFixed(2), "20.00");
    // 1 April: every day of March belongs to plan-l (the change day to the state at its end), so plan-s is "a price
    // that ended": all 31 days of what it charged are credited, −20.00; plan-l is charged for March, 31 of 31 days,
    // 30.00, and April in advance, 30.00. The April invoice: −20.00 + 30.00 + 30.00 = 40.00; tax 7.60; gross 47.60.
    const april = composeInvoice(cycleInvoice(at("2027-04-01T00:00:00+02:00"), { products: [p1] }));
    t.equal(lineOf(april, { priceId: "plan-l", period: april.usagePeriod }).charge.toFixed(2), "30.00");
    t.equal(linesOf(april, { kind: "unused", priceId: "plan-s" }).length, 1, "plan-s credited");
    t.equal(linesOf(april, { kind: "unused", priceId: "plan-s" })[0]?.charge.toFixed(2), "-20.00", "its 20.00");
    // (The code bills 30.00 + 30.00 with no credit: net 60.00, tax 11.40, gross 71.40; March costs 50.00.)
    t.same(totals(april), ["40.00", "7.60", "47.60"], "the April invoice");
  },
);

t.test("a promotion on its last cycle, and the cycle after it", async (t) => {
  const activation = at("2027-01-15T10:00:00+01:00");
  const p1 = product({
    id: "p1",
    prices: [price({ priceId: "plan", amount: "19.99" })],
    history: [[activation, "active"]],
    promotions: [
      promotion({
        id: "welcome",
        name: "Welcome 25 %",
        percentOff: "25",
        cycles: 3,
        priceIds: ["plan"],
        startMs: activation,
      }),
    ],
  });
  // Cycles: 1 = January (holds the start), 2 = February, 3 = March.
  // 1 February: January in pieces 1–14 (14 days) and 15–31 (17 days): 19.99 × 14 / 31 = 9.0277… → 9.03; the last
  // 19.99 − 9.03 = 10.96; 25 % off: 10.96 × 0.25 = 2.74 → charge 8.22. February in advance (cycle 2):
  // 19.99 × 0.25 = 4.9975 → 5.00 off → 14.99.
  const february = composeInvoice(cycleInvoice(at("2027-02-01T00:00:00+01:00"), { products: [p1] }));
  const january = lineOf(february, { priceId: "plan", period: february.usagePeriod });
  t.equal(january.amount.toFixed(2), "10.96");
  t.equal(january.discount.toFixed(2), "2.74");
  t.equal(january.charge.toFixed(2), "8.22");
  t.same(
    january.promotions.map((entry) => [entry.id, entry.name, entry.amount.toFixed(2)]),
    [["welcome", "Welcome 25 %", "2.74"]],
    "the promotion is named on the line",
  );
  t.equal(lineOf(february, { priceId: "plan", period: february.advancePeriod }).charge.toFixed(2), "14.99");
  // net 8.22 + 14.99 = 23.21; tax round(4.4099) = 4.41; gross 27.62.
  t.same(totals(february), ["23.21", "4.41", "27.62"]);

  // 1 March: March in advance is the last cycle: 19.99 − 5.00 = 14.99.
  const march = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [p1] }));
  const last = lineOf(march, { priceId: "plan", period: march.advancePeriod });
  t.equal(last.discount.toFixed(2), "5.00");
  t.equal(last.charge.toFixed(2), "14.99");
  t.equal(march.lines.length, 1, "February settled: nothing else");
  // 1 April: April is cycle 4: no discount.
  const april = composeInvoice(cycleInvoice(at("2027-04-01T00:00:00+02:00"), { products: [p1] }));
  const after = lineOf(april, { priceId: "plan", period: april.advancePeriod });
  t.equal(after.discount.toFixed(2), "0.00");
  t.equal(after.charge.toFixed(2), "19.99");
  t.same(after.promotions, []);
});

t.test("an amount off larger than the line: the charge is zero, never negative", async (t) => {
  const activation = at("2027-02-28T09:00:00+01:00");
  const p1 = product({
    id: "p1",
    prices: [price({ priceId: "plan", amount: "20.00" })],
    history: [[activation, "active"]],
    promotions: [promotion({ id: "five", amountOff: "5.00", cycles: 2, priceIds: ["plan"], startMs: activation })],
  });
  // 1 March: February's one day is 0.71 (20 × 27 / 28 = 19.29, remainder 0.71): 5.00 off is capped at 0.71 → 0.00.
  // March in advance (cycle 2): 20.00 − 5.00 = 15.00.
  const draft = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [p1] }));
  const february = lineOf(draft, { priceId: "plan", period: draft.usagePeriod });
  t.equal(february.amount.toFixed(2), "0.71");
  t.equal(february.discount.toFixed(2), "0.71");
  t.equal(february.charge.toFixed(2), "0.00");
  t.equal(lineOf(draft, { priceId: "plan", period: draft.advancePeriod }).charge.toFixed(2), "15.00");
  t.same(totals(draft), ["15.00", "2.85", "17.85"]);

  // 25.00 off a 20.00 line: 20.00 off, charge 0.00. Percent-off first, then amount-off, whatever their ids:
  // 10.00 − 10 % (1.00) = 9.00, − 5.00 = 4.00 (the other order would give 4.50).
  const start = at("2027-03-01T00:00:00+01:00");
  const p2 = product({
    id: "p2",
    prices: [price({ priceId: "plan", amount: "20.00" }), price({ priceId: "extra", amount: "10.00" })],
    history: [[at("2027-01-05T10:00:00+01:00"), "active"]],
    promotions: [
      promotion({ id: "big", amountOff: "25.00", priceIds: ["plan"], startMs: start }),
      promotion({ id: "a-amount", amountOff: "5.00", priceIds: ["extra"], startMs: start }),
      promotion({ id: "z-percent", percentOff: "10", priceIds: ["extra"], startMs: start }),
    ],
  });
  const march = composeInvoice(cycleInvoice(start, { products: [p2] }));
  const plan = lineOf(march, { priceId: "plan", period: march.advancePeriod });
  t.equal(plan.discount.toFixed(2), "20.00");
  t.equal(plan.charge.toFixed(2), "0.00");
  const extra = lineOf(march, { priceId: "extra", period: march.advancePeriod });
  t.same(
    extra.promotions.map((entry) => [entry.id, entry.amount.toFixed(2)]),
    [
      ["z-percent", "1.00"],
      ["a-amount", "5.00"],
    ],
  );
  t.equal(extra.charge.toFixed(2), "4.00");
  t.same(totals(march), ["4.00", "0.76", "4.76"]);
});

t.test("tax-exclusive and tax-inclusive prices (EN 16931)", async (t) => {
  const issue = at("2027-03-01T00:00:00+01:00");
  const day = at("2027-02-20T10:00:00+01:00");

  // Exclusive: tax on the summed nets, not per line: round((2.50 + 2.50) × 0.19 = 0.95) = 0.95 (per line it would
  // be 0.475 → 0.48 twice, 0.96).
  const exclusive = composeInvoice(
    cycleInvoice(issue, {
      oneTimeCharges: [
        oneTime({ id: "a", amount: "2.50", atMs: day }),
        oneTime({ id: "b", amount: "2.50", atMs: day }),
      ],
    }),
  );
  t.same(totals(exclusive), ["5.00", "0.95", "5.95"]);
  t.same(
    exclusive.taxes.map((entry) => [
      entry.category,
      entry.rate.toFixed(2),
      entry.taxable.toFixed(2),
      entry.tax.toFixed(2),
    ]),
    [["S", "0.19", "5.00", "0.95"]],
  );

  // Inclusive: gross 9.99 + 4.99 = 14.98; tax round(14.98 × 0.19 / 1.19 = 2.3917…) = 2.39; nets 14.98 − 2.39 =
  // 12.59, allocated by largest remainder: 9.99 / 1.19 = 8.3949… and 4.99 / 1.19 = 4.1932… round down to 8.39 and
  // 4.19 (12.58); the missing cent goes to the larger remainder (.49 > .32): 8.40 and 4.19.
  const inclusive = composeInvoice(
    cycleInvoice(issue, {
      oneTimeCharges: [
        oneTime({ id: "a", amount: "9.99", atMs: day, taxIncluded: true }),
        oneTime({ id: "b", amount: "4.99", atMs: day, taxIncluded: true }),
      ],
    }),
  );
  t.same(totals(inclusive), ["12.59", "2.39", "14.98"]);
  t.same(
    inclusive.lines.map((entry) => [entry.charge.toFixed(2), entry.net.toFixed(2)]),
    [
      ["9.99", "8.40"],
      ["4.99", "4.19"],
    ],
  );

  // Both at one rate: round(10.00 × 0.19) = 1.90 for the exclusive line, round(12.00 × 0.19 / 1.19 = 1.9159…) =
  // 1.92 for the inclusive one (net 10.08): taxable 20.08, tax 3.82, gross 23.90.
  const both = composeInvoice(
    cycleInvoice(issue, {
      oneTimeCharges: [
        oneTime({ id: "a", amount: "10.00", atMs: day }),
        oneTime({ id: "b", amount: "12.00", atMs: day, taxIncluded: true }),
      ],
    }),
  );
  t.same(totals(both), ["20.08", "3.82", "23.90"]);

  // A tax-inclusive recurring price, prorated: 29.99 from 20 February: pieces 1–19 Feb (19 days) 29.99 × 19 / 28 =
  // 20.3503… → 20.35, the last 29.99 − 20.35 = 9.64; March in advance 29.99. Gross 39.63; tax round(39.63 × 0.19 /
  // 1.19 = 6.3274…) = 6.33; nets 33.30.
  const p1 = product({
    id: "p1",
    prices: [price({ priceId: "plan", amount: "29.99", taxIncluded: true })],
    history: [[day, "active"]],
  });
  const recurring = composeInvoice(cycleInvoice(issue, { products: [p1] }));
  t.equal(lineOf(recurring, { priceId: "plan", period: recurring.usagePeriod }).charge.toFixed(2), "9.64");
  t.same(totals(recurring), ["33.30", "6.33", "39.63"]);
});

t.test("several rates on one invoice: standard, reduced, exempt and zero", async (t) => {
  const products = [
    product({
      id: "p1",
      prices: [
        price({ priceId: "plan", amount: "20.00" }),
        price({ priceId: "book", amount: "10.00", taxClass: "reduced" }),
      ],
      history: [[at("2027-01-05T10:00:00+01:00"), "active"]],
    }),
  ];
  const oneTimeCharges = [
    oneTime({ id: "insurance", amount: "5.00", taxClass: "exempt", atMs: at("2027-02-20T10:00:00+01:00") }),
    oneTime({ id: "export", amount: "3.00", taxClass: "zero", atMs: at("2027-02-21T10:00:00+01:00") }),
  ];
  const issue = at("2027-03-01T00:00:00+01:00");
  const draft = composeInvoice(cycleInvoice(issue, { products, oneTimeCharges }));
  // Per category and rate: E 0 % on 5.00; S 7 % on 10.00 = 0.70; S 19 % on 20.00 = 3.80; Z 0 % on 3.00.
  t.same(
    draft.taxes.map((entry) => [
      entry.category,
      entry.rate.toFixed(2),
      entry.taxable.toFixed(2),
      entry.tax.toFixed(2),
      entry.exemptionReason,
    ]),
    [
      ["E", "0.00", "5.00", "0.00", "Exempt (§ 4 UStG)"],
      ["S", "0.07", "10.00", "0.70", null],
      ["S", "0.19", "20.00", "3.80", null],
      ["Z", "0.00", "3.00", "0.00", null],
    ],
  );
  // net 38.00; tax 4.50; gross 42.50.
  t.same(totals(draft), ["38.00", "4.50", "42.50"]);

  // Reverse charge: S lines become AE at 0 % with the reason; E and Z stay.
  const reverse = composeInvoice(cycleInvoice(issue, { products, oneTimeCharges, reverseCharge: true }));
  t.equal(reverse.reverseCharge, true);
  t.same(
    reverse.taxes.map((entry) => [
      entry.category,
      entry.rate.toFixed(2),
      entry.taxable.toFixed(2),
      entry.tax.toFixed(2),
      entry.exemptionReason,
    ]),
    [
      ["AE", "0.00", "30.00", "0.00", "Reverse charge"],
      ["E", "0.00", "5.00", "0.00", "Exempt (§ 4 UStG)"],
      ["Z", "0.00", "3.00", "0.00", null],
    ],
  );
  const plan = lineOf(reverse, { priceId: "plan" });
  t.equal(plan.taxCategory, "AE");
  t.equal(plan.exemptionReason, "Reverse charge");
  t.same(totals(reverse), ["38.00", "0.00", "38.00"]);
});

t.test("a tax rate change inside a period: the rate valid on the last day of each line's service period", async (t) => {
  const cycle = { billCycleDay: 15, timeZone: BERLIN };
  const taxClasses = taxCatalog([
    {
      id: "changing",
      name: "Standard, raised on 1 July 2029",
      category: "S",
      rates: [
        { jurisdiction: "DE", rate: "0.19" },
        { jurisdiction: "DE", rate: "0.20", validFrom: "2029-07-01" },
      ],
    },
  ]);
  const p1 = product({
    id: "p1",
    prices: [
      price({ priceId: "plan", amount: "20.00", taxClass: "changing" }),
      price({ priceId: "extra", amount: "10.00", billing: "arrears", taxClass: "changing" }),
    ],
    history: [[at("2029-01-20T10:00:00+01:00"), "active"]],
    usageTax: { taxClass: "changing", taxIncluded: false },
  });
  // The invoice at 15 June 2029: usage period 15 May → 15 June (last day 14 June: 19 %), advance 15 June → 15 July
  // (last day 14 July: 20 %). A one-time charge on 10 June: 19 %. Late usage from 15 April → 15 May: 19 %.
  const draft = composeInvoice(
    cycleInvoice(at("2029-06-15T00:00:00+02:00"), {
      cycle,
      taxClasses,
      products: [p1],
      oneTimeCharges: [
        oneTime({ id: "fee", amount: "5.00", taxClass: "changing", atMs: at("2029-06-10T10:00:00+02:00") }),
      ],
      usage: [
        usage({ summaryId: "u1", usagePeriod: "2029-05-15", amount: "3.00" }),
        usage({ summaryId: "u0", usagePeriod: "2029-04-15", amount: "2.00" }),
      ],
    }),
  );
  t.equal(lineOf(draft, { priceId: "extra" }).taxRate.toFixed(2), "0.19");
  t.equal(lineOf(draft, { priceId: "plan", period: draft.advancePeriod }).taxRate.toFixed(2), "0.20");
  t.equal(lineOf(draft, { kind: "oneTime" }).taxRate.toFixed(2), "0.19");
  // 19 % on 10.00 + 3.00 + 2.00 + 5.00 = 20.00 → 3.80; 20 % on 20.00 → 4.00.
  t.same(
    draft.taxes.map((entry) => [entry.rate.toFixed(2), entry.taxable.toFixed(2), entry.tax.toFixed(2)]),
    [
      ["0.19", "20.00", "3.80"],
      ["0.20", "20.00", "4.00"],
    ],
  );
  t.same(totals(draft), ["40.00", "7.80", "47.80"]);

  // The invoice at 15 July: usage 15 June → 15 July, last day 14 July: the arrears line at 20 %.
  const july = composeInvoice(cycleInvoice(at("2029-07-15T00:00:00+02:00"), { cycle, taxClasses, products: [p1] }));
  t.equal(lineOf(july, { priceId: "extra" }).taxRate.toFixed(2), "0.20");
  // 10.00 + 20.00 at 20 %: 6.00.
  t.same(totals(july), ["30.00", "6.00", "36.00"]);
});

t.test("currencies: EUR, GBP (tax-inclusive) and JPY (no minor unit)", async (t) => {
  // The same line in three accounts: activated on 10 February 2027, billed on 1 March (February: 28 days, pieces
  // 1–9 Feb, 9 days, and 10–28 Feb, 19 days).
  const eur = product({
    id: "p1",
    prices: [price({ priceId: "plan", amount: "12.50" })],
    history: [[at("2027-02-10T10:00:00+01:00"), "active"]],
  });
  // EUR: 12.50 × 9 / 28 = 4.0178… → 4.02; remainder 12.50 − 4.02 = 8.48; March 12.50; net 20.98;
  // tax round(20.98 × 0.19 = 3.9862) = 3.99; gross 24.97.
  const inEuro = composeInvoice(cycleInvoice(at("2027-03-01T00:00:00+01:00"), { products: [eur] }));
  t.equal(inEuro.currency, "EUR");
  t.equal(lineOf(inEuro, { period: inEuro.usagePeriod }).charge.toFixed(2), "8.48");
  t.same(totals(inEuro), ["20.98", "3.99", "24.97"]);

  // GBP, London (GMT in February), prices including 20 % VAT: 8.48 and 12.50 gross = 20.98; tax round(20.98 × 0.20 /
  // 1.20 = 3.4966…) = 3.50; nets 17.48.
  const gbp = product({
    id: "p1",
    currency: "GBP",
    prices: [price({ priceId: "plan", amount: "12.50", currency: "GBP", taxIncluded: true })],
    history: [[at("2027-02-10T10:00:00Z"), "active"]],
  });
  const inPounds = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00Z"), {
      currency: "GBP",
      cycle: { billCycleDay: 1, timeZone: "Europe/London" },
      taxJurisdiction: "GB",
      products: [gbp],
    }),
  );
  t.equal(inPounds.currency, "GBP");
  t.equal(lineOf(inPounds, { period: inPounds.usagePeriod }).charge.toFixed(2), "8.48");
  t.same(totals(inPounds), ["17.48", "3.50", "20.98"]);

  // JPY, Tokyo, 10 %: 3000 × 9 / 28 = 964.28… → 964; remainder 3000 − 964 = 2036; March 3000; usage 123.5 → 124
  // (half-up to whole yen). Net 2036 + 3000 + 124 = 5160; tax 516.0 → 516; gross 5676.
  const jpy = product({
    id: "p1",
    currency: "JPY",
    prices: [price({ priceId: "plan", amount: "3000", currency: "JPY" })],
    history: [[at("2027-02-10T10:00:00+09:00"), "active"]],
  });
  const inYen = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+09:00"), {
      currency: "JPY",
      cycle: { billCycleDay: 1, timeZone: "Asia/Tokyo" },
      taxJurisdiction: "JP",
      products: [jpy],
      usage: [usage({ summaryId: "u1", usagePeriod: "2027-02-01", amount: "123.5", currency: "JPY" })],
    }),
  );
  t.equal(inYen.currency, "JPY");
  t.equal(lineOf(inYen, { period: inYen.usagePeriod, kind: "recurring" }).charge.toFixed(0), "2036");
  t.equal(lineOf(inYen, { kind: "usage" }).charge.toFixed(0), "124");
  t.same([inYen.net.toFixed(0), inYen.tax.toFixed(0), inYen.gross.toFixed(0)], ["5160", "516", "5676"]);
  t.ok(
    inYen.lines.every((entry) => /^-?\d+$/.test(entry.charge.toFixed()) && /^-?\d+$/.test(entry.net.toFixed())),
    "no fractions of a yen on any line",
  );
  t.match(inYen.tax.toFixed(), /^\d+$/, "nor in the tax");
});

t.test("a cycle day changed mid-period: one transition period prorated against the new cycle", async (t) => {
  // Cycle day 1 until 1 March 2027, then 15: the transition period runs 1 → 15 March (14 days), prorated against the
  // new cycle's full period that ends with it, 15 February → 15 March (28 days).
  const untilMs = at("2027-03-01T00:00:00+01:00");
  const cycle = { billCycleDay: 15, timeZone: BERLIN, previous: { billCycleDay: 1, timeZone: BERLIN, untilMs } };
  const a = product({
    id: "a",
    prices: [price({ priceId: "plan", amount: "20.00" })],
    history: [[at("2027-01-10T10:00:00+01:00"), "active"]],
  });
  const b = product({
    id: "b",
    prices: [price({ priceId: "plan", amount: "20.00" })],
    history: [[at("2027-03-08T10:00:00+01:00"), "active"]],
  });

  // 1 March: usage February (old cycle), advance the transition period: 20.00 × 14 / 28 = 10.00.
  const march1 = composeInvoice(cycleInvoice(untilMs, { cycle, products: [a, b] }));
  t.equal(march1.usagePeriod.key, "2027-02-01");
  t.equal(march1.advancePeriod?.key, "2027-03-01");
  t.equal(march1.advancePeriod?.endMs, at("2027-03-15T00:00:00+01:00"));
  const transition = lineOf(march1, { productId: "a", period: march1.advancePeriod });
  t.equal(transition.charge.toFixed(2), "10.00");
  t.equal(transition.days, 14);
  t.equal(transition.basisDays, 28);
  t.equal(transition.name, "plan: 14 of 28 days");
  t.same(totals(march1), ["10.00", "1.90", "11.90"]);

  // 15 March: usage the transition period, advance 15 March → 15 April (31 days): 20.00 each.
  // b, activated 8 March, pays its 7 days (8–14 March) of the 28: 20 × 7 / 28 = 5.00 (the basis's days before the
  // transition, 15–28 Feb, and 1–7 March are 10.00 and 5.00; the last piece takes 20.00 − 15.00 = 5.00).
  const march15 = composeInvoice(cycleInvoice(at("2027-03-15T00:00:00+01:00"), { cycle, products: [a, b] }));
  t.equal(march15.usagePeriod.key, "2027-03-01");
  t.equal(march15.advancePeriod?.key, "2027-03-15");
  t.equal(linesOf(march15, { productId: "a", period: march15.usagePeriod }).length, 0, "a was charged at the start");
  const partial = lineOf(march15, { productId: "b", period: march15.usagePeriod });
  t.equal(partial.charge.toFixed(2), "5.00");
  t.equal(partial.days, 7);
  t.equal(partial.basisDays, 28);
  t.equal(lineOf(march15, { productId: "a", period: march15.advancePeriod }).charge.toFixed(2), "20.00");
  t.equal(lineOf(march15, { productId: "b", period: march15.advancePeriod }).charge.toFixed(2), "20.00");
  // net 45.00; tax 8.55; gross 53.55.
  t.same(totals(march15), ["45.00", "8.55", "53.55"]);
});

t.test("usage summaries: current, late, and zero", async (t) => {
  const p1 = product({ id: "p1", prices: [], history: [[at("2027-01-05T10:00:00+01:00"), "active"]] });
  const draft = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), {
      products: [p1],
      usage: [
        usage({
          summaryId: "s-data",
          usagePeriod: "2027-02-01",
          service: "data",
          zone: "EU",
          amount: "3.456",
          toSeq: 40,
        }),
        usage({
          summaryId: "s-late",
          usagePeriod: "2027-01-01",
          service: "voice",
          amount: "1.20",
          fromSeq: 9,
          toSeq: 12,
        }),
        usage({ summaryId: "s-zero", usagePeriod: "2027-02-01", service: "sms", amount: "0", toSeq: 7 }),
      ],
    }),
  );
  // 3.456 rounded half-up once: 3.46, this period's.
  const data = lineOf(draft, { kind: "usage", period: draft.usagePeriod });
  t.equal(data.charge.toFixed(2), "3.46");
  t.equal(data.late, false);
  t.equal(data.name, "Data, EU");
  t.same(data.usage, { service: "data", zone: "EU", usagePeriod: "2027-02-01", quantity: 1, chargedUnits: 1 });
  // January's usage billed now: labelled late.
  const late = lineOf(draft, { kind: "usage", period: null });
  t.equal(late.charge.toFixed(2), "1.20");
  t.equal(late.late, true);
  t.match(late.name, /late/);
  t.match(late.name, /2027-01-01/);
  t.equal(linesOf(draft, { kind: "usage" }).length, 2, "the zero summary gives no line");
  t.same(
    [...draft.usageMarks].sort((x, y) => (x.summaryId < y.summaryId ? -1 : 1)),
    [
      { summaryId: "s-data", toSeq: 40 },
      { summaryId: "s-late", toSeq: 12 },
      { summaryId: "s-zero", toSeq: 7 },
    ],
    "every summary read is marked, the zero one too",
  );
  // net 3.46 + 1.20 = 4.66; tax round(0.8854) = 0.89; gross 5.55.
  t.same(totals(draft), ["4.66", "0.89", "5.55"]);
});

t.test("a postpaid spend credit: a negative line taxed as the line's tariff", async (t) => {
  const plan = price({ priceId: "plan", amount: "20.00" });
  const history: Array<[number, string]> = [[at("2027-01-05T10:00:00+01:00"), "active"]];
  const when = at("2027-02-12T10:00:00+01:00");
  // Tariff tax-exclusive at 19 %: 20.00 − 5.00 = 15.00; tax 2.85; gross 17.85.
  const exclusive = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), {
      products: [product({ id: "p1", prices: [plan], history })],
      spendCredits: [spendCredit({ id: "c1", amount: "5.00", atMs: when, reason: "goodwill" })],
    }),
  );
  const credit = lineOf(exclusive, { kind: "credit" });
  t.equal(credit.charge.toFixed(2), "-5.00");
  t.equal(credit.name, "Credit: goodwill");
  t.equal(credit.taxRate.toFixed(2), "0.19");
  t.same(totals(exclusive), ["15.00", "2.85", "17.85"]);

  // Tariff at the reduced rate, tax-inclusive: the credit −5.00 gross at 7 %: tax round(−5.00 × 0.07 / 1.07 =
  // −0.3271…) = −0.33, net −4.67; the plan 20.00 at 19 % (its own class): 3.80. Net 15.33; tax 3.47; gross 18.80.
  const inclusive = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), {
      products: [product({ id: "p1", prices: [plan], history, usageTax: { taxClass: "reduced", taxIncluded: true } })],
      spendCredits: [spendCredit({ id: "c1", amount: "5.00", atMs: when })],
    }),
  );
  const reduced = lineOf(inclusive, { kind: "credit" });
  t.equal(reduced.name, "Credit");
  t.equal(reduced.taxRate.toFixed(2), "0.07");
  t.equal(reduced.net.toFixed(2), "-4.67");
  t.same(
    inclusive.taxes.map((entry) => [entry.rate.toFixed(2), entry.taxable.toFixed(2), entry.tax.toFixed(2)]),
    [
      ["0.07", "-4.67", "-0.33"],
      ["0.19", "20.00", "3.80"],
    ],
  );
  t.same(totals(inclusive), ["15.33", "3.47", "18.80"]);
});

t.test("one-time charges, receivables and a jurisdiction falling back to its country", async (t) => {
  const day = at("2027-02-20T10:00:00+01:00");
  const draft = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), {
      taxJurisdiction: "DE-BY",
      oneTimeCharges: [
        oneTime({ id: "activation", name: "Activation fee", amount: "9.999", atMs: day }),
        oneTime({ id: "sim", name: "SIM card", amount: "4.50", atMs: day }),
      ],
      receivables: { previousBalance: "50.00", paymentsSince: "30.00", creditsSince: "0" },
    }),
  );
  // 9.999 rounded once half-up: 10.00. DE-BY has no rate of its own: Germany's 19 %.
  t.same(
    draft.lines.map((entry) => [entry.kind, entry.name, entry.charge.toFixed(2), entry.taxRate.toFixed(2)]),
    [
      ["oneTime", "Activation fee", "10.00", "0.19"],
      ["oneTime", "SIM card", "4.50", "0.19"],
    ],
  );
  // net 14.50; tax 14.50 × 0.19 = 2.755 → 2.76 (half-up); gross 17.26; due 50.00 − 30.00 − 0 + 17.26 = 37.26.
  t.same(totals(draft), ["14.50", "2.76", "17.26"]);
  t.equal(draft.totalDue.toFixed(2), "37.26");
  t.equal(draft.issueDate, "2027-03-01");
  t.equal(draft.dueDate, "2027-03-15");
});

t.test("a prepaid account: an empty bill that says why", async (t) => {
  const draft = composeInvoice(
    cycleInvoice(at("2027-03-01T00:00:00+01:00"), {
      accountType: "prepaid",
      products: [
        product({
          id: "p1",
          prices: [price({ priceId: "plan", amount: "20.00" })],
          history: [[at("2027-01-05T10:00:00+01:00"), "active"]],
        }),
      ],
      usage: [usage({ summaryId: "u1", usagePeriod: "2027-02-01", amount: "3.00" })],
    }),
  );
  t.equal(draft.lines.length, 0);
  t.same(totals(draft), ["0.00", "0.00", "0.00"]);
  t.ok(draft.notes.length > 0 && draft.notes.some((note) => /prepaid/i.test(note)), draft.notes.join(" | "));
});

t.test("bad input is a ComposeError with its problems, never a silent zero", async (t) => {
  const issue = at("2027-03-01T00:00:00+01:00");
  const day = at("2027-02-20T10:00:00+01:00");
  const problemsOf = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      if (error instanceof ComposeError) return error;
      throw error;
    }
    throw new Error("no ComposeError");
  };

  const mismatch = problemsOf(() =>
    composeInvoice(
      cycleInvoice(issue, {
        products: [
          product({
            id: "p1",
            prices: [price({ priceId: "plan-usd", amount: "20.00", currency: "USD" })],
            history: [[at("2027-01-05T10:00:00+01:00"), "active"]],
          }),
        ],
        oneTimeCharges: [oneTime({ id: "fee", amount: "5.00", currency: "GBP", atMs: day })],
      }),
    ),
  );
  t.same(
    mismatch.problems.map((problem) => problem.code),
    ["currency_mismatch", "currency_mismatch"],
  );
  t.match(mismatch.problems[0]?.message, /plan-usd.*USD.*EUR/);
  t.match(mismatch.problems[1]?.message, /fee.*GBP.*EUR/);
  t.equal(mismatch.name, "ComposeError");

  const noRate = problemsOf(() =>
    composeInvoice(
      cycleInvoice(issue, { oneTimeCharges: [oneTime({ id: "fee", amount: "5.00", taxClass: "frOnly", atMs: day })] }),
    ),
  );
  t.same(
    noRate.problems.map((problem) => problem.code),
    ["no_tax_rate"],
  );
  t.match(noRate.problems[0]?.message, /frOnly.*DE.*2027-02-20/);

  // A rate that is valid only from a later date is no rate on the day of the charge.
  const notYet = problemsOf(() =>
    composeInvoice(
      cycleInvoice(issue, { oneTimeCharges: [oneTime({ id: "fee", amount: "5.00", taxClass: "future", atMs: day })] }),
    ),
  );
  t.same(
    notYet.problems.map((problem) => problem.code),
    ["no_tax_rate"],
  );

  const unknown = problemsOf(() =>
    composeInvoice(
      cycleInvoice(issue, { oneTimeCharges: [oneTime({ id: "fee", amount: "5.00", taxClass: "nope", atMs: day })] }),
    ),
  );
  t.same(
    unknown.problems.map((problem) => problem.code),
    ["unknown_tax_class"],
  );
  t.match(unknown.problems[0]?.message, /nope/);
});

t.test("zones far from UTC: days are counted on the account's wall clock", async (t) => {
  await t.test("Pacific/Auckland (UTC+13 in March)", async (t) => {
    const cycle = { billCycleDay: 1, timeZone: "Pacific/Auckland" };
    // Activated 2027-03-09T12:00Z = 10 March 01:00 in Auckland; terminated 2027-03-19T10:00Z = 19 March 23:00.
    // The final bill is made at 2027-03-19T11:30Z = 20 March 00:30 there.
    const p1 = product({
      id: "p1",
      currency: "NZD",
      prices: [price({ priceId: "plan", amount: "40.00", currency: "NZD" })],
      history: [
        [at("2027-03-09T12:00:00Z"), "active"],
        [at("2027-03-19T10:00:00Z"), "terminated"],
      ],
    });
    const draft = composeInvoice(
      finalBill(at("2027-03-19T11:30:00Z"), { currency: "NZD", cycle, taxJurisdiction: "NZ", products: [p1] }),
    );
    // March in Auckland: 1 March 00:00 NZDT = 28 February 11:00 UTC, to 1 April 00:00 NZDT = 31 March 11:00 UTC.
    t.equal(draft.usagePeriod.startMs, at("2027-02-28T11:00:00Z"));
    t.equal(draft.usagePeriod.endMs, at("2027-03-31T11:00:00Z"));
    // Pieces 1–9 March (9 days), 10–18 March (9 days, active), 19–31 March (13 days, terminated).
    // 40 × 9 / 31 = 11.6129… → 11.61 (the first and the second piece); the last 40.00 − 23.22 = 16.78.
    // Counted in UTC it would be 9–18 March, 10 days.
    const line = lineOf(draft, { priceId: "plan" });
    t.equal(line.days, 9);
    t.equal(line.charge.toFixed(2), "11.61");
    // tax 15 %: round(1.7415) = 1.74; gross 13.35. Issued 20 March on the Auckland calendar.
    t.same(totals(draft), ["11.61", "1.74", "13.35"]);
    t.equal(draft.issueDate, "2027-03-20");
    t.equal(draft.dueDate, "2027-04-03");
  });

  await t.test("America/Los_Angeles (UTC−8, then −7 from 14 March)", async (t) => {
    const cycle = { billCycleDay: 1, timeZone: "America/Los_Angeles" };
    // Activated 2027-03-14T07:30Z = 13 March 23:30 PST.
    const p1 = product({
      id: "p1",
      currency: "USD",
      prices: [price({ priceId: "plan", amount: "40.00", currency: "USD" })],
      history: [[at("2027-03-14T07:30:00Z"), "active"]],
    });
    // The invoice at 1 April 00:00 PDT = 07:00 UTC: March (1 March 00:00 PST = 08:00 UTC), 31 days though 743 hours.
    const draft = composeInvoice(
      cycleInvoice(at("2027-04-01T07:00:00Z"), { currency: "USD", cycle, taxJurisdiction: "US-CA", products: [p1] }),
    );
    t.equal(draft.usagePeriod.startMs, at("2027-03-01T08:00:00Z"));
    t.equal(draft.usagePeriod.key, "2027-03-01");
    // Pieces 1–12 March (12 days), 13–31 March (19 days): 40 × 12 / 31 = 15.4838… → 15.48; the last 40.00 − 15.48
    // = 24.52. (In UTC the activation would fall on the 14th: 18 days.)
    const march = lineOf(draft, { priceId: "plan", period: draft.usagePeriod });
    t.equal(march.days, 19);
    t.equal(march.basisDays, 31);
    t.equal(march.charge.toFixed(2), "24.52");
    t.equal(lineOf(draft, { priceId: "plan", period: draft.advancePeriod }).charge.toFixed(2), "40.00");
    // net 64.52; tax round(64.52 × 0.0725 = 4.6777) = 4.68; gross 69.20.
    t.same(totals(draft), ["64.52", "4.68", "69.20"]);
  });
});

t.test("many small tax-inclusive lines: every net within a cent of its share, none of the wrong sign", async (t) => {
  const issue = at("2027-04-01T00:00:00+02:00");
  const day = at("2027-03-10T12:00:00+01:00");
  // Ten charges of 0.01 with 19 % included: gross 0.10, tax round(0.10 × 0.19 / 1.19 = 0.01597) = 0.02, nets 0.08.
  // Each exact share is 0.01 / 1.19 = 0.0084: rounded down 0.00, and the 8 missing cents go to 8 of the lines.
  const draft = composeInvoice(
    cycleInvoice(issue, {
      oneTimeCharges: Array.from({ length: 10 }, (_, index) =>
        oneTime({ id: `c${index}`, amount: "0.01", atMs: day, taxIncluded: true }),
      ),
    }),
  );
  t.same(totals(draft), ["0.08", "0.02", "0.10"]);
  const nets = draft.lines.map((entry) => entry.net.toFixed(2)).sort();
  t.same(nets, ["0.00", "0.00", "0.01", "0.01", "0.01", "0.01", "0.01", "0.01", "0.01", "0.01"]);
});

t.test("reverse charge on a tax-inclusive price: charged without the domestic VAT it includes", async (t) => {
  const issue = at("2027-04-01T00:00:00+02:00");
  const day = at("2027-03-10T12:00:00+01:00");
  // 11.90 with 19 % included is 10.00 without: 11.90 / 1.19 = 10.00; the business accounts for its own VAT (AE 0 %).
  const draft = composeInvoice(
    cycleInvoice(issue, {
      oneTimeCharges: [oneTime({ id: "a", amount: "11.90", atMs: day, taxIncluded: true })],
      reverseCharge: true,
    }),
  );
  t.same(totals(draft), ["10.00", "0.00", "10.00"]);
  t.same(
    draft.lines.map((entry) => [entry.amount.toFixed(2), entry.taxCategory, entry.taxIncluded]),
    [["10.00", "AE", false]],
  );
});
