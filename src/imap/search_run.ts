// SEARCH on a selected mailbox of any size (RFC 9051 §6.4.4, ESEARCH 4731, SEARCHRES 5182,
// CONDSTORE 7162 §3.1.5). The keys that need no content become a filter the store evaluates
// window by window (flags, sizes, dates, UIDs, sequence numbers, MODSEQ); message content is read
// only for the messages that pass it, one at a time. RETURN (MIN) and (MAX) alone stop at the
// first match from their end. Messages another session expunged that this one was not told
// about yet are still searched, on what their tombstone keeps (as Dovecot does); where the
// answer needs more, they are left out and the reply says [EXPUNGEISSUED].

import type { ExpungedRecord, MessageFilter, MessageRecord } from "../store/types.ts";
import type { SessionContext } from "./session.ts";
import type { CommandOf, SearchKey } from "./types.ts";
import { ImapNo } from "./responses.ts";
import type { SelectedMailbox } from "./selected.ts";
import { setIntervals } from "./sequence_set.ts";
import {
  bodyNeedles,
  type KnownContext,
  matchesKnown,
  matchesSearch,
  type SearchMessage,
  textParts,
  wholeMessage,
} from "./search_eval.ts";
import { FetchBodies, type FetchSource, UnreadableBodies } from "./fetch_message.ts";
import { findInTextParts } from "./search_text.ts";
import { scanTargets } from "./scan.ts";
import { UidSet } from "./uid_set.ts";

type SearchCommand = CommandOf<"SEARCH">;

const DAY = 86_400_000;
/** Messages per store step when the rows are read (content or flags needed here). */
const WINDOW = 500;
/** Messages per store step when the store's filter decides alone (only UIDs come back). */
const ID_WINDOW = 2000;
/** UID runs a set key may bring into the store's filter; more are checked here instead. */
const MAX_SET_RUNS = 64;
/** Tombstones per read. */
const TOMBSTONE_PAGE = 1000;
/**
 * Values a SEARCH may hand the store's filter. SQLite takes at most 32 766 per statement (and
 * PostgreSQL 65 535); a SEARCH that needs more is refused with NO [LIMIT] before any answer.
 */
const MAX_FILTER_VALUES = 16_000;

export interface View {
  sel: SelectedMailbox;
  now: number;
}

export interface Plan {
  filter: MessageFilter;
  /** The filter alone decides (no content, no set too fragmented for the store). */
  exact: boolean;
}

const TRUE: Plan = { filter: { kind: "true" }, exact: false };

/** How many values the store's filter gets for `f` (each a statement parameter). */
function filterValues(f: MessageFilter): number {
  switch (f.kind) {
    case "uids":
      return 2 * f.ranges.length;
    case "flag":
    case "compare":
      return 1;
    case "not":
      return filterValues(f.filter);
    case "and":
    case "or":
      return f.filters.reduce((n, x) => n + filterValues(x), 0);
    default:
      return 0;
  }
}

function setPlan(set: UidSet): Plan {
  if (set.runCount > MAX_SET_RUNS) return TRUE;
  return { filter: { kind: "uids", ranges: [...set.runs()] }, exact: true };
}

function cmp(
  field: "internalDate" | "size" | "modSeq",
  op: "<" | "<=" | ">" | ">=",
  value: number,
): Plan {
  return { filter: { kind: "compare", field, op, value }, exact: true };
}

function all(kind: "and" | "or", plans: Plan[]): Plan {
  return {
    filter: { kind, filters: plans.map((p) => p.filter) },
    exact: plans.every((p) => p.exact),
  };
}

/**
 * The store filter for a key: exact where the store can decide, otherwise a superset of the
 * matches (an undecidable part becomes "true", and a NOT over it too).
 */
