// SMTP submission and inbound over real sockets and real TLS against an in-process relay:
// every reply of the session, the encryption policy on real and generated mail, JIT, limits,
// smuggling.

import assert from "node:assert/strict";
import { createAccount, fakeDns, type TestRelay, withRelay } from "./support/relay.ts";
import {
  DKIM_SELECTOR,
  dkimDnsRecord,
  generateDkimKey,
  signMessage,
} from "../src/federation/mod.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { checkIncoming } from "../src/policy/mod.ts";
import type { RelayEvent } from "../src/events/mod.ts";
import {
  armorPackets,
  bounceMessage,
  concatBytes,
  encryptedMessage,
  fakeArmorMessage,
  htmlMessage,
  packet,
  pgpMime,
  plainMessage,
  realDeltaChatMessages,
  secureJoinRequest,
} from "./support/messages.ts";

const dec = new TextDecoder();
// chat.test's DKIM key (the corpus's domain): the test signs as that relay would.
const REF_KEY = generateDkimKey();
/** DNS that publishes REF_KEY as chat.test's DKIM key (mail signed as a chat.test relay). */
const chatTestDns = () =>
  fakeDns({ txt: { [`${DKIM_SELECTOR}._domainkey.chat.test`]: [dkimDnsRecord(REF_KEY)] } });

async function submission(t: TestRelay, user?: { address: string; password: string }) {
  const c = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd("EHLO client.test")).code, 250);
  if (user) assert.equal((await c.login(user.address, user.password)).code, 235);
  return c;
}

/** Port 25 as another relay uses it: EHLO, STARTTLS (required before MAIL), EHLO again. */
async function inbound(t: TestRelay) {
  const c = await SmtpTestClient.connect(t.addr("smtp"));
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
  await c.startTls(t.caPem);
  assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
  return c;
}

async function inbox(t: TestRelay, address: string): Promise<string[]> {
  const store = t.relay.services.store;
  const account = await store.getAccount(address);
  if (!account) return [];
  const mb = await store.getMailbox(account.id, "INBOX");
  const out: string[] = [];
  for (const m of await store.listMessages(mb!.id)) {
    out.push(dec.decode((await store.readBody(m.bodyId))!));
  }
  return out;
}

Deno.test("SMTP greeting and EHLO advertise the right extensions per listener", async () => {
  await withRelay(async (t) => {
    const plain = await SmtpTestClient.connect(t.addr("submission"));
    const greeting = await plain.reply();
    assert.match(greeting.text, /^220 \S+ ESMTP$/);
    assert.ok(!/tern|postfix/i.test(greeting.text), "no product name");
    const ehlo = await plain.cmd("EHLO client.test");
    for (
      const ext of [
        "PIPELINING",
        "SIZE ",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "STARTTLS",
      ]
    ) {
      assert.ok(ehlo.lines.some((l) => l.slice(4).startsWith(ext)), `${ext} in ${ehlo.text}`);
    }
    assert.ok(!ehlo.text.includes("AUTH"), "no AUTH before TLS");
    assert.equal((await plain.cmd("AUTH PLAIN AGIx")).code, 530);
    assert.equal((await plain.cmd("MAIL FROM:<a@b.test>")).code, 530);
    await plain.startTls(t.caPem);
    const after = await plain.cmd("EHLO client.test");
    assert.ok(after.lines.some((l) => l.slice(4) === "AUTH PLAIN LOGIN"), after.text);
    assert.ok(!after.text.includes("STARTTLS"));
    plain.close();

    // Port 25 offers STARTTLS (and after it, no more), never AUTH.
    const mx = await inbound(t);
    const mxEhlo = await mx.cmd("EHLO mx.remote.test");
    assert.ok(!mxEhlo.text.includes("STARTTLS"));
    assert.ok(!mxEhlo.text.includes("AUTH"));
    assert.equal((await mx.cmd("AUTH PLAIN AGIx")).code, 502);
    assert.equal((await mx.cmd("VRFY someone")).code, 252);
    assert.equal((await mx.cmd("NOOP")).code, 250);
    assert.equal((await mx.cmd("HELP")).code, 214);
    assert.equal((await mx.cmd("RSET")).code, 250);
    assert.equal((await mx.cmd("FROB")).code, 500);
    assert.equal((await mx.cmd("RCPT TO:<x@y.test>")).code, 503);
    assert.equal((await mx.cmd("DATA")).code, 503);
    assert.equal((await mx.cmd("HELO")).code, 501);
    assert.equal((await mx.cmd("QUIT")).code, 221);
    mx.close();
  });
});

