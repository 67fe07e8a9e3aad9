// Whether an IP address is a public unicast one, and if not, what it is. The relay connects to
// addresses its users choose (recipient domains and address literals): without this check any
// account could make it open connections into the operator's own network (SSRF). The blocks are
// the IANA special-purpose registries' entries that are not globally reachable (RFC 6890 and
// updates); IPv4-mapped and NAT64 (RFC 6052) addresses are judged by the IPv4 address they hold.

import { parseIp } from "./ip.ts";

export type AddressKind =
  | "public"
  | "unspecified"
  | "loopback"
  | "private"
  | "shared"
  | "link-local"
  | "multicast"
  | "documentation"
  | "reserved"
  | "not an IP address";

export interface IpRange {
  bytes: Uint8Array;
  bits: number;
}

const IPV4_BLOCKS: [string, AddressKind][] = [
  ["0.0.0.0/8", "unspecified"], // "this network" (RFC 791)
  ["10.0.0.0/8", "private"], // RFC 1918
  ["100.64.0.0/10", "shared"], // carrier-grade NAT (RFC 6598)
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"], // also cloud metadata services
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "reserved"], // IETF protocol assignments
  ["192.0.2.0/24", "documentation"], // RFC 5737
  ["192.88.99.0/24", "reserved"], // 6to4 relay anycast (RFC 7526)
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "reserved"], // benchmarking (RFC 2544)
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"], // and the limited broadcast address
];

/** Checked in order; anything outside 2000::/3 not named here is "reserved". */
const IPV6_BLOCKS: [string, AddressKind][] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["64:ff9b:1::/48", "private"], // NAT64 local use (RFC 8215)
  ["2001::/23", "reserved"], // IETF protocol assignments: Teredo, benchmarking, ORCHID
  ["2001:db8::/32", "documentation"],
  ["2002::/16", "reserved"], // 6to4 (RFC 3056): reaches an IPv4 address through a relay
  ["3fff::/20", "documentation"], // RFC 9637
  ["fc00::/7", "private"], // unique local (RFC 4193)
  ["fe80::/10", "link-local"],
  ["fec0::/10", "private"], // site-local (RFC 3879)
  ["ff00::/8", "multicast"],
];

/** "10.0.0.0/8", "fc00::/7" or a bare address (a /32 or /128); throws on anything else. */
export function parseRange(text: string): IpRange {
  const [addr, len, extra] = text.trim().split("/");
  const bytes = parseIp(addr);
  const max = bytes ? bytes.length * 8 : 0;
  const bits = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!bytes || extra !== undefined || !(bits >= 0 && bits <= max)) {
    throw new Error(`not an address range: ${JSON.stringify(text)}`);
  }
  return { bytes, bits };
}

export function inRange(ip: Uint8Array, r: IpRange): boolean {
  if (ip.length !== r.bytes.length) return false;
  const whole = r.bits >> 3;
  for (let i = 0; i < whole; i++) if (ip[i] !== r.bytes[i]) return false;
  const rest = r.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip[whole] & mask) === (r.bytes[whole] & mask);
}

const MAPPED = parseRange("::ffff:0:0/96");
const NAT64 = parseRange("64:ff9b::/96");
const GLOBAL_UNICAST = parseRange("2000::/3");

const V4 = IPV4_BLOCKS.map(([r, kind]) => ({ range: parseRange(r), kind }));
const V6 = IPV6_BLOCKS.map(([r, kind]) => ({ range: parseRange(r), kind }));

function kindOfBytes(b: Uint8Array): AddressKind {
  if (b.length === 4) return V4.find((x) => inRange(b, x.range))?.kind ?? "public";
  if (inRange(b, MAPPED) || inRange(b, NAT64)) return kindOfBytes(b.subarray(12));
  const named = V6.find((x) => inRange(b, x.range))?.kind;
  if (named) return named;
  return inRange(b, GLOBAL_UNICAST) ? "public" : "reserved";
}

/** What kind of address `ip` is: "public" for a globally reachable unicast address. */
export function addressKind(ip: string): AddressKind {
  const b = parseIp(ip);
  return b ? kindOfBytes(b) : "not an IP address";
}

export interface AddressPolicyOptions {
  /** Every address that is an address is allowed (tests and labs on loopback). */
  allowNonPublic?: boolean;
  /** Ranges allowed although not public ("10.8.0.0/16", "fd00::/64"). */
  allow?: readonly string[];
}

/**
 * Why a connection to `ip` is refused (its kind, like "loopback"), or null when it is allowed:
 * public addresses, and those the options allow. Throws on a malformed range, naming it.
 */
export function addressPolicy(options: AddressPolicyOptions = {}): (ip: string) => string | null {
  const allow = (options.allow ?? []).map(parseRange);
  return (ip) => {
    const b = parseIp(ip);
    if (!b) return "not an IP address";
    const kind = kindOfBytes(b);
    if (kind === "public" || options.allowNonPublic) return null;
    const v4 = b.length === 16 && (inRange(b, MAPPED) || inRange(b, NAT64)) ? b.subarray(12) : b;
    return allow.some((r) => inRange(b, r) || inRange(v4, r)) ? null : kind;
  };
}
