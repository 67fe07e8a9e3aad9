// Loads many small messages into one mailbox in big transactions: the big-mailbox tests and the
// scale benchmark fill 250 000 messages in seconds instead of one commit each. The rows are what
// append() would have written (bodies, UIDs and modseqs in order, keywords recorded); nothing
// else in tern uses this.

import type { Db } from "./db.ts";
import { mailboxKeywords } from "./keywords.ts";
import { normalizeFlags } from "./mail_store.ts";

export interface BulkMessage {
  data: Uint8Array;
  flags: string[];
  internalDate: number;
}

/**
 * Appends `count` messages made by `make(i)` (i from 0) to the mailbox, `batch` per
 * transaction, and returns their UID range. They are not \Recent (as if a session had already
 * seen them).
 */
export function bulkFill(
  db: Db,
  mailboxId: number,
  count: number,
  make: (i: number) => BulkMessage,
  batch = 20_000,
): { firstUid: number; lastUid: number } {
  const start = db.get<{ uid_next: number }>(
    "SELECT uid_next FROM mailboxes WHERE id = ?",
    mailboxId,
  )!.uid_next;
  const body = db.raw.prepare("INSERT INTO bodies (size, data, created_at) VALUES (?, ?, ?)");
  const message = db.raw.prepare(
    `INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen, recent)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
  );
  const flagCache = new Map<string, string[]>();
  let done = 0;
  while (done < count) {
    const n = Math.min(batch, count - done);
    db.tx(() => {
      const mb = db.get<{ uid_next: number; highest_modseq: number }>(
        "SELECT uid_next, highest_modseq FROM mailboxes WHERE id = ?",
        mailboxId,
      )!;
      let uid = mb.uid_next;
      let modSeq = mb.highest_modseq;
      for (let k = 0; k < n; k++) {
        const m = make(done + k);
        const key = m.flags.join(" ");
        let flags = flagCache.get(key);
        if (!flags) {
          flags = normalizeFlags(mailboxKeywords(db, mailboxId, m.flags, true));
          flagCache.set(key, flags);
        }
        const bodyId = Number(body.run(m.data.length, m.data, m.internalDate).lastInsertRowid);
        message.run(
          mailboxId,
          uid++,
          ++modSeq,
          bodyId,
          m.data.length,
          m.internalDate,
          flags.join(" "),
          flags.includes("\\Seen") ? 1 : 0,
        );
      }
      db.run(
        `UPDATE mailboxes SET uid_next = ?, highest_modseq = ?, first_recent_uid = ?, recent_count = 0
         WHERE id = ?`,
        uid,
        modSeq,
        uid,
        mailboxId,
      );
    });
    done += n;
  }
  return { firstUid: start, lastUid: start + count - 1 };
}
