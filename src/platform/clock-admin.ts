import { and, eq, isNull, lt, or, sql } from "drizzle-orm";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { addDuration, parseIsoDuration } from "../shared/calendar.js";
import type { Database } from "./database.js";
import type { TestClock } from "./engine-clock.js";
import { AppError, invalidField } from "./errors.js";
import type { JobRun, Scheduler } from "./scheduler.js";
import { engineClock } from "./scheduler.tables.js";
import { errorResponses } from "./tmf.js";
import type { SchemaTypeProvider } from "./type-provider.js";

/**
 * Moving the test clock (DESIGN.md §10 "A test clock for operators", as Kill Bill's test mode allows): the rating
 * queue is drained first (every accepted CDR rated or in suspense), then business time steps to each UTC midnight
 * it crosses and that day's jobs run with it as their business date, then it stops at the target. One move at a
 * time, marked in the clock's row; the other processes' schedulers wait while it is marked.
 */

/** The longest move one request may make. */
const MOVE_MAX_MS = 366 * 86_400_000;
/** How long the drain waits for the rating loop before it answers 503. */
const DRAIN_TIMEOUT_MS = 120_000;
/** A move marked longer ago than this belongs to a process that died; another may start. */
const MOVE_STALE_MINUTES = 15;
const DAY_MS = 86_400_000;

export interface RatingBacklog {
  /** Accepted records the rating loop still owes, and how many of the recent ones are rated or in suspense. */
  backlog(): Promise<{ pending: number; rated: number; suspense: number }>;
  /** Whether any process is rating now (a worker's heartbeat, or the embedded loop). */
  ratersAlive(): Promise<boolean>;
}

export interface ClockMove {
  previous: string;
  now: string;
  drained: { rated: number; suspense: number };
  ran: Array<{ job: string; slot: string; outcome: JobRun["outcome"] }>;
}

/** Whether a move of the test clock is under way (the other processes' schedulers then wait for it). */
export async function clockMoving(database: Database): Promise<boolean> {
  const rows = await database.db
    .select({ id: engineClock.id })
    .from(engineClock)
    .where(
      and(
        eq(engineClock.id, 1),
        sql`${engineClock.movingSince} > now() - make_interval(mins => ${MOVE_STALE_MINUTES})`,
      ),
    );
  return rows.length > 0;
}

export class ClockMover {
  constructor(
    private readonly deps: {
      clock: TestClock;
      database: Database;
      scheduler: Scheduler;
      rating: RatingBacklog;
    },
  ) {}

  /** Where `{advance}` or `{to}` would take business time; every refusal before anything is touched. */
  target(request: { advance?: string | undefined; to?: string | undefined }, now: Date): Date {
    if ((request.advance === undefined) === (request.to === undefined)) {
      throw new AppError("bad_request", "invalid_body", "give exactly one of advance (an ISO 8601 duration) or to");
    }
    let target: Date;
    if (request.advance !== undefined) {
      const duration = parseIsoDuration(request.advance);
      if (duration === null) throw invalidField("advance", "must be an ISO 8601 duration such as P1D or PT6H");
      target = addDuration(now, duration);
    } else {
      const to = request.to as string;
      if (
        !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(to) ||
        Number.isNaN(Date.parse(to))
      ) {
        throw invalidField("to", "must be a date-time with a zone, such as 2027-02-01T00:00:00Z");
      }
      target = new Date(to);
    }
    if (target.getTime() <= now.getTime()) {
      throw new AppError(
        "conflict",
        "clock_backwards",
        `the engine clock only moves forward: it is ${now.toISOString()}, ${target.toISOString()} is not after it`,
      );
    }
    if (target.getTime() - now.getTime() > MOVE_MAX_MS) {
      throw new AppError("unprocessable", "clock_move_too_far", "one move may go at most a year forward");
    }
    return target;
  }

