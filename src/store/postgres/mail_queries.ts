// Bounded reads for IMAP on mailboxes of any size (MailboxQueries), with the semantics of
// store/sqlite/mail_queries.ts: every query walks an index range of at most its limit or window
// (10 000 rows), so each call costs about the same however large the mailbox, and callers page
// through the rest. Each is one statement (one snapshot, one round trip for fixed statements).
//
// Needs PostgreSQL 14 or newer (multiranges, for UID sets of any length in one parameter).

import type {
  ChangesQuery,
  ExpungedRecord,
  MailboxState,
  MessageFilter,
  MessageRecord,
  ScanQuery,
  ScanResult,
} from "../types.ts";
import { MAX_PAGE, MAX_WINDOW } from "../sqlite/mail_queries.ts";
import type { Q } from "./connection.ts";
import { read } from "./op.ts";

const ABOVE_ANY_UID = 4294967296;

interface Row {
  uid: number;
  modseq: number;
  flags: string;
  internal_date: number;
  size: number;
  body_id: number;
}

interface ExpungedRow {
  uid: number;
  modseq: number;
  flags: string | null;
  size: number | null;
  internal_date: number | null;
}

function toRecord(mailboxId: number, r: Row): MessageRecord {
  return {
    mailboxId,
    uid: r.uid,
    modSeq: r.modseq,
    flags: r.flags === "" ? [] : r.flags.split(" "),
    internalDate: r.internal_date,
    size: r.size,
    bodyId: r.body_id,
  };
}

function toExpunged(r: ExpungedRow): ExpungedRecord {
  return {
    uid: r.uid,
    modSeq: r.modseq,
    flags: r.flags === null ? null : r.flags === "" ? [] : r.flags.split(" "),
    size: r.size,
    internalDate: r.internal_date,
  };
}

const clamp = (n: number, max: number) => Math.max(1, Math.min(max, Math.floor(n)));

/** A whole number for a bigint parameter (NaN and infinities to the nearest bound). */
const int = (n: number, lo = -Number.MAX_SAFE_INTEGER, hi = Number.MAX_SAFE_INTEGER) =>
  Number.isNaN(n) ? lo : Math.max(lo, Math.min(hi, Math.floor(n)));

const COLUMN = { internalDate: "internal_date", size: "size", modSeq: "modseq" } as const;
const OPS = new Set(["<", "<=", ">", ">="]);

/**
 * The filter as an SQL expression over the columns uid, seen, flags, internal_date, size and
 * modseq; values go to `params` ($1 is params[0]). Only the shape of the filter reaches the SQL
 * text: UID sets are one int8multirange parameter (containment is a binary search, whatever the
 * number of ranges), flags and numbers are parameters.
 */
export function filterSql(f: MessageFilter, params: unknown[]): string {
  const param = (v: unknown) => `$${params.push(v)}`;
  switch (f.kind) {
    case "true":
      return "true";
    case "false":
      return "false";
    case "uids": {
      const ranges = f.ranges
        .map(([a, b]) => [int(a, 0, ABOVE_ANY_UID), int(b, 0, ABOVE_ANY_UID)])
        .filter(([a, b]) => a <= b);
      if (ranges.length === 0) return "false";
      const text = `{${ranges.map(([a, b]) => `[${a},${b}]`).join(",")}}`;
      return `(${param(text)}::int8multirange @> uid)`;
    }
    case "flag": {
      // \Seen has its own column (and the messages_unseen index).
      if (f.flag.toLowerCase() === "\\seen") return f.set ? "seen" : "(NOT seen)";
      // Flags match without regard to case; the stored ones are space-separated.
      const has = `(lower(${param(f.flag)}::text) = ANY(string_to_array(lower(flags), ' ')))`;
      return f.set ? has : `(NOT ${has})`;
    }
    case "compare": {
      if (!OPS.has(f.op)) throw new TypeError(`Unknown comparison ${f.op}`);
      // numeric: a fraction or a huge value compares as it is (as in SQLite).
      const v = Number.isFinite(f.value) ? f.value : f.value > 0 ? 1e300 : -1e300;
      return `(${COLUMN[f.field]} ${f.op} ${param(String(v))}::numeric)`;
    }
    case "not":
      return `(NOT ${filterSql(f.filter, params)})`;
    case "and":
    case "or": {
      if (f.filters.length === 0) return f.kind === "and" ? "true" : "false";
      const parts = f.filters.map((x) => filterSql(x, params));
      return `(${parts.join(f.kind === "and" ? " AND " : " OR ")})`;
    }
  }
}

