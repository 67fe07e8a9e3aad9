import assert from "node:assert/strict";
import fc from "fast-check";
import { BinaryToBase64 } from "./binary_append.ts";
import { decodeBody, type MimePart, parseMessage } from "../mime/mod.ts";

const enc = new TextEncoder();

/** The conversion done on the whole message at once: the reference for the streaming one. */
function wholeConversion(message: Uint8Array): Uint8Array {
  const leaves: MimePart[] = [];
  const walk = (p: MimePart) => {
    if (p.children.length) p.children.forEach(walk);
    else if (p.message) walk(p.message);
    else leaves.push(p);
  };
  walk(parseMessage(message));
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const p of leaves.filter((l) => l.contentTransferEncoding === "binary")) {
    const cte = p.headers.find((h) => h.name.toLowerCase() === "content-transfer-encoding")!;
    pieces.push(
      message.subarray(at, cte.start),
      enc.encode("Content-Transfer-Encoding: base64\r\n"),
    );
    pieces.push(message.subarray(cte.end, p.bodyStart));
    let bin = "";
    for (const b of message.subarray(p.bodyStart, p.end)) bin += String.fromCharCode(b);
    pieces.push(enc.encode(btoa(bin).replace(/.{1,76}/g, (l) => l + "\r\n")));
    at = p.end;
  }
  pieces.push(message.subarray(at));
  return concat(pieces);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Streams `message` through the converter in pieces cut at `cuts`; returns what came out. */
async function streamed(message: Uint8Array, cuts: number[]) {
  const out: Uint8Array[] = [];
  let discarded = false;
  const target = {
    write: (b: Uint8Array) => {
      out.push(b.slice());
      return Promise.resolve();
    },
    discard: () => {
      discarded = true;
      return Promise.resolve();
    },
  };
  const t = new BinaryToBase64(target);
  let at = 0;
  let maxHeld = 0;
  for (const c of [...cuts, message.length].sort((a, b) => a - b)) {
    const to = Math.min(Math.max(c, at), message.length);
    await t.write(message.subarray(at, to));
    maxHeld = Math.max(maxHeld, t.held);
    at = to;
  }
  await t.end();
  return { bytes: concat(out), failed: t.failed, discarded, maxHeld };
}

Deno.test("binary parts are stored as base64 and decode to the same bytes", async () => {
  const body = Uint8Array.from([0x20, 0x00, 0x2d, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]);
  const head = enc.encode(
    "From: a@b.example\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n",
  );
  const msg = concat([head, body]);
  const { bytes: out, failed } = await streamed(msg, [3, 50, 90]);
  assert.equal(failed, false);
  const text = new TextDecoder().decode(out);
  assert.match(text, /^Content-Transfer-Encoding: base64\r\n/m);
  assert.ok(!out.includes(0), "no NUL left");
  const root = parseMessage(out);
  assert.deepEqual(decodeBody(root, out), body);
  const plain = enc.encode("From: a@b.example\r\n\r\nhello\r\n");
  assert.deepEqual((await streamed(plain, [7])).bytes, plain, "untouched without binary parts");
});

Deno.test("binary to base64: streamed in any pieces, the same as converting the whole message", async () => {
  const part = fc.record({
    binary: fc.boolean(),
    body: fc.uint8Array({ maxLength: 300 }),
    inMessage: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(part, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat({ max: 2000 }), { maxLength: 8 }),
      async (parts, cuts) => {
        const pieces: Uint8Array[] = [
          enc.encode('From: a@b.example\r\nContent-Type: multipart/mixed; boundary="bb"\r\n\r\n'),
        ];
        for (const p of parts) {
          const cte = `Content-Transfer-Encoding: ${p.binary ? "binary" : "8bit"}\r\n`;
          pieces.push(enc.encode("--bb\r\n"));
          if (p.inMessage) {
            pieces.push(enc.encode("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"));
          }
          pieces.push(enc.encode(`Content-Type: application/octet-stream\r\n${cte}\r\n`));
          pieces.push(p.body, enc.encode("\r\n"));
        }
        pieces.push(enc.encode("--bb--\r\n"));
        const message = concat(pieces);
        const got = await streamed(message, cuts);
        assert.equal(got.failed, false);
        assert.deepEqual(got.bytes, wholeConversion(message));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("binary to base64: a large binary part streams through without being held", async () => {
  const body = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 7);
  const message = concat([
    enc.encode("From: a@b.example\r\nContent-Transfer-Encoding: binary\r\n\r\n"),
    body,
  ]);
  const cuts = Array.from({ length: 48 }, (_, i) => (i + 1) * 65536);
  const got = await streamed(message, cuts);
  assert.deepEqual(got.bytes, wholeConversion(message));
  assert.deepEqual(decodeBody(parseMessage(got.bytes), got.bytes), body);
  assert.ok(got.maxHeld <= 2 * 65536, `held ${got.maxHeld} bytes of a 3 MiB binary body`);
});
