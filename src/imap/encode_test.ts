import assert from "node:assert/strict";
import {
  astringOrLiteral,
  decodeMailbox,
  encodeMailbox,
  flagList,
  imapDate,
  literal,
  MailboxNameError,
  mailboxPiece,
  nstring,
  quoted,
  ResponseBuilder,
  stringOrLiteral,
} from "./encode.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (p: string | Uint8Array) => (typeof p === "string" ? p : dec.decode(p));

Deno.test("modified UTF-7 round trips", () => {
  const cases: [string, string][] = [
    ["INBOX", "INBOX"],
    ["☺", "&Jjo-"],
    ["Entwürfe", "Entw&APw-rfe"],
    ["&", "&-"],
    ["A&B", "A&-B"],
    ["~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"],
    ["😀", "&2D3eAA-"],
    ["a\u0000b", "a&AAA-b"],
    ["Ünïcödé & more", "&ANw-n&AO8-c&APY-d&AOk- &- more"],
    ["", ""],
  ];
  for (const [name, wire] of cases) {
    assert.equal(encodeMailbox(name), wire, name);
    assert.equal(decodeMailbox(wire), name, wire);
  }
});

Deno.test("modified UTF-7 rejects non-canonical and broken forms", () => {
  const bad = [
    "Entwürfe", // 8-bit on the wire
    "&Jjo", // unterminated
    "&Jj!-", // bad base64 char
    "&AGE-", // encodes "a"
    "&Jjo-&Jjo-", // adjacent runs should be one
    "&Jjp-", // non-zero padding bits
    "&Jg-", // too short for a UTF-16 unit
    "&2D0-", // lone high surrogate
    "a\tb", // control char
  ];
  for (const wire of bad) assert.throws(() => decodeMailbox(wire), MailboxNameError, wire);
});

Deno.test("quoted", () => {
  assert.equal(quoted("abc"), '"abc"');
  assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quoted(""), '""');
  assert.equal(quoted("a\r\nb"), null);
  assert.equal(quoted("ü"), null);
  assert.equal(quoted("x".repeat(5000)), null);
});

Deno.test("string, astring and nstring pieces", () => {
  const cases: [string | Uint8Array, string][] = [
    ["hello", '"hello"'],
    ["a\r\nb", "{4}\r\na\r\nb"],
    ["ü", "{2}\r\nü"],
    [enc.encode("bytes"), '"bytes"'],
    [new Uint8Array([0, 1]), "{2}\r\n\0\x01"],
  ];
  for (const [value, want] of cases) assert.equal(text(stringOrLiteral(value)), want);
  assert.equal(astringOrLiteral("user@example.org"), "user@example.org");
  assert.equal(astringOrLiteral("Sent]"), "Sent]");
  assert.equal(astringOrLiteral("nil"), '"nil"');
  assert.equal(astringOrLiteral("two words"), '"two words"');
  assert.equal(astringOrLiteral(""), '""');
  assert.equal(nstring(null), "NIL");
  assert.equal(nstring("NIL"), '"NIL"');
  assert.equal(text(nstring("x\ny")), "{3}\r\nx\ny");
  assert.equal(text(literal(new Uint8Array([0]), true)), "~{1}\r\n\0");
});

Deno.test("mailboxPiece", () => {
  assert.equal(mailboxPiece("INBOX"), "INBOX");
  assert.equal(mailboxPiece("Entwürfe"), '"Entw&APw-rfe"');
  assert.equal(mailboxPiece('a"b'), '"a\\"b"');
});

Deno.test("flagList and imapDate", () => {
  assert.equal(flagList(["\\Seen", "$Label"]), "(\\Seen $Label)");
  assert.equal(flagList([]), "()");
  assert.equal(imapDate(Date.UTC(1996, 6, 17, 2, 44, 25)), '"17-Jul-1996 02:44:25 +0000"');
  assert.equal(imapDate(Date.UTC(2024, 1, 1)), '"01-Feb-2024 00:00:00 +0000"');
});

Deno.test("ResponseBuilder joins text and bytes", () => {
  const b = new ResponseBuilder();
  b.push("* 1 FETCH (BODY[] ", literal("hi"), ")").line().line("a1 OK done");
  const want = "* 1 FETCH (BODY[] {2}\r\nhi)\r\na1 OK done\r\n";
  assert.equal(b.length, want.length);
  assert.equal(dec.decode(b.build()), want);
});