/**
 * One scan step: the window (the next `window` UIDs in scan order, read once through the
 * (mailbox_id, uid) index into a materialized CTE), its edge and size, and the matches among
 * its rows. The filter only ever sees the window's rows, so no condition of it can make the
 * planner read beyond the window.
 */
async function scanMessages(q: Q, mailboxId: number, s: ScanQuery): Promise<ScanResult> {
  const window = clamp(s.window, MAX_WINDOW);
  const asc = s.direction === "asc";
  const top = int(Math.min(s.maxUid ?? ABOVE_ANY_UID - 1, ABOVE_ANY_UID - 1));
  const from = int(s.from, -1, ABOVE_ANY_UID + 1);
  const params: unknown[] = [mailboxId, from, top, window];
  const where = s.filter ? filterSql(s.filter, params) : "true";
  const order = asc ? "ASC" : "DESC";
  const head = `WITH win AS MATERIALIZED (
      SELECT uid, modseq, flags, internal_date, size, body_id, seen FROM messages
      WHERE mailbox_id = $1 AND uid ${asc ? ">" : "<"} $2 AND uid <= $3
      ORDER BY uid ${order} LIMIT $4),
    edge AS (SELECT ${asc ? "max" : "min"}(uid) AS edge, count(*) AS n FROM win)`;
  const cols = s.countOnly
    ? "(SELECT count(*) FROM win WHERE " + where + ") AS c"
    : s.uidsOnly
    ? "w.uid, w.modseq"
    : "w.uid, w.modseq, w.flags, w.internal_date, w.size, w.body_id";
  const text = s.countOnly ? `${head} SELECT edge.*, ${cols} FROM edge` : `${head}
    SELECT edge.*, ${cols} FROM edge
    LEFT JOIN LATERAL (SELECT * FROM win WHERE ${where}) w ON true ORDER BY w.uid ${order}`;
  // Without a filter the text is one of a few: prepared once per connection. With one, it
  // depends on the client's SEARCH keys: unnamed, so they never pile up in the connection.
  const rows = await q.unsafe<(Row & { edge: number | null; n: number; c?: number })[]>(
    text,
    params as never[],
    { prepare: !s.filter },
  );
  const { edge, n } = rows[0];
  if (n === 0 || edge === null) {
    const none = s.uidsOnly && !s.countOnly ? { uids: [], modSeqs: [] } : {};
    return { rows: [], ...none, count: 0, next: s.from, done: true };
  }
  const done = n < window || (asc && edge === top);
  if (s.countOnly) return { rows: [], count: rows[0].c!, next: edge, done };
  const found = rows.filter((r) => r.uid !== null);
  if (s.uidsOnly) {
    return {
      rows: [],
      uids: found.map((r) => r.uid),
      modSeqs: found.map((r) => r.modseq),
      count: found.length,
      next: edge,
      done,
    };
  }
  return {
    rows: found.map((r) => toRecord(mailboxId, r)),
    count: found.length,
    next: edge,
    done,
  };
}

/** Keyset paging on (modseq, uid) through the indexes messages_modseq and expunged_modseq. */
function changeBounds(c: ChangesQuery) {
  const after = c.after
    ? { modSeq: int(Math.max(c.after.modSeq, c.sinceModSeq)), uid: int(c.after.uid) }
    // Above any UID: the row comparison then means modseq > sinceModSeq.
    : { modSeq: int(c.sinceModSeq), uid: ABOVE_ANY_UID };
  return {
    after,
    upTo: int(c.upToModSeq),
    maxUid: int(c.maxUid ?? ABOVE_ANY_UID),
    limit: clamp(c.limit, MAX_PAGE),
  };
}

