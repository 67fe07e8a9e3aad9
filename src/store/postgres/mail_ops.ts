// Mailboxes and messages in PostgreSQL, with the semantics of store/sqlite/mail_store.ts: every
// change bumps the mailbox's modseq; expunges are recorded with theirs; counters move with every
// change (triggers). Set-based statements keep each operation to a few round trips whatever the
// number of messages it touches. Writes hold the advisory lock of their account (write_batch.ts),
// so two instances never interleave inside one account's UID and modseq sequence.

import { RelayError } from "../../errors.ts";
import type {
  CopyResult,
  DeliveryOutcome,
  DeliveryTarget,
  FlagUpdate,
  FlagUpdateResult,
  MailboxChanges,
  MailboxRecord,
  MessageInput,
  MessageRecord,
} from "../types.ts";
import { normalizeFlags } from "../sqlite/mail_store.ts";
import { messageSize } from "../sqlite/bodies.ts";
import type { Q } from "./connection.ts";
import { key, type KeyContext, read, write } from "./op.ts";
import { freeBodies, insertBody } from "./bodies.ts";
import { lockKeys, nextUidValidity } from "./shared_sql.ts";
import { mailboxKeywords } from "./keywords.ts";

interface MailboxRow {
  id: number;
  account_id: number;
  name: string;
  uid_validity: number;
  uid_next: number;
  highest_modseq: number;
  subscribed: boolean;
  special_use: string | null;
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

function toMailbox(r: MailboxRow): MailboxRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    name: r.name,
    uidValidity: r.uid_validity,
    uidNext: r.uid_next,
    highestModSeq: r.highest_modseq,
    subscribed: r.subscribed,
    specialUse: r.special_use,
    messages: r.message_count,
    unseen: r.unseen_count,
    recent: r.recent_count,
    sizeBytes: r.size_bytes,
    expungeHorizonModSeq: r.expunge_horizon,
  };
}

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

/** Mailbox rows with whether their name is subscribed (subscriptions are names). */
const mailboxesWhere = (q: Q, where: "id" | "name" | "account", a: number, b?: string) => {
  const cond = where === "id"
    ? q`m.id = ${a}`
    : where === "name"
    ? q`m.account_id = ${a} AND m.name = ${b!}`
    : q`m.account_id = ${a}`;
  return q<MailboxRow[]>`
    SELECT m.*, EXISTS (SELECT 1 FROM subscriptions s
      WHERE s.account_id = m.account_id AND s.name = m.name) AS subscribed
    FROM mailboxes m WHERE ${cond} ORDER BY m.name`;
};

async function mustMailbox(q: Q, id: number): Promise<MailboxRow> {
  const [r] = await mailboxesWhere(q, "id", id);
  if (!r) throw new RelayError("mailbox_not_found", `Cannot find mailbox ${id}`);
  return r;
}

async function messagesByUid(q: Q, mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
  if (uids.length === 0) return [];
  const rows = await q<MessageRow[]>`
    SELECT mailbox_id, uid, modseq, flags, internal_date, size, body_id FROM messages
    WHERE mailbox_id = ${mailboxId} AND uid = ANY(${uids}::bigint[]) ORDER BY uid`;
  return rows.map(toMessage);
}

/**
 * Appends one message to a mailbox when the account has room: uid and modseq taken from the
 * mailbox in the same statement. Returns null when over quota.
 */
async function insertMessage(
  q: Q,
  mailboxId: number,
  bodyId: number,
  size: number,
  internalDate: number,
  flags: string[],
  quota: { defaultBytes: number } | null,
): Promise<{ uid: number; modSeq: number } | null> {
  const f = normalizeFlags(await mailboxKeywords(q, mailboxId, flags, true));
  const rows = await q<{ uid: number; modseq: number }[]>`
    WITH room AS (
      SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account_id
      WHERE m.id = ${mailboxId} AND (${quota === null}::boolean
        OR a.used_bytes + ${size}::bigint <= COALESCE(a.quota_bytes, ${
    quota?.defaultBytes ?? 0
  }::bigint))),
    up AS (
      UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
      WHERE id = (SELECT id FROM room) RETURNING id, uid_next - 1 AS uid, highest_modseq AS modseq)
    INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen)
    SELECT id, uid, modseq, ${bodyId}, ${size}, ${internalDate}, ${f.join(" ")},
      ${f.includes("\\Seen")} FROM up
    RETURNING uid, modseq`;
  return rows.length ? { uid: rows[0].uid, modSeq: rows[0].modseq } : null;
}

