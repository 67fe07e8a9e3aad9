// The selected mailbox as this session sees it: sequence numbers are positions in `uids`, and
// they change only when this session reports EXPUNGE/VANISHED (RFC 9051 §7.5.1). Changes
// committed elsewhere are found by MODSEQ, so none is missed between commands, between SELECT
// and IDLE, or while a command that may not report expunges is running.
//
// Nothing here is proportional to the mailbox unless the answer is: the UIDs are a UidSet (runs
// in typed arrays), loaded and resynced in bounded pages, and a resync reads only what changed.

import type { MailboxRecord, MailboxState } from "../store/types.ts";
import type { ImapMailboxes } from "./backend.ts";
import type { SequenceSet } from "./types.ts";
import { setIntervals } from "./sequence_set.ts";
import { expungedUids } from "./scan.ts";
import { UidSet } from "./uid_set.ts";

export const SYSTEM_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/** UIDs per page when loading or resyncing the sequence map. */
const UID_PAGE = 8192;
/** Changes per page when resyncing. */
const CHANGE_PAGE = 1000;
/** Messages a FETCH may mark as shown; beyond, the next sync may repeat their flags (harmless). */
const SHOWN_MAX = 10_000;
/** Untagged lines written between two chances for other sessions to run. */
const LINES_PER_STEP = 1000;

/** Where a long-running step writes, and how it lets other sessions run in between. */
export interface Emitter {
  out(piece: string): void;
  /** Flushes large output (waiting for the socket) and yields when the slice is used up. */
  breathe(): Promise<void>;
}

export interface SyncOptions {
  allowExpunge: boolean;
  qresync: boolean;
  condstore: boolean;
}

/**
 * The initial value of the sets below, shared by every session: they are only ever replaced by
 * new sets (union, intersect, …), never added to in place.
 */
const NO_UIDS = UidSet.empty();

export class SelectedMailbox {
  readonly mailbox: MailboxRecord;
  readonly readOnly: boolean;
  /** This session's message sequence numbers: message n is the n-th UID of the set. */
  uids: UidSet;
  /** Highest MODSEQ whose changes this session has taken into account. */
  modSeq: number;
  /** Expunged elsewhere but not reported yet (FETCH/STORE/SEARCH may not report them). */
  pendingExpunge = NO_UIDS;
  /**
   * Modseqs of flag changes this session made and reported itself (not echoed again). This and
   * the next two are made at their first use: most selected mailboxes (thousands of idle
   * sessions) never need them.
   */
  #ownModSeqs: Set<number> | null = null;
  /** Flags a FETCH just showed, by UID (with their modseq): not reported again by the sync. */
  #shown: Map<number, number> | null = null;
  /** Result of the last SEARCH ... RETURN (SAVE) (RFC 5182), as UIDs. */
  saved = NO_UIDS;
  /** Keywords announced to the client in FLAGS (RFC 9051 §7.3.5), in order of definition. */
  keywords: string[] = [];
  #keywordSet: Set<string> | null = null;
  /**
   * UIDs that are \Recent in this session (it claimed them first, RFC 3501 §2.3.2): the ranges
   * claimed, which may reach past the messages shown yet.
   */
  recent = NO_UIDS;

  constructor(mailbox: MailboxRecord, readOnly: boolean, uids: UidSet, modSeq: number) {
    this.mailbox = mailbox;
    this.readOnly = readOnly;
    this.uids = uids;
    this.modSeq = modSeq;
  }

  /**
   * The mailbox as of `mb` (one row read: its UIDNEXT and HIGHESTMODSEQ agree): every UID below
   * UIDNEXT, read in pages, and the keywords defined so far.
   */
  static async open(
    mailboxes: ImapMailboxes,
    mb: MailboxRecord,
    readOnly: boolean,
    emit: Emitter,
  ): Promise<SelectedMailbox> {
    const uids = UidSet.empty();
    await addUidsAfter(mailboxes, mb.id, uids, 0, mb.uidNext, emit);
    const sel = new SelectedMailbox(mb, readOnly, uids, mb.highestModSeq);
    sel.addKeywords(await mailboxes.listKeywords(mb.id));
    return sel;
  }

  get exists(): number {
    return this.uids.size;
  }

  seqOf(uid: number): number {
    return this.uids.seqOf(uid);
  }