Deno.test("SMTP AUTH: PLAIN (initial and continuation), LOGIN, JIT, wrong password, blocked", async () => {
  await withRelay(async (t) => {
    const address = `jitjituse@${t.domain}`;
    const c = await submission(t);
    // JIT: the first login creates the account.
    assert.equal((await c.login(address, "a-good-password-1")).code, 235);
    assert.ok(await t.relay.services.store.getAccount(address));
    assert.equal((await c.cmd("AUTH PLAIN AGIx")).code, 503);
    c.close();

    const hash = (await t.relay.services.store.getAccount(address))!.passwordHash;
    const wrong = await submission(t);
    const r = await wrong.login(address, "wrong-password-99");
    assert.equal(r.code, 535);
    assert.match(r.text, /535 5\.7\.8/);
    assert.equal((await t.relay.services.store.getAccount(address))!.passwordHash, hash);
    // Continuation form of PLAIN and the LOGIN mechanism.
    assert.equal((await wrong.cmd("AUTH PLAIN")).code, 334);
    assert.equal((await wrong.cmd(btoa(`\0${address}\0a-good-password-1`))).code, 235);
    wrong.close();

    const login = await submission(t);
    assert.equal((await login.cmd("AUTH LOGIN")).code, 334);
    assert.equal((await login.cmd(btoa(address))).code, 334);
    assert.equal((await login.cmd(btoa("a-good-password-1"))).code, 235);
    login.close();

    const cancel = await submission(t);
    assert.equal((await cancel.cmd("AUTH LOGIN")).code, 334);
    assert.equal((await cancel.cmd("*")).code, 501);
    assert.equal((await cancel.cmd("AUTH CRAM-MD5")).code, 504);
    assert.equal((await cancel.cmd("AUTH PLAIN !!!")).code, 501);
    cancel.close();

    await t.relay.services.accounts.setBlocked(address, true);
    const blocked = await submission(t);
    assert.equal((await blocked.login(address, "a-good-password-1")).code, 535);
    blocked.close();

    // Policy: a too-short username is not created.
    const short = await submission(t);
    assert.equal((await short.login(`ab@${t.domain}`, "a-good-password-1")).code, 535);
    short.close();
    assert.equal(await t.relay.services.store.getAccount(`ab@${t.domain}`), null);
  });
});

Deno.test("SMTP AUTH PLAIN acting as another user fails like a wrong password, and counts", async () => {
  await withRelay(async (t) => {
    const alice = await createAccount(t, "alice0001");
    const carol = await createAccount(t, "carol0001");
    const plain = (authzid: string, user: string, password: string) =>
      btoa(`${authzid}\0${user}\0${password}`);
    // An authorization identity naming the user itself (case aside) is fine.
    const same = await submission(t);
    const ok = await same.cmd(
      `AUTH PLAIN ${plain(carol.address.toUpperCase(), carol.address, carol.password)}`,
    );
    assert.equal(ok.code, 235, ok.text);
    same.close();
    // Right password, but asking to act as someone else: initial response...
    const c = await submission(t);
    const ir = await c.cmd(`AUTH PLAIN ${plain(carol.address, alice.address, alice.password)}`);
    assert.equal(ir.text, "535 5.7.8 Authentication credentials invalid");
    // ...and continuation; a name not yet taken is not created either.
    const newcomer = `newcomer1@${t.domain}`;
    assert.equal((await c.cmd("AUTH PLAIN")).code, 334);
    const cont = await c.cmd(plain(alice.address, newcomer, "password-123456"));
    assert.equal(cont.text, "535 5.7.8 Authentication credentials invalid");
    assert.equal(await t.relay.services.store.getAccount(newcomer), null);
    // Both failures counted against this address: the next attempt, even a right one, is
    // throttled (this config refuses rather than waits).
    const next = await c.cmd(`AUTH PLAIN ${plain("", alice.address, alice.password)}`);
    assert.match(next.text, /^454 4\.7\.0 Too many failed logins/);
    c.close();
  }, { relay: { loginThrottle: { freeFailures: 2, maxWaitMs: 0 } } });
});

Deno.test("SMTP AUTH: concurrent first logins create exactly one account", async () => {
  await withRelay(async (t) => {
    const address = `racerrace@${t.domain}`;
    const results = await Promise.all(Array.from({ length: 8 }, async () => {
      const c = await submission(t);
      const r = await c.login(address, "same-password-123");
      c.close();
      return r.code;
    }));
    assert.deepEqual(results, Array(8).fill(235));
    const page = await t.relay.services.store.listAccounts({ search: "racerrace" });
    assert.equal(page.total, 1);
  });
});

Deno.test("SMTP submission delivers encrypted mail locally, rewritten, and queues remote mail", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await submission(t, a);
    const message = (await encryptedMessage(a.address, b.address)).replace(
      "Subject: [...]",
      "Subject: Secret plans\r\nX-Mailer: Test 1.0\r\nUser-Agent: Agent\r\n" +
        "Received: from [198.51.100.7] by client\r\nX-Originating-IP: 198.51.100.7",
    );
    const r = await c.sendMail(a.address, [b.address, "carol@remote.example"], message);
    assert.equal(r.code, 250, r.text);
    const got = await inbox(t, b.address);
    assert.equal(got.length, 1);
    const header = got[0].split("\r\n\r\n")[0];
    assert.match(header, /^Subject: \[\.\.\.\]$/m);
    assert.ok(!/x-mailer|user-agent|received|x-originating-ip/i.test(header), header);
    assert.ok(!got[0].includes("198.51.100.7"));
    const queue = await t.relay.services.store.listQueue({});
    assert.equal(queue.total, 1);
    assert.deepEqual(queue.items[0].recipients.map((x) => x.recipient), ["carol@remote.example"]);
    c.close();
  });
});

