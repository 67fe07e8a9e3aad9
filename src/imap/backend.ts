// What an IMAP session needs from the relay. The app wires these to the account, mailbox and
// metadata services; the session never sees the store or the bus directly.

import type {
  CopyResult,
  FlagUpdate,
  FlagUpdateResult,
  MailboxQueries,
  MailboxRecord,
  MessageRecord,
} from "../store/types.ts";

export interface ImapUser {
  accountId: number;
  address: string;
}

export type ImapAuthResult =
  | { user: ImapUser }
  | { error: "auth_failed" | "unavailable"; message: string };

/** A change notification for the account (new mail, flags, expunges, mailbox list). */
export type ImapChange = { kind: "mailbox"; mailboxId: number } | { kind: "list" } | {
  kind: "gone";
};

/** Reads that stay bounded on mailboxes of any size (the store's MailboxQueries). */
export interface ImapMailboxes extends MailboxQueries {
  listMailboxes(accountId: number): Promise<MailboxRecord[]>;
  getMailbox(accountId: number, name: string): Promise<MailboxRecord | null>;
  getMailboxById(mailboxId: number): Promise<MailboxRecord | null>;
  createMailbox(
    accountId: number,
    name: string,
    specialUse?: string | null,
  ): Promise<MailboxRecord>;
  deleteMailbox(accountId: number, name: string): Promise<void>;
  renameMailbox(accountId: number, from: string, to: string): Promise<void>;
  setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void>;
  listSubscriptions(accountId: number): Promise<string[]>;
  append(input: {
    accountId: number;
    mailboxName: string;
    data: Uint8Array;
    flags: string[];
    internalDate?: number;
  }): Promise<{ mailboxId: number; uidValidity: number; uid: number; modSeq: number }>;
  /** At most a few thousand UIDs per call. */
  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]>;
  readBody(bodyId: number): Promise<Uint8Array | null>;
  /** The UID range marked \Recent, now cleared for everybody else (null: none). */
  claimRecent(mailboxId: number): Promise<[number, number] | null>;
  setFlags(accountId: number, mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult>;
  copyMessages(
    accountId: number,
    mailboxId: number,
    uids: number[],
    destinationMailboxId: number,
  ): Promise<CopyResult>;
  moveMessages(
    accountId: number,
    mailboxId: number,
    uids: number[],
    destinationMailboxId: number,
  ): Promise<CopyResult>;
  expunge(accountId: number, mailboxId: number, uids?: number[]): Promise<number[]>;
  quota(accountId: number): Promise<{ usedBytes: number; limitBytes: number }>;
}

export interface ImapMetadata {
  get(accountId: number, mailbox: string, entry: string): Promise<string | null>;
  list(accountId: number, mailbox: string, prefix: string): Promise<
    { entry: string; value: string }[]
  >;
  /** null on success, else the RFC 5464 response code. */
  set(accountId: number, mailbox: string, entry: string, value: string | null): Promise<
    "PERMISSIONDENIED" | "MAXSIZE" | "TOOMANY" | "NONEXISTENT" | null
  >;
}

export interface ImapBackend {
  authenticate(user: string, password: string, ip: string): Promise<ImapAuthResult>;
  mailboxes: ImapMailboxes;
  metadata: ImapMetadata;
  /** Calls `onChange` after every committed change of the account until the signal aborts. */
  watch(accountId: number, onChange: (c: ImapChange) => void, signal: AbortSignal): void;
}

export interface ImapServerConfig {
  hostname: string;
  maxMessageBytes: number;
  /** Offer STARTTLS (plain listener with a certificate). */
  startTlsAvailable: boolean;
  /** IDLE and other commands end after this much inactivity (RFC 9051: at least 30 min). */
  idleTimeoutMs?: number;
  /** Not-authenticated sessions time out sooner. */
  loginTimeoutMs?: number;
  /** +1 when a session enters IDLE, -1 when it leaves (metrics). */
  onIdle?: (delta: 1 | -1) => void;
}
