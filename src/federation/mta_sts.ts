// MTA-STS (RFC 8461) for outbound mail: a domain that publishes `_mta-sts` TXT and a policy at
// https://mta-sts.<domain>/.well-known/mta-sts.txt in "enforce" mode is only delivered to MX
// hosts the policy names (over verified TLS, which tern requires for named domains anyway).

import type { DnsResolver } from "./resolver.ts";
import { HttpsPool } from "./https_client.ts";
import { AttemptBudget, type Deadlines, DEFAULT_DEADLINES } from "./deadlines.ts";
import { trustedCas } from "./trust.ts";
import { addressPolicy } from "../net/mod.ts";

export interface MtaStsPolicy {
  mode: "enforce" | "testing" | "none";
  mx: string[];
  maxAgeSeconds: number;
}

/** RFC 8461 §3.2; null when the text is not a valid policy. */
export function parsePolicy(text: string): MtaStsPolicy | null {
  const fields = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    fields.set(k, [...(fields.get(k) ?? []), line.slice(i + 1).trim()]);
  }
  const mode = fields.get("mode")?.[0];
  const maxAge = Number(fields.get("max_age")?.[0]);
  if (fields.get("version")?.[0] !== "STSv1") return null;
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") return null;
  if (!Number.isFinite(maxAge) || maxAge < 0) return null;
  const mx = (fields.get("mx") ?? []).map((m) => m.toLowerCase());
  if (mode !== "none" && mx.length === 0) return null;
  return { mode, mx, maxAgeSeconds: Math.min(maxAge, 31_557_600) };
}

/** RFC 8461 §4.1: exact names, or "*.example.org" matching exactly one more label. */
export function mxMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return patterns.some((p) => {
    if (p.startsWith("*.")) {
      const rest = p.slice(2);
      const dot = h.indexOf(".");
      return dot > 0 && h.slice(dot + 1) === rest;
    }
    return h === p;
  });
}

/** `signal`: the fetch ends at once when it aborts (the relay is stopping). */
export type PolicyFetcher = (domain: string, signal?: AbortSignal) => Promise<string>;

/**
 * GET the policy over verified HTTPS (no redirects, RFC 8461 §3.3), through the same client and
 * certificate trust as /mxdeliv, with its deadlines, from the first address `refuseAddress`
 * (default: public ones only) lets through.
 */
export function httpsPolicyFetcher(
  dns: DnsResolver,
  options: {
    port?: (address: string) => number;
    caCerts?: string[];
    deadlines?: Deadlines;
    refuseAddress?: (address: string) => string | null;
  } = {},
): PolicyFetcher {
  const refuse = options.refuseAddress ?? addressPolicy();
  return async (domain, signal) => {
    const name = `mta-sts.${domain}`;
    const addresses = await dns.addresses(name);
    if (!addresses.length) throw new Error(`${name} has no address`);
    const address = addresses.find((a) => !refuse(a));
    if (!address) throw new Error(`${name} has no public address: ${addresses.join(", ")}`);
    const pool = new HttpsPool({ maxIdlePerPeer: 0 });
    try {
      const r = await pool.request(
        {
          address,
          port: options.port?.(address) ?? 443,
          host: name,
          insecure: false,
          ca: trustedCas(options.caCerts ?? []),
        },
        "GET",
        "/.well-known/mta-sts.txt",
        [],
        new Uint8Array(0),
        new AttemptBudget(options.deadlines ?? { ...DEFAULT_DEADLINES, attemptMs: 60_000 }, signal),
      );
      if (r.status !== 200) throw new Error(`policy answered HTTP ${r.status}`);
      return r.text;
    } finally {
      pool.close();
    }
  };
}

interface Cached {
  id: string;
  policy: MtaStsPolicy;
  until: number;
}

/**
 * After a policy fetch fails (a policy host that never answers takes the whole 60 s deadline),
 * the same domain and TXT id are not fetched again for this long: delivery attempts to it go on
 * without waiting each time (RFC 8461 §3.3 lets senders rate-limit fetches).
 */
export const FETCH_RETRY_MS = 5 * 60_000;
/** Failed fetches remembered at most (older ones go first). */
const MAX_FAILED = 10_000;

/** Policies per domain, refreshed when the TXT id changes or max_age runs out. */
export class MtaSts {
  #cache = new Map<string, Cached>();
  /** Domains whose fetch failed: the TXT id then, and until when not to fetch again. */
  #failed = new Map<string, { id: string; until: number }>();
  constructor(
    private readonly dns: DnsResolver,
    private readonly fetchPolicy: PolicyFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  /** The domain's policy, or null when it publishes none (or it cannot be had: no MTA-STS). */
  async policy(domain: string, signal?: AbortSignal): Promise<MtaStsPolicy | null> {
    const d = domain.toLowerCase();
    const cached = this.#cache.get(d);
    const txt = (await this.dns.txt(`_mta-sts.${d}`).catch(() => [] as string[]))
      .find((r) => /^v=STSv1\s*;/i.test(r));
    const id = txt ? /id=([A-Za-z0-9]+)/.exec(txt)?.[1] ?? "" : "";
    if (cached && cached.until > this.now() && (!id || id === cached.id)) return cached.policy;
    if (!txt) return cached && cached.until > this.now() ? cached.policy : null;
    const failed = this.#failed.get(d);
    if (failed && failed.id === id && failed.until > this.now()) return cached?.policy ?? null;
    let policy: MtaStsPolicy | null = null;
    try {
      policy = parsePolicy(await this.fetchPolicy(d, signal));
    } catch {
      // below: as a policy that cannot be read
    }
    if (!policy) {
      // RFC 8461 §5.1: a policy that cannot be fetched keeps the cached one in force.
      this.#failed.delete(d);
      if (this.#failed.size >= MAX_FAILED) this.#failed.delete(this.#failed.keys().next().value!);
      this.#failed.set(d, { id, until: this.now() + FETCH_RETRY_MS });
      return cached?.policy ?? null;
    }
    this.#failed.delete(d);
    this.#cache.set(d, { id, policy, until: this.now() + policy.maxAgeSeconds * 1000 });
    return policy;
  }
}
