import type { FastifyInstance, FastifyRequest, RouteOptions } from "fastify";
import { API_KEY_MAX_LENGTH } from "../shared/limits.js";
import type { Actor } from "./audit.js";
import { AppError } from "./errors.js";
import { callerRequestIdOf } from "./logger.js";

export const ROLES = ["admin", "crm", "network", "finance", "subscriber"] as const;
export type Role = (typeof ROLES)[number];

/** Staff roles that read and change customer data. */
export const STAFF: readonly Role[] = ["admin", "crm", "finance"];

/** The caller behind a request's API key. A subscriber key is bound to exactly one billing account. */
export interface Principal {
  readonly keyId: string;
  readonly role: Role;
  readonly billingAccountId: string | null;
  /** Network keys: the CDR sources the key may send records for ("*": any); null for other roles. */
  readonly cdrSources: readonly string[] | null;
}

export type Authenticate = (presentedKey: string) => Promise<Principal | null>;

declare module "fastify" {
  interface FastifyContextConfig {
    /** Roles that may call the route. Every route declares them, or declares itself public. */
    roles?: readonly Role[];
    /** Liveness, readiness and documentation answer without a key. */
    public?: boolean;
    /** A POST that changes nothing (a price quote): it writes no audit row, and the route test checks that. */
    readOnly?: boolean;
    /** A write of per-CDR rows, which are exempt from the audit log (DESIGN.md §4, step 8); the route test lists them. */
    auditExempt?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Routes registered by plugins we do not own (the OpenAPI UI) are public by prefix, listed here. */
const PUBLIC_PREFIXES = ["/docs"];

export function isPublicPrefix(url: string): boolean {
  return PUBLIC_PREFIXES.some((prefix) => url === prefix || url.startsWith(`${prefix}/`));
}

/**
 * Declares the authentication rules: a route without roles (or an explicit public flag) fails at
 * registration, so the app cannot start with an unguarded route; every request to a guarded route
 * must carry a valid key whose role the route lists.
 */
export function registerAuth(app: FastifyInstance, authenticate: Authenticate): void {
  app.decorateRequest("principal", null);

  app.addHook("onRoute", (route: RouteOptions) => {
    const config = route.config as { roles?: readonly Role[]; public?: boolean } | undefined;
    if (isPublicPrefix(route.url)) return;
    const hasRoles = Array.isArray(config?.roles) && config.roles.length > 0;
    if (!hasRoles && config?.public !== true) {
      throw new Error(`route ${String(route.method)} ${route.url} declares no roles`);
    }
    for (const role of config?.roles ?? []) {
      if (!(ROLES as readonly string[]).includes(role)) {
        throw new Error(`route ${String(route.method)} ${route.url} names unknown role ${role}`);
      }
    }
  });

  app.addHook("onRequest", async (request) => {
    const roles = request.routeOptions.config.roles;
    if (roles === undefined) return;
    const presented = bearerToken(request);
    const principal = await authenticate(presented);
    if (principal === null) {
      throw new AppError("unauthorized", "invalid_api_key", "the API key is unknown, expired or revoked");
    }
    if (!roles.includes(principal.role)) {
      throw new AppError(
        "forbidden",
        "role_not_allowed",
        `role ${principal.role} may not call ${request.method} ${request.routeOptions.url ?? ""}`,
      );
    }
    request.principal = principal;
  });
}

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (header === undefined) {
    throw new AppError("unauthorized", "missing_api_key", "send the API key as 'Authorization: Bearer <key>'");
  }
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
  if (!match || (match[1] ?? "").length > API_KEY_MAX_LENGTH) {
    throw new AppError("unauthorized", "invalid_api_key", "the Authorization header must be 'Bearer <key>'");
  }
  return match[1] ?? "";
}

/** The actor of a request, for services and the audit trail. Routes behind auth always have one. */
/** Whether the caller may see a billing account's records: staff any, a subscriber only its own. */
export function mayReadAccount(actor: Actor, billingAccountId: string): boolean {
  return actor.role !== "subscriber" || actor.billingAccountId === billingAccountId;
}

export function actorOf(request: FastifyRequest): Actor {
  const principal = request.principal;
  const callerRequestId = callerRequestIdOf(request.headers);
  if (principal === null)
    return { keyId: null, role: "anonymous", requestId: request.id, callerRequestId, billingAccountId: null };
  return {
    keyId: principal.keyId,
    role: principal.role,
    requestId: request.id,
    callerRequestId,
    billingAccountId: principal.role === "subscriber" ? principal.billingAccountId : null,
  };
}
