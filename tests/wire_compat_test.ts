// Wire compatibility with the reference relay (Postfix + Dovecot + chatmaild), tested with the
// bytes clients and the reference's own tests send: METADATA as Delta Chat writes it, refusals
// read per recipient (Python's smtplib, as the reference's online tests), app versions, relays
// whose domain starts with "_", and a debug trail for every refused MAIL/RCPT.

import assert from "node:assert/strict";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage } from "./support/messages.ts";
import { readWithin } from "./support/util.ts";
import { createLogger } from "../src/log/mod.ts";
import { compactAppVersions } from "../src/settings/app_versions.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw TLS connection to 993 that sends exactly the given bytes and reads until `until`. */
async function rawImap(t: TestRelay) {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: t.addr("imaps").port,
    caCerts: [t.caPem],
  });
  let buf = "";
  const read = async (until: RegExp) => {
    const chunk = new Uint8Array(65536);
    while (!until.test(buf)) {
      const n = await readWithin(conn, chunk);
      if (n === null) throw new Error(`closed; got ${JSON.stringify(buf)}`);
      buf += dec.decode(chunk.subarray(0, n));
    }
    const out = buf;
    buf = "";
    return out;
  };
  return {
    read,
    async send(bytes: string) {
      await conn.write(enc.encode(bytes));
    },
    close: () => conn.close(),
  };
}

Deno.test("SETMETADATA as Delta Chat sends it (space before ')', bare LF) and Dovecot's answers", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "tokenuser");
    const c = await rawImap(t);
    await c.read(/^\* OK .*\r\n/);
    await c.send(`a00 LOGIN ${user.address} ${user.password}\r\n`);
    assert.match(await c.read(/^a00 /m), /^a00 OK /m);
    await c.send('a01 SETMETADATA INBOX (/private/devicetoken "1111" )\n');
    assert.equal(await c.read(/^a01 .*\r\n/m), "a01 OK Setmetadata completed.\r\n");
    await c.send('a02 SETMETADATA INBOX (/private/devicetoken "2222" )\n');
    assert.equal(await c.read(/^a02 .*\r\n/m), "a02 OK Setmetadata completed.\r\n");
    await c.send("a03 GETMETADATA INBOX /private/devicetoken\n");
    // Every SETMETADATA adds a device token; GETMETADATA lists them, as a literal (Dovecot).
    assert.equal(
      await c.read(/^a03 .*\r\n/m),
      "* METADATA INBOX (/private/devicetoken {9}\r\n1111 2222)\r\n" +
        "a03 OK Getmetadata completed.\r\n",
    );
    await c.send('a04 GETMETADATA "" (/shared/comment /shared/vendor/deltachat/appversions )\n');
    const server = await c.read(/^a04 .*\r\n/m);
    assert.match(server, /^\* METADATA "" \(\/shared\/comment NIL \/shared\/vendor/);
    c.close();
  });
});

Deno.test("app versions: one line of JSON in the reference's schema, changeable at run time", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "appversio");
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    await client.login(user.address, user.password);
    const key = "/shared/vendor/deltachat/appversions";
    const get = async () =>
      metadataValue((await client.cmd(`GETMETADATA "" ${key}`)).untagged[0], key);
    const served = await get();
    assert.ok(served, "a document is served by default");
    assert.ok(!served.includes("\n"), "one line");
    assert.equal(compactAppVersions(served), served, "compact and valid");
    const doc = JSON.parse(served);
    assert.equal(doc.clients[0].clientId, "deltachat");
    assert.ok(Number.isInteger(doc.clients[0].sources[0].versionInteger));

    const mine = {
      clients: [{
        clientId: "deltachat",
        sources: [{
          sourceId: "fdroid",
          versionInteger: 1,
          versionString: "9.9.9",
          downloadUrl: "https://download.delta.chat/android/x.apk",
        }],
      }],
    };
    await t.relay.services.settings.set("app_versions", JSON.stringify(mine, null, 2));
    assert.equal(await get(), JSON.stringify(mine));
    await assert.rejects(
      t.relay.services.settings.set(
        "app_versions",
        JSON.stringify({ clients: [{ ...mine.clients[0], extra: 1 }] }),
      ),
      /exactly the keys/,
    );
    await assert.rejects(
      t.relay.services.settings.set(
        "app_versions",
        JSON.stringify({
          clients: [{
            clientId: "deltachat",
            sources: [{ ...mine.clients[0].sources[0], downloadUrl: "https://evil.example/x" }],
          }],
        }),
      ),
      /downloadUrl must start with/,
    );
    await t.relay.services.settings.set("app_versions", "");
    assert.equal(await get(), null, "empty serves NIL");
    await t.relay.services.settings.set("app_versions", null);
    assert.equal(await get(), served, "reset to the built-in document");
    client.close();
  });
});

const python = await new Deno.Command("python3", { args: ["--version"] }).output()
  .then((o) => o.success, () => false);

