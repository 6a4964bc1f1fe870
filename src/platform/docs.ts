import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";

/** The OpenAPI description at /docs/json and its UI at /docs, generated from the route schemas. */
export async function registerDocs(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Telco BSS: order-to-cash with real-time charging",
        description:
          "TM Forum Open API v4 resources at their standard paths, native resources under /api/v1. " +
          "Authenticate with 'Authorization: Bearer <API key>'.",
        version,
      },
      components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer" } } },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
}