  async move(request: { advance?: string | undefined; to?: string | undefined }): Promise<ClockMove> {
    const { clock, database, scheduler } = this.deps;
    const previous = clock.now();
    const target = this.target(request, previous);
    const claimed = await database.db
      .update(engineClock)
      .set({ movingSince: sql`now()` })
      .where(
        and(
          eq(engineClock.id, 1),
          or(
            isNull(engineClock.movingSince),
            lt(engineClock.movingSince, sql`now() - make_interval(mins => ${MOVE_STALE_MINUTES})`),
          ),
        ),
      )
      .returning({ id: engineClock.id });
    if (claimed.length === 0) throw new AppError("conflict", "clock_moving", "the engine clock is being moved already");
    try {
      const drained = await this.drain();
      const ran: ClockMove["ran"] = [];
      const record = (runs: JobRun[]) => {
        for (const run of runs) ran.push({ job: run.job, slot: run.slot, outcome: run.outcome });
      };
      // Each UTC midnight crossed: business time stands at it while that day's jobs run.
      for (let day = Math.floor(previous.getTime() / DAY_MS) + 1; day * DAY_MS <= target.getTime(); day++) {
        await clock.set(new Date(day * DAY_MS));
        record(await scheduler.tick({ force: true }));
      }
      await clock.set(target);
      record(await scheduler.tick({ force: true }));
      return { previous: previous.toISOString(), now: target.toISOString(), drained, ran };
    } finally {
      await database.db.update(engineClock).set({ movingSince: null }).where(eq(engineClock.id, 1));
    }
  }

  /** Waits until every accepted CDR is rated or in suspense; answers what the window holds rated and in suspense. */
  private async drain(): Promise<{ rated: number; suspense: number }> {
    const { rating } = this.deps;
    // A timeout, so elapsed time on the monotonic clock: business time may be anything here.
    const started = performance.now();
    const before = await rating.backlog();
    let now = before;
    while (now.pending > 0) {
      if (!(await rating.ratersAlive())) {
        throw new AppError(
          "unavailable",
          "no_rating_worker",
          `${now.pending} accepted CDRs wait to be rated and no rating worker is running to drain them; start one (npm run worker) and move the clock again`,
        );
      }
      if (performance.now() - started > DRAIN_TIMEOUT_MS) {
        throw new AppError(
          "unavailable",
          "drain_timeout",
          `${now.pending} accepted CDRs are still being rated; try again`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      now = await rating.backlog();
    }
    return { rated: now.rated - before.rated, suspense: now.suspense - before.suspense };
  }
}

const ClockSchema = Type.Object({
  now: Type.String({ format: "date-time" }),
  offsetSeconds: Type.Integer(),
});

const MoveRequestSchema = Type.Object(
  {
    advance: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    to: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  },
  { additionalProperties: false },
);

const MoveSchema = Type.Object({
  previous: Type.String({ format: "date-time" }),
  now: Type.String({ format: "date-time" }),
  drained: Type.Object({ rated: Type.Integer(), suspense: Type.Integer() }),
  ran: Type.Array(Type.Object({ job: Type.String(), slot: Type.String(), outcome: Type.String() })),
});

const JobsSchema = Type.Array(
  Type.Object({
    name: Type.String(),
    every: Type.String(),
    catchUp: Type.String(),
    lastDoneSlot: Type.Union([Type.String(), Type.Null()]),
    nextDueSlot: Type.String(),
    runs: Type.Array(
      Type.Object({
        slot: Type.String(),
        state: Type.String(),
        attempts: Type.Integer(),
        owner: Type.String(),
        startedAt: Type.String(),
        finishedAt: Type.Union([Type.String(), Type.Null()]),
        outcome: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        error: Type.Optional(Type.String()),
      }),
    ),
  }),
);

const ADMIN = { roles: ["admin"] as const };

/** `GET /api/v1/admin/jobs` always; the clock routes only with the test clock (without it they do not exist). */
export function adminRoutes(
  scheduler: Scheduler,
  mover: ClockMover | null,
  clock: { now(): Date; offsetMs(): number },
) {
  return async (instance: FastifyInstance) => {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.get(
      "/api/v1/admin/jobs",
      {
        config: ADMIN,
        schema: {
          tags: ["administration"],
          summary: "Scheduled jobs: their last runs and outcomes, and the next slot due",
          response: { 200: JobsSchema, ...errorResponses() },
        },
      },
      async () => scheduler.describe(),
    );
    if (mover === null) return;
    app.get(
      "/api/v1/admin/clock",
      {
        config: ADMIN,
        schema: {
          tags: ["administration"],
          summary: "The engine clock (test clock only): business time and its offset from the wall clock",
          response: { 200: ClockSchema, ...errorResponses() },
        },
      },
      async () => ({ now: clock.now().toISOString(), offsetSeconds: Math.floor(clock.offsetMs() / 1000) }),
    );
    app.post(
      "/api/v1/admin/clock",
      {
        config: ADMIN,
        schema: {
          tags: ["administration"],
          summary:
            "Move the test clock forward by {advance} or to {to}: drains the rating queue, runs each crossed day's jobs with that day as their business date, then sets the clock",
          body: MoveRequestSchema,
          response: { 200: MoveSchema, ...errorResponses(409, 413, 415, 422, 503) },
        },
      },
      async (request) => mover.move(request.body),
    );
  };
}
