// Which peers the TURN server relays to. Every account gets TURN credentials (METADATA), so an
// open relay would let any user reach what the server can reach: its own loopback services, the
// private network it sits in, a cloud provider's metadata service at 169.254.169.254. By default
// only public unicast addresses are relayed to, as coturn's hardening advice has it: the special-
// purpose blocks of the IANA IPv4 and IPv6 registries that are not globally reachable unicast
// are denied (RFC 6890 and its updates). Operators may allow ranges (a TURN server on a private
// network) and deny more; an allowed range wins over a denied one.

import { inRange, type IpRange, parseRange } from "../net/public_address.ts";
import { ipToBytes, normalizeIp } from "./stun.ts";

/** Denied by default: non-public IPv4 blocks. */
export const DENIED_IPV4 = [
  "0.0.0.0/8", // "this network" (RFC 791)
  "10.0.0.0/8", // private (RFC 1918)
  "100.64.0.0/10", // shared address space, carrier-grade NAT (RFC 6598)
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local, cloud metadata services
  "172.16.0.0/12", // private (RFC 1918)
  "192.0.0.0/24", // IETF protocol assignments (RFC 6890)
  "192.0.2.0/24", // documentation TEST-NET-1 (RFC 5737)
  "192.88.99.0/24", // 6to4 relay anycast (RFC 7526, deprecated)
  "192.168.0.0/16", // private (RFC 1918)
  "198.18.0.0/15", // benchmarking (RFC 2544)
  "198.51.100.0/24", // documentation TEST-NET-2
  "203.0.113.0/24", // documentation TEST-NET-3
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, and the limited broadcast address
] as const;

/** Denied by default: non-public IPv6 blocks. IPv4-mapped addresses are judged as IPv4. */
export const DENIED_IPV6 = [
  "::/96", // unspecified, loopback and the deprecated IPv4-compatible addresses
  "64:ff9b::/96", // NAT64 well-known prefix: reaches any IPv4 address behind a translator
  "64:ff9b:1::/48", // NAT64 local use (RFC 8215)
  "100::/64", // discard-only (RFC 6666)
  "2001::/23", // IETF protocol assignments (Teredo, benchmarking, ORCHID...)
  "2001:db8::/32", // documentation (RFC 3849)
  "2002::/16", // 6to4: embeds an IPv4 address (RFC 3056)
  "3fff::/20", // documentation (RFC 9637)
  "5f00::/16", // SRv6 segment identifiers (RFC 9602)
  "fc00::/7", // unique local (RFC 4193)
  "fe80::/10", // link-local
  "fec0::/10", // site-local (deprecated, RFC 3879)
  "ff00::/8", // multicast
] as const;

// Ranges are parsed and matched as outbound delivery's (net/public_address.ts); the lists above
// are TURN's own (NAT64 denied outright: through a translator a client could name any IPv4
// address, private ones too).
export { parseRange };

export interface PeerPolicyOptions {
  /** Ranges relayed to even when denied (an operator's private network, tests on loopback). */
  allow?: readonly string[];
  /** Ranges denied besides the defaults. */
  deny?: readonly string[];
}

export class PeerPolicy {
  #allow: IpRange[];
  #deny: IpRange[];

  /** Throws on a malformed range, naming it. */
  constructor(options: PeerPolicyOptions = {}) {
    this.#allow = (options.allow ?? []).map(parseRange);
    this.#deny = [...DENIED_IPV4, ...DENIED_IPV6, ...(options.deny ?? [])].map(parseRange);
  }

  /** True when an operator's allowed range names `ip` (not merely a public address). */
  listed(ip: string): boolean {
    const n = normalizeIp(ip);
    const bytes = n && ipToBytes(n.ip);
    return !!bytes && this.#allow.some((r) => inRange(bytes, r));
  }

  /** True when `ip` may be a peer. IPv4-mapped IPv6 addresses count as the IPv4 address. */
  allows(ip: string): boolean {
    const n = normalizeIp(ip);
    const bytes = n && ipToBytes(n.ip);
    if (!bytes) return false;
    if (this.#allow.some((r) => inRange(bytes, r))) return true;
    return !this.#deny.some((r) => inRange(bytes, r));
  }
}

const DEFAULT_POLICY = new PeerPolicy();

/** The default peer policy: public unicast addresses only. */
export function isRelayablePeer(ip: string): boolean {
  return DEFAULT_POLICY.allows(ip);
}
