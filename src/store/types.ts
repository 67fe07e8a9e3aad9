// The store interface: use-case operations, each atomic, so a PostgreSQL store can implement each
// as one transaction. Times are Unix milliseconds. Addresses are stored lowercased.
//
// Every method is bounded in time or paged: none returns every message of a mailbox at once
// (listMessages without a page is the one legacy exception, served off the event loop). A
// write's promise resolves after its commit, so a later read sees it. Message bodies come in
// through a BodySpool (bounded memory, streamed to a file past a limit) and go out through a
// BodyReader (ranged reads): no caller needs a whole large body in memory. See
// /work/notes/store-api.md for which methods run where.

export interface AccountRecord {
  id: number;
  address: string;
  passwordHash: string;
  createdAt: number;
  lastLoginAt: number | null;
  blocked: boolean;
  /** Per-account override; null means the configured default. */
  quotaBytes: number | null;
  usedBytes: number;
  /** Incoming cleartext is refused while set (every account created by tern has it). */
  enforceE2ee: boolean;
}

export interface MailboxRecord {
  id: number;
  accountId: number;
  name: string;
  uidValidity: number;
  uidNext: number;
  highestModSeq: number;
  subscribed: boolean;
  specialUse: string | null;
  /** Counters kept with every change: reading them costs the same for any mailbox size. */
  messages: number;
  unseen: number;
  recent: number;
  sizeBytes: number;
  /**
   * Expunges with a modseq up to this one may have been forgotten (tombstones are purged after
   * a horizon): changes since an older modseq cannot list every expunged UID, and QRESYNC must
   * answer conservatively (RFC 7162 §3.2.5.2). 0 when nothing was ever purged.
   */
  expungeHorizonModSeq: number;
}

export interface MessageRecord {
  mailboxId: number;
  uid: number;
  modSeq: number;
  /** System flags (\Seen …) and keywords, as given; sorted. */
  flags: string[];
  internalDate: number;
  size: number;
  bodyId: number;
}

/**
 * A condition on a mailbox's messages that the store evaluates (IMAP SEARCH keys that need no
 * message content). Comparisons are on INTERNALDATE (ms), RFC822.SIZE and MODSEQ; flags match
 * without regard to case.
 */
export type MessageFilter =
  | { kind: "true" }
  | { kind: "false" }
  /** Inclusive UID ranges. */
  | { kind: "uids"; ranges: readonly (readonly [number, number])[] }
  | { kind: "flag"; flag: string; set: boolean }
  | {
    kind: "compare";
    field: "internalDate" | "size" | "modSeq";
    op: "<" | "<=" | ">" | ">=";
    value: number;
  }
  | { kind: "not"; filter: MessageFilter }
  | { kind: "and" | "or"; filters: MessageFilter[] };

/** One bounded step of a scan over a mailbox in UID order. */
export interface ScanQuery {
  /** Start after this UID ("asc") or below it ("desc"). */
  from: number;
  direction: "asc" | "desc";
  /** Never look beyond this UID (inclusive; e.g. the highest UID a session knows). */
  maxUid?: number;
  /** At most this many messages are looked at (matching or not). */
  window: number;
  filter?: MessageFilter;
  /** Only count the matches. */
  countOnly?: boolean;
  /** Only the UIDs and modseqs of the matches (ScanResult.uids/modSeqs; rows stay empty). */
  uidsOnly?: boolean;
}

export interface ScanResult {
  /** Matching messages in scan order (empty with countOnly or uidsOnly). */
  rows: MessageRecord[];
  /** With uidsOnly: the matches' UIDs and modseqs, in scan order. */
  uids?: number[];
  modSeqs?: number[];
  count: number;
  /** Where the next step starts (ScanQuery.from). */
  next: number;
  /** Nothing is left beyond `next`. */
  done: boolean;
}

/** A page of changes in (modseq, uid) order; `after` is the last one of the previous page. */
export interface ChangesQuery {
  sinceModSeq: number;
  upToModSeq: number;
  after?: { modSeq: number; uid: number };
  /** Only messages with a UID up to this. */
  maxUid?: number;
  limit: number;
}

/** An expunged message as it was, where the tombstone keeps it (older ones do not). */
export interface ExpungedRecord {
  uid: number;
  modSeq: number;
  flags: string[] | null;
  size: number | null;
  internalDate: number | null;
}

export interface MailboxState {
  uidNext: number;
  highestModSeq: number;
  /** As MailboxRecord.expungeHorizonModSeq. */
  expungeHorizonModSeq: number;
}

