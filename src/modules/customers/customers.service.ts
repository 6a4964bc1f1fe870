import { and, asc, eq, inArray, ne, or } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import { afterCommit, type Db } from "../../platform/database.js";
import { AppError, invalidField } from "../../platform/errors.js";
import { mergePatcher } from "../../platform/merge-patch.js";
import { type ResourceModel, ResourceStore, type ServiceDeps } from "../../platform/resource-service.js";
import { type ListRequest, TMF_BASE } from "../../platform/tmf.js";
import { canonicalTimeZone, cycleAt, cyclePeriod, formatLocalDate, localDate } from "../../shared/calendar.js";
import { isCurrencyCode } from "../../shared/currency.js";
import { isId } from "../../shared/ids.js";
import { amountToJsonNumber, Money } from "../../shared/money.js";
import { withoutEmpty } from "../../shared/objects.js";
import * as repository from "./customers.repository.js";
import {
  ACCOUNT_LIFECYCLE,
  billCycleOf,
  CUSTOMER_LIFECYCLE,
  checkContactMedia,
  checkCountry,
  checkIdentifications,
  checkVatId,
  INDIVIDUAL_LIFECYCLE,
  ORGANIZATION_LIFECYCLE,
  parseLimit,
  planCycleChange,
  type StoredCycle,
} from "./customers.rules.js";
import {
  type BillingAccount,
  type BillingAccountCreate,
  BillingAccountCreateSchema,
  type Customer,
  type CustomerCreate,
  CustomerCreateSchema,
  type Individual,
  type IndividualCreate,
  IndividualCreateSchema,
  type Organization,
  type OrganizationCreate,
  OrganizationCreateSchema,
} from "./customers.schemas.js";
import {
  type BillingAccountRow,
  billingAccounts,
  billingAccounts as billingAccountTable,
  type CustomerRow,
  customers as customerTable,
  type IndividualRow,
  type OrganizationRow,
} from "./customers.tables.js";

export const INDIVIDUAL_PATH = `${TMF_BASE.party}/individual`;
export const ORGANIZATION_PATH = `${TMF_BASE.party}/organization`;
export const CUSTOMER_PATH = `${TMF_BASE.customer}/customer`;
export const BILLING_ACCOUNT_PATH = `${TMF_BASE.account}/billingAccount`;

type IndividualStatus = Individual["status"];
type OrganizationStatus = Organization["status"];
type CustomerStatus = Customer["status"];
type AccountState = BillingAccount["state"];

function unknownReference(field: string, entity: string, id: string): AppError {
  return new AppError("unprocessable", "unknown_reference", `${field}: ${entity} ${id} does not exist`, field);
}

// ---------------------------------------------------------------------------------------------------
// Individuals (TMF632)

function individualModel(
  deps: ServiceDeps,
): ResourceModel<
  IndividualRow,
  typeof import("./customers.tables.js").individuals.$inferInsert,
  Individual,
  IndividualCreate,
  IndividualStatus,
  "status"
