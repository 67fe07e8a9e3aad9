// Builds the relay's services over one store: the single place that knows the concrete store.
// Used by the server and by every CLI command, so both share the same logic.

import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import { openSqliteStore, type SqliteStore, startSqliteStore } from "../store/sqlite/mod.ts";
import type { PostgresStore } from "../store/postgres/mod.ts";
import type { Store } from "../store/types.ts";
import { EventBus } from "../events/mod.ts";
import { SettingsService } from "../settings/mod.ts";
import { AccountService } from "../accounts/mod.ts";
import { type LoginGate, LoginThrottle, type LoginThrottleOptions } from "../auth/mod.ts";
import { MailboxService } from "../mailbox/mod.ts";
import { DeliveryService } from "../delivery/mod.ts";
import { databasePath, ensureDataDir } from "./data_dir.ts";
import { type DnsResolver, systemResolver } from "../federation/mod.ts";
import {
  federationAllowed,
  originCheck,
  outboundAddressPolicy,
  ReceivedCounter,
} from "./federation.ts";
import { SharedCreationRate, SharedLoginGate, SharedSendRate } from "./cluster.ts";

/** The operator's app versions document, read once at start; a clear error when unusable. */
function readAppVersionsFile(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(`Cannot read app_versions_file "${path}": ${(err as Error).message}`);
  }
}

export interface Services {
  config: Config;
  store: Store;
  /** The SQLite store (data steps of an upgrade, backups); null with PostgreSQL. */
  sqlite: SqliteStore | null;
  /** The PostgreSQL store (state shared by instances); null with SQLite. */
  postgres: PostgresStore | null;
  bus: EventBus;
  settings: SettingsService;
  accounts: AccountService;
  /**
   * One throttle for IMAP, SMTP AUTH and the admin token (per client address and account): in
   * memory, or in the PostgreSQL store (shared by every instance).
   */
  loginThrottle: LoginGate;
  mailboxes: MailboxService;
  delivery: DeliveryService;
  dns: DnsResolver;
  /** Waits for writes in flight, then closes the store. */
  close(): Promise<void>;
}

export async function openServices(
  config: Config,
  options: {
    now?: () => number;
    dns?: DnsResolver;
    /** Login throttle rules (tests set small limits). */
    loginThrottle?: LoginThrottleOptions;
    /** The server: store threads with group commit (CLI commands use one connection). */
    threaded?: boolean;
    log?: Logger;
  } = {},
): Promise<Services> {
  ensureDataDir(config.dataDir);
  let sqlite: SqliteStore | null = null;
  let postgres: PostgresStore | null = null;
  if (config.store === "postgres") {
    // Loaded only here: a relay on SQLite does not carry the PostgreSQL client (about 0.9 MB of
    // JavaScript heap).
    const { startPostgresStore } = await import("../store/postgres/mod.ts");
    // The server's pool serves reads and group commits; a CLI command needs a few connections.
    postgres = await startPostgresStore(config.databaseUrl, {
      now: options.now,
      poolSize: options.threaded ? 10 : 2,
      name: `tern ${Deno.hostname()} ${Deno.pid}`,
    });
  } else {
    const path = databasePath(config.dataDir);
    sqlite = options.threaded
      ? await startSqliteStore(path, { now: options.now, soleSender: true })
      : openSqliteStore(path, { now: options.now });
  }
  const store: Store = (postgres ?? sqlite)!;
  try {
    const bus = new EventBus();
    const settings = new SettingsService({
      store,
      bus,
      defaults: config.appVersionsFile
        ? { app_versions: readAppVersionsFile(config.appVersionsFile) }
        : {},
    });
    await settings.load();
    // Several instances on PostgreSQL decide limits together; one SQLite process in memory.
    const throttleOptions = { now: options.now, ...options.loginThrottle };
    const loginThrottle = postgres
      ? new SharedLoginGate(postgres, throttleOptions)
      : new LoginThrottle(throttleOptions);
    const accounts = new AccountService({
      store,
      settings,
      bus,
      domain: config.mailDomain,
      adminContact: config.adminContact,
      now: options.now,
      throttle: loginThrottle,
      creations: postgres ? new SharedCreationRate(postgres) : undefined,
      log: options.log,
      limits: {
        usernameMinLength: config.limits.usernameMinLength,
        usernameMaxLength: config.limits.usernameMaxLength,
        passwordMinLength: config.limits.passwordMinLength,
        maxCreationsPerIpPerHour: config.limits.jitMaxPerIpPerHour,
      },
    });
    const mailboxes = new MailboxService({
      store,
      bus,
      defaultQuotaBytes: config.limits.maxMailboxBytes,
      now: options.now,
    });
    const dns = options.dns ?? systemResolver(config.dnsServer);
    const received = new ReceivedCounter(store, options.now ?? Date.now);
    const delivery = new DeliveryService({
      store,
      bus,
      accounts,
      now: options.now,
      sendRate: postgres
        ? new SharedSendRate(postgres, {
          perMinute: config.limits.sendPerMinute,
          burst: config.limits.sendBurst,
        })
        : undefined,
      reporter: { domain: config.mailDomain, hostname: config.hostname },
      refuseAddress: outboundAddressPolicy(config),
      checkOrigin: originCheck(
        federationAllowed(settings, store),
        dns,
        received,
        (domain) => bus.publish({ type: "federation.received", domain }),
      ),
      limits: {
        maxMessageBytes: config.limits.maxMessageBytes,
        maxRecipients: config.limits.maxRecipients,
        defaultQuotaBytes: config.limits.maxMailboxBytes,
        sendPerMinute: config.limits.sendPerMinute,
        sendBurst: config.limits.sendBurst,
      },
    });
    return {
      config,
      store,
      sqlite,
      postgres,
      bus,
      settings,
      accounts,
      loginThrottle,
      mailboxes,
      delivery,
      dns,
      async close() {
        // The counts of the last second first.
        await received.flush();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
