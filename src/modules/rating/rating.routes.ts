import type { FastifyInstance } from "fastify";
import { STAFF } from "../../platform/auth.js";
import { errorResponses } from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { QuoteRequestSchema, QuoteSchema } from "./quote.schemas.js";
import type { QuoteService } from "./quote.service.js";

export function ratingRoutes(quotes: QuoteService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      "/api/v1/rating/quote",
      {
        config: { roles: STAFF, readOnly: true },
        schema: {
          tags: ["rating"],
          summary: "Price a hypothetical usage event with its full breakdown; nothing is charged",
          body: QuoteRequestSchema,
          response: { 200: QuoteSchema, ...errorResponses(413, 415, 422) },
        },
      },
      async (request) => quotes.quote(request.body),
    );
  };
}
