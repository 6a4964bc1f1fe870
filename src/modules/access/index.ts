/**
 * access: API keys (issue, list, revoke, authenticate) and the admin view of the audit trail. Owns the
 * api_keys table. Never stores or returns a secret after issuing it, and never revokes the last admin key.
 */
import type { Database } from "../../platform/database.js";
import { accessRoutes } from "./access.routes.js";
import { type AccessDeps, AccessService } from "./access.service.js";

export function createAccessModule(deps: AccessDeps & { database: Database }) {
  const service = new AccessService(deps);
  return { service, routes: accessRoutes(service, deps.database, deps.audit) };
}
