import assert from "node:assert/strict";
import {
  headerValue,
  headerValues,
  parseHeaderBlock,
  rewriteHeaders,
  splitHeader,
} from "./headers.ts";
import type { HeaderField } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("parseHeaderBlock() unfolds values and keeps exact field offsets", () => {
  const text = "Subject: a\r\n  folded\r\n\tline \r\nX-Empty:\r\nName : v\r\nnot a field\r\n" +
    "From: =?utf-8?q?J=C3=B6rg?= <j@x>\r\n\r\nbody\r\n";
  const bytes = enc.encode(text);
  const block = parseHeaderBlock(bytes);
  assert.deepEqual(block.fields.map((f) => [f.name, f.value]), [
    ["Subject", "a  folded\tline"],
    ["X-Empty", ""],
    ["Name", "v"],
    ["", "not a field"],
    ["From", "=?utf-8?q?J=C3=B6rg?= <j@x>"],
  ]);
  assert.equal(
    dec.decode(bytes.subarray(block.fields[0].start, block.fields[0].end)),
    "Subject: a\r\n  folded\r\n\tline \r\n",
  );
  assert.equal(block.headerEnd, text.indexOf("body"));
  assert.equal(block.complete, true);
});

Deno.test("parseHeaderBlock() decodes UTF-8 header bytes and falls back to Latin-1", () => {
  const utf8 = parseHeaderBlock(enc.encode("Subject: Grüße\n\n"));
  assert.equal(utf8.fields[0].value, "Grüße");
  const latin = parseHeaderBlock(new Uint8Array([...enc.encode("Subject: Gr"), 0xfc, 0x0a, 0x0a]));
  assert.equal(latin.fields[0].value, "Grü");
});

Deno.test("splitHeader() finds the end of the header block", () => {
  const table: [string, number, boolean][] = [
    ["A: b\r\n\r\nbody", 8, true],
    ["A: b\n\nbody", 6, true],
    ["\r\nbody", 2, true],
    ["A: b\r\n", 6, false],
    ["", 0, false],
  ];
  for (const [input, headerEnd, complete] of table) {
    assert.deepEqual(splitHeader(enc.encode(input)), { headerEnd, complete }, input);
  }
});

Deno.test("headerValue() and headerValues() match names case-insensitively", () => {
  const { fields } = parseHeaderBlock(enc.encode("Received: 1\r\nreceived: 2\r\nTo: x\r\n\r\n"));
  assert.equal(headerValue(fields, "RECEIVED"), "1");
  assert.deepEqual(headerValues(fields, "Received"), ["1", "2"]);
  assert.equal(headerValue(fields, "Cc"), undefined);
  assert.deepEqual(headerValues(fields, "Cc"), []);
});

const STRIP = new Set(["received", "x-mailer", "user-agent", "x-originating-ip"]);
const cleanup = (fields: readonly HeaderField[]) =>
  fields.filter((f) => !STRIP.has(f.name.toLowerCase())).map((f) =>
    f.name.toLowerCase() === "subject" ? { name: "Subject", value: "[...]" } : f
  );

Deno.test("rewriteHeaders() keeps untouched fields and the body byte-exact", async (t) => {
  const table: { name: string; input: string; output: string }[] = [
    {
      name: "CRLF message with folded fields",
      input: "Received: from x\r\n\tby y\r\nFrom: <a@b>\r\nSubject: secret\r\n  stuff\r\n" +
        'To: "hidden-recipients": ;\r\nX-Mailer: m\r\nContent-Type: multipart/mixed;\r\n' +
        ' boundary="b"\r\n\r\nSubject: not a header\r\nReceived: in body\r\n',
      output: 'From: <a@b>\r\nSubject: [...]\r\nTo: "hidden-recipients": ;\r\n' +
        'Content-Type: multipart/mixed;\r\n boundary="b"\r\n\r\nSubject: not a header\r\nReceived: in body\r\n',
    },
    {
      name: "LF message",
      input: "User-Agent: u\nSubject: s\nFrom: a@b\n\nbody",
      output: "Subject: [...]\nFrom: a@b\n\nbody",
    },
    {
      name: "header only, no final break",
      input: "From: a@b\nSubject: s",
      output: "From: a@b\nSubject: [...]\n",
    },
    { name: "nothing to change", input: "From: a@b\r\n\r\n", output: "From: a@b\r\n\r\n" },
  ];
  for (const c of table) {
    await t.step(c.name, () => {
      assert.equal(dec.decode(rewriteHeaders(enc.encode(c.input), cleanup)), c.output);
    });
  }
});

Deno.test("rewriteHeaders() appends fields and refuses header injection", () => {
  const out = rewriteHeaders(
    enc.encode("From: a@b\r\n\r\nx"),
    (
      f,
    ) => [...f, { name: "X-Test", value: "one\r\nBcc: evil@x" }, {
      name: "X-Fold",
      value: "a\r\n b",
    }],
  );
  assert.equal(dec.decode(out), "From: a@b\r\nX-Test: one Bcc: evil@x\r\nX-Fold: a\r\n b\r\n\r\nx");
});

Deno.test("rewriteHeaders() leaves a large body untouched", () => {
  const body = new Uint8Array(5 * 1024 * 1024).fill(0x41);
  const head = enc.encode("Received: x\r\nFrom: a@b\r\n\r\n");
  const input = new Uint8Array(head.length + body.length);
  input.set(head);
  input.set(body, head.length);
  const out = rewriteHeaders(input, cleanup);
  assert.equal(out.length, input.length - "Received: x\r\n".length);
  assert.deepEqual(out.subarray(out.length - body.length), body);
});

Deno.test("parseHeaderBlock: long blocks searched as text read as the bytes do", () => {
  // A block of 512 bytes or more is searched as text when every byte maps to one character;
  // a valid multi-byte character anywhere turns that off. The same fields must come out.
  const pieces = [
    "From: a <b@c>\r\n",
    "Subject: plain\r\n",
    " folded\r\n",
    "\tfolded\r\n",
    "X-Bare: cr\rhere\r\n",
    "X-LF: only\n",
    "no colon line\r\n",
    "Name : spaced\r\n",
    "X-High: \x80\xff lone bytes\r\n",
    ": empty name\r\n",
    "Autocrypt: addr=a@b; keydata=" + "QUJD".repeat(40) + "\r\n",
  ];
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let round = 0; round < 300; round++) {
    let head = round % 5 === 0 ? " leading blank\r\n" : "";
    while (head.length < 700) head += pieces[Math.floor(next() * pieces.length)];
    const bytesOf = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    const ascii = bytesOf(head + "X-Z: e\r\n\r\nbody");
    const multi = new Uint8Array([
      ...bytesOf(head),
      ...new TextEncoder().encode("X-Z: é\r\n\r\nbody"),
    ]);
    const a = parseHeaderBlock(ascii, 0);
    const b = parseHeaderBlock(multi, 0);
    assert.deepEqual(a.fields.slice(0, -1), b.fields.slice(0, -1), `round ${round}`);
    assert.equal(a.fields.length, b.fields.length);
    assert.equal(a.complete, true);
  }
});
