import type { FastifyInstance } from "fastify";
import { type Role, STAFF } from "../../platform/auth.js";
import { registerResourceRoutes } from "../../platform/tmf-routes.js";
import {
  ACCOUNT_STATES,
  ACCOUNT_TYPES,
  BillingAccountPatchSchema,
  BillingAccountRequestSchema,
  BillingAccountSchema,
  CUSTOMER_STATUSES,
  CustomerCreateSchema,
  CustomerPatchSchema,
  CustomerSchema,
  INDIVIDUAL_STATUSES,
  IndividualCreateSchema,
  IndividualPatchSchema,
  IndividualSchema,
  ORGANIZATION_STATUSES,
  OrganizationCreateSchema,
  OrganizationPatchSchema,
  OrganizationSchema,
} from "./customers.schemas.js";
import {
  BILLING_ACCOUNT_PATH,
  CUSTOMER_PATH,
  type CustomerServices,
  INDIVIDUAL_PATH,
  ORGANIZATION_PATH,
} from "./customers.service.js";

const PARTY_WRITERS: readonly Role[] = ["admin", "crm"];

/** TMF632 party, TMF629 customer and TMF666 billing account routes. */
export function customersRoutes(services: CustomerServices) {
  return async function routes(app: FastifyInstance): Promise<void> {
    registerResourceRoutes(app, {
      path: INDIVIDUAL_PATH,
      name: "individual",
      tag: "party (TMF632)",
      resource: IndividualSchema,
      create: IndividualCreateSchema,
      patch: IndividualPatchSchema,
      filters: { status: { values: INDIVIDUAL_STATUSES }, givenName: {}, familyName: {}, nationality: {} },
      roles: { read: STAFF, write: PARTY_WRITERS },
      service: services.individuals,
      deletable: true,
    });
    registerResourceRoutes(app, {
      path: ORGANIZATION_PATH,
      name: "organization",
      tag: "party (TMF632)",
      resource: OrganizationSchema,
      create: OrganizationCreateSchema,
      patch: OrganizationPatchSchema,
      filters: { status: { values: ORGANIZATION_STATUSES }, tradingName: {}, organizationType: {} },
      roles: { read: STAFF, write: PARTY_WRITERS },
      service: services.organizations,
      deletable: true,
    });
    registerResourceRoutes(app, {
      path: CUSTOMER_PATH,
      name: "customer",
      tag: "customer (TMF629)",
      resource: CustomerSchema,
      create: CustomerCreateSchema,
      patch: CustomerPatchSchema,
      filters: { status: { values: CUSTOMER_STATUSES }, name: {} },
      roles: { read: STAFF, write: PARTY_WRITERS },
      service: services.customers,
      deletable: true,
    });
    registerResourceRoutes(app, {
      path: BILLING_ACCOUNT_PATH,
      name: "billingAccount",
      tag: "account (TMF666)",
      resource: BillingAccountSchema,
      create: BillingAccountRequestSchema,
      patch: BillingAccountPatchSchema,
      filters: {
        state: { values: ACCOUNT_STATES },
        accountType: { values: ACCOUNT_TYPES },
        currency: {},
        name: {},
        taxJurisdiction: {},
        "relatedParty.id": {},
        lastModified: { range: "date" },
      },
      // A subscriber key reads its own account; the service scopes it.
      roles: { read: [...STAFF, "subscriber"], write: STAFF },
      service: services.billingAccounts,
      deletable: false,
    });
  };
}
