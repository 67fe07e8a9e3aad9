import assert from "node:assert/strict";
import { parseMessage } from "./parse_message.ts";
import { decodeStructure, encodeStructure, withTopHeader } from "./structure_codec.ts";
import type { MimePart } from "./types.ts";
import { rewriteHeaders } from "./headers.ts";

const enc = new TextEncoder();

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
  " ",
  "--a",
  "--a--",
  "--b",
  "x",
  "\r\n\r\n",
  "Content-Type: multipart/mixed; boundary=a\r\n",
  'Content-Type: multipart/alternative; boundary="b"\n',
  "Content-Type: message/rfc822\r\n",
  "Content-Type: multipart/digest; boundary=a\r\n",
  "Content-Disposition: attachment; filename=x.txt\r\n",
  "From: a <b@c>\r\n",
  "Received: from x\r\n",
  " folded\r\n",
];

function canon(p: MimePart): unknown {
  const o: Record<string, unknown> = {
    ...p,
    rawHeader: p.rawHeader ? [...p.rawHeader].join(",") : undefined,
    children: p.children.map(canon),
    message: p.message ? canon(p.message) : undefined,
  };
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

function randomMessage(seed: number): Uint8Array {
  const r = rng(seed);
  let s = "";
  const n = 1 + Math.floor(r() * 40);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return enc.encode(s);
}

Deno.test("encodeStructure/decodeStructure: the decoded tree is the parsed tree", () => {
  for (let seed = 1; seed <= 2000; seed++) {
    const root = parseMessage(randomMessage(seed));
    const blob = encodeStructure(root);
    assert.deepEqual(canon(decodeStructure(blob)), canon(root), `seed ${seed}`);
  }
});

Deno.test("decodeStructure refuses damaged blobs", () => {
  const blob = encodeStructure(parseMessage(enc.encode("Subject: x\r\n\r\nbody\r\n")));
  assert.throws(() => decodeStructure(blob.subarray(0, blob.length - 1)), RangeError);
  assert.throws(() => decodeStructure(new Uint8Array([1, 2, 3, 4])), RangeError);
  assert.throws(() => decodeStructure(new Uint8Array([...blob, 0])), RangeError);
});

Deno.test("withTopHeader: the tree after a header rewrite is the tree of the rewritten message", () => {
  for (let seed = 1; seed <= 1000; seed++) {
    const bytes = randomMessage(seed);
    const root = parseMessage(bytes);
    const rewritten = rewriteHeaders(
      bytes,
      (fields) => fields.filter((f) => f.name.toLowerCase() !== "received"),
    );
    const head = rewritten.subarray(0, rewritten.length - (bytes.length - root.headerEnd));
    if (root.headerEnd !== root.bodyStart) continue;
    assert.deepEqual(
      canon(withTopHeader(root, head)),
      canon(parseMessage(rewritten)),
      `seed ${seed}`,
    );
  }
});
