// Commands on the messages of the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE
// and their UID forms (RFC 9051, UIDPLUS 4315, MOVE 6851, CONDSTORE/QRESYNC 7162, ESEARCH 4731,
// SEARCHRES 5182, BINARY 3516).

import type { MessageRecord } from "../store/types.ts";
import type { CommandTable, SessionContext } from "./session.ts";
import type { Command, CommandOf, FetchItem } from "./types.ts";
import { bad, ImapNo } from "./responses.ts";
import type { SelectedMailbox } from "./selected.ts";
import { formatSet, setIntervals } from "./sequence_set.ts";
import {
  FetchBodies,
  type FetchPiece,
  META_ITEMS,
  renderFetchItem,
  renderMetaItem,
  UnreadableBodies,
  writeFetch,
} from "./fetch_message.ts";
import { search } from "./search_run.ts";
import { changedTargets, expungedUids, scanTargets, writeVanishedEarlier } from "./scan.ts";
import { UidSet, UidSetBuilder } from "./uid_set.ts";

type Of<N extends Command["name"]> = CommandOf<N>;

const SEEN = "\\Seen";
/** Messages per store step when FETCH needs no content (flags, UIDs, sizes, modseqs). */
const META_WINDOW = 500;
/** Messages per store step when FETCH reads bodies. */
const BODY_WINDOW = 50;
/** Messages per store step when only their UIDs come back (the store's filter decides). */
const ID_WINDOW = 2000;
/** UIDs per store write of a STORE or EXPUNGE: each is one short transaction. */
const WRITE_CHUNK = 500;

function selected(ctx: SessionContext): SelectedMailbox {
  return ctx.selected!;
}

function targets(ctx: SessionContext, set: Of<"FETCH">["set"], uid: boolean): UidSet {
  const sel = selected(ctx);
  if (!uid && sel.invalidSeqs(set)) throw bad("Invalid message sequence number");
  return sel.resolve(set, uid);
}

