import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Actor } from "../../platform/audit.js";
import { actorOf } from "../../platform/auth.js";
import { errorResponses } from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { NETWORK_OPERATIONS, type SimulatedNetwork } from "./provisioning.js";

/**
 * The simulated network's controls (only registered when no network URL is configured): tell it to fail the
 * next calls of an operation, to see orders fail and compensate without a real network.
 */
export function simulatorRoutes(network: SimulatedNetwork, audit: (actor: Actor, change: object) => Promise<void>) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    const Failures = Type.Record(Type.String(), Type.Integer());
    app.post(
      "/api/v1/network-simulator/failures",
      {
        config: { roles: ["admin"] },
        schema: {
          tags: ["network simulator"],
          summary: "Make the simulated network fail the next `count` calls of an operation",
          body: Type.Object(
            { operation: Type.Enum([...NETWORK_OPERATIONS]), count: Type.Integer({ minimum: 0, maximum: 1000 }) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ pendingFailures: Failures }), ...errorResponses(413, 415) },
        },
      },
      async (request) => {
        const { operation, count } = request.body;
        network.failNext(operation, count);
        await audit(actorOf(request), { operation, count });
        return { pendingFailures: network.pendingFailures() };
      },
    );
  };
}
