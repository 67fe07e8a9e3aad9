// What the admin API needs from the relay. The services (AccountService, SettingsService, Store)
// satisfy these interfaces as they are, so the composition root passes them straight in.

import type { Logger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import type { AccountRecord, Page, Store } from "../store/types.ts";

export interface AdminAccounts {
  readonly domain: string;
  generateCredentials(): { email: string; password: string };
  /** Throws RelayError account_exists / invalid_credentials_policy. */
  create(address: string, password: string): Promise<AccountRecord>;
  /** Throws RelayError account_not_found. */
  delete(address: string): Promise<void>;
  setBlocked(address: string, blocked: boolean): Promise<AccountRecord>;
  setPassword(address: string, password: string): Promise<void>;
  getAccount(address: string): Promise<AccountRecord | null>;
  list(query: { search?: string; offset?: number; limit?: number }): Promise<Page<AccountRecord>>;
}

export interface AdminSettingInfo {
  key: string;
  value: string;
  default: string;
  doc: string;
  kind: string;
  values?: readonly string[];
  /** Secret values are never sent to the client. */
  secret?: boolean;
}

export type AdminSettingKey =
  | "registration"
  | "jit_enabled"
  | "push_enabled"
  | "federation_mode"
  | "federation_allowlist";

export interface AdminSettings {
  all(): readonly AdminSettingInfo[];
  get(key: AdminSettingKey): string;
  /** Validates and stores; null resets to the default. Returns the effective value. */
  set(key: string, value: string | null): Promise<string>;
}

export type AdminStore = Pick<
  Store,
  | "listTokens"
  | "createToken"
  | "getToken"
  | "deleteToken"
  | "listBlocked"
  | "addBlocked"
  | "removeBlocked"
  | "listQueue"
  | "getQueueEntry"
  | "retryQueueEntry"
  | "deleteQueueEntry"
  | "countQueued"
  | "queueDestinations"
  | "listFederationStats"
  | "countPushJobs"
  | "countAccounts"
>;

/** Live figures for the dashboard (see createStatusProvider). */
export interface AdminStatus {
  version: string;
  started_at: number;
  uptime_seconds: number;
  accounts: number;
  /** Open connections per listener ("smtp", "submission", "imaps", …). */
  connections: Record<string, number>;
  idle_sessions: number;
  queue_length: number;
  messages_per_minute: { in: number; out: number };
  /** Messages per calendar minute, oldest first (may be empty). */
  history: { minute: number; in: number; out: number }[];
  /**
   * Several instances on one store: each one's figures (this one first). connections,
   * idle_sessions, messages_per_minute and history above are then the sums over them.
   */
  instances?: {
    id: string;
    host: string;
    started_at: number;
    connections: Record<string, number>;
    idle_sessions: number;
    messages_per_minute: { in: number; out: number };
    /** Milliseconds since its figures arrived (0 for this instance). */
    age_ms: number;
  }[];
  /** The iroh relay offered to clients (url null: none) and the embedded relay's counters. */
  iroh: {
    url: string | null;
    clients: number;
    relayed_packets: number;
    relayed_bytes: number;
    dropped: number;
  };
}

/** One destination of the outbound queue as the scheduler sees it. */
export interface AdminDestination {
  domain: string;
  pending: number;
  deferred: number;
  oldestAt: number | null;
  nextAttemptAt: number | null;
  lastError: string | null;
  /** "backoff": the peer does not answer and is retried later. */
  state: "open" | "backoff";
  /** Deliveries allowed at once now (slow start). */
  concurrency: number;
  active: number;
  retryAt: number | null;
}

/** The outbound worker, when it runs in this process. */
export interface AdminOutbound {
  destinations(limit?: number): Promise<AdminDestination[]>;
  /** Makes an entry due now and wakes its destinations; false when there is no such entry. */
  retryEntry(id: number): Promise<boolean>;
}

export interface AdminDeps {
  /** The current admin token; "" disables the API. Read on every request (rotation). */
  adminToken(): string;
  accounts: AdminAccounts;
  settings: AdminSettings;
  store: AdminStore;
  status(): Promise<AdminStatus>;
  /** PEM chains in use (leaf first), by listener or purpose. */
  certificates(): { name: string; certPem: string }[];
  /** Quota applied to accounts without their own. */
  defaultQuotaBytes: number;
  /** Push counters come from here when present. */
  metrics?: RelayMetrics;
  /** The outbound worker: live per-destination state and "retry now" that wakes it. */
  outbound?: AdminOutbound;
  log?: Logger;
  now?: () => number;
  /** Login throttling shared with IMAP and SMTP AUTH (per client address and per account). */
  loginThrottle: AdminLoginThrottle;
  /** Waits before throttled attempts; injectable so tests need not sleep. */
  sleep?: (ms: number) => Promise<void>;
}

/** What the admin API needs of the relay's login throttle (auth's LoginThrottle). */
export interface AdminLoginThrottle {
  admit(ip: string, account: string):
    | { wait: number }
    | { refused: true; retryAfterMs: number }
    | Promise<{ wait: number } | { refused: true; retryAfterMs: number }>;
  recordFailure(ip: string, account: string): void | Promise<void>;
  recordSuccess(ip: string, account: string): void | Promise<void>;
}
