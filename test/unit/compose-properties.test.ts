import fc from "fast-check";
import t from "tap";
import {
  type ComposeInput,
  composeInvoice,
  type Draft,
  type DraftLine,
  type PriceTerms,
  type ProductInput,
  type PromotionTerms,
  SUSPENSION_REASONS,
  type SuspensionReason,
} from "../../src/modules/billing/compose.js";
import {
  type BillCycle,
  billingDayOfMonth,
  billPeriod,
  cyclePeriod,
  dateOfDayNumber,
  localDayNumber,
  localMidnightUtc,
  type Period,
} from "../../src/shared/calendar.js";
import { Money, RoundingMode } from "../../src/shared/money.js";
import {
  cycleInvoice,
  describe,
  finalBill,
  type HistoryEntry,
  oneTime,
  price,
  product,
  spendCredit,
  usage,
} from "../support/compose-input.js";

/**
 * Properties of `composeInvoice` (DESIGN.md §10, the rules in compose.ts's header comment): prorated pieces of a
 * period add up (to the billable shares, to the price when billable all along), a first and a final bill add up to
 * the periods' prices, credits never exceed what was charged (transition periods included), a transition period is
 * charged its prorated share, tax-inclusive nets and taxes add up to the gross and tax-exclusive tax is per rate on the
 * summed nets, nothing but a credit is negative, and promotions never make a line negative and keep to their cycles.
 * Each runs 200 cases from a fixed seed, so a failure names a case that reproduces. A period is settled the way bill
 * runs do it: the invoice at its start (issued at the boundary) and the next cycle invoice, or the final bill at a
 * termination inside it.
 */