/** The members of a set in arrays of at most `size`, for store calls that take UID lists. */
function* chunks(set: UidSet, size: number): Generator<number[]> {
  let chunk: number[] = [];
  for (const uid of set.values()) {
    chunk.push(uid);
    if (chunk.length === size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length) yield chunk;
}

function needsBody(items: FetchItem[]): boolean {
  return items.some((i) => !META_ITEMS.has(i.kind));
}

function setsSeen(items: FetchItem[]): boolean {
  return items.some((i) =>
    i.kind === "RFC822" || i.kind === "RFC822.TEXT" ||
    ((i.kind === "BODY[]" || i.kind === "BINARY") && !i.peek)
  );
}

/**
 * RFC 7162 §3.2.6: the UIDs of `set` expunged since `since`, as VANISHED (EARLIER). When the
 * store no longer has the tombstones that far back, every UID of the set the session does not
 * show is reported: conservative, as §3.2.5.2 allows.
 */
async function vanishedEarlier(ctx: SessionContext, set: Of<"FETCH">["set"], since: number) {
  const sel = selected(ctx);
  const mailboxes = ctx.backend.mailboxes;
  const mb = await mailboxes.mailboxState(sel.mailbox.id);
  if (!mb || !("ranges" in set)) return;
  const range = UidSet.fromIntervals(
    setIntervals(set, Math.max(mb.uidNext - 1, sel.uids.max, 1)),
  );
  let gone: UidSet;
  if (mb.expungeHorizonModSeq > since) {
    const shown = sel.uids.difference(sel.pendingExpunge);
    gone = range.within([[1, Math.max(sel.uids.max, 1)]]).difference(shown);
  } else {
    const found = await expungedUids(mailboxes, sel.mailbox.id, {
      sinceModSeq: since,
      upToModSeq: mb.highestModSeq,
    }, ctx);
    gone = found.intersect(range);
  }
  await writeVanishedEarlier(ctx, gone);
}

async function fetch(ctx: SessionContext, cmd: Of<"FETCH">) {
  const sel = selected(ctx);
  const accountId = ctx.user!.accountId;
  const mailboxes = ctx.backend.mailboxes;
  const wanted = targets(ctx, cmd.set, cmd.uid);
  const items = [...cmd.items];
  if (cmd.uid && !items.some((i) => i.kind === "UID")) items.unshift({ kind: "UID" });
  if (cmd.changedSince !== undefined) {
    ctx.enabled.add("CONDSTORE");
    if (!items.some((i) => i.kind === "MODSEQ")) items.push({ kind: "MODSEQ" });
  }
  if (items.some((i) => i.kind === "MODSEQ") && !ctx.enabled.has("CONDSTORE")) {
    // RFC 7162 §3.1.2: the first CONDSTORE-enabling command reports HIGHESTMODSEQ.
    ctx.enabled.add("CONDSTORE");
    const mb = await mailboxes.mailboxState(sel.mailbox.id);
    ctx.out(`* OK [HIGHESTMODSEQ ${mb?.highestModSeq ?? sel.modSeq}] Highest\r\n`);
  }
  if (cmd.vanished) {
    if (!cmd.uid || !ctx.enabled.has("QRESYNC") || cmd.changedSince === undefined) {
      throw bad("VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
    }
    await vanishedEarlier(ctx, cmd.set, cmd.changedSince);
  }
  const withBody = needsBody(items);
  const marksSeen = !sel.readOnly && setsSeen(items);
  const showsFlags = items.some((i) => i.kind === "FLAGS");
  const window = withBody ? BODY_WINDOW : META_WINDOW;
  const batches = cmd.changedSince !== undefined
    ? changedTargets(mailboxes, sel.mailbox.id, wanted, cmd.changedSince, ctx, window)
    : scanTargets(mailboxes, sel.mailbox.id, wanted, ctx, { window });
  // Output of small messages is queued; waiting for the socket after every 96 KiB of it (a small
  // body is at most 128 KiB, so the session's queue stays under its 256 KiB self-flush) keeps a
  // client that reads slowly from making the session hold the whole result.
  let unflushed = 0;
  /** Messages whose stored body could not be read: left out, and the FETCH ends NO. */
  const unreadable = new UnreadableBodies("fetch");
  try {
    for await (let records of batches) {
      // Reading a body sets \Seen (RFC 9051 §6.4.5); such messages show their new FLAGS.
      let nowSeen: Set<number> | null = null;
      if (marksSeen) {
        const unseen = records.filter((r) => !r.flags.includes(SEEN)).map((r) => r.uid);
        if (unseen.length) {
          const r = await mailboxes.setFlags(accountId, sel.mailbox.id, {
            uids: unseen,
            mode: "add",
            flags: [SEEN],
          });
          const updated = new Map(r.updated.map((m) => [m.uid, m]));
          records = records.map((m) => updated.get(m.uid) ?? m);
          for (const m of r.updated) sel.noteOwnChange(m.modSeq);
          nowSeen = new Set(updated.keys());
        }
      }
      if (!withBody) {
        // (Only a body read marks \Seen, so nothing here changed flags.)
        await fetchMeta(ctx, records, items, showsFlags);
        continue;
      }
      // Bodies are opened one message at a time (small ones read in batches) and streamed.
      const bodies = new FetchBodies(mailboxes, ctx.log);
      for (const [i, rec] of records.entries()) {
        const seq = sel.seqOf(rec.uid);
        if (seq === 0) continue;
        // Nothing of a message is written before its body has been opened and its pieces
        // rendered, so one that fails there is left out alone and the others are still served.
        const src = await bodies.open(records, i).catch((err) => unreadable.note(rec, err));
        if (!src) continue;
        try {
          const shown = nowSeen?.has(rec.uid) && !showsFlags
            ? [...items, { kind: "FLAGS" } as FetchItem]
            : items;
          const parts: FetchPiece[] = [];
          try {
            for (const item of shown) {
              if (parts.length) parts.push(" ");
              const flags = sel.flagsOf(rec.uid, rec.flags);
              for (const p of await renderFetchItem(item, rec, src, flags)) parts.push(p);
            }
          } catch (err) {
            if (err instanceof ImapNo) throw err;
            unreadable.note(rec, err);
            continue;
          }
          if (showsFlags || shown !== items) {
            for (const l of sel.announce(rec.flags)) ctx.out(l + "\r\n");
            sel.noteShown(rec.uid, rec.modSeq);
          }
          if (parts.every((p) => typeof p === "string")) {
            // One string per line: each piece queued separately costs an encoder call in flush().
            ctx.out(`* ${seq} FETCH (${parts.join("")})\r\n`);
          } else {
            ctx.out(`* ${seq} FETCH (`);
            await writeFetch(ctx, parts, src);
            ctx.out(")\r\n");
          }
        } finally {
          await src.close();
        }
        unflushed += src.size;
        if (unflushed >= 96 * 1024) {
          unflushed = 0;
          await ctx.flush();
        }
        await ctx.breathe();
      }
    }
  } finally {
    // One line for them all, however the FETCH ends.
    unreadable.log(ctx.log);
  }
  unreadable.check();
}

/** Records rendered between two looks at the clock: a few hundred microseconds of work. */
const META_STEP = 64;

/**
 * The FETCH lines of records that need no content (flags, UIDs, sizes, dates, modseqs): each
 * line one string built synchronously, and the session breathes every META_STEP records, so a
 * FETCH 1:* (FLAGS) of a big mailbox holds the event loop for one slice at most.
 */
async function fetchMeta(
  ctx: SessionContext,
  records: MessageRecord[],
  items: FetchItem[],
  showsFlags: boolean,
) {
  const sel = selected(ctx);
  const kinds = items.map((i) => i.kind);
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    const seq = sel.seqOf(rec.uid);
    if (seq === 0) continue;
    const flags = showsFlags ? sel.flagText(rec.uid, rec.flags) : "";
    let line = `* ${seq} FETCH (`;
    for (let k = 0; k < kinds.length; k++) {
      if (k) line += " ";
      line += renderMetaItem(kinds[k], rec, flags);
    }
    if (showsFlags) {
      for (const l of sel.announce(rec.flags)) ctx.out(l + "\r\n");
      sel.noteShown(rec.uid, rec.modSeq);
    }
    ctx.out(line + ")\r\n");
    if (i % META_STEP === META_STEP - 1) await ctx.breathe();
  }
}

async function store(ctx: SessionContext, cmd: Of<"STORE">) {
  const sel = selected(ctx);
  if (sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  const wanted = targets(ctx, cmd.set, cmd.uid);
  if (cmd.unchangedSince !== undefined) ctx.enabled.add("CONDSTORE");
  const flags = cmd.flags.filter((f) => f.toLowerCase() !== "\\recent");
  const condstore = ctx.condstore();
  const modified = new UidSetBuilder();
  // One short write per chunk: a STORE on every message of a big mailbox never holds the store
  // (or this event loop) for long, and other sessions' writes go in between.
  for (const uids of chunks(wanted, WRITE_CHUNK)) {
    const r = await ctx.backend.mailboxes.setFlags(ctx.user!.accountId, sel.mailbox.id, {
      uids,
      mode: cmd.mode,
      flags,
      unchangedSince: cmd.unchangedSince,
    });
    for (const m of r.updated) sel.noteOwnChange(m.modSeq);
    for (const u of r.modified) modified.add(u);
    // RFC 9051 §6.4.6: without .SILENT every named message's flags come back, changed or not.
    let shown: MessageRecord[] = r.updated;
    if (!cmd.silent) {
      const changed = new Set(r.updated.map((m) => m.uid));
      const skipped = new Set(r.modified);
      const rest = uids.filter((u) => !changed.has(u) && !skipped.has(u));
      if (rest.length) {
        const unchanged = await ctx.backend.mailboxes.getMessages(sel.mailbox.id, rest);
        shown = [...r.updated, ...unchanged].sort((a, b) => a.uid - b.uid);
      }
    }
    if (!cmd.silent || cmd.unchangedSince !== undefined) {
      for (const m of shown) {
        const seq = sel.seqOf(m.uid);
        if (seq === 0) continue;
        for (const l of sel.announce(m.flags)) ctx.out(l + "\r\n");
        const uid = cmd.uid ? `UID ${m.uid} ` : "";
        const modseq = condstore ? ` MODSEQ (${m.modSeq})` : "";
        ctx.out(
          cmd.silent
            ? `* ${seq} FETCH (${uid}MODSEQ (${m.modSeq}))\r\n`
            : `* ${seq} FETCH (${uid}FLAGS (${sel.flagText(m.uid, m.flags)})${modseq})\r\n`,
        );
      }
    }
    await ctx.breathe();
  }
  const failed = modified.build();
  if (failed.size) {
    const ids = cmd.uid
      ? failed
      : UidSet.of([...failed.values()].map((u) => sel.seqOf(u)).filter((s) => s > 0));
    return `[MODIFIED ${ids.format()}] Conditional STORE failed`;
  }
}

async function copyOrMove(ctx: SessionContext, cmd: Of<"COPY" | "MOVE">) {
  const sel = selected(ctx);
  const accountId = ctx.user!.accountId;
  const wanted = targets(ctx, cmd.set, cmd.uid);
  const dest = await ctx.backend.mailboxes.getMailbox(accountId, cmd.mailbox);
  if (!dest) throw new ImapNo("No such mailbox", "TRYCREATE");
  if (cmd.name === "MOVE" && sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  if (wanted.size === 0) return cmd.uid ? "No messages" : undefined;
  // One store call: COPY must leave the destination as it was if it fails (RFC 9051 §6.4.7).
  const uids = [...wanted.values()];
  const r = cmd.name === "MOVE"
    ? await ctx.backend.mailboxes.moveMessages(accountId, sel.mailbox.id, uids, dest.id)
    : await ctx.backend.mailboxes.copyMessages(accountId, sel.mailbox.id, uids, dest.id);
  if (r.mapping.length === 0) return;
  const code = `COPYUID ${r.uidValidity} ${formatSet(r.mapping.map((m) => m[0]))} ${
    formatSet(r.mapping.map((m) => m[1]))
  }`;
  if (cmd.name === "MOVE") {
    // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
    ctx.out(`* OK [${code}] Moved\r\n`);
    ctx.changeSignal.dirty = true;
    return;
  }
  return `[${code}] COPY completed`;
}

/**
 * Removes the messages of `within` that are flagged \Deleted, in short store steps (found by a
 * scan of the session's view, expunged a chunk at a time). The session reports them at its
 * next sync, as for an expunge from elsewhere.
 */
export async function expungeDeleted(ctx: SessionContext, within: UidSet): Promise<void> {
  const sel = selected(ctx) ?? null;
  const mailboxId = sel!.mailbox.id;
  const accountId = ctx.user!.accountId;
  let chunk: number[] = [];
  const flushChunk = async () => {
    if (chunk.length === 0) return;
    await ctx.backend.mailboxes.expunge(accountId, mailboxId, chunk);
    chunk = [];
  };
  for await (
    const rows of scanTargets(ctx.backend.mailboxes, mailboxId, within, ctx, {
      window: ID_WINDOW,
      filter: { kind: "flag", flag: "\\Deleted", set: true },
      uidsOnly: true,
    })
  ) {
    for (const m of rows) {
      chunk.push(m.uid);
      if (chunk.length >= WRITE_CHUNK) await flushChunk();
    }
  }
  await flushChunk();
}

async function expunge(ctx: SessionContext, uidSet?: Of<"UID EXPUNGE">["set"]) {
  const sel = selected(ctx);
  if (sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  await expungeDeleted(ctx, uidSet ? sel.resolve(uidSet, true) : sel.uids);
  ctx.changeSignal.dirty = true;
}

export const messageCommands: CommandTable = {
  FETCH: { states: ["selected"], run: (ctx, cmd) => fetch(ctx, cmd as Of<"FETCH">) },
  STORE: { states: ["selected"], run: (ctx, cmd) => store(ctx, cmd as Of<"STORE">) },
  SEARCH: { states: ["selected"], run: (ctx, cmd) => search(ctx, cmd as Of<"SEARCH">) },
  COPY: { states: ["selected"], run: (ctx, cmd) => copyOrMove(ctx, cmd as Of<"COPY">) },
  MOVE: { states: ["selected"], run: (ctx, cmd) => copyOrMove(ctx, cmd as Of<"MOVE">) },
  EXPUNGE: { states: ["selected"], run: (ctx) => expunge(ctx) },
  "UID EXPUNGE": {
    states: ["selected"],
    run: (ctx, cmd) => expunge(ctx, (cmd as Of<"UID EXPUNGE">).set),
  },
};
