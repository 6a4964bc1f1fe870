import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

/**
 * The engine clock's offset (DESIGN.md §10 "A test clock for operators"): one row. Business time is the wall
 * clock plus `offset_ms` (negative when BSS_TEST_CLOCK_START began it before the wall clock); only the test clock
 * (BSS_TEST_CLOCK) ever moves it, and only forward (a trigger refuses a smaller offset, migration 0026). `moving_since`
 * is set while a move drains the queue and runs the crossed days' jobs, so a second move is refused.
 */
export const engineClock = pgTable(
  "engine_clock",
  {
    id: smallint("id").primaryKey(),
    offsetMs: bigint("offset_ms", { mode: "number" }).notNull(),
    movingSince: timestamp("moving_since", { withTimezone: true, mode: "date" }),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (table) => [check("engine_clock_single_row", sql`${table.id} = 1`)],
);

/** Every scheduled job the engine has run: the slot it started at and the last slot it finished. */
export const scheduledJobs = pgTable("scheduled_jobs", {
  job: text("job").primaryKey(),
  firstSlot: text("first_slot").notNull(),
  lastDoneSlot: text("last_done_slot"),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
});

/**
 * One row per job and slot (a UTC minute, hour or day, as text that sorts in time order): who runs it, until
 * when its lease holds (a dead runner's slot is taken over after it), and its outcome. The primary key is what
 * makes a slot run once whatever the number of processes.
 */
export const jobRuns = pgTable(
  "job_runs",
  {
    job: text("job").notNull(),
    slot: text("slot").notNull(),
    state: text("state").notNull(),
    attempts: integer("attempts").notNull(),
    owner: text("owner").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull(),
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "date" }).notNull(),
    finishedAt: timestamp("finished_at", { withTimezone: true, mode: "date" }),
    outcome: jsonb("outcome"),
    error: text("error"),
  },
  (table) => [
    primaryKey({ columns: [table.job, table.slot] }),
    check("job_runs_state_check", sql`${table.state} in ('running', 'done', 'failed')`),
    index("job_runs_job_finished_idx").on(table.job, table.finishedAt),
  ],
);
