import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { Type } from "typebox";
import { READY_CHECK_TIMEOUT_MS } from "../shared/limits.js";
import type { Database } from "./database.js";
import { errorBody } from "./errors.js";

const CheckSchema = Type.Object({
  status: Type.Union([Type.Literal("up"), Type.Literal("down"), Type.Literal("embedded")]),
  latencyMs: Type.Optional(Type.Number()),
  detail: Type.Optional(Type.String()),
});
const ChecksSchema = Type.Object({ database: CheckSchema, redis: CheckSchema });

type Check = { status: "up" | "down" | "embedded"; latencyMs?: number; detail?: string };

async function timed(probe: () => Promise<unknown>): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${READY_CHECK_TIMEOUT_MS} ms`)),
          READY_CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { status: "up", latencyMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    // A failed probe is the answer readiness exists to give; the detail says which and why.
    return { status: "down", detail: error instanceof Error ? error.message : "failed" };
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness (the process answers) and readiness (its database and Redis answer), both public. */
export function registerHealth(app: FastifyInstance, database: Database, redis: Redis | null): void {
  app.get(
    "/health",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "Liveness: the process is up",
        response: { 200: Type.Object({ status: Type.Literal("ok") }) },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/ready",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "Readiness: the database and Redis answer",
        response: {
          200: Type.Object({ status: Type.Literal("ready"), checks: ChecksSchema }),
          503: Type.Object({
            code: Type.String(),
            reason: Type.String(),
            message: Type.String(),
            status: Type.String(),
            "@type": Type.Literal("Error"),
            checks: ChecksSchema,
          }),
        },
      },
    },
    async (_request, reply) => {
      const [databaseCheck, redisCheck] = await Promise.all([
        timed(() => database.ping()),
        redis === null ? Promise.resolve<Check>({ status: "embedded" }) : timed(() => redis.ping()),
      ]);
      const checks = { database: databaseCheck, redis: redisCheck };
      const down = Object.entries(checks).filter(([, check]) => check.status === "down");
      if (down.length === 0) return { status: "ready" as const, checks };
      const names = down.map(([name, check]) => `${name}: ${check.detail ?? "down"}`).join("; ");
      return reply.code(503).send({ ...errorBody("unavailable", "not_ready", `not ready: ${names}`), checks });
    },
  );
}
