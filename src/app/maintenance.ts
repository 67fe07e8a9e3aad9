// Builds the maintenance tasks over the services, for the server (scheduled) and the CLI.

import type { Logger } from "../log/mod.ts";
import { Maintenance } from "../tasks/mod.ts";
import type { Services } from "./services.ts";

export function createMaintenance(
  services: Services,
  options: {
    now?: () => number;
    log?: Logger;
    claim?: (task: string, periodMs: number) => Promise<boolean>;
  } = {},
) {
  const { config, store, bus } = services;
  return new Maintenance({
    store,
    retention: config.retention,
    defaultQuotaBytes: config.limits.maxMailboxBytes,
    onRemoved: (accountId, mailboxId) =>
      bus.publish({ type: "mailbox.changed", accountId, mailboxId }),
    onAccountDeleted: (accountId) => bus.publish({ type: "account.deleted", accountId }),
    claim: options.claim,
    now: options.now,
    log: options.log,
  });
}
