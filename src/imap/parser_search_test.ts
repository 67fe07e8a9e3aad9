import assert from "node:assert/strict";
import { ImapSyntaxError, parseCommand } from "./parser.ts";
import type { SearchKey } from "./types.ts";

const enc = new TextEncoder();

function search(...segments: (string | Uint8Array)[]) {
  const cmd = parseCommand({ segments });
  assert.equal(cmd.name, "SEARCH");
  return cmd;
}

const key = (criteria: string) => search(`a SEARCH ${criteria}`).key;
const set = (from: number | null, to: number | null = from) => ({ ranges: [{ from, to }] });
const flag = (f: string, negate = false): SearchKey => ({ kind: "FLAG", flag: f, negate });
const day = (y: number, m: number, d: number) => Date.UTC(y, m - 1, d);

const keys: [string, SearchKey][] = [
  ["ALL", { kind: "ALL" }],
  ["answered", flag("\\Answered")],
  ["DELETED", flag("\\Deleted")],
  ["DRAFT", flag("\\Draft")],
  ["FLAGGED", flag("\\Flagged")],
  ["SEEN", flag("\\Seen")],
  ["UNANSWERED", flag("\\Answered", true)],
  ["UNDELETED", flag("\\Deleted", true)],
  ["UNDRAFT", flag("\\Draft", true)],
  ["UNFLAGGED", flag("\\Flagged", true)],
  ["UNSEEN", flag("\\Seen", true)],
  ["KEYWORD $Forwarded", flag("$Forwarded")],
  ["UNKEYWORD $Junk", flag("$Junk", true)],
  ["NEW", { kind: "NEW" }],
  ["OLD", { kind: "OLD" }],
  ["RECENT", { kind: "RECENT" }],
  ["BCC a@b", { kind: "HEADER", field: "Bcc", value: "a@b" }],
  ['CC "x y"', { kind: "HEADER", field: "Cc", value: "x y" }],
  ["FROM alice", { kind: "HEADER", field: "From", value: "alice" }],
  ["TO bob", { kind: "HEADER", field: "To", value: "bob" }],
  ['SUBJECT "héllo"', { kind: "HEADER", field: "Subject", value: "héllo" }],
  ['HEADER Chat-Version ""', { kind: "HEADER", field: "Chat-Version", value: "" }],
  ["BODY needle", { kind: "BODY", value: "needle" }],
  ["TEXT needle", { kind: "TEXT", value: "needle" }],
  ["BEFORE 1-Feb-2024", { kind: "DATE", op: "BEFORE", sent: false, date: day(2024, 2, 1) }],
  ['ON "29-feb-2024"', { kind: "DATE", op: "ON", sent: false, date: day(2024, 2, 29) }],
  ["SINCE 31-Dec-1999", { kind: "DATE", op: "SINCE", sent: false, date: day(1999, 12, 31) }],
  ["SENTBEFORE 1-Jan-2000", { kind: "DATE", op: "BEFORE", sent: true, date: day(2000, 1, 1) }],
  ["SENTON 15-Mar-2023", { kind: "DATE", op: "ON", sent: true, date: day(2023, 3, 15) }],
  ["SENTSINCE 02-Jan-2024", { kind: "DATE", op: "SINCE", sent: true, date: day(2024, 1, 2) }],
  ["LARGER 1000", { kind: "SIZE", op: "LARGER", size: 1000 }],
  ["SMALLER 5", { kind: "SIZE", op: "SMALLER", size: 5 }],
  ["OLDER 3600", { kind: "AGE", op: "OLDER", seconds: 3600 }],
  ["YOUNGER 60", { kind: "AGE", op: "YOUNGER", seconds: 60 }],
  ["MODSEQ 620162338", { kind: "MODSEQ", modSeq: 620162338 }],
  ['MODSEQ "/flags/\\\\draft" all 620162338', { kind: "MODSEQ", modSeq: 620162338 }],
  ["UID 1:*", { kind: "UID", set: set(1, null) }],
  ["2:4", { kind: "SEQ", set: set(2, 4) }],
  ["*", { kind: "SEQ", set: set(null) }],
  ["$", { kind: "SEQ", set: { saved: true } }],
  ["NOT SEEN", { kind: "NOT", key: flag("\\Seen") }],
  ["OR SEEN FLAGGED", { kind: "OR", left: flag("\\Seen"), right: flag("\\Flagged") }],
  ["(SEEN)", flag("\\Seen")],
  ["(SEEN UNDELETED)", { kind: "AND", keys: [flag("\\Seen"), flag("\\Deleted", true)] }],
  ["SEEN FROM x", {
    kind: "AND",
    keys: [flag("\\Seen"), { kind: "HEADER", field: "From", value: "x" }],
  }],
  ["OR (FROM a TO b) NOT OR SEEN 1:3 UID 9", {
    kind: "AND",
    keys: [
      {
        kind: "OR",
        left: {
          kind: "AND",
          keys: [
            { kind: "HEADER", field: "From", value: "a" },
            { kind: "HEADER", field: "To", value: "b" },
          ],
        },
        right: {
          kind: "NOT",
          key: { kind: "OR", left: flag("\\Seen"), right: { kind: "SEQ", set: set(1, 3) } },
        },
      },
      { kind: "UID", set: set(9) },
    ],
  }],
  ["NOT (OR OR SEEN DRAFT DELETED)", {
    kind: "NOT",
    key: {
      kind: "OR",
      left: { kind: "OR", left: flag("\\Seen"), right: flag("\\Draft") },
      right: flag("\\Deleted"),
    },
  }],
];

