import type { MessageChannel, OutgoingMessage } from "../../src/modules/notifications/message-channel.js";

/** A message channel for tests only: it keeps what it was asked to send and reports it sent. */
export class RecordingChannel implements MessageChannel {
  readonly sent: OutgoingMessage[] = [];
  async send(message: OutgoingMessage) {
    this.sent.push(message);
    return { status: "sent" as const, attempts: 1 };
  }
}
