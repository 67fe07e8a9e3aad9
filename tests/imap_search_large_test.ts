// SEARCH on content without reading whole bodies (issue 22): HEADER keys are answered from the
// structure stored with each body, BODY and TEXT keys read only the text parts of a large
// (file-backed) message, streamed, and both give the answers a small message gives.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient } from "./support/imap_client.ts";

const enc = new TextEncoder();

function base64Lines(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 57) {
    s += btoa(String.fromCharCode(...bytes.subarray(i, i + 57))) + "\r\n";
  }
  return s;
}

/** A message with a text part, a large attachment and an HTML part after it. */
function mixed(subject: string, plain: string, html: string, attachmentBytes: number): string {
  const attachment = new Uint8Array(attachmentBytes).fill(0x41);
  // The attachment's decoded bytes end in a word that only a search of non-text parts would see.
  attachment.set(enc.encode("attachmentword"), attachmentBytes - 14);
  return [
    "From: sender@example.org",
    `Subject: ${subject}`,
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="XX"',
    "",
    "--XX",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    plain,
    "--XX",
    "Content-Type: application/octet-stream",
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(attachment) + "--XX",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "",
    base64Lines(enc.encode(html)) + "--XX--",
    "",
  ].join("\r\n");
}

async function append(t: TestRelay, address: string, text: string) {
  const account = (await t.relay.services.store.getAccount(address))!;
  await t.relay.services.mailboxes.append({
    accountId: account.id,
    mailboxName: "INBOX",
    data: enc.encode(text),
    flags: [],
    internalDate: Date.UTC(2024, 5, 1),
  });
}

/** Counts the bytes IMAP reads through openBody (file-backed bodies) from now on. */
function countReads(t: TestRelay) {
  const service = t.relay.services.mailboxes;
  const real = service.openBody.bind(service);
  const seen = { opened: 0, bytes: 0 };
  service.openBody = async (id) => {
    const r = await real(id);
    if (!r) return r;
    seen.opened++;
    return {
      size: r.size,
      structure: r.structure,
      close: () => r.close(),
      async read(offset, length) {
        const b = await r.read(offset, length);
        seen.bytes += b.length;
        return b;
      },
    };
  };
  return seen;
}

const BIG = 2 * 1024 * 1024;

Deno.test("SEARCH HEADER/BODY/TEXT on a large message reads no attachment, same answers as small", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "searchbig");
    await append(
      t,
      user.address,
      mixed("small one", "caf=C3=A9 plainword", "<b>htmlword</b>", 300),
    );
    await append(t, user.address, mixed("big one", "caf=C3=A9 plainword", "<b>htmlword</b>", BIG));
    await append(t, user.address, "Subject: other\r\n\r\nnothing here\r\n");
    const seen = countReads(t);
    const { client } = await ImapTestClient.connect(t.addr("imaps"), {
      tls: true,
      caPem: t.caPem,
    });
    try {
      assert.ok((await client.login(user.address, user.password)).ok);
      await client.cmd("SELECT INBOX");
      const search = async (keys: string) => {
        const r = await client.cmd(`SEARCH ${keys}`);
        assert.ok(r.ok, r.status);
        return r.untagged.find((l) => l.startsWith("* SEARCH"));
      };

      // Header keys: the part tree stored with the body answers; nothing of it is read.
      assert.equal(await search('HEADER Subject "BIG ONE"'), "* SEARCH 2");
      assert.equal(await search('SUBJECT "one"'), "* SEARCH 1 2");
      assert.equal(await search('FROM "SENDER@example"'), "* SEARCH 1 2");
      assert.equal(seen.bytes, 0);

      // Body keys: text parts only, decoded and case-mapped; the attachment is never read.
      // Accents stay (i;unicode-casemap): "cafe" does not find "café".
      assert.equal(await search('BODY "cafe plainword"'), "* SEARCH");
      assert.equal(await search("BODY PLAINWORD"), "* SEARCH 1 2");
      assert.equal(await search("BODY htmlword"), "* SEARCH 1 2");
      assert.equal(await search('TEXT "big one"'), "* SEARCH 2");
      assert.equal(await search("TEXT HTMLWORD"), "* SEARCH 1 2");
      assert.equal(await search("BODY attachmentword"), "* SEARCH");
      assert.equal(await search("OR BODY nomatch TEXT other"), "* SEARCH 3");
      assert.equal(await search("NOT BODY plainword"), "* SEARCH 3");
      const u = await client.cmd("UID SEARCH RETURN (MIN MAX COUNT) BODY htmlword");
      assert.ok(u.untagged.some((l) => /ESEARCH .*MIN 1 MAX 2 COUNT 2/.test(l)), u.untagged.join());
      assert.ok(seen.opened > 0, "the large body was opened for ranged reads");
      assert.ok(seen.bytes < BIG / 20, `${seen.bytes} bytes read for ${BIG} of attachment`);
    } finally {
      client.close();
    }
  });
});
