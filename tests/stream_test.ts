// Bodies stream end to end (issue 16): messages around every buffer threshold go in by APPEND
// and SMTP DATA and come back byte for byte by FETCH, over implicit TLS with and without
// COMPRESS=DEFLATE; a message at the size limit passes and one byte more gets 552; clients that
// vanish mid-DATA, mid-literal or mid-request leave nothing stored and no spool file behind.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as openpgp from "openpgp";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapBytesClient } from "./support/imap_bytes_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { pgpMime } from "./support/messages.ts";
import { bytesBody } from "../src/store/message_input.ts";

const enc = new TextEncoder();
const MiB = 1024 * 1024;
/** The store keeps bodies up to this size inline (src/store/sqlite/bodies.ts). */
const INLINE_LIMIT = 128 * 1024;

/** `size` bytes of mail: a header, then base64 lines of random bytes (ASCII, CRLF). */
function messageOfSize(size: number, subject: string): Uint8Array {
  const head = enc.encode(`From: <a@example.org>\r\nSubject: ${subject}\r\n\r\n`);
  const out = new Uint8Array(size);
  out.set(head.subarray(0, size));
  const line = new Uint8Array(57);
  let o = head.length;
  while (o < size) {
    crypto.getRandomValues(line);
    const text = enc.encode(line.toBase64() + "\r\n");
    out.set(text.subarray(0, size - o), o);
    o += text.length;
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

async function bodyFiles(t: TestRelay): Promise<{ tmp: string[] }> {
  const tmp: string[] = [];
  try {
    for await (const e of Deno.readDir(`${t.dir}/data/bodies/tmp`)) tmp.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return { tmp };
}

/** Waits until `check` holds (the server frees a spool once it sees the connection go). */
async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function inboxCount(t: TestRelay, address: string): Promise<number> {
  const store = t.relay.services.store;
  const account = await store.getAccount(address);
  const mb = account ? await store.getMailbox(account.id, "INBOX") : null;
  return mb?.messages ?? 0;
}

async function imapSession(t: TestRelay, user: { address: string; password: string }) {
  const c = await ImapBytesClient.connect(t.addr("imaps"), t.caPem);
  const r = await c.cmd(`LOGIN "${user.address}" "${user.password}"`);
  assert.ok(r.ok, r.status);
  return c;
}

/** FETCH BODY.PEEK[] of one UID: the literal. */
async function fetchBody(c: ImapBytesClient, uid: number): Promise<Uint8Array> {
  const r = await c.cmd(`UID FETCH ${uid} (RFC822.SIZE BODY.PEEK[])`);
  assert.ok(r.ok, r.status);
  assert.equal(r.literals.length, 1, r.untagged.join("\n"));
  return r.literals[0];
}

const SIZES = [1000, 500_000, 1 * MiB, 4 * MiB, 30_000_000];

Deno.test("APPEND and FETCH at every buffer threshold come back byte for byte, with and without COMPRESS", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "sizes0001");
    for (const compress of [false, true]) {
      const c = await imapSession(t, user);
      try {
        if (compress) await c.compress();
        assert.ok((await c.cmd("SELECT INBOX")).ok);
        for (const size of SIZES) {
          const message = messageOfSize(size, `${size} bytes${compress ? ", compressed" : ""}`);
          // Synchronizing literals plain, LITERAL+ compressed: both paths stream.
          const a = await c.append("INBOX", message, compress);
          assert.ok(a.ok, `APPEND ${size}: ${a.status}`);
          const uid = Number(/APPENDUID \d+ (\d+)/.exec(a.status)![1]);
          const got = await fetchBody(c, uid);
          assert.ok(same(got, message), `FETCH ${size}${compress ? " compressed" : ""}: differs`);
          const s = await c.cmd(
            `UID FETCH ${uid} (RFC822.SIZE BINARY.SIZE[] BODY.PEEK[TEXT]<0.64>)`,
          );
          assert.match(
            s.untagged[0],
            new RegExp(`RFC822\\.SIZE ${size} BINARY\\.SIZE\\[\\] ${size}`),
          );
          assert.ok(
            same(s.literals[0], message.subarray(message.indexOf(13, 40) + 4).subarray(0, 64)),
          );
        }
      } finally {
        await c.close();
      }
    }
    assert.deepEqual((await bodyFiles(t)).tmp, [], "no spool file stays behind");
  }, { overrides: { max_mailbox_size: 200 * MiB } });
});

