// Mailboxes and messages in SQLite. Every change bumps the mailbox's modseq; expunges are
// recorded with theirs, so sessions resync from the store (IDLE, CONDSTORE, QRESYNC).

import { RelayError } from "../../errors.ts";
import type {
  CopyResult,
  DeliveryOutcome,
  DeliveryTarget,
  FlagUpdateResult,
  MailboxRecord,
  MailboxStore,
  MessageRecord,
} from "../types.ts";
import type { Db } from "./db.ts";
import type { OpEnv, SyncOf } from "./env.ts";
import { freeBodies, insertBody, messageSize, setBodyStructure } from "./bodies.ts";
import { mailboxKeywords } from "./keywords.ts";

/**
 * The store functions of mailboxes and messages that run in the store threads. (Spools and
 * body readers are built around them in mod.ts.)
 */
export type MailOps = SyncOf<
  Omit<
    MailboxStore,
    "createSpool" | "openBody" | "readSmallBodies" | "readBody" | "freeUnreferencedBodies"
  >
>;

interface MailboxRow {
  id: number;
  account_id: number;
  name: string;
  uid_validity: number;
  uid_next: number;
  highest_modseq: number;
  subscribed: number;
  special_use: string | null;
  first_recent_uid: number;
  message_count: number;
  unseen_count: number;
  recent_count: number;
  size_bytes: number;
  expunge_horizon: number;
}

interface MessageRow {
  mailbox_id: number;
  uid: number;
  modseq: number;
  flags: string;
  internal_date: number;
  size: number;
  body_id: number;
}

const MSG_COLS = "mailbox_id, uid, modseq, flags, internal_date, size, body_id";

function toMessage(r: MessageRow): MessageRecord {
  return {
    mailboxId: r.mailbox_id,
    uid: r.uid,
    modSeq: r.modseq,
    flags: r.flags === "" ? [] : r.flags.split(" "),
    internalDate: r.internal_date,
    size: r.size,
    bodyId: r.body_id,
  };
}

export function nextUidValidity(db: Db, now: number): number {
  const last = Number(
    db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'internal.uidvalidity'")
      ?.value ?? 0,
  );
  const v = Math.max(Math.floor(now / 1000), last + 1);
  db.run(
    "INSERT INTO settings (key, value) VALUES ('internal.uidvalidity', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    String(v),
  );
  return v;
}

/** Normalises a flag list: system flags capitalised, duplicates removed, sorted. */
export function normalizeFlags(flags: string[]): string[] {
  const out = new Map<string, string>();
  for (const f of flags) {
    if (!f) continue;
    const canon = f.startsWith("\\") ? "\\" + f[1].toUpperCase() + f.slice(2).toLowerCase() : f;
    // The first spelling of a keyword stays (a message's own, before one being added).
    if (!out.has(canon.toLowerCase())) out.set(canon.toLowerCase(), canon);
  }
  return [...out.values()].sort();
}

function uidChunks(uids: number[], size = 500): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < uids.length; i += size) out.push(uids.slice(i, i + size));
  return out;
}

