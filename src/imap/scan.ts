// Walking the messages a command names, in bounded store steps: each step reads at most one
// window of the mailbox, then the command writes what it found and breathes, so a command on
// 250 000 messages never holds the event loop for more than a slice.

import type { ChangesQuery, MessageFilter, MessageRecord } from "../store/types.ts";
import type { ImapMailboxes } from "./backend.ts";
import type { Emitter } from "./selected.ts";
import { type UidSet, UidSetBuilder } from "./uid_set.ts";

/** UID ranges a single store step may carry in its filter. */
const MAX_RANGES = 64;
/** Changes read through the modseq index before a CHANGEDSINCE falls back to a scan. */
const CHANGES_FIRST_PAGE = 1000;
/** Tombstones per store step when collecting expunged UIDs. */
const EXPUNGED_PAGE = 1000;

export interface ScanOptions {
  /** Messages looked at per store step. */
  window: number;
  /** A condition the store evaluates besides membership in the targets. */
  filter?: MessageFilter;
  direction?: "asc" | "desc";
  /** Only UIDs and modseqs are needed: the rows then carry nothing else (cheaper to read). */
  uidsOnly?: boolean;
}

export function and(...filters: (MessageFilter | undefined)[]): MessageFilter | undefined {
  const fs = filters.filter((f): f is MessageFilter => f !== undefined && f.kind !== "true");
  if (fs.length === 0) return undefined;
  return fs.length === 1 ? fs[0] : { kind: "and", filters: fs };
}

/**
 * The stored messages among `targets` (that match `filter`), batch by batch in UID order
 * (descending with direction "desc"). Messages expunged meanwhile are simply not there.
 */
export async function* scanTargets(
  mailboxes: ImapMailboxes,
  mailboxId: number,
  targets: UidSet,
  emit: Emitter,
  options: ScanOptions,
): AsyncGenerator<MessageRecord[]> {
  if (targets.size === 0) return;
  const asc = (options.direction ?? "asc") === "asc";
  let from = asc ? targets.min - 1 : targets.max + 1;
  while (asc ? from < targets.max : from > targets.min) {
    // At most MAX_RANGES runs of the targets per step: the step ends where they end.
    const runs = asc
      ? targets.someRunsWithin(from + 1, targets.max, MAX_RANGES)
      : targets.someRunsWithin(targets.min, from - 1, MAX_RANGES, true);
    if (runs.length === 0) return;
    const bound = asc ? runs[runs.length - 1][1] : runs[0][0];
    const r = await mailboxes.scanMessages(mailboxId, {
      from,
      direction: asc ? "asc" : "desc",
      maxUid: asc ? bound : targets.max,
      window: options.window,
      filter: and({ kind: "uids", ranges: runs }, options.filter),
      uidsOnly: options.uidsOnly,
    });
    if (r.uids) {
      if (r.uids.length) yield r.uids.map((uid, i) => idOnly(mailboxId, uid, r.modSeqs![i]));
    } else if (r.rows.length) yield r.rows;
    // The filter keeps rows to the chosen runs, so the next step starts where they end (or
    // where the window stopped short of that end).
    from = r.done ? bound : asc ? r.next : Math.max(r.next, bound);
    await emit.breathe();
  }
}

/** A record that says only which message and which modseq (ScanOptions.uidsOnly). */
function idOnly(mailboxId: number, uid: number, modSeq: number): MessageRecord {
  return { mailboxId, uid, modSeq, flags: [], internalDate: 0, size: 0, bodyId: 0 };
}

/**
 * The messages among `targets` changed after `since`, batch by batch in UID order: through the
 * modseq index when there are few (the common resync: cost follows the changes), by a scan of
 * the targets with a modseq filter when there are many (cost follows the targets).
 */
export async function* changedTargets(
  mailboxes: ImapMailboxes,
  mailboxId: number,
  targets: UidSet,
  since: number,
  emit: Emitter,
  window: number,
): AsyncGenerator<MessageRecord[]> {
  if (targets.size === 0) return;
  const first = await mailboxes.changedMessages(mailboxId, {
    sinceModSeq: since,
    upToModSeq: Number.MAX_SAFE_INTEGER,
    maxUid: targets.max,
    limit: CHANGES_FIRST_PAGE,
  });
  if (first.length < CHANGES_FIRST_PAGE) {
    const rows = first.filter((m) => targets.has(m.uid)).sort((a, b) => a.uid - b.uid);
    if (rows.length) yield rows;
    return;
  }
  yield* scanTargets(mailboxes, mailboxId, targets, emit, {
    window,
    filter: { kind: "compare", field: "modSeq", op: ">", value: since },
  });
}

/**
 * The UIDs expunged in (sinceModSeq, upToModSeq] (up to maxUid), read from the tombstones a page
 * at a time with a breath between pages. The caller checks first that the tombstones reach back
 * that far (the mailbox's expunge horizon).
 */
export async function expungedUids(
  mailboxes: ImapMailboxes,
  mailboxId: number,
  range: Omit<ChangesQuery, "after" | "limit">,
  emit: Emitter,
): Promise<UidSet> {
  const gone = new UidSetBuilder();
  let after: ChangesQuery["after"];
  while (true) {
    const page = await mailboxes.expungedMessages(mailboxId, {
      ...range,
      after,
      limit: EXPUNGED_PAGE,
    });
    for (const e of page) gone.add(e.uid);
    if (page.length < EXPUNGED_PAGE) return gone.build();
    const last = page[page.length - 1];
    after = { modSeq: last.modSeq, uid: last.uid };
    await emit.breathe();
  }
}

/** `* VANISHED (EARLIER) …` for `uids` (RFC 7162 §3.2.6), a piece at a time; nothing if empty. */
export async function writeVanishedEarlier(emit: Emitter, uids: UidSet): Promise<void> {
  if (uids.size === 0) return;
  emit.out("* VANISHED (EARLIER) ");
  for (const piece of uids.formatPieces()) {
    emit.out(piece);
    await emit.breathe();
  }
  emit.out("\r\n");
}
