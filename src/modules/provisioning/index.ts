/**
 * provisioning: the adapter to the network (HSS/UDM/PCRF): activate, suspend, resume, bar, unbar, terminate,
 * over HTTP to BSS_NETWORK_URL or against the simulated network. Owns no tables; never decides a line's state
 * (subscriptions does, after the network confirms).
 */

export type { LineOnNetwork, NetworkOperation, Provisioning } from "./provisioning.js";
export { httpProvisioning, ProvisioningError, SimulatedNetwork } from "./provisioning.js";
