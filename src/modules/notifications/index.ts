/**
 * notifications: hub subscriptions and signed, retried delivery of outbox events; customer messages (SMS,
 * e-mail) through the message channel; subscriber alerts (stored once, published to every API process's
 * WebSocket hub, sent as messages). Owns hub_* tables, the outbox cursor, customer_messages, alerts and
 * ws_tickets. Never delivers to a callback the callback policy refuses.
 */

import { alertsRoutes } from "./alerts.routes.js";
import { type AlertsDeps, AlertsService } from "./alerts.service.js";
import { type HubDeps, HubService } from "./hub.service.js";
import { type LiveDeps, LiveHub } from "./live.js";
import { type MessagesDeps, MessagesService } from "./messages.service.js";
import { notificationsRoutes } from "./notifications.routes.js";

export function createNotificationsModule(
  deps: HubDeps & MessagesDeps & Omit<AlertsDeps, "messages"> & Omit<LiveDeps, "alerts">,
) {
  const hubs = new HubService(deps);
  const messages = new MessagesService(deps);
  const alerts = new AlertsService({ ...deps, messages });
  const live = new LiveHub({ ...deps, alerts });
  return {
    hubs,
    messages,
    alerts,
    live,
    routes: async (app: import("fastify").FastifyInstance) => {
      await app.register(notificationsRoutes(hubs, messages));
      await app.register(alertsRoutes(alerts, live));
    },
  };
}

// What other modules may use: the service and the types it speaks in.
export type { MessagesService } from "./messages.service.js";
