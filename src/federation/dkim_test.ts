// Our DKIM against an independent implementation (npm mailauth, a test-only oracle): each side
// verifies what the other signed, in every canonicalization; tampering and misalignment fail.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { dkimSign } from "mailauth/lib/dkim/sign.js";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { generateKeyPairSync } from "node:crypto";
import {
  DKIM_SELECTOR,
  dkimDnsRecord,
  generateDkimKey,
  signMessage,
  verifyAlignedSignature,
  verifyDkimSignatures,
} from "./dkim.ts";
import type { DnsResolver } from "./resolver.ts";

const KEY = generateDkimKey();
const ED = generateKeyPairSync("ed25519");
const ED_PEM = ED.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
const ED_RAW = Buffer.from(ED.publicKey.export({ type: "spki", format: "der" })).subarray(12);
const SHORT = generateKeyPairSync("rsa", { modulusLength: 512 });
const SHORT_PEM = SHORT.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
const SHORT_P = Buffer.from(SHORT.publicKey.export({ type: "spki", format: "der" }))
  .toString("base64");
const RECORDS: Record<string, string[]> = {
  [`${DKIM_SELECTOR}._domainkey.a.example`]: [dkimDnsRecord(KEY)],
  "ed._domainkey.a.example": [`v=DKIM1; k=ed25519; p=${ED_RAW.toString("base64")}`],
  "edasrsa._domainkey.a.example": [`v=DKIM1; k=rsa; p=${ED_RAW.toString("base64")}`],
  "revoked._domainkey.a.example": ["v=DKIM1; k=rsa; p="],
  "short._domainkey.a.example": [`v=DKIM1; k=rsa; p=${SHORT_P}`],
  "strict._domainkey.a.example": [dkimDnsRecord(KEY).replace("t=s", "t=s:y")],
  "loose._domainkey.a.example": [dkimDnsRecord(KEY).replace(";t=s", "")],
  "web._domainkey.a.example": [dkimDnsRecord(KEY).replace("s=email", "s=web")],
};
const enc = new TextEncoder();
const dns: DnsResolver = {
  mx: () => Promise.resolve([]),
  addresses: () => Promise.resolve([]),
  txt: (name) => Promise.resolve(RECORDS[name] ?? []),
};

/** A mailauth signature over MESSAGE (or `message`), prepended. */
async function mailauthSigned(
  data: Record<string, unknown>,
  message = MESSAGE,
  canonicalization = "relaxed/relaxed",
): Promise<Uint8Array> {
  const r = await dkimSign(Buffer.from(message), {
    canonicalization,
    signatureData: [{
      signingDomain: "a.example",
      selector: DKIM_SELECTOR,
      privateKey: KEY,
      algorithm: "rsa-sha256",
      ...data,
    }],
  } as never);
  assert.equal(r.errors?.length ?? 0, 0, JSON.stringify(r.errors));
  return enc.encode(r.signatures + message);
}

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

/** DNS for mailauth, answering from the same records (its resolver takes node:dns's shape). */
function mailauthResolver(name: string) {
  return dns.txt(name).then((t) => {
    if (!t.length) throw Object.assign(new Error("none"), { code: "ENOTFOUND" });
    return t.map((x) => [x]);
  });
}

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

Deno.test("a signature whose l= leaves part of the body unsigned does not pass", async () => {
  // Signed over the first 20 bytes of the canonical body only; text is appended after it.
  const partial = new TextDecoder().decode(await mailauthSigned({ maxBodyLength: 20 }));
  const appended = enc.encode(partial.replace(/\r\n$/, "\r\nAppended by someone else\r\n"));
  const m = await dkimVerify(Buffer.from(appended), { resolver: mailauthResolver } as never);
  assert.equal(m.results[0].status.result, "pass", "mailauth accepts the unsigned tail");
  assert.equal(
    await verifyAlignedSignature(appended, "a.example", dns),
    "No valid DKIM signature found",
  );
  assert.deepEqual(
    (await verifyDkimSignatures(appended, dns)).map((r) => r.reason),
    ["l= does not cover the whole body"],
  );
  // Without anything appended, l= still has to cover the whole body.
  assert.equal(
    await verifyAlignedSignature(enc.encode(partial), "a.example", dns),
    "No valid DKIM signature found",
  );
  // An l= that is exactly the canonical body's length passes.
  const total = ((await dkimVerify(Buffer.from(await mailauthSigned({})), {
    resolver: mailauthResolver,
  } as never))
    .results[0] as unknown as { canonBodyLengthTotal: number }).canonBodyLengthTotal;
  const exact = await mailauthSigned({ maxBodyLength: total });
  assert.equal(await verifyAlignedSignature(exact, "a.example", dns), null);
});