Deno.test("SMTP submission rules: sender ownership, From header, recipients, size", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await submission(t, a);
    // Sending as another user: MAIL is accepted and each RCPT refused, as Postfix does.
    assert.equal((await c.cmd(`MAIL FROM:<${b.address}>`)).code, 250);
    const forgedSender = await c.cmd(`RCPT TO:<${b.address}>`);
    assert.equal(
      forgedSender.text,
      `553 5.7.1 <${b.address}>: Sender address rejected: not owned by user ${a.address}`,
    );
    assert.equal((await c.cmd(`RCPT TO:<${a.address}>`)).code, 553);
    assert.equal((await c.cmd("DATA")).code, 554);
    assert.equal((await c.cmd("RSET")).code, 250);
    // From header of someone else: 500 as the reference relay.
    const forgedFrom = await c.sendMail(
      a.address,
      [b.address],
      await encryptedMessage(b.address, b.address),
    );
    assert.equal(forgedFrom.code, 500);
    assert.match(forgedFrom.text, /Invalid FROM/);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}> SIZE=999999999999`)).code, 552);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}> FOO=BAR`)).code, 555);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 503);
    const unknown = await c.cmd(`RCPT TO:<nobodyhere@${t.domain}>`);
    assert.equal(unknown.code, 550);
    assert.equal((await c.cmd("RCPT TO:<not an address>")).code, 501);
    assert.equal((await c.cmd("RSET")).code, 250);
    c.close();
    assert.equal((await inbox(t, b.address)).length, 0);
  }, { overrides: { max_recipients: 3 } }).catch((e) => {
    throw e;
  });
});

Deno.test("SMTP submission refuses more recipients than the limit", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const c = await submission(t, a);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    for (let i = 0; i < 3; i++) {
      assert.equal((await c.cmd(`RCPT TO:<r${i}@remote.example>`)).code, 250);
    }
    const r = await c.cmd("RCPT TO:<r4@remote.example>");
    assert.equal(r.code, 452);
    c.close();
  }, { overrides: { max_recipients: 3 } });
});

Deno.test("SMTP: oversized DATA gets 552 after the end marker and stores nothing", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await submission(t, a);
    const big = pgpMime(a.address, b.address, "x".repeat(70) + "\r\n".repeat(1)).replace(
      "Version: 1",
      "Version: 1\r\n" + ("y".repeat(78) + "\r\n").repeat(3000),
    );
    const r = await c.sendMail(a.address, [b.address], big);
    assert.equal(r.code, 552);
    assert.match(r.text, /5\.3\.4/);
    // The session is still in sync.
    assert.equal((await c.cmd("NOOP")).code, 250);
    c.close();
    assert.equal((await inbox(t, b.address)).length, 0);
  }, { overrides: { max_message_size: 100_000 } });
});

Deno.test("SMTP encryption policy: the corpus through submission and inbound", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const self = a.address;
    const wrongTag = armorPackets(concatBytes(packet(1, 10), packet(11, 10)));
    const extra = armorPackets(concatBytes(packet(1, 10), packet(18, 10), packet(1, 10)));
    const aead = armorPackets(concatBytes(packet(3, 10), packet(20, 10)));
    const onlyKeys = armorPackets(concatBytes(packet(1, 10), packet(3, 10)));
    const valid = armorPackets(concatBytes(packet(1, 10), packet(3, 10), packet(18, 10)));
    const cases: [string, string, number][] = [
      ["encrypted", await encryptedMessage(self, b.address), 250],
      ["synthetic PKESK+SKESK+SEIPD", pgpMime(self, b.address, valid), 250],
      ["secure-join vc-request", secureJoinRequest(self, b.address), 250],
      ["secure-join with another body", secureJoinRequest(self, b.address, "Buy now!"), 523],
      ["plain text", plainMessage(self, b.address), 523],
      ["html", htmlMessage(self, b.address), 523],
      ["fake armor in text/plain", fakeArmorMessage(self, b.address), 523],
      ["wrong packet tag", pgpMime(self, b.address, wrongTag), 523],
      ["trailing packet after SEIPD", pgpMime(self, b.address, extra), 523],
      ["AEAD packet", pgpMime(self, b.address, aead), 523],
      ["no SEIPD", pgpMime(self, b.address, onlyKeys), 523],
      ["bounce with a forged From", bounceMessage(t.domain, b.address), 500],
    ];
    for (const [name, message, code] of cases) {
      const c = await submission(t, a);
      const r = await c.sendMail(self, [b.address], message);
      assert.equal(r.code, code, `${name}: ${r.text}`);
      if (code === 523) assert.equal(r.text, "523 Encryption Needed: Invalid Unencrypted Mail");
      c.close();
    }
    assert.equal((await inbox(t, b.address)).length, 3);

    // Inbound: the real Delta Chat messages pass (DKIM-signed by their relay, chat.test);
    // cleartext does not; bounces do; unsigned mail from a named domain does not.
    const corpus = realDeltaChatMessages();
    for (const [i, { name, text }] of corpus.entries()) {
      const from = /^From: <([^>]+)>/m.exec(text)![1];
      const signed = await signMessage(new TextEncoder().encode(text), "chat.test", {
        selector: DKIM_SELECTOR,
        privateKeyPem: REF_KEY,
      });
      const c = await inbound(t);
      const r = await c.sendMail(from, [b.address], signed);
      assert.equal(r.code, 250, `${name}: ${r.text}`);
      c.close();
      if (i === 0) {
        const unsigned = await inbound(t);
        const refused = await unsigned.sendMail(from, [b.address], text);
        assert.equal(refused.text, "554 5.7.1 No DKIM signature found");
        unsigned.close();
      }
    }
    const mx = await inbound(t);
    const plain = await mx.sendMail(
      "x@remote.example",
      [b.address],
      plainMessage("x@remote.example", b.address),
    );
    assert.equal(plain.code, 523);
    const bounceBytes = await signMessage(
      new TextEncoder().encode(bounceMessage("chat.test", b.address)),
      "chat.test",
      { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
    );
    const bounce = await mx.sendMail("", [b.address], bounceBytes);
    assert.equal(bounce.code, 250, bounce.text);
    mx.close();
    const stored = await inbox(t, b.address);
    assert.equal(stored.length, 3 + corpus.length + 1);
    for (const m of stored) {
      const header = m.split("\r\n\r\n")[0];
      assert.ok(!/^(received|dkim-signature|authentication-results):/im.test(header), header);
    }
  }, {
    overrides: { max_user_send_burst_size: 100 },
    relay: {
      dns: chatTestDns(),
    },
  });
});

