import { and, asc, desc, eq, sql } from "drizzle-orm";
import type { FastifyBaseLogger } from "fastify";
import cron from "node-cron";
import { JOB_LEASE_SECONDS } from "../shared/limits.js";
import type { Clock } from "./clock.js";
import { type Database, queryRows } from "./database.js";
import { describeFailure } from "./errors.js";
import { crashPoint } from "./faults.js";
import { jobRuns, scheduledJobs } from "./scheduler.tables.js";

/**
 * Scheduled jobs (DESIGN.md §10 "Time and schedules"). Every process registers the same jobs and ticks (node-cron
 * once a minute, at start-up, and when the test clock moves); each tick, per job, claims the next due `(job, slot)`
 * under a transaction-level advisory lock and a job-run row whose lease a dead runner's successor may take over,
 * so one process runs each slot, once, whatever the number of processes. Slots are UTC minutes, hours or days of
 * business time (the engine clock); a slot's business time is its start, which the job receives. Slots missed
 * while nothing ran are caught up in order (`each`), or only the latest is run (`latest`, housekeeping that
 * covers everything before it). A job works in short transactions of its own (PGlite has one session) and
 * returns its outcome; a failure is recorded, logged and retried on the next tick, never skipped.
 */

export type Cadence = "minute" | "hour" | "day";

export interface ScheduledJob {
  name: string;
  every: Cadence;
  /** `each`: every slot missed is run in order (business jobs); `latest`: only the newest (housekeeping). */
  catchUp: "each" | "latest";
  /** Runs the slot that starts at `businessTime`; answers what it did (kept as the run's outcome). */
  run(businessTime: Date, slot: string): Promise<Record<string, unknown>>;
}

export interface JobRun {
  job: string;
  slot: string;
  outcome: "done" | "failed";
  detail: Record<string, unknown> | string;
}

/** Slots one tick runs at most per job (a long catch-up goes on at the next tick). */
const SLOTS_PER_TICK = 400;
/** Advisory lock namespace of the scheduler's decisions (one lock per job name within it). */
const LOCK_NAMESPACE = 72_014;

/** A claim that lost a race to another process: look at the job again. */
const RECHECK = Symbol("recheck");

const pad = (n: number) => String(n).padStart(2, "0");

/** The slot of a cadence that holds an instant: "2027-01-15", "2027-01-15T13", "2027-01-15T13:05" (UTC). */
export function slotOf(every: Cadence, at: Date): string {
  const day = at.toISOString().slice(0, 10);
  if (every === "day") return day;
  const hour = `${day}T${pad(at.getUTCHours())}`;
  return every === "hour" ? hour : `${hour}:${pad(at.getUTCMinutes())}`;
}

/** The instant a slot starts. */
export function slotStart(slot: string): Date {
  if (/^\d{4}-\d{2}-\d{2}$/.test(slot)) return new Date(`${slot}T00:00:00Z`);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}$/.test(slot)) return new Date(`${slot}:00:00Z`);
  return new Date(`${slot}:00Z`);
}

const CADENCE_MS: Record<Cadence, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

export function nextSlot(every: Cadence, slot: string): string {
  return slotOf(every, new Date(slotStart(slot).getTime() + CADENCE_MS[every]));
}

/** The slot a job runs next when nothing of it is open: after its last done slot (or its first), or, for
 * housekeeping that missed some, the current one. */
function dueSlot(
  job: Pick<ScheduledJob, "every" | "catchUp">,
  state: { firstSlot: string; lastDoneSlot: string | null },
  current: string,
): string {
  const after = state.lastDoneSlot === null ? state.firstSlot : nextSlot(job.every, state.lastDoneSlot);
  return job.catchUp === "latest" && after < current ? current : after;
}

export class Scheduler {
  readonly #jobs = new Map<string, ScheduledJob>();
  #ticking: Promise<JobRun[]> | null = null;

  constructor(
    private readonly deps: {
      database: Database;
      clock: Clock;
      log: FastifyBaseLogger;
      /** This process, as job runs name their runner. */
      owner: string;
      /** While the test clock moves, the process moving it runs the jobs; the others' ticks wait. */
      paused?: () => Promise<boolean>;
      /** How long a claimed slot stays its runner's without renewal (BSS_JOB_LEASE_SECONDS). */
      leaseSeconds?: number;
    },
  ) {}

