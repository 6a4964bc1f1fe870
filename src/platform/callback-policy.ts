import { lookup as lookupCallback } from "node:dns";
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { Agent } from "undici";
import { AppError } from "./errors.js";

/**
 * Hub callbacks must not turn the engine against the operator's own network (API.md): a callback may not
 * reach a private, loopback, link-local or otherwise internal address unless the operator allowed that host,
 * address or range (BSS_CALLBACK_ALLOW). Checked when subscribing and again before every delivery, since DNS
 * answers change.
 */
const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv6");
}

export class CallbackPolicy {
  readonly #allowedHosts = new Set<string>();
  readonly #allowedAddresses = new BlockList();
  #agent: Agent | null = null;

  /**
   * The HTTP dispatcher deliveries go through: it resolves the callback's host itself and refuses to connect
   * to an internal address, so a DNS answer that changes between the check and the connection (rebinding)
   * cannot steer a delivery into the operator's network.
   */
  get dispatcher(): Agent {
    this.#agent ??= new Agent({
      connect: {
        lookup: (hostname, options, callback) => {
          lookupCallback(hostname, { ...options, all: true }, (error, addresses) => {
            if (error) return callback(error, "", 4);
            const blocked = this.#allowedHosts.has(hostname.toLowerCase())
              ? undefined
              : addresses.find((entry) => this.internal(entry.address));
            if (blocked !== undefined) {
              return callback(new Error(`${hostname} resolved to ${blocked.address}, an internal address`), "", 4);
            }
            const first = addresses[0];
            if (first === undefined) return callback(new Error(`${hostname} did not resolve`), "", 4);
            if ((options as { all?: boolean }).all)
              return (callback as unknown as (e: null, a: typeof addresses) => void)(null, addresses);
            return callback(null, first.address, first.family);
          });
        },
      },
    });
    return this.#agent;
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }

  constructor(allow: readonly string[]) {
    for (const entry of allow) {
      const [address, prefix] = entry.split("/");
      const family = isIP(address ?? "");
      if (family === 0) this.#allowedHosts.add(entry.toLowerCase());
      else if (prefix === undefined)
        this.#allowedAddresses.addAddress(address as string, family === 6 ? "ipv6" : "ipv4");
      else this.#allowedAddresses.addSubnet(address as string, Number(prefix), family === 6 ? "ipv6" : "ipv4");
    }
  }

  private internal(address: string): boolean {
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    if (mapped !== undefined) return this.internal(mapped);
    return INTERNAL.check(address, family) && !this.#allowedAddresses.check(address, family);
  }

  /** Throws a 400 naming why the callback is refused; resolves the host to check every address it has. */
  async check(callback: string): Promise<URL> {
    let url: URL;
    try {
      url = new URL(callback);
    } catch {
      // new URL throws TypeError on anything that is not a URL.
      throw new AppError("bad_request", "invalid_callback", "callback: is not a URL", "callback");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new AppError("bad_request", "invalid_callback", "callback: must be http or https", "callback");
    }
    if (url.username !== "" || url.password !== "") {
      throw new AppError("bad_request", "invalid_callback", "callback: must not carry credentials", "callback");
    }
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    if (this.#allowedHosts.has(host)) return url;
    let addresses: string[];
    if (isIP(host) !== 0) addresses = [host];
    else {
      try {
        addresses = (await lookup(host, { all: true })).map((entry) => entry.address);
      } catch {
        // NXDOMAIN or no resolver: a callback that cannot be resolved cannot be delivered to.
        throw new AppError("bad_request", "invalid_callback", `callback: host ${host} does not resolve`, "callback");
      }
    }
    const blocked = addresses.find((address) => this.internal(address));
    if (blocked !== undefined) {
      throw new AppError(
        "bad_request",
        "forbidden_callback",
        `callback: ${host} resolves to ${blocked}, an internal address; an operator can allow it with BSS_CALLBACK_ALLOW`,
        "callback",
      );
    }
    return url;
  }
}
