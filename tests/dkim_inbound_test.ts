// DKIM on port 25 as a remote relay meets it: an encrypted message from a named domain passes
// with a valid aligned signature (rsa-sha256 or ed25519-sha256), and is refused with 554 5.7.1
// when its only signature's l= leaves part of the body unsigned. Signatures come from npm
// mailauth (an independent signer); the key records from an injected resolver.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { generateKeyPairSync } from "node:crypto";
import { dkimSign } from "mailauth/lib/dkim/sign.js";
import { createAccount, fakeDns, withRelay } from "./support/relay.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage } from "./support/messages.ts";
import { DnsError, type DnsResolver } from "../src/federation/mod.ts";

const RSA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ED = generateKeyPairSync("ed25519");
const spki = (k: import("node:crypto").KeyObject) =>
  Buffer.from(k.export({ type: "spki", format: "der" }));
const pem = (k: import("node:crypto").KeyObject) =>
  k.export({ type: "pkcs8", format: "pem" }) as string;

const DNS = fakeDns({
  txt: {
    "rsa._domainkey.remote.example": [
      `v=DKIM1; k=rsa; p=${spki(RSA.publicKey).toString("base64")}`,
    ],
    "ed._domainkey.remote.example": [
      `v=DKIM1; k=ed25519; p=${spki(ED.publicKey).subarray(12).toString("base64")}`,
    ],
  },
});

async function signed(message: string, data: Record<string, unknown>): Promise<string> {
  const r = await dkimSign(Buffer.from(message), {
    canonicalization: "relaxed/simple",
    signatureData: [{ signingDomain: "remote.example", ...data }],
  } as never);
  assert.equal(r.errors?.length ?? 0, 0);
  return r.signatures + message;
}

Deno.test("port 25: aligned rsa-sha256 and ed25519-sha256 signatures pass; a partial l= does not", async () => {
  await withRelay(async (t) => {
    const bob = await createAccount(t, "bob000001");
    const deliver = async (message: string) => {
      const c = await SmtpTestClient.connect(t.addr("smtp"));
      try {
        await c.reply();
        await c.cmd("EHLO mx.remote.example");
        await c.startTls(t.caPem);
        await c.cmd("EHLO mx.remote.example");
        return await c.sendMail("alice@remote.example", [bob.address], message);
      } finally {
        c.close();
      }
    };
    const message = await encryptedMessage("alice@remote.example", bob.address);
    const rsa = await deliver(
      await signed(message, { selector: "rsa", privateKey: pem(RSA.privateKey) }),
    );
    assert.equal(rsa.code, 250, rsa.text);
    const ed = await deliver(
      await signed(message, {
        selector: "ed",
        privateKey: pem(ED.privateKey),
        algorithm: "ed25519-sha256",
      }),
    );
    assert.equal(ed.code, 250, ed.text);
    // Signed over the first 100 bytes of the body only: whatever follows is unsigned.
    const partial = await deliver(
      await signed(message, {
        selector: "rsa",
        privateKey: pem(RSA.privateKey),
        maxBodyLength: 100,
      }),
    );
    assert.equal(partial.code, 554, partial.text);
    assert.match(partial.text, /5\.7\.1 No valid DKIM signature found/);
    const unsigned = await deliver(message);
    assert.match(unsigned.text, /^554 5\.7\.1 No DKIM signature found/);
  }, { relay: { dns: DNS } });
});

Deno.test("port 25: a DKIM key the DNS cannot be asked for now is a temporary refusal, not a bounce", async () => {
  let dnsDown = true;
  const dns: DnsResolver = {
    ...DNS,
    txt: (name) =>
      dnsDown
        ? Promise.reject(new DnsError(`TXT ${name}: server answered SERVFAIL`, "temporary"))
        : DNS.txt(name),
  };
  await withRelay(async (t) => {
    const bob = await createAccount(t, "bob000001");
    const message = await signed(
      await encryptedMessage("alice@remote.example", bob.address),
      { selector: "rsa", privateKey: pem(RSA.privateKey) },
    );
    const deliver = async () => {
      const c = await SmtpTestClient.connect(t.addr("smtp"));
      try {
        await c.reply();
        await c.cmd("EHLO mx.remote.example");
        await c.startTls(t.caPem);
        await c.cmd("EHLO mx.remote.example");
        return await c.sendMail("alice@remote.example", [bob.address], message);
      } finally {
        c.close();
      }
    };
    const down = await deliver();
    assert.equal(down.code, 451, down.text);
    assert.match(down.text, /^451 4\.4\.3 /);
    dnsDown = false;
    const up = await deliver();
    assert.equal(up.code, 250, up.text);
  }, { relay: { dns } });
});