  /** Takes \Recent for what arrived since it was last taken (RFC 3501 §2.3.2). */
  async claimRecent(mailboxes: ImapMailboxes): Promise<void> {
    const claimed = await mailboxes.claimRecent(this.mailbox.id);
    if (claimed) this.recent = this.recent.union(UidSet.range(claimed[0], claimed[1]));
  }

  /** Messages shown that are \Recent in this session. */
  recentCount(): number {
    return this.recent.intersect(this.uids).size;
  }

  /** A message's flags as this session reports them (\Recent added where it applies). */
  flagsOf(uid: number, flags: readonly string[]): string[] {
    return this.recent.has(uid) ? ["\\Recent", ...flags] : [...flags];
  }

  /** flagsOf as the space-separated text of a FLAGS list. */
  flagText(uid: number, flags: readonly string[]): string {
    const text = flags.join(" ");
    if (!this.recent.has(uid)) return text;
    return text ? "\\Recent " + text : "\\Recent";
  }

  /** The UIDs a sequence set (or UID set) names, limited to this view. */
  resolve(set: SequenceSet, byUid: boolean): UidSet {
    if ("saved" in set) return this.saved.intersect(this.uids);
    if (this.uids.size === 0) return UidSet.empty();
    if (byUid) return this.uids.within(setIntervals(set, this.uids.max));
    return this.uids.atPositions(setIntervals(set, this.uids.size));
  }

  /** Sequence numbers used in a command must exist (RFC 9051 §6.4.5: "BAD" otherwise). */
  invalidSeqs(set: SequenceSet): boolean {
    if ("saved" in set) return false;
    const n = this.uids.size;
    return set.ranges.some((r) => (r.from !== null && r.from > n) || (r.to !== null && r.to > n));
  }

  addKeywords(keywords: Iterable<string>): boolean {
    let fresh = false;
    for (const k of keywords) {
      if (k.startsWith("\\")) continue;
      const key = k.toLowerCase();
      const known = this.#keywordSet ??= new Set();
      if (known.has(key)) continue;
      known.add(key);
      this.keywords.push(k);
      fresh = true;
    }
    return fresh;
  }

  /** The FLAGS and PERMANENTFLAGS lines (without CRLF). */
  flagLines(): string[] {
    const all = [SYSTEM_FLAGS, ...this.keywords].join(" ");
    return [
      `* FLAGS (${all})`,
      this.readOnly
        ? "* OK [PERMANENTFLAGS ()] Read-only mailbox"
        : `* OK [PERMANENTFLAGS (${all} \\*)] Flags permitted`,
    ];
  }

  /**
   * Keywords the client has not been told about yet: when any, the `* FLAGS` and
   * PERMANENTFLAGS lines to send before a FETCH that shows them.
   */
  announce(flags: readonly string[]): string[] {
    return this.addKeywords(flags) ? this.flagLines() : [];
  }

  noteOwnChange(modSeq: number) {
    (this.#ownModSeqs ??= new Set()).add(modSeq);
  }

  /** A FETCH showed this message's flags as of modSeq (kept for up to SHOWN_MAX messages). */
  noteShown(uid: number, modSeq: number) {
    const shown = this.#shown ??= new Map();
    if (shown.size < SHOWN_MAX) shown.set(uid, modSeq);
  }

  /** Collects expunges committed since this session's modseq, without reporting them. */
  async notePendingExpunges(mailboxes: ImapMailboxes, emit: Emitter): Promise<void> {
    const mb = await mailboxes.mailboxState(this.mailbox.id);
    if (!mb || mb.highestModSeq <= this.modSeq) return;
    this.pendingExpunge = this.pendingExpunge.union(
      await this.#expungedSince(mailboxes, mb, emit),
    );
  }

  /** UIDs of this view expunged after this.modSeq, up to mb's modseq. */
  async #expungedSince(
    mailboxes: ImapMailboxes,
    mb: MailboxState,
    emit: Emitter,
  ): Promise<UidSet> {
    if (mb.expungeHorizonModSeq > this.modSeq) {
      // Tombstones this session would need are gone: compare the view with the mailbox.
      const present = UidSet.empty();
      await addUidsAfter(mailboxes, this.mailbox.id, present, 0, this.uids.max + 1, emit);
      return this.uids.difference(present);
    }
    const gone = await expungedUids(mailboxes, this.mailbox.id, {
      sinceModSeq: this.modSeq,
      upToModSeq: mb.highestModSeq,
      maxUid: this.uids.max,
    }, emit);
    return gone.intersect(this.uids);
  }

