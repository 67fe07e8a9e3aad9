import assert from "node:assert/strict";
import {
  inSequenceSet,
  matchesSearch,
  needsContent,
  type SearchContext,
  sentDay,
  wholeMessage,
} from "./search_eval.ts";
import type { SearchKey, SequenceSet } from "./types.ts";

const MESSAGE = [
  "Date: Mon, 15 Jan 2024 23:30:00 -0500",
  "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>",
  "To: Bob <bob@example.org>",
  "Subject: =?utf-8?b?R3LDvMOfZQ==?= from the lab",
  "X-Empty:",
  "MIME-Version: 1.0",
  "Content-Type: multipart/mixed; boundary=b",
  "",
  "--b",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: quoted-printable",
  "",
  "Plain caf=C3=A9 text",
  "--b",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: base64",
  "",
  btoa("hidden Needle inside base64"),
  "--b",
  "Content-Type: application/octet-stream",
  "",
  "binaryword",
  "--b--",
  "",
].join("\r\n");

const DAY = 86_400_000;
const JAN15 = Date.UTC(2024, 0, 15);

function context(over: Partial<SearchContext> = {}) {
  const bytes = new TextEncoder().encode(MESSAGE);
  const counter = { loads: 0 };
  const ctx: SearchContext = {
    seq: 3,
    uid: 30,
    flags: ["\\Seen", "$Label1"],
    internalDate: JAN15 + DAY - 1, // the last millisecond of 15 Jan (UTC)
    size: bytes.length,
    modSeq: 100,
    recent: false,
    maxSeq: 10,
    maxUid: 99,
    now: JAN15 + 2 * DAY,
    message() {
      counter.loads++;
      return wholeMessage(bytes);
    },
    ...over,
  };
  return { ctx, counter };
}

const match = (key: SearchKey, over: Partial<SearchContext> = {}) =>
  matchesSearch(key, context(over).ctx);
const header = (field: string, value: string): SearchKey => ({ kind: "HEADER", field, value });
const flag = (f: string, negate = false): SearchKey => ({ kind: "FLAG", flag: f, negate });
const date = (op: "BEFORE" | "ON" | "SINCE", d: number, sent = false): SearchKey => ({
  kind: "DATE",
  op,
  date: d,
  sent,
});
const set = (...ranges: [number | null, number | null][]): SequenceSet => ({
  ranges: ranges.map(([from, to]) => ({ from, to })),
});

Deno.test("flags: system flags and keywords compare case-insensitively", () => {
  assert.equal(match(flag("\\SEEN")), true);
  assert.equal(match(flag("\\seen", true)), false);
  assert.equal(match(flag("$label1")), true);
  assert.equal(match(flag("\\Flagged")), false);
  assert.equal(match(flag("\\Flagged", true)), true);
});

Deno.test("NEW, OLD, RECENT", () => {
  assert.equal(match({ kind: "NEW" }, { recent: true }), false); // seen
  assert.equal(match({ kind: "NEW" }, { recent: true, flags: [] }), true);
  assert.equal(match({ kind: "OLD" }, { recent: true }), false);
  assert.equal(match({ kind: "OLD" }), true);
  assert.equal(match({ kind: "RECENT" }, { recent: true }), true);
});

Deno.test("NOT / OR / AND nesting", () => {
  const key: SearchKey = {
    kind: "OR",
    left: { kind: "NOT", key: flag("\\Seen") },
    right: {
      kind: "AND",
      keys: [flag("$Label1"), { kind: "NOT", key: { kind: "SIZE", op: "LARGER", size: 1e6 } }],
    },
  };
  assert.equal(match(key), true);
  assert.equal(match(key, { flags: ["\\Seen"] }), false);
  assert.equal(match(key, { flags: [] }), true);
  assert.equal(match({ kind: "NOT", key: key }, { flags: ["\\Seen"] }), true);
  assert.equal(match({ kind: "AND", keys: [] }), true);
  assert.equal(match({ kind: "ALL" }), true);
});

