// The embedded TURN server (UDP, chatmail-relay.md §7) and the credentials Delta Chat gets from
// METADATA /shared/vendor/deltachat/turn. Failing to start TURN never stops the relay: calls
// then fall back to what clients do without it, and the METADATA key answers NIL. The TURN
// modules load only when it starts: a relay with turn_port = 0 does not hold their code.

import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { DnsResolver } from "../federation/mod.ts";
import type { SettingsService } from "../settings/mod.ts";
import type { TurnServer } from "../turn/mod.ts";
import { readOrCreateSecret } from "./data_dir.ts";

export interface Turn {
  server: TurnServer | null;
  /** "host:port:username:password" while TURN runs and is enabled, else null. */
  credentials(): string | null;
  close(): Promise<void>;
}

export async function startTurn(input: {
  config: Config;
  settings: SettingsService;
  dns: DnsResolver;
  log: Logger;
  now: () => number;
}): Promise<Turn> {
  const { config, log } = input;
  const off: Turn = { server: null, credentials: () => null, close: () => Promise.resolve() };
  if (config.turnPort <= 0) return off;
  const secret = config.turnSecret || readOrCreateSecret(config.dataDir, "turn_secret");
  let relayHost: string;
  let relayAddress: string | undefined;
  if (config.isIpDomain) {
    relayHost = config.mailDomain.slice(1, -1);
  } else {
    // Relayed addresses must be the server's public one: the domain's own address.
    const addresses = await input.dns.addresses(config.domain).catch(() => [] as string[]);
    const v4 = addresses.find((a) => !a.includes(":"));
    if (!v4) {
      log.system(`TURN not started: ${config.domain} has no IPv4 address to relay on`);
      return off;
    }
    relayHost = "0.0.0.0";
    relayAddress = v4;
  }
  const loopback = relayHost.startsWith("127.");
  let server: TurnServer;
  const { PeerPolicy, startTurnServer, turnMetadataValue } = await import("../turn/mod.ts");
  try {
    // Public peers only, unless the operator allows more (dev mode allows loopback).
    const policy = new PeerPolicy({ allow: config.turnAllowedPeers, deny: config.turnDeniedPeers });
    server = await startTurnServer({
      host: loopback ? relayHost : "0.0.0.0",
      port: config.turnPort,
      relayHost,
      relayAddress,
      realm: config.mailDomain,
      secret: () => secret,
      now: input.now,
      log,
      allowPeer: (ip) => policy.allows(ip),
      // Other ports at the server's own address (the TURN listener, local UDP services) only
      // when the operator lists that address among the allowed peers.
      ownAddressAnyPort: policy.listed(relayAddress ?? relayHost),
    });
  } catch (err) {
    log.system(`TURN not started on UDP ${config.turnPort}: ${(err as Error).message}`);
    return off;
  }
  return {
    server,
    credentials: () =>
      input.settings.bool("turn_enabled")
        // The client resolves "host:port" from this value: an IP relay gives its bare address
        // (the bracketed mail domain "[1.2.3.4]" is not a host name).
        ? turnMetadataValue(config.domain, server.port, secret, input.now())
        : null,
    close: () => server.close(),
  };
}
