// IP address helpers: the one parser of IP text (RFC 4291 §2.2 forms), the key per-address
// limits count under, and whether an address is publicly routable.

/**
 * A dotted quad without leading zeros ("010.0.0.1" is octal to inet_aton, decimal to others: not
 * an address; "0x7f.0.0.1", "127.1" and "2130706433" are not either).
 */
const QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
/** The longest plain form: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
const MAX_TEXT = 45;

/**
 * The 4 or 16 bytes of an IP address in plain text form, or null for anything else (host names
 * too). IPv4: a dotted quad (QUAD). IPv6 (RFC 4291 §2.2): groups of 1-4 hex digits, one "::" for
 * one or more zero groups, a dotted quad as the last 32 bits only. No brackets and no zone:
 * plainAddress() takes those off where a caller accepts them. "::ffff:1.2.3.4" stays 16 bytes.
 * The one parser of IP text in tern (limits, the outbound address policy, TURN peers,
 * certificates' iPAddress names).
 */
export function parseIp(text: string): Uint8Array | null {
  if (typeof text !== "string" || text.length > MAX_TEXT) return null;
  if (QUAD.test(text)) return Uint8Array.from(text.split("."), Number);
  if (!text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  /** The groups of one side of "::"; `last`: it ends the address (a quad may end it). */
  const side = (part: string, last: boolean): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (last && i === items.length - 1 && QUAD.test(item)) {
        const [a, b, c, d] = item.split(".").map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else if (HEX_GROUP.test(item)) out.push(parseInt(item, 16));
      else return null;
    }
    return out;
  };
  const head = side(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? side(halves[1], true) : [];
  if (!head || !tail) return null;
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (halves.length === 2 ? fill < 1 : head.length !== 8) return null;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * An address as URLs and sockets may write it, made plain for parseIp: "[2001:db8::1]" loses
 * its brackets, an IPv6 address its zone ("fe80::1%eth0"). Anything else is left as it is.
 */
export function plainAddress(text: string): string {
  let a = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const pct = a.indexOf("%");
  if (pct >= 0 && a.slice(0, pct).includes(":")) a = a.slice(0, pct);
  return a;
}

/** The eight 16-bit groups of an IPv6 address (brackets and zone allowed), or null. */
export function ipv6Groups(address: string): number[] | null {
  const b = parseIp(plainAddress(address));
  if (!b || b.length !== 16) return null;
  return Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
}

/** "::ffff:1.2.3.4" → "1.2.3.4" (IPv4 clients of a dual-stack listener). */
export function normalizeAddress(a: string): string {
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

/**
 * The key per-address limits count under: an IPv4 address as it is, an IPv6 address by its /64
 * (a host usually gets a whole /64, so counting single addresses would let one client escape).
 */
export function limitKey(address: string): string {
  const a = normalizeAddress(address);
  const g = ipv6Groups(a);
  if (!g) return a;
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(":")}::/64`;
}

/**
 * A global unicast IPv6 address (2000::/3) outside documentation (2001:db8::/32) and other
 * special ranges: what an AAAA record may name.
 */
export function isPublicIpv6(address: string): boolean {
  const g = ipv6Groups(address);
  if (!g || (g[0] & 0xe000) !== 0x2000) return false;
  if (g[0] === 0x2001 && g[1] === 0x0db8) return false; // documentation
  if (g[0] === 0x2001 && g[1] < 0x200) return false; // TEREDO, benchmarking, ORCHID (RFC 6890)
  if (g[0] === 0x2002) return false; // 6to4
  return true;
}
