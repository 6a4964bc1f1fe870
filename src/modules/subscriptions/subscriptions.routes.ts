import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, STAFF } from "../../platform/auth.js";
import { errorResponses, type FilterSpecs, IdParamsSchema } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { PRODUCT_LIFECYCLE, PRODUCT_PATH, type SubscriptionsService } from "./subscriptions.service.js";

const Ref = Type.Object({
  id: Type.String(),
  href: Type.String(),
  name: Type.Optional(Type.String()),
  "@referredType": Type.String(),
});
export const ProductSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("Product"),
  name: Type.String(),
  status: Type.String(),
  isBundle: Type.Boolean(),
  startDate: Type.String(),
  terminationDate: Type.Optional(Type.String()),
  productOffering: Type.Object({ ...Ref.properties, version: Type.String() }),
  billingAccount: Ref,
  relatedParty: Type.Array(Type.Object({ ...Ref.properties, role: Type.String() })),
  productCharacteristic: Type.Array(Type.Object({ name: Type.String(), value: Type.String() })),
  productPrice: Type.Array(
    Type.Object({
      name: Type.String(),
      priceType: Type.String(),
      recurringChargePeriod: Type.Optional(Type.String()),
      price: Type.Object({ dutyFreeAmount: Type.Object({ unit: Type.String(), value: Type.Number() }) }),
      productOfferingPrice: Ref,
      /** The promotions the order gave this price (TMF622 priceAlteration), for `applicationDuration` cycles. */
      productPriceAlteration: Type.Optional(
        Type.Array(
          Type.Object({
            name: Type.String(),
            priceType: Type.String(),
            applicationDuration: Type.Integer(),
            price: Type.Object({
              percentage: Type.Optional(Type.Number()),
              dutyFreeAmount: Type.Optional(Type.Object({ unit: Type.String(), value: Type.Number() })),
            }),
            productOfferingPrice: Ref,
          }),
        ),
      ),
    }),
  ),
  productTerm: Type.Array(
    Type.Object({
      name: Type.String(),
      duration: Type.Object({ amount: Type.Integer(), units: Type.String() }),
      validFor: Type.Object({ endDateTime: Type.String() }),
    }),
  ),
  productRelationship: Type.Array(Type.Object({ relationshipType: Type.String(), product: Ref })),
  statusHistory: Type.Array(
    Type.Object({
      status: Type.String(),
      at: Type.String(),
      reason: Type.String(),
      /** Why the product is suspended from this change on (customerRequest, dunning, nonRenewal, fraud). */
      suspensionReason: Type.Optional(Type.String()),
      orderId: Type.Optional(Type.String()),
    }),
  ),
  orderId: Type.String(),
});

const FILTERS: FilterSpecs = {
  status: { values: Object.keys(PRODUCT_LIFECYCLE) },
  name: {},
  "billingAccount.id": {},
  "productOffering.id": {},
  // Older spellings, kept for clients that use them.
  billingAccountId: { isId: true, aliasOf: "billingAccount.id" },
  offeringId: { aliasOf: "productOffering.id" },
  // The line's number is a characteristic, not an attribute; agents look lines up by it.
  msisdn: { extension: true },
};

/** TMF637 products: lines and add-ons; PATCH of `status` suspends and resumes a line. */
export function subscriptionsRoutes(subscriptions: SubscriptionsService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    registerReadRoutes(app, {
      path: PRODUCT_PATH,
      name: "product",
      tag: "products (TMF637)",
      resource: ProductSchema,
      filters: FILTERS,
      roles: [...STAFF, "subscriber"],
      list: (actor, request) => subscriptions.list(actor, request),
      get: (actor, id) => subscriptions.get(actor, id),
    });
    app.patch(
      `${PRODUCT_PATH}/:id`,
      {
        config: { roles: ["admin", "crm"] },
        schema: {
          tags: ["products (TMF637)"],
          summary: "Suspend (status: suspended) or resume (status: active) a line, on the network first",
          params: IdParamsSchema,
          body: Type.Object({ status: Type.Enum(["suspended", "active"]) }),
          response: { 200: ProductSchema, ...errorResponses(404, 409, 413, 415) },
        },
      },
      async (request) => {
        const { id } = request.params;
        return subscriptions.changeStatus(actorOf(request), id, request.body.status);
      },
    );
  };
}
