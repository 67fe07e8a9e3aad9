// Starts the configured listeners over the relay's services: SMTP first (so the HTTP edge can
// advertise the ports actually bound), then HTTP(S) and metrics.

import { formatHostPort, type Listener, type ServerTls } from "../net/mod.ts";
import type { ListenerName } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import { createHttpApp, createMetricsApp, httpsRedirectApp, startHttpServer } from "../http/mod.ts";
import { createAdminApp, createStatusProvider } from "../admin/mod.ts";
import { createRelayMetrics, smtpReplyClass } from "../metrics/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import { VERSION } from "../version.ts";
import type { Relay, Stoppable } from "./relay.ts";
import { startSmtpServer } from "../smtp/mod.ts";
import { smtpBackend, storageFailure } from "./smtp_backend.ts";
import { startImapServer } from "../imap/mod.ts";
import { imapBackend } from "./imap_backend.ts";
import { MetadataService } from "../discovery/mod.ts";
import { startTurn, type Turn } from "./turn.ts";
import { createIroh, type Iroh, type UpgradeHook } from "./iroh.ts";
import { Hono } from "hono";

export interface ProtocolContext {
  relay: Relay;
  log: Logger;
  tls: () => ServerTls;
  /** Implicit-TLS handshake deadline (tests shorten it). */
  handshakeTimeoutMs?: number;
  /** IMAP IDLE's `* OK Still here` interval (default 2 min; tests shorten it). */
  imapIdleNotifyMs?: number;
  /** From connect to IMAP login (default 3 min; tests shorten it). */
  imapLoginDeadlineMs?: number;
  /** After IMAP login, how long one command may take to arrive (default 5 min; tests shorten it). */
  imapCommandDeadlineMs?: number;
  /** SMTP DATA's idle limit and deadline grace (default 10 min; tests shorten it). */
  smtpDataTimeoutMs?: number;
  fetch: typeof fetch;
  now: () => number;
  /** The relay's metrics (the outbound worker counts into them too). */
  metrics?: RelayMetrics;
}

