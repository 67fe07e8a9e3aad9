// Starts the configured listeners over the relay's services. HTTP(S) and metrics run here;
// the SMTP and IMAP edges are not built yet, so their listeners are refused at start-up.

import type { SecureContext } from "node:tls";
import type { ListenerName } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import { createHttpApp, createMetricsApp, startHttpServer } from "../http/mod.ts";
import { createAdminApp, createStatusProvider } from "../admin/mod.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import { VERSION } from "../version.ts";
import type { Relay, Stoppable } from "./relay.ts";

export interface ProtocolContext {
  relay: Relay;
  log: Logger;
  secureContext: () => SecureContext;
  fetch: typeof fetch;
  now: () => number;
}

/** Listeners whose protocol edge is not implemented yet. */
export const UNAVAILABLE_LISTENERS: readonly ListenerName[] = [
  "smtp",
  "submission",
  "submissions",
  "imap",
  "imaps",
];

export async function startProtocols(ctx: ProtocolContext): Promise<{
  stoppables: Stoppable[];
  addresses: Partial<Record<ListenerName, string>>;
}> {
  const { relay, log, now } = ctx;
  const { config, services } = relay;
  const stoppables: Stoppable[] = [];
  const addresses: Partial<Record<ListenerName, string>> = {};
  const missing = UNAVAILABLE_LISTENERS.filter((n) => config.listen[n]);
  if (missing.length > 0) {
    log.system(`not started (not implemented yet): ${missing.join(", ")}`);
  }
  const metrics = createRelayMetrics({ version: VERSION, now });
  const portOf = (n: ListenerName) => Number(config.listen[n].split(":").pop() ?? 0);
  const admin = createAdminApp({
    adminToken: () => relay.adminToken,
    accounts: services.accounts,
    settings: services.settings,
    store: services.store,
    status: createStatusProvider({
      version: VERSION,
      startedAt: relay.startedAt,
      metrics,
      store: services.store,
      now,
    }),
    certificates: () => [{ name: "tls", certPem: relay.tls.certPem }],
    defaultQuotaBytes: config.limits.maxMailboxBytes,
    metrics,
    log,
    now,
  });
  const app = createHttpApp({
    config: {
      mailDomain: config.mailDomain,
      hostname: config.hostname,
      isIpDomain: config.isIpDomain,
      selfSigned: relay.tls.selfSigned,
      ports: {
        imaps: portOf("imaps"),
        imap: portOf("imap"),
        submissions: portOf("submissions"),
        submission: portOf("submission"),
        https: portOf("https"),
      },
      adminContact: config.adminContact,
      limits: {
        maxMessageBytes: config.limits.maxMessageBytes,
        maxMailboxBytes: config.limits.maxMailboxBytes,
        sendPerMinute: config.limits.sendPerMinute,
        deleteMailsAfterDays: config.retention.deleteMailsAfterDays,
        deleteLargeAfterDays: config.retention.deleteLargeAfterDays,
        deleteInactiveUsersAfterDays: config.retention.deleteInactiveUsersAfterDays,
      },
    },
    accounts: services.accounts,
    settings: services.settings,
    consumeRegistrationToken: (t) => services.store.consumeToken(t, now()),
    admin,
    log,
    now,
  });
  const http = async (
    name: ListenerName,
    a: Parameters<typeof startHttpServer>[0]["app"],
    tls: boolean,
  ) => {
    if (!config.listen[name]) return;
    const s = await startHttpServer({
      address: config.listen[name],
      app: a,
      tls: tls ? () => ({ certPem: relay.tls.certPem, keyPem: relay.tls.keyPem }) : undefined,
    });
    stoppables.push(s);
    addresses[name] = `${s.hostname}:${s.port}`;
  };
  try {
    await http("http", app, false);
    await http("https", app, true);
    await http("metrics", createMetricsApp({ metricsText: () => metrics.render() }), false);
  } catch (err) {
    for (const s of stoppables.reverse()) await s.close();
    throw err;
  }
  return { stoppables, addresses };
}