> {
  const toInput = (row: IndividualRow): IndividualCreate => ({
    ...withoutEmpty({
      middleName: row.middleName,
      title: row.title,
      gender: row.gender,
      birthDate: row.birthDate,
      nationality: row.nationality,
    }),
    givenName: row.givenName,
    familyName: row.familyName,
    status: row.status as IndividualStatus,
    contactMedium: row.contactMedium,
    individualIdentification: row.identifications,
  });
  return {
    entity: "individual",
    api: "party",
    rows: repository.individualRows,
    lifecycle: INDIVIDUAL_LIFECYCLE,
    stateColumn: "status",
    defaultState: "initialized",
    startStates: ["initialized", "validated"],
    toInput,
    mergePatch: mergePatcher<IndividualCreate>(IndividualCreateSchema),
    async present(_db, rows) {
      return rows.map((row) => ({
        id: row.id,
        href: `${INDIVIDUAL_PATH}/${row.id}`,
        "@type": "Individual" as const,
        ...toInput(row),
        fullName: [row.givenName, row.middleName, row.familyName].filter(Boolean).join(" "),
        status: row.status as IndividualStatus,
        contactMedium: row.contactMedium,
        individualIdentification: row.identifications,
      }));
    },
    async validate(_db, input) {
      const today = deps.clock.now().toISOString().slice(0, 10);
      if (input.birthDate !== undefined && input.birthDate > today) {
        throw invalidField("birthDate", "must not be in the future");
      }
      checkCountry(input.nationality, "nationality");
      checkContactMedia(input.contactMedium, "contactMedium");
      checkIdentifications(input.individualIdentification, "individualIdentification");
    },
    columns: (input) => ({
      givenName: input.givenName,
      familyName: input.familyName,
      middleName: input.middleName ?? null,
      title: input.title ?? null,
      gender: input.gender ?? null,
      birthDate: input.birthDate ?? null,
      nationality: input.nationality ?? null,
      contactMedium: input.contactMedium ?? [],
      identifications: input.individualIdentification ?? [],
    }),
    async beforeRemove(db, row) {
      if ((await repository.countCustomersOfParty(db, { individualId: row.id })) > 0) {
        throw new AppError("conflict", "party_in_use", `individual ${row.id} is the engaged party of a customer`);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Organizations (TMF632)

function organizationModel(): ResourceModel<
  OrganizationRow,
  typeof import("./customers.tables.js").organizations.$inferInsert,
  Organization,
  OrganizationCreate,
  OrganizationStatus,
  "status"
> {
  const toInput = (row: OrganizationRow): OrganizationCreate => ({
    ...withoutEmpty({ name: row.name, isLegalEntity: row.isLegalEntity, organizationType: row.organizationType }),
    tradingName: row.tradingName,
    status: row.status as OrganizationStatus,
    contactMedium: row.contactMedium,
    organizationIdentification: row.identifications,
  });
  return {
    entity: "organization",
    api: "party",
    rows: repository.organizationRows,
    lifecycle: ORGANIZATION_LIFECYCLE,
    stateColumn: "status",
    defaultState: "initialized",
    startStates: ["initialized", "validated"],
    toInput,
    mergePatch: mergePatcher<OrganizationCreate>(OrganizationCreateSchema),
    async present(_db, rows) {
      return rows.map((row) => ({
        id: row.id,
        href: `${ORGANIZATION_PATH}/${row.id}`,
        "@type": "Organization" as const,
        ...toInput(row),
        status: row.status as OrganizationStatus,
        contactMedium: row.contactMedium,
        organizationIdentification: row.identifications,
      }));
    },
    async validate(_db, input) {
      checkContactMedia(input.contactMedium, "contactMedium");
      checkIdentifications(input.organizationIdentification, "organizationIdentification");
    },
    columns: (input) => ({
      tradingName: input.tradingName,
      name: input.name ?? null,
      isLegalEntity: input.isLegalEntity ?? null,
      organizationType: input.organizationType ?? null,
      contactMedium: input.contactMedium ?? [],
      identifications: input.organizationIdentification ?? [],
    }),
    async beforeRemove(db, row) {
      if ((await repository.countCustomersOfParty(db, { organizationId: row.id })) > 0) {
        throw new AppError("conflict", "party_in_use", `organization ${row.id} is the engaged party of a customer`);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Customers (TMF629)

const PARTY_TYPES = ["Individual", "Organization"] as const;

function customerModel(): ResourceModel<
  CustomerRow,
  typeof import("./customers.tables.js").customers.$inferInsert,
  Customer,
  CustomerCreate,
  CustomerStatus,
  "status"
> {
  const toInput = (row: CustomerRow): CustomerCreate => {
    const validFor = withoutEmpty({
      startDateTime: row.validFrom?.toISOString(),
      endDateTime: row.validTo?.toISOString(),
    });
    return {
      ...withoutEmpty({ statusReason: row.statusReason }),
      name: row.name,
      status: row.status as CustomerStatus,
      engagedParty: row.individualId
        ? { id: row.individualId, "@referredType": "Individual" }
        : { id: row.organizationId ?? "", "@referredType": "Organization" },
      contactMedium: row.contactMedium,
      ...(Object.keys(validFor).length > 0 ? { validFor } : {}),
    };
  };
  return {
    entity: "customer",
    api: "customerManagement",
    rows: repository.customerRows,
    lifecycle: CUSTOMER_LIFECYCLE,
    stateColumn: "status",
    defaultState: "approved",
    startStates: ["initialized", "approved"],
    toInput,
    mergePatch: mergePatcher<CustomerCreate>(CustomerCreateSchema),
    async present(db, rows) {
      const names = await repository.partyNames(
        db,
        rows.flatMap((row) => (row.individualId ? [row.individualId] : [])),
        rows.flatMap((row) => (row.organizationId ? [row.organizationId] : [])),
      );
      const accounts = await repository.accountsOfCustomers(
        db,
        rows.map((row) => row.id),
      );
      return rows.map((row) => {
        const input = toInput(row);
        const partyId = input.engagedParty.id;
        const partyType = input.engagedParty["@referredType"];
        const partyPath = partyType === "Individual" ? INDIVIDUAL_PATH : ORGANIZATION_PATH;
        return {
          id: row.id,
          href: `${CUSTOMER_PATH}/${row.id}`,
          "@type": "Customer" as const,
          ...input,
          status: row.status as CustomerStatus,
          engagedParty: {
            id: partyId,
            href: `${partyPath}/${partyId}`,
            ...withoutEmpty({ name: names.get(partyId) }),
            "@referredType": partyType,
          },
          contactMedium: row.contactMedium,
          account: accounts
            .filter((account) => account.customerId === row.id)
            .map((account) => ({
              id: account.id,
              href: `${BILLING_ACCOUNT_PATH}/${account.id}`,
              name: account.name,
              "@referredType": "BillingAccount",
            })),
        };
      });
    },
    async validate(db, input, current) {
      checkContactMedia(input.contactMedium, "contactMedium");
      const party = input.engagedParty;
      if (!(PARTY_TYPES as readonly string[]).includes(party["@referredType"])) {
        throw invalidField("engagedParty.@referredType", `must be one of ${PARTY_TYPES.join(", ")}`);
      }
      const start = input.validFor?.startDateTime;
      const end = input.validFor?.endDateTime;
      if (start !== undefined && end !== undefined && Date.parse(end) < Date.parse(start)) {
        throw invalidField("validFor.endDateTime", "must not be before startDateTime");
      }
      if (current !== null) {
        const before = toInput(current).engagedParty;
        if (before.id !== party.id || before["@referredType"] !== party["@referredType"]) {
          throw new AppError(
            "unprocessable",
            "immutable_field",
            "engagedParty: a customer's party cannot change",
            "engagedParty",
          );
        }
        return;
      }
      const rows = party["@referredType"] === "Individual" ? repository.individualRows : repository.organizationRows;
      const found = isId(party.id) ? await rows.find(db, party.id) : undefined;
      if (!found) throw unknownReference("engagedParty.id", party["@referredType"].toLowerCase(), party.id);
    },
    columns: (input) => ({
      name: input.name,
      statusReason: input.statusReason ?? null,
      individualId: input.engagedParty["@referredType"] === "Individual" ? input.engagedParty.id : null,
      organizationId: input.engagedParty["@referredType"] === "Organization" ? input.engagedParty.id : null,
      contactMedium: input.contactMedium ?? [],
      validFrom: input.validFor?.startDateTime ? new Date(input.validFor.startDateTime) : null,
      validTo: input.validFor?.endDateTime ? new Date(input.validFor.endDateTime) : null,
    }),
    async beforeTransition(db, row, to) {
      if (to === "closed" && (await repository.countOpenAccounts(db, row.id)) > 0) {
        throw new AppError(
          "conflict",
          "customer_has_open_accounts",
          `customer ${row.id} has billing accounts that are not closed; close them first`,
        );
      }
    },
    async beforeRemove(db, row) {
      if ((await repository.countAccounts(db, row.id)) > 0) {
        throw new AppError(
          "conflict",
          "customer_has_accounts",
          `customer ${row.id} has billing accounts; close it instead`,
        );
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Billing accounts (TMF666)

/** The owning customer among a billing account's related parties: exactly one, of type Customer. */
function owningCustomer(input: BillingAccountCreate): { id: string; index: number } {
  const owners = input.relatedParty
    .map((party, index) => ({ party, index }))
    .filter(({ party }) => party["@referredType"] === "Customer");
  const others = input.relatedParty.findIndex((party) => party["@referredType"] !== "Customer");
  if (others >= 0) {
    throw invalidField(`relatedParty[${others}].@referredType`, "only the owning Customer is supported");
  }
  if (owners.length !== 1) throw invalidField("relatedParty", "must name exactly one Customer, the account owner");
  const owner = owners[0] as { party: { id: string }; index: number };
  return { id: owner.party.id, index: owner.index };
}

function limitsOf(input: BillingAccountCreate): { creditLimit: Money | null; billLimit: Money | null } {
  return {
    creditLimit: parseLimit(input.creditLimit, input.currency, "creditLimit"),
    billLimit: parseLimit(input.billLimit, input.currency, "billLimit"),
  };
}

type AccountListener = (before: BillingAccountRow | null, after: BillingAccountRow) => void;
/**
 * What another module says against closing an account, or null: the modules that hang things on an account
 * (subscriptions' live lines, billing's receivables to come) register one; customers cannot see their tables.
 */
type CloseGuard = (db: Db, billingAccountId: string) => Promise<string | null>;
/** Work a close does in its transaction once no guard refused it (credit refunded). */
type CloseHandler = (tx: Db, billingAccountId: string) => Promise<void>;

/** The operator's defaults for what a billing account request may leave out. */
export interface AccountDefaults {
  currency: string;
  taxJurisdiction: string;
}

/** The customer of a party named as a billing account's related party: found, or made in the same transaction. */
type CustomerForParty = (
  tx: Db,
  actor: Actor,
  party: { id: string; "@referredType": string },
  field: string,
) => Promise<string>;

/** What the receivables ledger says an account owes (billing answers it), by account id; absent: nothing. */
export type BalanceReader = (db: Db, ids: readonly string[]) => Promise<ReadonlyMap<string, { amount: Money }>>;

function billingAccountModel(
  deps: ServiceDeps,
  listeners: AccountListener[],
  closeGuards: CloseGuard[],
  closeHandlers: CloseHandler[],
  balanceReaders: BalanceReader[],
  defaults: AccountDefaults,
  customerForParty: CustomerForParty,
): ResourceModel<
  BillingAccountRow,
  typeof import("./customers.tables.js").billingAccounts.$inferInsert,
  BillingAccount,
  BillingAccountCreate,
  AccountState,
  "state"
> {
  const money = (amount: Money | null, unit: string) =>
    amount === null ? undefined : { unit, value: amountToJsonNumber(amount) };
  /**
   * The cycle columns a create or a change of cycle day or zone stores, worked out by validate (it has the row, the
   * clock and the database) for columns() to write; keyed by the input object ResourceStore hands both.
   */
  const plannedCycles = new WeakMap<BillingAccountCreate, StoredCycle>();
  /** An account nothing hangs on (no module refuses its close: no line that has not ended) changes cycle at once. */
  const nothingHangsOn = async (db: Db, id: string) => {
    for (const guard of closeGuards) if ((await guard(db, id)) !== null) return false;
    return true;
  };
  // The merge base holds the stored cycle (a pending one while a change waits), so a patch that leaves the cycle
  // alone changes nothing; the resource shows the cycle in effect instead.
  const toInput = (row: BillingAccountRow): BillingAccountCreate => ({
    ...withoutEmpty({
      description: row.description,
      creditLimit: money(row.creditLimit, row.currency),
      billLimit: money(row.billLimit, row.currency),
      vatId: row.vatId,
    }),
    name: row.name,
    relatedParty: [{ id: row.customerId, role: "owner", "@referredType": "Customer" }],
    accountType: row.accountType as BillingAccount["accountType"],
    state: row.state as AccountState,
    currency: row.currency,
    billCycleDay: row.billCycleDay,
    paymentTermsDays: row.paymentTermsDays,
    timeZone: row.timeZone,
    taxJurisdiction: row.taxJurisdiction,
    contact: row.contacts,
  });
  /** A patch's cycle day and zone against the stored ones: the columns to store, or a refusal (409). */
  const planCycle = async (db: Db, input: BillingAccountCreate, current: BillingAccountRow) => {
    const requested = {
      billCycleDay: input.billCycleDay ?? current.billCycleDay,
      timeZone: canonicalTimeZone(input.timeZone ?? current.timeZone) ?? current.timeZone,
    };
    if (requested.billCycleDay === current.billCycleDay && requested.timeZone === current.timeZone) return;
    const plan = planCycleChange(current, requested, deps.clock.now().getTime(), await nothingHangsOn(db, current.id));
    if (plan === null) return;
    if ("refusal" in plan) {
      const field = requested.billCycleDay !== current.billCycleDay ? "billCycleDay" : "timeZone";
      throw new AppError("conflict", "bill_cycle_change_too_soon", `${field}: ${plan.refusal}`, field);
    }
    plannedCycles.set(input, plan.columns);
  };
  return {
    entity: "billingAccount",
    api: "accountManagement",
    afterWrite(db, before, after) {
      afterCommit(db, () => {
        for (const listener of listeners) listener(before, after);
      });
    },
    rows: repository.billingAccountRows,
    // The request (BillingAccountRequestSchema) may omit currency and tax jurisdiction and name the owner's party.
    async prepare(tx, actor, input) {
      const relatedParty: BillingAccountCreate["relatedParty"] = [];
      for (const [index, party] of input.relatedParty.entries()) {
        const isParty = (PARTY_TYPES as readonly string[]).includes(party["@referredType"]);
        relatedParty.push(
          isParty
            ? { id: await customerForParty(tx, actor, party, `relatedParty[${index}]`), "@referredType": "Customer" }
            : party,
        );
      }
      return {
        ...input,
        relatedParty,
        currency: input.currency ?? defaults.currency,
        taxJurisdiction: input.taxJurisdiction ?? defaults.taxJurisdiction,
      };
    },
    async beforeTransition(db, row, to) {
      if (to !== "closed") return;
      for (const guard of closeGuards) {
        const refusal = await guard(db, row.id);
        if (refusal !== null) {
          throw new AppError("conflict", "account_not_closable", `billing account ${row.id} cannot close: ${refusal}`);
        }
      }
      for (const handler of closeHandlers) await handler(db, row.id);
    },
    lifecycle: ACCOUNT_LIFECYCLE,
    stateColumn: "state",
    defaultState: "active",
    startStates: ["active"],
    toInput,
    mergePatch: mergePatcher<BillingAccountCreate>(BillingAccountCreateSchema),
    async present(db, rows) {
      const names = await repository.customerNames(
        db,
        rows.map((row) => row.customerId),
      );
      const nowMs = deps.clock.now().getTime();
      const dateIn = (ms: number, zone: string) => formatLocalDate(localDate(new Date(ms), zone));
      const balances = new Map<string, { amount: Money }>();
      for (const read of balanceReaders) {
        for (const [id, balance] of await read(
          db,
          rows.map((row) => row.id),
        ))
          balances.set(id, balance);
      }
      const asOf = new Date(nowMs).toISOString();
      return rows.map((row) => {
        const cycle = billCycleOf(row);
        const inEffect = cycleAt(nowMs, cycle);
        const pendingUntilMs =
          cycle.previous !== undefined && cycle.previous !== null && nowMs < cycle.previous.untilMs
            ? cycle.previous.untilMs
            : null;
        return {
          id: row.id,
          href: `${BILLING_ACCOUNT_PATH}/${row.id}`,
          "@type": "BillingAccount" as const,
          ...toInput(row),
          relatedParty: [
            {
              id: row.customerId,
              href: `${CUSTOMER_PATH}/${row.customerId}`,
              ...withoutEmpty({ name: names.get(row.customerId) }),
              role: "owner",
              "@referredType": "Customer",
            },
          ],
          accountType: row.accountType as BillingAccount["accountType"],
          state: row.state as AccountState,
          billCycleDay: inEffect.billCycleDay,
          paymentTermsDays: row.paymentTermsDays,
          timeZone: inEffect.timeZone,
          contact: row.contacts,
          ...(pendingUntilMs === null
            ? {}
            : {
                pendingBillCycle: {
                  billCycleDay: row.billCycleDay,
                  timeZone: row.timeZone,
                  effectiveDate: dateIn(pendingUntilMs, inEffect.timeZone),
                },
              }),
          nextBillDate: dateIn(cyclePeriod(nowMs, cycle).endMs, inEffect.timeZone),
          accountBalance: [
            {
              balanceType: "receivable",
              amount: money(balances.get(row.id)?.amount ?? new Money(0), row.currency) as {
                unit: string;
                value: number;
              },
              validFor: { startDateTime: asOf },
            },
          ],
          lastModified: row.updatedAt.toISOString(),
        };
      });
    },
    async validate(db, input, current) {
      const owner = owningCustomer(input);
      if (current !== null) {
        for (const [field, before, after] of [
          ["relatedParty", current.customerId, owner.id],
          ["currency", current.currency, input.currency],
          ["accountType", current.accountType, input.accountType ?? current.accountType],
        ] as const) {
          if (before !== after) {
            throw new AppError(
              "unprocessable",
              "immutable_field",
              `${field}: cannot change once the account exists`,
              field,
            );
          }
        }
      }
      if (!isCurrencyCode(input.currency)) throw invalidField("currency", "is not an ISO 4217 currency code");
      if (input.timeZone !== undefined && canonicalTimeZone(input.timeZone) === null) {
        throw invalidField("timeZone", "is not an IANA time zone such as Europe/Berlin");
      }
      checkCountry(input.taxJurisdiction.slice(0, 2), "taxJurisdiction");
      for (const [index, contact] of (input.contact ?? []).entries()) {
        checkContactMedia(contact.contactMedium, `contact[${index}].contactMedium`);
      }
      const limits = limitsOf(input);
      if (
        (input.accountType ?? "postpaid") === "prepaid" &&
        (limits.creditLimit !== null || limits.billLimit !== null)
      ) {
        throw new AppError(
          "unprocessable",
          "limit_not_applicable",
          "creditLimit and billLimit apply to postpaid accounts only",
          limits.creditLimit !== null ? "creditLimit" : "billLimit",
        );
      }
      if (limits.billLimit?.isZero()) throw invalidField("billLimit.value", "must be greater than zero");
      if (current !== null) {
        if (input.vatId !== undefined && input.vatId !== current.vatId) {
          const customer = await repository.customerRows.find(db, current.customerId);
          checkVatId(input.vatId, customer?.organizationId !== null && customer?.organizationId !== undefined);
        }
        await planCycle(db, input, current);
        return;
      }
      const field = `relatedParty[${owner.index}].id`;
      const customer = isId(owner.id) ? await repository.customerRows.find(db, owner.id) : undefined;
      if (!customer) throw unknownReference(field, "customer", owner.id);
      if (customer.status === "closed") {
        throw new AppError("unprocessable", "customer_closed", `${field}: customer ${owner.id} is closed`, field);
      }
      if (input.vatId !== undefined) checkVatId(input.vatId, customer.organizationId !== null);
      plannedCycles.set(input, {
        billCycleDay: input.billCycleDay ?? 1,
        timeZone: canonicalTimeZone(input.timeZone ?? "UTC") ?? "UTC",
        previousBillCycleDay: null,
        previousTimeZone: null,
        cycleChangedAt: null,
      });
    },
    columns: (input) => ({
      customerId: owningCustomer(input).id,
      name: input.name,
      description: input.description ?? null,
      accountType: input.accountType ?? "postpaid",
      currency: input.currency,
      paymentTermsDays: input.paymentTermsDays ?? 14,
      // The cycle columns validate decided: a new account's cycle, or a change planCycleChange allowed. A patch that
      // leaves the cycle alone has none, and the stored ones stay (a pending change is never written over).
      ...(plannedCycles.get(input) as StoredCycle),
      taxJurisdiction: input.taxJurisdiction,
      ...limitsOf(input),
      contacts: input.contact ?? [],
      vatId: input.vatId ?? null,
    }),
    scope: (actor: Actor) =>
      actor.role === "subscriber" ? eq(billingAccounts.id, actor.billingAccountId ?? "") : undefined,
    visible: (actor: Actor, row) => actor.role !== "subscriber" || actor.billingAccountId === row.id,
  };
}

/** The module's services. Other modules reach customers only through these. */
export function createCustomerServices(deps: ServiceDeps, defaults: AccountDefaults) {
  const accountListeners: AccountListener[] = [];
  const closeGuards: CloseGuard[] = [];
  const closeHandlers: CloseHandler[] = [];
  const balanceReaders: BalanceReader[] = [];
  const customers = new ResourceStore(customerModel(), deps);
  const customerForParty: CustomerForParty = async (tx, actor, party, field) => {
    const type = party["@referredType"] as "Individual" | "Organization";
    const rows = type === "Individual" ? repository.individualRows : repository.organizationRows;
    if (!isId(party.id) || (await rows.find(tx, party.id)) === undefined) {
      throw unknownReference(`${field}.id`, type.toLowerCase(), party.id);
    }
    const existing = await repository.customerOfParty(tx, party.id);
    if (existing !== undefined) return existing.id;
    const names = await repository.partyNames(
      tx,
      type === "Individual" ? [party.id] : [],
      type === "Organization" ? [party.id] : [],
    );
    const made = await customers.createIn(tx, actor, {
      name: names.get(party.id) ?? party.id,
      engagedParty: { id: party.id, "@referredType": type },
    } as CustomerCreate);
    return made.id;
  };
  /** A billing account and its customer, or undefined for an unknown account. */
  const accountWithCustomer = async (db: Db, id: string) => {
    const account = isId(id) ? await repository.billingAccountRows.find(db, id) : undefined;
    if (!account) return undefined;
    return { account, customer: await repository.customerRows.find(db, account.customerId) };
  };
  /** A customer's addresses on both channels, preferred first (two reads); undefined for an unknown customer. */
  const contactsOf = async (customerId: string): Promise<{ email: string[]; sms: string[] } | undefined> => {
    const db = deps.database.db;
    const customer = isId(customerId) ? await repository.customerRows.find(db, customerId) : undefined;
    if (!customer) return undefined;
    const party = customer.individualId
      ? await repository.individualRows.find(db, customer.individualId)
      : await repository.organizationRows.find(db, customer.organizationId ?? "");
    const media = [...customer.contactMedium, ...(party?.contactMedium ?? [])].sort(
      (a, b) => Number(b.preferred ?? false) - Number(a.preferred ?? false),
    );
    const of = (type: string) =>
      media
        .filter((medium) => medium.mediumType === type)
        .map((medium) => (type === "email" ? medium.characteristic.emailAddress : medium.characteristic.phoneNumber))
        .filter((address): address is string => address !== undefined);
    return { email: of("email"), sms: [...of("mobile"), ...of("phone")] };
  };
  const billingAccounts = new ResourceStore(
    billingAccountModel(deps, accountListeners, closeGuards, closeHandlers, balanceReaders, defaults, customerForParty),
    deps,
  );
  return {
    /** Asked before a billing account closes; a reason refuses the close (409 with it). */
    guardAccountClose(guard: CloseGuard): void {
      closeGuards.push(guard);
    },
    /** Called in a billing account's closing transaction once no guard refused it. */
    onAccountClosing(handler: CloseHandler): void {
      closeHandlers.push(handler);
    },
    /** Where accountBalance comes from (the receivables ledger, kept by billing). */
    readBalancesWith(reader: BalanceReader): void {
      balanceReaders.push(reader);
    },
    /** Called after a billing account is created or changed, once committed (charging re-checks its limits). */
    onBillingAccountChange(listener: AccountListener): void {
      accountListeners.push(listener);
    },
    individuals: new ResourceStore(individualModel(deps), deps),
    organizations: new ResourceStore(organizationModel(), deps),
    customers,
    billingAccounts,
    /**
     * A customer's addresses on a channel (its own contact media, then its party's; preferred first): e-mail
     * addresses, or mobile then phone numbers. `address` is the first, where messages go by default; `exists` is
     * false for an unknown customer.
     */
    async contactOf(
      customerId: string,
      channel: "sms" | "email",
    ): Promise<{ exists: boolean; address: string | null; addresses: string[] }> {
      const contacts = await contactsOf(customerId);
      if (contacts === undefined) return { exists: false, address: null, addresses: [] };
      const addresses = contacts[channel];
      return { exists: true, address: addresses[0] ?? null, addresses };
    },
    /** A customer's addresses on both channels, preferred first (two reads); undefined for an unknown customer. */
    contactsOf,
    /** What ordering needs to know of an account: its state, type, currency, owner and the owner's kind. */
    async accountForOrder(db: Db, id: string) {
      const found = await accountWithCustomer(db, id);
      if (!found) return undefined;
      const { account, customer } = found;
      return {
        id: account.id,
        state: account.state,
        accountType: account.accountType as "prepaid" | "postpaid",
        currency: account.currency,
        customerId: account.customerId,
        customerStatus: customer?.status ?? "closed",
        isOrganization: customer?.organizationId !== null && customer?.organizationId !== undefined,
      };
    },
    /**
     * What billing needs of an account: its type, currency, bill cycle (a change included), tax jurisdiction, payment
     * terms, VAT ID and whether its customer is an organization (a business).
     */
    async accountForBilling(db: Db, id: string) {
      return (await this.accountsForBilling(db, [id])).get(id);
    },
    /** `accountForBilling` for many accounts in two statements, by id; unknown ids are absent. */
    async accountsForBilling(db: Db, ids: readonly string[]) {
      const wanted = [...new Set(ids.filter(isId))];
      const accounts =
        wanted.length === 0
          ? []
          : await db.select().from(billingAccountTable).where(inArray(billingAccountTable.id, wanted));
      const owners = [...new Set(accounts.map((account) => account.customerId))];
      const organizations = new Set(
        owners.length === 0
          ? []
          : (
              await db
                .select({ id: customerTable.id, organizationId: customerTable.organizationId })
                .from(customerTable)
                .where(inArray(customerTable.id, owners))
            )
              .filter((customer) => customer.organizationId !== null)
              .map((customer) => customer.id),
      );
      return new Map(
        accounts.map((account) => [
          account.id,
          {
            id: account.id,
            customerId: account.customerId,
            accountType: account.accountType as "prepaid" | "postpaid",
            currency: account.currency,
            cycle: billCycleOf(account),
            taxJurisdiction: account.taxJurisdiction,
            paymentTermsDays: account.paymentTermsDays,
            vatId: account.vatId,
            isOrganization: organizations.has(account.customerId),
            state: account.state,
          },
        ]),
      );
    },
    /**
     * Postpaid accounts that are not closed and bill on `billCycleDay` (or did until a pending change of cycle), in
     * id order: the candidates of a bill run, whose periods the caller checks.
     */
    async postpaidOnCycleDay(db: Db, billCycleDay: number): Promise<string[]> {
      const rows = await db
        .select({ id: billingAccountTable.id })
        .from(billingAccountTable)
        .where(
          and(
            eq(billingAccountTable.accountType, "postpaid"),
            ne(billingAccountTable.state, "closed"),
            or(
              eq(billingAccountTable.billCycleDay, billCycleDay),
              eq(billingAccountTable.previousBillCycleDay, billCycleDay),
            ),
          ),
        )
        .orderBy(asc(billingAccountTable.id));
      return rows.map((row) => row.id);
    },
    /** What charging needs of an account: its type, currency, bill cycle, zone and limits. */
    async chargingProfile(db: Db, id: string) {
      return (await this.chargingProfiles(db, [id])).get(id);
    },
    /** Charging profiles of many accounts in one statement (a rating batch's), by id; unknown ids are absent. */
    async chargingProfiles(db: Db, ids: readonly string[]) {
      const wanted = [...new Set(ids.filter(isId))];
      const rows =
        wanted.length === 0
          ? []
          : await db.select().from(billingAccountTable).where(inArray(billingAccountTable.id, wanted));
      return new Map(
        rows.map((account) => [
          account.id,
          {
            id: account.id,
            customerId: account.customerId,
            state: account.state,
            accountType: account.accountType as "prepaid" | "postpaid",
            currency: account.currency,
            /** The stored (latest) cycle day and zone; periods come from `cycle`, which knows a change. */
            billCycleDay: account.billCycleDay,
            timeZone: account.timeZone,
            /** The account's bill cycle: every bill period, spend period and allowance period comes from it. */
            cycle: billCycleOf(account),
            creditLimit: account.creditLimit,
            billLimit: account.billLimit,
          },
        ]),
      );
    },
    /**
     * A page of billing account ids in creation order, with the total (a list of per-account views such as the
     * accumulated balance pages over the accounts); `request.filters.id` narrows it.
     */
    async accountIds(db: Db, request: ListRequest): Promise<{ ids: string[]; total: number }> {
      const { rows, total } = await repository.billingAccountRows.list(db, request);
      return { ids: rows.map((row) => row.id), total };
    },
    /** Whether a billing account exists (for binding subscriber keys and, later, orders). */
    async billingAccountExists(db: Db, id: string): Promise<boolean> {
      return isId(id) && (await repository.billingAccountRows.find(db, id)) !== undefined;
    },
  };
}

export type CustomerServices = ReturnType<typeof createCustomerServices>;
