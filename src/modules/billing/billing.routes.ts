import type { FastifyInstance } from "fastify";
import { actorOf } from "../../platform/auth.js";
import { errorResponses } from "../../platform/tmf.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { presentPreview } from "./billing.present.js";
import { BillPreviewSchema, PreviewRequestSchema } from "./billing.schemas.js";
import type { BillingService } from "./billing.service.js";

export function billingRoutes(billing: BillingService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    app.post(
      "/api/v1/billing/preview",
      {
        config: { roles: ["admin", "finance", "crm", "subscriber"], readOnly: true },
        schema: {
          tags: ["billing"],
          summary: "The bill an account would get for the current or the last period; nothing is written",
          body: PreviewRequestSchema,
          response: { 200: BillPreviewSchema, ...errorResponses(404, 413, 415, 422) },
        },
      },
      async (request) =>
        presentPreview(
          await billing.preview(actorOf(request), request.body.billingAccountId, request.body.period ?? "current"),
        ),
    );
  };
}
