// Metadata, settings, registration tokens, blocklist, federation counters and push state.

import type {
  BlocklistStore,
  FederationStatsStore,
  MetadataStore,
  PushStore,
  RegistrationToken,
  SettingsStore,
  TokenStore,
} from "../types.ts";
import type { OpEnv, SyncOf } from "./env.ts";
import type { Db } from "./db.ts";
import { blockEntriesOf } from "../block_entries.ts";

type Misc = SyncOf<
  & MetadataStore
  & SettingsStore
  & TokenStore
  & BlocklistStore
  & FederationStatsStore
  & PushStore
>;

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

export function miscStore({ db }: OpEnv): Misc {
  return {
    getMetadata: (accountId, mailbox, key) =>
      db.get<{ value: string }>(
        "SELECT value FROM metadata WHERE account_id = ? AND mailbox = ? AND key = ?",
        accountId,
        mailbox,
        key.toLowerCase(),
      )?.value ?? null,
    listMetadata: (accountId, mailbox, prefix) =>
      db.all<{ key: string; value: string }>(
        "SELECT key, value FROM metadata WHERE account_id = ? AND mailbox = ? AND substr(key, 1, ?) = ? ORDER BY key",
        accountId,
        mailbox,
        prefix.length,
        prefix.toLowerCase(),
      ),
    setMetadata(accountId, mailbox, key, value) {
      if (value === null) {
        db.run(
          "DELETE FROM metadata WHERE account_id = ? AND mailbox = ? AND key = ?",
          accountId,
          mailbox,
          key.toLowerCase(),
        );
      } else {
        db.run(
          `INSERT INTO metadata (account_id, mailbox, key, value) VALUES (?, ?, ?, ?)
           ON CONFLICT(account_id, mailbox, key) DO UPDATE SET value = excluded.value`,
          accountId,
          mailbox,
          key.toLowerCase(),
          value,
        );
      }
    },

    getSetting: (key) =>
      db.get<{ value: string }>("SELECT value FROM settings WHERE key = ?", key)?.value ?? null,
    setSetting(key, value) {
      if (value === null) db.run("DELETE FROM settings WHERE key = ?", key);
      else {
        db.run(
          "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
          key,
          value,
        );
      }
    },
    listSettings() {
      const rows = db.all<{ key: string; value: string }>(
        "SELECT key, value FROM settings WHERE key NOT LIKE 'internal.%' ORDER BY key",
      );
      return Object.fromEntries(rows.map((r) => [r.key, r.value]));
    },

    createToken(t) {
      db.run(
        "INSERT INTO registration_tokens (token, max_uses, uses, expires_at, created_at, comment) VALUES (?, ?, ?, ?, ?, ?)",
        t.token,
        t.maxUses,
        t.uses,
        t.expiresAt,
        t.createdAt,
        t.comment,
      );
    },
    listTokens: () =>
      db.all<TokenRow>("SELECT * FROM registration_tokens ORDER BY created_at").map(toToken),
    getToken(token) {
      const r = db.get<TokenRow>("SELECT * FROM registration_tokens WHERE token = ?", token);
      return r ? toToken(r) : null;
    },
    consumeToken(token, now) {
      const { changes } = db.run(
        `UPDATE registration_tokens SET uses = uses + 1 WHERE token = ? AND uses < max_uses
         AND (expires_at IS NULL OR expires_at > ?)`,
        token,
        now,
      );
      return changes > 0;
    },
    deleteToken: (token) =>
      db.run("DELETE FROM registration_tokens WHERE token = ?", token).changes > 0,

    listBlocked: () =>
      db.all<{ entry: string; reason: string; created_at: number }>(
        "SELECT * FROM blocklist ORDER BY entry",
      ).map((r) => ({ entry: r.entry, reason: r.reason, createdAt: r.created_at })),
    addBlocked: (entry, reason, now) =>
      db.run(
        "INSERT INTO blocklist (entry, reason, created_at) VALUES (?, ?, ?) ON CONFLICT(entry) DO NOTHING",
        entry.toLowerCase(),
        reason,
        now,
      ).changes > 0,
    removeBlocked: (entry) =>
      db.run("DELETE FROM blocklist WHERE entry = ?", entry.toLowerCase()).changes > 0,
    isBlocked: (address) => isBlockedIn(db, address),

    recordFederation(domain, event, now, error) {
      const col = event === "sent" ? "sent" : event === "received" ? "received" : "failures";
      db.run(
        `INSERT INTO federation_stats (domain, ${col}, last_error, last_at) VALUES (?, 1, ?, ?)
         ON CONFLICT(domain) DO UPDATE SET ${col} = ${col} + 1,
         last_error = COALESCE(excluded.last_error, last_error), last_at = excluded.last_at`,
        domain.toLowerCase(),
        error ?? null,
        now,
      );
    },
    listFederationStats: () =>
      db.all<
        {
          domain: string;
          sent: number;
          received: number;
          failures: number;
          last_error: string | null;
          last_at: number;
        }
      >("SELECT * FROM federation_stats ORDER BY domain").map((r) => ({
        domain: r.domain,
        sent: r.sent,
        received: r.received,
        failures: r.failures,
        lastError: r.last_error,
        lastAt: r.last_at,
      })),

    listPushTokens: (accountId, notBefore) =>
      db.all<{ token: string; updated_at: number }>(
        "SELECT token, updated_at FROM push_tokens WHERE account_id = ? AND updated_at >= ? ORDER BY rowid",
        accountId,
        notBefore,
      ).map((r) => ({ token: r.token, updatedAt: r.updated_at })),
    upsertPushToken: (accountId, token, now, limit) =>
      db.tx(() => {
        let dropped = 0;
        if (limit) {
          // The other live tokens beyond max - 1 make room for this one, oldest first.
          const { others } = db.get<{ others: number }>(
            `SELECT count(*) AS others FROM push_tokens
             WHERE account_id = ? AND updated_at >= ? AND token <> ?`,
            accountId,
            limit.notBefore,
            token,
          )!;
          const excess = others - (limit.max - 1);
          if (excess > 0) {
            dropped = db.run(
              `DELETE FROM push_tokens WHERE rowid IN (
                 SELECT rowid FROM push_tokens
                 WHERE account_id = ? AND updated_at >= ? AND token <> ?
                 ORDER BY updated_at, rowid LIMIT ?)`,
              accountId,
              limit.notBefore,
              token,
              excess,
            ).changes;
          }
        }
        db.run(
          `INSERT INTO push_tokens (account_id, token, updated_at) VALUES (?, ?, ?)
           ON CONFLICT(account_id, token) DO UPDATE SET updated_at = excluded.updated_at`,
          accountId,
          token,
          now,
        );
        return dropped;
      }),
    removePushToken(accountId, token) {
      db.run("DELETE FROM push_tokens WHERE account_id = ? AND token = ?", accountId, token);
    },
    removePushTokens(accountId) {
      db.run("DELETE FROM push_tokens WHERE account_id = ?", accountId);
    },
    expirePushTokens: (before) =>
      db.run("DELETE FROM push_tokens WHERE updated_at < ?", before).changes,
    enqueuePush: ({ accountId, token, now }) =>
      db.tx(() => {
        const waiting = db.get<{ id: number }>(
          "SELECT id FROM push_jobs WHERE account_id = ? AND token = ? LIMIT 1",
          accountId,
          token,
        );
        if (waiting) return waiting.id;
        return db.run(
          "INSERT INTO push_jobs (account_id, token, attempt, start_at, next_at) VALUES (?, ?, 0, ?, ?)",
          accountId,
          token,
          now,
          now,
        ).lastInsertRowid;
      }),
    duePushJobs: (now, limit) =>
      db.all<
        {
          id: number;
          account_id: number;
          token: string;
          attempt: number;
          start_at: number;
          next_at: number;
        }
      >(
        "SELECT * FROM push_jobs WHERE next_at <= ? ORDER BY next_at LIMIT ?",
        now,
        limit,
      ).map((r) => ({
        id: r.id,
        accountId: r.account_id,
        token: r.token,
        attempt: r.attempt,
        startAt: r.start_at,
        nextAt: r.next_at,
      })),
    claimPushJobs(now, limit, leaseMs) {
      return db.tx(() => {
        const rows = db.all<
          {
            id: number;
            account_id: number;
            token: string;
            attempt: number;
            start_at: number;
          }
        >(
          "SELECT id, account_id, token, attempt, start_at FROM push_jobs WHERE next_at <= ? ORDER BY next_at LIMIT ?",
          now,
          limit,
        );
        for (const r of rows) {
          db.run("UPDATE push_jobs SET next_at = ? WHERE id = ?", now + leaseMs, r.id);
        }
        return rows.map((r) => ({
          id: r.id,
          accountId: r.account_id,
          token: r.token,
          attempt: r.attempt,
          startAt: r.start_at,
          nextAt: now,
        }));
      });
    },
    reschedulePush(id, attempt, nextAt) {
      db.run("UPDATE push_jobs SET attempt = ?, next_at = ? WHERE id = ?", attempt, nextAt, id);
    },
    deletePushJob(id) {
      db.run("DELETE FROM push_jobs WHERE id = ?", id);
    },
    countPushJobs: () => db.get<{ n: number }>("SELECT COUNT(*) AS n FROM push_jobs")!.n,
  };
}

/** Whether the blocklist holds the address or its domain (inside a transaction: as of now). */
export function isBlockedIn(db: Db, address: string): boolean {
  return db.get("SELECT 1 FROM blocklist WHERE entry IN (?, ?, ?)", ...blockEntriesOf(address)) !==
    undefined;
}
