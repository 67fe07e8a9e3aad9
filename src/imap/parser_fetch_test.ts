import assert from "node:assert/strict";
import { ImapSyntaxError, parseCommand } from "./parser.ts";
import type { FetchItem } from "./types.ts";

function fetch(line: string) {
  const cmd = parseCommand({ segments: [line] });
  assert.equal(cmd.name, "FETCH");
  return cmd;
}

const items = (args: string) => fetch(`a FETCH 1 ${args}`).items;

const FLAGS = { kind: "FLAGS" } as const;
const INTERNALDATE = { kind: "INTERNALDATE" } as const;
const SIZE = { kind: "RFC822.SIZE" } as const;
const ENVELOPE = { kind: "ENVELOPE" } as const;

const cases: [string, FetchItem[]][] = [
  ["ALL", [FLAGS, INTERNALDATE, SIZE, ENVELOPE]],
  ["fast", [FLAGS, INTERNALDATE, SIZE]],
  ["FULL", [FLAGS, INTERNALDATE, SIZE, ENVELOPE, { kind: "BODY" }]],
  ["UID", [{ kind: "UID" }]],
  [
    "(flags uid ENVELOPE BODYSTRUCTURE BODY MODSEQ RFC822.SIZE INTERNALDATE)",
    [
      FLAGS,
      { kind: "UID" },
      ENVELOPE,
      { kind: "BODYSTRUCTURE" },
      { kind: "BODY" },
      { kind: "MODSEQ" },
      SIZE,
      INTERNALDATE,
    ],
  ],
  ["(RFC822 RFC822.HEADER RFC822.TEXT)", [
    { kind: "RFC822" },
    { kind: "RFC822.HEADER" },
    { kind: "RFC822.TEXT" },
  ]],
  ["BODY[]", [{
    kind: "BODY[]",
    peek: false,
    section: { part: [], specifier: "" },
    label: "BODY[]",
  }]],
  ["body.peek[header.fields (From To)]<0.100>", [{
    kind: "BODY[]",
    peek: true,
    section: { part: [], specifier: "HEADER.FIELDS", fields: ["FROM", "TO"] },
    partial: { offset: 0, length: 100 },
    label: "BODY[HEADER.FIELDS (FROM TO)]<0>",
  }]],
  ["BODY[1.2.HEADER.FIELDS.NOT (Received)]", [{
    kind: "BODY[]",
    peek: false,
    section: { part: [1, 2], specifier: "HEADER.FIELDS.NOT", fields: ["RECEIVED"] },
    label: "BODY[1.2.HEADER.FIELDS.NOT (RECEIVED)]",
  }]],
  ["BODY[2.MIME]<500.20>", [{
    kind: "BODY[]",
    peek: false,
    section: { part: [2], specifier: "MIME" },
    partial: { offset: 500, length: 20 },
    label: "BODY[2.MIME]<500>",
  }]],
  ["(BODY.PEEK[text] BODY[3])", [
    {
      kind: "BODY[]",
      peek: true,
      section: { part: [], specifier: "TEXT" },
      label: "BODY[TEXT]",
    },
    { kind: "BODY[]", peek: false, section: { part: [3], specifier: "" }, label: "BODY[3]" },
  ]],
  ["BINARY[1.2]", [{ kind: "BINARY", peek: false, part: [1, 2], label: "BINARY[1.2]" }]],
  ["BINARY.PEEK[]<10.5>", [{
    kind: "BINARY",
    peek: true,
    part: [],
    partial: { offset: 10, length: 5 },
    label: "BINARY[]<10>",
  }]],
  ["(BINARY.SIZE[1] UID)", [
    { kind: "BINARY.SIZE", part: [1], label: "BINARY.SIZE[1]" },
    { kind: "UID" },
  ]],
];

for (const [args, want] of cases) {
  Deno.test(`FETCH items: ${args}`, () => assert.deepEqual(items(args), want));
}

