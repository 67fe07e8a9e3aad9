// Accounts in PostgreSQL: creation with INBOX (one per address, whichever instance asks first),
// lookups, blocking, deletion with everything the account owns.

import type { AccountRecord } from "../types.ts";
import type { Q } from "./connection.ts";
import { key, read, write } from "./op.ts";
import { freeBodies } from "./bodies.ts";
import { nextUidValidity } from "./shared_sql.ts";
import { blockedIn } from "./misc_ops.ts";
import { blockEntriesOf } from "../block_entries.ts";

interface AccountRow {
  id: number;
  address: string;
  password_hash: string;
  created_at: number;
  last_login_at: number | null;
  blocked: boolean;
  quota_bytes: number | null;
  enforce_e2ee: boolean;
  used_bytes: number;
}

function toRecord(r: AccountRow): AccountRecord {
  return {
    id: r.id,
    address: r.address,
    passwordHash: r.password_hash,
    createdAt: r.created_at,
    lastLoginAt: r.last_login_at,
    blocked: r.blocked,
    quotaBytes: r.quota_bytes,
    usedBytes: r.used_bytes,
    enforceE2ee: r.enforce_e2ee,
  };
}

const byAddress = async (q: Q, address: string) => {
  const [r] = await q<
    AccountRow[]
  >`SELECT * FROM accounts WHERE address = ${address.toLowerCase()}`;
  return r ? toRecord(r) : null;
};

const byId = async (q: Q, id: number) => {
  const [r] = await q<AccountRow[]>`SELECT * FROM accounts WHERE id = ${id}`;
  return r ? toRecord(r) : null;
};

type NewAccount = { address: string; passwordHash: string; now: number };

/** The account and its INBOX, or the existing one. */
async function create(q: Q, input: NewAccount) {
  const address = input.address.toLowerCase();
  const [made] = await q<AccountRow[]>`
    INSERT INTO accounts (address, password_hash, created_at)
    VALUES (${address}, ${input.passwordHash}, ${input.now})
    ON CONFLICT (address) DO NOTHING RETURNING *`;
  if (!made) return { account: (await byAddress(q, address))!, created: false };
  const uv = await nextUidValidity(q, input.now);
  await q`
    WITH mb AS (INSERT INTO mailboxes (account_id, name, uid_validity)
      VALUES (${made.id}, 'INBOX', ${uv}))
    INSERT INTO subscriptions (account_id, name) VALUES (${made.id}, 'INBOX')
    ON CONFLICT DO NOTHING`;
  return { account: toRecord(made), created: true };
}

export const accountOps = {
  getAccount: read((q, _e, address: string) => byAddress(q, address)),
  getAccountById: read((q, _e, id: number) => byId(q, id)),
  createAccount: write(
    (q, _e, input: NewAccount) => create(q, input),
    (_c, [input]) => [key.address(input.address), key.uidValidity],
  ),
  // The batch holds the locks of the blocklist entries that would block the address, as
  // addBlocked() takes its entry's: an entry added in a transaction still open when this one
  // looks is committed and seen by then (READ COMMITTED reads as of each statement).
  createAccountUnlessBlocked: write(
    async (q, _e, input: NewAccount) => {
      // An existing account is returned as createAccount() does: the blocklist stops new ones.
      if (!(await byAddress(q, input.address)) && (await blockedIn(q, input.address))) return null;
      return create(q, input);
    },
    (_c, [input]) => [
      key.address(input.address),
      key.uidValidity,
      ...blockEntriesOf(input.address).map(key.blocked),
    ],
  ),
  deleteAccount: write(
    async (q, env, id: number) => {
      const bodyIds = (await q<{ body_id: number }[]>`
      SELECT DISTINCT m.body_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
      WHERE b.account_id = ${id}`).map((r) => r.body_id);
      await q`DELETE FROM push_jobs WHERE account_id = ${id}`;
      // Messages first: their counter trigger still finds the mailboxes (as with SQLite).
      await q`DELETE FROM messages WHERE mailbox_id IN (
      SELECT id FROM mailboxes WHERE account_id = ${id})`;
      const r = await q`DELETE FROM accounts WHERE id = ${id}`;
      await freeBodies(q, bodyIds, env.now());
      return r.count > 0;
    },
    (_c, [id]) => [key.account(id)],
  ),
  setAccountBlocked: write(
    async (q, _e, id: number, blocked: boolean) => {
      await q`UPDATE accounts SET blocked = ${blocked} WHERE id = ${id}`;
    },
    (_c, [id]) => [key.account(id)],
  ),
  setPasswordHash: write(
    async (q, _e, id: number, hash: string) => {
      await q`UPDATE accounts SET password_hash = ${hash} WHERE id = ${id}`;
    },
    (_c, [id]) => [key.account(id)],
  ),
  setQuota: write(
    async (q, _e, id: number, quotaBytes: number | null) => {
      await q`UPDATE accounts SET quota_bytes = ${quotaBytes} WHERE id = ${id}`;
    },
    (_c, [id]) => [key.account(id)],
  ),
  recordLogin: write(
    async (q, _e, id: number, now: number) => {
      await q`UPDATE accounts SET last_login_at = ${now} WHERE id = ${id}`;
    },
    (_c, [id]) => [key.account(id)],
  ),
  listAccounts: read(
    async (q, _e, query: { search?: string; offset?: number; limit?: number }) => {
      const pattern = `%${(query.search ?? "").toLowerCase().replace(/[\\%_]/g, (c) => "\\" + c)}%`;
      const rows = await q<AccountRow[]>`
        SELECT * FROM accounts WHERE address LIKE ${pattern}
        ORDER BY address LIMIT ${query.limit ?? 50} OFFSET ${query.offset ?? 0}`;
      const [t] = await q<{ n: number }[]>`
        SELECT count(*) AS n FROM accounts WHERE address LIKE ${pattern}`;
      return { items: rows.map(toRecord), total: t.n };
    },
  ),
  countAccounts: read(async (q) => {
    const [r] = await q<{ n: number }[]>`SELECT count(*) AS n FROM accounts`;
    return r.n;
  }),
  listInactiveAccounts: read(async (q, _e, before: number, limit: number) => {
    const rows = await q<AccountRow[]>`
      SELECT * FROM accounts WHERE COALESCE(last_login_at, created_at) < ${before}
      ORDER BY id LIMIT ${limit}`;
    return rows.map(toRecord);
  }),
};