/**
 * Reads for IMAP sessions on mailboxes of any size. Each call is bounded in time: it looks at
 * no more rows than its limit (or window), so it may run on the main thread.
 */
export interface MailboxQueries {
  /**
   * The UIDs after `afterUid` (and below `belowUid`), at most `limit`, as flat runs
   * [lo, hi, lo, hi, …]. `done` when no UID is left in the range.
   */
  listUids(mailboxId: number, q: { afterUid: number; belowUid?: number; limit: number }): Promise<
    { runs: number[]; count: number; lastUid: number; done: boolean }
  >;
  /** What a session's resync starts from: one row, no counting. Null when the mailbox is gone. */
  mailboxState(mailboxId: number): Promise<MailboxState | null>;
  /** The lowest UID without \Seen (below `belowUid` when given), or null. */
  firstUnseenUid(mailboxId: number, belowUid?: number): Promise<number | null>;
  /** Every keyword ever defined in the mailbox, in the order of first use. */
  listKeywords(mailboxId: number): Promise<string[]>;
  scanMessages(mailboxId: number, q: ScanQuery): Promise<ScanResult>;
  /** Messages whose modseq is in (sinceModSeq, upToModSeq]. */
  changedMessages(mailboxId: number, q: ChangesQuery): Promise<MessageRecord[]>;
  /** Expunges whose modseq is in (sinceModSeq, upToModSeq]. */
  expungedMessages(mailboxId: number, q: ChangesQuery): Promise<ExpungedRecord[]>;
  /** Tombstones with UIDs in [fromUid, toUid], ascending, at most `limit`. */
  expungedInRange(
    mailboxId: number,
    fromUid: number,
    toUid: number,
    limit: number,
  ): Promise<ExpungedRecord[]>;
}

/**
 * A received message body, held by the store until committed: in memory up to a limit, beyond
 * it in a temporary file. Plain data (it crosses to the store's writer thread); callers only read
 * `size` and pass it back to deliver/append/enqueue.
 */
export interface SpooledBody {
  readonly size: number;
  /** The bytes when held in memory. */
  readonly bytes: Uint8Array | null;
  /** Store-private name of the spooled file when not in memory. */
  readonly file: string | null;
}

/**
 * Receives one body with bounded memory. `write` resolves when the next chunk may be written
 * (back-pressure); the spool reads `chunk` until then, not after (it copies what it keeps), so
 * the caller must leave those bytes unchanged until the promise settles and may reuse them
 * afterwards; `finish` makes the body durable enough to be committed and returns it. After
 * the last deliver/append/enqueue using the body, `discard` frees what no commit kept; it is
 * also the way to give up (safe to call at any point, and twice). The finished body's bytes are
 * not to be read after `discard` (the SQLite store gives their memory to the next body).
 */
export interface BodySpool {
  write(chunk: Uint8Array): Promise<void>;
  readonly size: number;
  finish(): Promise<SpooledBody>;
  discard(): Promise<void>;
}

/**
 * A message to store: `head` (e.g. a rewritten header block) followed by the body's bytes from
 * offset `skip` (e.g. after the original header block). Several stores of one spooled body with
 * different heads share its bytes. `structure` is an opaque blob (BODYSTRUCTURE, ENVELOPE, part
 * offsets) kept with the body and returned by reads.
 */
export interface MessageInput {
  head?: Uint8Array;
  body: SpooledBody;
  skip?: number;
  structure?: Uint8Array;
}

/** Ranged access to a stored message (head and body as one byte sequence). */
export interface BodyReader {
  readonly size: number;
  readonly structure: Uint8Array | null;
  /** Up to `length` bytes from `offset` (fewer only at the end). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the file handle, if any; the reader stays valid while open even when expunged. */
  close(): Promise<void>;
}

/** A small stored message read whole (see readSmallBodies). */
export interface SmallBody {
  bytes: Uint8Array;
  structure: Uint8Array | null;
}

export interface MailboxChanges {
  /** Messages added or whose flags changed after the given modseq, in UID order. */
  changed: MessageRecord[];
  /** UIDs expunged after the given modseq, ascending. */
  expunged: number[];
  highestModSeq: number;
}

/**
 * Where deliver() stores a copy: an account named by id or by address. The store resolves it in
 * its write transaction, so an account deleted or blocked up to the commit gets nothing.
 */
