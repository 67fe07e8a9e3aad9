// The embedded iroh relay and what tern offers in METADATA: the relay runs on the HTTP(S)
// listeners when iroh_relay is unset; iroh_enabled switches it (and any offer) at run time.

import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import type { SettingsService } from "../settings/mod.ts";
import type { EventBus } from "../events/mod.ts";
import { advertisedRelayUrl, irohProbeRoutes, IrohRelay, servesRelay } from "../iroh/mod.ts";
import type { Hono } from "hono";
import { describeCertificate } from "../net/mod.ts";
import { relayUpgradeHook, type UpgradeHook } from "../iroh/mod.ts";
export type { UpgradeHook };

export interface Iroh {
  /** The embedded relay, or null when iroh_relay is set (another relay, or none). */
  relay: IrohRelay | null;
  /** /ping, /generate_204 and the /relay fallback, for the HTTP app. */
  routes: Hono;
  /** The URL offered in METADATA now, or null. */
  url(): string | null;
  /** Whether the relay is offered over plain HTTP now (tern's certificate is self-signed). */
  overPlainHttp(): boolean;
  /**
   * The HTTP(S) listeners' upgrade hook: hands `/relay` upgrades (`iroh derp http` or
   * `websocket`) to the embedded relay while `allowed()` holds; refuses anything else.
   */
  upgrade(allowed: () => boolean): UpgradeHook;
  close(): void;
}

export function createIroh(input: {
  config: Config;
  settings: SettingsService;
  bus: EventBus;
  metrics: RelayMetrics;
  log: Logger;
  /** Bound "host:port" of the listeners, known once they run. */
  addresses: () => { http?: string; https?: string };
  /** The certificate HTTPS serves now (ACME may replace it at run time). */
  tls: () => { certPem: string; selfSigned: boolean };
}): Iroh {
  const { config, settings } = input;
  const enabled = () => settings.bool("iroh_enabled");
  const relay = config.irohRelay === null
    ? new IrohRelay({
      enabled,
      maxClients: config.limits.irohMaxClients,
      maxClientsPerIp: config.limits.irohMaxClientsPerIp,
      clientBytesPerSecond: config.limits.irohClientBytesPerSecond,
      // At least two whole packets, so a slow rate delays large packets instead of stalling.
      clientBurstBytes: Math.max(2 * config.limits.irohClientBytesPerSecond, 132 * 1024),
      metrics: input.metrics,
      log: input.log,
    })
    : null;
  // Switched off here (admin API): connected clients go at once. Switched off by the CLI (another
  // process), each client notices at its next keep-alive check.
  const off = input.bus.subscribeAll((e) => {
    if (e.type === "settings.changed" && e.key === "iroh_enabled" && !enabled()) {
      relay?.disconnectAll();
    }
  });
  let names = { pem: "", names: [] as string[] };
  const certificateNames = (pem: string) => {
    if (names.pem !== pem) {
      let list: string[] = [];
      try {
        list = describeCertificate(pem).names;
      } catch (err) {
        input.log.debug("iroh: cannot read the certificate's names", { err });
      }
      names = { pem, names: list };
    }
    return names.names;
  };
  const portOf = (a: string | undefined) => a ? Number(a.slice(a.lastIndexOf(":") + 1)) : null;
  const stopping = new AbortController();
  return {
    relay,
    routes: irohProbeRoutes(() =>
      relay !== null && servesRelay({ enabled: enabled(), configured: config.irohRelay })
    ),
    url() {
      const { http, https } = input.addresses();
      const httpsPort = portOf(https);
      const httpPort = portOf(http);
      return advertisedRelayUrl({
        enabled: enabled(),
        configured: config.irohRelay,
        host: config.domain,
        altHost: config.hostname,
        https: httpsPort === null ? null : {
          port: httpsPort,
          trusted: !input.tls().selfSigned,
          names: certificateNames(input.tls().certPem),
        },
        http: httpPort === null ? null : { port: httpPort },
      });
    },
    overPlainHttp() {
      return this.url()?.startsWith("http://") ?? false;
    },
    upgrade(allowed) {
      if (!relay) return () => false;
      return relayUpgradeHook(relay, { allowed, signal: stopping.signal, log: input.log });
    },
    close() {
      off();
      stopping.abort();
      relay?.close();
    },
  };
}
