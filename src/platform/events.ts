import { newId } from "../shared/ids.js";
import { redactSecrets } from "../shared/redact.js";
import type { Clock } from "./clock.js";
import type { Db } from "./database.js";
import { insertDeferred } from "./deferred-inserts.js";
import { outboxEvents } from "./outbox.tables.js";

/** The TMF APIs whose events hubs can subscribe to, by the path segment of their base URL. */
export const EVENT_APIS = {
  party: "/tmf-api/party/v4",
  customerManagement: "/tmf-api/customerManagement/v4",
  accountManagement: "/tmf-api/accountManagement/v4",
  productCatalogManagement: "/tmf-api/productCatalogManagement/v4",
  resourceInventoryManagement: "/tmf-api/resourceInventoryManagement/v4",
  productInventory: "/tmf-api/productInventory/v4",
  productOrderingManagement: "/tmf-api/productOrderingManagement/v4",
  /** Subscriber alerts (AlertCreateEvent): threshold crossings and barring, as TMF654 balance notifications. */
  prepayBalanceManagement: "/tmf-api/prepayBalanceManagement/v4",
  /** Bills (TMF678): customerBill created and state changes, customerBillOnDemand created. */
  customerBillManagement: "/tmf-api/customerBillManagement/v4",
  /** Payments and refunds (TMF676): created, reversed, paid out. */
  paymentManagement: "/tmf-api/paymentManagement/v4",
} as const;
export type EventApi = keyof typeof EVENT_APIS;

export type ChangeKind = "Create" | "AttributeValueChange" | "StateChange" | "Delete";

export interface DomainEvent {
  api: EventApi;
  /** The TMF resource name as it appears in the event body ("billingAccount"). */
  resource: string;
  change: ChangeKind;
  resourceId: string;
  /** The resource as the API presents it (never secrets). */
  body: unknown;
}

/** `BillingAccountStateChangeEvent` from resource "billingAccount" and change "StateChange". */
export function eventTypeOf(resource: string, change: ChangeKind): string {
  return `${resource.charAt(0).toUpperCase()}${resource.slice(1)}${change}Event`;
}

/** Writes TMF event envelopes to the outbox with the caller's transaction (API.md "Events"). */
export class EventLog {
  constructor(private readonly clock: Clock) {}

  async record(tx: Db, event: DomainEvent): Promise<void> {
    const now = this.clock.now();
    const eventId = newId(now.getTime());
    const eventType = eventTypeOf(event.resource, event.change);
    const payload = {
      eventId,
      eventTime: now.toISOString(),
      eventType,
      event: { [event.resource]: redactSecrets(event.body) },
    };
    await insertDeferred(tx, outboxEvents, {
      eventId,
      eventType,
      api: event.api,
      resourceType: event.resource,
      resourceId: event.resourceId,
      eventTime: now,
      payload,
    });
  }
}
