import assert from "node:assert/strict";
import fc from "fast-check";
import { matchesFilter } from "../store/queries_contract.ts";
import type { MailboxRecord, MessageRecord } from "../store/types.ts";
import { matchesSearch, wholeMessage } from "./search_eval.ts";
import { plan } from "./search_run.ts";
import { SelectedMailbox } from "./selected.ts";
import type { SearchKey, SequenceSet } from "./types.ts";
import { UidSet } from "./uid_set.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2025, 2, 10);
const MAILBOX = { id: 1, highestModSeq: 100 } as MailboxRecord;

const message = fc.record({
  flags: fc.subarray(["\\Seen", "\\Flagged", "\\Deleted", "$Foo", "Bar"]),
  day: fc.integer({ min: 0, max: 4 }),
  ms: fc.integer({ min: 0, max: DAY - 1 }),
  size: fc.integer({ min: 10, max: 60 }),
  modSeq: fc.integer({ min: 1, max: 30 }),
});

const set: fc.Arbitrary<SequenceSet> = fc.oneof(
  fc.constant({ saved: true } as const),
  fc.array(
    fc.record({
      from: fc.option(fc.integer({ min: 1, max: 25 }), { nil: null }),
      to: fc.option(fc.integer({ min: 1, max: 25 }), { nil: null }),
    }),
    { minLength: 1, maxLength: 3 },
  ).map((ranges) => ({ ranges })),
);

const leaf: fc.Arbitrary<SearchKey> = fc.oneof(
  fc.constant({ kind: "ALL" } as const),
  fc.constantFrom({ kind: "NEW" } as const, { kind: "OLD" } as const, { kind: "RECENT" } as const),
  set.map((s): SearchKey => ({ kind: "SEQ", set: s })),
  set.map((s): SearchKey => ({ kind: "UID", set: s })),
  fc.record({
    kind: fc.constant("FLAG" as const),
    flag: fc.constantFrom("\\Seen", "\\FLAGGED", "\\Deleted", "$foo", "Bar", "Nope"),
    negate: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("DATE" as const),
    op: fc.constantFrom("BEFORE" as const, "ON" as const, "SINCE" as const),
    date: fc.integer({ min: 0, max: 5 }).map((d) => T0 + d * DAY),
    sent: fc.constant(false),
  }),
  fc.record({
    kind: fc.constant("SIZE" as const),
    op: fc.constantFrom("LARGER" as const, "SMALLER" as const),
    size: fc.integer({ min: 5, max: 65 }),
  }),
  fc.record({ kind: fc.constant("MODSEQ" as const), modSeq: fc.integer({ min: 0, max: 32 }) }),
  fc.record({
    kind: fc.constant("AGE" as const),
    op: fc.constantFrom("OLDER" as const, "YOUNGER" as const),
    seconds: fc.integer({ min: 1, max: 5 * 86_400 }),
  }),
  fc.constant({ kind: "BODY", value: "x" } as const),
);
const { key } = fc.letrec<{ key: SearchKey }>((rec) => ({
  key: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    rec("key").map((k): SearchKey => ({ kind: "NOT", key: k })),
    fc.tuple(rec("key"), rec("key")).map(([l, r]): SearchKey => ({
      kind: "OR",
      left: l,
      right: r,
    })),
    fc.array(rec("key"), { minLength: 1, maxLength: 3 }).map((keys): SearchKey => ({
      kind: "AND",
      keys,
    })),
  ),
}));

Deno.test("the store filter of a SEARCH key matches what the key means, or a superset", () => {
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 6 }),
      key,
      (spec, gaps, k) => {
        // UIDs with holes, as after expunges.
        const uids: number[] = [];
        let u = 0;
        for (let i = 0; i < spec.length; i++) uids.push(u += gaps.includes(i) ? 3 : 1);
        const msgs: MessageRecord[] = spec.map((m, i) => ({
          mailboxId: 1,
          uid: uids[i],
          modSeq: m.modSeq,
          flags: m.flags,
          internalDate: T0 + m.day * DAY + m.ms,
          size: m.size,
          bodyId: i + 1,
        }));
        const sel = new SelectedMailbox(MAILBOX, false, UidSet.of(uids), 100);
        sel.recent = UidSet.of(uids.filter((_, i) => i % 3 === 0));
        sel.saved = UidSet.of(uids.filter((_, i) => i % 2 === 1));
        const now = T0 + 3 * DAY;
        const p = plan(k, { sel, now });
        const body = new TextEncoder().encode("Subject: s\r\n\r\nx\r\n");
        for (const m of msgs) {
          const meant = matchesSearch(k, {
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
            message: () => wholeMessage(body),
          }, sel.saved);
          const filtered = matchesFilter(p.filter, m);
          if (p.exact) assert.equal(filtered, meant, JSON.stringify({ k, m, f: p.filter }));
          else if (meant) assert.ok(filtered, JSON.stringify({ k, m, f: p.filter }));
        }
      },
    ),
    { numRuns: 500 },
  );
});
