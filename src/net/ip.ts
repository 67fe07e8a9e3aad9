// IP address helpers for limits and DNS records: IPv6 parsing (RFC 4291 §2.2 text forms), the
// key per-address limits count under, and whether an address is publicly routable.

/** The eight 16-bit groups of an IPv6 address, or null when it is not one. */
export function ipv6Groups(address: string): number[] | null {
  const a = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  if (!a.includes(":") || !/^[0-9a-f:.]+$/.test(a)) return null;
  const halves = a.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (p.includes(".") && i === parts.length - 1) {
        const v4 = p.split(".").map(Number);
        if (v4.length !== 4 || v4.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) {
          return null;
        }
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-f]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !tail) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const fill = 8 - head.length - tail.length;
  if (fill < 1) return null;
  return [...head, ...new Array(fill).fill(0), ...tail];
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