Deno.test("sequence sets: ranges, *, reversed ranges, huge ranges, saved result", () => {
  assert.equal(match({ kind: "SEQ", set: set([1, 2], [3, 3]) }), true);
  assert.equal(match({ kind: "SEQ", set: set([4, null]) }), false);
  assert.equal(match({ kind: "SEQ", set: set([null, 2]) }), true); // "*:2" is 2:10
  assert.equal(match({ kind: "UID", set: set([null, null]) }), false); // "*" is uid 99
  assert.equal(match({ kind: "UID", set: set([null, null]) }, { uid: 99 }), true);
  assert.equal(match({ kind: "UID", set: set([31, 20]) }), true);
  assert.equal(match({ kind: "UID", set: set([1, 4294967295]) }), true);
  assert.equal(inSequenceSet(set([5, 9]), 9, 9, 0), true);
  const saved: SequenceSet = { saved: true };
  assert.equal(matchesSearch({ kind: "UID", set: saved }, context().ctx, [30, 31]), true);
  assert.equal(matchesSearch({ kind: "SEQ", set: saved }, context().ctx, new Set([30])), true);
  assert.equal(matchesSearch({ kind: "SEQ", set: saved }, context().ctx, new Set([3])), false);
  assert.equal(match({ kind: "UID", set: saved }), false); // no saved result: empty
});

Deno.test("HEADER: decoded, case-insensitive substring; empty value means the field exists", () => {
  assert.equal(match(header("FROM", "jörg")), true);
  assert.equal(match(header("from", "JOERG@EXAMPLE")), true);
  assert.equal(match(header("SUBJECT", "grüße FROM")), true);
  assert.equal(match(header("SUBJECT", "R3LDvMOfZQ")), false); // encoded form is not searched
  assert.equal(match(header("TO", "alice")), false);
  assert.equal(match(header("X-Empty", "")), true);
  assert.equal(match(header("X-Missing", "")), false);
  assert.equal(match(header("CC", "")), false);
  assert.equal(match(header("X-Empty", "x")), false);
});

Deno.test("BODY: decoded text parts, base64 included; not headers, not non-text parts", () => {
  assert.equal(match({ kind: "BODY", value: "needle INSIDE" }), true);
  assert.equal(match({ kind: "BODY", value: "café" }), true);
  assert.equal(match({ kind: "BODY", value: "caf=C3=A9" }), false);
  assert.equal(match({ kind: "BODY", value: "binaryword" }), false);
  assert.equal(match({ kind: "BODY", value: "Bob" }), false);
  assert.equal(match({ kind: "TEXT", value: "Bob" }), true);
  assert.equal(match({ kind: "TEXT", value: "needle" }), true);
  assert.equal(match({ kind: "TEXT", value: "absent everywhere" }), false);
});

Deno.test("BODY in a single-part base64 message", () => {
  const bytes = new TextEncoder().encode(
    "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
      btoa("Gr\xfc\xdfe aus Berlin") + "\r\n",
  );
  const ctx = context({ message: () => wholeMessage(bytes) }).ctx;
  assert.equal(matchesSearch({ kind: "BODY", value: "GRÜSSE" }, ctx), false);
  assert.equal(matchesSearch({ kind: "BODY", value: "grüße aus" }, ctx), true);
});

Deno.test("dates: internal date compared by UTC calendar day at the boundaries", () => {
  // internalDate is 2024-01-15T23:59:59.999Z.
  assert.equal(match(date("ON", JAN15)), true);
  assert.equal(match(date("BEFORE", JAN15)), false);
  assert.equal(match(date("BEFORE", JAN15 + DAY)), true);
  assert.equal(match(date("SINCE", JAN15)), true);
  assert.equal(match(date("SINCE", JAN15 + DAY)), false);
  const midnight = { internalDate: JAN15 + DAY }; // 2024-01-16T00:00:00Z
  assert.equal(match(date("ON", JAN15 + DAY), midnight), true);
  assert.equal(match(date("SINCE", JAN15 + DAY), midnight), true);
  assert.equal(match(date("BEFORE", JAN15 + DAY), midnight), false);
});