/**
 * Removes messages by UID with one modseq for all, records tombstones (keeping what SEARCH
 * needs for sessions not told yet: flags, size, INTERNALDATE), frees bodies.
 */
async function removeUids(q: Q, mailboxId: number, uids: number[], now: number) {
  if (uids.length === 0) return [];
  const gone = await q<{ uid: number; body_id: number }[]>`
    WITH del AS (
      DELETE FROM messages WHERE mailbox_id = ${mailboxId} AND uid = ANY(${uids}::bigint[])
      RETURNING uid, body_id, flags, size, internal_date),
    bump AS (
      UPDATE mailboxes SET highest_modseq = highest_modseq + 1
      WHERE id = ${mailboxId} AND EXISTS (SELECT 1 FROM del) RETURNING highest_modseq),
    tomb AS (
      INSERT INTO expunged (mailbox_id, uid, modseq, flags, size, internal_date, expunged_at)
      SELECT ${mailboxId}, del.uid, bump.highest_modseq, del.flags, del.size, del.internal_date,
        ${now} FROM del, bump
      ON CONFLICT (mailbox_id, uid) DO UPDATE
        SET modseq = excluded.modseq, flags = excluded.flags, size = excluded.size,
          internal_date = excluded.internal_date, expunged_at = excluded.expunged_at)
    SELECT uid, body_id FROM del ORDER BY uid`;
  await freeBodies(q, gone.map((g) => g.body_id), now);
  return gone.map((g) => g.uid);
}

/**
 * Defines the keywords of the messages to copy in `dest` (in the order of their first use, as
 * copying one message at a time would) and returns the messages whose flags read differently
 * there (a keyword `dest` spells otherwise): usually none, so the copy stays set-based.
 */
async function destinationKeywords(
  q: Q,
  mailboxId: number,
  uids: number[],
  dest: number,
): Promise<{ uids: number[]; flags: string[] }> {
  // Every spelling present (older messages may differ in case), each at its first use.
  const words = (await q<{ w: string }[]>`
    SELECT w FROM (
      SELECT DISTINCT ON (f.w) f.w, m.uid, f.n
      FROM messages m, unnest(string_to_array(m.flags, ' ')) WITH ORDINALITY AS f(w, n)
      WHERE m.mailbox_id = ${mailboxId} AND m.uid = ANY(${uids}::bigint[]) AND m.flags <> ''
        AND f.w <> '' AND left(f.w, 1) <> E'\\\\'
      ORDER BY f.w, m.uid, f.n) AS first_use
    ORDER BY uid, n`).map((r) => r.w);
  const spelled = await mailboxKeywords(q, dest, words, true);
  const respell = new Map<string, string>();
  words.forEach((w, i) => {
    if (spelled[i] !== w) respell.set(w, spelled[i]);
  });
  const out = { uids: [] as number[], flags: [] as string[] };
  if (respell.size === 0) return out;
  const rows = await q<{ uid: number; flags: string }[]>`
    SELECT uid, flags FROM messages
    WHERE mailbox_id = ${mailboxId} AND uid = ANY(${uids}::bigint[]) AND flags <> ''`;
  for (const r of rows) {
    const next = normalizeFlags(r.flags.split(" ").map((f) => respell.get(f) ?? f)).join(" ");
    if (next === r.flags) continue;
    out.uids.push(r.uid);
    out.flags.push(next);
  }
  return out;
}

