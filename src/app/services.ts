// Builds the relay's services over one store: the single place that knows the concrete store.
// Used by the server and by every CLI command, so both share the same logic.

import type { Config } from "../config/mod.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";
import type { Store } from "../store/types.ts";
import { EventBus } from "../events/mod.ts";
import { SettingsService } from "../settings/mod.ts";
import { AccountService } from "../accounts/mod.ts";
import { MailboxService } from "../mailbox/mod.ts";
import { DeliveryService } from "../delivery/mod.ts";
import { databasePath, ensureDataDir } from "./data_dir.ts";
import { type DnsResolver, systemResolver } from "../federation/mod.ts";
import { federationAllowed, originCheck, ReceivedCounter } from "./federation.ts";

export interface Services {
  config: Config;
  store: Store & { db: { path: string } };
  bus: EventBus;
  settings: SettingsService;
  accounts: AccountService;
  mailboxes: MailboxService;
  delivery: DeliveryService;
  dns: DnsResolver;
  close(): void;
}

export async function openServices(
  config: Config,
  options: { now?: () => number; dns?: DnsResolver } = {},
): Promise<Services> {
  ensureDataDir(config.dataDir);
  const store = openSqliteStore(databasePath(config.dataDir), { now: options.now });
  try {
    const bus = new EventBus();
    const settings = new SettingsService({ store, bus });
    await settings.load();
    const accounts = new AccountService({
      store,
      settings,
      bus,
      domain: config.mailDomain,
      now: options.now,
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
      bus,
      settings,
      accounts,
      mailboxes,
      delivery,
      dns,
      close() {
        // The counts of the last second first (the store takes the write before it closes).
        received.flush();
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