/** Runs Python's smtplib against 465 and returns what it printed (JSON lines). */
async function smtplib(t: TestRelay, script: string): Promise<unknown[]> {
  const ca = await Deno.makeTempFile({ suffix: ".pem" });
  await Deno.writeTextFile(ca, t.caPem);
  try {
    const code = `
import json, smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=${JSON.stringify(ca)})
ctx.check_hostname = False
def out(**kw): print(json.dumps(kw), flush=True)
def connect(user, password):
    s = smtplib.SMTP_SSL("127.0.0.1", ${t.addr("submissions").port}, context=ctx, timeout=30)
    s.login(user, password)
    return s
${script}
`;
    const r = await new Deno.Command("python3", { args: ["-c", code] }).output();
    const stderr = dec.decode(r.stderr);
    assert.equal(r.code, 0, stderr);
    return dec.decode(r.stdout).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
  } finally {
    await Deno.remove(ca);
  }
}

Deno.test({
  name: "smtplib reads sender and rate refusals per recipient, as from Postfix",
  ignore: !python,
  fn: async () => {
    await withRelay(async (t) => {
      const a = await createAccount(t, "alice0001");
      const b = await createAccount(t, "bobby0001");
      const forged = await encryptedMessage(b.address, a.address);
      const ok = await encryptedMessage(a.address, b.address);
      const results = await smtlibRun(t, a, b, forged, ok);
      // Sending as another user: SMTPRecipientsRefused with 553 (test_authenticated_from).
      assert.deepEqual(results[0], {
        kind: "refused",
        code: 553,
        text: `5.7.1 <${b.address}>: Sender address rejected: not owned by user ${a.address}`,
      });
      // The send rate: 10 pass, then SMTPRecipientsRefused 450 "4.7.1: Too much mail from".
      const sent = results.slice(1);
      assert.equal(sent.filter((r) => (r as { kind: string }).kind === "sent").length, 10);
      const refused = sent.find((r) => (r as { kind: string }).kind === "refused") as
        | { code: number; text: string }
        | undefined;
      assert.ok(refused, JSON.stringify(sent));
      assert.equal(refused.code, 450);
      assert.match(refused.text, /^4\.7\.1: Too much mail from /);
    });
  },
});

function smtlibRun(
  t: TestRelay,
  a: { address: string; password: string },
  b: { address: string; password: string },
  forged: string,
  ok: string,
) {
  return smtplib(
    t,
    `
s = connect(${JSON.stringify(a.address)}, ${JSON.stringify(a.password)})
def send(frm, to, msg):
    try:
        s.sendmail(frm, [to], msg)
        out(kind="sent")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients[to]
        out(kind="refused", code=code, text=text.decode())
        s.rset()
send(${JSON.stringify(b.address)}, ${JSON.stringify(a.address)}, ${JSON.stringify(forged)})
for i in range(12):
    send(${JSON.stringify(a.address)}, ${JSON.stringify(b.address)}, ${JSON.stringify(ok)})
s.quit()
`,
  );
}

Deno.test("a relay whose domain starts with '_' carries mail between its own users", async () => {
  await withRelay(async (t) => {
    assert.equal(t.domain, "_compat.test");
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd("EHLO client.test")).code, 250);
    assert.equal((await c.login(a.address, a.password)).code, 235);
    const r = await c.sendMail(
      a.address,
      [b.address],
      await encryptedMessage(a.address, b.address),
    );
    assert.equal(r.code, 250, r.text);
    c.close();
    const { client } = await ImapTestClient.connect(t.addr("imaps"), { tls: true, caPem: t.caPem });
    await client.login(b.address, b.password);
    const sel = await client.cmd("SELECT INBOX");
    assert.ok(sel.untagged.includes("* 1 EXISTS"), sel.untagged.join("|"));
    client.close();
  }, { overrides: { domain: "_compat.test" } });
});

Deno.test("every refused MAIL and RCPT leaves a debug line", async () => {
  const lines: string[] = [];
  const log = createLogger("debug", { write: (l) => lines.push(l) });
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    await c.reply();
    await c.cmd("EHLO client.test");
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 530, "not logged in");
    await c.login(a.address, a.password);
    assert.equal((await c.cmd("MAIL FROM:<a@b> FOO=BAR")).code, 555);
    assert.equal((await c.cmd("MAIL FROM:nonsense")).code, 501);
    assert.equal((await c.cmd("MAIL FROM:<someone@elsewhere.example>")).code, 250);
    assert.equal((await c.cmd("RCPT TO:<x@elsewhere.example>")).code, 553);
    c.close();
  }, { relay: { log } });
  const refusals = lines.map((l) => JSON.parse(l)).filter((r) =>
    /^smtp (mail|rcpt) refused$/.test(r.msg)
  );
  assert.deepEqual(refusals.map((r) => [r.msg, r.code]), [
    ["smtp mail refused", 530],
    ["smtp mail refused", 555],
    ["smtp mail refused", 501],
    ["smtp rcpt refused", 553],
  ]);
});
