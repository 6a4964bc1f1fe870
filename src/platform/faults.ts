/**
 * Named crash points and injected faults, for the fault tests that run real worker processes (DESIGN.md §5:
 * "crashes happen at named crash points a test can select, not at random times"). Inert unless the process was
 * started with BSS_FAULT (config.fault), which the entry points hand to armFault:
 *
 *   BSS_FAULT=crash:<point>[@<n>]   the process kills itself (SIGKILL, no cleanup) the n-th time (default 1st)
 *                                   it reaches <point>
 *   BSS_FAULT=poison:<account id>   the charging step fails for that account, every time (a poison record)
 *
 * Crash points of the rating worker: `after-step` (the charging step applied in the store, the batch not yet
 * committed), `mid-batch` (one account's step applied, others of the batch not yet), `after-commit` (rated rows
 * committed, queue entries not yet acknowledged). Of the scheduler: `mid-job` (a job's work done, its slot not
 * yet recorded as done). Of bill runs: `bill-after-drafts` (a batch's drafts composed, nothing written),
 * `bill-after-numbering` (numbers taken in the batch's transaction, documents and ledger not yet written),
 * `bill-mid-batch` (a batch committed, the run's next batches not yet claimed).
 */
export const CRASH_POINTS = [
  "after-step",
  "mid-batch",
  "after-commit",
  "mid-job",
  "bill-after-drafts",
  "bill-after-numbering",
  "bill-mid-batch",
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export const FAULT_PATTERN = new RegExp(
  `^(crash:(${CRASH_POINTS.join("|")})(@[1-9][0-9]{0,5})?|poison:[0-9a-f-]{36})$`,
);

let crash: { point: string; remaining: number } | null = null;
let poison: string | null = null;

export function armFault(spec: string | undefined): void {
  crash = null;
  poison = null;
  if (spec === undefined) return;
  const crashing = /^crash:([a-z-]+)(?:@(\d+))?$/.exec(spec);
  if (crashing) crash = { point: crashing[1] as string, remaining: Number(crashing[2] ?? 1) };
  const poisoning = /^poison:(.+)$/.exec(spec);
  if (poisoning) poison = poisoning[1] as string;
}

export function crashPoint(point: CrashPoint): void {
  if (crash === null || crash.point !== point) return;
  crash.remaining -= 1;
  if (crash.remaining === 0) process.kill(process.pid, "SIGKILL");
}

/** Whether the step for this account is to fail (BSS_FAULT=poison:<account id>). */
export function poisoned(accountId: string): boolean {
  return poison === accountId;
}
