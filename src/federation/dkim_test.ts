// Our DKIM against an independent implementation (npm mailauth, a test-only oracle): each side
// verifies what the other signed, in every canonicalization; tampering and misalignment fail.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { dkimSign } from "mailauth/lib/dkim/sign.js";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import {
  DKIM_SELECTOR,
  dkimDnsRecord,
  generateDkimKey,
  signMessage,
  verifyAlignedSignature,
} from "./dkim.ts";
import type { DnsResolver } from "./resolver.ts";

const KEY = generateDkimKey();
const enc = new TextEncoder();
const dns: DnsResolver = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: (name) =>
    Promise.resolve(name === `${DKIM_SELECTOR}._domainkey.a.example` ? [dkimDnsRecord(KEY)] : []),
};

const MESSAGE = [
  "From: Alice <alice@a.example>",
  "To: <bob@b.example>",
  "Subject: [...]",
  "Date: Mon, 23 Nov 2026 07:00:00 +0000",
  "Message-ID: <m1@a.example>",
  "Autocrypt: addr=alice@a.example; keydata=",
  " mQINBGVzAAABEADd  xx",
  "MIME-Version: 1.0",
  "Content-Type: text/plain;  charset=utf-8",
  "",
  "Hello  world \t",
  "second line",
  "",
  "",
].join("\r\n");

Deno.test("our signature verifies with mailauth and with ourselves", async () => {
  const signed = await signMessage(enc.encode(MESSAGE), "a.example", {
    selector: DKIM_SELECTOR,
    privateKeyPem: KEY,
  });
  const r = await dkimVerify(Buffer.from(signed), {
    resolver: (name: string) =>
      dns.txt(name).then((t) => {
        if (!t.length) throw Object.assign(new Error("none"), { code: "ENOTFOUND" });
        return t.map((x) => [x]);
      }),
  } as never);
  assert.equal(r.results[0].status.result, "pass", JSON.stringify(r.results[0].status));
  assert.equal(await verifyAlignedSignature(signed, "a.example", dns), null);
  assert.equal(
    await verifyAlignedSignature(signed, "other.example", dns),
    "No valid DKIM signature found",
  );
});

Deno.test("mailauth's signatures verify with ours, in every canonicalization", async () => {
  for (const c of ["relaxed/simple", "relaxed/relaxed", "simple/simple", "simple/relaxed"]) {
    const r = await dkimSign(Buffer.from(MESSAGE), {
      canonicalization: c,
      algorithm: "rsa-sha256",
      signatureData: [{ signingDomain: "a.example", selector: DKIM_SELECTOR, privateKey: KEY }],
    } as never);
    const signed = enc.encode(r.signatures + MESSAGE);
    assert.equal(await verifyAlignedSignature(signed, "a.example", dns), null, c);
  }
});

Deno.test("tampering, missing signatures and missing keys fail", async () => {
  const signed = new TextDecoder().decode(
    await signMessage(enc.encode(MESSAGE), "a.example", {
      selector: DKIM_SELECTOR,
      privateKeyPem: KEY,
    }),
  );
  const body = signed.replace("Hello  world", "Hello there");
  assert.equal(
    await verifyAlignedSignature(enc.encode(body), "a.example", dns),
    "No valid DKIM signature found",
  );
  const header = signed.replace("Subject: [...]", "Subject: changed");
  assert.equal(
    await verifyAlignedSignature(enc.encode(header), "a.example", dns),
    "No valid DKIM signature found",
  );
  const added = signed.replace("MIME-Version", "From: mallory@a.example\r\nMIME-Version");
  assert.equal(
    await verifyAlignedSignature(enc.encode(added), "a.example", dns),
    "No valid DKIM signature found",
  );
  assert.equal(
    await verifyAlignedSignature(enc.encode(MESSAGE), "a.example", dns),
    "No DKIM signature found",
  );
  const otherKey = await signMessage(enc.encode(MESSAGE), "a.example", {
    selector: "nokey",
    privateKeyPem: KEY,
  });
  assert.equal(
    await verifyAlignedSignature(otherKey, "a.example", dns),
    "No valid DKIM signature found",
  );
  // Received headers added on the way (above the signature) do not matter.
  const relayed = enc.encode("Received: from x by y; Mon, 23 Nov 2026 07:00:00 +0000\r\n" + signed);
  assert.equal(await verifyAlignedSignature(relayed, "a.example", dns), null);
});
