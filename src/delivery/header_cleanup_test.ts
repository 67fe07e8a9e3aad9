import assert from "node:assert/strict";
import { cleanStoredHeaders, cleanSubmittedHeaders } from "./header_cleanup.ts";

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