export type DeliveryTarget =
  & ({ accountId: number; address?: undefined } | { address: string; accountId?: undefined })
  & { mailboxName: string; flags?: string[] };

/**
 * One per target, in target order. A stored copy carries what the follow-ups of a delivery
 * need, read in the same transaction (so they need no read of their own): the account's used
 * bytes after this delivery, its quota (null: the default) and whether it has any push token
 * row (expired ones included: notifying still filters by age).
 */
export type DeliveryOutcome =
  | {
    ok: true;
    accountId: number;
    address: string;
    mailboxId: number;
    uid: number;
    modSeq: number;
    usedBytes: number;
    quotaBytes: number | null;
    hasPushTokens: boolean;
  }
  | {
    ok: false;
    /** null when the target named an address that has no account. */
    accountId: number | null;
    /** null when the target named an id that has no account. */
    address: string | null;
    /** no_account: none by that id or address, or it is blocked. */
    code: "quota_exceeded" | "mailbox_not_found" | "no_account";
  };

export interface FlagUpdate {
  uids: number[];
  mode: "add" | "remove" | "replace";
  flags: string[];
  /** CONDSTORE: only messages whose modseq is ≤ this are changed. */
  unchangedSince?: number;
}

export interface FlagUpdateResult {
  updated: MessageRecord[];
  /** UIDs not changed because of unchangedSince. */
  modified: number[];
  highestModSeq: number;
}

export interface CopyResult {
  uidValidity: number;
  /** [source uid, destination uid] pairs in source UID order. */
  mapping: [number, number][];
  destinationMailboxId: number;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface QueueRecipientRecord {
  id: number;
  queueId: number;
  recipient: string;
  domain: string;
  status: "queued" | "deferred" | "delivered" | "failed";
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  updatedAt: number;
}

export interface QueueEntry {
  id: number;
  sender: string;
  bodyId: number;
  size: number;
  createdAt: number;
  recipients: QueueRecipientRecord[];
}

/** One destination (recipient domain) of the outbound queue. */
export interface QueueDestinationSummary {
  domain: string;
  /** Recipients still to deliver (queued or deferred). */
  pending: number;
  /** Of these, recipients that failed at least once. */
  deferred: number;
  /** When the oldest of their entries was accepted. */
  oldestAt: number;
  /** The earliest next attempt. */
  nextAttemptAt: number;
  /** The most recent error of a deferred recipient. */
  lastError: string | null;
}

/** The outcome of one attempt for one recipient. */
export interface RecipientUpdate {
  id: number;
  status: QueueRecipientRecord["status"];
  attempts: number;
  /** Deferred: when to try again. */
  nextAttemptAt?: number;
  lastError: string | null;
}

/** The outcome of one attempt for recipients of one queue entry at one destination. */
export interface AttemptRecord {
  queueId: number;
  domain: string;
  now: number;
  /**
   * The claim the attempt ran under (claimRecipients): a recipient this owner does not hold (any
   * more: its lease ended and another worker took it) is left as it is.
   */
  owner: string;
  updates: RecipientUpdate[];
}

/**
 * A worker's lease on queued recipients while it delivers them (several instances on one store:
 * a worker that took over must not send what the one before it is still sending).
 */
export interface RecipientClaim {
  /** The claiming worker; each run of an outbound worker has an id of its own. */
  owner: string;
  ids: number[];
  /**
   * The caller's clock. Times the store gives back (busyUntil, nextAttemptFor) are on it, but
   * leases are timed on the store's clock: SQLite's is the caller's (one process), PostgreSQL's
   * the database's, the one clock all instances share (theirs may differ).
   */
  now: number;
  /** The claim holds for `leaseMs` from now unless renewed. */
  leaseMs: number;
}

export interface RegistrationToken {
  token: string;
  maxUses: number;
  uses: number;
  expiresAt: number | null;
  createdAt: number;
  comment: string;
}

export interface AccountStore {
  getAccount(address: string): Promise<AccountRecord | null>;
  getAccountById(id: number): Promise<AccountRecord | null>;
  /** Creates the account and its INBOX, or returns the existing one with created=false. */
  createAccount(input: { address: string; passwordHash: string; now: number }): Promise<
    { account: AccountRecord; created: boolean }
  >;
  /**
   * createAccount() for a just-in-time login: null (and nothing created) when no account has the
   * address and the blocklist holds it or its domain. The check and the creation are one step, so
   * an entry added before the creation commits wins.
   */
  createAccountUnlessBlocked(
    input: { address: string; passwordHash: string; now: number },
  ): Promise<
    { account: AccountRecord; created: boolean } | null
  >;
  /** Deletes the account, its mailboxes, messages, metadata and push tokens. */
  deleteAccount(id: number): Promise<boolean>;
  setAccountBlocked(id: number, blocked: boolean): Promise<void>;
  setPasswordHash(id: number, passwordHash: string): Promise<void>;
  setQuota(id: number, quotaBytes: number | null): Promise<void>;
  recordLogin(id: number, now: number): Promise<void>;
  listAccounts(query: { search?: string; offset?: number; limit?: number }): Promise<
    Page<AccountRecord>
  >;
  countAccounts(): Promise<number>;
  /** Accounts whose last login (or creation) is before `before`. */
  listInactiveAccounts(before: number, limit: number): Promise<AccountRecord[]>;
}

export interface MailboxStore {
  listMailboxes(accountId: number): Promise<MailboxRecord[]>;
  getMailbox(accountId: number, name: string): Promise<MailboxRecord | null>;
  getMailboxById(mailboxId: number): Promise<MailboxRecord | null>;
  createMailbox(accountId: number, name: string, specialUse?: string | null): Promise<
    MailboxRecord
  >;
  deleteMailbox(accountId: number, name: string): Promise<void>;
  /** Renaming INBOX moves its messages to the new mailbox and leaves INBOX empty (RFC 9051). */
  renameMailbox(accountId: number, from: string, to: string): Promise<void>;
  /** Subscriptions are names: they need not exist and outlive DELETE (RFC 9051 §6.3.7). */
  setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void>;
  listSubscriptions(accountId: number): Promise<string[]>;

