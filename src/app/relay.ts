// The composition root: opens the store, builds the services, starts every configured listener
// and background worker, and stops them all again. Two relays can run in one process.

import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Config, ListenerName } from "../config/mod.ts";
import { createLogger } from "../log/mod.ts";
import type { Logger } from "../log/mod.ts";
import { loadTlsMaterial, resolvingFetch, serverTls } from "../net/mod.ts";
import type { TlsMaterial } from "../net/mod.ts";
import { openServices } from "./services.ts";
import type { Services } from "./services.ts";
import { readOrCreateSecret, tightenDataDir } from "./data_dir.ts";
import { startProtocols } from "./protocols.ts";
import type {
  BackoffPolicy,
  Deadlines,
  DnsResolver,
  OutboundService,
  PeerPorts,
} from "../federation/mod.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import { VERSION } from "../version.ts";
import { createOutbound } from "./federation.ts";
import { OutboundLeader } from "./outbound_leader.ts";
import { PushService } from "../push/mod.ts";
import type { Maintenance } from "../tasks/mod.ts";
import { createMaintenance } from "./maintenance.ts";
import type { AcmeManager } from "../acme/mod.ts";
import type { LoginThrottleOptions } from "../auth/mod.ts";
import { Cluster } from "./cluster.ts";

export interface RelayOptions {
  log?: Logger;
  now?: () => number;
  /** Replaces fetch for outgoing HTTP (push, /mxdeliv) in tests. */
  fetch?: typeof fetch;
  /** DNS for federation; tests inject a local one. */
  dns?: DnsResolver;
  /**
   * Ports of other relays (tests run peers on unprivileged ports, per address), CAs to trust,
   * and shorter deadlines and backoff for tests.
   */
  federation?: {
    ports?: PeerPorts | ((address: string) => PeerPorts);
    caCerts?: string[];
    deadlines?: Partial<Deadlines>;
    backoff?: BackoffPolicy;
  };
  /** Leaves the outbound worker stopped (tests drive it by hand). */
  manualQueue?: boolean;
  /** ACME server to trust (tests against pebble). */
  acmeCaCerts?: string[];
  /** How long an implicit-TLS client may take to finish its handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  /** IMAP IDLE's `* OK Still here` interval (default 2 min, as Dovecot). */
  imapIdleNotifyMs?: number;
  /** How long after connecting an IMAP client must have logged in (default 3 min, as Dovecot). */
  imapLoginDeadlineMs?: number;
  /** After IMAP login, how long one command may take to arrive from its first byte (5 min). */
  imapCommandDeadlineMs?: number;
  /** SMTP DATA's idle limit and the grace of its minimum-rate deadline (default 10 min). */
  smtpDataTimeoutMs?: number;
  /** Login throttling (tests set small limits to see refusals without waiting). */
  loginThrottle?: LoginThrottleOptions;
  /**
   * Aborts the start (SIGTERM while the database migrates or connects, for instance): what was
   * started is stopped again and startRelay rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

/**
 * `p`, or a rejection as soon as `signal` aborts; what `p` then brings is handed to `discard`.
 * Steps that cannot be cut short themselves (opening the store) do not hold up a stop.
 */
function unlessAborted<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
  discard: (value: T) => Promise<void>,
): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      p.then(discard).catch(() => undefined);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener("abort", onAbort);
      resolve(v);
    }, (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(err);
    });
  });
}