const RUNS = { numRuns: 200, seed: 230_023 } as const;
const HOUR = 3_600_000;
const ZONES = ["Europe/Berlin", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata", "UTC"] as const;
const HALF_UP = RoundingMode.halfUp;

/** Any amount of a draft (decimal.js or minor units) as Money. */
const money = (amount: { toFixed(): string }) => new Money(amount.toFixed());
const sum = (lines: readonly DraftLine[]) =>
  lines.reduce((total, entry) => total.plus(money(entry.charge)), new Money(0));
const forPeriod = (draft: Draft, period: Period) =>
  draft.lines.filter((entry) => entry.period !== null && entry.period.startMs === period.startMs);

/** The instant `hour` hours after local midnight of the `day`-th day of a period (hours 1–21 stay on that day). */
function instant(zone: string, firstDay: number, day: number, hour: number, minute = 0): number {
  return localMidnightUtc(zone, dateOfDayNumber(firstDay + day)) + hour * HOUR + minute * 60_000;
}

// ---------------------------------------------------------------------------------------------------------------
// A product's life around one bill period

interface LifeSpec {
  zone: (typeof ZONES)[number];
  cycleDay: number;
  year: number;
  month: number;
  cents: number;
  billing: "advance" | "arrears";
  taxIncluded: boolean;
  charged: SuspensionReason[];
  /** null: active since before the period. */
  activation: { day: number; hour: number } | null;
  toggles: Array<{ day: number; hour: number; reason: SuspensionReason }>;
  terminate: boolean;
  /** A price change inside the period: same price id or a new one, another amount. */
  change: { day: number; hour: number; cents: number; newId: boolean } | null;
}

const lifeSpec: fc.Arbitrary<LifeSpec> = fc.record({
  zone: fc.constantFrom(...ZONES),
  cycleDay: fc.integer({ min: 1, max: 31 }),
  year: fc.integer({ min: 2026, max: 2029 }),
  month: fc.integer({ min: 1, max: 12 }),
  cents: fc.integer({ min: 1, max: 500_000 }),
  billing: fc.constantFrom("advance" as const, "arrears" as const),
  taxIncluded: fc.boolean(),
  charged: fc.subarray([...SUSPENSION_REASONS]),
  activation: fc.option(fc.record({ day: fc.integer({ min: 0, max: 30 }), hour: fc.integer({ min: 1, max: 21 }) }), {
    nil: null,
    freq: 2,
  }),
  toggles: fc.array(
    fc.record({
      day: fc.integer({ min: 0, max: 30 }),
      hour: fc.integer({ min: 1, max: 21 }),
      reason: fc.constantFrom(...SUSPENSION_REASONS),
    }),
    { maxLength: 4 },
  ),
  terminate: fc.boolean(),
  change: fc.option(
    fc.record({
      day: fc.integer({ min: 1, max: 30 }),
      hour: fc.integer({ min: 1, max: 21 }),
      cents: fc.integer({ min: 1, max: 500_000 }),
      newId: fc.boolean(),
    }),
    { nil: null },
  ),
});

interface Life {
  cycle: BillCycle;
  zone: string;
  period: Period;
  firstDay: number;
  days: number;
  product: ProductInput;
  terminationMs: number | null;
  prices: PriceTerms[];
}

const centsText = (cents: number) => new Money(cents).dividedBy(100).toFixed(2);

interface LifeOptions {
  promotions?: (period: Period, activationMs: number) => PromotionTerms[];
  /** Let a new price id start on the period's first day. */
  firstDayNewPrice?: boolean;
  /** The account's cycle changed where the period starts (an old boundary): the period is the transition period. */
  transition?: { billCycleDay: number; timeZone: string } | null;
}

const transitionSpec = fc.option(
  fc.record({ billCycleDay: fc.integer({ min: 1, max: 31 }), timeZone: fc.constantFrom(...ZONES) }),
  { nil: null, freq: 2 },
);

function buildLife(spec: LifeSpec, options: LifeOptions = {}) {
  const { promotions = () => [], firstDayNewPrice = false, transition = null } = options;
  let cycle: BillCycle = { billCycleDay: spec.cycleDay, timeZone: spec.zone };
  let period: Period;
  if (transition === null) {
    const startDate = {
      year: spec.year,
      month: spec.month,
      day: billingDayOfMonth(spec.cycleDay, spec.year, spec.month),
    };
    period = cyclePeriod(localMidnightUtc(spec.zone, startDate), cycle);
  } else {
    const day = billingDayOfMonth(transition.billCycleDay, spec.year, spec.month);
    const oldStart = localMidnightUtc(transition.timeZone, { year: spec.year, month: spec.month, day });
    const untilMs = cyclePeriod(oldStart, transition).startMs;
    cycle = { ...cycle, previous: { ...transition, untilMs } };
    period = cyclePeriod(untilMs, cycle);
  }
  const firstDay = localDayNumber(period.startMs, spec.zone);
  const days = localDayNumber(period.endMs, spec.zone) - firstDay;
  const activationMs =
    spec.activation === null
      ? period.startMs - 40 * 24 * HOUR
      : instant(spec.zone, firstDay, spec.activation.day % days, spec.activation.hour);
  // Status changes after the activation, one minute apart at the least, in time order.
  const toggles = spec.toggles
    .map((toggle, index) => ({ ...toggle, ms: instant(spec.zone, firstDay, toggle.day % days, toggle.hour, index) }))
    .filter((toggle) => toggle.ms > activationMs)
    .sort((a, b) => a.ms - b.ms);
  const history: HistoryEntry[] = [[activationMs, "active"]];
  toggles.forEach((toggle, index) => {
    const last = index === toggles.length - 1;
    if (last && spec.terminate) history.push([toggle.ms, "terminated"]);
    else if (index % 2 === 0) history.push([toggle.ms, "suspended", toggle.reason]);
    else history.push([toggle.ms, "active"]);
  });
  const terminated = history.at(-1)?.[1] === "terminated";
  const terminationMs = terminated ? (history.at(-1)?.[0] ?? null) : null;
  const base = price({
    priceId: "plan",
    amount: centsText(spec.cents),
    billing: spec.billing,
    taxIncluded: spec.taxIncluded,
    chargedWhenSuspended: spec.charged,
  });
  const prices = [base];
  const later: Array<{ fromMs: number; prices: PriceTerms[] }> = [];
  if (spec.change !== null) {
    const day = spec.change.day % days;
    const changeDay = spec.change.newId && !firstDayNewPrice ? Math.max(1, day) : day;
    const fromMs = instant(spec.zone, firstDay, changeDay, spec.change.hour, 30);
    if (fromMs > activationMs && (terminationMs === null || fromMs < terminationMs)) {
      const changed = { ...base, priceId: spec.change.newId ? "plan-2" : "plan", amount: centsText(spec.change.cents) };
      later.push({ fromMs, prices: [changed] });
      prices.push(changed);
    }
  }
  const built = product({ id: "p1", prices: [base], history, later, promotions: promotions(period, activationMs) });
  return { cycle, zone: spec.zone, period, firstDay, days, product: built, terminationMs, prices } satisfies Life;
}

/** The invoice at the period's start, and the one that settles it (the next cycle invoice, or the final bill). */
function invoicesAround(life: Life, settlingExtra: Partial<Parameters<typeof cycleInvoice>[1]> = {}) {
  const options = { cycle: life.cycle, products: [life.product] };
  const atStart = composeInvoice(cycleInvoice(life.period.startMs, options));
  const settlingOptions = { ...options, ...settlingExtra };
  const settling = composeInvoice(
    life.terminationMs === null
      ? cycleInvoice(life.period.endMs, settlingOptions)
      : finalBill(life.terminationMs, settlingOptions),
  );
  return { atStart, settling };
}

const billable = (status: string, reason: SuspensionReason | null, terms: PriceTerms) =>
  status === "active" ||
  status === "pendingTerminate" ||
  (status === "suspended" && reason !== null && terms.chargedWhenSuspended.includes(reason));

/**
 * What the documented rule says the period costs: its days cut where the status or the price changed (a day belongs
 * to the state at its end), each piece `amount × days / days of the period` rounded half-up, the last piece the
 * remainder; the billable pieces' shares, each at the amount in effect on it.
 */
function billableShares(life: Life): { total: Money; allBillableOneAmount: boolean } {
  const { zone, firstDay, days } = life;
  const cuts = new Set([0]);
  const cut = (ms: number) => {
    const day = localDayNumber(ms, zone) - firstDay;
    if (day > 0 && day < days) cuts.add(day);
  };
  for (const entry of life.product.history) cut(entry.atMs);
  for (const segment of life.product.prices) cut(segment.fromMs);
  const starts = [...cuts].sort((a, b) => a - b);
  const pieces = starts.map((from, index) => {
    const to = starts[index + 1] ?? days;
    const endOfDay = localMidnightUtc(zone, dateOfDayNumber(firstDay + from + 1)) - 1;
    const status = life.product.history.filter((entry) => entry.atMs <= endOfDay).at(-1);
    const segment = life.product.prices.filter((entry) => entry.fromMs <= endOfDay).at(-1);
    const terms = segment?.prices[0];
    const isBillable =
      status !== undefined && terms !== undefined && billable(status.status, status.suspensionReason, terms);
    return { days: to - from, amount: terms?.amount ?? "0", billable: isBillable };
  });
  const sharesOf = (amount: string) => {
    const whole = new Money(amount);
    let assigned = new Money(0);
    return pieces.map((piece, index) => {
      const share =
        index === pieces.length - 1
          ? whole.minus(assigned)
          : whole.times(piece.days).dividedBy(days).toDecimalPlaces(2, HALF_UP);
      assigned = assigned.plus(share);
      return share;
    });
  };
  let total = new Money(0);
  const byAmount = new Map<string, Money[]>();
  pieces.forEach((piece, index) => {
    if (!piece.billable) return;
    let shares = byAmount.get(piece.amount);
    if (shares === undefined) {
      shares = sharesOf(piece.amount);
      byAmount.set(piece.amount, shares);
    }
    total = total.plus(shares[index] as Money);
  });
  const allBillableOneAmount =
    pieces.every((piece) => piece.billable) && new Set(pieces.map((p) => p.amount)).size === 1;
  return { total, allBillableOneAmount };
}

t.test(
  "prorated pieces of a whole period add up to the billable shares, and to the price when billable all along",
  async (t) => {
    let whole = 0;
    fc.assert(
      fc.property(lifeSpec, (spec) => {
        const life = buildLife(spec);
        const { atStart, settling } = invoicesAround(life);
        const charged = sum(forPeriod(atStart, life.period)).plus(sum(forPeriod(settling, life.period)));
        const expected = billableShares(life);
        if (!charged.equals(expected.total)) {
          throw new Error(
            `charged ${charged.toFixed(2)} for the period, the billable shares are ${expected.total.toFixed(2)}`,
          );
        }
        if (expected.allBillableOneAmount) {
          whole++;
          const amount = life.product.prices.at(-1)?.prices[0]?.amount ?? "";
          if (!charged.equals(new Money(amount))) throw new Error(`billable all period: ${charged} ≠ ${amount}`);
        }
      }),
      RUNS,
    );
    t.ok(whole > 5, `${whole} of the cases were billable all period at one price`);

    // Billable all period: active since before it, suspended (if at all) only for reasons the price still charges.
    const quiet = lifeSpec.map((spec) => ({
      ...spec,
      activation: null,
      terminate: false,
      change: null,
      toggles: spec.charged.length === 0 ? [] : spec.toggles.map((toggle) => ({ ...toggle, reason: spec.charged[0] })),
    }));
    fc.assert(
      fc.property(quiet, (spec) => {
        const life = buildLife(spec as LifeSpec);
        const { atStart, settling } = invoicesAround(life);
        const charged = sum(forPeriod(atStart, life.period)).plus(sum(forPeriod(settling, life.period)));
        const amount = centsText(spec.cents);
        if (!charged.equals(new Money(amount)))
          throw new Error(`billable all period: ${charged.toFixed(2)} ≠ ${amount}`);
      }),
      RUNS,
    );
  },
);

t.test("first + final bill of a line active from a cycle day to a cycle day is k × the price", async (t) => {
  fc.assert(
    fc.property(
      fc.record({
        zone: fc.constantFrom(...ZONES),
        cycleDay: fc.integer({ min: 1, max: 31 }),
        year: fc.integer({ min: 2026, max: 2029 }),
        month: fc.integer({ min: 1, max: 12 }),
        k: fc.integer({ min: 1, max: 13 }),
        cents: fc.integer({ min: 1, max: 500_000 }),
        billing: fc.constantFrom("advance" as const, "arrears" as const),
        activationHour: fc.integer({ min: 1, max: 21 }),
        terminationHour: fc.integer({ min: 1, max: 21 }),
      }),
      (spec) => {
        const cycle: BillCycle = { billCycleDay: spec.cycleDay, timeZone: spec.zone };
        const startDate = {
          year: spec.year,
          month: spec.month,
          day: billingDayOfMonth(spec.cycleDay, spec.year, spec.month),
        };
        const periods = [cyclePeriod(localMidnightUtc(spec.zone, startDate), cycle)];
        for (let index = 1; index <= spec.k; index++) {
          periods.push(cyclePeriod((periods[index - 1] as Period).endMs, cycle));
        }
        const first = periods[0] as Period;
        const last = periods[spec.k] as Period;
        const activationMs = first.startMs + spec.activationHour * HOUR;
        const terminationMs = last.startMs + spec.terminationHour * HOUR;
        const amount = centsText(spec.cents);
        const line = product({
          id: "p1",
          prices: [price({ priceId: "plan", amount, billing: spec.billing })],
          history: [
            [activationMs, "active"],
            [terminationMs, "terminated"],
          ],
        });
        const options = { cycle, products: [line] };
        let total = new Money(0);
        // Every cycle invoice from the activation's period start to the termination's, then the final bill.
        for (const period of periods)
          total = total.plus(sum(composeInvoice(cycleInvoice(period.startMs, options)).lines));
        total = total.plus(sum(composeInvoice(finalBill(terminationMs, options)).lines));
        const expected = new Money(amount).times(spec.k);
        if (!total.equals(expected)) throw new Error(`billed ${total.toFixed(2)}, expected ${spec.k} × ${amount}`);
      },
    ),
    RUNS,
  );
  t.pass();
});

const promotionSpec = fc.array(
  fc.record({
    id: fc.constantFrom("a", "b", "c"),
    percent: fc.boolean(),
    percentOff: fc.integer({ min: 1, max: 100 }),
    amountCents: fc.integer({ min: 1, max: 600_000 }),
    cycles: fc.integer({ min: 1, max: 3 }),
    /** Starts: at the activation, at the period's start, or a cycle earlier. */
    start: fc.constantFrom("activation" as const, "period" as const, "before" as const),
    priceIds: fc.subarray(["plan", "plan-2"], { minLength: 1 }),
  }),
  { maxLength: 3 },
);

type PromotionSpecs = typeof promotionSpec extends fc.Arbitrary<infer T> ? T : never;

function promotionsFrom(specs: PromotionSpecs) {
  return (period: Period, activationMs: number): PromotionTerms[] =>
    specs.map((spec, index) => ({
      id: `${spec.id}${index}`,
      name: `Promotion ${index}`,
      ...(spec.percent ? { percentOff: String(spec.percentOff) } : { amountOff: centsText(spec.amountCents) }),
      cycles: spec.cycles,
      priceIds: spec.priceIds,
      startMs:
        spec.start === "activation"
          ? activationMs
          : spec.start === "period"
            ? period.startMs
            : period.startMs - 31 * 24 * HOUR,
    }));
}

t.test("credits never exceed what the invoice at the period's start charged", async (t) => {
  let credited = 0;
  fc.assert(
    fc.property(lifeSpec, promotionSpec, transitionSpec, (spec, promotions, transition) => {
      const life = buildLife(spec, { promotions: promotionsFrom(promotions), transition });
      const { atStart, settling } = invoicesAround(life);
      for (const priceId of new Set(life.prices.map((entry) => entry.priceId))) {
        const charged = sum(forPeriod(atStart, life.period).filter((entry) => entry.priceId === priceId));
        const unused = forPeriod(settling, life.period).filter(
          (entry) => entry.priceId === priceId && entry.kind === "unused",
        );
        const credit = sum(unused).abs();
        if (!credit.isZero()) credited++;
        if (credit.greaterThan(charged)) {
          throw new Error(`${priceId}: credited ${credit.toFixed(2)} of ${charged.toFixed(2)} charged`);
        }
      }
    }),
    RUNS,
  );
  t.ok(credited > 10, `${credited} of the cases credited something`);
});

t.test(
  "a transition period: a line billable throughout pays its prorated share at the start, and nothing after",
  async (t) => {
    let partial = 0;
    fc.assert(
      fc.property(lifeSpec, transitionSpec, (spec, transition) => {
        const quiet = {
          ...spec,
          billing: "advance" as const,
          activation: null,
          toggles: [],
          change: null,
          terminate: false,
        };
        const life = buildLife(quiet, {
          transition: transition ?? { billCycleDay: (spec.cycleDay % 28) + 1, timeZone: spec.zone },
        });
        const { atStart, settling } = invoicesAround(life);
        // The transition period's days in the new zone, over the new cycle's full period that ends with it.
        const basis = billPeriod(life.period.startMs, spec.cycleDay, spec.zone);
        const basisDays = localDayNumber(basis.endMs, spec.zone) - localDayNumber(basis.startMs, spec.zone);
        const fullEnds = basis.endMs === life.period.endMs;
        const share = new Money(centsText(spec.cents))
          .times(fullEnds ? life.days : 1)
          .dividedBy(fullEnds ? basisDays : 1)
          .toDecimalPlaces(2, HALF_UP);
        const charged = sum(forPeriod(atStart, life.period));
        if (!charged.equals(share)) {
          throw new Error(`charged ${charged.toFixed(2)} at the start, ${life.days} of ${basisDays} days is ${share}`);
        }
        if (forPeriod(settling, life.period).length > 0) throw new Error(`settled: ${describe(settling)}`);
        if (life.days < basisDays) partial++;
      }),
      RUNS,
    );
    t.ok(partial > 50, `${partial} of the cases were prorated transition periods`);
  },
);

/** The one discrepancy between the header's rules and the code (test/unit/compose-cases.test.ts has its case). */

t.test("prorated pieces add up when a new price id starts on the period's first day", async (t) => {
  t.doesNotThrow(
    () =>
      fc.assert(
        fc.property(lifeSpec, (spec) => {
          const life = buildLife(spec, { firstDayNewPrice: true });
          const { atStart, settling } = invoicesAround(life);
          const charged = sum(forPeriod(atStart, life.period)).plus(sum(forPeriod(settling, life.period)));
          const expected = billableShares(life).total;
          if (!charged.equals(expected)) throw new Error(`charged ${charged.toFixed(2)}, the shares are ${expected}`);
        }),
        RUNS,
      ),
    "the pieces add up",
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Tax

const TAX_CLASSES = ["standard", "reduced", "zero", "exempt"] as const;

const taxedLines = fc.record({
  zone: fc.constantFrom(...ZONES),
  reverseCharge: fc.boolean(),
  recurring: fc.array(
    fc.record({ cents: fc.integer({ min: 1, max: 500_000 }), taxClass: fc.constantFrom(...TAX_CLASSES) }),
    { maxLength: 3 },
  ),
  activationDay: fc.integer({ min: 0, max: 27 }),
  oneTime: fc.array(
    fc.record({ cents: fc.integer({ min: 0, max: 500_000 }), taxClass: fc.constantFrom(...TAX_CLASSES) }),
    { maxLength: 5 },
  ),
  usage: fc.array(fc.integer({ min: 0, max: 50_000_000 }), { maxLength: 4 }),
  credits: fc.array(fc.integer({ min: 1, max: 100_000 }), { maxLength: 2 }),
  usageClass: fc.constantFrom(...TAX_CLASSES),
});

type TaxedSpec = typeof taxedLines extends fc.Arbitrary<infer T> ? T : never;

function taxedInvoice(spec: TaxedSpec, taxIncluded: boolean): ComposeInput {
  const cycle: BillCycle = { billCycleDay: 1, timeZone: spec.zone };
  const boundary = localMidnightUtc(spec.zone, { year: 2027, month: 3, day: 1 });
  const february = cyclePeriod(boundary - 1, cycle);
  const firstDay = localDayNumber(february.startMs, spec.zone);
  const during = instant(spec.zone, firstDay, spec.activationDay, 10);
  const line = product({
    id: "p1",
    prices: spec.recurring.map((entry, index) =>
      price({ priceId: `r${index}`, amount: centsText(entry.cents), taxClass: entry.taxClass, taxIncluded }),
    ),
    history: [[during, "active"]],
    usageTax: { taxClass: spec.usageClass, taxIncluded },
  });
  return cycleInvoice(boundary, {
    cycle,
    reverseCharge: spec.reverseCharge,
    products: [line],
    oneTimeCharges: spec.oneTime.map((entry, index) =>
      oneTime({ id: `o${index}`, amount: centsText(entry.cents), taxClass: entry.taxClass, taxIncluded, atMs: during }),
    ),
    // Usage to four decimals: rounded to the cent once on its line.
    usage: spec.usage.map((tenThousandths, index) =>
      usage({
        summaryId: `u${index}`,
        usagePeriod: february.key,
        service: `s${index}`,
        amount: new Money(tenThousandths).dividedBy(10_000).toFixed(4),
      }),
    ),
    spendCredits: spec.credits.map((cents, index) =>
      spendCredit({ id: `c${index}`, amount: centsText(cents), atMs: during }),
    ),
  });
}

t.test("a tax-inclusive invoice's nets and taxes add up to its gross exactly", async (t) => {
  fc.assert(
    fc.property(taxedLines, (spec) => {
      const draft = composeInvoice(taxedInvoice(spec, true));
      const charges = sum(draft.lines);
      const nets = draft.lines.reduce((total, entry) => total.plus(money(entry.net)), new Money(0));
      if (!money(draft.net).plus(money(draft.tax)).equals(charges)) {
        throw new Error(`net ${draft.net.toFixed()} + tax ${draft.tax.toFixed()} ≠ Σ charges ${charges.toFixed(2)}`);
      }
      if (!money(draft.gross).equals(charges))
        throw new Error(`gross ${draft.gross.toFixed()} ≠ ${charges.toFixed(2)}`);
      if (!nets.equals(money(draft.net)))
        throw new Error(`Σ line nets ${nets.toFixed(2)} ≠ net ${draft.net.toFixed()}`);
      for (const subtotal of draft.taxes) {
        const members = draft.lines.filter(
          (entry) => entry.taxCategory === subtotal.category && money(entry.taxRate).equals(money(subtotal.rate)),
        );
        // Per rate: tax = round(Σ gross × r / (1 + r)), taxable = Σ gross − tax.
        const gross = sum(members);
        const rate = money(subtotal.rate);
        const tax = gross.times(rate).dividedBy(rate.plus(1)).toDecimalPlaces(2, HALF_UP);
        if (!money(subtotal.tax).equals(tax) || !money(subtotal.taxable).equals(gross.minus(tax))) {
          throw new Error(`${subtotal.category} ${rate}: ${subtotal.taxable.toFixed()} + ${subtotal.tax.toFixed()}`);
        }
      }
    }),
    RUNS,
  );
  t.pass();
});

t.test("a tax-exclusive invoice: nets are the charges, tax per rate on their sum (BR-CO-17)", async (t) => {
  fc.assert(
    fc.property(taxedLines, (spec) => {
      const draft = composeInvoice(taxedInvoice(spec, false));
      if (draft.lines.some((entry) => !money(entry.net).equals(money(entry.charge)))) throw new Error("net ≠ charge");
      if (!money(draft.net).equals(sum(draft.lines))) throw new Error("net ≠ Σ charges");
      let taxes = new Money(0);
      for (const subtotal of draft.taxes) {
        const members = draft.lines.filter(
          (entry) => entry.taxCategory === subtotal.category && money(entry.taxRate).equals(money(subtotal.rate)),
        );
        const taxable = sum(members);
        const tax = taxable.times(money(subtotal.rate)).toDecimalPlaces(2, HALF_UP);
        if (!money(subtotal.taxable).equals(taxable) || !money(subtotal.tax).equals(tax)) {
          throw new Error(`${subtotal.category} ${subtotal.rate}: ${subtotal.tax.toFixed()} ≠ round(${taxable} × r)`);
        }
        taxes = taxes.plus(tax);
      }
      if (!money(draft.tax).equals(taxes)) throw new Error("tax ≠ Σ subtotals");
      if (spec.reverseCharge && draft.lines.some((entry) => entry.taxCategory === "S")) {
        throw new Error("an S line on a reverse-charged invoice");
      }
    }),
    RUNS,
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------------------------
// Signs

const extrasSpec = fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 3 });

t.test("no negative line except credits and unused days", async (t) => {
  fc.assert(
    fc.property(lifeSpec, promotionSpec, transitionSpec, extrasSpec, (spec, promotions, transition, extras) => {
      const life = buildLife(spec, { promotions: promotionsFrom(promotions), transition });
      const { atStart, settling } = invoicesAround(life, {
        oneTimeCharges: extras.map((cents, index) =>
          oneTime({ id: `o${index}`, amount: centsText(cents), atMs: life.period.startMs + HOUR }),
        ),
        spendCredits: extras.map((cents, index) =>
          spendCredit({ id: `c${index}`, amount: centsText(cents + 1), atMs: life.period.startMs + HOUR }),
        ),
        usage: extras.map((cents, index) =>
          usage({
            summaryId: `u${index}`,
            usagePeriod: life.period.key,
            service: `s${index}`,
            amount: centsText(cents),
          }),
        ),
      });
      for (const entry of [...atStart.lines, ...settling.lines]) {
        const charge = money(entry.charge);
        if (entry.kind === "credit" || entry.kind === "unused") {
          if (charge.isPositive() && !charge.isZero()) throw new Error(`a positive ${entry.kind} line: ${charge}`);
        } else if (charge.isNegative() || money(entry.amount).isNegative() || money(entry.discount).isNegative()) {
          throw new Error(`a negative ${entry.kind} line ${entry.key}: ${entry.amount} − ${entry.discount}`);
        }
      }
    }),
    RUNS,
  );
  t.pass();
});

t.test("promotions never make a line negative, and apply only in their cycles", async (t) => {
  let discounted = 0;
  fc.assert(
    fc.property(
      fc.record({
        zone: fc.constantFrom(...ZONES),
        cycleDay: fc.integer({ min: 1, max: 31 }),
        cents: fc.integer({ min: 1, max: 100_000 }),
        activationDay: fc.integer({ min: 0, max: 27 }),
        billing: fc.constantFrom("advance" as const, "arrears" as const),
      }),
      promotionSpec,
      (spec, promotions) => {
        const cycle: BillCycle = { billCycleDay: spec.cycleDay, timeZone: spec.zone };
        const start = localMidnightUtc(spec.zone, {
          year: 2027,
          month: 1,
          day: billingDayOfMonth(spec.cycleDay, 2027, 1),
        });
        const periods = [cyclePeriod(start, cycle)];
        for (let index = 1; index <= 5; index++) periods.push(cyclePeriod((periods[index - 1] as Period).endMs, cycle));
        const first = periods[0] as Period;
        const activationMs = instant(spec.zone, localDayNumber(first.startMs, spec.zone), spec.activationDay, 10);
        const terms = promotionsFrom(promotions)(first, activationMs);
        const line = product({
          id: "p1",
          prices: [
            price({ priceId: "plan", amount: centsText(spec.cents), billing: spec.billing }),
            price({ priceId: "plan-2", amount: centsText(Math.ceil(spec.cents / 3)), billing: spec.billing }),
          ],
          history: [[activationMs, "active"]],
          promotions: terms,
        });
        for (const period of periods.slice(1)) {
          const draft = composeInvoice(cycleInvoice(period.startMs, { cycle, products: [line] }));
          for (const entry of draft.lines) {
            const amount = money(entry.amount);
            const discount = money(entry.discount);
            const charge = money(entry.charge);
            if (charge.isNegative() || discount.isNegative() || discount.greaterThan(amount)) {
              throw new Error(`${entry.key}: ${amount} − ${discount} = ${charge}`);
            }
            if (!amount.minus(discount).equals(charge)) throw new Error(`${entry.key}: charge ≠ amount − discount`);
            const named = entry.promotions.reduce((total, applied) => total.plus(money(applied.amount)), new Money(0));
            if (!named.equals(discount)) throw new Error(`${entry.key}: the named promotions add up to ${named}`);
            // Percent-off ones first.
            const kinds = entry.promotions.map(
              (applied) => terms.find((p) => p.id === applied.id)?.percentOff !== undefined,
            );
            if (kinds.some((percent, index) => percent && index > 0 && kinds[index - 1] === false)) {
              throw new Error(`${entry.key}: an amount off before a percent off`);
            }
            // Only the cycles a promotion covers: cycle 1 holds its start.
            for (const applied of entry.promotions) {
              const promotion = terms.find((p) => p.id === applied.id);
              if (promotion === undefined || entry.period === null) throw new Error("an unknown promotion");
              let current = cyclePeriod(promotion.startMs, cycle);
              let index = 1;
              while (current.startMs < entry.period.startMs) {
                current = cyclePeriod(current.endMs, cycle);
                index++;
              }
              if (index > promotion.cycles)
                throw new Error(`${promotion.id} applied in its cycle ${index} of ${promotion.cycles}`);
            }
            if (!discount.isZero()) discounted++;
          }
        }
      },
    ),
    RUNS,
  );
  t.ok(discounted > 50, `${discounted} lines were discounted`);
});
