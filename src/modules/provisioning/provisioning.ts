import { PROVISIONING_ATTEMPTS, PROVISIONING_TIMEOUT_MS } from "../../shared/limits.js";

/**
 * The adapter to the network (HSS/UDM/PCRF): the operations a line goes through. Implementations: HTTP (the
 * default when a network URL is configured), a simulated network (no URL; it can be told to fail), and a
 * recording one in the tests.
 */
export const NETWORK_OPERATIONS = ["activate", "suspend", "resume", "bar", "unbar", "terminate"] as const;
export type NetworkOperation = (typeof NETWORK_OPERATIONS)[number];

export interface LineOnNetwork {
  productId: string;
  msisdn: string;
  iccid: string;
  imsi: string;
  /**
   * Names this change for the network's deduplication. Retries of one change reuse it; a later change of the
   * same kind (a second suspend after a resume) gets a new one. Defaults to product and operation, which is
   * right for the once-only operations (activate, terminate).
   */
  changeId?: string;
}

export class ProvisioningError extends Error {
  override name = "ProvisioningError";
}

export interface Provisioning {
  /** Resolves when the network confirmed; rejects with a ProvisioningError after its retries. */
  apply(operation: NetworkOperation, line: LineOnNetwork): Promise<void>;
}

/**
 * POSTs `{operation, line, requestId}` to `<url>/<operation>`; 2xx confirms, 5xx and timeouts are retried, 4xx
 * is the network refusing. The request id lets the network deduplicate retries.
 */
export function httpProvisioning(
  url: string,
  options: { timeoutMs?: number; pause?: (ms: number) => Promise<void> } = {},
): Provisioning {
  const timeoutMs = options.timeoutMs ?? PROVISIONING_TIMEOUT_MS;
  const pause = options.pause ?? ((ms: number) => new Promise((resolve) => setTimeout(resolve, ms)));
  return {
    async apply(operation, line) {
      const requestId = line.changeId ?? `${line.productId}:${operation}`;
      let last = "";
      for (let attempt = 1; attempt <= PROVISIONING_ATTEMPTS; attempt++) {
        try {
          const response = await fetch(`${url.replace(/\/$/, "")}/${operation}`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": requestId },
            body: JSON.stringify({ operation, line, requestId }),
            signal: AbortSignal.timeout(timeoutMs),
          });
          await response.body?.cancel();
          if (response.ok) return;
          last = `network answered ${response.status}`;
          if (response.status < 500) break;
        } catch (error) {
          // Refused or timed out: worth another try.
          last = error instanceof Error && error.name === "TimeoutError" ? "network timed out" : "network unreachable";
        }
        if (attempt < PROVISIONING_ATTEMPTS) await pause(200 * 2 ** (attempt - 1));
      }
      throw new ProvisioningError(`${operation} failed: ${last}`);
    },
  };
}

/**
 * The simulated network used when no network URL is configured: it confirms every operation at once and keeps
 * each line's state, unless told to fail the next N calls of an operation (POST /api/v1/network-simulator/failures)
 * — for demonstrations of compensation and for trying the engine without a real network.
 */
export class SimulatedNetwork implements Provisioning {
  readonly lines = new Map<string, { state: string; msisdn: string }>();
  readonly #failures = new Map<NetworkOperation, number>();

  failNext(operation: NetworkOperation, count: number): void {
    this.#failures.set(operation, count);
  }

  pendingFailures(): Record<string, number> {
    return Object.fromEntries(this.#failures);
  }

  async apply(operation: NetworkOperation, line: LineOnNetwork): Promise<void> {
    const failures = this.#failures.get(operation) ?? 0;
    if (failures > 0) {
      this.#failures.set(operation, failures - 1);
      throw new ProvisioningError(`${operation} failed: the simulated network was told to fail`);
    }
    const states: Record<NetworkOperation, string> = {
      activate: "active",
      suspend: "suspended",
      resume: "active",
      bar: "barred",
      unbar: "active",
      terminate: "terminated",
    };
    this.lines.set(line.productId, { state: states[operation], msisdn: line.msisdn });
  }
}
