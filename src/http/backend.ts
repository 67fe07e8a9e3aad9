// What the public HTTP edge needs from the rest of the relay. The composition root adapts the
// services to these narrow interfaces; tests pass small real or recording implementations.

import type { Hono } from "hono";
import type { Logger } from "../log/mod.ts";

/** Ports as mail clients should use them (0: not offered). */
export interface ClientPorts {
  imaps: number;
  imap: number;
  submissions: number;
  submission: number;
  /** Port of the public HTTPS site, for dcaccount: links (443 in production). */
  https: number;
}

export interface HttpConfig {
  /** As used in addresses: "example.org" or "[192.0.2.1]". */
  mailDomain: string;
  /** Host name of the mail server (IMAP/SMTP). */
  hostname: string;
  isIpDomain: boolean;
  /** True while the served certificate is our own (clients must accept invalid certificates). */
  selfSigned: boolean;
  ports: ClientPorts;
  /** Operator contact from the static config; the admin_contact setting overrides it. */
  adminContact: string;
  limits: {
    maxMessageBytes: number;
    /** Recipients of one message (max_recipients); /mxdeliv refuses more. */
    maxRecipients: number;
    maxMailboxBytes: number;
    sendPerMinute: number;
    deleteMailsAfterDays: number;
    deleteLargeAfterDays: number;
    deleteInactiveUsersAfterDays: number;
  };
}

export interface HttpAccounts {
  /** Fresh random credentials; nothing is stored (the first login creates the account). */
  generateCredentials(): { email: string; password: string };
  /** Lets the first login of this address create it while registration needs a token. */
  reserve(address: string): Promise<void>;
}

export type HttpSettingKey = "registration" | "jit_enabled" | "admin_contact";

export interface HttpSettings {
  get(key: HttpSettingKey): string;
}

export interface MxdelivEnvelope {
  /** Reverse path; "" when X-Mail-From is missing. */
  mailFrom: string;
  recipients: string[];
}

/** The answer to a /mxdeliv request: an HTTP status with an SMTP-style reply line as text. */
export interface MxdelivAnswer {
  status: number;
  text: string;
}

/**
 * One message arriving over /mxdeliv, streamed as the request body is read: write() each piece
 * (resolves when more may come; never rejects), then end() (the answer; 200 only once stored) or
 * abort() (too large, or the peer went away: nothing is kept). Exactly one of the two is called.
 */
export interface MxdelivDelivery {
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<MxdelivAnswer>;
  abort(): Promise<void>;
}

/** Inbound federation delivery: starts taking in a message, or answers at once. */
export type MxdelivHandler = (
  envelope: MxdelivEnvelope,
) => Promise<MxdelivDelivery | MxdelivAnswer>;

export interface RateLimit {
  perSecond: number;
  burst: number;
}

export interface HttpDeps {
  config: HttpConfig;
  accounts: HttpAccounts;
  settings: HttpSettings;
  /** Counts one use of a registration token; false when unknown, used up or expired. */
  consumeRegistrationToken(token: string): Promise<boolean>;
  /** Absent until federation is wired: POST /mxdeliv then answers 503. */
  mxdeliv?: MxdelivHandler;
  /** ACME HTTP-01: the key authorization for a token, or null. */
  acmeChallenge?: (token: string) => string | null;
  /** Admin API and web admin, mounted at the root (they own /api/admin and /admin). */
  admin?: Hono;
  /** More routes mounted at the root (the iroh relay's /ping, /generate_204, /relay). */
  routes?: Hono[];
  log?: Logger;
  /** Clock for the per-address rate limit of /new. */
  now?: () => number;
  /** Per client address for /new; default 2 per second, burst 5 (the reference nginx). */
  newAccountRateLimit?: RateLimit;
}

export interface MetricsAppDeps {
  metricsText(): string | Promise<string>;
}
