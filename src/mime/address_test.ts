import assert from "node:assert/strict";
import {
  type Address,
  flattenAddresses,
  formatAddress,
  type Mailbox,
  parseAddressList,
} from "./address.ts";

const mb = (local: string, domain: string, name?: string): Mailbox =>
  name === undefined
    ? { kind: "mailbox", local, domain }
    : { kind: "mailbox", name, local, domain };

const cases: [string, Address[]][] = [
  ["alice@example.org", [mb("alice", "example.org")]],
  ["<7s28y4bgm@ref.test>", [mb("7s28y4bgm", "ref.test")]],
  ["Alice <alice@example.org>", [mb("alice", "example.org", "Alice")]],
  ['"Doe, John" <john@x.org>, bob@y.org', [mb("john", "x.org", "Doe, John"), mb("bob", "y.org")]],
  ['"quoted \\"name\\"" <a@b>', [mb("a", "b", 'quoted "name"')]],
  ["John Q. Public <jqp@x>", [mb("jqp", "x", "John Q. Public")]],
  ["=?utf-8?q?J=C3=B6rg?= <j@x>", [mb("j", "x", "=?utf-8?q?J=C3=B6rg?=")]],
  ["user@[127.0.0.1]", [mb("user", "[127.0.0.1]")]],
  ["Ip <user@[IPv6:::1]>", [mb("user", "[IPv6:::1]", "Ip")]],
  ['"a b"@example.org', [mb("a b", "example.org")]],
  ["first.last @ sub . example . org", [mb("first.last", "sub.example.org")]],
  ["a@b (Alice) , (comment) c@d", [mb("a", "b", "Alice"), mb("c", "d")]],
  ["(nested (comment)) x@y", [mb("x", "y")]],
  ["<@route1,@route2:user@host>", [{ ...mb("user", "host"), route: "@route1,@route2" }]],
  ['"hidden-recipients": ;', [{ kind: "group", name: "hidden-recipients", members: [] }]],
  ["undisclosed-recipients:;", [{ kind: "group", name: "undisclosed-recipients", members: [] }]],
  [
    "A Group: Ed <c@a.test>, joe@where.test;, after@x",
    [
      {
        kind: "group",
        name: "A Group",
        members: [mb("c", "a.test", "Ed"), mb("joe", "where.test")],
      },
      mb("after", "x"),
    ],
  ],
  ["MAILER-DAEMON@mx.example (Mail Delivery System)", [
    mb("MAILER-DAEMON", "mx.example", "Mail Delivery System"),
  ]],
  ["just-a-name", [mb("just-a-name", "")]],
  ["", []],
  ["<>", []],
  [",,, ;", []],
  ['"unterminated <a@b>', [mb("unterminated <a@b>", "")]],
  ["<unterminated@x", [mb("unterminated", "x")]],
  ["a@b <c@d>", [mb("c", "d", "a@b")]],
  ["Ünïcode <ü@exämple.org>", [mb("ü", "exämple.org", "Ünïcode")]],
];

Deno.test("parseAddressList() parses RFC 5322 address lists", () => {
  for (const [input, expect] of cases) assert.deepEqual(parseAddressList(input), expect, input);
});

Deno.test("parseAddressList() survives garbage", () => {
  const junk = [
    "<<<>>>@@@",
    '"\\',
    "(((",
    "\\",
    "]",
    "[",
    ":::;;;",
    "a@",
    "@b",
    "<@>",
    "\u0000\uffff",
  ];
  for (const s of junk) assert.ok(Array.isArray(parseAddressList(s)), s);
});

Deno.test("flattenAddresses() lists group members in order", () => {
  const list = parseAddressList("a@x, G: b@x, c@x;, d@x");
  assert.deepEqual(flattenAddresses(list).map(formatAddress), ["a@x", "b@x", "c@x", "d@x"]);
});

Deno.test("formatAddress() quotes local parts that need it", () => {
  assert.equal(formatAddress({ kind: "mailbox", local: "a.b+c", domain: "x" }), "a.b+c@x");
  assert.equal(formatAddress({ kind: "mailbox", local: "a b", domain: "x" }), '"a b"@x');
  assert.equal(formatAddress({ kind: "mailbox", local: 'q"', domain: "x" }), '"q\\""@x');
  assert.equal(formatAddress({ kind: "mailbox", local: "a..b", domain: "x" }), '"a..b"@x');
  assert.equal(formatAddress({ kind: "mailbox", local: "ü", domain: "x" }), "ü@x");
  assert.equal(formatAddress({ kind: "mailbox", local: "nodomain", domain: "" }), "nodomain");
});
