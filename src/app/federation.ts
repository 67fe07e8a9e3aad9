// Federation wiring: the policy (blocklist or allowlist of domains), the origin check of
// incoming mail (policy + DKIM alignment, IP literals exempt) and the outbound worker with
// DKIM signing and local bounces.

import { join } from "node:path";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { OriginCheck } from "../delivery/mod.ts";
import {
  DKIM_SELECTOR,
  type DkimKey,
  DkimStream,
  type DnsResolver,
  generateDkimKey,
  httpsPolicyFetcher,
  isIpLiteral,
  MtaSts,
  OutboundService,
  signMessage,
  verifyAlignedHeader,
} from "../federation/mod.ts";
import type { SettingsService } from "../settings/mod.ts";
import type { Store } from "../store/types.ts";
import { spoolBytes } from "../store/message_input.ts";
import type { EventBus } from "../events/mod.ts";
import { ensureDataDir } from "./data_dir.ts";

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
 * The origin check of incoming mail, read as the message streams in: the federation policy of
 * the From domain, then a DKIM signature aligned with it (IP literals exempt).
 */
export function originCheck(
  allowed: (domain: string) => Promise<boolean>,
  dns: DnsResolver,
  store: Store,
  now: () => number,
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
            ) => `DKIM check failed: ${(err as Error).message}`)
            : "No DKIM signature found";
          if (problem) return { code: 554, enhanced: "5.7.1", text: problem };
        }
        await store.recordFederation(domain, "received", now());
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

export function createOutbound(input: {
  config: Config;
  store: Store;
  bus: EventBus;
  settings: SettingsService;
  dns: DnsResolver;
  log: Logger;
  now: () => number;
  ports?: { smtp: number; https: number };
  caCerts?: string[];
}): OutboundService {
  const { config, store, bus } = input;
  const key = config.isIpDomain ? null : dkimKey(config);
  return new OutboundService({
    store,
    dns: input.dns,
    domain: config.mailDomain,
    hostname: config.hostname,
    // IP relays do not sign, as the reference relay (nobody could look the key up).
    sign: (m) => key ? signMessage(m, config.mailDomain, key) : Promise.resolve(m),
    async deliverBounce(sender, message) {
      const account = await store.getAccount(sender.toLowerCase());
      if (!account) return;
      const spooled = await spoolBytes(store, message);
      const [o] = await store.deliver({
        body: spooled.body,
        internalDate: input.now(),
        targets: [{ accountId: account.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: config.limits.maxMailboxBytes,
      }).finally(() => spooled.discard());
      if (o.ok) {
        bus.publish({
          type: "mail.delivered",
          accountId: account.id,
          address: account.address,
          mailboxId: o.mailboxId,
          uid: o.uid,
          fromSelf: false,
        });
      }
    },
    allowed: federationAllowed(input.settings, store),
    lifetimeMs: config.queueLifetimeMs,
    claimMs: config.queueClaimMs,
    log: input.log,
    now: input.now,
    ports: input.ports,
    caCerts: input.caCerts,
    mtaSts: new MtaSts(
      input.dns,
      httpsPolicyFetcher(input.dns, {
        port: () => input.ports?.https ?? 443,
        caCerts: input.caCerts,
      }),
      input.now,
    ),
  });
}