export function plan(key: SearchKey, v: View): Plan {
  const sel = v.sel;
  switch (key.kind) {
    case "ALL":
      return { filter: { kind: "true" }, exact: true };
    case "SEQ":
      return setPlan(
        "saved" in key.set ? sel.saved : sel.uids.atPositions(setIntervals(key.set, sel.exists)),
      );
    case "UID":
      return setPlan(
        "saved" in key.set ? sel.saved : UidSet.fromIntervals(setIntervals(key.set, sel.uids.max)),
      );
    case "FLAG":
      return { filter: { kind: "flag", flag: key.flag, set: !key.negate }, exact: true };
    case "RECENT":
      return setPlan(sel.recent);
    case "OLD": {
      const p = setPlan(sel.recent);
      return p.exact ? { filter: { kind: "not", filter: p.filter }, exact: true } : TRUE;
    }
    case "NEW":
      return all("and", [
        setPlan(sel.recent),
        plan({ kind: "FLAG", flag: "\\Seen", negate: true }, v),
      ]);
    case "HEADER":
    case "BODY":
    case "TEXT":
      return TRUE;
    case "DATE":
      if (key.sent) return TRUE;
      if (key.op === "BEFORE") return cmp("internalDate", "<", key.date);
      if (key.op === "SINCE") return cmp("internalDate", ">=", key.date);
      return all("and", [
        cmp("internalDate", ">=", key.date),
        cmp("internalDate", "<", key.date + DAY),
      ]);
    case "SIZE":
      return cmp("size", key.op === "LARGER" ? ">" : "<", key.size);
    case "MODSEQ":
      return cmp("modSeq", ">=", key.modSeq);
    case "AGE":
      // RFC 5032: age in seconds is (now - INTERNALDATE) / 1000.
      return key.op === "OLDER"
        ? cmp("internalDate", "<=", v.now - key.seconds * 1000)
        : cmp("internalDate", ">", v.now - key.seconds * 1000);
    case "NOT": {
      const p = plan(key.key, v);
      return p.exact ? { filter: { kind: "not", filter: p.filter }, exact: true } : TRUE;
    }
    case "OR":
      return all("or", [plan(key.left, v), plan(key.right, v)]);
    case "AND":
      return all("and", key.keys.map((k) => plan(k, v)));
  }
}

function usesModSeq(k: SearchKey): boolean {
  switch (k.kind) {
    case "MODSEQ":
      return true;
    case "NOT":
      return usesModSeq(k.key);
    case "OR":
      return usesModSeq(k.left) || usesModSeq(k.right);
    case "AND":
      return k.keys.some(usesModSeq);
    default:
      return false;
  }
}

interface Match {
  uid: number;
  modSeq: number;
}

export async function search(ctx: SessionContext, cmd: SearchCommand): Promise<string | void> {
  // Messages whose body cannot be read (a damaged body file, the store failing) are left out:
  // the others are still searched and answered, and the SEARCH ends NO [SERVERBUG] naming how
  // many could not be read (as Dovecot: its results, then NO), never an OK on a partial answer.
  const unreadable = new UnreadableBodies("search");
  try {
    return await searchReadable(ctx, cmd, unreadable);
  } finally {
    // One line for them all, however the SEARCH ends.
    unreadable.log(ctx.log);
  }
}

