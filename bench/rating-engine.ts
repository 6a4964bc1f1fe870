/**
 * bench/rating-engine: events priced per second by the pure pricer on one core (this process).
 *
 * Budget (issue 3): ≥ 200,000 events/s over a mix of voice calls (a share crossing a band boundary), SMS and
 * data. The figure also says what the rest of the rating loop may spend per event: at the loop's goal of
 * 20,000 CDRs/s (DESIGN.md §9), pricing takes (20,000 / rate) of one core.
 */

import { compileTariff } from "../src/modules/catalog/tariff-compile.js";
import { priceEvent, type RatingEvent } from "../src/modules/rating/pricer.js";
import { sampleTariff } from "../test/fixtures/tariffs.js";
import { table } from "./support/servers.js";

const tariff = compileTariff(sampleTariff());
const BASE = Date.parse("2026-03-16T07:00:00+01:00");
const NUMBERS = ["+4915112345678", "+493012345678", "+4990012345", "+442071234567", "+16175551234"];

function events(count: number, kind: "voice" | "voice-split" | "sms" | "data"): RatingEvent[] {
  const list: RatingEvent[] = [];
  for (let i = 0; i < count; i++) {
    // Deterministic spread over a week, so the offset cache and band lookups see realistic variety.
    const startMs = BASE + ((i * 7_919) % (7 * 86_400)) * 1000;
    const calledNumber = NUMBERS[i % NUMBERS.length] as string;
    if (kind === "voice")
      list.push({ service: "voice", direction: "outgoing", startMs, quantity: 30 + (i % 600), calledNumber });
    if (kind === "voice-split") {
      // Starts two minutes before 08:00 or 20:00 and lasts five: every call is split.
      const edge = Date.parse(i % 2 === 0 ? "2026-03-16T07:58:00+01:00" : "2026-03-17T19:58:00+01:00");
      list.push({
        service: "voice",
        direction: "outgoing",
        startMs: edge + (i % 60) * 1000,
        quantity: 300,
        calledNumber: "+4915112345678",
      });
    }
    if (kind === "sms") list.push({ service: "sms", direction: "outgoing", startMs, quantity: 1, calledNumber });
    if (kind === "data")
      list.push({ service: "data", direction: "outgoing", startMs, quantity: 1 + ((i * 104_729) % 50_000_000) });
  }
  return list;
}

function measure(list: RatingEvent[], rounds: number): number {
  let checksum = 0;
  const started = process.hrtime.bigint();
  for (let round = 0; round < rounds; round++) {
    for (const event of list) checksum += priceEvent(tariff, event).chargedUnits;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (checksum <= 0) throw new Error("nothing was priced");
  return Math.round((list.length * rounds) / seconds);
}

export async function benchRatingEngine(): Promise<Record<string, string | number>[]> {
  const rows: Record<string, string | number>[] = [];
  const mixes = { voice: 40_000, "voice-split": 20_000, sms: 40_000, data: 40_000 } as const;
  let mixed: RatingEvent[] = [];
  for (const [kind, count] of Object.entries(mixes) as Array<[keyof typeof mixes, number]>) {
    const list = events(count, kind);
    mixed = mixed.concat(list);
    measure(list, 1);
    const rate = measure(list, 3);
    rows.push({ events: kind, "events/s": rate, "µs/event": (1e6 / rate).toFixed(2), goal: "" });
  }
  measure(mixed, 1);
  const rate = measure(mixed, 3);
  rows.push({
    events: "mix (all of the above)",
    "events/s": rate,
    "µs/event": (1e6 / rate).toFixed(2),
    goal: `≥ 200,000/s: ${rate >= 200_000 ? "met" : "MISSED"}; at 20,000 CDRs/s pricing uses ${((20_000 / rate) * 100).toFixed(1)} % of a core`,
  });
  return rows;
}

export function printRatingEngine(rows: Record<string, string | number>[]): void {
  process.stdout.write(
    `\nbench/rating-engine (${new Date().toISOString()}, Node ${process.version}, one core)\n${table(rows)}\n`,
  );
}