  /** Receives a body for deliver/append/enqueue (see BodySpool). */
  createSpool(): BodySpool;
  /**
   * Stores one body shared by every target; each target's quota is checked (its own, else
   * `defaultQuotaBytes`). Targets without a usable account (deleted, blocked) get nothing.
   */
  deliver(
    input: MessageInput & {
      internalDate: number;
      targets: DeliveryTarget[];
      defaultQuotaBytes: number;
    },
  ): Promise<DeliveryOutcome[]>;
  append(
    input: MessageInput & {
      accountId: number;
      mailboxName: string;
      flags: string[];
      internalDate: number;
      defaultQuotaBytes: number;
    },
  ): Promise<{ mailboxId: number; uidValidity: number; uid: number; modSeq: number }>;
  /**
   * Messages in UID order: with a page, up to `limit` after UID `afterUid`; without one, every
   * message of the mailbox (legacy: served off the event loop, prefer pages).
   */
  listMessages(
    mailboxId: number,
    page?: { afterUid: number; limit: number },
  ): Promise<MessageRecord[]>;
  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]>;
  changesSince(mailboxId: number, modSeq: number): Promise<MailboxChanges>;
  /**
   * Ranged reader of a stored message; null when the body does not exist (freed meanwhile).
   * Rejects when it exists but cannot be read whole (a body file removed or cut short).
   */
  openBody(bodyId: number): Promise<BodyReader | null>;
  /**
   * The whole bytes of those given bodies that are small (stored inline), read in one round
   * trip up to a byte budget: ids missing from the answer must be read with openBody.
   */
  readSmallBodies(bodyIds: number[]): Promise<Map<number, SmallBody>>;
  /** The whole message in memory (prefer openBody for anything that may be large). */
  readBody(bodyId: number): Promise<Uint8Array | null>;
  /** Backfills the structure blob of a body stored without one (best effort). */
  setBodyStructure(bodyId: number, structure: Uint8Array): Promise<void>;
  setFlags(mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult>;
  copyMessages(mailboxId: number, uids: number[], destinationMailboxId: number): Promise<
    CopyResult
  >;
  /** Copy then expunge from the source, atomically. */
  moveMessages(mailboxId: number, uids: number[], destinationMailboxId: number): Promise<
    CopyResult
  >;
  /** Removes messages flagged \Deleted (restricted to `uids` when given); returns expunged UIDs. */
  expunge(mailboxId: number, uids?: number[]): Promise<number[]>;
  /** Removes the given messages regardless of flags (retention, quota trimming, admin). */
  removeMessages(mailboxId: number, uids: number[]): Promise<number[]>;
  /**
   * Takes the \Recent flag (RFC 3501 §2.3.2): returns the UID range still recent and clears it,
   * atomically, so exactly one session sees each message as recent. The range may include
   * UIDs expunged since; null when nothing is recent.
   */
  claimRecent(mailboxId: number): Promise<[number, number] | null>;
  /** Bytes used by the account (sum of message sizes over all mailboxes; a kept counter). */
  usedBytes(accountId: number): Promise<number>;
  /** Oldest messages first, for quota trimming and retention. */
  listMessagesForRetention(query: {
    accountId?: number;
    olderThan?: number;
    largerThan?: number;
    limit: number;
  }): Promise<(MessageRecord & { accountId: number })[]>;
  /** Frees bodies no message or queue entry references; returns how many were freed. */
  freeUnreferencedBodies(): Promise<number>;
}

export interface MetadataStore {
  /** mailbox "" is the server scope. */
  getMetadata(accountId: number, mailbox: string, key: string): Promise<string | null>;
  listMetadata(accountId: number, mailbox: string, prefix: string): Promise<
    { key: string; value: string }[]
  >;
  setMetadata(accountId: number, mailbox: string, key: string, value: string | null): Promise<void>;
}

export interface SettingsStore {
  getSetting(key: string): Promise<string | null>;
  setSetting(key: string, value: string | null): Promise<void>;
  listSettings(): Promise<Record<string, string>>;
}

export interface TokenStore {
  createToken(t: RegistrationToken): Promise<void>;
  listTokens(): Promise<RegistrationToken[]>;
  getToken(token: string): Promise<RegistrationToken | null>;
  /** Increments the use count if the token is valid now; false otherwise. */
  consumeToken(token: string, now: number): Promise<boolean>;
  deleteToken(token: string): Promise<boolean>;
}

export interface BlocklistStore {
  /** Blocked addresses or domains (entries "@domain"). */
  listBlocked(): Promise<{ entry: string; reason: string; createdAt: number }[]>;
  /** Adds an entry; false (and nothing changed) when it is there already. */
  addBlocked(entry: string, reason: string, now: number): Promise<boolean>;
  removeBlocked(entry: string): Promise<boolean>;
  isBlocked(address: string): Promise<boolean>;
}

export interface QueueStore {
  /** Stores the body and one recipient row per recipient, all due now. */
  enqueue(input: MessageInput & { sender: string; recipients: string[]; now: number }): Promise<
    number
  >;
  /** Recipients due at `now`, oldest first, with their entries. */
  dueRecipients(now: number, limit: number): Promise<QueueRecipientRecord[]>;
  getQueueEntry(id: number): Promise<QueueEntry | null>;
  listQueue(query: { offset?: number; limit?: number; status?: string }): Promise<Page<QueueEntry>>;
  updateRecipient(
    id: number,
    update: {
      status: QueueRecipientRecord["status"];
      attempts?: number;
      nextAttemptAt?: number;
      lastError?: string | null;
      now: number;
    },
  ): Promise<void>;
  /** Makes every unfinished recipient of the entry due now. */
  retryQueueEntry(id: number, now: number): Promise<boolean>;
  deleteQueueEntry(id: number): Promise<boolean>;
  countQueued(): Promise<number>;

