/**
 * orders: TMF622 product orders — validation against the catalog and the account, fulfilment as steps with
 * compensation, cancellation. Owns product_orders and cancel_product_orders. Never leaves a number, a SIM or
 * a product half-taken: every failed or cancelled order undoes what it did.
 */
import { ordersRoutes } from "./orders.routes.js";
import { type OrdersDeps, OrdersService } from "./orders.service.js";

export function createOrdersModule(deps: OrdersDeps) {
  const service = new OrdersService(deps);
  return { service, routes: ordersRoutes(service) };
}