export const queryOps = {
  listUids: read(
    async (q, _e, mailboxId: number, l: { afterUid: number; belowUid?: number; limit: number }) => {
      const limit = clamp(l.limit, MAX_PAGE);
      // The page's UIDs as runs (consecutive UIDs share uid - row_number()): one row per gap.
      const runs = await q<{ lo: number; hi: number }[]>`
        SELECT min(uid) AS lo, max(uid) AS hi FROM (
          SELECT uid, uid - row_number() OVER (ORDER BY uid) AS g FROM (
            SELECT uid FROM messages WHERE mailbox_id = ${mailboxId}
              AND uid > ${int(l.afterUid)} AND uid < ${int(l.belowUid ?? ABOVE_ANY_UID)}
            ORDER BY uid LIMIT ${limit}) AS page) AS numbered
        GROUP BY g ORDER BY lo`;
      if (runs.length === 0) return { runs: [], count: 0, lastUid: l.afterUid, done: true };
      const flat: number[] = [];
      let count = 0;
      for (const r of runs) {
        flat.push(r.lo, r.hi);
        count += r.hi - r.lo + 1;
      }
      return { runs: flat, count, lastUid: runs[runs.length - 1].hi, done: count < limit };
    },
  ),
  mailboxState: read(async (q, _e, mailboxId: number): Promise<MailboxState | null> => {
    const [r] = await q<{ uid_next: number; highest_modseq: number; expunge_horizon: number }[]>`
      SELECT uid_next, highest_modseq, expunge_horizon FROM mailboxes WHERE id = ${mailboxId}`;
    return r
      ? {
        uidNext: r.uid_next,
        highestModSeq: r.highest_modseq,
        expungeHorizonModSeq: r.expunge_horizon,
      }
      : null;
  }),
  firstUnseenUid: read(async (q, _e, mailboxId: number, belowUid?: number) => {
    // The partial index messages_unseen: its first entry below the bound.
    const [r] = await q<{ uid: number }[]>`
      SELECT uid FROM messages WHERE mailbox_id = ${mailboxId} AND NOT seen
        AND uid < ${int(belowUid ?? ABOVE_ANY_UID)}
      ORDER BY uid LIMIT 1`;
    return r?.uid ?? null;
  }),
  listKeywords: read(async (q, _e, mailboxId: number) =>
    (await q<{ keyword: string }[]>`
      SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ${mailboxId}
      ORDER BY id LIMIT ${MAX_PAGE}`).map((r) => r.keyword)
  ),
  scanMessages: read((q, _e, mailboxId: number, s: ScanQuery) => scanMessages(q, mailboxId, s)),
  changedMessages: read(async (q, _e, mailboxId: number, c: ChangesQuery) => {
    const b = changeBounds(c);
    const rows = await q<Row[]>`
      SELECT uid, modseq, flags, internal_date, size, body_id FROM messages
      WHERE mailbox_id = ${mailboxId} AND (modseq, uid) > (${b.after.modSeq}, ${b.after.uid})
        AND modseq <= ${b.upTo} AND uid <= ${b.maxUid}
      ORDER BY modseq, uid LIMIT ${b.limit}`;
    return rows.map((r) => toRecord(mailboxId, r));
  }),
  expungedMessages: read(async (q, _e, mailboxId: number, c: ChangesQuery) => {
    const b = changeBounds(c);
    const rows = await q<ExpungedRow[]>`
      SELECT uid, modseq, flags, size, internal_date FROM expunged
      WHERE mailbox_id = ${mailboxId} AND (modseq, uid) > (${b.after.modSeq}, ${b.after.uid})
        AND modseq <= ${b.upTo} AND uid <= ${b.maxUid}
      ORDER BY modseq, uid LIMIT ${b.limit}`;
    return rows.map(toExpunged);
  }),
  expungedInRange: read(
    async (q, _e, mailboxId: number, fromUid: number, toUid: number, limit: number) => {
      const rows = await q<ExpungedRow[]>`
        SELECT uid, modseq, flags, size, internal_date FROM expunged
        WHERE mailbox_id = ${mailboxId} AND uid BETWEEN ${int(fromUid)} AND ${int(toUid)}
        ORDER BY uid LIMIT ${clamp(limit, MAX_PAGE)}`;
      return rows.map(toExpunged);
    },
  ),
};
