import {
  type LineOnNetwork,
  type NetworkOperation,
  type Provisioning,
  ProvisioningError,
} from "../../src/modules/provisioning/provisioning.js";

/** A network for tests only: records every call, fails the operations it is told to, can hold a call open. */
export class RecordingProvisioning implements Provisioning {
  readonly calls: Array<{ operation: NetworkOperation; line: LineOnNetwork }> = [];
  readonly failing = new Set<NetworkOperation>();
  #gate: { operation: NetworkOperation; reached: () => void; release: Promise<void> } | null = null;

  /** The next call of `operation` waits until the returned function is called; `reached` resolves when it waits. */
  hold(operation: NetworkOperation): { reached: Promise<void>; release: () => void } {
    let release = () => {};
    let reached = () => {};
    const reachedPromise = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const releasePromise = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#gate = { operation, reached, release: releasePromise };
    return { reached: reachedPromise, release };
  }

  async apply(operation: NetworkOperation, line: LineOnNetwork): Promise<void> {
    this.calls.push({ operation, line });
    const gate = this.#gate;
    if (gate && gate.operation === operation) {
      this.#gate = null;
      gate.reached();
      await gate.release;
    }
    if (this.failing.has(operation)) throw new ProvisioningError(`${operation} failed: the test network refused`);
  }
}
