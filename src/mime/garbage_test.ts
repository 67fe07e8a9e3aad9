import assert from "node:assert/strict";
import { parseAddressList } from "./address.ts";
import { decodeEncodedWords } from "./encoded_words.ts";
import { rewriteHeaders } from "./headers.ts";
import { parseContentType } from "./params.ts";
import { parseMessage } from "./parse_message.ts";
import { decodeBody } from "./transfer_encoding.ts";
import type { MimePart } from "./types.ts";

// Deterministic PRNG (mulberry32) so a failure reproduces from its seed.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "\r\n",
  "\n",
  "\r",
  " ",
  "\t",
  "--",
  "--a",
  "--a--",
  "--b",
  "--b--",
  ":",
  ";",
  "=",
  '"',
  "(",
  ")",
  "<",
  ">",
  "@",
  ",",
  "[",
  "]",
  "\\",
  "=?utf-8?q?x?=",
  "=?",
  "?=",
  "\u00ff",
  "\u0000",
  "Content-Type: multipart/mixed; boundary=a\r\n",
  'Content-Type: multipart/alternative; boundary="b"\n',
  "Content-Type: message/rfc822\r\n",
  "Content-Type: multipart/digest; boundary=a\r\n",
  "Content-Transfer-Encoding: base64\r\n",
  "Content-Transfer-Encoding: quoted-printable\r\n",
  "Content-Disposition: attachment; filename*0*=utf-8''%C3; filename*1=x\r\n",
  "From: a <b@c>\r\n",
  "Subject: x\r\n",
  "\r\n\r\n",
  "QUJD",
  "=41",
  "=\r\n",
];

function garbage(next: () => number): Uint8Array {
  if (next() < 0.2) {
    const b = new Uint8Array(Math.floor(next() * 400));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(next() * 256);
    return b;
  }
  let s = "";
  const n = Math.floor(next() * 80);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(next() * PIECES.length)];
  return new TextEncoder().encode(s);
}

function checkInvariants(p: MimePart, bytes: Uint8Array, lo: number, hi: number) {
  assert.ok(lo <= p.start && p.start <= p.headerEnd && p.headerEnd === p.bodyStart);
  assert.ok(p.bodyStart <= p.end && p.end <= hi, `part [${p.start}, ${p.end}) outside ${hi}`);
  assert.ok(p.bodyLines >= 0 && Number.isInteger(p.bodyLines));
  assert.ok(p.contentType.type && p.contentType.subtype);
  let at = p.bodyStart;
  for (const c of p.children) {
    checkInvariants(c, bytes, at, p.end);
    at = c.end;
  }
  if (p.message) checkInvariants(p.message, bytes, p.bodyStart, p.end);
  decodeBody(p, bytes);
}

Deno.test("MIME parsers never throw on garbage and keep offsets consistent", () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const bytes = garbage(rng(seed));
    const text = new TextDecoder().decode(bytes);
    try {
      checkInvariants(parseMessage(bytes), bytes, 0, bytes.length);
      assert.deepEqual(rewriteHeaders(bytes, (f) => f), bytes, "identity rewrite is byte-exact");
      parseAddressList(text);
      decodeEncodedWords(text);
      parseContentType(text);
    } catch (e) {
      throw new Error(`seed ${seed}: ${JSON.stringify(text)}`, { cause: e });
    }
  }
});