  /** Resolves when no tick is running in this process. */
  async idle(): Promise<void> {
    while (this.#ticking !== null) await this.#ticking.catch(() => undefined);
  }

  register(job: ScheduledJob): void {
    if (this.#jobs.has(job.name)) throw new Error(`job ${job.name} registered twice`);
    this.#jobs.set(job.name, job);
  }

  get jobs(): readonly ScheduledJob[] {
    return [...this.#jobs.values()];
  }

  /**
   * Runs every job's due slots, in order, up to the slot business time is in now; answers what ran here. Ticks
   * in one process do not overlap (a tick asked for while one runs waits for it and runs again).
   */
  async tick(options: { force?: boolean } = {}): Promise<JobRun[]> {
    await this.idle();
    const running = this.#tickOnce(options.force === true);
    this.#ticking = running;
    try {
      return await running;
    } finally {
      this.#ticking = null;
    }
  }

  async #tickOnce(force: boolean): Promise<JobRun[]> {
    if (!force && (await this.deps.paused?.())) return [];
    const ran: JobRun[] = [];
    for (const job of this.#jobs.values()) {
      for (let count = 0; count < SLOTS_PER_TICK; count++) {
        const slot = await this.#claim(job);
        if (slot === null) break;
        if (slot === RECHECK) continue;
        const run = await this.#run(job, slot);
        ran.push(run);
        // A failed slot is retried on the next tick, and nothing after it runs before it (slots stay in order).
        if (run.outcome === "failed") break;
        // The current slot was run: nothing later is due until time moves on (saves a claim that finds nothing).
        if (slot === slotOf(job.every, this.deps.clock.now())) break;
      }
    }
    return ran;
  }

  /** The next slot of `job` this process may run, claimed; or null when none is due or another process has it. */
  get #leaseSeconds(): number {
    return this.deps.leaseSeconds ?? JOB_LEASE_SECONDS;
  }

  async #claim(job: ScheduledJob): Promise<string | null | typeof RECHECK> {
    const current = slotOf(job.every, this.deps.clock.now());
    return this.deps.database.transaction(async (tx) => {
      const [locked] = await queryRows<{ locked: boolean }>(
        tx,
        sql`select pg_try_advisory_xact_lock(${LOCK_NAMESPACE}::int4, hashtext(${job.name})) as locked`,
      );
      if (locked?.locked !== true) return null;
      // The job's row, made on its first claim (a select first: the insert is needed once in its life).
      let [state] = await tx.select().from(scheduledJobs).where(eq(scheduledJobs.job, job.name));
      if (state === undefined) {
        await tx
          .insert(scheduledJobs)
          .values({ job: job.name, firstSlot: current, updatedAt: this.deps.clock.now() })
          .onConflictDoNothing();
        [state] = await tx.select().from(scheduledJobs).where(eq(scheduledJobs.job, job.name));
      }
      if (state === undefined) return null;
      // A slot that was claimed and not finished: its runner's lease still holds (leave it) or has lapsed, or it
      // failed (take it again, in either case before anything later).
      const [open] = await queryRows<{ slot: string; live: boolean }>(
        tx,
        sql`select slot, (state = 'running' and lease_until > now()) as live from job_runs
            where job = ${job.name} and state <> 'done' order by slot limit 1`,
      );
      let slot: string;
      if (open !== undefined) {
        if (open.live) return null;
        slot = open.slot;
      } else {
        slot = dueSlot(job, state, current);
      }
      if (slot > current) return null;
      // The slot's row may have changed since it was read (read committed: another process marked it done, or
      // claimed it, between this transaction's statements): only a new, failed or lapsed slot is taken.
      const taken = await queryRows<{ slot: string }>(
        tx,
        sql`insert into job_runs (job, slot, state, attempts, owner, started_at, lease_until)
            values (${job.name}, ${slot}, 'running', 1, ${this.deps.owner}, now(),
              now() + make_interval(secs => ${this.#leaseSeconds}))
            on conflict (job, slot) do update set state = 'running', attempts = job_runs.attempts + 1,
              owner = excluded.owner, started_at = excluded.started_at, lease_until = excluded.lease_until,
              error = null
            where job_runs.state = 'failed' or (job_runs.state = 'running' and job_runs.lease_until <= now())
            returning slot`,
      );
      if (taken.length === 0) return RECHECK;
      return slot;
    });
  }