Deno.test("SMTP inbound: MAIL before STARTTLS is refused as the reference's Postfix does", async () => {
  await withRelay(async (t) => {
    const c = await SmtpTestClient.connect(t.addr("smtp"));
    assert.equal((await c.reply()).code, 220);
    const ehlo = await c.cmd("EHLO mx.remote.test");
    assert.ok(ehlo.lines.some((l) => l.endsWith("STARTTLS")), ehlo.text);
    assert.equal(
      (await c.cmd("MAIL FROM:<a@remote.example>")).text,
      "530 5.7.0 Must issue a STARTTLS command first",
    );
    // After STARTTLS the same transaction goes on.
    await c.startTls(t.caPem);
    assert.equal((await c.cmd("EHLO mx.remote.test")).code, 250);
    assert.equal((await c.cmd("MAIL FROM:<a@remote.example>")).code, 250);
    c.close();
  });
  // smtp_require_starttls = false accepts plaintext relays.
  await withRelay(async (t) => {
    const c = await SmtpTestClient.connect(t.addr("smtp"));
    await c.reply();
    await c.cmd("EHLO mx.remote.test");
    assert.equal((await c.cmd("MAIL FROM:<a@remote.example>")).code, 250);
    c.close();
  }, { overrides: { smtp_require_starttls: false } });
});

Deno.test("SMTP inbound: never an open relay, unknown users refused, null sender accepted", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const c = await inbound(t);
    assert.equal((await c.cmd("MAIL FROM:<>")).code, 250);
    const relay = await c.cmd("RCPT TO:<victim@elsewhere.example>");
    assert.equal(relay.code, 550);
    assert.match(relay.text, /5\.7\.1/);
    assert.equal((await c.cmd(`RCPT TO:<nosuchuser@${t.domain}>`)).code, 550);
    assert.equal((await c.cmd(`RCPT TO:<${b.address}>`)).code, 250);
    c.close();
  });
});

Deno.test("SMTP: an account blocked or deleted between RCPT and the end of DATA gets nothing", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await createAccount(t, "carol0001");
    const d = await createAccount(t, "dave00001");
    const accounts = t.relay.services.accounts;
    /** MAIL, RCPT… (all accepted), then `between`, then DATA: the final reply. */
    const send = async (
      s: SmtpTestClient,
      from: string,
      to: string[],
      message: string | Uint8Array,
      between: () => Promise<unknown>,
    ) => {
      assert.equal((await s.cmd(`MAIL FROM:<${from}>`)).code, 250);
      for (const r of to) {
        const x = await s.cmd(`RCPT TO:<${r}>`);
        assert.equal(x.code, 250, `${r}: ${x.text}`);
      }
      await between();
      assert.equal((await s.cmd("DATA")).code, 354);
      await s.send(typeof message === "string" ? message.replaceAll("\r\n.", "\r\n..") : message);
      await s.send("\r\n.\r\n");
      return await s.reply();
    };

    // Submission: bob is blocked and carol deleted after RCPT; dave still gets his copy.
    const events: RelayEvent[] = [];
    const off = t.relay.services.bus.subscribeAll((e) => events.push(e));
    const sub = await submission(t, a);
    const message = await encryptedMessage(a.address, b.address);
    const r = await send(sub, a.address, [b.address, c.address, d.address], message, async () => {
      await accounts.setBlocked(b.address, true);
      await accounts.delete(c.address);
    });
    assert.equal(r.code, 250, r.text);
    assert.equal((await inbox(t, b.address)).length, 0);
    assert.equal(await t.relay.services.store.getAccount(c.address), null);
    assert.equal((await inbox(t, d.address)).length, 1);
    // The event carries the account as the delivery left it.
    off();
    const dave = (await t.relay.services.store.getAccount(d.address))!;
    assert.deepEqual(
      events.filter((e) => e.type === "mail.delivered" && e.address !== a.address).map((e) =>
        e.type === "mail.delivered" &&
        [e.accountId, e.address, e.usedBytes, e.quotaBytes, e.hasPushTokens]
      ),
      [[dave.id, d.address, dave.usedBytes, null, false]],
    );
    assert.ok(dave.usedBytes > 0);
    // The sender is told who got nothing (as Postfix bounces what Dovecot's LMTP refuses).
    const told = (n: number, gone: string[]) => {
      const report = n < own.length ? own[n] : "";
      for (const g of gone) {
        assert.ok(
          report.includes(`Final-Recipient: rfc822; ${g}\r\nAction: failed\r\nStatus: 5.1.1`),
          report,
        );
      }
    };
    let own = await inbox(t, a.address);
    assert.equal(own.length, 1);
    told(0, [b.address, c.address]);
    // Only gone recipients: accepted and stored nowhere, as a submission to them always was;
    // the sender gets the report.
    await accounts.setBlocked(b.address, false);
    const none = await send(
      sub,
      a.address,
      [b.address],
      message,
      () => accounts.setBlocked(b.address, true),
    );
    assert.equal(none.code, 250, none.text);
    assert.equal((await inbox(t, b.address)).length, 0);
    own = await inbox(t, a.address);
    assert.equal(own.length, 2);
    told(1, [b.address]);
    // And at RCPT now, right after the admin's change, they are unknown.
    assert.equal((await sub.cmd("RSET")).code, 250);
    assert.equal((await sub.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    for (const gone of [b.address, c.address]) {
      const rcpt = await sub.cmd(`RCPT TO:<${gone}>`);
      assert.equal(rcpt.code, 550);
      assert.match(rcpt.text, /5\.1\.1 .*User unknown/);
    }
    sub.close();

    // Inbound: the only recipient blocked after RCPT: nothing stored, 550 5.1.1 at the end.
    await accounts.setBlocked(b.address, false);
    const bounce = await signMessage(
      new TextEncoder().encode(bounceMessage("chat.test", d.address)),
      "chat.test",
      { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
    );
    const mx = await inbound(t);
    const refused = await send(
      mx,
      "",
      [d.address],
      bounce,
      () => accounts.setBlocked(d.address, true),
    );
    assert.equal(refused.text, "550 5.1.1 No such recipient");
    assert.equal((await inbox(t, d.address)).length, 1);
    // Two recipients, one deleted meanwhile: the other gets it.
    await accounts.setBlocked(d.address, false);
    const both = await send(
      mx,
      "",
      [b.address, d.address],
      bounce,
      () => accounts.delete(d.address),
    );
    assert.equal(both.code, 250, both.text);
    assert.equal((await inbox(t, b.address)).length, 1);
    mx.close();
  }, {
    relay: {
      dns: chatTestDns(),
    },
  });
});