async function searchReadable(
  ctx: SessionContext,
  cmd: SearchCommand,
  unreadable: UnreadableBodies,
): Promise<string | void> {
  const sel = ctx.selected!;
  const mailboxes = ctx.backend.mailboxes;
  if (cmd.charset && !/^(US-ASCII|UTF-8)$/i.test(cmd.charset)) {
    throw new ImapNo("Unsupported charset", "BADCHARSET (US-ASCII UTF-8)");
  }
  const modseqs = usesModSeq(cmd.key);
  if (modseqs) ctx.enabled.add("CONDSTORE");
  const now = Date.now();
  const view: View = { sel, now };
  const opts = cmd.returnOptions === undefined
    ? null
    : cmd.returnOptions.length
    ? cmd.returnOptions
    : ["ALL"];
  // What the answer needs: every match, or only the first from one end (or each end).
  const needAll = !opts || opts.some((o) => o === "ALL" || o === "COUNT" || o === "SAVE");
  const wantMin = !needAll && opts!.includes("MIN");
  const wantMax = !needAll && opts!.includes("MAX");

  // Messages expunged elsewhere that this session still shows.
  await sel.notePendingExpunges(mailboxes, ctx);
  const pending = sel.pendingExpunge.intersect(sel.uids);
  let expungeIssued = false;
  const pendingMatches: Match[] = [];
  if (pending.size) {
    for await (const t of tombstones(ctx, sel, pending)) {
      const known: KnownContext = {
        seq: sel.seqOf(t.uid),
        uid: t.uid,
        flags: t.flags,
        internalDate: t.internalDate,
        size: t.size,
        recent: sel.recent.has(t.uid),
        maxSeq: sel.exists,
        maxUid: sel.uids.max,
        now,
      };
      const v = matchesKnown(cmd.key, known, sel.saved);
      if (v === undefined) expungeIssued = true;
      else if (v) pendingMatches.push({ uid: t.uid, modSeq: t.modSeq });
    }
  }

  const p = plan(cmd.key, view);
  if (filterValues(p.filter) > MAX_FILTER_VALUES) {
    throw new ImapNo("Too many search keys", "LIMIT");
  }
  const needles = bodyNeedles(cmd.key);
  const known = (m: MessageRecord): KnownContext => ({
    seq: sel.seqOf(m.uid),
    uid: m.uid,
    flags: m.flags,
    internalDate: m.internalDate,
    size: m.size,
    modSeq: m.modSeq,
    recent: sel.recent.has(m.uid),
    maxSeq: sel.exists,
    maxUid: sel.uids.max,
    now,
  });
  // Content, for the messages the rest of the key leaves undecided: the part tree comes from the
  // structure stored with the body (no read); a small body is read whole (many per round trip),
  // a large one only in its text parts, streamed, and only when BODY or TEXT asks.
  const withContent = async (m: MessageRecord, src: FetchSource): Promise<boolean> => {
    const root = await src.tree();
    let message: SearchMessage;
    if (src.bytes) message = wholeMessage(src.bytes, root);
    else {
      const found = needles.size
        ? await findInTextParts(src, textParts(root), needles, () => ctx.breathe())
        : new Set<string>();
      message = { root, bodyHas: (n) => found.has(n) };
    }
    return matchesSearch(
      cmd.key,
      {
        ...known(m),
        flags: m.flags,
        internalDate: m.internalDate,
        size: m.size,
        modSeq: m.modSeq,
        message: () => message,
      },
      sel.saved,
    );
  };
  // The matches in scan order, a store window at a time (a generator step per window, not per
  // match: UID SEARCH UNSEEN on a big mailbox yields thousands).
  const scan = async function* (direction: "asc" | "desc"): AsyncGenerator<Match[]> {
    for await (
      const rows of scanTargets(mailboxes, sel.mailbox.id, sel.uids, ctx, {
        window: p.exact ? ID_WINDOW : WINDOW,
        filter: p.filter.kind === "true" ? undefined : p.filter,
        direction,
        uidsOnly: p.exact,
      })
    ) {
      if (p.exact) {
        yield rows;
        continue;
      }
      // Flags, dates and sizes decide first; bodies are opened only for the rest.
      const verdicts = rows.map((m) => matchesKnown(cmd.key, known(m), sel.saved));
      const unsure = rows.filter((_, i) => verdicts[i] === undefined);
      const bodies = unsure.length ? new FetchBodies(mailboxes, ctx.log) : null;
      const found: Match[] = [];
      let u = 0;
      for (const [i, m] of rows.entries()) {
        let ok = verdicts[i];
        if (ok === undefined) {
          const src = await bodies!.open(unsure, u++).catch((err) => unreadable.note(m, err));
          if (!src) continue; // expunged meanwhile, or unreadable
          try {
            ok = await withContent(m, src);
          } catch (err) {
            if (err instanceof ImapNo) throw err;
            unreadable.note(m, err);
            continue;
          } finally {
            await src.close();
          }
          await ctx.breathe();
        }
        if (ok) {
          found.push(m);
          // MIN or MAX alone: the first match from this end is the answer; no body after it is
          // read (nor found unreadable).
          if (!needAll) break;
        }
      }
      if (found.length) yield found;
    }
  };
  const firstOf = async (direction: "asc" | "desc"): Promise<Match | undefined> => {
    for await (const batch of scan(direction)) if (batch.length) return batch[0];
  };
  const id = (uid: number) => (cmd.uid ? uid : sel.seqOf(uid));
  const done = () => {
    unreadable.check();
    return expungeIssued ? "[EXPUNGEISSUED] SEARCH completed" : undefined;
  };

  if (!needAll) {
    // RETURN (MIN), (MAX) or both: from each end, stop at the first match.
    const parts: string[] = [];
    let min: Match | undefined;
    let max: Match | undefined;
    if (wantMin) {
      min = await firstOf("asc");
      const pm = pendingMatches[0];
      if (pm && (!min || pm.uid < min.uid)) min = pm;
    }
    if (wantMax) {
      max = await firstOf("desc");
      const pm = pendingMatches[pendingMatches.length - 1];
      if (pm && (!max || pm.uid > max.uid)) max = pm;
    }
    if (min) parts.push(`MIN ${id(min.uid)}`);
    if (max) parts.push(`MAX ${id(max.uid)}`);
    if (modseqs && (min || max)) {
      // RFC 7162 §3.1.5 with RFC 4731: MIN or MAX alone report the modseq of that message.
      parts.push(`MODSEQ ${Math.max(min?.modSeq ?? 0, max?.modSeq ?? 0)}`);
    }
    ctx.out(
      `* ESEARCH (TAG "${cmd.tag}")${cmd.uid ? " UID" : ""}${
        parts.map((x) => " " + x).join("")
      }\r\n`,
    );
    return done();
  }

  // Every match, ascending, the pending ones merged in.
  let count = 0;
  let highest = 0;
  let first: Match | undefined;
  let last: Match | undefined;
  const ids = UidSet.empty();
  const saved = UidSet.empty();
  const plain = !opts;
  const keepIds = opts?.includes("ALL") ?? false;
  const keepSaved = opts?.includes("SAVE") ?? false;
  if (plain) ctx.out("* SEARCH");
  let pi = 0;
  // A plain SEARCH's numbers, one string per store window.
  let text = "";
  const take = (m: Match) => {
    count++;
    if (m.modSeq > highest) highest = m.modSeq;
    first ??= m;
    last = m;
    const n = id(m.uid);
    if (plain) text += ` ${n}`;
    if (keepIds) ids.addRun(n, n);
    if (keepSaved) saved.addRun(m.uid, m.uid);
  };
  for await (const batch of scan("asc")) {
    for (const m of batch) {
      while (pi < pendingMatches.length && pendingMatches[pi].uid < m.uid) {
        take(pendingMatches[pi++]);
      }
      take(m);
    }
    if (text) ctx.out(text);
    text = "";
  }
  while (pi < pendingMatches.length) take(pendingMatches[pi++]);
  if (plain) {
    ctx.out(`${text}${modseqs && count ? ` (MODSEQ ${highest})` : ""}\r\n`);
    return done();
  }
  if (keepSaved) {
    // RFC 5182 §2.4: with MIN and/or MAX but neither ALL nor COUNT, only those are saved.
    const ends = (opts!.includes("MIN") || opts!.includes("MAX")) &&
      !opts!.includes("ALL") && !opts!.includes("COUNT");
    // A SEARCH that ends NO (messages it could not read) leaves $ empty, as Dovecot does.
    if (unreadable.count) sel.saved = UidSet.empty();
    else if (!ends) sel.saved = saved;
    else {
      const keep = new Set<number>();
      if (opts!.includes("MIN") && first) keep.add(first.uid);
      if (opts!.includes("MAX") && last) keep.add(last.uid);
      sel.saved = UidSet.of(keep);
    }
  }
  if (opts!.length === 1 && opts![0] === "SAVE") return done();
  ctx.out(`* ESEARCH (TAG "${cmd.tag}")${cmd.uid ? " UID" : ""}`);
  if (opts!.includes("MIN") && first) ctx.out(` MIN ${id(first.uid)}`);
  if (opts!.includes("MAX") && last) ctx.out(` MAX ${id(last.uid)}`);
  if (opts!.includes("COUNT")) ctx.out(` COUNT ${count}`);
  if (keepIds && ids.size) {
    ctx.out(" ALL ");
    for (const piece of ids.formatPieces()) {
      ctx.out(piece);
      await ctx.breathe();
    }
  }
  if (modseqs && count) {
    // RFC 7162 §3.1.5 with RFC 4731: MIN or MAX alone report the modseq of that message.
    const only = opts!.filter((o) => o !== "SAVE");
    const pick = only.length === 1 && only[0] === "MIN"
      ? first!.modSeq
      : only.length === 1 && only[0] === "MAX"
      ? last!.modSeq
      : highest;
    ctx.out(` MODSEQ ${pick}`);
  }
  ctx.out("\r\n");
  return done();
}

/** What the tombstones of the pending expunges say, UID by UID (null fields: unknown). */
async function* tombstones(
  ctx: SessionContext,
  sel: SelectedMailbox,
  pending: UidSet,
): AsyncGenerator<ExpungedRecord> {
  for (const [lo, hi] of pending.runs()) {
    let from = lo;
    while (from <= hi) {
      const page = await ctx.backend.mailboxes.expungedInRange(
        sel.mailbox.id,
        from,
        hi,
        TOMBSTONE_PAGE,
      );
      const byUid = new Map(page.map((t) => [t.uid, t]));
      const end = page.length === TOMBSTONE_PAGE ? page[page.length - 1].uid : hi;
      for (let u = from; u <= end; u++) {
        yield byUid.get(u) ??
          { uid: u, modSeq: 0, flags: null, size: null, internalDate: null };
      }
      from = end + 1;
      await ctx.breathe();
    }
  }
}