Deno.test("FETCH: quoted field names are echoed in a parseable label", () => {
  const [item] = items('BODY.PEEK[HEADER.FIELDS ("x-a]b" date)]');
  assert.equal(item.kind, "BODY[]");
  if (item.kind === "BODY[]") assert.equal(item.label, 'BODY[HEADER.FIELDS ("X-A]B" DATE)]');
});

Deno.test("FETCH: field names may be literals", () => {
  const cmd = parseCommand({
    segments: ["a FETCH 1 BODY[HEADER.FIELDS (", new TextEncoder().encode("Subject"), ")]"],
  });
  assert.ok(cmd.name === "FETCH" && cmd.items[0].kind === "BODY[]");
  assert.equal(cmd.items[0].label, "BODY[HEADER.FIELDS (SUBJECT)]");
});

Deno.test("FETCH: set, UID and modifiers", () => {
  assert.deepEqual(fetch("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)"), {
    tag: "a",
    name: "FETCH",
    uid: true,
    set: { ranges: [{ from: 1, to: null }] },
    items: [{ kind: "FLAGS" }],
    changedSince: 12345,
    vanished: true,
  });
  assert.deepEqual(fetch("a FETCH $ FAST (changedsince 0)"), {
    tag: "a",
    name: "FETCH",
    uid: false,
    set: { saved: true },
    items: [FLAGS, INTERNALDATE, SIZE],
    changedSince: 0,
    vanished: false,
  });
});

const errors: [string, RegExp][] = [
  ["a FETCH 1", /Missing the FETCH items/],
  ["a FETCH 1 ()", /Empty the FETCH item list/],
  ["a FETCH 1 (FLAGS", /Missing "\)" to close the FETCH item list/],
  ["a FETCH 1 (ALL)", /FETCH macro ALL cannot be used inside a list/],
  ["a FETCH 1 BOGUS", /Unknown FETCH item BOGUS/],
  ["a FETCH 1 BODY[FOO]", /Unknown section specifier "FOO"/],
  ["a FETCH 1 BODY[MIME]", /MIME needs a part number/],
  ["a FETCH 1 BODY[0]", /Expected a body part number, found 0/],
  ["a FETCH 1 BODY[1", /Expected "\]" to close the BODY section/],
  ["a FETCH 1 BODY[]<0.0>", /Partial length must not be 0/],
  ["a FETCH 1 BODY[]<5>", /Expected "\." between partial offset and length/],
  ["a FETCH 1 BODY.PEEK", /Expected "\[" after BODY.PEEK/],
  ["a FETCH 1 BODY[HEADER.FIELDS ()]", /Empty the HEADER.FIELDS list/],
  ["a FETCH 1 BODY[HEADER.FIELDS (a:b)]", /Invalid header field name "a:b"/],
  ["a FETCH 1 BINARY[TEXT]", /Expected "\]" to close the BINARY section/],
  ["a FETCH 1 BINARY.SIZE[1]<0.1>", /found "<0.1>"/],
  ["a FETCH 1 FLAGS (CHANGEDSINCE)", /Missing the CHANGEDSINCE mod-sequence/],
  ["a FETCH 1 FLAGS (FOO)", /Unknown FETCH modifier FOO/],
  ["a FETCH 1 FLAGS (CHANGEDSINCE 5 VANISHED)", /VANISHED is only allowed with UID FETCH/],
  ["a UID FETCH 1 FLAGS (VANISHED)", /VANISHED requires CHANGEDSINCE/],
  ["a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", /CHANGEDSINCE given twice/],
  ["a FETCH * ", /Expected a FETCH item, found end of command/],
];

for (const [line, message] of errors) {
  Deno.test(`FETCH error: ${line}`, () => {
    assert.throws(() => parseCommand({ segments: [line] }), (e) => {
      assert.ok(e instanceof ImapSyntaxError, String(e));
      assert.equal(e.tag, "a");
      assert.match(e.message, message);
      return true;
    });
  });
}
