// Commands on the messages of the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE
// and their UID forms (RFC 9051, UIDPLUS 4315, MOVE 6851, CONDSTORE/QRESYNC 7162, ESEARCH 4731,
// SEARCHRES 5182, BINARY 3516).

import { type MimePart, parseMessage } from "../mime/mod.ts";
import type { MessageRecord } from "../store/types.ts";
import type { CommandTable, SessionContext } from "./session.ts";
import type { Command, CommandOf, FetchItem } from "./types.ts";
import { bad, ImapNo } from "./responses.ts";
import type { SelectedMailbox } from "./selected.ts";
import { contains, formatSet } from "./sequence_set.ts";
import { FetchBodies, type FetchPiece, renderFetchItem, writeFetch } from "./fetch_message.ts";
import { matchesSearch, needsContent } from "./search_eval.ts";

type Of<N extends Command["name"]> = CommandOf<N>;

const SEEN = "\\Seen";

function selected(ctx: SessionContext): SelectedMailbox {
  return ctx.selected!;
}

function targets(ctx: SessionContext, set: Of<"FETCH">["set"], uid: boolean): number[] {
  const sel = selected(ctx);
  if (!uid && sel.invalidSeqs(set)) throw bad("Invalid message sequence number");
  return sel.resolve(set, uid);
}

function needsBody(items: FetchItem[]): boolean {
  return items.some((i) =>
    !["FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"].includes(i.kind)
  );
}

function setsSeen(items: FetchItem[]): boolean {
  return items.some((i) =>
    i.kind === "RFC822" || i.kind === "RFC822.TEXT" ||
    ((i.kind === "BODY[]" || i.kind === "BINARY") && !i.peek)
  );
}

