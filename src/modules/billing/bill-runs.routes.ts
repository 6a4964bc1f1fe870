import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf } from "../../platform/auth.js";
import { notFound } from "../../platform/errors.js";
import { errorResponses, IdParamsSchema, sendCreated } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { isId } from "../../shared/ids.js";
import type { BillRunsService } from "./bill-runs.service.js";

const PATH = "/api/v1/bill-runs";
const Money = Type.Object({ unit: Type.String(), value: Type.String() });

const BillRunSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  /** cycle (a cycle day and the date its periods end) or accounts (named accounts). */
  kind: Type.String(),
  billCycleDay: Type.Optional(Type.Integer()),
  periodEnd: Type.Optional(Type.String()),
  /** running, completed, completedWithFailures. */
  state: Type.String(),
  total: Type.Integer(),
  done: Type.Integer(),
  invoiced: Type.Integer(),
  nothingToBill: Type.Integer(),
  failed: Type.Integer(),
  pending: Type.Integer(),
  invoicedAmount: Type.Array(Money),
  ratePerSecond: Type.Number(),
  secondsLeft: Type.Optional(Type.Integer()),
  failures: Type.Array(Type.Object({ billingAccountId: Type.String(), code: Type.String(), reason: Type.String() })),
  createdAt: Type.String(),
  finishedAt: Type.Optional(Type.String()),
});

const StartSchema = Type.Union([
  Type.Object(
    {
      billCycleDay: Type.Integer({ minimum: 1, maximum: 31 }),
      /** The local date (exclusive) the usage periods end on. */
      periodEnd: Type.String({ minLength: 10, maxLength: 10 }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    { billingAccountIds: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 10_000 }) },
    { additionalProperties: false },
  ),
]);

/** Bill runs (finance): start one, follow its progress, take its failed accounts again. */
export function billRunsRoutes(runs: BillRunsService, kick: (runId: string) => void) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      PATH,
      {
        config: { roles: ["admin", "finance"] },
        schema: {
          tags: ["billing"],
          summary:
            "Start the bill run of a cycle day and period end (201), or answer the one started (200); or bill named accounts",
          body: StartSchema,
          response: { 200: BillRunSchema, 201: BillRunSchema, ...errorResponses(409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { created, run } = await runs.start(actorOf(request), request.body);
        // This process starts working it at once; any other process (workers, the scheduler) may join.
        kick(run.id);
        return created ? sendCreated(reply, run) : run;
      },
    );
    registerReadRoutes(app, {
      path: PATH,
      name: "billRun",
      tag: "billing",
      resource: BillRunSchema,
      filters: {
        state: { values: ["running", "completed", "completedWithFailures"] },
        billCycleDay: {},
        periodEnd: {},
      },
      roles: ["admin", "finance"],
      list: (actor, request) => runs.list(actor, request),
      get: (actor, id) => runs.get(actor, id),
    });
    app.post(
      `${PATH}/:id/retry`,
      {
        config: { roles: ["admin", "finance"] },
        schema: {
          tags: ["billing"],
          summary: "Take a run's failed accounts again (after the cause was fixed)",
          params: IdParamsSchema,
          response: { 200: BillRunSchema, ...errorResponses(404, 409) },
        },
      },
      async (request) => {
        const { id } = request.params;
        if (!isId(id)) throw notFound("billRun", id);
        const run = await runs.retry(actorOf(request), id);
        kick(run.id);
        return run;
      },
    );
  };
}
