// DNS for federation, behind an interface: the configured server (dns_client.ts) or the system's
// resolver in production, anything in tests (nothing on the public internet resolves here).

import {
  type DnsServer,
  parseDnsServer,
  queryDns,
  type RrData,
  type RrType,
} from "./dns_client.ts";

export interface MxRecord {
  preference: number;
  exchange: string;
}

export interface DnsResolver {
  mx(domain: string): Promise<MxRecord[]>;
  /** IPv6 then IPv4 addresses of a host; [] when it has none. */
  addresses(host: string): Promise<string[]>;
  /** TXT records, each as its joined character strings. */
  txt(name: string): Promise<string[]>;
  /** Reverse names of an IPv4 address (PTR); optional, [] when unknown. */
  ptr?(ip: string): Promise<string[]>;
}

export class DnsError extends Error {
  constructor(message: string, readonly kind: "nxdomain" | "nodata" | "temporary") {
    super(message);
  }
}

function classify(err: unknown, what: string): DnsError {
  const name = (err as Error)?.name ?? "";
  if (name === "NotFound") return new DnsError(`${what}: no such domain`, "nxdomain");
  return new DnsError(`${what}: ${(err as Error)?.message ?? String(err)}`, "temporary");
}

/**
 * The resolver tern uses: with `nameServer` ("ip:port" or "ip"), that server and nothing else
 * (no /etc/hosts, no built-in answers); without, Deno's resolver with the system's configuration.
 */
export function systemResolver(nameServer = ""): DnsResolver {
  return nameServer ? serverResolver(parseDnsServer(nameServer)) : hostResolver();
}

function reverseName(ip: string): string {
  return ip.split(".").reverse().join(".") + ".in-addr.arpa";
}

/** Asks one DNS server directly (dns_client.ts). */
export function serverResolver(server: DnsServer): DnsResolver {
  const query = async (name: string, type: RrType): Promise<RrData[]> => {
    let answer;
    try {
      answer = await queryDns(server, name, type);
    } catch (err) {
      throw new DnsError(`${type} ${name}: ${(err as Error)?.message ?? err}`, "temporary");
    }
    if (answer.nxdomain) {
      if (type === "MX") throw new DnsError(`${type} ${name}: no such domain`, "nxdomain");
      return [];
    }
    return answer.records;
  };
  return {
    async mx(domain) {
      return (await query(domain, "MX")).flatMap((r) =>
        r.type === "MX" ? [{ preference: r.preference, exchange: r.exchange }] : []
      );
    },
    async addresses(host) {
      const [v6, v4] = await Promise.all([
        query(host, "AAAA").catch(() => [] as RrData[]),
        query(host, "A").catch(() => [] as RrData[]),
      ]);
      return [...v6, ...v4].flatMap((r) => r.type === "A" || r.type === "AAAA" ? [r.value] : []);
    },
    async txt(name) {
      return (await query(name, "TXT")).flatMap((r) =>
        r.type === "TXT" ? [r.strings.join("")] : []
      );
    },
    async ptr(ip) {
      return (await query(reverseName(ip), "PTR")).flatMap((r) =>
        r.type === "PTR" ? [r.value] : []
      );
    },
  };
}

/** How long a resolver that answered for the root zone is taken to work (hostResolver). */
const RESOLVER_CHECK_MS = 60_000;

/**
 * Deno's resolver with the system configuration (resolv.conf, /etc/hosts); tests give it a name
 * server in `options`.
 */
export function hostResolver(options?: Deno.ResolveDnsOptions): DnsResolver {
  const query = async <T>(
    name: string,
    type: "MX" | "A" | "AAAA" | "TXT" | "PTR",
  ): Promise<T[]> => {
    try {
      return await Deno.resolveDns(name, type as "A", options) as unknown as T[];
    } catch (err) {
      const e = classify(err, `${type} ${name}`);
      if (e.kind === "nxdomain" && type !== "MX") return [];
      throw e;
    }
  };
  /** When the root zone's name servers were last resolved (the resolver works), ms. */
  let answeredAt = -Infinity;
  const resolverAnswers = async () => {
    if (Date.now() - answeredAt < RESOLVER_CHECK_MS) return true;
    try {
      if ((await Deno.resolveDns(".", "NS", options)).length === 0) return false;
    } catch {
      return false;
    }
    answeredAt = Date.now();
    return true;
  };
  const addresses = async (host: string) => {
    const [v6, v4] = await Promise.all([
      query<string>(host, "AAAA").catch(() => [] as string[]),
      query<string>(host, "A").catch(() => [] as string[]),
    ]);
    return [...v6, ...v4];
  };
  return {
    async mx(domain) {
      let records;
      try {
        records = await query<{ preference: number; exchange: string }>(domain, "MX");
      } catch (err) {
        // Deno.resolveDns throws NotFound alike for NXDOMAIN, for NODATA (a domain without MX
        // records: RFC 5321 §5.1's implicit MX) and for SERVFAIL (measured in Deno 2.9.6). A
        // domain with an address has no MX; without one, a failed lookup is never taken for
        // a domain that does not exist (that would bounce mail at once): it is tried again.
        if (!(err instanceof DnsError) || err.kind !== "nxdomain") throw err;
        if ((await addresses(domain)).length) {
          throw new DnsError(`MX ${domain}: no records`, "nodata");
        }
        // Neither MX nor address. While the resolver answers for the root zone, that is a domain
        // that does not exist (a mistyped address: bounced at once, as the reference relay
        // does); while it does not, its failure may be what we see, and the mail waits. A
        // SERVFAIL for this one domain alone still reads as NXDOMAIN (Deno cannot tell).
        if (await resolverAnswers()) throw new DnsError(`MX ${domain}: no such domain`, "nxdomain");
        throw new DnsError(
          `MX ${domain}: not found, and the resolver does not answer for the root zone either`,
          "temporary",
        );
      }
      return records.map((r) => ({
        preference: r.preference,
        exchange: r.exchange.replace(/\.$/, ""),
      }));
    },
    addresses,
    async txt(name) {
      const records = await query<string[]>(name, "TXT");
      return records.map((chunks) => chunks.join(""));
    },
    async ptr(ip) {
      const names = await query<string>(reverseName(ip), "PTR");
      return names.map((n) => n.replace(/\.$/, ""));
    },
  };
}
