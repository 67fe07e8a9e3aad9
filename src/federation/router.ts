// Where mail for a domain goes (RFC 5321 §5.1): an IP literal straight to that address; else
// the MX hosts by preference, or the domain itself when it has no MX; a null MX refuses mail.

import { DnsError, type DnsResolver } from "./resolver.ts";

export interface Destination {
  /** Host name for TLS verification and the HTTPS URL; the IP for literals. */
  host: string;
  addresses: string[];
  /** Certificates are not verified (IP literals and "_" domains, as the reference relay). */
  insecureTls: boolean;
}

export type Route =
  | { ok: true; destinations: Destination[] }
  | { ok: false; permanent: boolean; reason: string };

export function isIpLiteral(domain: string): boolean {
  return domain.startsWith("[") && domain.endsWith("]");
}

export function literalAddress(domain: string): string {
  return domain.slice(1, -1).replace(/^IPv6:/i, "");
}

/**
 * MX hosts looked up, by preference (Postfix tries 5 addresses): each lookup may wait a DNS
 * timeout, and a domain with thousands of MX records must not hold a delivery for hours.
 */
const MAX_MX_HOSTS = 10;

export async function route(domain: string, dns: DnsResolver): Promise<Route> {
  if (isIpLiteral(domain)) {
    const ip = literalAddress(domain);
    return { ok: true, destinations: [{ host: ip, addresses: [ip], insecureTls: true }] };
  }
  const insecureTls = domain.startsWith("_");
  let hosts: string[];
  try {
    const mx = (await dns.mx(domain)).sort((a, b) => a.preference - b.preference);
    if (mx.length === 1 && (mx[0].exchange === "" || mx[0].exchange === ".")) {
      return {
        ok: false,
        permanent: true,
        reason: `Domain ${domain} does not accept mail (null MX)`,
      };
    }
    hosts = mx.length ? mx.slice(0, MAX_MX_HOSTS).map((m) => m.exchange) : [domain];
  } catch (err) {
    if (err instanceof DnsError && err.kind === "nxdomain") {
      return { ok: false, permanent: true, reason: `Domain ${domain} does not exist` };
    }
    if (err instanceof DnsError && err.kind === "nodata") hosts = [domain];
    else {return {
        ok: false,
        permanent: false,
        reason: `DNS lookup of ${domain} failed: ${(err as Error).message}`,
      };}
  }
  const destinations: Destination[] = [];
  const problems: string[] = [];
  // At once, not one after another: a host whose lookup times out does not delay the others.
  const found = await Promise.allSettled(hosts.map((host) => dns.addresses(host)));
  hosts.forEach((host, i) => {
    const f = found[i];
    if (f.status === "rejected") problems.push(`${host}: ${(f.reason as Error)?.message}`);
    else if (f.value.length) destinations.push({ host, addresses: f.value, insecureTls });
    else problems.push(`${host} has no address`);
  });
  if (!destinations.length) {
    return {
      ok: false,
      permanent: false,
      reason: `No address for ${domain}: ${problems.join("; ")}`,
    };
  }
  return { ok: true, destinations };
}

/** An address delivery will not connect to, and why ("loopback", "private"). */
export interface RefusedAddress {
  address: string;
  reason: string;
}

/**
 * The destinations with only the addresses `refuse` lets through (a host left with none is
 * dropped), and what was refused. The addresses kept are the ones connected to: nothing is
 * resolved again after this check.
 */
export function permittedDestinations(
  destinations: Destination[],
  refuse: (address: string) => string | null,
): { destinations: Destination[]; refused: RefusedAddress[] } {
  const refused: RefusedAddress[] = [];
  const kept: Destination[] = [];
  for (const d of destinations) {
    const addresses = d.addresses.filter((address) => {
      const reason = refuse(address);
      if (reason) refused.push({ address, reason });
      return !reason;
    });
    if (addresses.length) kept.push({ ...d, addresses });
  }
  return { destinations: kept, refused };
}