  /**
   * Untagged responses for everything committed since the last sync, written to `emit` as they
   * are found. With `allowExpunge` false (during FETCH, STORE, SEARCH) expunges are kept for
   * later. Cost follows the number of changes, not the size of the mailbox. Null when the
   * mailbox is gone (another session deleted it).
   */
  async sync(
    mailboxes: ImapMailboxes,
    emit: Emitter,
    options: SyncOptions,
  ): Promise<number | null> {
    const mb = await mailboxes.mailboxState(this.mailbox.id);
    if (!mb) return null;
    let lines = 0;
    const line = async (text: string) => {
      emit.out(text + "\r\n");
      if (++lines % LINES_PER_STEP === 0) await emit.breathe();
    };
    const top = mb.highestModSeq;
    if (top > this.modSeq) {
      this.pendingExpunge = this.pendingExpunge.union(
        await this.#expungedSince(mailboxes, mb, emit),
      );
    }
    if (options.allowExpunge && this.pendingExpunge.size > 0) {
      const gone = this.pendingExpunge.intersect(this.uids);
      this.pendingExpunge = UidSet.empty();
      if (options.qresync) {
        if (gone.size) {
          emit.out("* VANISHED ");
          for (const piece of gone.formatPieces()) {
            emit.out(piece);
            await emit.breathe();
          }
          await line("");
        }
      } else {
        // Highest first, so each reported number is still valid when the client applies it.
        for (const uid of gone.valuesDescending()) await line(`* ${this.uids.seqOf(uid)} EXPUNGE`);
      }
      this.uids = this.uids.difference(gone);
      this.recent = this.recent.difference(gone);
    }
    const last = this.uids.max;
    if (top > this.modSeq) {
      // Flag changes of messages this session knows.
      let after: { modSeq: number; uid: number } | undefined;
      while (true) {
        const page = await mailboxes.changedMessages(this.mailbox.id, {
          sinceModSeq: this.modSeq,
          upToModSeq: top,
          after,
          maxUid: last,
          limit: CHANGE_PAGE,
        });
        for (const m of page) {
          if (this.#ownModSeqs?.has(m.modSeq) || this.pendingExpunge.has(m.uid)) continue;
          if (this.#shown?.get(m.uid) === m.modSeq) continue;
          const seq = this.uids.seqOf(m.uid);
          if (seq === 0) continue;
          for (const l of this.announce(m.flags)) await line(l);
          const modseq = options.condstore ? ` MODSEQ (${m.modSeq})` : "";
          await line(
            `* ${seq} FETCH (UID ${m.uid} FLAGS (${this.flagText(m.uid, m.flags)})${modseq})`,
          );
        }
        if (page.length < CHANGE_PAGE) break;
        const end = page[page.length - 1];
        after = { modSeq: end.modSeq, uid: end.uid };
        await emit.breathe();
      }
    }
    // New messages: every UID above the last one known (by UID, not by modseq, so a message
    // changed again while this runs is not missed).
    const before = this.uids.size;
    if (top > this.modSeq) {
      await addUidsAfter(mailboxes, this.mailbox.id, this.uids, last, undefined, emit);
    }
    if (this.uids.size > before) {
      await line(`* ${this.uids.size} EXISTS`);
      if (!this.readOnly) {
        await this.claimRecent(mailboxes);
        await line(`* ${this.recentCount()} RECENT`);
      }
    }
    if (top > this.modSeq) this.modSeq = top;
    this.#ownModSeqs = null;
    this.#shown = null;
    return lines;
  }
}

/** Appends to `into` every UID in (after, below), page by page. */
async function addUidsAfter(
  mailboxes: ImapMailboxes,
  mailboxId: number,
  into: UidSet,
  after: number,
  below: number | undefined,
  emit: Emitter,
): Promise<void> {
  while (true) {
    const page = await mailboxes.listUids(mailboxId, {
      afterUid: after,
      belowUid: below,
      limit: UID_PAGE,
    });
    for (let i = 0; i + 1 < page.runs.length; i += 2) into.addRun(page.runs[i], page.runs[i + 1]);
    if (page.done) return;
    after = page.lastUid;
    await emit.breathe();
  }
}