export interface Relay {
  readonly config: Config;
  readonly services: Services;
  /** Bound "host:port" per running listener. */
  readonly addresses: Partial<Record<ListenerName, string>>;
  readonly tls: TlsMaterial;
  readonly adminToken: string;
  readonly startedAt: number;
  /**
   * The outbound worker. Several instances on PostgreSQL: a worker never started (it answers
   * the destinations summary); `outboundLeader` runs the real one while this instance holds the
   * lock.
   */
  readonly outbound: OutboundService;
  /** Several instances on PostgreSQL: who runs the outbound worker; else null. */
  readonly outboundLeader: OutboundLeader | null;
  readonly push: PushService;
  readonly maintenance: Maintenance;
  /** Several instances on one PostgreSQL store: the bridge and the others' figures; else null. */
  readonly cluster: Cluster | null;
  /** Certificates from ACME, when acme_email is set for a named domain without tls_cert. */
  readonly acme: AcmeManager | null;
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
  // Everything the relay keeps is for its own eyes: a restore, a copy or an older release may
  // have left the database or keys readable by others. Looked at before this start creates
  // anything, so that only what was found too open is reported.
  if (existsSync(config.dataDir)) {
    const perms = tightenDataDir(config.dataDir);
    if (perms.changed.length) {
      log.system(`data_dir permissions tightened: ${perms.changed.join(", ")}`);
    }
    for (const f of perms.failed) log.system(`data_dir permissions not tightened: ${f}`);
  }
  const signal = options.signal;
  signal?.throwIfAborted();
  const services = await unlessAborted(
    openServices(config, {
      now: options.now,
      dns: options.dns,
      loginThrottle: options.loginThrottle,
      threaded: true,
      log,
    }),
    signal,
    (s) => s.close(),
  );
  const stoppables: Stoppable[] = [];
  const stopAll = async () => {
    for (const s of stoppables.reverse()) {
      await s.close().catch((err) => log.error("stop failed", { err }));
    }
    await services.close();
  };
  // With dns_server set (or a resolver given), outgoing HTTP finds its hosts through that
  // resolver too: push notifications and ACME never ask the system's resolver or /etc/hosts.
  const resolveHost = config.dnsServer || options.dns
    ? (host: string) => services.dns.addresses(host)
    : undefined;
  const httpFetch = options.fetch ??
    (resolveHost ? resolvingFetch(resolveHost) as typeof fetch : undefined);
  try {
    stoppables.push(upgradeData(services, log));
    // Instances on one PostgreSQL store hear each other's events from here on.
    const cluster = services.postgres ? new Cluster(services.postgres, services.bus, log) : null;
    if (cluster) {
      await cluster.start();
      stoppables.push(cluster);
      signal?.throwIfAborted();
      // A setting changed on another instance applies here at once (the timer below catches
      // changes made by the CLI).
      const offSettings = services.bus.subscribeAll((e) => {
        if (e.type === "settings.changed" && e.remote) {
          services.settings.load().catch((err) => log.error("settings reload failed", { err }));
        }
      });
      stoppables.push({ close: () => Promise.resolve(offSettings()) });
    }
    const tlsNames: string[] = config.isIpDomain
      ? [config.hostname, config.domain, "localhost", "127.0.0.1"]
      : [
        config.hostname,
        config.domain,
        `mta-sts.${config.domain}`,
        `www.${config.domain}`,
        "localhost",
        "127.0.0.1",
      ];
    // A generated certificate also names the addresses the relay listens on.
    for (const a of Object.values(config.listen)) {
      const host = a ? a.slice(0, a.lastIndexOf(":")).replace(/^\[|\]$/g, "") : "";
      const specific = /^[\d.]+$/.test(host)
        ? host !== "0.0.0.0"
        : host.includes(":") && host !== "::";
      if (specific && !tlsNames.includes(host)) {
        tlsNames.push(host);
      }
    }
    // The ACME modules load only for a relay that uses ACME (idle memory of the others).
    const acmeLib = !config.tlsCert && !config.tlsKey && config.acmeEmail
      ? await import("../acme/mod.ts")
      : null;
    const acmeNames = acmeLib?.acmeDomains(config.domain, config.hostname) ?? [];
    const acme = acmeLib && acmeNames.length
      ? new acmeLib.AcmeManager({
        directoryUrl: config.acmeDirectory,
        email: config.acmeEmail,
        domains: acmeNames,
        dir: join(config.dataDir, "acme"),
        log,
        caCerts: options.acmeCaCerts,
        resolve: resolveHost,
      })
      : null;
    // Operator files first, then an ACME certificate, else the generated self-signed one.
    const loadTls = () => {
      const issued = acme?.certificateFiles();
      return loadTlsMaterial({
        certFile: config.tlsCert || issued?.certPath,
        keyFile: config.tlsKey || issued?.keyPath,
        dir: join(config.dataDir, "tls"),
        names: tlsNames,
      });
    };
    let tls = await loadTls();
    signal?.throwIfAborted();
    let listenerTls = serverTls(tls);
    const adminToken = config.adminToken || readOrCreateSecret(config.dataDir, "admin_token");

    // Settings written by the CLI (another process) take effect without a restart.
    const settingsTimer = setInterval(() => {
      services.settings.load().catch((err) => log.error("settings reload failed", { err }));
    }, 2000);
    stoppables.push({ close: () => Promise.resolve(clearInterval(settingsTimer)) });

    const metrics = createRelayMetrics({ version: VERSION, now: options.now });
    const newOutbound = () =>
      createOutbound({
        config,
        store: services.store,
        settings: services.settings,
        delivery: services.delivery,
        dns: services.dns,
        log,
        now: options.now ?? Date.now,
        metrics,
        ...options.federation,
      });
    const outbound = newOutbound();
    // Several instances: the one holding the outbound lock runs the worker (outbound_leader.ts).
    const outboundLeader = cluster && !options.manualQueue
      ? new OutboundLeader({
        lock: services.postgres!.leaderLock("outbound"),
        create: newOutbound,
        idle: outbound,
        store: services.store,
        bus: services.bus,
        log,
        now: options.now,
      })
      : null;
    if (outboundLeader) {
      services.delivery.onQueued = () => outboundLeader.queued();
      stoppables.push(outboundLeader);
      await outboundLeader.start();
    } else if (!options.manualQueue) {
      services.delivery.onQueued = () => outbound.kick();
      outbound.start();
    }
    // Mail from a peer shows it is up: its deferred mail goes now.
    const offReceived = services.bus.subscribeAll((e) => {
      if (e.type === "federation.received") outbound.peerAnswered(e.domain);
    });
    stoppables.push({
      close: () => {
        offReceived();
        return outbound.stop();
      },
    });

    const push = new PushService({
      store: services.store,
      url: () => config.pushUrl,
      enabled: () => services.settings.bool("push_enabled"),
      fetch: httpFetch,
      now: options.now,
      log,
    });
    const maintenance = createMaintenance(services, {
      now: options.now,
      log,
      // Each scheduled task runs on one instance per period.
      claim: cluster
        ? (task, periodMs) =>
          services.postgres!.shared.claimTask(
            task,
            cluster.instance,
            (options.now ?? Date.now)(),
            periodMs,
          )
        : undefined,
    });
    const offDelivered = services.bus.subscribeAll((e) => {
      // The instance that stored the message notifies and trims, once.
      if (e.type !== "mail.delivered" || e.remote) return;
      // Mail the recipient sent itself (bcc-self, other devices) wakes no phone, as the reference.
      // The event carries what the delivery's transaction saw: an account without push tokens
      // or well under its quota costs no read here.
      if (!e.fromSelf) {
        push.notify(e.accountId, e).catch((err) => log.error("push queueing failed", { err }));
      }
      maintenance.trimQuota(e.accountId, e).catch((err) => log.error("quota trim failed", { err }));
    });
    if (!options.manualQueue) {
      push.start();
      maintenance.start();
    }
    stoppables.push({
      close: async () => {
        offDelivered();
        await push.stop();
        await maintenance.stop();
      },
    });

    // What this start created (under the process umask) is closed too, without a report: it
    // was never open to anyone.
    for (const f of tightenDataDir(config.dataDir).failed) {
      log.system(`data_dir permissions not tightened: ${f}`);
    }

    let reloadHttps = () => Promise.resolve();
    const relay: Relay = {
      config,
      services,
      addresses: {},
      get tls() {
        return tls;
      },
      adminToken,
      startedAt: Date.now(),
      outbound,
      outboundLeader,
      push,
      maintenance,
      cluster,
      acme,
      async reloadTls() {
        tls = await loadTls();
        listenerTls = serverTls(tls);
        await reloadHttps();
      },
      close: stopAll,
      [Symbol.asyncDispose]: stopAll,
    };
    signal?.throwIfAborted();
    const started = await startProtocols({
      relay,
      log,
      tls: () => listenerTls,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      imapIdleNotifyMs: options.imapIdleNotifyMs,
      imapLoginDeadlineMs: options.imapLoginDeadlineMs,
      imapCommandDeadlineMs: options.imapCommandDeadlineMs,
      smtpDataTimeoutMs: options.smtpDataTimeoutMs,
      fetch: httpFetch ?? fetch,
      now: options.now ?? Date.now,
      metrics,
    });
    stoppables.push(...started.stoppables);
    reloadHttps = started.reloadTls;
    if (acme) {
      // The HTTP listener is up: challenges can be answered. A new certificate is taken up by
      // every listener at once.
      acme.start(12 * 3600_000, () => relay.reloadTls());
      stoppables.push({ close: () => acme.stop() });
    }
    Object.assign(relay.addresses, started.addresses);
    signal?.throwIfAborted();
    return relay;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The upgrade's data steps (store/sqlite/data_steps.ts) in the background: slices between other
 * writes, progress in the log, stopped (and resumed at the next start) on shutdown.
 */
function upgradeData(services: Services, log: Logger): Stoppable {
  // PostgreSQL databases are made by `tern migrate-store`, in their final form: no data steps.
  if (!services.sqlite) return { close: () => Promise.resolve() };
  const stop = new AbortController();
  let shown = -1;
  const done = services.sqlite.migrateData({
    vacuum: "small",
    signal: stop.signal,
    onProgress(p) {
      const pct = Math.floor((100 * p.done) / Math.max(1, p.total));
      if (p.step === "bodies" && pct < shown + 10 && p.done < p.total) return;
      shown = p.step === "bodies" ? pct : shown;
      log.info("store upgrade", { step: p.step, done: p.done, total: p.total });
    },
  }).then((r) => {
    if (r.vacuumPending) {
      log.info(
        "store upgrade: run `tern migrate` at a quiet time to rebuild the database for incremental vacuum",
      );
    }
  }).catch((err) => log.error("store upgrade step failed", { error: String(err) }));
  return {
    close() {
      stop.abort();
      return done;
    },
  };
}
