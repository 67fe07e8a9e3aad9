// The composition root: opens the store, builds the services, starts every configured listener
// and background worker, and stops them all again. Two relays can run in one process.

import type { SecureContext } from "node:tls";
import { join } from "node:path";
import type { Config, ListenerName } from "../config/mod.ts";
import { createLogger } from "../log/mod.ts";
import type { Logger } from "../log/mod.ts";
import { createSecureContext, loadTlsMaterial } from "../net/mod.ts";
import type { TlsMaterial } from "../net/mod.ts";
import { openServices } from "./services.ts";
import type { Services } from "./services.ts";
import { readOrCreateSecret } from "./data_dir.ts";
import { startProtocols } from "./protocols.ts";

export interface RelayOptions {
  log?: Logger;
  now?: () => number;
  /** Replaces fetch for outgoing HTTP (push, /mxdeliv) in tests. */
  fetch?: typeof fetch;
}

export interface Relay {
  readonly config: Config;
  readonly services: Services;
  /** Bound "host:port" per running listener. */
  readonly addresses: Partial<Record<ListenerName, string>>;
  readonly tls: TlsMaterial;
  readonly adminToken: string;
  readonly startedAt: number;
  /** Re-reads certificates (SIGHUP, ACME renewal); new handshakes use them at once. */
  reloadTls(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface Stoppable {
  close(): Promise<void>;
}

export async function startRelay(config: Config, options: RelayOptions = {}): Promise<Relay> {
  const log = options.log ?? createLogger(config.log);
  const services = await openServices(config, { now: options.now });
  const stoppables: Stoppable[] = [];
  const stopAll = async () => {
    for (const s of stoppables.reverse()) {
      await s.close().catch((err) => log.error("stop failed", { err }));
    }
    services.close();
  };
  try {
    const tlsNames = [config.hostname, config.domain, "localhost", "127.0.0.1"];
    let tls = await loadTlsMaterial({
      certFile: config.tlsCert || undefined,
      keyFile: config.tlsKey || undefined,
      dir: join(config.dataDir, "tls"),
      names: tlsNames,
    });
    let secureContext: SecureContext = createSecureContext(tls);
    const adminToken = config.adminToken || readOrCreateSecret(config.dataDir, "admin_token");

    // Settings written by the CLI (another process) take effect without a restart.
    const settingsTimer = setInterval(() => {
      services.settings.load().catch((err) => log.error("settings reload failed", { err }));
    }, 2000);
    stoppables.push({ close: () => Promise.resolve(clearInterval(settingsTimer)) });

    const relay: Relay = {
      config,
      services,
      addresses: {},
      get tls() {
        return tls;
      },
      adminToken,
      startedAt: Date.now(),
      async reloadTls() {
        tls = await loadTlsMaterial({
          certFile: config.tlsCert || undefined,
          keyFile: config.tlsKey || undefined,
          dir: join(config.dataDir, "tls"),
          names: tlsNames,
        });
        secureContext = createSecureContext(tls);
      },
      close: stopAll,
      [Symbol.asyncDispose]: stopAll,
    };
    const started = await startProtocols({
      relay,
      log,
      secureContext: () => secureContext,
      fetch: options.fetch ?? fetch,
      now: options.now ?? Date.now,
    });
    stoppables.push(...started.stoppables);
    Object.assign(relay.addresses, started.addresses);
    return relay;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
