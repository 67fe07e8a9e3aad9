import assert from "node:assert/strict";
import {
  cleanStoredHeaders,
  cleanSubmittedForStorage,
  cleanSubmittedHeaders,
} from "./header_cleanup.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const MESSAGE = "Received: from [203.0.113.9] by relay\r\n" +
  " (folded); Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
  "From: <a@example.org>\r\n" +
  "X-Mailer: Mailer 1.0\r\n" +
  "User-Agent: Agent\r\n" +
  "X-Originating-IP: 203.0.113.9\r\n" +
  "DKIM-Signature: v=1; d=example.org\r\n" +
  "Authentication-Results: example.org; dkim=pass\r\n" +
  "Subject: Unencrypted subject\r\n" +
  "\r\n" +
  "Received: in the body stays\r\n";

Deno.test("cleanSubmittedHeaders() strips client traces and hides the subject", () => {
  const out = dec.decode(cleanSubmittedHeaders(enc.encode(MESSAGE)));
  assert.equal(
    out,
    "From: <a@example.org>\r\n" +
      "DKIM-Signature: v=1; d=example.org\r\n" +
      "Authentication-Results: example.org; dkim=pass\r\n" +
      "Subject: [...]\r\n" +
      "\r\n" +
      "Received: in the body stays\r\n",
  );
  assert.ok(!out.includes("203.0.113.9"));
});

Deno.test("cleanStoredHeaders() strips Received, DKIM-Signature and Authentication-Results", () => {
  const out = dec.decode(cleanStoredHeaders(enc.encode(MESSAGE)));
  assert.ok(!/^received:/im.test(out.split("\r\n\r\n")[0]));
  assert.ok(!/dkim-signature|authentication-results/i.test(out));
  assert.match(out, /Subject: Unencrypted subject\r\n\r\nReceived: in the body stays\r\n$/);
});

Deno.test("cleanSubmittedForStorage() gives the bytes of both cleanups one after the other", () => {
  const pieces = [
    "Received: from x\r\n",
    " (folded)\r\n",
    "Subject: hi\r\n",
    "subject: again\n",
    "From: <a@example.org>\r\n",
    "DKIM-Signature: v=1\r\n",
    "\tfolded dkim\r\n",
    "Authentication-Results: x\n",
    "X-Mailer: m\r\n",
    "User-Agent: u\r\n",
    "X-Originating-IP: 1\r\n",
    "no colon\r\n",
    " leading blank\r\n",
    "X-Bare: a\rb\r\n",
    "Name : spaced\r\n",
    "\r\r\n",
    "X-Cut: no line break",
    "Subject: cut",
  ];
  let seed = 5;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let round = 0; round < 2000; round++) {
    let head = "";
    const n = Math.floor(next() * 12);
    for (let i = 0; i < n; i++) head += pieces[Math.floor(next() * pieces.length)];
    // With a blank line and a body, with a blank line only, or cut off (no blank line).
    const tail = ["\r\nbody\r\n", "\r\n", "\n", ""][Math.floor(next() * 4)];
    const bytes = enc.encode(head + tail);
    assert.deepEqual(
      cleanSubmittedForStorage(bytes),
      cleanStoredHeaders(cleanSubmittedHeaders(bytes)),
      JSON.stringify(head + tail),
    );
  }
});
