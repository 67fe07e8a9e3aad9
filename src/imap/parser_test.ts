import assert from "node:assert/strict";
import { readCommand } from "./command_reader.ts";
import { ImapSyntaxError, parseCommand } from "./parser.ts";
import { BufferConnection } from "./testing_conn.ts";
import type { Command } from "./types.ts";

const enc = new TextEncoder();
const LIMITS = { maxLineBytes: 8192, maxLiteralBytes: 65536, maxAppendLiteralBytes: 1 << 20 };

/** Reads the wire text (CRLF added) through the command reader, then parses it. */
async function parseWire(wire: string): Promise<Command> {
  const raw = await readCommand(new BufferConnection(wire + "\r\n"), LIMITS);
  assert.ok(raw);
  return parseCommand(raw);
}

const all = (set: string) => ({
  ranges: set.split(",").map((r) => {
    const [a, b = a] = r.split(":");
    const n = (x: string) => (x === "*" ? null : Number(x));
    return { from: n(a), to: n(b) };
  }),
});

const LIST_DEFAULTS = { select: [], returnOptions: [] };

const ok: [string, Command][] = [
  ["a CAPABILITY", { tag: "a", name: "CAPABILITY" }],
  ["a noop", { tag: "a", name: "NOOP" }],
  ["a LOGOUT", { tag: "a", name: "LOGOUT" }],
  ["a StartTLS", { tag: "a", name: "STARTTLS" }],
  ["a CHECK", { tag: "a", name: "CHECK" }],
  ["a CLOSE", { tag: "a", name: "CLOSE" }],
  ["a UNSELECT", { tag: "a", name: "UNSELECT" }],
  ["a IDLE", { tag: "a", name: "IDLE" }],
  ["a NAMESPACE", { tag: "a", name: "NAMESPACE" }],
  ["a NOOP ", { tag: "a", name: "NOOP" }],
  ["x]1 NOOP", { tag: "x]1", name: "NOOP" }],
  ['a LOGIN bob@example.org "p a\\"ss"', {
    tag: "a",
    name: "LOGIN",
    user: "bob@example.org",
    password: 'p a"ss',
  }],
  ["a LOGIN {3+}\r\nbob {4+}\r\nsëc", {
    tag: "a",
    name: "LOGIN",
    user: "bob",
    password: "sëc",
  }],
  ["a AUTHENTICATE plain", { tag: "a", name: "AUTHENTICATE", mechanism: "PLAIN" }],
  ["a AUTHENTICATE PLAIN AGJvYgBwdw==", {
    tag: "a",
    name: "AUTHENTICATE",
    mechanism: "PLAIN",
    initial: "AGJvYgBwdw==",
  }],
  ["a AUTHENTICATE PLAIN =", { tag: "a", name: "AUTHENTICATE", mechanism: "PLAIN", initial: "=" }],
  ["a ENABLE condstore QRESYNC", {
    tag: "a",
    name: "ENABLE",
    capabilities: ["CONDSTORE", "QRESYNC"],
  }],
  ["a ID NIL", { tag: "a", name: "ID", params: null }],
  ['a ID ("name" "Delta Chat" "version" NIL)', {
    tag: "a",
    name: "ID",
    params: { name: "Delta Chat", version: null },
  }],
  ["a COMPRESS deflate", { tag: "a", name: "COMPRESS", mechanism: "DEFLATE" }],
  ["a SELECT inbox", { tag: "a", name: "SELECT", mailbox: "INBOX", condstore: false }],
  ["a EXAMINE Entw&APw-rfe", {
    tag: "a",
    name: "EXAMINE",
    mailbox: "Entwürfe",
    condstore: false,
  }],
  ["a SELECT INBOX (CONDSTORE)", { tag: "a", name: "SELECT", mailbox: "INBOX", condstore: true }],
  ["a SELECT INBOX (QRESYNC (67890007 2005071519404500 41,43:211,214:541))", {
    tag: "a",
    name: "SELECT",
    mailbox: "INBOX",
    condstore: false,
    qresync: {
      uidValidity: 67890007,
      modSeq: 2005071519404500,
      knownUids: all("41,43:211,214:541"),
    },
  }],
  ["a SELECT INBOX (QRESYNC (1 2 1:9 (1,5 10,50)))", {
    tag: "a",
    name: "SELECT",
    mailbox: "INBOX",
    condstore: false,
    qresync: {
      uidValidity: 1,
      modSeq: 2,
      knownUids: all("1:9"),
      seqMatch: { seqs: all("1,5"), uids: all("10,50") },
    },
  }],
  ["a SELECT INBOX (QRESYNC (1 2 (1 10)) CONDSTORE)", {
    tag: "a",
    name: "SELECT",
    mailbox: "INBOX",
    condstore: true,
    qresync: { uidValidity: 1, modSeq: 2, seqMatch: { seqs: all("1"), uids: all("10") } },
  }],
  ["a CREATE Archive/2024", { tag: "a", name: "CREATE", mailbox: "Archive/2024" }],
  ['a CREATE "My Drafts" (USE (\\drafts \\Sent))', {
    tag: "a",
    name: "CREATE",
    mailbox: "My Drafts",
    specialUse: ["\\Drafts", "\\Sent"],
  }],
  ["a DELETE &Jjo-", { tag: "a", name: "DELETE", mailbox: "☺" }],
  ["a SUBSCRIBE Sent", { tag: "a", name: "SUBSCRIBE", mailbox: "Sent" }],
  ["a UNSUBSCRIBE Sent", { tag: "a", name: "UNSUBSCRIBE", mailbox: "Sent" }],
  ['a RENAME Old "New &- Name"', { tag: "a", name: "RENAME", from: "Old", to: "New & Name" }],
  ['a LIST "" *', { tag: "a", name: "LIST", reference: "", patterns: ["*"], ...LIST_DEFAULTS }],
  ['a LIST "" ""', { tag: "a", name: "LIST", reference: "", patterns: [""], ...LIST_DEFAULTS }],
  ["a LIST ~/ %/Entw&APw-*]", {
    tag: "a",
    name: "LIST",
    reference: "~/",
    patterns: ["%/Entwü*]"],
    ...LIST_DEFAULTS,
  }],
  [
    'a LIST (subscribed Special-Use) "" (INBOX "Sent*") RETURN (CHILDREN STATUS (MESSAGES unseen))',
    {
      tag: "a",
      name: "LIST",
      reference: "",
      patterns: ["INBOX", "Sent*"],
      select: ["SUBSCRIBED", "SPECIAL-USE"],
      returnOptions: ["CHILDREN", "STATUS"],
      returnStatus: ["MESSAGES", "UNSEEN"],
    },
  ],
  ['a LIST "" % RETURN ()', {
    tag: "a",
    name: "LIST",
    reference: "",
    patterns: ["%"],
    ...LIST_DEFAULTS,
  }],
  ['a LSUB "" inbox', {
    tag: "a",
    name: "LSUB",
    reference: "",
    patterns: ["INBOX"],
    ...LIST_DEFAULTS,
  }],
  ["a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN HIGHESTMODSEQ SIZE DELETED RECENT)", {
    tag: "a",
    name: "STATUS",
    mailbox: "INBOX",
    items: [
      "MESSAGES",
      "UIDNEXT",
      "UIDVALIDITY",
      "UNSEEN",
      "HIGHESTMODSEQ",
      "SIZE",
      "DELETED",
      "RECENT",
    ],
  }],
  ["a APPEND INBOX {5+}\r\nhello", {
    tag: "a",
    name: "APPEND",
    mailbox: "INBOX",
    flags: [],
    message: enc.encode("hello"),
  }],
  ['a APPEND Sent (\\seen $Forwarded) " 7-Feb-1994 21:52:25 -0800" {3}\r\nabc', {
    tag: "a",
    name: "APPEND",
    mailbox: "Sent",
    flags: ["\\Seen", "$Forwarded"],
    date: Date.UTC(1994, 1, 8, 5, 52, 25),
    message: enc.encode("abc"),
  }],
  ['a APPEND INBOX "17-Jul-1996 02:44:25 +0200" {1+}\r\nx', {
    tag: "a",
    name: "APPEND",
    mailbox: "INBOX",
    flags: [],
    date: Date.UTC(1996, 6, 17, 0, 44, 25),
    message: enc.encode("x"),
  }],
  ["a APPEND INBOX () UTF8 (~{3+}\r\nab\0)", {
    tag: "a",
    name: "APPEND",
    mailbox: "INBOX",
    flags: [],
    message: enc.encode("ab\0"),
  }],
  ["a EXPUNGE", { tag: "a", name: "EXPUNGE" }],
  ["a UID EXPUNGE 3:5,9", { tag: "a", name: "UID EXPUNGE", set: all("3:5,9") }],
  ["a COPY 1:* Trash", { tag: "a", name: "COPY", uid: false, set: all("1:*"), mailbox: "Trash" }],
  ["a uid copy 7 inbox", { tag: "a", name: "COPY", uid: true, set: all("7"), mailbox: "INBOX" }],
  ["a MOVE $ Junk", { tag: "a", name: "MOVE", uid: false, set: { saved: true }, mailbox: "Junk" }],
  ["a UID MOVE 4:2 Junk", { tag: "a", name: "MOVE", uid: true, set: all("4:2"), mailbox: "Junk" }],
  ["a STORE 1 +FLAGS (\\Seen)", {
    tag: "a",
    name: "STORE",
    uid: false,
    set: all("1"),
    mode: "add",
    silent: false,
    flags: ["\\Seen"],
  }],
  ["a UID STORE 1:* -flags.silent \\Deleted $Junk", {
    tag: "a",
    name: "STORE",
    uid: true,
    set: all("1:*"),
    mode: "remove",
    silent: true,
    flags: ["\\Deleted", "$Junk"],
  }],
  ["a STORE 2 (UNCHANGEDSINCE 12345) FLAGS.SILENT ()", {
    tag: "a",
    name: "STORE",
    uid: false,
    set: all("2"),
    mode: "replace",
    silent: true,
    flags: [],
    unchangedSince: 12345,
  }],
  ["a STORE 2 (UNCHANGEDSINCE 0) FLAGS \\Seen", {
    tag: "a",
    name: "STORE",
    uid: false,
    set: all("2"),
    mode: "replace",
    silent: false,
    flags: ["\\Seen"],
    unchangedSince: 0,
  }],
  ['a GETQUOTA ""', { tag: "a", name: "GETQUOTA", root: "" }],
  ["a GETQUOTAROOT INBOX", { tag: "a", name: "GETQUOTAROOT", mailbox: "INBOX" }],
  ["a GETMETADATA (MAXSIZE 1024) INBOX /shared/comment", {
    tag: "a",
    name: "GETMETADATA",
    mailbox: "INBOX",
    entries: ["/shared/comment"],
    maxSize: 1024,
    depth: "0",
  }],
  ['a GETMETADATA "" (DEPTH infinity MAXSIZE 10) (/shared/comment /private/x)', {
    tag: "a",
    name: "GETMETADATA",
    mailbox: "",
    entries: ["/shared/comment", "/private/x"],
    maxSize: 10,
    depth: "infinity",
  }],
  ['a GETMETADATA "" /shared/vendor/deltachat/irohrelay', {
    tag: "a",
    name: "GETMETADATA",
    mailbox: "",
    entries: ["/shared/vendor/deltachat/irohrelay"],
    depth: "0",
  }],
  ['a SETMETADATA INBOX (/private/comment "hi" /shared/x NIL /private/y {3+}\r\nabc)', {
    tag: "a",
    name: "SETMETADATA",
    mailbox: "INBOX",
    entries: [
      { entry: "/private/comment", value: "hi" },
      { entry: "/shared/x", value: null },
      { entry: "/private/y", value: "abc" },
    ],
  }],
];

