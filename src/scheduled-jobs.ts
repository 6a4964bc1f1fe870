import type { FastifyBaseLogger } from "fastify";
import { RatingService } from "./modules/charging/rating.service.js";
import { SYSTEM_ACTOR } from "./platform/audit.js";
import type { Scheduler } from "./platform/scheduler.js";

/**
 * The engine's scheduled jobs (platform/scheduler.ts), registered the same in every process so any of them can
 * run a slot: housekeeping that covers everything before it runs only its latest slot when it missed some; jobs
 * whose slots mean business days (bill cycles, dunning, renewals to come) run every slot in order. Each answers
 * what it did, kept as the run's outcome. Billing, payments and collections add theirs here.
 */
export function registerScheduledJobs(
  scheduler: Scheduler,
  services: {
    billRuns: {
      startDue(businessTime: Date): Promise<Record<string, unknown>>;
      work(): Promise<Record<string, unknown>>;
      issueDueFinalBills(): Promise<Record<string, unknown>>;
    };
    inventory: { expire(actor: typeof SYSTEM_ACTOR): Promise<{ reservations: number; quarantines: number }> };
    live: { purgeTickets(): Promise<number> };
    charging: {
      rating: { renew(): Promise<number> };
      reconcile: Parameters<typeof RatingService.reconcileJob>[0];
      reviewCreditBarring(): Promise<{ accounts: number }>;
    };
    directDebits: { collectDue(businessTime: Date): Promise<{ collected: number }> };
    statements: { recover(): Promise<{ resumed: number; abandoned: number }> };
    log: FastifyBaseLogger;
  },
): void {
  scheduler.register({
    name: "inventory-expiry",
    every: "minute",
    catchUp: "latest",
    // Lapsed reservations and quarantines back to available (claims already treat them as free).
    run: async () => services.inventory.expire(SYSTEM_ACTOR),
  });
  scheduler.register({
    name: "ws-ticket-purge",
    every: "day",
    catchUp: "each",
    run: async (businessTime) => ({ purged: await services.live.purgeTickets(), day: businessTime.toISOString() }),
  });
  scheduler.register({
    name: "allowance-renewal",
    every: "hour",
    catchUp: "latest",
    // Lines whose allowance period ended get the new period's buckets before their first event.
    run: async () => ({ renewed: await services.charging.rating.renew() }),
  });
  scheduler.register({
    name: "credit-barring-review",
    every: "hour",
    catchUp: "latest",
    // Postpaid lines barred for credit get their service back once a new bill period restarts the spend.
    run: async () => services.charging.reviewCreditBarring(),
  });
  scheduler.register({
    name: "bill-runs",
    every: "day",
    catchUp: "each",
    // The runs of the cycle days whose usage periods end on the slot's date, then their work (short transactions).
    run: async (businessTime) => services.billRuns.startDue(businessTime),
  });
  scheduler.register({
    name: "final-bills",
    every: "day",
    catchUp: "latest",
    // Accounts whose last line ended the configured days ago get their final bill (it looks back, so the latest
    // slot covers the days missed).
    run: async () => services.billRuns.issueDueFinalBills(),
  });
  scheduler.register({
    name: "bill-run-work",
    every: "hour",
    catchUp: "latest",
    // Accounts whose period ended later in their zone than the run's start, and claims of processes that stopped.
    run: async () => services.billRuns.work(),
  });
  scheduler.register({
    name: "direct-debit-collection",
    every: "day",
    catchUp: "latest",
    // Pending SEPA debits whose collection date has come are collected: their payments settle the bills (the query
    // takes every date up to the slot's, so the latest slot covers the days missed).
    run: async (businessTime) => services.directDebits.collectDue(businessTime),
  });
  scheduler.register({
    name: "statement-recovery",
    every: "hour",
    catchUp: "latest",
    // Bank statements a crashed process read whole but did not finish applying are applied; uploads cut off are
    // cleared so the file can be imported again.
    run: async () => services.statements.recover(),
  });
  scheduler.register({
    name: "reconcile",
    every: "hour",
    catchUp: "latest",
    run: async () => RatingService.reconcileJob(services.charging.reconcile, services.log),
  });
}
