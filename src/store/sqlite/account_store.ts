// Accounts in SQLite: creation with INBOX (race-safe through the unique address), lookups,
// blocking, deletion with everything the account owns.

import type { AccountRecord, AccountStore, Page } from "../types.ts";
import type { OpEnv, SyncOf } from "./env.ts";
import { freeBodies } from "./bodies.ts";
import { nextUidValidity } from "./mail_store.ts";
import { isBlockedIn } from "./misc_store.ts";

type NewAccount = { address: string; passwordHash: string; now: number };

interface AccountRow {
  id: number;
  address: string;
  password_hash: string;
  created_at: number;
  last_login_at: number | null;
  blocked: number;
  quota_bytes: number | null;
  enforce_e2ee: number;
  used_bytes: number;
}

const SELECT = "SELECT a.* FROM accounts a";

function toRecord(r: AccountRow): AccountRecord {
  return {
    id: r.id,
    address: r.address,
    passwordHash: r.password_hash,
    createdAt: r.created_at,
    lastLoginAt: r.last_login_at,
    blocked: r.blocked === 1,
    quotaBytes: r.quota_bytes,
    usedBytes: r.used_bytes,
    enforceE2ee: r.enforce_e2ee === 1,
  };
}

export function accountStore({ db, files }: OpEnv): SyncOf<AccountStore> {
  const byAddress = (address: string) => {
    const r = db.get<AccountRow>(`${SELECT} WHERE a.address = ?`, address.toLowerCase());
    return r ? toRecord(r) : null;
  };
  const byId = (id: number) => {
    const r = db.get<AccountRow>(`${SELECT} WHERE a.id = ?`, id);
    return r ? toRecord(r) : null;
  };
  /** Inside a transaction: the account and its INBOX, or the existing one. */
  const create = ({ address, passwordHash, now }: NewAccount) => {
    const existing = byAddress(address);
    if (existing) return { account: existing, created: false };
    const { lastInsertRowid: id } = db.run(
      "INSERT INTO accounts (address, password_hash, created_at) VALUES (?, ?, ?)",
      address.toLowerCase(),
      passwordHash,
      now,
    );
    db.run(
      "INSERT INTO mailboxes (account_id, name, uid_validity) VALUES (?, 'INBOX', ?)",
      id,
      nextUidValidity(db, now),
    );
    db.run("INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, 'INBOX')", id);
    return { account: byId(id)!, created: true };
  };
  return {
    getAccount: byAddress,
    getAccountById: byId,
    createAccount: (input) => db.tx(() => create(input)),
    createAccountUnlessBlocked: (input) =>
      // An existing account is returned as createAccount() does: the blocklist stops new ones.
      db.tx(() =>
        !byAddress(input.address) && isBlockedIn(db, input.address) ? null : create(input)
      ),
    deleteAccount(id) {
      return db.tx(() => {
        const bodyIds = db.all<{ body_id: number }>(
          `SELECT DISTINCT m.body_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           WHERE b.account_id = ?`,
          id,
        ).map((r) => r.body_id);
        db.run("DELETE FROM push_jobs WHERE account_id = ?", id);
        const { changes } = db.run("DELETE FROM accounts WHERE id = ?", id);
        freeBodies(db, files, bodyIds);
        return changes > 0;
      });
    },
    setAccountBlocked(id, blocked) {
      db.run("UPDATE accounts SET blocked = ? WHERE id = ?", blocked ? 1 : 0, id);
    },
    setPasswordHash(id, hash) {
      db.run("UPDATE accounts SET password_hash = ? WHERE id = ?", hash, id);
    },
    setQuota(id, quotaBytes) {
      db.run("UPDATE accounts SET quota_bytes = ? WHERE id = ?", quotaBytes, id);
    },
    recordLogin(id, now) {
      db.run("UPDATE accounts SET last_login_at = ? WHERE id = ?", now, id);
    },
    listAccounts({ search, offset = 0, limit = 50 }): Page<AccountRecord> {
      const pattern = `%${(search ?? "").toLowerCase().replace(/[\\%_]/g, (c) => "\\" + c)}%`;
      const rows = db.all<AccountRow>(
        `${SELECT} WHERE a.address LIKE ? ESCAPE '\\' ORDER BY a.address LIMIT ? OFFSET ?`,
        pattern,
        limit,
        offset,
      );
      const total = db.get<{ n: number }>(
        "SELECT COUNT(*) AS n FROM accounts WHERE address LIKE ? ESCAPE '\\'",
        pattern,
      )!.n;
      return { items: rows.map(toRecord), total };
    },
    countAccounts: () => db.get<{ n: number }>("SELECT COUNT(*) AS n FROM accounts")!.n,
    listInactiveAccounts(before, limit) {
      const rows = db.all<AccountRow>(
        `${SELECT} WHERE COALESCE(a.last_login_at, a.created_at) < ? ORDER BY a.id LIMIT ?`,
        before,
        limit,
      );
      return rows.map(toRecord);
    },
  };
}