export async function startProtocols(ctx: ProtocolContext): Promise<{
  stoppables: Stoppable[];
  /** Takes up a new certificate where a listener cannot read it per handshake (HTTPS). */
  reloadTls: () => Promise<void>;
  addresses: Partial<Record<ListenerName, string>>;
}> {
  const { relay, log, now } = ctx;
  const { config, services } = relay;
  const stoppables: Stoppable[] = [];
  const reloaders: (() => Promise<void>)[] = [];
  const addresses: Partial<Record<ListenerName, string>> = {};
  const metrics = ctx.metrics ?? createRelayMetrics({ version: VERSION, now });
  const connections = () => {
    const out: Record<string, number> = {};
    for (const g of [metrics.smtpConnections, metrics.imapConnections]) {
      for (const { labels, value } of g.values()) out[labels.listener] = value;
    }
    return out;
  };
  // Other instances on the same store show this one's figures on their dashboards too.
  relay.cluster?.setFigures(() => {
    const rates = metrics.ratesLastMinute();
    return {
      host: config.hostname,
      startedAt: relay.startedAt,
      connections: connections(),
      idleSessions: metrics.imapIdleSessions.get(),
      messagesPerMinute: { in: rates.received, out: rates.delivered },
      history: metrics.rateHistory(30).map((p) => ({
        minute: p.minute,
        in: p.received,
        out: p.delivered,
      })),
    };
  });
  const iroh = createIroh({
    config,
    settings: services.settings,
    bus: services.bus,
    metrics,
    log,
    addresses: () => addresses,
    tls: () => relay.tls,
  });
  const mail: Listener[] = [];
  try {
    await startMailListeners(ctx, metrics, iroh, stoppables, addresses, mail);
  } catch (err) {
    await Promise.all(mail.map((l) => l.close(0)));
    for (const s of stoppables.reverse()) await s.close();
    throw err;
  }

  const portOf = (n: ListenerName) =>
    Number((addresses[n] ?? config.listen[n]).split(":").pop() ?? 0);
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
      irohUrl: () => iroh.url(),
      instances: relay.cluster ? () => relay.cluster!.instances() : undefined,
      now,
    }),
    certificates: () => [{ name: "tls", certPem: relay.tls.certPem }],
    outbound: relay.outboundLeader ?? relay.outbound,
    defaultQuotaBytes: config.limits.maxMailboxBytes,
    metrics,
    log,
    now,
    loginThrottle: services.loginThrottle,
  });
  const httpConfig = {
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
      maxRecipients: config.limits.maxRecipients,
      maxMailboxBytes: config.limits.maxMailboxBytes,
      sendPerMinute: config.limits.sendPerMinute,
      deleteMailsAfterDays: config.retention.deleteMailsAfterDays,
      deleteLargeAfterDays: config.retention.deleteLargeAfterDays,
      deleteInactiveUsersAfterDays: config.retention.deleteInactiveUsersAfterDays,
    },
  };
  const acmeChallenge = (token: string) => relay.acme?.challengeResponse(token) ?? null;
  const app = createHttpApp({
    config: httpConfig,
    accounts: services.accounts,
    settings: services.settings,
    consumeRegistrationToken: (t) => services.store.consumeToken(t, now()),
    acmeChallenge,
    async mxdeliv(envelope) {
      const answer = (r: { code: number; enhanced: string; text: string }) => ({
        status: r.code < 400 ? 200 : 400,
        text: r.enhanced ? `${r.code} ${r.enhanced} ${r.text}` : `${r.code} ${r.text}`,
      });
      // /mxdeliv has one reply for all recipients: an unknown one refuses the request before
      // the body is read, so the sender learns it per recipient (it asks again for each)
      // instead of it being dropped.
      for (const rcpt of envelope.recipients) {
        const r = await services.delivery.checkRecipient(rcpt, "inbound");
        if (r) return answer(r);
      }
      const tx = services.delivery.beginReceive(envelope);
      return {
        write: (chunk: Uint8Array) => tx.write(chunk),
        async end() {
          let r;
          try {
            r = (await tx.end()).reply;
          } catch (err) {
            r = storageFailure(err, log);
          }
          if (r.code < 400) metrics.messagesReceived.inc({ via: "mxdeliv" });
          return answer(r);
        },
        abort: () => tx.abort(),
      };
    },
    admin,
    routes: [iroh.routes],
    log,
    now,
  });
  const http = async (
    name: ListenerName,
    a: Parameters<typeof startHttpServer>[0]["app"],
    tls: boolean,
    takeover?: UpgradeHook,
  ) => {
    if (!config.listen[name]) return;
    const s = await startHttpServer({
      address: config.listen[name],
      app: a,
      tls: tls ? () => ({ certPem: relay.tls.certPem, keyPem: relay.tls.keyPem }) : undefined,
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      headerTimeoutMs: config.limits.httpHeaderTimeoutMs,
      takeover,
    });
    stoppables.push(s);
    if (tls) reloaders.push(() => s.reload());
    addresses[name] = formatHostPort(s.hostname, s.port);
    // Links and redirects name the port actually bound (port 0 in tests picks one).
    if (name === "https") httpConfig.ports.https = s.port;
  };
  try {
    await http("https", app, true, iroh.upgrade(() => true));
    // Port 80 only answers ACME challenges and redirects to HTTPS, except for the iroh relay while
    // it is offered over plain HTTP (iroh clients refuse a self-signed certificate; the relayed
    // QUIC traffic is end-to-end encrypted either way).
    const redirect = httpsRedirectApp({ config: httpConfig, acmeChallenge });
    const plain = new Hono();
    plain.all("*", (c, next) => iroh.overPlainHttp() ? next() : redirect.fetch(c.req.raw, c.env));
    plain.route("/", iroh.routes);
    plain.all("*", (c) => redirect.fetch(c.req.raw, c.env));
    await http("http", plain, false, iroh.upgrade(() => iroh.overPlainHttp()));
    await http("metrics", createMetricsApp({ metricsText: () => metrics.render() }), false);
    // Shutdown (stoppables close in reverse): every mail listener stops accepting at once, then
    // their sessions drain together within the grace (a listener closed after another's grace
    // would keep answering meanwhile); before the HTTP listeners.
    stoppables.push({
      close: () => Promise.all(mail.map((l) => l.close(config.shutdownGraceMs))).then(() => {}),
    });
    // Stopped first: relay clients hear that tern restarts before the listeners close.
    stoppables.push({ close: () => Promise.resolve(iroh.close()) });
  } catch (err) {
    await Promise.all(mail.map((l) => l.close(0)));
    for (const s of stoppables.reverse()) await s.close();
    throw err;
  }
  return {
    stoppables,
    addresses,
    reloadTls: async () => {
      for (const r of reloaders) await r();
    },
  };
}

