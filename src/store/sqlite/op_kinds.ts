// Where each store function runs (see /work/notes/store-api.md):
//   read   on the main thread's read-only connection: bounded (indexed, O(result)), ≲ 2 ms;
//   write  in the writer thread, grouped with other writes into one commit;
//   heavy  in the reader thread: reads that may touch many rows (the main loop stays free);
//   route  decided per call by ROUTES below (small calls read here, big ones in the reader).
// A new store function is added to its *_store.ts and listed here; the Store method of the same
// name then exists in both modes. A Store method not listed here is built in mod.ts.

import type { Engine, OpName } from "./engine.ts";
import { COMPACT_BELOW } from "./segments.ts";

export type OpKind = "read" | "write" | "heavy" | "route";

export const OP_KINDS = {
  // accounts
  getAccount: "read",
  getAccountById: "read",
  createAccount: "write",
  createAccountUnlessBlocked: "write",
  deleteAccount: "write",
  setAccountBlocked: "write",
  setPasswordHash: "write",
  setQuota: "write",
  recordLogin: "write",
  listAccounts: "heavy",
  countAccounts: "read",
  listInactiveAccounts: "heavy",
  // mailboxes and messages
  listMailboxes: "read",
  getMailbox: "read",
  getMailboxById: "read",
  createMailbox: "write",
  deleteMailbox: "write",
  renameMailbox: "write",
  setSubscribed: "write",
  listSubscriptions: "read",
  deliver: "write",
  append: "write",
  listMessages: "route",
  getMessages: "route",
  changesSince: "route",
  setBodyStructure: "write",
  setFlags: "write",
  copyMessages: "write",
  moveMessages: "write",
  expunge: "write",
  removeMessages: "write",
  claimRecent: "write",
  usedBytes: "read",
  listMessagesForRetention: "heavy",
  // bounded reads for IMAP on mailboxes of any size (mail_queries.ts: each walks at most its
  // limit or window of index entries)
  listUids: "read",
  mailboxState: "read",
  firstUnseenUid: "read",
  listKeywords: "read",
  scanMessages: "read",
  changedMessages: "read",
  expungedMessages: "read",
  expungedInRange: "read",
  // metadata, settings, tokens, blocklist, federation, push
  getMetadata: "read",
  listMetadata: "read",
  setMetadata: "write",
  getSetting: "read",
  setSetting: "write",
  listSettings: "read",
  createToken: "write",
  listTokens: "read",
  getToken: "read",
  consumeToken: "write",
  deleteToken: "write",
  listBlocked: "read",
  addBlocked: "write",
  removeBlocked: "write",
  isBlocked: "read",
  recordFederation: "write",
  listFederationStats: "read",
  listPushTokens: "read",
  upsertPushToken: "write",
  removePushToken: "write",
  removePushTokens: "write",
  expirePushTokens: "write",
  enqueuePush: "write",
  duePushJobs: "read",
  claimPushJobs: "write",
  reschedulePush: "write",
  deletePushJob: "write",
  countPushJobs: "read",
  // queue
  enqueue: "write",
  dueRecipients: "read",
  getQueueEntry: "read",
  listQueue: "heavy",
  updateRecipient: "write",
  retryQueueEntry: "write",
  deleteQueueEntry: "write",
  countQueued: "read",
  // The scheduler's reads are bounded (indexed, LIMIT); the summary groups every waiting row.
  pendingRecipientsAfter: "read",
  dueRecipientsFor: "read",
  nextAttemptFor: "read",
  releaseDestination: "write",
  queueDestinations: "heavy",
  oldestQueueEntryAt: "read",
  queueEntriesBefore: "read",
  claimRecipients: "write",
  renewClaims: "write",
  recordAttempt: "write",
  countFederationReceived: "write",
  // space
  reclaimSpace: "write",
  purgeTombstones: "write",
} as const satisfies Partial<Record<OpName, OpKind>>;

/** Rows a main-thread read may return; more go to the reader thread. */
export const MAIN_ROWS = 2000;

type Args<N extends OpName> = Parameters<Engine["ops"][N]>;

/** For "route" functions: true when the call is small enough for the main thread. */
export const ROUTES: {
  [N in OpName]?: (args: Args<N>, engine: Engine) => boolean;
} = {
  listMessages: ([mailboxId, page], engine) =>
    page ? page.limit <= MAIN_ROWS : (engine.db.get<{ n: number }>(
      "SELECT message_count AS n FROM mailboxes WHERE id = ?",
      mailboxId,
    )?.n ?? 0) <= MAIN_ROWS,
  getMessages: ([, uids]) => uids.length <= MAIN_ROWS,
  // Counting stops at MAIN_ROWS + 1: the test itself stays bounded.
  changesSince: ([mailboxId, modSeq], engine) =>
    engine.db.get<{ n: number }>(
      `SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 LIMIT ?3))
       + (SELECT COUNT(*) FROM (SELECT 1 FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 LIMIT ?3)) AS n`,
      mailboxId,
      modSeq,
      MAIN_ROWS + 1,
    )!.n <= MAIN_ROWS,
};

type Result<N extends OpName> = ReturnType<Engine["ops"][N]>;

/**
 * Writes that the main thread's read-only connection can tell would change nothing: it answers
 * them with that result and the writer thread is not woken. An idle relay's periodic work (the
 * push poll every 2 s, the maintenance tasks at start) then leaves the writer stopped (mod.ts
 * stops it when idle). Asked only when no write of this process is pending, so the read sees
 * everything written before the call. Each returns the no-op result, or undefined to write.
 */
export const NOOPS: {
  [N in OpName]?: (args: Args<N>, engine: Engine) => Result<N> | undefined;
} = {
  claimPushJobs: ([now], engine) =>
    engine.db.get("SELECT 1 FROM push_jobs WHERE next_at <= ? LIMIT 1", now) ? undefined : [],
  purgeTombstones: ([before], engine) =>
    engine.db.get("SELECT 1 FROM expunged WHERE expunged_at < ? LIMIT 1", before) ? undefined : 0,
  freeUnreferencedBodiesPage: ([afterId], engine) =>
    engine.db.get("SELECT 1 FROM bodies WHERE id > ? LIMIT 1", afterId)
      ? undefined
      : { freed: 0, next: null },
  compactBodySegment: ([createdBefore], engine) =>
    engine.db.get(
        `SELECT 1 FROM body_files WHERE live IS NOT NULL AND created_at < ? AND live < size * ?
       LIMIT 1`,
        createdBefore,
        COMPACT_BELOW,
      )
      ? undefined
      : null,
  // Only an incremental-vacuum file (auto_vacuum 2) with free pages has something to give back.
  reclaimSpace: (_args, engine) =>
    engine.db.get<{ auto_vacuum: number }>("PRAGMA auto_vacuum")!.auto_vacuum === 2 &&
      engine.db.get<{ freelist_count: number }>("PRAGMA freelist_count")!.freelist_count > 0
      ? undefined
      : { freed: 0, remaining: 0 },
};
