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

/** A stored message read in ranges (the store's BodyReader). */
export interface StoredBody {
  readonly size: number;
  /** The structure blob stored with it (src/mime/structure_codec.ts), or null. */
  readonly structure: Uint8Array | null;
  /** Up to `length` bytes from `offset` (fewer only at the end). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A small stored message read whole. */
export interface SmallBody {
  bytes: Uint8Array;
  structure: Uint8Array | null;
}

/** A message being received for APPEND, written as its literal arrives. */
export interface AppendUpload {
  /** The next bytes; resolves when more may come. Never rejects: failures show at append(). */
  write(chunk: Uint8Array): Promise<void>;
  /** Gives up: nothing is kept. Idempotent, and harmless after append(). */
  discard(): Promise<void>;
}

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
  /** Starts receiving an APPEND message: spooled (bounded memory) as its literal arrives. */
  startAppend(): AppendUpload;
  /** Stores a received message; the upload is freed whatever happens. */
  append(input: {
    accountId: number;
    mailboxName: string;
    upload: AppendUpload;
    flags: string[];
    internalDate?: number;
  }): Promise<{ mailboxId: number; uidValidity: number; uid: number; modSeq: number }>;
  /** At most a few thousand UIDs per call. */
  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]>;
  readBody(bodyId: number): Promise<Uint8Array | null>;
  /** Ranged reads of a stored message (its structure blob too); null when it is gone. */
  openBody(bodyId: number): Promise<StoredBody | null>;
  /** The small (inline) ones among these bodies, whole, in one round trip (~1 MiB at most). */
  readSmallBodies(bodyIds: number[]): Promise<Map<number, SmallBody>>;
  /** Keeps the structure blob of a body stored without one (best effort). */
  setBodyStructure(bodyId: number, structure: Uint8Array): Promise<void>;
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

/** Why a SETMETADATA entry is refused: the RFC 5464 response code; BADVALUE (a control
 *  character) has none. */
export type MetadataRefusal = "PERMISSIONDENIED" | "MAXSIZE" | "NONEXISTENT" | "BADVALUE";

export interface ImapMetadata {
  get(accountId: number, mailbox: string, entry: string): Promise<string | null>;
  list(accountId: number, mailbox: string, prefix: string): Promise<
    { entry: string; value: string }[]
  >;
  /** What set() would refuse without looking at the store (as set() answers), or null. */
  check(mailbox: string, entry: string, value: string | null): MetadataRefusal | null;
  /** null on success, else why the entry is refused. */
  set(
    accountId: number,
    mailbox: string,
    entry: string,
    value: string | null,
  ): Promise<MetadataRefusal | null>;
}

export interface ImapBackend {
  /** `authzid`: the SASL authorization identity, when the client gave a non-empty one. */
  authenticate(
    user: string,
    password: string,
    ip: string,
    authzid?: string,
  ): Promise<ImapAuthResult>;
  mailboxes: ImapMailboxes;
  metadata: ImapMetadata;
  /**
   * Calls `onChange` after every committed change of the account until the returned function
   * is called. (A function, not an AbortSignal: a signal and its listener cost every idle
   * session some hundred bytes.)
   */
  watch(accountId: number, onChange: (c: ImapChange) => void): () => void;
}

export interface ImapServerConfig {
  hostname: string;
  maxMessageBytes: number;
  /** Offer STARTTLS (plain listener with a certificate). */
  startTlsAvailable: boolean;
  /** IDLE and other commands end after this much inactivity (RFC 9051: at least 30 min). */
  idleTimeoutMs?: number;
  /**
   * In IDLE, `* OK Still here` after this much quiet (Dovecot's imap_idle_notify_interval,
   * 2 min). A phone gone without FIN or RST then shows: the unanswered write ends the session
   * within TCP's retransmission limit instead of at the idle limit; NATs keep the flow alive.
   */
  idleNotifyMs?: number;
  /** Not-authenticated sessions time out sooner. */
  loginTimeoutMs?: number;
  /**
   * A session must have logged in this long after connecting, whatever it sends meanwhile
   * (default 3 min, as Dovecot's login processes): input restarts the idle clock, not this one.
   */
  loginDeadlineMs?: number;
  /**
   * After login, how long one command (its lines and literals, APPEND's message too) may take
   * to arrive from its first byte, moved on by the bytes that come (default 5 min; see
   * COMMAND_DEADLINE_MS in session.ts), as IDLE's DONE line. Waiting for a command, or for DONE, is
   * not bounded by it.
   */
  commandDeadlineMs?: number;
  /** +1 when a session enters IDLE, -1 when it leaves (metrics). */
  onIdle?: (delta: 1 | -1) => void;
}
