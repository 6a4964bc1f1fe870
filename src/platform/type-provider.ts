import type { FastifyTypeProvider } from "fastify";
import type { Static, TSchema } from "typebox";

/**
 * Request types from the route schemas: a route's `request.body`, `params`, `query` and `headers` have the types
 * of the TypeBox schemas it declares (which the validator enforces before the handler runs), so handlers need no
 * casts. Responses are not typed by it: they are serialised through their schemas, and the handlers build them
 * with the resource types of each module.
 */
export interface SchemaTypeProvider extends FastifyTypeProvider {
  validator: this["schema"] extends TSchema ? Static<this["schema"]> : unknown;
  serializer: unknown;
}