async function startMailListeners(
  ctx: ProtocolContext,
  metrics: RelayMetrics,
  iroh: Iroh,
  stoppables: Stoppable[],
  addresses: Partial<Record<ListenerName, string>>,
  mail: Listener[],
) {
  const { relay, log } = ctx;
  const { config, services } = relay;
  const backend = smtpBackend(services, log, metrics);
  const smtp: [ListenerName, "inbound" | "submission", boolean][] = [
    ["smtp", "inbound", false],
    ["submission", "submission", false],
    ["submissions", "submission", true],
  ];
  for (const [name, mode, implicitTls] of smtp) {
    if (!config.listen[name]) continue;
    const listener = await startSmtpServer({
      address: config.listen[name],
      mode,
      implicitTls,
      tls: ctx.tls,
      minTlsVersion: mode === "inbound"
        ? config.tlsPolicy.smtpMinVersion
        : config.tlsPolicy.clientMinVersion,
      requireTls: mode === "inbound" && config.tlsPolicy.smtpRequireStarttls,
      hostname: config.hostname,
      mailDomain: config.mailDomain,
      maxMessageBytes: config.limits.maxMessageBytes,
      maxRecipients: config.limits.maxRecipients,
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      handshakeTimeoutMs: ctx.handshakeTimeoutMs,
      dataTimeoutMs: ctx.smtpDataTimeoutMs,
      backend,
      log,
      hooks: {
        onConnection() {
          metrics.smtpSessions.inc({ listener: name });
          metrics.smtpConnections.inc({ listener: name });
        },
        onDisconnect: () => metrics.smtpConnections.inc({ listener: name }, -1),
        onEnd(reason, tls) {
          metrics.connectionEnds.inc({ listener: name, reason });
          if (tls) metrics.tlsConnections.inc({ listener: name, engine: tls });
        },
        onReply(stage, reply) {
          metrics.smtpResults.inc({
            listener: name,
            class: smtpReplyClass(reply.code),
            reason: replyReason(stage, reply),
          });
        },
        onResult(kind, code) {
          if (code < 300) {
            metrics.messagesReceived.inc({ via: kind === "inbound" ? "smtp" : "submission" });
          }
        },
      },
    });
    mail.push(listener);
    addresses[name] = listener.address;
  }
  // TURN starts in the background: finding the public address may wait on DNS, and calls are
  // not needed for the relay to be up.
  let turn: Turn = { server: null, credentials: () => null, close: () => Promise.resolve() };
  const turnStarting = startTurn({
    config,
    settings: services.settings,
    dns: services.dns,
    log,
    now: ctx.now,
  }).then((t) => (turn = t));
  stoppables.push({ close: () => turnStarting.then((t) => t.close()) });
  const metadata = new MetadataService({
    store: services.store,
    irohRelay: () => iroh.url(),
    turnCredentials: () => turn.credentials(),
    maxSmtpRecipients: config.limits.maxRecipients,
    appVersions: () => services.settings.get("app_versions"),
    adminContact: config.adminContact && !config.adminContact.includes(":")
      ? `mailto:${config.adminContact}`
      : config.adminContact,
    comment: "",
    now: ctx.now,
    log,
  });
  const imap = imapBackend(services, metadata, log);
  const imapListeners: [ListenerName, boolean][] = [["imap", false], ["imaps", true]];
  for (const [name, implicitTls] of imapListeners) {
    if (!config.listen[name]) continue;
    const listener = await startImapServer({
      address: config.listen[name],
      implicitTls,
      tls: ctx.tls,
      minTlsVersion: config.tlsPolicy.clientMinVersion,
      tlsEngine: config.tlsPolicy.imapEngine,
      config: {
        hostname: config.hostname,
        maxMessageBytes: config.limits.maxMessageBytes,
        onIdle: (d) => metrics.imapIdleSessions.inc(undefined, d),
        idleNotifyMs: ctx.imapIdleNotifyMs,
        loginDeadlineMs: ctx.imapLoginDeadlineMs,
        commandDeadlineMs: ctx.imapCommandDeadlineMs,
      },
      maxConnections: config.limits.maxConnections,
      maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
      handshakeTimeoutMs: ctx.handshakeTimeoutMs,
      backend: imap,
      log,
      hooks: {
        onConnection() {
          metrics.imapSessions.inc({ listener: name });
          metrics.imapConnections.inc({ listener: name });
        },
        onDisconnect: () => metrics.imapConnections.inc({ listener: name }, -1),
        onEnd(reason, tls) {
          metrics.connectionEnds.inc({ listener: name, reason });
          if (tls) metrics.tlsConnections.inc({ listener: name, engine: tls });
        },
      },
    });
    mail.push(listener);
    addresses[name] = listener.address;
  }
}

/** A short, bounded label for why an SMTP reply was given (metrics never carry free text). */
export function replyReason(
  stage: "auth" | "mail" | "rcpt" | "data",
  reply: { code: number; enhanced: string; text: string },
): string {
  const { code, enhanced, text } = reply;
  if (code < 400) return stage === "data" ? "accepted" : `${stage}_ok`;
  if (code === 523) return "encryption";
  if (text.includes("Too much mail")) return "rate_limit";
  if (code === 535 || code === 454) return "auth_failed";
  if (enhanced === "5.2.2") return "quota";
  if (code === 552) return "size";
  if (code === 553) return "sender";
  if (enhanced === "5.7.1" && text.includes("Relay access denied")) return "relay_denied";
  if (enhanced === "5.1.1") return "unknown_recipient";
  if (code === 554 && /DKIM/.test(text)) return "dkim";
  if (code === 452 && enhanced === "4.3.1") return "storage";
  if (code === 452) return "too_many_recipients";
  if (code === 500 && /FROM/i.test(text)) return "from_header";
  if (code === 500 || code === 501) return "syntax";
  return stage;
}