for (const [wire, want] of ok) {
  Deno.test(`parseCommand: ${wire.replace(/\r\n/g, "⏎").slice(0, 70)}`, async () => {
    assert.deepEqual(await parseWire(wire), want);
  });
}

Deno.test("parseCommand covers every command name of the Command union", () => {
  const names = new Set(ok.map(([, c]) => c.name));
  const needed: Command["name"][] = [
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "IDLE",
    "NAMESPACE",
    "LOGIN",
    "AUTHENTICATE",
    "ENABLE",
    "ID",
    "COMPRESS",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "RENAME",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "EXPUNGE",
    "UID EXPUNGE",
    "COPY",
    "MOVE",
    "STORE",
    "GETQUOTA",
    "GETQUOTAROOT",
    "GETMETADATA",
    "SETMETADATA",
    // FETCH and SEARCH: parser_fetch_test.ts, parser_search_test.ts.
  ];
  for (const n of needed) assert.ok(names.has(n), n);
});

const errors: [string, string | null, RegExp][] = [
  ["(x NOOP", null, /Invalid tag/],
  ["+a NOOP", null, /Invalid tag/],
  ["a", "a", /Missing command name/],
  ["a FOO", "a", /^Unknown command FOO$/],
  ["a UID LIST", "a", /^Unknown command UID LIST$/],
  ["a NOOP x", "a", /Unexpected "x" after the command's arguments/],
  ["a  NOOP", "a", /Expected one space before the command name, found " "/],
  ["a LOGIN bob", "a", /Missing the password/],
  ['a LOGIN bob "unterminated', "a", /Unterminated quoted string/],
  ['a LOGIN bob "bad\\escape"', "a", /Invalid escape/],
  ["a SELECT Entwürfe", "a", /modified UTF-7/],
  ['a LIST "" Entwü*', "a", /a mailbox pattern must be 7-bit modified UTF-7/],
  ['a LOGIN "a\rb" x', "a", /Control character in quoted string/],
  ["a SELECT INBOX (FOO)", "a", /Unknown SELECT parameter FOO/],
  ["a SELECT INBOX (CONDSTORE", "a", /Missing "\)"/],
  ["a STATUS INBOX (MESSAGES BOGUS)", "a", /Unknown STATUS item BOGUS/],
  ["a STATUS INBOX ()", "a", /Empty the STATUS item list/],
  ["a APPEND INBOX (\\Seen)", "a", /Missing the message literal/],
  ['a APPEND INBOX "32-Jan-2024 00:00:00 +0000" {1+}\r\nx', "a", /Invalid day 32/],
  ['a APPEND INBOX "1-Jan-2024 25:00:00 +0000" {1+}\r\nx', "a", /Invalid time/],
  ['a APPEND INBOX "1-Foo-2024 00:00:00 +0000" {1+}\r\nx', "a", /Invalid month "Foo"/],
  ['a APPEND INBOX "yesterday" {1+}\r\nx', "a", /Invalid date-time "yesterday"/],
  ['a APPEND INBOX "hello"', "a", /Invalid date-time/],
  ["a APPEND INBOX (\\Recent) {1+}\r\nx", "a", /\\Recent flag cannot be set/],
  ["a STORE 1 FLAGS (\\Bogus)", "a", /Unknown system flag \\Bogus/],
  ["a STORE 1 XFLAGS (\\Seen)", "a", /Expected FLAGS, \+FLAGS or -FLAGS, found XFLAGS/],
  ["a STORE 0 FLAGS (\\Seen)", "a", /0 is not a valid message number/],
  ["a STORE 1 (UNCHANGEDSINCE x) FLAGS ()", "a", /Expected a mod-sequence after UNCHANGEDSINCE/],
  ["a COPY 1:3", "a", /Missing the destination mailbox/],
  ["a COPY x Trash", "a", /Expected a message set, found "x"/],
  ["a UID EXPUNGE", "a", /Missing the UID set/],
  ["a GETMETADATA INBOX (DEPTH 2) /shared/x", "a", /Invalid DEPTH 2/],
  ["a GETMETADATA INBOX comment", "a", /Invalid metadata entry name "comment"/],
  ["a SETMETADATA INBOX (/private/x)", "a", /Missing the value of \/private\/x/],
  ["a CREATE x (USE (Drafts))", "a", /Expected a special-use attribute/],
  ["a ENABLE", "a", /Missing a capability to enable/],
  ['a ID ("name")', "a", /Missing the value of ID field "name"/],
  ['a LIST "" * RETURNS ()', "a", /Expected RETURN, found RETURNS/],
  ["a AUTHENTICATE PLAIN !!", "a", /Expected a base64 initial response/],
  ["a LOGIN {3+}\r\nbob", "a", /Missing the password/],
];

for (const [wire, tag, message] of errors) {
  Deno.test(`parseCommand error: ${JSON.stringify(wire).slice(0, 60)}`, async () => {
    await assert.rejects(parseWire(wire), (e) => {
      assert.ok(e instanceof ImapSyntaxError, String(e));
      assert.equal(e.tag, tag);
      assert.match(e.message, message);
      return true;
    });
  });
}

Deno.test("parseCommand: empty line and oversized numbers", () => {
  assert.throws(() => parseCommand({ segments: [""] }), (e) => {
    assert.ok(e instanceof ImapSyntaxError);
    assert.equal(e.tag, null);
    assert.equal(e.message, "Empty command line");
    return true;
  });
  // mod-sequences beyond 2^53 cannot be held exactly; tern never hands them out.
  assert.throws(
    () => parseCommand({ segments: ["a SELECT INBOX (QRESYNC (1 20050715194045000))"] }),
    /Number 20050715194045000 is too large/,
  );
});

Deno.test("parseCommand: literal bytes are decoded as UTF-8 strings", () => {
  const cmd = parseCommand({
    segments: ["a LOGIN ", enc.encode("jürgen"), " ", enc.encode("pw"), ""],
  });
  assert.deepEqual(cmd, { tag: "a", name: "LOGIN", user: "jürgen", password: "pw" });
  assert.throws(
    () => parseCommand({ segments: ["a LOGIN ", new Uint8Array([0xff]), " x"] }),
    /String literal is not valid utf-8/,
  );
  assert.throws(
    () =>
      parseCommand({
        segments: ["a SETMETADATA INBOX (/private/x ", new Uint8Array([0xff, 0xfe]), ")"],
      }),
    /The value of \/private\/x is not UTF-8 text/,
  );
});

Deno.test("parseCommand keeps a name that is not modified UTF-7 as written (it then does not exist)", async () => {
  for (const [wire, name] of [["a SELECT &Jjo", "&Jjo"], ['a SELECT "Entwürfe"', "Entwürfe"]]) {
    const cmd = await parseWire(wire);
    assert.equal(cmd.name, "SELECT");
    assert.equal((cmd as { mailbox: string }).mailbox, name);
  }
});

// Dovecot reads runs of spaces between arguments and spaces after "(" and before ")" as one
// separator (Delta Chat and the reference relay's tests send `(/private/devicetoken "1" )`);
// between the tag, UID and the command name it wants exactly one space.
const lenient: [string, string][] = [
  [
    'a SETMETADATA INBOX (/private/devicetoken "1111" )',
    'a SETMETADATA INBOX (/private/devicetoken "1111")',
  ],
  [
    'a SETMETADATA INBOX ( /private/devicetoken "1" )',
    'a SETMETADATA INBOX (/private/devicetoken "1")',
  ],
  ["a SELECT  INBOX", "a SELECT INBOX"],
  ["a FETCH 1 ( FLAGS)", "a FETCH 1 (FLAGS)"],
  ["a FETCH 1 (FLAGS  UID )", "a FETCH 1 (FLAGS UID)"],
  ["a STORE 1 +FLAGS (\\Seen )", "a STORE 1 +FLAGS (\\Seen)"],
  ["a STORE 1 +FLAGS \\Seen  \\Draft ", "a STORE 1 +FLAGS \\Seen \\Draft"],
  ['a LIST "" ( "*" )', 'a LIST "" ("*")'],
  ["a STATUS INBOX (MESSAGES )", "a STATUS INBOX (MESSAGES)"],
  ["a SEARCH  ALL", "a SEARCH ALL"],
  ["a SELECT INBOX (QRESYNC (1 2 1:5 ) )", "a SELECT INBOX (QRESYNC (1 2 1:5))"],
  ["a GETMETADATA INBOX ( /private/devicetoken )", "a GETMETADATA INBOX (/private/devicetoken)"],
];

for (const [spaced, strict] of lenient) {
  Deno.test(`parseCommand reads ${JSON.stringify(spaced)} as Dovecot does`, async () => {
    assert.deepEqual(await parseWire(spaced), await parseWire(strict));
  });
}

Deno.test("parseCommand refuses more than one space after the tag or UID", async () => {
  for (const wire of ["a  NOOP", "a UID  FETCH 1 FLAGS"]) {
    await assert.rejects(parseWire(wire), /Expected one space before the command/);
  }
});

Deno.test("readCommand takes a command ended by a bare LF", async () => {
  const raw = await readCommand(
    new BufferConnection('a01 SETMETADATA INBOX (/private/devicetoken "1111" )\n'),
    LIMITS,
  );
  assert.ok(raw);
  assert.deepEqual(parseCommand(raw), {
    tag: "a01",
    name: "SETMETADATA",
    mailbox: "INBOX",
    entries: [{ entry: "/private/devicetoken", value: "1111" }],
  });
});
