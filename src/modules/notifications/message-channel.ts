import { MESSAGE_GATEWAY_ATTEMPTS, MESSAGE_GATEWAY_TIMEOUT_MS } from "../../shared/limits.js";

/** A message to a customer, as the channel sends it. */
export interface OutgoingMessage {
  id: string;
  channel: "sms" | "email";
  to: string;
  subject?: string;
  body: string;
}

export interface SendResult {
  status: "sent" | "failed" | "undelivered";
  attempts: number;
  error?: string;
}

/** Where customer messages go. The engine picks the HTTP gateway when a URL is configured. */
export interface MessageChannel {
  send(message: OutgoingMessage): Promise<SendResult>;
}

/** No gateway configured: the message is kept, marked undelivered, for agents to see and resend. */
export const undeliveredChannel: MessageChannel = {
  async send() {
    return { status: "undelivered", attempts: 0, error: "no message gateway is configured" };
  },
};

/**
 * An SMS/e-mail gateway over HTTP: one JSON POST per message with the message id as idempotency key, a
 * timeout per call, and bounded retries on 5xx or timeouts. A 4xx is the gateway refusing the message: not
 * retried.
 */
export function httpGatewayChannel(
  url: string,
  options: { timeoutMs?: number; pause?: (ms: number) => Promise<void> } = {},
): MessageChannel {
  const timeoutMs = options.timeoutMs ?? MESSAGE_GATEWAY_TIMEOUT_MS;
  const pause = options.pause ?? sleep;
  return {
    async send(message) {
      let error = "";
      for (let attempt = 1; attempt <= MESSAGE_GATEWAY_ATTEMPTS; attempt++) {
        try {
          const response = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": message.id },
            body: JSON.stringify(message),
            signal: AbortSignal.timeout(timeoutMs),
          });
          await response.body?.cancel();
          if (response.ok) return { status: "sent", attempts: attempt };
          error = `gateway answered ${response.status}`;
          if (response.status < 500) return { status: "failed", attempts: attempt, error };
        } catch (failure) {
          // Refused or timed out: worth another try.
          error =
            failure instanceof Error && failure.name === "TimeoutError" ? "gateway timed out" : "gateway unreachable";
        }
        if (attempt < MESSAGE_GATEWAY_ATTEMPTS) await pause(200 * 2 ** (attempt - 1));
      }
      return { status: "failed", attempts: MESSAGE_GATEWAY_ATTEMPTS, error };
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