async function fetch(ctx: SessionContext, cmd: Of<"FETCH">) {
  const sel = selected(ctx);
  const accountId = ctx.user!.accountId;
  let uids = targets(ctx, cmd.set, cmd.uid);
  const items = [...cmd.items];
  if (cmd.uid && !items.some((i) => i.kind === "UID")) items.unshift({ kind: "UID" });
  if (cmd.changedSince !== undefined) {
    ctx.enabled.add("CONDSTORE");
    if (!items.some((i) => i.kind === "MODSEQ")) items.push({ kind: "MODSEQ" });
  }
  if (items.some((i) => i.kind === "MODSEQ") && !ctx.enabled.has("CONDSTORE")) {
    // RFC 7162 §3.1.2: the first CONDSTORE-enabling command reports HIGHESTMODSEQ.
    ctx.enabled.add("CONDSTORE");
    const mb = await ctx.backend.mailboxes.getMailboxById(sel.mailbox.id);
    ctx.out(`* OK [HIGHESTMODSEQ ${mb?.highestModSeq ?? sel.modSeq}] Highest\r\n`);
  }
  if (cmd.vanished) {
    if (!cmd.uid || !ctx.enabled.has("QRESYNC") || cmd.changedSince === undefined) {
      throw bad("VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
    }
    const changes = await ctx.backend.mailboxes.changesSince(sel.mailbox.id, cmd.changedSince);
    const max = Math.max(sel.mailbox.uidNext - 1, ...sel.uids, 1);
    const set = cmd.set;
    const gone = "ranges" in set ? changes.expunged.filter((u) => contains(set, u, max)) : [];
    if (gone.length) ctx.out(`* VANISHED (EARLIER) ${formatSet(gone)}\r\n`);
  }
  let records = await ctx.backend.mailboxes.getMessages(sel.mailbox.id, uids);
  if (cmd.changedSince !== undefined) {
    const since = cmd.changedSince;
    records = records.filter((r) => r.modSeq > since);
  }
  if (!sel.readOnly && setsSeen(items)) {
    const unseen = records.filter((r) => !r.flags.includes(SEEN)).map((r) => r.uid);
    if (unseen.length) {
      const r = await ctx.backend.mailboxes.setFlags(accountId, sel.mailbox.id, {
        uids: unseen,
        mode: "add",
        flags: [SEEN],
      });
      const updated = new Map(r.updated.map((m) => [m.uid, m]));
      records = records.map((m) => updated.get(m.uid) ?? m);
      for (const m of r.updated) sel.noteOwnChange(m.uid, m.modSeq);
      if (!items.some((i) => i.kind === "FLAGS")) items.push({ kind: "FLAGS" });
    }
  }
  uids = [];
  // Bodies are opened one message at a time (small ones read in batches) and streamed.
  const bodies = needsBody(items) ? new FetchBodies(ctx.backend.mailboxes, ctx.log) : null;
  // Output of small messages is queued; waiting for the socket after every 96 KiB of it (a small
  // body is at most 128 KiB, so the session's queue stays under its 256 KiB self-flush) keeps a
  // client that reads slowly from making the session hold the whole result.
  let unflushed = 0;
  for (const [i, rec] of records.entries()) {
    const seq = sel.seqOf(rec.uid);
    if (seq === 0) continue;
    const src = bodies ? await bodies.open(records, i) : null;
    if (bodies && !src) continue;
    try {
      const parts: FetchPiece[] = [];
      for (const item of items) {
        if (parts.length) parts.push(" ");
        parts.push(...await renderFetchItem(item, rec, src, sel.flagsOf(rec.uid, rec.flags)));
      }
      if (items.some((i) => i.kind === "FLAGS")) {
        for (const l of sel.announce(rec.flags)) ctx.out(l + "\r\n");
      }
      ctx.out(`* ${seq} FETCH (`);
      await writeFetch(ctx, parts, src);
      ctx.out(")\r\n");
    } finally {
      await src?.close();
    }
    unflushed += src?.size ?? 0;
    if (unflushed >= 96 * 1024) {
      unflushed = 0;
      await ctx.flush();
    }
  }
}

async function store(ctx: SessionContext, cmd: Of<"STORE">) {
  const sel = selected(ctx);
  if (sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  const uids = targets(ctx, cmd.set, cmd.uid);
  if (cmd.unchangedSince !== undefined) ctx.enabled.add("CONDSTORE");
  const flags = cmd.flags.filter((f) => f.toLowerCase() !== "\\recent");
  const r = await ctx.backend.mailboxes.setFlags(ctx.user!.accountId, sel.mailbox.id, {
    uids,
    mode: cmd.mode,
    flags,
    unchangedSince: cmd.unchangedSince,
  });
  const condstore = ctx.condstore();
  // RFC 9051 §6.4.6: without .SILENT every named message's flags come back, changed or not.
  let shown = r.updated;
  if (!cmd.silent) {
    const changed = new Set(r.updated.map((m) => m.uid));
    const skipped = new Set(r.modified);
    const rest = uids.filter((u) => !changed.has(u) && !skipped.has(u));
    if (rest.length) {
      const unchanged = await ctx.backend.mailboxes.getMessages(sel.mailbox.id, rest);
      shown = [...r.updated, ...unchanged].sort((a, b) => a.uid - b.uid);
    }
  }
  for (const m of r.updated) sel.noteOwnChange(m.uid, m.modSeq);
  for (const m of shown) {
    if (cmd.silent && cmd.unchangedSince === undefined) continue;
    const seq = sel.seqOf(m.uid);
    if (seq === 0) continue;
    for (const l of sel.announce(m.flags)) ctx.out(l + "\r\n");
    const uid = cmd.uid ? `UID ${m.uid} ` : "";
    const modseq = condstore ? ` MODSEQ (${m.modSeq})` : "";
    ctx.out(
      cmd.silent
        ? `* ${seq} FETCH (${uid}MODSEQ (${m.modSeq}))\r\n`
        : `* ${seq} FETCH (${uid}FLAGS (${sel.flagsOf(m.uid, m.flags).join(" ")})${modseq})\r\n`,
    );
  }
  if (r.modified.length) {
    const ids = cmd.uid ? r.modified : r.modified.map((u) => sel.seqOf(u)).filter((s) => s > 0);
    return `[MODIFIED ${formatSet(ids.sort((a, b) => a - b))}] Conditional STORE failed`;
  }
}

async function search(ctx: SessionContext, cmd: Of<"SEARCH">) {
  const sel = selected(ctx);
  if (cmd.charset && !/^(US-ASCII|UTF-8)$/i.test(cmd.charset)) {
    throw new ImapNo("Unsupported charset", "BADCHARSET (US-ASCII UTF-8)");
  }
  const records = await ctx.backend.mailboxes.listMessages(sel.mailbox.id);
  const content = needsContent(cmd.key);
  const maxUid = sel.uids.length ? sel.uids[sel.uids.length - 1] : 0;
  const now = Date.now();
  const matched: MessageRecord[] = [];
  let usesModSeq = false;
  const walk = (k: Of<"SEARCH">["key"]): void => {
    if (k.kind === "MODSEQ") usesModSeq = true;
    if (k.kind === "NOT") walk(k.key);
    if (k.kind === "OR") {
      walk(k.left);
      walk(k.right);
    }
    if (k.kind === "AND") k.keys.forEach(walk);
  };
  walk(cmd.key);
  if (usesModSeq) ctx.enabled.add("CONDSTORE");
  for (const rec of records) {
    const seq = sel.seqOf(rec.uid);
    if (seq === 0) continue;
    let bytes: Uint8Array | null = null;
    if (content) bytes = await ctx.backend.mailboxes.readBody(rec.bodyId);
    let root: MimePart | null = null;
    const ok = matchesSearch(cmd.key, {
      seq,
      uid: rec.uid,
      flags: rec.flags,
      internalDate: rec.internalDate,
      size: rec.size,
      modSeq: rec.modSeq,
      recent: sel.recent.has(rec.uid),
      maxSeq: sel.uids.length,
      maxUid,
      now,
      message: () => ({
        bytes: bytes ?? new Uint8Array(),
        root: root ??= parseMessage(bytes ?? new Uint8Array()),
      }),
    }, sel.saved);
    if (ok) matched.push(rec);
  }
  const ids = matched.map((m) => (cmd.uid ? m.uid : sel.seqOf(m.uid)));
  const highest = matched.reduce((n, m) => Math.max(n, m.modSeq), 0);
  if (cmd.returnOptions === undefined) {
    const mod = usesModSeq && matched.length ? ` (MODSEQ ${highest})` : "";
    ctx.out(`* SEARCH${ids.map((i) => " " + i).join("")}${mod}\r\n`);
    return;
  }
  const opts = cmd.returnOptions.length ? cmd.returnOptions : ["ALL"];
  if (opts.includes("SAVE")) sel.saved = matched.map((m) => m.uid);
  const parts: string[] = [];
  if (opts.includes("MIN") && ids.length) parts.push(`MIN ${Math.min(...ids)}`);
  if (opts.includes("MAX") && ids.length) parts.push(`MAX ${Math.max(...ids)}`);
  if (opts.includes("COUNT")) parts.push(`COUNT ${ids.length}`);
  if (opts.includes("ALL") && ids.length) {
    parts.push(`ALL ${formatSet([...ids].sort((a, b) => a - b))}`);
  }
  if (usesModSeq && matched.length) {
    // RFC 7162 §3.1.5 with RFC 4731: MIN or MAX alone report the modseq of that message.
    const only = opts.filter((o) => o !== "SAVE");
    const pick = only.length === 1 && (only[0] === "MIN" || only[0] === "MAX")
      ? matched[only[0] === "MIN" ? 0 : matched.length - 1].modSeq
      : highest;
    parts.push(`MODSEQ ${pick}`);
  }
  if (opts.length === 1 && opts[0] === "SAVE") return;
  ctx.out(
    `* ESEARCH (TAG "${cmd.tag}")${cmd.uid ? " UID" : ""}${parts.map((p) => " " + p).join("")}\r\n`,
  );
}

async function copyOrMove(ctx: SessionContext, cmd: Of<"COPY" | "MOVE">) {
  const sel = selected(ctx);
  const accountId = ctx.user!.accountId;
  const uids = targets(ctx, cmd.set, cmd.uid);
  const dest = await ctx.backend.mailboxes.getMailbox(accountId, cmd.mailbox);
  if (!dest) throw new ImapNo("No such mailbox", "TRYCREATE");
  if (cmd.name === "MOVE" && sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  if (uids.length === 0) return cmd.uid ? "No messages" : undefined;
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

async function expunge(ctx: SessionContext, uidSet?: Of<"UID EXPUNGE">["set"]) {
  const sel = selected(ctx);
  if (sel.readOnly) throw new ImapNo("Mailbox is read-only", "READ-ONLY");
  const uids = uidSet ? sel.resolve(uidSet, true) : undefined;
  await ctx.backend.mailboxes.expunge(ctx.user!.accountId, sel.mailbox.id, uids);
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