for (const [criteria, want] of keys) {
  Deno.test(`SEARCH key: ${criteria}`, () => assert.deepEqual(key(criteria), want));
}

Deno.test("SEARCH: RETURN, CHARSET and UID", () => {
  assert.deepEqual(search("a UID SEARCH RETURN (min MAX COUNT) CHARSET utf-8 TEXT x"), {
    tag: "a",
    name: "SEARCH",
    uid: true,
    key: { kind: "TEXT", value: "x" },
    returnOptions: ["MIN", "MAX", "COUNT"],
    charset: "UTF-8",
  });
  assert.deepEqual(search("a SEARCH RETURN () ALL"), {
    tag: "a",
    name: "SEARCH",
    uid: false,
    key: { kind: "ALL" },
    returnOptions: [],
  });
  assert.deepEqual(search("a SEARCH RETURN (SAVE ALL) SEEN").returnOptions, ["SAVE", "ALL"]);
  assert.equal(search("a SEARCH ALL").returnOptions, undefined);
});

Deno.test("SEARCH: literal strings, decoded with the given charset", () => {
  const utf8 = search("a SEARCH CHARSET UTF-8 SUBJECT ", enc.encode("Grüße"), "");
  assert.deepEqual(utf8.key, { kind: "HEADER", field: "Subject", value: "Grüße" });
  const latin1 = search("a SEARCH CHARSET ISO-8859-1 BODY ", new Uint8Array([0x47, 0xfc]), " SEEN");
  assert.deepEqual(latin1.key, {
    kind: "AND",
    keys: [{ kind: "BODY", value: "Gü" }, flag("\\Seen")],
  });
});

Deno.test("SEARCH: nesting is bounded", () => {
  const deep = "NOT ".repeat(100) + "SEEN";
  assert.throws(() => key(deep), /nested deeper than 64/);
  const parens = "(".repeat(100) + "SEEN" + ")".repeat(100);
  assert.throws(() => key(parens), /nested deeper than 64/);
});

const errors: [string, RegExp][] = [
  ["a SEARCH", /Missing the search criteria/],
  ["a SEARCH FOO", /Unknown search key FOO/],
  ["a SEARCH OR SEEN", /Missing the second OR criterion/],
  ["a SEARCH NOT", /Missing the criterion to negate/],
  ["a SEARCH (SEEN", /Missing "\)" to close the search criteria list/],
  ["a SEARCH ()", /Empty the search criteria list/],
  ["a SEARCH SINCE 2024-01-01", /Expected a date like 1-Feb-2024, found "2024-01-01"/],
  ["a SEARCH SINCE 30-Feb-2024", /Invalid day 30/],
  ["a SEARCH BEFORE 1-Foo-2024", /Invalid month "Foo"/],
  ["a SEARCH LARGER x", /Expected a size after LARGER, found "x"/],
  ["a SEARCH OLDER 0", /Expected seconds after OLDER, found 0/],
  ["a SEARCH RETURN (FIRST) ALL", /Unknown SEARCH RETURN option FIRST/],
  ["a SEARCH CHARSET", /Missing the charset name/],
  ['a SEARCH MODSEQ "/bogus" all 5', /Invalid MODSEQ entry name "\/bogus"/],
  ['a SEARCH MODSEQ "/flags/\\\\seen" mine 5', /Invalid MODSEQ entry type mine/],
  ["a SEARCH UID 0", /0 is not a valid message number/],
  ["a SEARCH HEADER Subject", /Missing the header value/],
  ["a SEARCH KEYWORD \\Seen", /Expected a keyword, found "\\Seen"/],
  ["a SEARCH SEEN)", /Expected a space, found "\)"/],
];

for (const [line, message] of errors) {
  Deno.test(`SEARCH error: ${line}`, () => {
    assert.throws(() => parseCommand({ segments: [line] }), (e) => {
      assert.ok(e instanceof ImapSyntaxError, String(e));
      assert.equal(e.tag, "a");
      assert.match(e.message, message);
      return true;
    });
  });
}
