// Adapts the account, mailbox and metadata services (and the event bus) to the IMAP edge.

import { isRelayError } from "../errors.ts";
import type { ImapBackend } from "../imap/mod.ts";
import type { MetadataService } from "../discovery/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Services } from "./services.ts";

export function imapBackend(
  services: Services,
  metadata: MetadataService,
  log: Logger,
): ImapBackend {
  return {
    async authenticate(user, password, ip, authzid) {
      try {
        const account = await services.accounts.authenticate(user, password, { ip, authzid });
        return { user: { accountId: account.id, address: account.address } };
      } catch (err) {
        if (isRelayError(err, "rate_limited")) {
          return { error: "unavailable", message: err.message };
        }
        if (isRelayError(err)) return { error: "auth_failed", message: "Authentication failed" };
        log.error("imap authentication failed", { error: String(err) });
        return { error: "unavailable", message: "Temporary authentication failure" };
      }
    },
    mailboxes: services.mailboxes,
    metadata,
    watch(accountId, onChange) {
      return services.bus.subscribeAccount(accountId, (e) => {
        switch (e.type) {
          case "mail.delivered":
          case "mailbox.changed":
            return onChange({ kind: "mailbox", mailboxId: e.mailboxId });
          case "mailboxes.changed":
            return onChange({ kind: "list" });
          case "account.deleted":
            return onChange({ kind: "gone" });
        }
      });
    },
  };
}