Deno.test("ed25519-sha256 signatures (RFC 8463) verify; tampering and a mismatched key fail", async () => {
  for (const c of ["relaxed/relaxed", "simple/simple", "relaxed/simple"]) {
    const signed = await mailauthSigned(
      { algorithm: "ed25519-sha256", privateKey: ED_PEM, selector: "ed" },
      MESSAGE,
      c,
    );
    assert.equal(await verifyAlignedSignature(signed, "a.example", dns), null, c);
    const changed = new TextDecoder().decode(signed).replace("Subject: [...]", "Subject: [..]");
    assert.equal(
      await verifyAlignedSignature(enc.encode(changed), "a.example", dns),
      "No valid DKIM signature found",
      c,
    );
  }
  const wrongType = new TextDecoder().decode(
    await mailauthSigned({ algorithm: "ed25519-sha256", privateKey: ED_PEM, selector: "edasrsa" }),
  );
  assert.deepEqual(
    (await verifyDkimSignatures(enc.encode(wrongType), dns)).map((r) => r.reason),
    ["key type rsa does not match ed25519-sha256"],
  );
});

Deno.test("revoked, short, foreign-service and strict-subdomain keys, expiry and bad tags fail", async () => {
  const reasons = async (m: Uint8Array, now?: number) =>
    (await verifyDkimSignatures(m, dns, now)).map((r) => r.reason);
  assert.deepEqual(await reasons(await mailauthSigned({ selector: "revoked" })), ["key revoked"]);
  assert.deepEqual(
    await reasons(await mailauthSigned({ selector: "short", privateKey: SHORT_PEM })),
    ["RSA key shorter than 1024 bits"],
  );
  assert.deepEqual(await reasons(await mailauthSigned({ selector: "web" })), [
    "key is not for e-mail",
  ]);
  assert.deepEqual(
    await reasons(await mailauthSigned({ selector: "strict", identity: "x@sub.a.example" })),
    ["key forbids subdomains in i="],
  );
  const sub = await mailauthSigned({ selector: "loose", identity: "x@sub.a.example" });
  assert.deepEqual(await reasons(sub), [""]);
  // x= in the past (by an injected clock).
  const expiring = await dkimSign(Buffer.from(MESSAGE), {
    canonicalization: "relaxed/relaxed",
    expires: new Date(Date.now() + 3600_000),
    signatureData: [{ signingDomain: "a.example", selector: DKIM_SELECTOR, privateKey: KEY }],
  } as never);
  const exp = enc.encode(expiring.signatures + MESSAGE);
  assert.deepEqual(await reasons(exp), [""]);
  assert.deepEqual(await reasons(exp, Date.now() + 2 * 3600_000), ["signature expired"]);
  // Hand-made signature fields: broken before any key is looked up.
  for (
    const [field, reason] of [
      [
        "v=1; a=rsa-sha1; d=a.example; s=opendkim; h=from; bh=AA==; b=AA==",
        "unsupported algorithm rsa-sha1",
      ],
      [
        "v=1; a=rsa-sha256; a=rsa-sha256; d=a.example; s=opendkim; h=from; bh=AA==; b=AA==",
        "malformed signature",
      ],
      ["v=1; a=rsa-sha256; d=a.example; s=opendkim; h=to; bh=AA==; b=AA==", "From is not signed"],
      [
        "v=1; a=rsa-sha256; d=a.example; i=x@b.example; s=opendkim; h=from; bh=AA==; b=AA==",
        "i= is not within d=",
      ],
      ["v=1; a=rsa-sha256; d=a.example; s=opendkim; h=from; bh=AA==", "signature without b="],
      [
        "v=1; a=rsa-sha256; c=relaxed/odd; d=a.example; s=opendkim; h=from; bh=AA==; b=AA==",
        "unknown canonicalization",
      ],
      ["v=1; a=rsa-sha256; d=a.example; s=opendkim; h=from; l=5x; bh=AA==; b=AA==", "malformed l="],
      ["v=1; a=rsa-sha256; d=a.example; s=opendkim; h=from; bh=AA==; b=AA==", "body hash mismatch"],
    ] as const
  ) {
    const m = enc.encode(`DKIM-Signature: ${field}\r\n${MESSAGE}`);
    assert.deepEqual(await reasons(m), [reason], field);
  }
});
