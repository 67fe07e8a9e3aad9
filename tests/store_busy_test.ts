// The database locked by another process (an operator's `sqlite3 tern.db` with a write
// transaction open): writes wait SQLite's busy timeout, then fail with temporary answers that say
// so (IMAP NO [INUSE], SMTP 451, a JIT login NO [UNAVAILABLE]); nothing half-written is left,
// and once the lock goes the same sessions work again without a restart.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { createAccount, withRelay } from "./support/relay.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { WireClient } from "./support/wire_client.ts";
import { armoredPayload, pgpMime } from "./support/messages.ts";

Deno.test("a database locked by another process: temporary errors, no half-writes, recovery", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const imap = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
    await imap.line();
    assert.match((await imap.cmd("l", `LOGIN ${a.address} ${a.password}`)).status, /^OK/);
    const smtp = await SmtpTestClient.connect(t.addr("submissions"), {
      tls: true,
      caPem: t.caPem,
    });
    await smtp.reply();
    await smtp.cmd("EHLO x.test");
    await smtp.login(a.address, a.password);
    const mail = pgpMime(a.address, a.address, await armoredPayload("hello"));
    const m = `From: <${a.address}>\r\nSubject: x\r\n\r\nhello\r\n`;
    await imap.write(`a0 APPEND INBOX {${m.length}+}\r\n${m}\r\n`);
    assert.match((await imap.response("a0")).status, /^OK \[APPENDUID \d+ 1\]/);

    const lock = new DatabaseSync(`${t.dir}/data/tern.db`);
    lock.exec("BEGIN IMMEDIATE");
    let jit: WireClient | null = null;
    try {
      // All at once: each waits for the busy timeout, then gives up.
      await imap.write(`a1 APPEND INBOX {${m.length}+}\r\n${m}\r\n`);
      const sent = smtp.sendMail(a.address, [a.address], mail);
      jit = await WireClient.connect(t.addr("imaps").port, { tlsCa: t.caPem });
      await jit.line();
      const login = jit.cmd("l", `LOGIN newuser01@${t.domain} password-1234567890`, 60_000);
      const appended = await imap.response("a1", 60_000);
      assert.equal(
        appended.status,
        "NO [INUSE] The mail store is busy, try again later",
      );
      assert.equal(
        (await sent).text,
        "451 4.3.0 Local error in processing, try again later",
      );
      assert.match((await login).status, /^NO \[UNAVAILABLE\] /);
    } finally {
      lock.exec("ROLLBACK");
      lock.close();
    }
    // The same sessions go on.
    await imap.write(`a2 APPEND INBOX {${m.length}+}\r\n${m}\r\n`);
    assert.match((await imap.response("a2")).status, /^OK \[APPENDUID \d+ 2\]/, "UID 2 is new");
    assert.equal((await smtp.sendMail(a.address, [a.address], mail)).code, 250);
    assert.match(
      (await jit.cmd("l", `LOGIN newuser01@${t.domain} password-1234567890`)).status,
      /^OK/,
    );
    const store = t.relay.services.store;
    const account = (await store.getAccount(a.address))!;
    const inbox = (await store.getMailbox(account.id, "INBOX"))!;
    const all = await store.listMessages(inbox.id);
    assert.equal(all.length, 3);
    assert.equal(inbox.messages, 3);
    assert.equal(await store.usedBytes(account.id), all.reduce((n, r) => n + r.size, 0));
    jit.close();
    imap.close();
    smtp.close();
  });
});