  /** Recipients still to deliver with an id above `afterId`, by id: what arrived since a look. */
  pendingRecipientsAfter(afterId: number, limit: number): Promise<QueueRecipientRecord[]>;
  /**
   * One destination's recipients due at `now`, earliest first, without those under a claim
   * that has not ended.
   */
  dueRecipientsFor(domain: string, now: number, limit: number): Promise<QueueRecipientRecord[]>;
  /**
   * When the destination's next recipient is due after `after` (its next attempt, or the end of
   * a claim on it); null when none waits.
   */
  nextAttemptFor(domain: string, after: number): Promise<number | null>;
  /** Makes the destination's deferred recipients due now (its peer answers again); how many. */
  releaseDestination(domain: string, now: number): Promise<number>;
  /** Destinations with recipients to deliver, most recipients first. */
  queueDestinations(limit: number): Promise<QueueDestinationSummary[]>;
  /** When the oldest entry still in the queue was accepted; null when the queue is empty. */
  oldestQueueEntryAt(): Promise<number | null>;
  /** Entries accepted at or before `before`, oldest first. */
  queueEntriesBefore(before: number, limit: number): Promise<number[]>;
  /**
   * Claims pending recipients of entry `queueId` for `claim.owner`, atomically: a recipient is
   * taken when nobody holds it, its holder's lease ended (a worker that died: its mail is tried
   * again), or the owner holds it already; the others stay with their holders. Returns the ids
   * claimed and the earliest end of the other holders' leases (null when none holds one).
   */
  claimRecipients(
    queueId: number,
    claim: RecipientClaim,
  ): Promise<{ claimed: number[]; busyUntil: number | null }>;
  /** Extends the owner's claims on `ids` (a long transfer); returns the ids it still holds. */
  renewClaims(claim: RecipientClaim): Promise<number[]>;
  /**
   * Stores one attempt's outcome for the recipients of one entry the attempt's owner holds (and
   * the destination's federation counters), atomically, and ends their claims. When no recipient
   * is left to deliver the entry and its body go too. `recorded`: the recipients updated.
   */
  recordAttempt(input: AttemptRecord): Promise<{ finished: boolean; recorded: number }>;
  /** Adds messages received from other relays to their domains' counters, in one transaction. */
  countFederationReceived(counts: { domain: string; count: number }[], now: number): Promise<void>;
}

export interface FederationStatsStore {
  recordFederation(
    domain: string,
    event: "sent" | "received" | "failure",
    now: number,
    error?: string,
  ): Promise<void>;
  listFederationStats(): Promise<
    {
      domain: string;
      sent: number;
      received: number;
      failures: number;
      lastError: string | null;
      lastAt: number;
    }[]
  >;
}

export interface PushStore {
  listPushTokens(
    accountId: number,
    notBefore: number,
  ): Promise<{ token: string; updatedAt: number }[]>;
  /**
   * Adds the token or refreshes its time; the token is always written. With `limit`: when the
   * account would then have more than `max` tokens updated since `notBefore`, its other live
   * tokens set longest ago (ties: the one added first) are dropped until it has `max`. The count,
   * the drop and the insert are one step, so sessions on several instances at once cannot
   * together pass the limit. Resolves to the number of tokens dropped.
   */
  upsertPushToken(
    accountId: number,
    token: string,
    now: number,
    limit?: { max: number; notBefore: number },
  ): Promise<number>;
  removePushToken(accountId: number, token: string): Promise<void>;
  removePushTokens(accountId: number): Promise<void>;
  expirePushTokens(before: number): Promise<number>;
  /**
   * Queues a job for the token, due now; a token with a job already (waiting, retrying or being
   * sent, by any instance) gets no second one: one wake-up covers many messages. The job's id.
   */
  enqueuePush(job: { accountId: number; token: string; now: number }): Promise<number>;
  duePushJobs(now: number, limit: number): Promise<
    {
      id: number;
      accountId: number;
      token: string;
      attempt: number;
      startAt: number;
      nextAt: number;
    }[]
  >;
  /**
   * Takes up to `limit` due jobs for `leaseMs`: they are due for no one else until then (several
   * instances send each job once; a job whose sender died is due again after the lease).
   */
  claimPushJobs(now: number, limit: number, leaseMs: number): Promise<
    {
      id: number;
      accountId: number;
      token: string;
      attempt: number;
      startAt: number;
      nextAt: number;
    }[]
  >;
  reschedulePush(id: number, attempt: number, nextAt: number): Promise<void>;
  deletePushJob(id: number): Promise<void>;
  countPushJobs(): Promise<number>;
}

/** Giving space back, in bounded steps a maintenance task repeats (none holds the store long). */
export interface SpaceStore {
  /** Returns up to `maxPages` free database pages to the file system; how many stay free. */
  reclaimSpace(maxPages: number): Promise<{ freed: number; remaining: number }>;
  /**
   * Forgets up to `limit` expunge tombstones recorded before `before`, raising each mailbox's
   * expungeHorizonModSeq; returns how many were forgotten.
   */
  purgeTombstones(before: number, limit: number): Promise<number>;
  /**
   * Deletes body files that no committed body references and that were last linked before
   * `before` (a grace period for bodies being received or committed); returns how many.
   */
  sweepBodyFiles(before: number): Promise<number>;
}

/** Everything the relay persists. */
export interface Store
  extends
    AccountStore,
    MailboxStore,
    MailboxQueries,
    MetadataStore,
    SettingsStore,
    TokenStore,
    BlocklistStore,
    QueueStore,
    FederationStatsStore,
    PushStore,
    SpaceStore {
  /** Consistent online copy of the whole store (body files included) into one new file. */
  backup(path: string): Promise<void>;
  /** Waits for writes in flight, then stops the store's threads and closes its files. */
  close(): Promise<void>;
}
