/**
 * inventory: SIM cards (ICCID, IMSI, sealed Ki/OPc/PIN/PUK) and numbers (E.164, categories) as TMF639
 * resources; imports, reservations with expiry, assignment, quarantine. Owns inventory_resources. Never
 * returns, logs or audits a SIM secret, and never hands one resource to two holders.
 */
import { inventoryRoutes } from "./inventory.routes.js";
import { type InventoryDeps, InventoryService } from "./inventory.service.js";

export function createInventoryModule(deps: InventoryDeps) {
  const service = new InventoryService(deps);
  return { service, routes: inventoryRoutes(service) };
}

// What other modules may use: the service and the types it speaks in.
export type { InventoryService } from "./inventory.service.js";
