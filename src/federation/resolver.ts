// DNS for federation, behind an interface: Deno.resolveDns against a configurable server in
// production, anything in tests (nothing on the public internet resolves here).

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

/** Deno's resolver, optionally against one server ("ip:port" or "ip"). */
export function systemResolver(nameServer = ""): DnsResolver {
  const options: Deno.ResolveDnsOptions = {};
  if (nameServer) {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(nameServer);
    options.nameServer = { ipAddr: m?.[1] ?? nameServer, port: Number(m?.[2] ?? 53) };
  }
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
  return {
    async mx(domain) {
      const records = await query<{ preference: number; exchange: string }>(domain, "MX");
      return records.map((r) => ({
        preference: r.preference,
        exchange: r.exchange.replace(/\.$/, ""),
      }));
    },
    async addresses(host) {
      const [v6, v4] = await Promise.all([
        query<string>(host, "AAAA").catch(() => [] as string[]),
        query<string>(host, "A").catch(() => [] as string[]),
      ]);
      return [...v6, ...v4];
    },
    async txt(name) {
      const records = await query<string[]>(name, "TXT");
      return records.map((chunks) => chunks.join(""));
    },
    async ptr(ip) {
      const arpa = ip.split(".").reverse().join(".") + ".in-addr.arpa";
      const names = await query<string>(arpa, "PTR");
      return names.map((n) => n.replace(/\.$/, ""));
    },
  };
}
