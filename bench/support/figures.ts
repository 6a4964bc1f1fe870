import { readFileSync } from "node:fs";

/** Small figures the benches print: percentiles and the machine's CPU use over a phase. */

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function stats(values: number[]): { p50: string; p99: string } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50).toFixed(0), p99: percentile(sorted, 99).toFixed(0) };
}

/** The machine's CPU counters (all cores): busy and total jiffies, from /proc/stat (zeros elsewhere). */
export function machineCpu(): { busy: number; total: number } {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((sum, value) => sum + value, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** The share of the machine's CPU that was busy between two readings, in percent. */
export function busyShare(before: { busy: number; total: number }, after: { busy: number; total: number }): number {
  const total = after.total - before.total;
  return total <= 0 ? 0 : (100 * (after.busy - before.busy)) / total;
}
