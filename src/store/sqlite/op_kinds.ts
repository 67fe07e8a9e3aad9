// Where each store function runs (see /work/notes/store-api.md):
//   read   on the main thread's read-only connection: bounded (indexed, O(result)), ≲ 2 ms;
//   write  in the writer thread, grouped with other writes into one commit;
//   heavy  in the reader thread: reads that may touch many rows (the main loop stays free);
//   route  decided per call by ROUTES below (small calls read here, big ones in the reader).
// A new store function is added to its *_store.ts and listed here; the Store method of the same
// name then exists in both modes. A Store method not listed here is built in mod.ts.

import type { Engine, OpName } from "./engine.ts";

export type OpKind = "read" | "write" | "heavy" | "route";

export const OP_KINDS = {
  // accounts
  getAccount: "read",
  getAccountById: "read",
  createAccount: "write",
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