  async #run(job: ScheduledJob, slot: string): Promise<JobRun> {
    const { database, log, owner } = this.deps;
    const renew = setInterval(
      () => {
        database.db
          .update(jobRuns)
          .set({ leaseUntil: sql`now() + make_interval(secs => ${this.#leaseSeconds})` })
          .where(and(eq(jobRuns.job, job.name), eq(jobRuns.slot, slot), eq(jobRuns.owner, owner)))
          .catch(() => {
            // The database is away: the lease may lapse and another process take the slot over, which is safe.
          });
      },
      (this.#leaseSeconds * 1000) / 4,
    );
    renew.unref();
    try {
      const detail = await job.run(slotStart(slot), slot);
      crashPoint("mid-job");
      await database.transaction(async (tx) => {
        await tx
          .update(jobRuns)
          .set({ state: "done", finishedAt: sql`now()`, outcome: detail })
          .where(and(eq(jobRuns.job, job.name), eq(jobRuns.slot, slot)));
        await tx
          .update(scheduledJobs)
          .set({
            lastDoneSlot: sql`greatest(${scheduledJobs.lastDoneSlot}, ${slot})`,
            updatedAt: this.deps.clock.now(),
          })
          .where(eq(scheduledJobs.job, job.name));
      });
      if (Object.values(detail).some((value) => typeof value === "number" && value > 0)) {
        log.info({ job: job.name, slot, ...detail }, "scheduled job done");
      }
      return { job: job.name, slot, outcome: "done", detail };
    } catch (error) {
      const reason = describeFailure(error);
      log.error({ err: error, job: job.name, slot }, "scheduled job failed; retried on the next tick");
      await database.db
        .update(jobRuns)
        .set({ state: "failed", finishedAt: sql`now()`, error: reason })
        .where(and(eq(jobRuns.job, job.name), eq(jobRuns.slot, slot)))
        .catch(() => undefined);
      return { job: job.name, slot, outcome: "failed", detail: reason };
    } finally {
      clearInterval(renew);
    }
  }

  /** Every job with its last runs and the next due slot, for `GET /api/v1/admin/jobs`. */
  async describe(lastRuns = 5) {
    const now = this.deps.clock.now();
    const db = this.deps.database.db;
    const out = [];
    for (const job of [...this.#jobs.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const [state] = await db.select().from(scheduledJobs).where(eq(scheduledJobs.job, job.name));
      const runs = await db
        .select()
        .from(jobRuns)
        .where(eq(jobRuns.job, job.name))
        .orderBy(desc(jobRuns.slot))
        .limit(lastRuns);
      const current = slotOf(job.every, now);
      const failed = runs.filter((run) => run.state === "failed").map((run) => run.slot);
      out.push({
        name: job.name,
        every: job.every,
        catchUp: job.catchUp,
        lastDoneSlot: state?.lastDoneSlot ?? null,
        nextDueSlot: failed.sort()[0] ?? (state === undefined ? current : dueSlot(job, state, current)),
        runs: runs.map((run) => ({
          slot: run.slot,
          state: run.state,
          attempts: run.attempts,
          owner: run.owner,
          startedAt: run.startedAt.toISOString(),
          finishedAt: run.finishedAt?.toISOString() ?? null,
          ...(run.outcome === null ? {} : { outcome: run.outcome }),
          ...(run.error === null ? {} : { error: run.error }),
        })),
      });
    }
    return out;
  }

  /** The runs of one job, oldest first (tests and operators: which slots ran, where and when). */
  async runsOf(job: string) {
    return this.deps.database.db.select().from(jobRuns).where(eq(jobRuns.job, job)).orderBy(asc(jobRuns.slot));
  }
}

/**
 * Ticks the scheduler in this process: once now (catching up what was missed while nothing ran) and then every
 * minute of the wall clock (node-cron; a tick never overlaps the one before). Not started by buildApp, so tests
 * drive `tick` themselves.
 */
export function startScheduling(scheduler: Scheduler, log: FastifyBaseLogger): { stop(): Promise<void> } {
  const tick = () =>
    scheduler.tick().catch((error: unknown) => {
      // A tick that cannot reach the database is tried again at the next minute; the slots wait for it.
      log.error({ err: error }, "scheduler tick failed");
    });
  const first = tick();
  const task = cron.schedule("* * * * *", tick, { name: "scheduler", noOverlap: true });
  return {
    async stop() {
      await task.stop();
      await task.destroy();
      await first;
      await scheduler.idle();
    },
  };
}
