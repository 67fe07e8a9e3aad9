// Metadata, settings, registration tokens, blocklist, federation counters and push state in
// PostgreSQL (store/sqlite/misc_store.ts does the same for SQLite).

import type { RegistrationToken } from "../types.ts";
import type { Q } from "./connection.ts";
import { onDb } from "./write_batch.ts";
import { alone, key, read, write } from "./op.ts";
import { blockEntriesOf } from "../block_entries.ts";

interface TokenRow {
  token: string;
  max_uses: number;
  uses: number;
  expires_at: number | null;
  created_at: number;
  comment: string;
}

const toToken = (r: TokenRow): RegistrationToken => ({
  token: r.token,
  maxUses: r.max_uses,
  uses: r.uses,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  comment: r.comment,
});

interface PushJobRow {
  id: number;
  account_id: number;
  token: string;
  attempt: number;
  start_at: number;
  next_at: number;
}

const toPushJob = (r: PushJobRow) => ({
  id: r.id,
  accountId: r.account_id,
  token: r.token,
  attempt: r.attempt,
  startAt: r.start_at,
  nextAt: r.next_at,
});

export const miscOps = {
  getMetadata: read(async (q, _e, accountId: number, mailbox: string, k: string) => {
    const [r] = await q<{ value: string }[]>`
      SELECT value FROM metadata
      WHERE account_id = ${accountId} AND mailbox = ${mailbox} AND key = ${k.toLowerCase()}`;
    return r?.value ?? null;
  }),
  listMetadata: read(async (q, _e, accountId: number, mailbox: string, prefix: string) =>
    Array.from(
      await q<{ key: string; value: string }[]>`
      SELECT key, value FROM metadata
      WHERE account_id = ${accountId} AND mailbox = ${mailbox}
        AND substr(key, 1, ${prefix.length}::int) = ${prefix.toLowerCase()}
      ORDER BY key`,
      (r) => ({ key: r.key, value: r.value }),
    )
  ),
  setMetadata: write(
    async (q, _e, accountId: number, mailbox: string, k: string, value: string | null) => {
      if (value === null) {
        await q`DELETE FROM metadata WHERE account_id = ${accountId} AND mailbox = ${mailbox}
          AND key = ${k.toLowerCase()}`;
      } else {
        await q`INSERT INTO metadata (account_id, mailbox, key, value)
          VALUES (${accountId}, ${mailbox}, ${k.toLowerCase()}, ${value})
          ON CONFLICT (account_id, mailbox, key) DO UPDATE SET value = excluded.value`;
      }
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),

  getSetting: read(async (q, _e, k: string) => {
    const [r] = await q<{ value: string }[]>`SELECT value FROM settings WHERE key = ${k}`;
    return r?.value ?? null;
  }),
  setSetting: write(
    async (q, _e, k: string, v: string | null) => {
      if (v === null) await q`DELETE FROM settings WHERE key = ${k}`;
      else {
        await q`INSERT INTO settings (key, value) VALUES (${k}, ${v})
        ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
      }
    },
    (_c, [k]) => [key.setting(k)],
  ),
  listSettings: read(async (q) => {
    const rows = await q<{ key: string; value: string }[]>`
      SELECT key, value FROM settings WHERE key NOT LIKE 'internal.%' ORDER BY key`;
    return Object.fromEntries(rows.map((r) => [r.key, r.value])) as Record<string, string>;
  }),

  createToken: write(
    async (q, _e, t: RegistrationToken) => {
      await q`INSERT INTO registration_tokens (token, max_uses, uses, expires_at, created_at, comment)
      VALUES (${t.token}, ${t.maxUses}, ${t.uses}, ${t.expiresAt}, ${t.createdAt}, ${t.comment})`;
    },
    (_c, [t]) => [key.token(t.token)],
  ),
  listTokens: read(async (q) =>
    (await q<TokenRow[]>`SELECT * FROM registration_tokens ORDER BY created_at`).map(toToken)
  ),
  getToken: read(async (q, _e, token: string) => {
    const [r] = await q<TokenRow[]>`SELECT * FROM registration_tokens WHERE token = ${token}`;
    return r ? toToken(r) : null;
  }),
  consumeToken: write(
    async (q, _e, token: string, now: number) => {
      const r = await q`UPDATE registration_tokens SET uses = uses + 1
        WHERE token = ${token} AND uses < max_uses AND (expires_at IS NULL OR expires_at > ${now})`;
      return r.count > 0;
    },
    (_c, [token]) => [key.token(token)],
  ),
  deleteToken: write(
    async (q, _e, token: string) => {
      const r = await q`DELETE FROM registration_tokens WHERE token = ${token}`;
      return r.count > 0;
    },
    (_c, [token]) => [key.token(token)],
  ),

  listBlocked: read(async (q) =>
    (await q<{ entry: string; reason: string; created_at: number }[]>`
      SELECT * FROM blocklist ORDER BY entry`)
      .map((r) => ({ entry: r.entry, reason: r.reason, createdAt: r.created_at }))
  ),
  addBlocked: write(
    async (q, _e, entry: string, reason: string, now: number) => {
      const r = await q`INSERT INTO blocklist (entry, reason, created_at)
        VALUES (${entry.toLowerCase()}, ${reason}, ${now})
        ON CONFLICT (entry) DO NOTHING`;
      return r.count > 0;
    },
    (_c, [entry]) => [key.blocked(entry)],
  ),
  removeBlocked: write(
    async (q, _e, entry: string) => {
      const r = await q`DELETE FROM blocklist WHERE entry = ${entry.toLowerCase()}`;
      return r.count > 0;
    },
    (_c, [entry]) => [key.blocked(entry)],
  ),
  isBlocked: read((q, _e, address: string) => blockedIn(q, address)),

  recordFederation: write(
    async (
      q,
      _e,
      domain: string,
      event: "sent" | "received" | "failure",
      now: number,
      error?: string,
    ) => {
      const d = domain.toLowerCase();
      const one = (e: string) => (event === e ? 1 : 0);
      await q`INSERT INTO federation_stats (domain, sent, received, failures, last_error, last_at)
        VALUES (${d}, ${one("sent")}, ${one("received")}, ${one("failure")}, ${
        error ?? null
      }, ${now})
        ON CONFLICT (domain) DO UPDATE SET sent = federation_stats.sent + excluded.sent,
          received = federation_stats.received + excluded.received,
          failures = federation_stats.failures + excluded.failures,
          last_error = COALESCE(excluded.last_error, federation_stats.last_error),
          last_at = excluded.last_at`;
    },
    (_c, [domain]) => [key.federation(domain)],
  ),
  listFederationStats: read(async (q) =>
    (await q<
      {
        domain: string;
        sent: number;
        received: number;
        failures: number;
        last_error: string | null;
        last_at: number;
      }[]
    >`SELECT * FROM federation_stats ORDER BY domain`).map((r) => ({
      domain: r.domain,
      sent: r.sent,
      received: r.received,
      failures: r.failures,
      lastError: r.last_error,
      lastAt: r.last_at,
    }))
  ),

  listPushTokens: read(async (q, _e, accountId: number, notBefore: number) =>
    (await q<{ token: string; updated_at: number }[]>`
      SELECT token, updated_at FROM push_tokens
      WHERE account_id = ${accountId} AND updated_at >= ${notBefore} ORDER BY id`)
      .map((r) => ({ token: r.token, updatedAt: r.updated_at }))
  ),
  upsertPushToken: write(
    async (
      q,
      _e,
      accountId: number,
      token: string,
      now: number,
      limit?: { max: number; notBefore: number },
    ) => {
      // Counted under the account's lock (the key below), which every other change of the
      // account's tokens takes too: instances adding tokens at once count one after another,
      // each making room for its token by dropping the other live tokens set longest ago.
      let dropped = 0;
      if (limit) {
        const [r] = await q<{ others: number }[]>`
          SELECT count(*) AS others FROM push_tokens
          WHERE account_id = ${accountId} AND updated_at >= ${limit.notBefore}
            AND token <> ${token}`;
        const excess = Number(r.others) - (limit.max - 1);
        if (excess > 0) {
          const gone = await q`DELETE FROM push_tokens
            WHERE account_id = ${accountId} AND token IN (
              SELECT token FROM push_tokens
              WHERE account_id = ${accountId} AND updated_at >= ${limit.notBefore}
                AND token <> ${token}
              ORDER BY updated_at, id LIMIT ${excess})`;
          dropped = gone.count;
        }
      }
      await q`INSERT INTO push_tokens (account_id, token, updated_at)
        VALUES (${accountId}, ${token}, ${now})
        ON CONFLICT (account_id, token) DO UPDATE SET updated_at = excluded.updated_at`;
      return dropped;
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),
  removePushToken: write(
    async (q, _e, accountId: number, token: string) => {
      await q`DELETE FROM push_tokens WHERE account_id = ${accountId} AND token = ${token}`;
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),
  removePushTokens: write(
    async (q, _e, accountId: number) => {
      await q`DELETE FROM push_tokens WHERE account_id = ${accountId}`;
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),
  expirePushTokens: alone(async (q, _e, before: number) => {
    const r = await q`DELETE FROM push_tokens WHERE updated_at < ${before}`;
    return r.count;
  }),
  enqueuePush: write(
    async (q, e, job: { accountId: number; token: string; now: number }) => {
      const [r] = await q<{ id: number }[]>`
        WITH waiting AS (
          SELECT id FROM push_jobs WHERE account_id = ${job.accountId} AND token = ${job.token}
          LIMIT 1
        ), added AS (
          INSERT INTO push_jobs (account_id, token, attempt, start_at, next_at)
          SELECT ${job.accountId}, ${job.token}, 0, ${job.now}, ${onDb(e, job.now)}
          WHERE NOT EXISTS (SELECT 1 FROM waiting) RETURNING id
        )
        SELECT id FROM added UNION ALL SELECT id FROM waiting`;
      return Number(r.id);
    },
    // The account's lock: an instance queueing for the same token at once waits for this
    // insert and then finds it (without it, both found none and the phone was woken twice).
    (_c, [job]) => [key.account(job.accountId)],
  ),
  // next_at is on the database's clock (onDb): a job another instance holds is not due for this
  // one because this one's clock is ahead.
  duePushJobs: read(async (q, e, now: number, limit: number) =>
    (await q<PushJobRow[]>`
      SELECT id, account_id, token, attempt, start_at, next_at - ${e.clockOffset()} AS next_at
      FROM push_jobs WHERE next_at <= ${onDb(e, now)} ORDER BY next_at LIMIT ${limit}`)
      .map(toPushJob)
  ),
  /**
   * Takes due jobs for `leaseMs`: they are not due again for anyone until then, so one instance
   * sends each (SKIP LOCKED: instances claiming at once take different jobs).
   */
  claimPushJobs: write(
    async (q, e, now: number, limit: number, leaseMs: number) =>
      (await q<PushJobRow[]>`
        WITH due AS (
          SELECT id FROM push_jobs WHERE next_at <= ${onDb(e, now)} ORDER BY next_at
          LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        UPDATE push_jobs p SET next_at = ${onDb(e, now) + leaseMs} FROM due WHERE p.id = due.id
        RETURNING p.id, p.account_id, p.token, p.attempt, p.start_at, ${now}::bigint AS next_at`)
        .map(toPushJob).sort((a, b) => a.id - b.id),
    () => [],
  ),
  reschedulePush: write(
    async (q, e, id: number, attempt: number, nextAt: number) => {
      await q`UPDATE push_jobs SET attempt = ${attempt}, next_at = ${onDb(e, nextAt)}
        WHERE id = ${id}`;
    },
    (_c, [id]) => [key.pushJob(id)],
  ),
  deletePushJob: write(
    async (q, _e, id: number) => {
      await q`DELETE FROM push_jobs WHERE id = ${id}`;
    },
    (_c, [id]) => [key.pushJob(id)],
  ),
  countPushJobs: read(async (q) => {
    const [r] = await q<{ n: number }[]>`SELECT count(*) AS n FROM push_jobs`;
    return r.n;
  }),
};

/** Whether the blocklist holds the address or its domain. */
export async function blockedIn(q: Q, address: string): Promise<boolean> {
  const [a, atDomain, domain] = blockEntriesOf(address);
  const rows = await q`SELECT 1 FROM blocklist WHERE entry IN (${a}, ${atDomain}, ${domain})`;
  return rows.length > 0;
}