Deno.test("SMTP send rate: a burst of 10, then 450 4.7.1", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await submission(t, a);
    const msg = await encryptedMessage(a.address, b.address);
    for (let i = 0; i < 10; i++) {
      assert.equal((await c.sendMail(a.address, [b.address], msg)).code, 250, `message ${i + 1}`);
    }
    // Refused per recipient, as the reference relay's Postfix reports its filter's answer.
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    const r = await c.cmd(`RCPT TO:<${b.address}>`);
    assert.equal(r.code, 450);
    assert.match(r.text, /^450 4\.7\.1: Too much mail from /);
    c.close();
    // One send comes back a minute after the burst: a slow machine cannot refill it meanwhile.
  }, { overrides: { max_user_send_per_minute: 1 } });
});

Deno.test("SMTP send rate: one message to more recipients than the burst takes one send", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    // A group of 12: one message, twelve RCPTs (the reference's filtermail judges the rate at
    // MAIL FROM, once per message); the 11th RCPT was refused with 450 4.7.1.
    const group = [];
    for (let i = 0; i < 12; i++) {
      group.push(await createAccount(t, `member${String(i).padStart(3, "0")}`));
    }
    const c = await submission(t, a);
    const msg = await encryptedMessage(a.address, group[0].address);
    const r = await c.sendMail(a.address, group.map((m) => m.address), msg);
    assert.equal(r.code, 250, r.text);
    for (let i = 0; i < 9; i++) {
      assert.equal((await c.sendMail(a.address, [a.address], msg)).code, 250, `message ${i + 2}`);
    }
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${a.address}>`)).code, 450, "the 11th message");
    c.close();
  }, { overrides: { max_user_send_per_minute: 1 } });
});

Deno.test("SMTP defence: smuggling, bare LF, long lines, too many errors", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const enc = new TextEncoder();
    const good = await encryptedMessage(a.address, b.address);

    // <LF>.<LF> and <LF>.<CRLF> do not end the data; the message is refused for its bare LFs,
    // and the "smuggled" second transaction is never executed.
    const c = await submission(t, a);
    assert.equal((await c.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${b.address}>`)).code, 250);
    assert.equal((await c.cmd("DATA")).code, 354);
    await c.send(
      enc.encode(
        good + "\n.\nMAIL FROM:<" + a.address + ">\r\nRCPT TO:<" + b.address + ">\r\nDATA\r\n" +
          good + "\n.\r\n",
      ),
    );
    await c.send(".\r\n");
    const r = await c.reply();
    assert.equal(r.code, 500, r.text);
    assert.match(r.text, /5\.6\.11/);
    assert.equal((await c.cmd("NOOP")).code, 250);
    c.close();
    assert.equal((await inbox(t, b.address)).length, 0);

    const long = await submission(t, a);
    const tooLong = await long.cmd("NOOP " + "x".repeat(5000));
    assert.equal(tooLong.code, 500);
    assert.match(tooLong.text, /5\.5\.2/);
    assert.equal((await long.cmd("NOOP")).code, 250);
    long.close();

    // As the reference relay's Postfix (smtpd_hard_error_limit 20): the 20th error is answered,
    // then 421 ends the session.
    const errors = await inbound(t);
    for (let i = 0; i < 20; i++) assert.equal((await errors.cmd("BOGUS")).code, 500);
    assert.equal((await errors.reply()).code, 421);
    assert.ok(await errors.closedByServer());
    errors.close();

    // Commands pipelined after STARTTLS are refused.
    const inject = await SmtpTestClient.connect(t.addr("submission"));
    await inject.reply();
    await inject.cmd("EHLO x.test");
    await inject.send("STARTTLS\r\nNOOP\r\n");
    const refused = await inject.reply();
    assert.equal(refused.code, 501);
    inject.close();
  });
});

