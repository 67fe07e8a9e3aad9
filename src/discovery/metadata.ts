// IMAP METADATA (RFC 5464) as the reference relay serves it (chatmail-relay.md §4.3): device
// tokens for push on INBOX, and server entries through which Delta Chat discovers the relay's
// iroh relay, TURN credentials, recipient limit and app versions.

import type { PushStore } from "../store/types.ts";
import type { Logger } from "../log/mod.ts";
import { silentLogger } from "../log/mod.ts";

export const DEVICE_TOKEN = "/private/devicetoken";
const TOKEN_LIFETIME_MS = 90 * 24 * 3600_000;
const MAX_TOKEN_BYTES = 4096;
/** Tokens kept per account: a bound on storage, not on the user (the newest always fits). */
const MAX_TOKENS = 20;
// deno-lint-ignore no-control-regex -- control characters are what it finds
const CONTROL = /[\x00-\x1f\x7f]/;

/** BADVALUE: the token holds a control character (a NUL would cut it short in the store). */
export type MetadataError =
  | "PERMISSIONDENIED"
  | "MAXSIZE"
  | "NONEXISTENT"
  | "BADVALUE";

export interface MetadataOptions {
  store: PushStore;
  /** The iroh relay URL offered now ("https://host", "http://host:port"), or null for none. */
  irohRelay: () => string | null;
  /** "host:port:user:password" when a TURN server runs, else null. */
  turnCredentials: () => string | null;
  maxSmtpRecipients: number;
  /** Compact JSON describing current app versions, or "" (read at each request: a setting). */
  appVersions: () => string;
  /** Operator contact (mailto: or URL), or "". */
  adminContact: string;
  /** Text describing the relay for /shared/comment, or "". */
  comment: string;
  now?: () => number;
  log?: Logger;
}

export class MetadataService {
  #o: MetadataOptions;
  #now: () => number;
  #log: Logger;

  constructor(options: MetadataOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? silentLogger;
  }

  /** Server entries (mailbox "") and per-mailbox entries; null is NIL. */
  async get(accountId: number, mailbox: string, entry: string): Promise<string | null> {
    const key = entry.toLowerCase();
    if (mailbox === "") return this.#server(key);
    if (mailbox === "INBOX" && key === DEVICE_TOKEN) {
      const tokens = await this.#o.store.listPushTokens(accountId, this.#now() - TOKEN_LIFETIME_MS);
      return tokens.length ? tokens.map((t) => t.token).join(" ") : null;
    }
    return null;
  }

  /** Entries below `prefix` (DEPTH 1/infinity): only the server entries that have values. */
  async list(accountId: number, mailbox: string, prefix: string): Promise<
    { entry: string; value: string }[]
  > {
    const names = mailbox === "" ? SERVER_ENTRIES : mailbox === "INBOX" ? [DEVICE_TOKEN] : [];
    const out: { entry: string; value: string }[] = [];
    const p = prefix.toLowerCase().replace(/\/$/, "");
    for (const name of names) {
      if (!name.startsWith(p + "/")) continue;
      const value = await this.get(accountId, mailbox, name);
      if (value !== null) out.push({ entry: name, value });
    }
    return out;
  }

  /**
   * Whether set() would refuse the value: a command setting several entries checks them all
   * first, so it sets all of them or none.
   */
  check(mailbox: string, entry: string, value: string | null): MetadataError | null {
    if (mailbox !== "INBOX" || entry.toLowerCase() !== DEVICE_TOKEN) return "PERMISSIONDENIED";
    if (value === null) return null;
    const token = value.trim();
    if (token === "" || /\s/.test(token)) return "PERMISSIONDENIED";
    if (CONTROL.test(token)) return "BADVALUE";
    if (new TextEncoder().encode(token).length > MAX_TOKEN_BYTES) return "MAXSIZE";
    return null;
  }

  /** Only the device token may be set; each SET adds a token, NIL removes them all. */
  async set(
    accountId: number,
    mailbox: string,
    entry: string,
    value: string | null,
  ): Promise<MetadataError | null> {
    const problem = this.check(mailbox, entry, value);
    if (problem) return problem;
    if (value === null) {
      await this.#o.store.removePushTokens(accountId);
      return null;
    }
    const token = value.trim();
    // A new token is never refused: a reinstalled app or a rotated token would otherwise get
    // no pushes until old tokens expire. At the limit the store drops the account's token set
    // longest ago, counting, dropping and adding in one step, so sessions on this and other
    // instances setting tokens at once cannot together pass the limit.
    const now = this.#now();
    const dropped = await this.#o.store.upsertPushToken(accountId, token, now, {
      max: MAX_TOKENS,
      notBefore: now - TOKEN_LIFETIME_MS,
    });
    if (dropped > 0) {
      this.#log.debug("push: oldest device tokens dropped for a new one", { accountId, dropped });
    }
    return null;
  }

  #server(key: string): string | null {
    const o = this.#o;
    switch (key) {
      case "/shared/vendor/deltachat/irohrelay":
        return o.irohRelay() || null;
      case "/shared/vendor/deltachat/turn":
        return o.turnCredentials();
      case "/shared/vendor/deltachat/maxsmtprecipients":
        return String(o.maxSmtpRecipients);
      case "/shared/vendor/deltachat/appversions":
        return o.appVersions() || null;
      case "/shared/admin":
        return o.adminContact || null;
      case "/shared/comment":
        return o.comment || null;
      default:
        return null;
    }
  }
}

const SERVER_ENTRIES = [
  "/shared/admin",
  "/shared/comment",
  "/shared/vendor/deltachat/appversions",
  "/shared/vendor/deltachat/irohrelay",
  "/shared/vendor/deltachat/maxsmtprecipients",
  "/shared/vendor/deltachat/turn",
];
