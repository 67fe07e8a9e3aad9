// Builds the relay's services over one store: the single place that knows the concrete store.
// Used by the server and by every CLI command, so both share the same logic.

import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import { openSqliteStore, type SqliteStore, startSqliteStore } from "../store/sqlite/mod.ts";
import { EventBus } from "../events/mod.ts";
import { SettingsService } from "../settings/mod.ts";
import { AccountService } from "../accounts/mod.ts";
import { LoginThrottle } from "../auth/mod.ts";
import { MailboxService } from "../mailbox/mod.ts";
import { DeliveryService } from "../delivery/mod.ts";
import { databasePath, ensureDataDir } from "./data_dir.ts";
import { type DnsResolver, systemResolver } from "../federation/mod.ts";
import { federationAllowed, originCheck } from "./federation.ts";

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
  store: SqliteStore;
  bus: EventBus;
  settings: SettingsService;
  accounts: AccountService;
  /** One throttle for IMAP, SMTP AUTH and the admin token (per client address and account). */
  loginThrottle: LoginThrottle;
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
    loginThrottle?: LoginThrottle;
    /** The server: store threads with group commit (CLI commands use one connection). */
    threaded?: boolean;
    log?: Logger;
  } = {},
): Promise<Services> {
  ensureDataDir(config.dataDir);
  const path = databasePath(config.dataDir);
  const store = options.threaded
    ? await startSqliteStore(path, { now: options.now })
    : openSqliteStore(path, { now: options.now });
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
    const loginThrottle = options.loginThrottle ?? new LoginThrottle({ now: options.now });
    const accounts = new AccountService({
      store,
      settings,
      bus,
      domain: config.mailDomain,
      now: options.now,
      throttle: loginThrottle,
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
    const delivery = new DeliveryService({
      store,
      bus,
      accounts,
      now: options.now,
      checkOrigin: originCheck(
        federationAllowed(settings, store),
        dns,
        store,
        options.now ?? Date.now,
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
      bus,
      settings,
      accounts,
      loginThrottle,
      mailboxes,
      delivery,
      dns,
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