/** Copies messages (in UID order) to the end of `dest`, each with its own UID and modseq. */
async function copyInto(
  q: Q,
  mailboxId: number,
  uids: number[],
  dest: number,
): Promise<CopyResult> {
  const src = await mustMailbox(q, mailboxId);
  const dst = await mustMailbox(q, dest);
  if (src.account_id !== dst.account_id) {
    throw new RelayError("mailbox_invalid", "Cannot copy between accounts");
  }
  if (uids.length === 0) {
    return { uidValidity: dst.uid_validity, mapping: [], destinationMailboxId: dest };
  }
  const respelled = await destinationKeywords(q, mailboxId, uids, dest);
  const rows = await q<{ s: number; d: number }[]>`
    WITH src AS (
      SELECT m.uid, m.body_id, m.size, m.internal_date, COALESCE(o.flags, m.flags) AS flags,
        m.seen, row_number() OVER (ORDER BY m.uid) AS n
      FROM messages m LEFT JOIN unnest(${respelled.uids}::bigint[], ${respelled.flags}::text[])
        AS o(uid, flags) ON o.uid = m.uid
      WHERE m.mailbox_id = ${mailboxId} AND m.uid = ANY(${uids}::bigint[])),
    cnt AS (SELECT count(*) AS c FROM src),
    up AS (
      UPDATE mailboxes SET uid_next = uid_next + (SELECT c FROM cnt),
        highest_modseq = highest_modseq + (SELECT c FROM cnt)
      WHERE id = ${dest} AND (SELECT c FROM cnt) > 0
      RETURNING uid_next - (SELECT c FROM cnt) AS first_uid,
        highest_modseq - (SELECT c FROM cnt) AS base_modseq),
    ins AS (
      INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen)
      SELECT ${dest}, up.first_uid + src.n - 1, up.base_modseq + src.n, src.body_id, src.size,
        src.internal_date, src.flags, src.seen
      FROM src, up)
    SELECT src.uid AS s, up.first_uid + src.n - 1 AS d FROM src, up ORDER BY src.uid`;
  return {
    uidValidity: dst.uid_validity,
    mapping: rows.map((r) => [r.s, r.d] as [number, number]),
    destinationMailboxId: dest,
  };
}

const accountOfMailbox = async (ctx: KeyContext, [id]: [number, ...unknown[]]) => [
  key.account(await ctx.accountOf(id)),
];

/** The accounts a deliver() batch locked (its keys), for the run to lock what it finds besides. */
const deliverLocks = new WeakMap<DeliverInput, Set<number>>();

type DeliverInput = MessageInput & {
  internalDate: number;
  targets: DeliveryTarget[];
  defaultQuotaBytes: number;
};

type AppendInput = MessageInput & {
  accountId: number;
  mailboxName: string;
  flags: string[];
  internalDate: number;
  defaultQuotaBytes: number;
};

