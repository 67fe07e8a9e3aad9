// The outbound queue in SQLite: one entry per submission (shared body), one row per recipient
// with its own status, attempts and next attempt time.

import type { QueueEntry, QueueRecipientRecord, QueueStore } from "../types.ts";
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
    claimRecipients(now, limit, leaseMs) {
      return db.tx(() => {
        const rows = db.all<RcptRow>(
          `SELECT * FROM queue_recipients WHERE status IN ('queued', 'deferred')
             AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
          now,
          limit,
        );
        for (const r of rows) {
          db.run(
            "UPDATE queue_recipients SET next_attempt_at = ? WHERE id = ?",
            now + leaseMs,
            r.id,
          );
        }
        return rows.map(toRcpt);
      });
    },
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
  };
}
