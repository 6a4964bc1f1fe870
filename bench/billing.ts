/**
 * bench/billing: invoices composed per second by the pure `composeInvoice` on one core (this process).
 *
 * Budget (issue 23): ≥ 20,000 accounts/s for a typical account: 5 lines, 3 add-ons, 20 usage summaries, one line
 * activated inside the period and one suspended across it, tax-inclusive plan prices and tax-exclusive usage. The
 * ceiling row adds up the same inputs' amounts with decimal.js and nothing else: what reading the money costs. Each
 * figure is the median of five runs.
 */

import { type ComposeInput, composeInvoice, type ProductInput } from "../src/modules/billing/compose.js";
import { billPeriod } from "../src/shared/calendar.js";
import { Money } from "../src/shared/money.js";
import { table } from "./support/servers.js";

const ZONE = "Europe/Berlin";
const DAY = 86_400_000;

function account(index: number): ComposeInput {
  const cycleDay = 1 + (index % 28);
  const usagePeriod = billPeriod(Date.parse("2027-03-20T12:00:00Z"), cycleDay, ZONE);
  const advancePeriod = billPeriod(usagePeriod.endMs, cycleDay, ZONE);
  const before = usagePeriod.startMs - 40 * DAY;
  const price = (id: string, amount: string, taxIncluded: boolean) => ({
    priceId: id,
    name: id,
    type: "recurring" as const,
    amount,
    currency: "EUR",
    taxClass: "vat-standard",
    billing: "advance" as const,
    taxIncluded,
    chargedWhenSuspended: ["dunning" as const],
  });
  const products: ProductInput[] = [];
  for (let line = 0; line < 5; line++) {
    const id = `plan-${index}-${line}`;
    const activated = line === 4 ? usagePeriod.startMs + ((index % 20) + 2) * DAY : before;
    const history = [
      { atMs: activated - 1000, status: "created", suspensionReason: null },
      { atMs: activated, status: "active", suspensionReason: null },
    ];
    if (line === 3) {
      history.push(
        { atMs: usagePeriod.startMs + 10 * DAY, status: "suspended", suspensionReason: "customerRequest" as never },
        { atMs: usagePeriod.startMs + 15 * DAY, status: "active", suspensionReason: null },
      );
    }
    products.push({
      id,
      name: `Postpaid M ${line}`,
      kind: "plan",
      parentId: null,
      currency: "EUR",
      history,
      prices: [{ fromMs: activated - 1000, prices: [price("price-postpaid-m-monthly", "29.99", true)] }],
      promotions:
        line === 0
          ? [
              {
                id: "promo-m-20-off-3",
                name: "20 % off",
                percentOff: "20",
                cycles: 3,
                priceIds: ["price-postpaid-m-monthly"],
                startMs: before,
              },
            ]
          : [],
      usageTax: { taxClass: "vat-standard", taxIncluded: false },
    });
    if (line < 3) {
      products.push({
        id: `addon-${index}-${line}`,
        name: `Roaming pack ${line}`,
        kind: "addon",
        parentId: id,
        currency: "EUR",
        history,
        prices: [{ fromMs: activated - 1000, prices: [price("price-roaming-monthly", "4.99", true)] }],
        promotions: [],
        usageTax: null,
      });
    }
  }
  const services = ["voice", "sms", "data", "voice"] as const;
  const zones = ["national", "national-mobile", null, "international"] as const;
  const usage = Array.from({ length: 20 }, (_, n) => ({
    summaryId: `summary-${index}-${n}`,
    productId: `plan-${index}-${n % 5}`,
    usagePeriod: usagePeriod.key,
    service: services[n % 4] as string,
    zone: zones[n % 4] ?? null,
    quantity: 1000 + n,
    chargedUnits: 600 + n,
    amount: `${(n * 37) % 500}.${String((index + n) % 1000).padStart(3, "0")}`,
    currency: "EUR",
    fromSeq: 1,
    toSeq: 10 + n,
  }));
  return {
    kind: "cycle",
    account: {
      id: `account-${index}`,
      accountType: "postpaid",
      currency: "EUR",
      cycle: { billCycleDay: cycleDay, timeZone: ZONE },
      taxJurisdiction: "DE",
      paymentTermsDays: 14,
      reverseCharge: false,
    },
    usagePeriod,
    advancePeriod,
    issueMs: advancePeriod.startMs,
    products,
    oneTimeCharges: [],
    usage,
    spendCredits: [],
    taxClasses: new Map([
      [
        "vat-standard",
        {
          id: "vat-standard",
          name: "VAT",
          category: "S" as const,
          rates: [
            { jurisdiction: "DE", rate: "0.16", validFrom: "2020-07-01" },
            { jurisdiction: "DE", rate: "0.19", validFrom: "2021-01-01" },
          ],
        },
      ],
    ]),
  };
}

function measure(inputs: ComposeInput[], rounds: number): { rate: number; lines: number } {
  let lines = 0;
  const started = process.hrtime.bigint();
  for (let round = 0; round < rounds; round++) {
    for (const input of inputs) lines += composeInvoice(input).lines.length;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (lines === 0) throw new Error("nothing was composed");
  return { rate: Math.round((inputs.length * rounds) / seconds), lines: lines / (inputs.length * rounds) };
}

/** The ceiling: the inputs' amounts summed with decimal.js, the least any composition must do with them. */
function ceiling(inputs: ComposeInput[], rounds: number): number {
  let check = new Money(0);
  const started = process.hrtime.bigint();
  for (let round = 0; round < rounds; round++) {
    for (const input of inputs) {
      let sum = new Money(0);
      for (const product of input.products)
        for (const price of product.prices[0]?.prices ?? []) sum = sum.plus(price.amount);
      for (const usage of input.usage) sum = sum.plus(usage.amount);
      check = check.plus(sum.toDecimalPlaces(2));
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (check.isZero()) throw new Error("nothing was summed");
  return Math.round((inputs.length * rounds) / seconds);
}

export async function benchBilling(): Promise<Record<string, string | number>[]> {
  const inputs = Array.from({ length: 2_000 }, (_, index) => account(index));
  measure(inputs, 2);
  ceiling(inputs, 2);
  // Five alternating runs of each, the median of each reported: one run on a shared machine can lose half its time.
  const bares: number[] = [];
  const runs: Array<{ rate: number; lines: number }> = [];
  for (let run = 0; run < 5; run++) {
    bares.push(ceiling(inputs, 4));
    runs.push(measure(inputs, 4));
  }
  const bare = median(bares);
  const composed = { rate: median(runs.map((run) => run.rate)), lines: runs[0]?.lines ?? 0 };
  return [
    {
      measure: "ceiling: the inputs' amounts summed (decimal.js)",
      "accounts/s": bare,
      "µs/account": (1e6 / bare).toFixed(1),
      ratio: "1.00",
      goal: "",
    },
    {
      measure: `composeInvoice (5 lines, 3 add-ons, 20 summaries; ${composed.lines.toFixed(0)} bill lines)`,
      "accounts/s": composed.rate,
      "µs/account": (1e6 / composed.rate).toFixed(1),
      ratio: (composed.rate / bare).toFixed(2),
      goal: `≥ 20,000/s: ${composed.rate >= 20_000 ? "met" : "MISSED"}`,
    },
  ];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

export function printBilling(rows: Record<string, string | number>[]): void {
  process.stdout.write(
    `\nbench/billing (${new Date().toISOString()}, Node ${process.version}, one core)\n${table(rows)}\n`,
  );
}