export const mailOps = {
  listMailboxes: read(async (q, _e, accountId: number) =>
    (await mailboxesWhere(q, "account", accountId)).map(toMailbox)
  ),
  getMailbox: read(async (q, _e, accountId: number, name: string) => {
    const [r] = await mailboxesWhere(q, "name", accountId, name);
    return r ? toMailbox(r) : null;
  }),
  getMailboxById: read(async (q, _e, id: number) => {
    const [r] = await mailboxesWhere(q, "id", id);
    return r ? toMailbox(r) : null;
  }),
  createMailbox: write(
    async (q, env, accountId: number, name: string, specialUse: string | null = null) => {
      const uv = await nextUidValidity(q, env.now());
      // Not subscribed: subscriptions are the client's (RFC 9051 §6.3.7); INBOX is.
      const [made] = await q<{ id: number }[]>`
        INSERT INTO mailboxes (account_id, name, uid_validity, special_use)
        VALUES (${accountId}, ${name}, ${uv}, ${specialUse})
        ON CONFLICT (account_id, name) DO NOTHING RETURNING id`;
      if (!made) {
        throw new RelayError("mailbox_exists", `Cannot create mailbox "${name}": it exists`);
      }
      return toMailbox((await mailboxesWhere(q, "id", made.id))[0]);
    },
    (_c, [accountId]) => [key.account(accountId), key.uidValidity],
  ),
  deleteMailbox: write(
    async (q, env, accountId: number, name: string) => {
      const [r] = await q<{ id: number }[]>`
        SELECT id FROM mailboxes WHERE account_id = ${accountId} AND name = ${name}`;
      if (!r) {
        throw new RelayError("mailbox_not_found", `Cannot delete mailbox "${name}": not found`);
      }
      // Messages first: their counter trigger still finds the mailbox's account.
      const bodies = await q<{ body_id: number }[]>`
        DELETE FROM messages WHERE mailbox_id = ${r.id} RETURNING body_id`;
      await q`DELETE FROM mailboxes WHERE id = ${r.id}`;
      await freeBodies(q, bodies.map((b) => b.body_id), env.now());
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),
  renameMailbox: write(
    async (q, env, accountId: number, from: string, to: string) => {
      const [r] = await mailboxesWhere(q, "name", accountId, from);
      if (!r) {
        throw new RelayError("mailbox_not_found", `Cannot rename mailbox "${from}": not found`);
      }
      const [exists] = await mailboxesWhere(q, "name", accountId, to);
      if (exists) {
        throw new RelayError("mailbox_exists", `Cannot rename to "${to}": mailbox exists`);
      }
      if (from === "INBOX") {
        // RFC 9051 §6.3.6: the messages move to the new mailbox, INBOX stays and is empty.
        const uv = await nextUidValidity(q, env.now());
        const [made] = await q<{ id: number }[]>`
          INSERT INTO mailboxes (account_id, name, uid_validity)
          VALUES (${accountId}, ${to}, ${uv}) RETURNING id`;
        const uids = (await q<{ uid: number }[]>`
          SELECT uid FROM messages WHERE mailbox_id = ${r.id} ORDER BY uid`).map((x) => x.uid);
        await copyInto(q, r.id, uids, made.id);
        await removeUids(q, r.id, uids, env.now());
      } else {
        await q`UPDATE mailboxes SET name = ${to} WHERE id = ${r.id}`;
        await q`UPDATE subscriptions SET name = ${to}
          WHERE account_id = ${accountId} AND name = ${from}
          AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE account_id = ${accountId}
            AND name = ${to})`;
      }
    },
    (_c, [accountId]) => [key.account(accountId), key.uidValidity],
  ),
  setSubscribed: write(
    async (q, _e, accountId: number, name: string, subscribed: boolean) => {
      if (subscribed) {
        await q`INSERT INTO subscriptions (account_id, name) VALUES (${accountId}, ${name})
          ON CONFLICT DO NOTHING`;
      } else {
        await q`DELETE FROM subscriptions WHERE account_id = ${accountId} AND name = ${name}`;
      }
    },
    (_c, [accountId]) => [key.account(accountId)],
  ),
  listSubscriptions: read(async (q, _e, accountId: number) =>
    (await q<{ name: string }[]>`
      SELECT name FROM subscriptions WHERE account_id = ${accountId} ORDER BY name`)
      .map((r) => r.name)
  ),
  deliver: write(
    async (q, env, input: DeliverInput) => {
      const size = messageSize(input);
      const addresses = input.targets.flatMap((t) => t.address === undefined ? [] : [t.address]);
      const ids = input.targets.flatMap((t) => t.address === undefined ? [t.accountId] : []);
      // The accounts as this transaction sees them (one deleted or blocked since the caller
      // looked gets nothing), with their target mailboxes.
      const rows = await q<
        { id: number; address: string; blocked: boolean; mailbox: number | null; name: string }[]
      >`
        SELECT a.id, a.address, a.blocked, m.id AS mailbox, m.name FROM accounts a
        LEFT JOIN mailboxes m ON m.account_id = a.id
          AND m.name = ANY(${input.targets.map((t) => t.mailboxName)}::text[])
        WHERE a.address = ANY(${addresses.map((a) => a.toLowerCase())}::text[])
          OR a.id = ANY(${ids}::bigint[])`;
      const accounts = [...new Map(rows.map((r) => [r.id, r])).values()];
      // The batch locked the accounts the addresses had when it was formed (deliverLocks); one
      // deleted and created again since is locked here (a deadlock this may cause reruns).
      const locked = deliverLocks.get(input);
      const unlocked = accounts.filter((a) => !locked?.has(a.id));
      if (unlocked.length > 0) await lockKeys(q, unlocked.map((a) => key.account(a.id)));
      const byId = new Map(accounts.map((a) => [a.id, a]));
      const byAddress = new Map(accounts.map((a) => [a.address, a]));
      const accountOf = (t: DeliveryTarget) =>
        t.address === undefined ? byId.get(t.accountId) : byAddress.get(t.address.toLowerCase());
      const usable = (t: DeliveryTarget) => {
        const a = accountOf(t);
        return a && !a.blocked ? a : null;
      };
      const missing = (t: DeliveryTarget): DeliveryOutcome => {
        const a = accountOf(t);
        return {
          ok: false,
          accountId: a?.id ?? t.accountId ?? null,
          address: a?.address ?? t.address?.toLowerCase() ?? null,
          code: "no_account",
        };
      };
      const out: DeliveryOutcome[] = [];
      if (!input.targets.some(usable)) return input.targets.map(missing);
      // The body goes in first (one statement); every target then takes a UID in one statement
      // each. A body nobody took is removed again.
      const bodyId = await insertBody(q, input, env.now());
      const found = new Map(
        rows.filter((r) => r.mailbox !== null).map((r) => [`${r.id} ${r.name}`, r.mailbox!]),
      );
      // Sequentially: two targets of one account must see each other's size against the quota.
      const stored: number[] = [];
      for (const t of input.targets) {
        const a = usable(t);
        if (!a) {
          out.push(missing(t));
          continue;
        }
        const accountId = a.id;
        const mailboxId = found.get(`${accountId} ${t.mailboxName}`);
        if (mailboxId === undefined) {
          out.push({ ok: false, accountId, address: a.address, code: "mailbox_not_found" });
          continue;
        }
        const r = await insertMessage(
          q,
          mailboxId,
          bodyId,
          size,
          input.internalDate,
          t.flags ?? [],
          { defaultBytes: input.defaultQuotaBytes },
        );
        if (!r) {
          out.push({ ok: false, accountId, address: a.address, code: "quota_exceeded" });
          continue;
        }
        stored.push(out.length);
        out.push({
          ok: true,
          accountId,
          address: a.address,
          mailboxId,
          uid: r.uid,
          modSeq: r.modSeq,
          usedBytes: 0,
          quotaBytes: null,
          hasPushTokens: false,
        });
      }
      if (stored.length === 0) await freeBodies(q, [bodyId], env.now());
      else {
        // What the follow-ups need, after every insert (quota trimming, push).
        const rows = await q<
          { id: number; used_bytes: number; quota_bytes: number | null; push: boolean }[]
        >`
          SELECT id, used_bytes, quota_bytes,
            EXISTS (SELECT 1 FROM push_tokens p WHERE p.account_id = a.id) AS push
          FROM accounts a
          WHERE id = ANY(${stored.map((i) => out[i].accountId!)}::bigint[])`;
        const f = new Map(rows.map((r) => [r.id, r]));
        for (const i of stored) {
          const r = f.get(out[i].accountId!)!;
          Object.assign(out[i], {
            usedBytes: r.used_bytes,
            quotaBytes: r.quota_bytes,
            hasPushTokens: r.push,
          });
        }
      }
      return out;
    },
    async (ctx, [input]) => {
      const ids = [
        ...input.targets.flatMap((t) => t.address === undefined ? [t.accountId] : []),
        ...await ctx.accountsOf(
          input.targets.flatMap((t) => t.address === undefined ? [] : [t.address.toLowerCase()]),
        ),
      ];
      deliverLocks.set(input, new Set(ids));
      return ids.map((id) => key.account(id));
    },
  ),
  append: write(
    async (q, env, input: AppendInput) => {
      const size = messageSize(input);
      const [mb] = await q<{ id: number; uid_validity: number }[]>`
        SELECT id, uid_validity FROM mailboxes
        WHERE account_id = ${input.accountId} AND name = ${input.mailboxName}`;
      if (!mb) {
        throw new RelayError(
          "mailbox_not_found",
          `Cannot append to "${input.mailboxName}": not found`,
        );
      }
      const bodyId = await insertBody(q, input, env.now());
      const r = await insertMessage(q, mb.id, bodyId, size, input.internalDate, input.flags, {
        defaultBytes: input.defaultQuotaBytes,
      });
      // Throwing rolls the body back with the rest of the operation (its savepoint).
      if (!r) throw new RelayError("quota_exceeded", "Cannot append: quota exceeded");
      return { mailboxId: mb.id, uidValidity: mb.uid_validity, uid: r.uid, modSeq: r.modSeq };
    },
    (_c, [input]) => [key.account(input.accountId)],
  ),
  listMessages: read(
    async (q, _e, mailboxId: number, page?: { afterUid: number; limit: number }) => {
      const rows = page
        ? await q<MessageRow[]>`
          SELECT mailbox_id, uid, modseq, flags, internal_date, size, body_id FROM messages
          WHERE mailbox_id = ${mailboxId} AND uid > ${page.afterUid}
          ORDER BY uid LIMIT ${page.limit}`
        : await q<MessageRow[]>`
          SELECT mailbox_id, uid, modseq, flags, internal_date, size, body_id FROM messages
          WHERE mailbox_id = ${mailboxId} ORDER BY uid`;
      return rows.map(toMessage);
    },
  ),
  getMessages: read((q, _e, mailboxId: number, uids: number[]) =>
    messagesByUid(q, mailboxId, uids)
  ),
  changesSince: read(async (q, _e, mailboxId: number, modSeq: number): Promise<MailboxChanges> => {
    // One statement: one snapshot for the changes, the tombstones and the highest modseq.
    const rows = await q<(MessageRow & { k: string })[]>`
      SELECT 'm' AS k, mailbox_id, uid, modseq, flags, internal_date, size, body_id
      FROM messages WHERE mailbox_id = ${mailboxId} AND modseq > ${modSeq}
      UNION ALL
      SELECT 'x', mailbox_id, uid, modseq, NULL, NULL, NULL, NULL
      FROM expunged WHERE mailbox_id = ${mailboxId} AND modseq > ${modSeq}
      UNION ALL
      SELECT 'h', id, NULL, highest_modseq, NULL, NULL, NULL, NULL
      FROM mailboxes WHERE id = ${mailboxId}`;
    const head = rows.find((r) => r.k === "h");
    if (!head) throw new RelayError("mailbox_not_found", `Cannot find mailbox ${mailboxId}`);
    return {
      changed: rows.filter((r) => r.k === "m").map(toMessage).sort((a, b) => a.uid - b.uid),
      expunged: rows.filter((r) => r.k === "x").map((r) => r.uid).sort((a, b) => a - b),
      highestModSeq: head.modseq,
    };
  }),
  setBodyStructure: write(
    async (q, _e, bodyId: number, structure: Uint8Array) => {
      await q`UPDATE bodies SET structure = ${structure} WHERE id = ${bodyId}`;
    },
    (_c, [bodyId]) => [key.body(bodyId)],
  ),
  setFlags: write(
    async (q, _e, mailboxId: number, update: FlagUpdate): Promise<FlagUpdateResult> => {
      await mustMailbox(q, mailboxId);
      const msgs = await messagesByUid(q, mailboxId, update.uids);
      const flags = normalizeFlags(
        await mailboxKeywords(
          q,
          mailboxId,
          update.flags,
          update.mode !== "remove" && msgs.length > 0,
        ),
      );
      const changed: { m: MessageRecord; next: string[] }[] = [];
      const modified: number[] = [];
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
        if (next.join(" ") !== m.flags.join(" ")) changed.push({ m, next });
      }
      if (changed.length === 0) {
        const [mb] = await q<{ h: number }[]>`
          SELECT highest_modseq AS h FROM mailboxes WHERE id = ${mailboxId}`;
        return { updated: [], modified, highestModSeq: mb.h };
      }
      const [bump] = await q<{ h: number }[]>`
        WITH bump AS (
          UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ${mailboxId}
          RETURNING highest_modseq),
        -- seen crosses as 0/1: postgres.js declares a boolean array parameter as boolean.
        upd AS (
          UPDATE messages m SET flags = u.flags, seen = u.seen = 1,
            modseq = (SELECT highest_modseq FROM bump)
          FROM unnest(${changed.map((c) => c.m.uid)}::bigint[],
            ${changed.map((c) => c.next.join(" "))}::text[],
            ${changed.map((c) => c.next.includes("\\Seen") ? 1 : 0)}::int[]) AS u(uid, flags, seen)
          WHERE m.mailbox_id = ${mailboxId} AND m.uid = u.uid)
        SELECT highest_modseq AS h FROM bump`;
      return {
        updated: changed.map(({ m, next }) => ({ ...m, flags: next, modSeq: bump.h })),
        modified,
        highestModSeq: bump.h,
      };
    },
    accountOfMailbox,
  ),
  copyMessages: write(
    (q, _e, mailboxId: number, uids: number[], dest: number) => copyInto(q, mailboxId, uids, dest),
    async (ctx, [mailboxId, , dest]) => [
      key.account(await ctx.accountOf(mailboxId)),
      key.account(await ctx.accountOf(dest)),
    ],
  ),
  moveMessages: write(
    async (q, env, mailboxId: number, uids: number[], dest: number) => {
      const result = await copyInto(q, mailboxId, uids, dest);
      await removeUids(q, mailboxId, result.mapping.map(([s]) => s), env.now());
      return result;
    },
    async (ctx, [mailboxId, , dest]) => [
      key.account(await ctx.accountOf(mailboxId)),
      key.account(await ctx.accountOf(dest)),
    ],
  ),
  expunge: write(
    async (q, env, mailboxId: number, uids?: number[]) => {
      await mustMailbox(q, mailboxId);
      // With UIDs: those only (the (mailbox_id, uid) key); without: the partial index
      // messages_deleted (the same expression as its predicate). Either way the cost follows
      // the messages expunged, not the mailbox.
      const candidates = uids
        ? await q<{ uid: number; flags: string }[]>`
          SELECT uid, flags FROM messages
          WHERE mailbox_id = ${mailboxId} AND uid = ANY(${uids}::bigint[])
            AND strpos(flags, E'\\\\Deleted') > 0`
        : await q<{ uid: number; flags: string }[]>`
          SELECT uid, flags FROM messages
          WHERE mailbox_id = ${mailboxId} AND strpos(flags, E'\\\\Deleted') > 0`;
      const deleted = candidates.filter((m) => m.flags.split(" ").includes("\\Deleted"))
        .map((m) => m.uid).sort((a, b) => a - b);
      return removeUids(q, mailboxId, deleted, env.now());
    },
    accountOfMailbox,
  ),
  removeMessages: write(
    (q, env, mailboxId: number, uids: number[]) => removeUids(q, mailboxId, uids, env.now()),
    accountOfMailbox,
  ),
  claimRecent: write(
    async (q, _e, mailboxId: number): Promise<[number, number] | null> => {
      // \Recent is the UID range from first_recent_uid up (migration 0002): claiming it moves
      // the boundary, one row written whatever the number of messages.
      const [r] = await q<{ first: number; next: number }[]>`
        WITH old AS (
          SELECT id, first_recent_uid FROM mailboxes WHERE id = ${mailboxId} FOR UPDATE),
        claim AS (
          UPDATE mailboxes m SET first_recent_uid = m.uid_next, recent_count = 0 FROM old
          WHERE m.id = old.id AND old.first_recent_uid < m.uid_next RETURNING m.uid_next)
        SELECT old.first_recent_uid AS first, (SELECT uid_next FROM claim) AS next FROM old`;
      if (!r) throw new RelayError("mailbox_not_found", `Cannot find mailbox ${mailboxId}`);
      return r.next === null ? null : [r.first, r.next - 1];
    },
    accountOfMailbox,
  ),
  usedBytes: read(async (q, _e, accountId: number) => {
    const [r] = await q<
      { n: number }[]
    >`SELECT used_bytes AS n FROM accounts WHERE id = ${accountId}`;
    return r?.n ?? 0;
  }),
  listMessagesForRetention: read(
    async (
      q,
      _e,
      query: { accountId?: number; olderThan?: number; largerThan?: number; limit: number },
    ) => {
      const rows = await q<(MessageRow & { account_id: number })[]>`
        SELECT m.mailbox_id, m.uid, m.modseq, m.flags, m.internal_date, m.size, m.body_id,
          b.account_id
        FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
        WHERE (${query.accountId ?? null}::bigint IS NULL OR b.account_id = ${
        query.accountId ?? null
      }::bigint)
          AND (${query.olderThan ?? null}::bigint IS NULL OR m.internal_date < ${
        query.olderThan ?? null
      }::bigint)
          AND (${query.largerThan ?? null}::bigint IS NULL OR m.size > ${
        query.largerThan ?? null
      }::bigint)
        ORDER BY m.internal_date, m.id LIMIT ${query.limit}`;
      return rows.map((r) => ({ ...toMessage(r), accountId: r.account_id }));
    },
  ),
};
