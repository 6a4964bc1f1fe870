import { lookup as lookupCallback } from "node:dns";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent } from "undici";
import { AppError } from "./errors.js";

/**
 * Hub callbacks must not turn the engine against the operator's own network (API.md): a callback may reach
 * only globally routable addresses unless the operator allowed that host, address or range
 * (BSS_CALLBACK_ALLOW). Checked when subscribing and again at every connection a delivery makes, since DNS
 * answers change. Addresses are judged by their real range after normalisation (ipaddr.js, the parser behind
 * Fastify's proxy-addr), never by how they are spelled: an IPv6 address that carries an IPv4 one (mapped,
 * translated, NAT64, 6to4, Teredo) is judged by the IPv4 address it reaches.
 */
type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** IANA's global unicast space: every other IPv6 block (IPv4-compatible, site-local, ...) is not global. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");
/** Ranges whose last 32 bits are the IPv4 address reached: mapped, translated (RFC 6145), NAT64 (RFC 6052). */
const EMBEDS_IPV4_AT_END = new Set(["ipv4Mapped", "rfc6145", "rfc6052"]);

const ipv4Of = (high: number, low: number) =>
  new ipaddr.IPv4([(high >> 8) & 0xff, high & 0xff, (low >> 8) & 0xff, low & 0xff]);

/**
 * The addresses a connection to `address` really reaches, for the policy to judge each; null for an address
 * that is not global whatever it carries. IPv6 is first rewritten by Node's own parser, the one the connection
 * uses (ipaddr.js reads `::127.0.0.1` as mapped; Node, rightly, as the IPv4-compatible `::7f00:1`).
 */
export function reachedAddresses(address: string): Address[] | null {
  let parsed: Address;
  try {
    const canonical = isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
    parsed = ipaddr.parse(canonical);
  } catch {
    return null;
  }
  if (parsed.kind() === "ipv4") return [parsed];
  const v6 = parsed as ipaddr.IPv6;
  const range = v6.range();
  const parts = v6.parts;
  if (EMBEDS_IPV4_AT_END.has(range)) return [v6, ipv4Of(parts[6] ?? 0, parts[7] ?? 0)];
  // 6to4 carries the IPv4 address in bits 16-47; Teredo the server's in 32-63 and the client's, inverted, at the end.
  if (range === "6to4") return [v6, ipv4Of(parts[1] ?? 0, parts[2] ?? 0)];
  if (range === "teredo") return [v6, ipv4Of(parts[2] ?? 0, parts[3] ?? 0), ipv4Of(~(parts[6] ?? 0), ~(parts[7] ?? 0))];
  if (!v6.match(GLOBAL_UNICAST_V6)) return null;
  return [v6];
}

/** A globally routable address: IPv4 or IPv6 unicast outside every special-purpose range. */
function isGlobal(address: Address): boolean {
  if (address.kind() === "ipv6") {
    const range = address.range();
    return range === "unicast" || range === "6to4" || range === "teredo" || EMBEDS_IPV4_AT_END.has(range);
  }
  return address.range() === "unicast";
}

export class CallbackPolicy {
  readonly #allowedHosts = new Set<string>();
  readonly #allowedRanges: Array<[Address, number]> = [];
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
      if (!ipaddr.isValid(address ?? "")) {
        this.#allowedHosts.add(entry.toLowerCase());
        continue;
      }
      const parsed = ipaddr.parse(address as string);
      this.#allowedRanges.push([parsed, prefix === undefined ? (parsed.kind() === "ipv4" ? 32 : 128) : Number(prefix)]);
    }
  }

  private allowed(address: Address): boolean {
    return this.#allowedRanges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
  }

  /**
   * Whether a connection to `address` is refused: some address it reaches is not global and not allowed (an
   * operator's allowance of the IPv6 form or of the IPv4 address it carries both count).
   */
  private internal(address: string): boolean {
    const reached = reachedAddresses(address);
    if (reached === null) {
      try {
        return !this.allowed(ipaddr.parse(address));
      } catch {
        return true;
      }
    }
    if (reached.some((one) => this.allowed(one))) return false;
    return !reached.every(isGlobal);
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
