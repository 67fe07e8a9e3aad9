import assert from "node:assert/strict";
import { parseContentDisposition, parseContentType, parseParams } from "./params.ts";

Deno.test("parseContentType() parses type, subtype and parameters", () => {
  const table: [string, ReturnType<typeof parseContentType>][] = [
    ["text/plain", { type: "text", subtype: "plain", params: {} }],
    [
      'Multipart/Encrypted; protocol="application/pgp-encrypted";\r\n\tboundary="a;b"',
      {
        type: "multipart",
        subtype: "encrypted",
        params: { protocol: "application/pgp-encrypted", boundary: "a;b" },
      },
    ],
    [" text / html ; charset = UTF-8 ", {
      type: "text",
      subtype: "html",
      params: { charset: "UTF-8" },
    }],
    ['(c) text/plain (c); a=1 (note); b="q\\"x"', {
      type: "text",
      subtype: "plain",
      params: { a: "1", b: 'q"x' },
    }],
    ["application/x; name=my file.txt", {
      type: "application",
      subtype: "x",
      params: { name: "my file.txt" },
    }],
    ["text/plain; A=1; a=2; junk; =x; c", { type: "text", subtype: "plain", params: { a: "1" } }],
    ["text", undefined],
    ["/plain", undefined],
    ["", undefined],
  ];
  for (const [input, expect] of table) assert.deepEqual(parseContentType(input), expect, input);
});

Deno.test("parseParams() joins RFC 2231 continuations and decodes charsets", () => {
  const table: [string, Record<string, string>][] = [
    ["; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A", { title: "This is ***fun***" }],
    ['; name*0="a"; name*2="c"; name*1="b"', { name: "abc" }],
    ["; name*0*=iso-8859-1''%E9; name*1=\"%41\"", { name: "é%41" }],
    ["; name=\"plain\"; name*=utf-8''%C3%BC", { name: "ü" }],
    ["; name*=''%F0%9F%98%80", { name: "😀" }],
    ["; name*=bogus-charset''%41", { name: "A" }],
    ["; __proto__=x; ok=y", { ok: "y" }],
  ];
  for (const [input, expect] of table) assert.deepEqual(parseParams(input), expect, input);
});

Deno.test("parseContentDisposition() lowercases the disposition", () => {
  assert.deepEqual(parseContentDisposition('Attachment; filename="a.txt"'), {
    value: "attachment",
    params: { filename: "a.txt" },
  });
  assert.deepEqual(parseContentDisposition("inline"), { value: "inline", params: {} });
  assert.equal(parseContentDisposition("; filename=x"), undefined);
});