Deno.test("SMTP error limit: a message to many deleted accounts still reaches the live ones (25 and 587)", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    // 15 accounts of a group that were deleted: each RCPT is refused, and each refusal is an
    // error of the session; Postfix allows 20 (and forgives them once a message is taken in).
    const gone = Array.from(
      { length: 15 },
      (_, i) => `gone${String(i).padStart(5, "0")}@${t.domain}`,
    );
    const send = async (c: SmtpTestClient, from: string, message: string | Uint8Array) => {
      assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
      for (const r of gone) assert.equal((await c.cmd(`RCPT TO:<${r}>`)).code, 550, r);
      assert.equal((await c.cmd(`RCPT TO:<${b.address}>`)).code, 250);
      assert.equal((await c.cmd("DATA")).code, 354);
      await c.send(typeof message === "string" ? message.replaceAll("\r\n.", "\r\n..") : message);
      await c.send("\r\n.\r\n");
      return await c.reply();
    };
    const sub = await submission(t, a);
    const r1 = await send(sub, a.address, await encryptedMessage(a.address, b.address));
    assert.equal(r1.code, 250, r1.text);
    // The errors were forgiven by the message taken in: a second such message goes too.
    const r2 = await send(sub, a.address, await encryptedMessage(a.address, b.address));
    assert.equal(r2.code, 250, r2.text);
    sub.close();
    const bounce = await signMessage(
      new TextEncoder().encode(bounceMessage("chat.test", b.address)),
      "chat.test",
      { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
    );
    const mx = await inbound(t);
    const r3 = await send(mx, "", bounce);
    assert.equal(r3.code, 250, r3.text);
    mx.close();
    assert.equal((await inbox(t, b.address)).length, 3);
  }, {
    relay: {
      dns: chatTestDns(),
    },
  });
});

