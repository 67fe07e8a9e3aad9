import assert from "node:assert/strict";
import { binaryPartsToBase64 } from "./binary_append.ts";
import { decodeBody, parseMessage } from "../mime/mod.ts";

const enc = new TextEncoder();

Deno.test("binary parts are stored as base64 and decode to the same bytes", () => {
  const body = Uint8Array.from([0x20, 0x00, 0x2d, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]);
  const head = enc.encode(
    "From: a@b.example\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n",
  );
  const msg = new Uint8Array(head.length + body.length);
  msg.set(head);
  msg.set(body, head.length);
  const out = binaryPartsToBase64(msg);
  const text = new TextDecoder().decode(out);
  assert.match(text, /^Content-Transfer-Encoding: base64\r\n/m);
  assert.ok(!out.includes(0), "no NUL left");
  const root = parseMessage(out);
  assert.deepEqual(decodeBody(root, out), body);
  const plain = enc.encode("From: a@b.example\r\n\r\nhello\r\n");
  assert.equal(binaryPartsToBase64(plain), plain, "untouched without binary parts");
});