Deno.test("APPEND of a literal8 with a binary part: stored as base64, BINARY gives the bytes back", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "binary001");
    const c = await imapSession(t, user);
    try {
      const data = randomBytes(300_000);
      const message = new Uint8Array([
        ...enc.encode(
          'From: <a@example.org>\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' +
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n",
        ),
        ...data,
        ...enc.encode("\r\n--b--\r\n"),
      ]);
      const tag = c.nextTag();
      await c.write(`${tag} APPEND INBOX UTF8 (~{${message.length}+}\r\n`);
      await c.write(message);
      await c.write(")\r\n");
      const a = await c.collect(tag);
      assert.ok(a.ok, a.status);
      assert.ok((await c.cmd("SELECT INBOX")).ok);
      const body = await fetchBody(c, 1);
      assert.ok(!body.includes(0), "no NUL in BODY[]");
      assert.match(new TextDecoder().decode(body), /Content-Transfer-Encoding: base64\r\n/);
      const b = await c.cmd("UID FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])");
      assert.match(b.untagged[0], /BINARY\.SIZE\[1\] 300000/);
      assert.ok(same(b.literals[0], data), "BINARY[1] is the original bytes");
    } finally {
      await c.close();
    }
  });
});

let keyPromise: Promise<openpgp.PrivateKey> | null = null;

/** A Delta Chat shaped encrypted message of exactly `size` bytes (padded with header fields). */
async function encryptedOfSize(from: string, to: string, size: number): Promise<Uint8Array> {
  keyPromise ??= openpgp.generateKey({
    type: "ecc",
    curve: "curve25519Legacy",
    userIDs: [{ email: "stream@example.org" }],
    format: "object",
  }).then((k) => k.privateKey);
  const key = await keyPromise;
  let payload = Math.floor(size * 0.72);
  while (true) {
    const armored = (await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: randomBytes(payload) }),
      encryptionKeys: key.toPublic(),
    }) as string).replace(/\r?\n/g, "\r\n");
    let pad = size - enc.encode(pgpMime(from, to, armored)).length;
    if (pad < 9) {
      payload -= 2000;
      continue;
    }
    const extra: string[] = [];
    while (pad > 0) {
      const take = pad > 1818 ? 909 : pad > 909 ? Math.ceil(pad / 2) : pad;
      extra.push("X-Pad: " + "p".repeat(take - 9));
      pad -= take;
    }
    const message = enc.encode(pgpMime(from, to, armored, extra));
    assert.equal(message.length, size);
    return message;
  }
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

Deno.test("SMTP DATA around the inline limit and at the size limit is stored whole; one byte over gets 552", async () => {
  const LIMIT = 200_000;
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const smtp = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    const imap = await imapSession(t, b);
    try {
      assert.equal((await smtp.reply()).code, 220);
      assert.equal((await smtp.cmd("EHLO client.test")).code, 250);
      assert.equal((await smtp.login(a.address, a.password)).code, 235);
      let uid = 0;
      for (const size of [INLINE_LIMIT - 1, INLINE_LIMIT, INLINE_LIMIT + 1, LIMIT]) {
        const message = await encryptedOfSize(a.address, b.address, size);
        const r = await smtp.sendMail(a.address, [b.address], message);
        assert.equal(r.code, 250, `${size}: ${r.text}`);
        assert.ok((await imap.cmd("EXAMINE INBOX")).ok);
        uid++;
        // Nothing in these headers is rewritten on the way: the stored copy is the sent one.
        assert.ok(same(await fetchBody(imap, uid), message), `${size} bytes differ`);
        const s = await imap.cmd(`UID FETCH ${uid} (BODYSTRUCTURE ENVELOPE)`);
        assert.match(s.untagged[0], /"MULTIPART" |"ENCRYPTED"/i);
      }
      const over = await encryptedOfSize(a.address, b.address, LIMIT + 1);
      const r = await smtp.sendMail(a.address, [b.address], over);
      assert.equal(r.code, 552, r.text);
      assert.match(r.text, /5\.3\.4/);
      assert.equal((await smtp.cmd("NOOP")).code, 250, "the session is still in sync");
      assert.equal(await inboxCount(t, b.address), 4);
    } finally {
      smtp.close();
      await imap.close();
    }
    await eventually("no spool file", async () => (await bodyFiles(t)).tmp.length === 0);
  }, { overrides: { max_message_size: LIMIT } });
});