Deno.test("dates: SENT* use the Date header's own day, disregarding time and zone", () => {
  // "Mon, 15 Jan 2024 23:30:00 -0500" is 16 Jan in UTC, but the written day is the 15th.
  assert.equal(match(date("ON", JAN15, true)), true);
  assert.equal(match(date("BEFORE", JAN15 + DAY, true)), true);
  assert.equal(match(date("SINCE", JAN15 + DAY, true)), false);
  assert.equal(sentDay("15 Jan 24 10:00 GMT"), JAN15);
  assert.equal(sentDay("Thu, 1 Feb 1996 00:00:00 +0000"), Date.UTC(1996, 1, 1));
  assert.equal(sentDay("garbage"), undefined);
  const noDate = new TextEncoder().encode("Subject: x\r\n\r\nbody");
  const ctx = context({ message: () => wholeMessage(noDate) }).ctx;
  assert.equal(matchesSearch(date("SINCE", 0, true), ctx), false);
});

Deno.test("SIZE strict, MODSEQ at least, OLDER/YOUNGER relative to now", () => {
  const size = context().ctx.size;
  assert.equal(match({ kind: "SIZE", op: "LARGER", size: size - 1 }), true);
  assert.equal(match({ kind: "SIZE", op: "LARGER", size }), false);
  assert.equal(match({ kind: "SIZE", op: "SMALLER", size }), false);
  assert.equal(match({ kind: "SIZE", op: "SMALLER", size: size + 1 }), true);
  assert.equal(match({ kind: "MODSEQ", modSeq: 100 }), true);
  assert.equal(match({ kind: "MODSEQ", modSeq: 99 }), true);
  assert.equal(match({ kind: "MODSEQ", modSeq: 101 }), false);
  // The message is DAY + 1 ms old.
  const age = DAY / 1000;
  assert.equal(match({ kind: "AGE", op: "OLDER", seconds: age }), true);
  assert.equal(match({ kind: "AGE", op: "YOUNGER", seconds: age }), false);
  assert.equal(match({ kind: "AGE", op: "YOUNGER", seconds: age + 1 }), true);
  assert.equal(match({ kind: "AGE", op: "OLDER", seconds: age + 1 }), false);
});

Deno.test("laziness: message() is not called without content keys, and at most once", () => {
  const cheap: SearchKey = {
    kind: "AND",
    keys: [
      flag("\\Seen"),
      { kind: "OR", left: { kind: "UID", set: set([1, 50]) }, right: { kind: "NEW" } },
      date("SINCE", JAN15),
      { kind: "NOT", key: { kind: "SIZE", op: "LARGER", size: 1e9 } },
      { kind: "MODSEQ", modSeq: 1 },
    ],
  };
  assert.equal(needsContent(cheap), false);
  let { ctx, counter } = context();
  assert.equal(matchesSearch(cheap, ctx), true);
  assert.equal(counter.loads, 0);

  // A failing cheap key spares the load even when a content key comes first.
  const mixed: SearchKey = { kind: "AND", keys: [header("SUBJECT", "lab"), flag("\\Deleted")] };
  assert.equal(needsContent(mixed), true);
  ({ ctx, counter } = context());
  assert.equal(matchesSearch(mixed, ctx), false);
  assert.equal(counter.loads, 0);

  const many: SearchKey = {
    kind: "AND",
    keys: [header("SUBJECT", "lab"), { kind: "BODY", value: "needle" }, date("ON", JAN15, true)],
  };
  ({ ctx, counter } = context());
  assert.equal(matchesSearch(many, ctx), true);
  assert.equal(counter.loads, 1);
});