export function mailStore({ db, files, now }: OpEnv): MailOps {
  const mailboxRecord = (r: MailboxRow): MailboxRecord => {
    return {
      id: r.id,
      accountId: r.account_id,
      name: r.name,
      uidValidity: r.uid_validity,
      uidNext: r.uid_next,
      highestModSeq: r.highest_modseq,
      subscribed: db.get(
        "SELECT 1 AS x FROM subscriptions WHERE account_id = ? AND name = ?",
        r.account_id,
        r.name,
      ) !== undefined,
      specialUse: r.special_use,
      messages: r.message_count,
      unseen: r.unseen_count,
      recent: r.recent_count,
      sizeBytes: r.size_bytes,
      expungeHorizonModSeq: r.expunge_horizon,
    };
  };
  const row = (accountId: number, name: string) =>
    db.get<MailboxRow>(
      "SELECT * FROM mailboxes WHERE account_id = ? AND name = ?",
      accountId,
      name,
    );
  const rowById = (id: number) => db.get<MailboxRow>("SELECT * FROM mailboxes WHERE id = ?", id);
  const mustRow = (id: number) => {
    const r = rowById(id);
    if (!r) throw new RelayError("mailbox_not_found", `Cannot find mailbox ${id}`);
    return r;
  };
  const used = (accountId: number) =>
    db.get<{ n: number }>("SELECT used_bytes AS n FROM accounts WHERE id = ?", accountId)?.n ?? 0;
  /** A delivery target's account, by id or address, as this transaction sees it. */
  const targetAccount = (t: DeliveryTarget) =>
    db.get<{ id: number; address: string; blocked: number }>(
      t.address === undefined
        ? "SELECT id, address, blocked FROM accounts WHERE id = ?"
        : "SELECT id, address, blocked FROM accounts WHERE address = ?",
      t.address === undefined ? t.accountId : t.address.toLowerCase(),
    );
  /** What a delivered message's follow-ups (quota trimming, push) need about its account. */
  const followUps = (accountId: number) => {
    const r = db.get<{ used: number; quota: number | null; push: number }>(
      `SELECT used_bytes AS used, quota_bytes AS quota,
         EXISTS (SELECT 1 FROM push_tokens WHERE account_id = accounts.id) AS push
       FROM accounts WHERE id = ?`,
      accountId,
    )!;
    return { usedBytes: r.used, quotaBytes: r.quota, hasPushTokens: r.push === 1 };
  };
  /** Whether `size` more bytes fit the account's quota (one read for use and quota). */
  const fits = (accountId: number, size: number, fallback: number) => {
    const a = db.get<{ used: number; quota: number | null }>(
      "SELECT used_bytes AS used, quota_bytes AS quota FROM accounts WHERE id = ?",
      accountId,
    );
    return (a?.used ?? 0) + size <= (a?.quota ?? fallback);
  };
  const bumpModSeq = (mailboxId: number) => {
    db.run("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?", mailboxId);
    return db.get<{ m: number }>(
      "SELECT highest_modseq AS m FROM mailboxes WHERE id = ?",
      mailboxId,
    )!
      .m;
  };
  /** `current`: the mailbox's row as read in this transaction, when nothing changed it since. */
  const insertMessage = (
    mailboxId: number,
    bodyId: number,
    size: number,
    internalDate: number,
    flags: string[],
    current?: MailboxRow,
  ) => {
    const mb = current ?? mustRow(mailboxId);
    const uid = mb.uid_next;
    const modSeq = mb.highest_modseq + 1;
    db.run(
      "UPDATE mailboxes SET uid_next = ?, highest_modseq = ? WHERE id = ?",
      uid + 1,
      modSeq,
      mailboxId,
    );
    const f = normalizeFlags(mailboxKeywords(db, mailboxId, flags, true));
    db.run(
      `INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      mailboxId,
      uid,
      modSeq,
      bodyId,
      size,
      internalDate,
      f.join(" "),
      f.includes("\\Seen") ? 1 : 0,
    );
    return { uid, modSeq };
  };
  const messagesByUid = (mailboxId: number, uids: number[]) => {
    const out: MessageRecord[] = [];
    for (const chunk of uidChunks(uids)) {
      const rows = db.all<MessageRow>(
        `SELECT ${MSG_COLS} FROM messages WHERE mailbox_id = ? AND uid IN (${
          chunk.map(() => "?").join(",")
        }) ORDER BY uid`,
        mailboxId,
        ...chunk,
      );
      for (const r of rows) out.push(toMessage(r));
    }
    return out.sort((a, b) => a.uid - b.uid);
  };
  /**
   * Deletes messages a chunk at a time, each chunk in set-based statements: its tombstones in
   * one INSERT … SELECT, the counters moved once (migration 0006 dropped the per-row delete
   * trigger, which made a mass expunge run two UPDATEs per message), then one DELETE.
   */
  const removeUids = (mailboxId: number, uids: number[]) => {
    const removed: number[] = [];
    const bodyIds: number[] = [];
    let modSeq = 0;
    for (const chunk of uidChunks(uids)) {
      const inList = `mailbox_id = ? AND uid IN (${chunk.map(() => "?").join(",")})`;
      const rows = db.all<{ uid: number; body_id: number }>(
        `SELECT uid, body_id FROM messages WHERE ${inList}`,
        mailboxId,
        ...chunk,
      );
      if (rows.length === 0) continue;
      if (modSeq === 0) modSeq = bumpModSeq(mailboxId);
      // The tombstone keeps what SEARCH needs for sessions not told yet (migration 0004).
      db.run(
        `INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, flags, size, internal_date, expunged_at)
         SELECT mailbox_id, uid, ?, flags, size, internal_date, ? FROM messages WHERE ${inList}`,
        modSeq,
        now(),
        mailboxId,
        ...chunk,
      );
      const gone = db.get<{ n: number; unseen: number; recent: number; bytes: number }>(
        `SELECT COUNT(*) AS n, COALESCE(SUM(seen = 0), 0) AS unseen,
         COALESCE(SUM(uid >= (SELECT first_recent_uid FROM mailboxes WHERE id = ?)), 0) AS recent,
         COALESCE(SUM(size), 0) AS bytes FROM messages WHERE ${inList}`,
        mailboxId,
        mailboxId,
        ...chunk,
      )!;
      db.run(
        `UPDATE mailboxes SET message_count = message_count - ?, unseen_count = unseen_count - ?,
         recent_count = recent_count - ?, size_bytes = size_bytes - ? WHERE id = ?`,
        gone.n,
        gone.unseen,
        gone.recent,
        gone.bytes,
        mailboxId,
      );
      db.run(
        `UPDATE accounts SET used_bytes = used_bytes - ?
         WHERE id = (SELECT account_id FROM mailboxes WHERE id = ?)`,
        gone.bytes,
        mailboxId,
      );
      db.run(`DELETE FROM messages WHERE ${inList}`, mailboxId, ...chunk);
      for (const r of rows) {
        removed.push(r.uid);
        bodyIds.push(r.body_id);
      }
    }
    freeBodies(db, files, bodyIds);
    return removed.sort((a, b) => a - b);
  };
  const copyInto = (mailboxId: number, uids: number[], dest: number): CopyResult => {
    const src = mustRow(mailboxId);
    const dst = mustRow(dest);
    if (src.account_id !== dst.account_id) {
      throw new RelayError("mailbox_invalid", "Cannot copy between accounts");
    }
    const mapping: [number, number][] = [];
    for (const m of messagesByUid(mailboxId, uids)) {
      const { uid } = insertMessage(dest, m.bodyId, m.size, m.internalDate, m.flags);
      mapping.push([m.uid, uid]);
    }
    return { uidValidity: dst.uid_validity, mapping, destinationMailboxId: dest };
  };

  return {
    listMailboxes(accountId) {
      return db.all<MailboxRow>(
        "SELECT * FROM mailboxes WHERE account_id = ? ORDER BY name",
        accountId,
      ).map(mailboxRecord);
    },
    getMailbox(accountId, name) {
      const r = row(accountId, name);
      return r ? mailboxRecord(r) : null;
    },
    getMailboxById(id) {
      const r = rowById(id);
      return r ? mailboxRecord(r) : null;
    },
    createMailbox(accountId, name, specialUse = null) {
      const r = db.tx(() => {
        if (row(accountId, name)) {
          throw new RelayError("mailbox_exists", `Cannot create mailbox "${name}": it exists`);
        }
        const { lastInsertRowid } = db.run(
          // Not subscribed: subscriptions are the client's (RFC 9051 §6.3.7); INBOX is.
          "INSERT INTO mailboxes (account_id, name, uid_validity, special_use, subscribed) VALUES (?, ?, ?, ?, 0)",
          accountId,
          name,
          nextUidValidity(db, now()),
          specialUse,
        );
        return rowById(lastInsertRowid)!;
      });
      return mailboxRecord(r);
    },
    deleteMailbox(accountId, name) {
      db.tx(() => {
        const r = row(accountId, name);
        if (!r) {
          throw new RelayError("mailbox_not_found", `Cannot delete mailbox "${name}": not found`);
        }
        const bodyIds = db.all<{ body_id: number }>(
          "SELECT DISTINCT body_id FROM messages WHERE mailbox_id = ?",
          r.id,
        ).map((x) => x.body_id);
        // The account's usage drops by the mailbox's messages (no per-row trigger since
        // migration 0006); the mailbox's own counters go with its row.
        db.run(
          `UPDATE accounts SET used_bytes = used_bytes -
           (SELECT COALESCE(SUM(size), 0) FROM messages WHERE mailbox_id = ?) WHERE id = ?`,
          r.id,
          r.account_id,
        );
        db.run("DELETE FROM messages WHERE mailbox_id = ?", r.id);
        db.run("DELETE FROM mailboxes WHERE id = ?", r.id);
        freeBodies(db, files, bodyIds);
      });
    },
    renameMailbox(accountId, from, to) {
      db.tx(() => {
        const r = row(accountId, from);
        if (!r) {
          throw new RelayError("mailbox_not_found", `Cannot rename mailbox "${from}": not found`);
        }
        if (row(accountId, to)) {
          throw new RelayError("mailbox_exists", `Cannot rename to "${to}": mailbox exists`);
        }
        if (from === "INBOX") {
          // RFC 9051 §6.3.6: the messages move to the new mailbox, INBOX stays and is empty.
          const { lastInsertRowid: dest } = db.run(
            "INSERT INTO mailboxes (account_id, name, uid_validity) VALUES (?, ?, ?)",
            accountId,
            to,
            nextUidValidity(db, now()),
          );
          const uids = db.all<{ uid: number }>(
            "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid",
            r.id,
          ).map((x) => x.uid);
          copyInto(r.id, uids, dest);
          removeUids(r.id, uids);
        } else {
          db.run("UPDATE mailboxes SET name = ? WHERE id = ?", to, r.id);
          db.run(
            "UPDATE OR IGNORE subscriptions SET name = ? WHERE account_id = ? AND name = ?",
            to,
            accountId,
            from,
          );
        }
      });
    },
    setSubscribed(accountId, name, subscribed) {
      if (subscribed) {
        db.run(
          "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
          accountId,
          name,
        );
      } else {
        db.run("DELETE FROM subscriptions WHERE account_id = ? AND name = ?", accountId, name);
      }
    },
    listSubscriptions(accountId) {
      return db.all<{ name: string }>(
        "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name",
        accountId,
      ).map((r) => r.name);
    },
    deliver(input) {
      const { internalDate, targets, defaultQuotaBytes } = input;
      const size = messageSize(input);
      return db.tx(() => {
        let bodyId = 0;
        const out: DeliveryOutcome[] = [];
        const filled = new Set<number>();
        const stored: { index: number; accountId: number }[] = [];
        for (const t of targets) {
          const a = targetAccount(t);
          if (!a || a.blocked) {
            out.push({
              ok: false,
              accountId: a?.id ?? t.accountId ?? null,
              address: a?.address ?? t.address?.toLowerCase() ?? null,
              code: "no_account",
            });
            continue;
          }
          const fail = (code: "quota_exceeded" | "mailbox_not_found") =>
            out.push({ ok: false, accountId: a.id, address: a.address, code });
          const mb = row(a.id, t.mailboxName);
          if (!mb) {
            fail("mailbox_not_found");
            continue;
          }
          if (!fits(a.id, size, defaultQuotaBytes)) {
            fail("quota_exceeded");
            continue;
          }
          if (bodyId === 0) bodyId = insertBody(db, files, input, now());
          // `mb` is current unless an earlier target of this delivery was the same mailbox.
          const { uid, modSeq } = insertMessage(
            mb.id,
            bodyId,
            size,
            internalDate,
            t.flags ?? [],
            filled.has(mb.id) ? undefined : mb,
          );
          filled.add(mb.id);
          stored.push({ index: out.length, accountId: a.id });
          out.push({
            ok: true,
            accountId: a.id,
            address: a.address,
            mailboxId: mb.id,
            uid,
            modSeq,
            usedBytes: 0,
            quotaBytes: null,
            hasPushTokens: false,
          });
        }
        // After every insert: a second copy for one account counts in both outcomes.
        for (const { index, accountId } of stored) {
          const f = followUps(accountId);
          Object.assign(out[index], f);
        }
        return out;
      });
    },
    append(input) {
      const { accountId, mailboxName, flags, internalDate, defaultQuotaBytes } = input;
      const size = messageSize(input);
      return db.tx(() => {
        const mb = row(accountId, mailboxName);
        if (!mb) {
          throw new RelayError("mailbox_not_found", `Cannot append to "${mailboxName}": not found`);
        }
        if (!fits(accountId, size, defaultQuotaBytes)) {
          throw new RelayError("quota_exceeded", "Cannot append: quota exceeded");
        }
        const bodyId = insertBody(db, files, input, now());
        const { uid, modSeq } = insertMessage(mb.id, bodyId, size, internalDate, flags, mb);
        return { mailboxId: mb.id, uidValidity: mb.uid_validity, uid, modSeq };
      });
    },
    listMessages(mailboxId, page) {
      const rows = page
        ? db.all<MessageRow>(
          `SELECT ${MSG_COLS} FROM messages WHERE mailbox_id = ? AND uid > ? ORDER BY uid LIMIT ?`,
          mailboxId,
          page.afterUid,
          page.limit,
        )
        : db.all<MessageRow>(
          `SELECT ${MSG_COLS} FROM messages WHERE mailbox_id = ? ORDER BY uid`,
          mailboxId,
        );
      return rows.map(toMessage);
    },
    getMessages: (mailboxId, uids) => messagesByUid(mailboxId, uids),
    changesSince(mailboxId, modSeq) {
      return db.snapshot(() => {
        const mb = mustRow(mailboxId);
        const changed = db.all<MessageRow>(
          `SELECT ${MSG_COLS} FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`,
          mailboxId,
          modSeq,
        ).map(toMessage);
        const expunged = db.all<{ uid: number }>(
          "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
          mailboxId,
          modSeq,
        ).map((x) => x.uid);
        return { changed, expunged, highestModSeq: mb.highest_modseq };
      });
    },
    setBodyStructure: (bodyId, structure) => setBodyStructure(db, bodyId, structure),
    setFlags(mailboxId, update): FlagUpdateResult {
      return db.tx(() => {
        mustRow(mailboxId);
        const msgs = messagesByUid(mailboxId, update.uids);
        const flags = normalizeFlags(
          mailboxKeywords(db, mailboxId, update.flags, update.mode !== "remove" && msgs.length > 0),
        );
        const updated: MessageRecord[] = [];
        const modified: number[] = [];
        let modSeq = 0;
        for (const m of msgs) {
          if (update.unchangedSince !== undefined && m.modSeq > update.unchangedSince) {
            modified.push(m.uid);
            continue;
          }
          let next: string[];
          if (update.mode === "replace") next = flags;
          else if (update.mode === "add") next = normalizeFlags([...m.flags, ...flags]);
          else {
            const drop = new Set(flags.map((f) => f.toLowerCase()));
            next = m.flags.filter((f) => !drop.has(f.toLowerCase()));
          }
          if (next.join(" ") === m.flags.join(" ")) continue;
          if (modSeq === 0) modSeq = bumpModSeq(mailboxId);
          db.run(
            "UPDATE messages SET flags = ?, seen = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
            next.join(" "),
            next.includes("\\Seen") ? 1 : 0,
            modSeq,
            mailboxId,
            m.uid,
          );
          updated.push({ ...m, flags: next, modSeq });
        }
        return { updated, modified, highestModSeq: mustRow(mailboxId).highest_modseq };
      });
    },
    copyMessages: (mailboxId, uids, dest) => db.tx(() => copyInto(mailboxId, uids, dest)),
    moveMessages(mailboxId, uids, dest) {
      return db.tx(() => {
        const result = copyInto(mailboxId, uids, dest);
        removeUids(mailboxId, result.mapping.map(([s]) => s));
        return result;
      });
    },
    expunge(mailboxId, uids) {
      return db.tx(() => {
        mustRow(mailboxId);
        // With UIDs: look at those only; without: the messages_deleted index (migration 0004)
        // finds the flagged ones. Either way the cost follows the messages expunged.
        const candidates = uids
          ? messagesByUid(mailboxId, uids)
          : db.all<{ uid: number; flags: string }>(
            "SELECT uid, flags FROM messages WHERE mailbox_id = ? AND instr(flags, '\\Deleted') > 0 ORDER BY uid",
            mailboxId,
          ).map((m) => ({ uid: m.uid, flags: m.flags.split(" ") }));
        const deleted = candidates.filter((m) => m.flags.includes("\\Deleted")).map((m) => m.uid);
        return removeUids(mailboxId, deleted);
      });
    },
    removeMessages: (mailboxId, uids) => db.tx(() => removeUids(mailboxId, uids)),
    usedBytes: used,
    listMessagesForRetention({ accountId, olderThan, largerThan, limit }) {
      const rows = db.all<MessageRow & { account_id: number }>(
        `SELECT m.mailbox_id, m.uid, m.modseq, m.flags, m.internal_date, m.size, m.body_id, b.account_id
         FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
         WHERE (? IS NULL OR b.account_id = ?) AND (? IS NULL OR m.internal_date < ?)
         AND (? IS NULL OR m.size > ?) ORDER BY m.internal_date, m.id LIMIT ?`,
        accountId ?? null,
        accountId ?? null,
        olderThan ?? null,
        olderThan ?? null,
        largerThan ?? null,
        largerThan ?? null,
        limit,
      );
      return rows.map((r) => ({ ...toMessage(r), accountId: r.account_id }));
    },
    claimRecent(mailboxId) {
      // \Recent is the UID range from first_recent_uid up (migration 0004): claiming it moves
      // the boundary, one row written whatever the number of messages.
      return db.tx((): [number, number] | null => {
        const r = mustRow(mailboxId);
        if (r.first_recent_uid >= r.uid_next) return null;
        db.run(
          "UPDATE mailboxes SET first_recent_uid = uid_next, recent_count = 0 WHERE id = ?",
          mailboxId,
        );
        return [r.first_recent_uid, r.uid_next - 1];
      });
    },
  };
}
