// The outbound queue in SQLite: one entry per submission (shared body), one row per recipient
// with its own status, attempts and next attempt time. The delivery scheduler reads it per
// destination (recipient domain) through the (domain, next_attempt_at) index.

import type {
  AttemptRecord,
  QueueDestinationSummary,
  QueueEntry,
  QueueRecipientRecord,
  QueueStore,
} from "../types.ts";
import type { Db } from "./db.ts";
import type { TxFiles } from "./body_files.ts";
import type { OpEnv, SyncOf } from "./env.ts";
import { freeBodies, insertBody, messageSize } from "./bodies.ts";

interface RcptRow {
  id: number;
  queue_id: number;
  recipient: string;
  domain: string;
  status: QueueRecipientRecord["status"];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  updated_at: number;
}

const toRcpt = (r: RcptRow): QueueRecipientRecord => ({
  id: r.id,
  queueId: r.queue_id,
  recipient: r.recipient,
  domain: r.domain,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  updatedAt: r.updated_at,
});

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

/** Ends every claim on queued recipients (see SqliteStoreOptions.soleSender); how many ended. */
export function endAllClaims(db: Db): number {
  return db.run(
    "UPDATE queue_recipients SET claim_owner = NULL, claim_until = NULL WHERE claim_until IS NOT NULL",
  ).changes;
}

