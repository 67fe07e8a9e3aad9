// The selected mailbox as this session sees it: sequence numbers are positions in `uids`, and
// they change only when this session reports EXPUNGE/VANISHED (RFC 9051 §7.5.1). Changes
// committed elsewhere are found by MODSEQ (changesSince), so none is missed between commands,
// between SELECT and IDLE, or while a command that may not report expunges is running.

import type { MailboxRecord } from "../store/types.ts";
import type { ImapMailboxes } from "./backend.ts";
import type { SequenceSet } from "./types.ts";
import { contains, formatSet } from "./sequence_set.ts";

export const SYSTEM_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

export class SelectedMailbox {
  readonly mailbox: MailboxRecord;
  readonly readOnly: boolean;
  /** UIDs in sequence order (ascending). */
  uids: number[];
  /** Highest MODSEQ whose changes this session has taken into account. */
  modSeq: number;
  /** Expunged elsewhere but not reported yet (FETCH/STORE/SEARCH may not report them). */
  #pendingExpunge = new Set<number>();
  /** MODSEQ of flag changes this session made and already reported, per UID. */
  #ownChanges = new Map<number, number>();
  /** Result of the last SEARCH ... RETURN (SAVE) (RFC 5182), as UIDs. */
  saved: number[] = [];
  /** Keywords announced to the client in FLAGS (RFC 9051 §7.3.5). */
  keywords = new Set<string>();
  /** UIDs that are \Recent in this session (it claimed them first, RFC 3501 §2.3.2). */
  recent = new Set<number>();

  /** A message's flags as this session reports them (\Recent added where it applies). */
  flagsOf(uid: number, flags: readonly string[]): string[] {
    return this.recent.has(uid) ? ["\\Recent", ...flags] : [...flags];
  }

  constructor(mailbox: MailboxRecord, readOnly: boolean, uids: number[], modSeq: number) {
    this.mailbox = mailbox;
    this.readOnly = readOnly;
    this.uids = uids;
    this.modSeq = modSeq;
  }

  get exists(): number {
    return this.uids.length;
  }

  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.uids[mid];
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** The UIDs a sequence set (or UID set) names, ascending, limited to this view. */
  resolve(set: SequenceSet, byUid: boolean): number[] {
    if ("saved" in set) return this.saved.filter((u) => this.seqOf(u) > 0);
    if (this.uids.length === 0) return [];
    if (byUid) {
      const max = this.uids[this.uids.length - 1];
      return this.uids.filter((u) => contains(set, u, max));
    }
    const max = this.uids.length;
    const out: number[] = [];
    for (const r of set.ranges) {
      let a = r.from ?? max;
      let b = r.to ?? max;
      if (a > b) [a, b] = [b, a];
      for (let s = Math.max(1, a); s <= Math.min(b, max); s++) out.push(this.uids[s - 1]);
    }
    return [...new Set(out)].sort((x, y) => x - y);
  }

  /** Sequence numbers used in a command must exist (RFC 9051 §6.4.5: "BAD" otherwise). */
  invalidSeqs(set: SequenceSet): boolean {
    if ("saved" in set) return false;
    return set.ranges.some((r) =>
      (r.from !== null && r.from > this.uids.length) || (r.to !== null && r.to > this.uids.length)
    );
  }

  /**
   * Keywords the client has not been told about yet: when any, the `* FLAGS` and
   * PERMANENTFLAGS lines to send before a FETCH that shows them.
   */
  announce(flags: readonly string[]): string[] {
    let fresh = false;
    for (const f of flags) {
      if (!f.startsWith("\\") && !this.keywords.has(f)) {
        this.keywords.add(f);
        fresh = true;
      }
    }
    if (!fresh) return [];
    const all = [SYSTEM_FLAGS, ...this.keywords].join(" ");
    return [
      `* FLAGS (${all})`,
      this.readOnly
        ? "* OK [PERMANENTFLAGS ()] Read-only mailbox"
        : `* OK [PERMANENTFLAGS (${all} \\*)] Flags permitted`,
    ];
  }

  noteOwnChange(uid: number, modSeq: number) {
    this.#ownChanges.set(uid, modSeq);
  }

  /**
   * Untagged responses for everything committed since the last sync. With `allowExpunge` false
   * (during FETCH, STORE, SEARCH) expunges are kept for later.
   */
  async sync(
    mailboxes: ImapMailboxes,
    options: { allowExpunge: boolean; qresync: boolean; condstore: boolean },
  ): Promise<string[]> {
    const out: string[] = [];
    const changes = await mailboxes.changesSince(this.mailbox.id, this.modSeq);
    for (const uid of changes.expunged) this.#pendingExpunge.add(uid);
    if (options.allowExpunge && this.#pendingExpunge.size > 0) {
      const gone = [...this.#pendingExpunge].filter((u) => this.seqOf(u) > 0).sort((a, b) => a - b);
      this.#pendingExpunge.clear();
      if (options.qresync) {
        if (gone.length) out.push(`* VANISHED ${formatSet(gone)}`);
        const set = new Set(gone);
        this.uids = this.uids.filter((u) => !set.has(u));
      } else {
        // Highest first, so each reported number is still valid when the client applies it.
        for (const uid of gone.reverse()) {
          const seq = this.seqOf(uid);
          out.push(`* ${seq} EXPUNGE`);
          this.uids.splice(seq - 1, 1);
        }
      }
      for (const uid of gone) {
        this.#ownChanges.delete(uid);
        this.recent.delete(uid);
      }
    }
    const last = this.uids.length ? this.uids[this.uids.length - 1] : 0;
    let added = false;
    const flagLines: string[] = [];
    for (const m of changes.changed) {
      if (this.#pendingExpunge.has(m.uid)) continue;
      if (m.uid > last) {
        this.uids.push(m.uid);
        added = true;
        continue;
      }
      const seq = this.seqOf(m.uid);
      if (seq === 0) continue;
      if (this.#ownChanges.get(m.uid) === m.modSeq) continue;
      const modseq = options.condstore ? ` MODSEQ (${m.modSeq})` : "";
      flagLines.push(...this.announce(m.flags));
      flagLines.push(
        `* ${seq} FETCH (UID ${m.uid} FLAGS (${this.flagsOf(m.uid, m.flags).join(" ")})${modseq})`,
      );
    }
    if (added) {
      this.uids.sort((a, b) => a - b);
      out.push(`* ${this.uids.length} EXISTS`);
      if (!this.readOnly) {
        for (const uid of await mailboxes.claimRecent(this.mailbox.id)) this.recent.add(uid);
        out.push(`* ${this.recent.size} RECENT`);
      }
    }
    out.push(...flagLines);
    this.modSeq = Math.max(this.modSeq, changes.highestModSeq);
    this.#ownChanges.clear();
    return out;
  }
}
