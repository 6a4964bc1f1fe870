/**
 * notifications: hub subscriptions and signed, retried delivery of outbox events; customer messages (SMS,
 * e-mail) through the message channel; later, subscriber alerts over WebSocket. Owns hub_* tables, the outbox
 * cursor and customer_messages. Never delivers to a callback the callback policy refuses.
 */
import { type HubDeps, HubService } from "./hub.service.js";
import { type MessagesDeps, MessagesService } from "./messages.service.js";
import { notificationsRoutes } from "./notifications.routes.js";

export function createNotificationsModule(deps: HubDeps & MessagesDeps) {
  const hubs = new HubService(deps);
  const messages = new MessagesService(deps);
  return { hubs, messages, routes: notificationsRoutes(hubs, messages) };
}