Deno.test("a client that vanishes mid-DATA, mid-literal or mid-/mxdeliv leaves nothing stored and no spool file", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const filler = enc.encode(("x".repeat(76) + "\r\n").repeat(13_000)); // ~1 MiB
    // Port 25: DATA cut off after 5 MiB (spooled to a file), then after 50 KB (in memory).
    for (const mib of [5, 0.05]) {
      const c = await SmtpTestClient.connect(t.addr("smtp"));
      assert.equal((await c.reply()).code, 220);
      assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
      await c.startTls(t.caPem);
      assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
      assert.equal((await c.cmd("MAIL FROM:<x@[192.0.2.1]>")).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${b.address}>`)).code, 250);
      assert.equal((await c.cmd("DATA")).code, 354);
      await c.send("From: <x@[192.0.2.1]>\r\n\r\n");
      for (let sent = 0; sent < mib * MiB; sent += filler.length) {
        await c.send(filler.subarray(0, Math.min(filler.length, mib * MiB - sent)));
      }
      if (mib > 1) {
        await eventually("DATA spooled to a file", async () => (await bodyFiles(t)).tmp.length > 0);
      }
      c.close();
      await eventually("the spool freed", async () => (await bodyFiles(t)).tmp.length === 0);
    }
    // IMAP: an APPEND literal of 3 MiB cut off after 2 MiB.
    const imap = await imapSession(t, b);
    await imap.write(`a APPEND INBOX {${3 * MiB}+}\r\n`);
    await imap.write(filler);
    await imap.write(filler);
    await eventually(
      "the literal spooled to a file",
      async () => (await bodyFiles(t)).tmp.length > 0,
    );
    await imap.close();
    await eventually("the spool freed", async () => (await bodyFiles(t)).tmp.length === 0);
    // /mxdeliv (HTTPS): a request announcing 5 MiB that ends after 2 MiB.
    const https = t.relay.addresses.https!;
    const http = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: Number(https.slice(https.lastIndexOf(":") + 1)),
      caCerts: [t.caPem],
    });
    const head = "POST /mxdeliv HTTP/1.1\r\nHost: localhost\r\nX-Mail-From: <x@[192.0.2.1]>\r\n" +
      `X-Mail-To: <${b.address}>\r\nContent-Length: ${5 * MiB}\r\n\r\n`;
    for (const piece of [enc.encode(head), filler, filler]) {
      let off = 0;
      while (off < piece.length) off += await http.write(piece.subarray(off));
    }
    await eventually("the body spooled to a file", async () => (await bodyFiles(t)).tmp.length > 0);
    http.close();
    await eventually("every spool freed", async () => (await bodyFiles(t)).tmp.length === 0);
    assert.equal(await inboxCount(t, b.address), 0);
    // The relay still serves: a whole message goes through afterwards.
    const c = await SmtpTestClient.connect(t.addr("smtp"));
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
    await c.startTls(t.caPem);
    assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
    const ok = await c.sendMail(
      "x@[192.0.2.1]",
      [b.address],
      await encryptedOfSize(
        "x@[192.0.2.1]",
        b.address,
        150_000,
      ),
    );
    assert.equal(ok.code, 250, ok.text);
    c.close();
    assert.equal(await inboxCount(t, b.address), 1);
  }, { overrides: { "listen.https": "127.0.0.1:0" } });
});

Deno.test("a body stored without a structure is parsed once at FETCH and its structure kept", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "legacy001");
    const store = t.relay.services.store;
    const account = (await store.getAccount(user.address))!;
    const message = messageOfSize(300_000, "from before structures were stored");
    await store.append({
      accountId: account.id,
      mailboxName: "INBOX",
      flags: [],
      internalDate: Date.now(),
      body: bytesBody(message),
      defaultQuotaBytes: 100 * MiB,
    });
    const [rec] = await store.listMessages((await store.getMailbox(account.id, "INBOX"))!.id);
    const before = await store.openBody(rec.bodyId);
    assert.equal(before!.structure, null);
    await before!.close();
    const c = await imapSession(t, user);
    try {
      assert.ok((await c.cmd("EXAMINE INBOX")).ok);
      const r = await c.cmd("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[TEXT]<0.10>)");
      assert.ok(r.ok, r.status);
      assert.match(r.untagged[0], /BODYSTRUCTURE \("TEXT" "PLAIN"/);
      assert.match(r.untagged[0], /"from before structures were stored"/);
      await eventually("the structure kept", async () => {
        const after = await store.openBody(rec.bodyId);
        await after!.close();
        return after!.structure !== null;
      });
      // Served from the kept structure the same way.
      const again = await c.cmd("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[TEXT]<0.10>)");
      assert.deepEqual(again.untagged, r.untagged);
      assert.ok(same(again.literals[0], r.literals[0]));
    } finally {
      await c.close();
    }
  });
});