Deno.test("SMTP: a recipient whose mailbox is full: 552 5.2.2 with Dovecot's text, nothing stored; others still get it", async () => {
  await withRelay(async (t) => {
    const { b, c, store } = await fullAndRoomy(t);
    const bounce = await signMessage(
      new TextEncoder().encode(bounceMessage("chat.test", b.address)),
      "chat.test",
      { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
    );
    const mx = await inbound(t);
    const full = await mx.sendMail("", [b.address], bounce);
    // The reference's Dovecot refuses with 552 5.2.2 "Quota exceeded (mailbox for user is full)".
    assert.equal(full.code, 552, full.text);
    assert.match(full.text, /^552 5\.2\.2 <.+> Quota exceeded \(mailbox for user is full\)/);
    assert.equal((await mx.cmd("NOOP")).code, 250);
    const both = await mx.sendMail("", [b.address, c.address], bounce);
    assert.equal(both.code, 250, both.text);
    mx.close();
    assert.equal((await inbox(t, b.address)).length, 0);
    assert.equal((await inbox(t, c.address)).length, 1);
    // A bounce is never bounced: nothing goes back to the null sender.
    assert.equal(await store.countQueued(), 0);
  }, {
    relay: {
      dns: chatTestDns(),
    },
  });
});

/** The outbound queue's entries with their bodies (the worker is stopped: manualQueue). */
async function queued(t: TestRelay) {
  const store = t.relay.services.store;
  const { items } = await store.listQueue({ limit: 100 });
  return await Promise.all(items.map(async (e) => ({
    sender: e.sender,
    recipients: e.recipients.map((r) => r.recipient),
    bytes: (await store.readBody(e.bodyId))!,
  })));
}

/** bobby0001, whose mailbox is full at 100 bytes, and carol0001, with room to spare. */
async function fullAndRoomy(t: TestRelay) {
  const b = await createAccount(t, "bobby0001");
  const c = await createAccount(t, "carol0001");
  const store = t.relay.services.store;
  await store.setQuota((await store.getAccount(b.address))!.id, 100);
  return { b, c, store };
}

/**
 * The queue holds one entry, the report to remote `sender` from the null sender that `failed`'s
 * mailbox is full (committed before the 250).
 */
async function assertQueuedQuotaBounce(
  t: TestRelay,
  sender: string,
  failed: string,
  messageId: string,
) {
  const q = await queued(t);
  assert.equal(q.length, 1);
  assert.equal(q[0].sender, "");
  assert.deepEqual(q[0].recipients, [sender]);
  assertQuotaBounce(t, q[0].bytes, sender, failed, messageId);
}

/** A delivery status notification for `failed` (whose mailbox is full) about `messageId`. */
function assertQuotaBounce(
  t: TestRelay,
  bounce: Uint8Array,
  to: string,
  failed: string,
  messageId: string,
) {
  const text = dec.decode(bounce);
  assert.match(
    text,
    new RegExp(
      `^From: Mail Delivery System <MAILER-DAEMON@${t.domain.replace(/[[\].]/g, "\\$&")}>`,
      "m",
    ),
  );
  assert.match(text, new RegExp(`^To: <${to.replace(/[[\].]/g, "\\$&")}>`, "m"));
  assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
  assert.match(text, /^Auto-Submitted: auto-replied/m);
  assert.ok(
    text.includes(`Final-Recipient: rfc822; ${failed}\r\nAction: failed\r\nStatus: 5.2.2`),
    text,
  );
  assert.match(
    text,
    /Diagnostic-Code: smtp; 552 5\.2\.2 <.+> Quota exceeded \(mailbox for user is full\)/,
  );
  // The original header (its Message-ID is how the sender's app finds the failed message).
  assert.ok(text.includes(`Message-ID: ${messageId}`), text);
  // It passes the inbound policy of a chatmail relay (tern's own gate: the reference's rule).
  const verdict = checkIncoming({ mailFrom: "", recipients: [to], message: bounce });
  assert.ok(verdict.accept && verdict.kind === "mailer_daemon", JSON.stringify(verdict));
}

Deno.test("SMTP inbound: one of several local recipients is full: 250 for the others, a bounce to the remote sender on the queue", async () => {
  await withRelay(async (t) => {
    const { b, c } = await fullAndRoomy(t);
    const sender = "dave0001@chat.test";
    const message = await encryptedMessage(sender, b.address);
    const messageId = /^Message-ID: (.+)$/m.exec(message)![1];
    const signed = await signMessage(new TextEncoder().encode(message), "chat.test", {
      selector: DKIM_SELECTOR,
      privateKeyPem: REF_KEY,
    });
    const mx = await inbound(t);
    const r = await mx.sendMail(sender, [b.address, c.address], signed);
    assert.equal(r.code, 250, r.text);
    mx.close();
    assert.equal((await inbox(t, b.address)).length, 0);
    assert.equal((await inbox(t, c.address)).length, 1);
    // Committed before the 250: the bounce is on the queue, from the null sender.
    await assertQueuedQuotaBounce(t, sender, b.address, messageId);

    // Envelope sender unlike the From address: as the reference's reset to <>, nothing goes back.
    const mx2 = await inbound(t);
    const r2 = await mx2.sendMail("other0001@chat.test", [b.address, c.address], signed);
    assert.equal(r2.code, 250, r2.text);
    // Nor to a MAILER-DAEMON.
    const r3 = await mx2.sendMail("MAILER-DAEMON@chat.test", [b.address, c.address], signed);
    assert.equal(r3.code, 250, r3.text);
    mx2.close();
    assert.equal((await inbox(t, c.address)).length, 3);
    assert.equal((await queued(t)).length, 1);
  }, {
    relay: {
      manualQueue: true,
      dns: chatTestDns(),
    },
  });
});

Deno.test("SMTP submission: a full local recipient among others (local and remote): 250, a bounce in the sender's INBOX", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const { b, c } = await fullAndRoomy(t);
    const message = await encryptedMessage(a.address, b.address);
    const messageId = /^Message-ID: (.+)$/m.exec(message)![1];
    // Local only, one full.
    const sub = await submission(t, a);
    const r = await sub.sendMail(a.address, [b.address, c.address], message);
    assert.equal(r.code, 250, r.text);
    assert.equal((await inbox(t, c.address)).length, 1);
    assert.equal((await inbox(t, b.address)).length, 0);
    let own = await inbox(t, a.address);
    assert.equal(own.length, 1);
    assertQuotaBounce(
      t,
      new TextEncoder().encode(own[0]),
      a.address,
      b.address,
      messageId,
    );
    // The full one and a remote recipient: the remote one is queued, the sender told of the other.
    const r2 = await sub.sendMail(a.address, [b.address, "zed0001@elsewhere.test"], message);
    assert.equal(r2.code, 250, r2.text);
    const q = await queued(t);
    assert.deepEqual(q.map((e) => [e.sender, e.recipients]), [[a.address, [
      "zed0001@elsewhere.test",
    ]]]);
    own = await inbox(t, a.address);
    assert.equal(own.length, 2);
    assertQuotaBounce(
      t,
      new TextEncoder().encode(own[1]),
      a.address,
      b.address,
      messageId,
    );
    sub.close();
  }, { relay: { manualQueue: true } });
});

Deno.test("/mxdeliv: one of several local recipients is full: 200 for the others, a bounce to the sender on the queue", async () => {
  await withRelay(async (t) => {
    const { b, c } = await fullAndRoomy(t);
    const sender = "dave0001@[127.0.0.9]";
    const message = await encryptedMessage(sender, b.address);
    const messageId = /^Message-ID: (.+)$/m.exec(message)![1];
    using client = Deno.createHttpClient({ caCerts: [t.caPem] });
    const post = (from: string) =>
      fetch(`https://${t.relay.addresses.https}/mxdeliv`, {
        method: "POST",
        client,
        headers: [["x-mail-from", `<${from}>`], ["x-mail-to", `<${b.address}>`], [
          "x-mail-to",
          `<${c.address}>`,
        ]],
        body: message,
      });
    // As the reference's /mxdeliv: one answer for the message (filtermail reinjects it; Postfix
    // bounces what Dovecot refuses afterwards).
    const res = await post(sender);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "250 2.0.0 OK");
    assert.equal((await inbox(t, b.address)).length, 0);
    assert.equal((await inbox(t, c.address)).length, 1);
    await assertQueuedQuotaBounce(t, sender, b.address, messageId);
  }, { overrides: { "listen.https": "127.0.0.1:0" }, relay: { manualQueue: true } });
});

