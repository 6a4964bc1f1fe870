import { eq } from "drizzle-orm";
import type { Broadcast } from "./broadcast.js";
import type { Clock } from "./clock.js";
import type { Database } from "./database.js";
import { engineClock } from "./scheduler.tables.js";

/**
 * The engine clock (DESIGN.md §10 "Time and schedules"). Every process (API and rating workers) reads business
 * time from one Clock: in production the wall clock; with BSS_TEST_CLOCK=true the wall clock plus an offset that
 * lives in PostgreSQL (the `engine_clock` row), is broadcast to every process when it moves, and is re-read every
 * second by each process as the safety net under pub/sub. The offset only grows, so business time never goes back.
 *
 * Which time is which, in one place:
 * - business time (the engine clock): what a date on a document or a period means — CDR age checks, guiding's
 *   "which line held the number", bill and allowance periods, reservation and quarantine expiry, ticket expiry,
 *   the sweeper's window of accepted records, scheduled jobs' slots;
 * - the wall clock, monotonic or Date.now(): how long to wait — timeouts, leases (Redis PX, job leases by the
 *   database's now()), retry delays, intervals, the latency the benchmarks print. A CDR's own time is the CDR's.
 */

const CLOCK_CHANNEL = "engine-clock";
const CLOCK_ROW = 1;
/** How often a process re-reads the offset in case it missed the broadcast. */
export const CLOCK_REFRESH_MS = 1_000;

export interface EngineClock extends Clock {
  /** Milliseconds business time runs ahead of the wall clock (0 in production). */
  offsetMs(): number;
  /** Whether this clock can be moved (BSS_TEST_CLOCK). */
  readonly movable: boolean;
  close(): Promise<void>;
}

/** The production engine clock: business time is the wall clock. */
export const wallEngineClock: EngineClock = {
  now: () => new Date(),
  offsetMs: () => 0,
  movable: false,
  close: async () => undefined,
};

/**
 * The test clock: the wall clock plus the stored offset. `observe` takes a newer offset (from the row or the
 * broadcast) and ignores an older one, so a late message can never move this process's time backwards.
 */
export class TestClock implements EngineClock {
  readonly movable = true;
  /** Until the row is read, no offset (a configured start may be before the wall clock: a negative offset). */
  #offsetMs = Number.MIN_SAFE_INTEGER;
  #timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly database: Database,
    private readonly broadcast: Broadcast,
    private readonly wallMs: () => number,
  ) {}

  /**
   * The clock of a database: its stored offset, or on a new one `startAt` (a configured start, which may be before
   * the wall clock) or the wall clock itself. Only the first process to open a database sets where time starts.
   */
  static async open(
    database: Database,
    broadcast: Broadcast,
    wallMs: () => number = Date.now,
    startAt: Date | null = null,
  ): Promise<TestClock> {
    const clock = new TestClock(database, broadcast, wallMs);
    await database.db
      .insert(engineClock)
      .values({
        id: CLOCK_ROW,
        offsetMs: startAt === null ? 0 : startAt.getTime() - wallMs(),
        updatedAt: new Date(wallMs()),
      })
      .onConflictDoNothing();
    await clock.refresh();
    await broadcast.subscribe(CLOCK_CHANNEL, (message) => {
      const offset = Number(message);
      if (Number.isSafeInteger(offset)) clock.observe(offset);
    });
    clock.#timer = setInterval(() => {
      clock.refresh().catch(() => {
        // The database is away for a moment: the offset stays as it was, and the next second tries again.
      });
    }, CLOCK_REFRESH_MS);
    clock.#timer.unref();
    return clock;
  }

  now(): Date {
    return new Date(this.wallMs() + this.#offsetMs);
  }

  offsetMs(): number {
    return this.#offsetMs;
  }

  observe(offsetMs: number): void {
    if (offsetMs > this.#offsetMs) this.#offsetMs = offsetMs;
  }

  async refresh(): Promise<void> {
    const [row] = await this.database.db
      .select({ offsetMs: engineClock.offsetMs })
      .from(engineClock)
      .where(eq(engineClock.id, CLOCK_ROW));
    if (row !== undefined) this.observe(row.offsetMs);
  }

  /**
   * Business time becomes `to` (never earlier than now): the offset is stored, taken at once by this process and
   * broadcast to the others, which also find it in the row within a second.
   */
  async set(to: Date): Promise<void> {
    const offset = to.getTime() - this.wallMs();
    if (offset < this.#offsetMs) throw new Error("the engine clock only moves forward");
    await this.database.db
      .update(engineClock)
      .set({ offsetMs: offset, updatedAt: new Date(this.wallMs()) })
      .where(eq(engineClock.id, CLOCK_ROW));
    this.observe(offset);
    await this.broadcast.publish(CLOCK_CHANNEL, String(offset)).catch(() => {
      // Redis is away: the other processes read the row within a second instead.
    });
  }

  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
