// Federation wiring: the policy (blocklist or allowlist of domains), the origin check of
// incoming mail (policy + DKIM alignment, IP literals exempt) and the outbound worker with
// DKIM signing and local bounces.

import { join } from "node:path";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import type { DeliveryService, OriginCheck } from "../delivery/mod.ts";
import {
  type BackoffPolicy,
  type Deadlines,
  DKIM_SELECTOR,
  type DkimKey,
  dkimSignatureField,
  DkimStream,
  type DnsResolver,
  generateDkimKey,
  httpsPolicyFetcher,
  isIpLiteral,
  MtaSts,
  OutboundService,
  type PeerPorts,
  verifyAlignedHeader,
} from "../federation/mod.ts";
import type { SettingsService } from "../settings/mod.ts";
import type { Store } from "../store/types.ts";
import { ensureDataDir } from "./data_dir.ts";
import { addressPolicy } from "../net/mod.ts";

export function federationAllowed(settings: SettingsService, store: Store) {
  return async (domain: string): Promise<boolean> => {
    const d = domain.toLowerCase();
    if (settings.get("federation_mode") === "allowlist") {
      return settings.list("federation_allowlist").map((x) => x.toLowerCase()).includes(d);
    }
    return !(await store.isBlocked(`postmaster@${d}`));
  };
}

/**
 * Counts mail received per domain in memory and stores the counts about once a second in one
 * transaction, so a received message costs no commit of its own for a statistic.
 */
export class ReceivedCounter {
  #counts = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly store: Pick<Store, "countFederationReceived">,
    private readonly now: () => number,
    private readonly log?: Logger,
    private readonly everyMs = 1000,
  ) {}

  add(domain: string): void {
    const d = domain.toLowerCase();
    this.#counts.set(d, (this.#counts.get(d) ?? 0) + 1);
    this.#timer ??= setTimeout(() => this.flush(), this.everyMs);
  }

  /** Stores what was counted so far (the store takes the write at once). */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#counts.size === 0) return Promise.resolve();
    const counts = [...this.#counts].map(([domain, count]) => ({ domain, count }));
    this.#counts.clear();
    return this.store.countFederationReceived(counts, this.now()).catch((err) =>
      this.log?.error("federation counters not stored", { error: String(err) })
    );
  }
}

/**
 * The origin check of incoming mail, read as the message streams in: the federation policy of
 * the From domain, then a DKIM signature aligned with it (IP literals exempt). Accepted mail is
 * counted per domain and tells `onReceived` that the domain's relay is up.
 */
export function originCheck(
  allowed: (domain: string) => Promise<boolean>,
  dns: DnsResolver,
  received: ReceivedCounter,
  /** Mail from the domain was accepted: its relay is up (wakes its deferred mail). */
  onReceived: (domain: string) => void = () => {},
): () => OriginCheck {
  return () => {
    const dkim = new DkimStream();
    return {
      push: (bytes) => dkim.push(bytes),
      async end(fromAddress) {
        const domain = fromAddress.slice(fromAddress.lastIndexOf("@") + 1);
        if (!(await allowed(domain))) {
          return { code: 554, enhanced: "5.7.1", text: `Mail from ${domain} is not accepted here` };
        }
        if (!isIpLiteral(domain)) {
          const header = dkim.header();
          const problem = header
            ? await verifyAlignedHeader(header, (r) => dkim.bodyHash(r), domain, dns).catch((
              err,
            ) => ({ reason: `DKIM check failed: ${(err as Error).message}`, temporary: false }))
            : { reason: "No DKIM signature found", temporary: false };
          // A key the DNS cannot give now: the sender tries again (RFC 6376 §6.1.2), no bounce.
          if (problem?.temporary) return { code: 451, enhanced: "4.4.3", text: problem.reason };
          if (problem) return { code: 554, enhanced: "5.7.1", text: problem.reason };
        }
        received.add(domain);
        onReceived(domain.toLowerCase());
        return null;
      },
    };
  };
}

/** The relay's DKIM key, generated on first start (data_dir/dkim.key). */
export function dkimKey(config: Config): DkimKey {
  const path = join(config.dataDir, "dkim.key");
  if (!existsSync(path)) {
    ensureDataDir(config.dataDir);
    writeFileSync(path, generateDkimKey(), { mode: 0o600 });
    chmodSync(path, 0o600);
  }
  return { selector: DKIM_SELECTOR, privateKeyPem: readFileSync(path, "utf8") };
}

/**
 * Which addresses outbound delivery refuses (and why): non-public ones, unless the operator
 * allows them all (outbound_allow_private) or some (outbound_allowed_networks).
 */
export function outboundAddressPolicy(config: Config): (address: string) => string | null {
  return addressPolicy({
    allowNonPublic: config.outboundAllowPrivate,
    allow: config.outboundAllowedNetworks,
  });
}

export function createOutbound(input: {
  config: Config;
  store: Store;
  settings: SettingsService;
  /** Stores bounces for local senders. */
  delivery: Pick<DeliveryService, "deliverReport">;
  dns: DnsResolver;
  log: Logger;
  now: () => number;
  metrics?: RelayMetrics;
  ports?: PeerPorts | ((address: string) => PeerPorts);
  caCerts?: string[];
  deadlines?: Partial<Deadlines>;
  backoff?: BackoffPolicy;
}): OutboundService {
  const { config, store } = input;
  const key = config.isIpDomain ? null : dkimKey(config);
  const refuseAddress = outboundAddressPolicy(config);
  return new OutboundService({
    store,
    dns: input.dns,
    domain: config.mailDomain,
    hostname: config.hostname,
    // IP relays do not sign, as the reference relay (nobody could look the key up).
    sign: (m) =>
      key ? dkimSignatureField(m, config.mailDomain, key) : Promise.resolve(new Uint8Array(0)),
    // A sender whose mailbox refuses it (full, deleted, blocked) gets nothing: that is final.
    deliverBounce: (sender, message) =>
      input.delivery.deliverReport(sender, message).then(() => {}),
    allowed: federationAllowed(input.settings, store),
    refuseAddress,
    lifetimeMs: config.queueLifetimeMs,
    claimLeaseMs: config.outboundClaimLeaseMs,
    log: input.log,
    now: input.now,
    ports: input.ports,
    caCerts: input.caCerts,
    deadlines: input.deadlines,
    backoff: input.backoff,
    metrics: input.metrics,
    maxConcurrency: config.maxDestinationConcurrency,
    mtaSts: new MtaSts(
      input.dns,
      httpsPolicyFetcher(input.dns, {
        port: (address) =>
          typeof input.ports === "function"
            ? input.ports(address).https
            : input.ports?.https ?? 443,
        caCerts: input.caCerts,
        refuseAddress,
      }),
      input.now,
    ),
  });
}
