import { type Static, Type } from "typebox";
import { multilineText } from "../../platform/tmf-schemas.js";
import { ORDER_ITEMS_MAX } from "../../shared/limits.js";

const RefIn = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const Characteristic = Type.Object({ name: Type.String({ maxLength: 50 }), value: Type.String({ maxLength: 50 }) });

/** TMF622 create: the attributes read; others a standard client sends are ignored. */
export const ProductOrderCreateSchema = Type.Object({
  // Optional in TMF622: an order without one is stored, and rejected with the reason.
  billingAccount: Type.Optional(RefIn),
  description: Type.Optional(multilineText(500, 0)),
  productOrderItem: Type.Array(
    Type.Object({
      id: Type.String({ minLength: 1, maxLength: 50 }),
      action: Type.String({ minLength: 1, maxLength: 20 }),
      productOffering: Type.Optional(RefIn),
      product: Type.Optional(
        Type.Object({
          id: Type.Optional(Type.String({ maxLength: 100 })),
          productCharacteristic: Type.Optional(Type.Array(Characteristic, { maxItems: 10 })),
          // TMF622 ProductRelationship: an add-on names the line it is added to as `reliesOn` an owned product.
          productRelationship: Type.Optional(
            Type.Array(
              Type.Object({
                relationshipType: Type.String({ maxLength: 50 }),
                // ProductRefOrValue: a product by value has no id; the order is then rejected with the reason.
                product: Type.Object({ id: Type.Optional(Type.String({ maxLength: 100 })) }),
              }),
              { maxItems: 5 },
            ),
          ),
        }),
      ),
      // A promotion for the item: the TMF620 price of the promotion, named in a price alteration.
      itemPrice: Type.Optional(
        Type.Array(
          Type.Object({
            priceAlteration: Type.Optional(
              Type.Array(Type.Object({ productOfferingPrice: Type.Optional(RefIn) }), { maxItems: 5 }),
            ),
          }),
          { maxItems: 5 },
        ),
      ),
      productOrderItemRelationship: Type.Optional(
        Type.Array(
          Type.Object({ id: Type.String({ maxLength: 50 }), relationshipType: Type.String({ maxLength: 50 }) }),
          {
            maxItems: 5,
          },
        ),
      ),
    }),
    { minItems: 1, maxItems: ORDER_ITEMS_MAX },
  ),
});
export type ProductOrderCreate = Static<typeof ProductOrderCreateSchema>;

const Ref = Type.Object({
  id: Type.String(),
  href: Type.String(),
  name: Type.Optional(Type.String()),
  "@referredType": Type.String(),
});

export const ProductOrderSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("ProductOrder"),
  state: Type.String(),
  orderDate: Type.String(),
  completionDate: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  billingAccount: Type.Optional(Ref),
  relatedParty: Type.Array(Type.Object({ ...Ref.properties, role: Type.String() })),
  productOrderItem: Type.Array(
    Type.Object({
      id: Type.String(),
      action: Type.String(),
      state: Type.String(),
      productOffering: Type.Optional(Type.Object({ ...Ref.properties, version: Type.Optional(Type.String()) })),
      product: Type.Optional(
        Type.Object({
          id: Type.Optional(Type.String()),
          href: Type.Optional(Type.String()),
          productCharacteristic: Type.Array(Type.Object({ name: Type.String(), value: Type.String() })),
          productRelationship: Type.Optional(
            Type.Array(Type.Object({ relationshipType: Type.String(), product: Type.Object(Ref.properties) })),
          ),
        }),
      ),
      productOrderItemRelationship: Type.Array(Type.Object({ id: Type.String(), relationshipType: Type.String() })),
    }),
  ),
  rejectionReason: Type.Array(
    Type.Object({ code: Type.String(), reason: Type.String(), orderItemId: Type.Optional(Type.String()) }),
  ),
  failureReason: Type.Optional(Type.String()),
  cancellationReason: Type.Optional(Type.String()),
});
export type ProductOrder = Static<typeof ProductOrderSchema>;

export const CancelProductOrderCreateSchema = Type.Object({
  productOrder: RefIn,
  cancellationReason: Type.Optional(multilineText(500, 0)),
});

export const CancelProductOrderSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  "@type": Type.Literal("CancelProductOrder"),
  state: Type.String(),
  creationDate: Type.String({ format: "date-time" }),
  cancellationReason: Type.Optional(Type.String()),
  effectiveCancellationDate: Type.Optional(Type.String()),
  productOrder: Ref,
});