export function queueStore({ db, files }: OpEnv): SyncOf<QueueStore> {
  const entry = (id: number): QueueEntry | null => {
    const q = db.get<
      { id: number; sender: string; body_id: number; size: number; created_at: number }
    >(
      "SELECT * FROM queue WHERE id = ?",
      id,
    );
    if (!q) return null;
    const rcpts = db.all<RcptRow>(
      "SELECT * FROM queue_recipients WHERE queue_id = ? ORDER BY id",
      id,
    );
    return {
      id: q.id,
      sender: q.sender,
      bodyId: q.body_id,
      size: q.size,
      createdAt: q.created_at,
      recipients: rcpts.map(toRcpt),
    };
  };
  return {
    enqueue(input) {
      const { sender, recipients, now } = input;
      const size = messageSize(input);
      return db.tx(() => {
        const bodyId = insertBody(db, files, input, now);
        const { lastInsertRowid: qid } = db.run(
          "INSERT INTO queue (sender, body_id, size, created_at) VALUES (?, ?, ?, ?)",
          sender,
          bodyId,
          size,
          now,
        );
        for (const r of recipients) {
          db.run(
            `INSERT INTO queue_recipients (queue_id, recipient, domain, status, next_attempt_at, updated_at)
             VALUES (?, ?, ?, 'queued', ?, ?)`,
            qid,
            r,
            domainOf(r),
            now,
            now,
          );
        }
        return qid;
      });
    },
    dueRecipients: (now, limit) =>
      db.all<RcptRow>(
        `SELECT * FROM queue_recipients WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?
           ORDER BY next_attempt_at, id LIMIT ?`,
        now,
        limit,
      ).map(toRcpt),
    getQueueEntry: (id) => entry(id),
    listQueue({ offset = 0, limit = 50, status }) {
      const where = status
        ? "WHERE id IN (SELECT queue_id FROM queue_recipients WHERE status = ?)"
        : "";
      const params = status ? [status] : [];
      const ids = db.all<{ id: number }>(
        `SELECT id FROM queue ${where} ORDER BY id DESC LIMIT ? OFFSET ?`,
        ...params,
        limit,
        offset,
      );
      const total = db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM queue ${where}`, ...params)!.n;
      return { items: ids.map((r) => entry(r.id)!).filter(Boolean), total };
    },
    updateRecipient(id, u) {
      db.tx(() => {
        db.run(
          `UPDATE queue_recipients SET status = ?, attempts = COALESCE(?, attempts),
           next_attempt_at = COALESCE(?, next_attempt_at), last_error = ?, updated_at = ? WHERE id = ?`,
          u.status,
          u.attempts ?? null,
          u.nextAttemptAt ?? null,
          u.lastError ?? null,
          u.now,
          id,
        );
      });
    },
    retryQueueEntry(id, now) {
      const { changes } = db.run(
        `UPDATE queue_recipients SET status = 'queued', next_attempt_at = ?, updated_at = ?
         WHERE queue_id = ? AND status IN ('queued', 'deferred', 'failed')`,
        now,
        now,
        id,
      );
      return changes > 0;
    },
    deleteQueueEntry(id) {
      return db.tx(() => {
        const q = db.get<{ body_id: number }>("SELECT body_id FROM queue WHERE id = ?", id);
        if (!q) return false;
        db.run("DELETE FROM queue WHERE id = ?", id);
        freeBodies(db, files, [q.body_id]);
        return true;
      });
    },
    countQueued: () =>
      db.get<{ n: number }>(
        "SELECT COUNT(*) AS n FROM queue_recipients WHERE status IN ('queued', 'deferred')",
      )!.n,
    pendingRecipientsAfter: (afterId, limit) =>
      db.all<RcptRow>(
        // "+status": walk the primary key from the cursor, not the status index (and a sort).
        `SELECT * FROM queue_recipients WHERE id > ? AND +status IN ('queued', 'deferred')
           ORDER BY id LIMIT ?`,
        afterId,
        limit,
      ).map(toRcpt),
    dueRecipientsFor: (domain, now, limit) =>
      db.all<RcptRow>(
        `SELECT * FROM queue_recipients WHERE domain = ? AND next_attempt_at <= ?
           AND status IN ('queued', 'deferred') AND (claim_until IS NULL OR claim_until <= ?)
           ORDER BY next_attempt_at, id LIMIT ?`,
        domain,
        now,
        now,
        limit,
      ).map(toRcpt),
    nextAttemptFor: (domain, after) =>
      // The next attempt, or the end of a claim (the claimed recipient is due for others then).
      db.get<{ t: number | null }>(
        `SELECT MIN(t) AS t FROM (
           SELECT * FROM (SELECT next_attempt_at AS t FROM queue_recipients
             WHERE domain = ? AND next_attempt_at > ? AND status IN ('queued', 'deferred')
             ORDER BY next_attempt_at LIMIT 1)
           UNION ALL
           SELECT * FROM (SELECT claim_until AS t FROM queue_recipients
             WHERE domain = ? AND claim_until > ? AND status IN ('queued', 'deferred')
             ORDER BY claim_until LIMIT 1))`,
        domain,
        after,
        domain,
        after,
      )?.t ?? null,
    claimRecipients(queueId, { owner, ids, now, leaseMs }) {
      return db.tx(() => {
        const claimed: number[] = [];
        let busyUntil: number | null = null;
        for (const id of ids) {
          const r = db.get<{ claim_owner: string | null; claim_until: number | null }>(
            `SELECT claim_owner, claim_until FROM queue_recipients
               WHERE id = ? AND queue_id = ? AND status IN ('queued', 'deferred')`,
            id,
            queueId,
          );
          if (!r) continue;
          if (r.claim_owner !== null && r.claim_owner !== owner && r.claim_until! > now) {
            busyUntil = Math.min(busyUntil ?? Infinity, r.claim_until!);
            continue;
          }
          db.run(
            "UPDATE queue_recipients SET claim_owner = ?, claim_until = ? WHERE id = ?",
            owner,
            now + leaseMs,
            id,
          );
          claimed.push(id);
        }
        return { claimed, busyUntil };
      });
    },
    renewClaims({ owner, ids, now, leaseMs }) {
      return db.tx(() =>
        ids.filter((id) =>
          db.run(
            `UPDATE queue_recipients SET claim_until = ?
               WHERE id = ? AND claim_owner = ? AND status IN ('queued', 'deferred')`,
            now + leaseMs,
            id,
            owner,
          ).changes > 0
        )
      );
    },
    releaseDestination: (domain, now) =>
      db.run(
        `UPDATE queue_recipients SET next_attempt_at = ?, updated_at = ?
           WHERE domain = ? AND status = 'deferred' AND next_attempt_at > ?`,
        now,
        now,
        domain,
        now,
      ).changes,
    queueDestinations: (limit) =>
      db.all<{
        domain: string;
        pending: number;
        deferred: number;
        oldest_at: number;
        next_attempt_at: number;
        last_error: string | null;
      }>(
        `SELECT r.domain, COUNT(*) AS pending, SUM(r.status = 'deferred') AS deferred,
           MIN(q.created_at) AS oldest_at, MIN(r.next_attempt_at) AS next_attempt_at,
           (SELECT last_error FROM queue_recipients e WHERE e.domain = r.domain
            AND e.status = 'deferred' ORDER BY e.updated_at DESC LIMIT 1) AS last_error
           FROM queue_recipients r JOIN queue q ON q.id = r.queue_id
           WHERE r.status IN ('queued', 'deferred')
           GROUP BY r.domain ORDER BY pending DESC, r.domain LIMIT ?`,
        limit,
      ).map((r): QueueDestinationSummary => ({
        domain: r.domain,
        pending: r.pending,
        deferred: r.deferred,
        oldestAt: r.oldest_at,
        nextAttemptAt: r.next_attempt_at,
        lastError: r.last_error,
      })),
    oldestQueueEntryAt: () =>
      db.get<{ t: number | null }>("SELECT MIN(created_at) AS t FROM queue")?.t ?? null,
    queueEntriesBefore: (before, limit) =>
      db.all<{ id: number }>(
        "SELECT id FROM queue WHERE created_at <= ? ORDER BY created_at, id LIMIT ?",
        before,
        limit,
      ).map((r) => r.id),
    countFederationReceived(counts, now) {
      db.tx(() => {
        for (const { domain, count } of counts) {
          db.run(
            `INSERT INTO federation_stats (domain, received, last_at) VALUES (?, ?, ?)
             ON CONFLICT(domain) DO UPDATE SET received = received + excluded.received,
             last_at = excluded.last_at`,
            domain.toLowerCase(),
            count,
            now,
          );
        }
      });
    },
    recordAttempt: (input) => db.tx(() => applyAttempt(db, files, input)),
  };
}

/**
 * Applies one attempt's outcome inside the caller's transaction, for the recipients its owner
 * holds; `finished` when the entry is done.
 */
function applyAttempt(
  db: Db,
  files: TxFiles | null,
  { queueId, domain, now, owner, updates }: AttemptRecord,
): { finished: boolean; recorded: number } {
  let sent = 0;
  let failures = 0;
  let lastError: string | null = null;
  for (const u of updates) {
    const { changes } = db.run(
      `UPDATE queue_recipients SET status = ?, attempts = ?,
         next_attempt_at = COALESCE(?, next_attempt_at), last_error = ?, updated_at = ?,
         claim_owner = NULL, claim_until = NULL
         WHERE id = ? AND queue_id = ? AND claim_owner = ?`,
      u.status,
      u.attempts,
      u.nextAttemptAt ?? null,
      u.lastError,
      now,
      u.id,
      queueId,
      owner,
    );
    // A recipient the operator dropped meanwhile, or one whose claim another worker took after
    // this one's lease ended (its outcome is that worker's to store), counts for nothing.
    if (changes === 0) continue;
    if (u.status === "delivered") sent++;
    else {
      failures++;
      lastError = u.lastError ?? lastError;
    }
  }
  if (sent + failures > 0) {
    db.run(
      `INSERT INTO federation_stats (domain, sent, failures, last_error, last_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET sent = sent + excluded.sent,
         failures = failures + excluded.failures,
         last_error = COALESCE(excluded.last_error, last_error), last_at = excluded.last_at`,
      domain.toLowerCase(),
      sent,
      failures,
      lastError,
      now,
    );
  }
  const left = db.get<{ n: number }>(
    `SELECT COUNT(*) AS n FROM queue_recipients
       WHERE queue_id = ? AND status IN ('queued', 'deferred')`,
    queueId,
  )!.n;
  const recorded = sent + failures;
  if (left > 0) return { finished: false, recorded };
  const q = db.get<{ body_id: number }>("SELECT body_id FROM queue WHERE id = ?", queueId);
  if (!q) return { finished: true, recorded };
  db.run("DELETE FROM queue WHERE id = ?", queueId);
  freeBodies(db, files, [q.body_id]);
  return { finished: true, recorded };
}