Deno.test("/mxdeliv: a body dot-stuffed as the reference's filtermail posts it is stored as signed", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    // A bounce from a reference relay quoting lines that start with ".", DKIM-signed as sent.
    const text = "Your message could not be delivered.\r\n.quoted\r\n.\r\n..two dots";
    const signed = dec.decode(
      await signMessage(
        new TextEncoder().encode(
          bounceMessage("chat.test", b.address).replace(
            "Your message could not be delivered.",
            text,
          ),
        ),
        "chat.test",
        { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
      ),
    );
    // chatmail-relay.md §5.5: the DATA as SMTP carries it, without the final ".".
    const stuffed = signed.replace(/^\./gm, "..");
    using client = Deno.createHttpClient({ caCerts: [t.caPem] });
    const res = await fetch(`https://${t.relay.addresses.https}/mxdeliv`, {
      method: "POST",
      client,
      headers: [["x-mail-to", b.address]],
      body: stuffed,
    });
    assert.equal(await res.text(), "250 2.0.0 OK");
    assert.equal(res.status, 200);
    const [stored] = await inbox(t, b.address);
    const body = (m: string) => m.slice(m.indexOf("\r\n\r\n"));
    assert.equal(body(stored), body(signed));
  }, { overrides: { "listen.https": "127.0.0.1:0" }, relay: { dns: chatTestDns() } });
});

Deno.test("SMTP RCPT TO:<postmaster> (no domain, any case) is postmaster at the mail domain (RFC 5321 §4.1.1.3)", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const sub = await submission(t, a);
    // No such account here: accepted as postmaster@<domain> is (RFC 5321 §4.5.1).
    assert.equal((await sub.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    for (const rcpt of ["<postmaster>", "<PostMaster>", "postmaster", `<postmaster@${t.domain}>`]) {
      const r = await sub.cmd(`RCPT TO:${rcpt}`);
      assert.equal(r.code, 250, `${rcpt}: ${r.text}`);
    }
    assert.equal((await sub.cmd("RSET")).code, 250);
    // Still a syntax error: a half bracket, another bare name.
    assert.equal((await sub.cmd(`MAIL FROM:<${a.address}>`)).code, 250);
    for (const rcpt of ["<postmaster", "<webmaster>"]) {
      assert.equal((await sub.cmd(`RCPT TO:${rcpt}`)).code, 501, rcpt);
    }
    assert.equal((await sub.cmd("RSET")).code, 250);
    // The operator made the account: <Postmaster> reaches it, not the admin contact.
    const pm = await createAccount(t, "postmaster");
    await t.relay.services.settings.set("admin_contact", a.address);
    const r = await sub.sendMail(
      a.address,
      ["PostMaster"],
      await encryptedMessage(a.address, pm.address),
    );
    assert.equal(r.code, 250, r.text);
    sub.close();
    assert.equal((await inbox(t, pm.address)).length, 1);
  }, { overrides: { username_max_length: 10 } });
});

Deno.test("SMTP mail for postmaster without such an account goes to the admin contact's account, else to a postmaster account the operator opens", async () => {
  await withRelay(async (t) => {
    const { accounts, settings, store } = t.relay.services;
    const a = await createAccount(t, "alice0001");
    const op = await createAccount(t, "operator1");
    const postmaster = `postmaster@${t.domain}`;
    await settings.set("admin_contact", `mailto:${op.address}`);
    const sub = await submission(t, a);
    const r = await sub.sendMail(a.address, [postmaster], await encryptedMessage(a.address, "x"));
    assert.equal(r.code, 250, r.text);
    // No exception to the encryption policy (the reference dropped its passthrough recipients).
    const plain = await sub.sendMail(a.address, [postmaster], plainMessage(a.address, postmaster));
    assert.equal(plain.code, 523, plain.text);
    sub.close();
    assert.equal((await inbox(t, op.address)).length, 1);
    assert.equal(await store.getAccount(postmaster), null, "nothing made");
    // A bounce from another relay (cleartext, as the reference's filtermail lets through).
    const mx = await inbound(t);
    const bounce = await mx.sendMail(
      "",
      ["postmaster"],
      await signMessage(
        new TextEncoder().encode(bounceMessage("chat.test", postmaster)),
        "chat.test",
        { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
      ),
    );
    assert.equal(bounce.code, 250, bounce.text);
    assert.equal((await inbox(t, op.address)).length, 2);
    // The admin contact is not (or no longer) a local account: a postmaster account keeps the
    // mail, which nobody can open before the operator sets its password.
    await settings.set("admin_contact", "someone@elsewhere.example");
    const again = await mx.sendMail(
      "",
      [postmaster],
      await signMessage(
        new TextEncoder().encode(bounceMessage("chat.test", postmaster)),
        "chat.test",
        { selector: DKIM_SELECTOR, privateKeyPem: REF_KEY },
      ),
    );
    assert.equal(again.code, 250, again.text);
    mx.close();
    assert.equal((await inbox(t, postmaster)).length, 1);
    await assert.rejects(accounts.authenticate(postmaster, "password-123456"));
    await accounts.setPassword(postmaster, "password-123456");
    assert.equal((await accounts.authenticate(postmaster, "password-123456")).address, postmaster);
  }, { relay: { dns: chatTestDns() }, overrides: { username_max_length: 10 } });
});

Deno.test("SMTP pipelining: a whole transaction in one write", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const c = await submission(t, a);
    const msg = await encryptedMessage(a.address, b.address);
    await c.send(`MAIL FROM:<${a.address}>\r\nRCPT TO:<${b.address}>\r\nDATA\r\n`);
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).code, 354);
    await c.send(msg + ".\r\nQUIT\r\n");
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.reply()).code, 221);
    c.close();
    assert.equal((await inbox(t, b.address)).length, 1);
  });
});
