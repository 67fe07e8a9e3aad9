// IMAP over real sockets and real TLS against an in-process relay: capabilities, login (JIT),
// mailboxes, FETCH/STORE/SEARCH/COPY/MOVE/EXPUNGE, APPEND literals, CONDSTORE/QRESYNC, METADATA,
// QUOTA, and IDLE wake-ups across sessions.

import assert from "node:assert/strict";
import { createLogger } from "../src/log/mod.ts";
import { createAccount, type TestRelay, withRelay } from "./support/relay.ts";
import { ImapTestClient, metadataValue } from "./support/imap_client.ts";
import { SmtpTestClient } from "./support/smtp_client.ts";
import { encryptedMessage } from "./support/messages.ts";

const enc = new TextEncoder();

async function session(t: TestRelay, user?: { address: string; password: string }) {
  const { client, greeting } = await ImapTestClient.connect(t.addr("imaps"), {
    tls: true,
    caPem: t.caPem,
  });
  assert.match(greeting, /^\* OK /);
  if (user) {
    const r = await client.login(user.address, user.password);
    assert.ok(r.ok, r.status);
  }
  return client;
}

const NESTED = [
  "From: Alice <alice@example.org>",
  "To: bob@example.org, Group: c@example.org, d@example.org;",
  "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
  "Date: Mon, 23 Nov 2026 07:00:00 +0000",
  "Message-ID: <nested-1@example.org>",
  "MIME-Version: 1.0",
  'Content-Type: multipart/mixed; boundary="outer"',
  "",
  "--outer",
  'Content-Type: multipart/alternative; boundary="inner"',
  "",
  "--inner",
  "Content-Type: text/plain; charset=utf-8",
  "",
  "plain body findme",
  "--inner",
  "Content-Type: text/html; charset=utf-8",
  "",
  "<p>html body</p>",
  "--inner--",
  "--outer",
  'Content-Type: application/octet-stream; name="a.bin"',
  "Content-Transfer-Encoding: base64",
  'Content-Disposition: attachment; filename="a.bin"',
  "",
  "AAECAwQ=",
  "--outer--",
  "",
].join("\r\n");

async function append(t: TestRelay, address: string, text: string, flags: string[] = []) {
  const account = (await t.relay.services.store.getAccount(address))!;
  return await t.relay.services.mailboxes.append({
    accountId: account.id,
    mailboxName: "INBOX",
    data: enc.encode(text),
    flags,
  });
}

Deno.test("IMAP capabilities, STARTTLS, LOGINDISABLED, login with JIT and failures", async () => {
  await withRelay(async (t) => {
    const { client: plain, greeting } = await ImapTestClient.connect(t.addr("imap"));
    assert.match(greeting, /STARTTLS/);
    assert.match(greeting, /LOGINDISABLED/);
    assert.match(greeting, /XCHATMAIL/);
    assert.match(greeting, /XDELTAPUSH/);
    const refused = await plain.login(`someone01@${t.domain}`, "password-123456");
    assert.match(refused.status, /^NO \[PRIVACYREQUIRED\]/);
    await plain.startTls(t.caPem);
    const caps = await plain.cmd("CAPABILITY");
    assert.match(caps.untagged[0], /AUTH=PLAIN/);
    assert.doesNotMatch(caps.untagged[0], /STARTTLS|LOGINDISABLED/);
    // JIT: the first login creates the account.
    const jit = await plain.login(`someone01@${t.domain}`, "password-123456");
    assert.ok(jit.ok, jit.status);
    const after = await plain.cmd("CAPABILITY");
    for (
      const cap of [
        "IMAP4rev1",
        "LITERAL+",
        "SASL-IR",
        "ID",
        "ENABLE",
        "IDLE",
        "NAMESPACE",
        "UIDPLUS",
        "MOVE",
        "UNSELECT",
        "CONDSTORE",
        "QRESYNC",
        "SPECIAL-USE",
        "QUOTA",
        "METADATA",
        "COMPRESS=DEFLATE",
        "APPENDLIMIT=",
        "XCHATMAIL",
        "XDELTAPUSH",
      ]
    ) assert.ok(after.untagged[0].includes(cap), `${cap} in ${after.untagged[0]}`);
    assert.ok((await plain.cmd("LOGOUT")).ok);
    plain.close();

    const s = await session(t);
    const wrong = await s.login(`someone01@${t.domain}`, "wrong-password-1");
    assert.match(wrong.status, /^NO \[AUTHENTICATIONFAILED\]/);
    const tag = s.nextTag();
    await s.send(`${tag} AUTHENTICATE PLAIN\r\n`);
    assert.match(await s.readResponse(), /^\+/);
    await s.send(btoa(`\0someone01@${t.domain}\0password-123456`) + "\r\n");
    assert.ok((await s.collect(tag)).ok);
    s.close();

    const ir = await session(t);
    const r = await ir.cmd(
      `AUTHENTICATE PLAIN ${btoa(`\0someone01@${t.domain}\0password-123456`)}`,
    );
    assert.ok(r.ok, r.status);
    assert.match((await ir.cmd("ID NIL")).untagged[0], /^\* ID/);
    assert.equal((await ir.cmd("NAMESPACE")).untagged[0], '* NAMESPACE (("" ".")) NIL NIL');
    ir.close();
  });
});

Deno.test("IMAP AUTHENTICATE PLAIN acting as another user fails like a wrong password, and counts", async () => {
  await withRelay(async (t) => {
    const alice = await createAccount(t, "alice0001");
    const carol = await createAccount(t, "carol0001");
    const plain = (authzid: string, user: string, password: string) =>
      btoa(`${authzid}\0${user}\0${password}`);
    // An authorization identity naming the user itself (case aside) is fine.
    const same = await session(t);
    const ok = await same.cmd(
      `AUTHENTICATE PLAIN ${plain(carol.address.toUpperCase(), carol.address, carol.password)}`,
    );
    assert.ok(ok.ok, ok.status);
    same.close();
    // Right password, but asking to act as someone else: continuation form...
    const s = await session(t);
    const tag = s.nextTag();
    await s.send(`${tag} AUTHENTICATE PLAIN\r\n`);
    assert.match(await s.readResponse(), /^\+/);
    await s.send(plain(carol.address, alice.address, alice.password) + "\r\n");
    assert.equal((await s.collect(tag)).status, "NO [AUTHENTICATIONFAILED] Authentication failed");
    // ...and initial response (SASL-IR); a name not yet taken is not created either.
    const newcomer = `newcomer1@${t.domain}`;
    const ir = await s.cmd(
      `AUTHENTICATE PLAIN ${plain(alice.address, newcomer, "password-123456")}`,
    );
    assert.equal(ir.status, "NO [AUTHENTICATIONFAILED] Authentication failed");
    assert.equal(await t.relay.services.store.getAccount(newcomer), null);
    // Both failures counted against this address: the next attempt, even a right one, is
    // throttled (this config refuses rather than waits).
    const next = await s.cmd(`AUTHENTICATE PLAIN ${plain("", alice.address, alice.password)}`);
    assert.match(next.status, /^NO \[UNAVAILABLE\] Too many failed logins/);
    s.close();
  }, { relay: { loginThrottle: { freeFailures: 2, maxWaitMs: 0 } } });
});

Deno.test("IMAP bad input: unknown command, syntax errors, state errors, huge literal", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t);
    assert.match((await s.cmd("FROBNICATE")).status, /^BAD/);
    assert.match((await s.cmd("SELECT INBOX")).status, /^BAD/);
    assert.ok((await s.login(user.address, user.password)).ok);
    assert.match((await s.cmd("FETCH 1 (FLAGS)")).status, /^BAD/);
    assert.match((await s.cmd("SELECT")).status, /^BAD/);
    const tag = s.nextTag();
    await s.send(`${tag} APPEND INBOX {999999999}\r\n`);
    const big = await s.collect(tag);
    assert.match(big.status, /^NO \[TOOBIG\]/);
    assert.ok((await s.cmd("NOOP")).ok, "still in sync");
    const tag2 = s.nextTag();
    await s.send(`${tag2} APPEND INBOX {999999999+}\r\n` + "x".repeat(1000));
    s.close();
    const account = (await t.relay.services.store.getAccount(user.address))!;
    const inbox = (await t.relay.services.store.getMailbox(account.id, "INBOX"))!;
    assert.equal(inbox.messages, 0, "nothing stored");
  }, { overrides: { max_message_size: 1_000_000 } });
});

Deno.test("IMAP: a command line over the limit is answered BAD [TOOBIG] with its own tag", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t, user);
    // A client waits for its tag: an untagged BAD left it waiting until its own timeout.
    const long = `/private/${"k".repeat(100_000)}`;
    const tag = s.nextTag();
    await s.send(`${tag} SETMETADATA INBOX (${long} "v")\r\n`);
    assert.match((await s.collect(tag)).status, /^BAD \[TOOBIG\]/);
    // The overlong line may also follow a literal: the tag is the one of the command's start.
    const tag2 = s.nextTag();
    await s.send(`${tag2} SETMETADATA INBOX {4+}\r\nabcd ${long} "v")\r\n`);
    assert.match((await s.collect(tag2)).status, /^BAD \[TOOBIG\]/);
    assert.ok((await s.cmd("NOOP")).ok, "still in sync");
    s.close();
  });
});

Deno.test("IMAP mailboxes: CREATE, LIST patterns, RENAME, DELETE, SUBSCRIBE, STATUS", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t, user);
    assert.ok((await s.cmd("CREATE DeltaChat")).ok);
    assert.ok((await s.cmd("CREATE Archive.2024")).ok);
    assert.ok((await s.cmd('CREATE "Entw&APw-rfe"')).ok);
    assert.match((await s.cmd("CREATE DeltaChat")).status, /^NO \[ALREADYEXISTS\]/);
    assert.match((await s.cmd("CREATE Sent (USE (\\Sent))")).status, /^OK/);
    const all = await s.cmd('LIST "" "*"');
    const names = all.untagged.map((l) => l.replace(/^\* LIST \([^)]*\) "\." /, ""));
    assert.deepEqual(
      names.sort(),
      [
        '"Archive"'.replace("Archive", "Archive.2024"),
        '"DeltaChat"',
        '"Entw&APw-rfe"',
        '"INBOX"',
        '"Sent"',
      ].sort(),
    );
    assert.match(all.untagged.find((l) => l.includes('"Sent"'))!, /\\Sent/);
    const top = await s.cmd('LIST "" "%"');
    assert.ok(!top.untagged.some((l) => l.includes("Archive.2024")));
    assert.equal((await s.cmd('LIST "" ""')).untagged[0], '* LIST (\\Noselect) "." ""');
    assert.ok((await s.cmd("RENAME DeltaChat Chats")).ok);
    assert.match((await s.cmd("RENAME Nope Other")).status, /^NO/);
    assert.ok((await s.cmd("SUBSCRIBE Chats")).ok);
    const lsub = await s.cmd('LSUB "" "*"');
    assert.ok(lsub.untagged.some((l) => l.includes('"Chats"')));
    assert.ok((await s.cmd("DELETE Chats")).ok);
    assert.match((await s.cmd("DELETE INBOX")).status, /^NO/);
    assert.match((await s.cmd("DELETE Chats")).status, /^NO \[NONEXISTENT\]/);
    await append(t, user.address, NESTED);
    const status = await s.cmd(
      "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)",
    );
    assert.match(
      status.untagged[0],
      /^\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1 HIGHESTMODSEQ \d+ SIZE \d+\)$/,
    );
    s.close();
  });
});

Deno.test("IMAP a mailbox deleted while another session has it selected ends that session with BYE, as Dovecot", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const a = await session(t, user);
    assert.ok((await a.cmd("CREATE DeltaChat")).ok);
    const b = await session(t, user);
    const c = await session(t, user);
    for (const s of [b, c]) assert.ok((await s.cmd("SELECT DeltaChat")).ok);
    const idle = c.nextTag();
    await c.send(`${idle} IDLE\r\n`);
    assert.match(await c.readResponse(), /^\+ /);
    assert.ok((await a.cmd("DELETE DeltaChat")).ok);
    // Another device deleted the folder: the sessions on it learn so and end (they went on
    // answering OK about messages that were gone, and IDLE waited on a folder that was no more).
    const bye = "* BYE Selected mailbox was deleted, have to disconnect.";
    const tag = b.nextTag();
    await b.send(`${tag} NOOP\r\n`);
    assert.equal(await b.readResponse(), bye);
    await assert.rejects(b.readResponse(), /connection closed by server/);
    assert.equal(await c.readResponse(), bye);
    await assert.rejects(c.readResponse(), /connection closed by server/);
    assert.ok((await a.cmd("NOOP")).ok);
    for (const s of [a, b, c]) s.close();
  });
});

Deno.test("IMAP FETCH: flags, envelope, bodystructure, sections, partial, \\Seen", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    await append(t, user.address, NESTED);
    const s = await session(t, user);
    const sel = await s.cmd("SELECT INBOX");
    assert.ok(sel.untagged.includes("* 1 EXISTS"));
    assert.ok(sel.untagged.some((l) => /^\* OK \[UIDVALIDITY \d+\]/.test(l)));
    assert.ok(sel.untagged.some((l) => /^\* OK \[HIGHESTMODSEQ \d+\]/.test(l)));
    assert.match(sel.status, /^OK \[READ-WRITE\]/);
    const f = await s.cmd("FETCH 1 (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)");
    assert.match(
      f.untagged[0],
      /^\* 1 FETCH \(UID 1 FLAGS \((\\Recent)?\) RFC822\.SIZE \d+ INTERNALDATE "[^"]+" ENVELOPE \(/,
    );
    assert.ok(f.untagged[0].includes('"=?utf-8?q?Gr=C3=BC=C3=9Fe?="'), f.untagged[0]);
    assert.ok(f.untagged[0].includes('(("Alice" NIL "alice" "example.org"))'), f.untagged[0]);
    const bs = await s.cmd("FETCH 1 BODYSTRUCTURE");
    assert.match(bs.untagged[0], /\(\("TEXT" "PLAIN" .*\)\("TEXT" "HTML" .*\) "ALTERNATIVE"/i);
    assert.match(bs.untagged[0], /"APPLICATION" "OCTET-STREAM" \("NAME" "a\.bin"\)/i);
    assert.match(bs.untagged[0], /"MIXED"/i);
    const part = await s.cmd("UID FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[2]<0.4>)");
    assert.ok(part.ok, part.status);
    assert.ok(part.untagged[0].includes("BODY[1.1] {17}\r\nplain body findme"), part.untagged[0]);
    assert.ok(part.untagged[0].includes("BODY[2]<0> {4}\r\nAAEC"), part.untagged[0]);
    const hdr = await s.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject message-id)])");
    assert.ok(
      hdr.untagged[0].includes(
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <nested-1@example.org>\r\n\r\n",
      ),
      hdr.untagged[0],
    );
    const flagsBefore = await s.cmd("FETCH 1 FLAGS");
    assert.equal(flagsBefore.untagged[0], "* 1 FETCH (FLAGS (\\Recent))");
    const full = await s.cmd("FETCH 1 BODY[]");
    assert.ok(full.untagged[0].includes("FLAGS (\\Recent \\Seen)"), full.untagged[0]);
    assert.ok(full.untagged[0].includes(NESTED));
    assert.match((await s.cmd("FETCH 5 FLAGS")).status, /^BAD/);
    const bin = await s.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])");
    assert.ok(bin.untagged[0].includes("BINARY.SIZE[2] 5"), bin.untagged[0]);
    s.close();
  });
});

Deno.test("IMAP STORE, SEARCH, COPY, MOVE, EXPUNGE with UIDPLUS and CONDSTORE", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    for (let i = 0; i < 4; i++) await append(t, user.address, NESTED.replace("findme", `n${i}`));
    const s = await session(t, user);
    await s.cmd("SELECT INBOX (CONDSTORE)");
    const st = await s.cmd("STORE 1:2 +FLAGS (\\Seen $Important)");
    // A new keyword is announced in FLAGS before any FETCH shows it.
    assert.match(st.untagged[0], /^\* FLAGS \(.*\\Draft \$Important\)$/);
    assert.match(st.untagged[1], /^\* OK \[PERMANENTFLAGS \(.*\$Important \\\*\)\]/);
    assert.equal(st.untagged.length, 4);
    assert.match(
      st.untagged[2],
      /^\* 1 FETCH \(FLAGS \((\\Recent )?\$Important \\Seen\) MODSEQ \(\d+\)\)$/,
    );
    assert.equal((await s.cmd("STORE 3 +FLAGS.SILENT (\\Flagged)")).untagged.length, 0);
    const modseq = Number(/MODSEQ \((\d+)\)/.exec(st.untagged[2])![1]);
    const cond = await s.cmd(`STORE 1,4 (UNCHANGEDSINCE ${modseq - 1}) +FLAGS (\\Answered)`);
    assert.match(cond.status, /^OK \[MODIFIED 1\]/);
    assert.deepEqual((await s.cmd("SEARCH UNSEEN")).untagged, ["* SEARCH 3 4"]);
    assert.deepEqual((await s.cmd("UID SEARCH SEEN")).untagged, ["* SEARCH 1 2"]);
    assert.deepEqual((await s.cmd("SEARCH OR FLAGGED KEYWORD $Important")).untagged, [
      "* SEARCH 1 2 3",
    ]);
    assert.deepEqual((await s.cmd("SEARCH BODY n2")).untagged, ["* SEARCH 3"]);
    assert.deepEqual((await s.cmd('SEARCH HEADER Message-ID "nested-1"')).untagged, [
      "* SEARCH 1 2 3 4",
    ]);
    assert.deepEqual((await s.cmd("SEARCH NOT UID 1:2")).untagged, ["* SEARCH 3 4"]);
    const bymod = await s.cmd(`SEARCH MODSEQ ${modseq}`);
    assert.match(bymod.untagged[0], /^\* SEARCH 1 2 3 4 \(MODSEQ \d+\)$/);
    assert.ok((await s.cmd("CREATE DeltaChat")).ok);
    const copy = await s.cmd("COPY 1 DeltaChat");
    assert.match(copy.status, /^OK \[COPYUID \d+ 1 1\]/);
    const move = await s.cmd("UID MOVE 2 DeltaChat");
    assert.ok(
      move.untagged.some((l) => /^\* OK \[COPYUID \d+ 2 2\]/.test(l)),
      move.untagged.join("|"),
    );
    assert.ok(move.untagged.includes("* 2 EXPUNGE"), move.untagged.join("|"));
    assert.match((await s.cmd("COPY 1 Nowhere")).status, /^NO \[TRYCREATE\]/);
    await s.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)");
    const ex = await s.cmd("EXPUNGE");
    assert.deepEqual(ex.untagged, ["* 1 EXPUNGE"]);
    const dc = await s.cmd("STATUS DeltaChat (MESSAGES)");
    assert.equal(dc.untagged[0], '* STATUS "DeltaChat" (MESSAGES 2)');
    s.close();
  });
});

Deno.test("IMAP SEARCH of thousands of keys is answered; a command too long for them all is NO [TOOBIG]; a command that fails mid-answer still gets its tagged reply on a line of its own", async () => {
  const errors: string[] = [];
  const log = createLogger("info", {
    write: (l) => JSON.parse(l).level === "error" && errors.push(l),
  });
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    for (let i = 0; i < 3; i++) await append(t, user.address, `Subject: ${i}\r\n\r\nx\r\n`);
    const s = await session(t, user);
    assert.ok((await s.cmd("SELECT INBOX")).ok);
    // SQLite refused an expression over 1 000 deep: a chain of 1 500 keys was an internal error.
    const many = await s.cmd(`SEARCH ${Array(1500).fill("OR SEEN UNSEEN").join(" ")}`);
    assert.ok(many.ok, many.status);
    assert.deepEqual(many.untagged, ["* SEARCH 1 2 3"]);
    // 42 000 keys (lines joined by literals) are more SQL parameters than SQLite takes: that
    // was NO [SERVERBUG] and an error in the log. A limit the client is told of, before any
    // "* SEARCH" line, and nothing for the operator to chase: the command's 380 KB are over
    // the 64 KiB one command may hold (which keeps a SEARCH under the store's NO [LIMIT]).
    let tag = s.nextTag();
    const line = Array(7000).fill("LARGER 1").join(" ");
    await s.send(`${tag} SEARCH${` ${line} BODY {1+}\r\nx`.repeat(6)}\r\n`);
    const limited = await s.collect(tag);
    assert.match(limited.status, /^NO \[TOOBIG\] /);
    assert.deepEqual(limited.untagged, []);
    assert.deepEqual(errors, []);
    assert.ok((await s.cmd("NOOP")).ok);
    // A store that fails once "* SEARCH" went out: its NO came glued to that line ("* SEARCHT3
    // NO …"), so the client never saw it and waited for ever.
    const mailboxes = t.relay.services.mailboxes;
    const scan = mailboxes.scanMessages;
    mailboxes.scanMessages = () => {
      mailboxes.scanMessages = scan;
      return Promise.reject(new Error("store failed mid-answer"));
    };
    tag = s.nextTag();
    await s.send(`${tag} SEARCH ALL\r\n`);
    let reply: string;
    do reply = await s.readResponse(); while (!reply.includes(`${tag} `));
    assert.match(reply, new RegExp(`^${tag} NO \\[SERVERBUG\\] `));
    assert.equal(errors.length, 1, "a real failure is logged");
    assert.ok((await s.cmd("NOOP")).ok);
    s.close();
  }, { relay: { log } });
});

Deno.test("IMAP: an empty synchronizing literal ({0}) is an ordinary empty string, before and after login", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const { client: s } = await ImapTestClient.connect(t.addr("imaps"), {
      tls: true,
      caPem: t.caPem,
    });
    // Each waits for the go-ahead, then sends nothing but the end of the line.
    const empty = async (command: string) => {
      const tag = s.nextTag();
      await s.send(`${tag} ${command} {0}\r\n`);
      assert.match(await s.readResponse(), /^\+/);
      await s.send("\r\n");
      return (await s.collect(tag)).status;
    };
    assert.match(await empty(`LOGIN ${user.address}`), /^NO \[AUTHENTICATIONFAILED\]/);
    assert.ok((await s.login(user.address, user.password)).ok);
    assert.match(await empty("SELECT"), /^NO /);
    assert.ok((await s.cmd("NOOP")).ok, "the session goes on");
    s.close();
  });
});

Deno.test("IMAP APPEND: synchronizing and LITERAL+ literals, 8-bit clean, APPENDUID", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t, user);
    const body = "From: a@b.example\r\nSubject: 8bit\r\n\r\nGrüße \u{1F600}\r\n";
    const bytes = enc.encode(body);
    const tag = s.nextTag();
    await s.send(`${tag} APPEND INBOX (\\Seen) "23-Nov-2026 08:00:00 +0000" {${bytes.length}}\r\n`);
    assert.match(await s.readResponse(), /^\+/);
    await s.send(bytes);
    await s.send("\r\n");
    const r = await s.collect(tag);
    assert.match(r.status, /^OK \[APPENDUID \d+ 1\]/);
    const plus = await s.cmd(`APPEND INBOX {${bytes.length}+}\r\n${body}`);
    assert.match(plus.status, /^OK \[APPENDUID \d+ 2\]/);
    assert.match((await s.cmd("APPEND Nope {1+}\r\nx")).status, /^NO \[TRYCREATE\]/);
    await s.cmd("SELECT INBOX");
    const f = await s.cmd("FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])");
    assert.ok(f.ok, f.status);
    assert.ok(f.untagged[0].includes('INTERNALDATE "23-Nov-2026 08:00:00 +0000"'), f.untagged[0]);
    assert.ok(f.untagged[0].includes(body), "8-bit content round-trips");
    s.close();
  });
});

/** The next response that is not a RECENT count (those follow every EXISTS). */
async function next(c: ImapTestClient): Promise<string> {
  while (true) {
    const r = await c.readResponse();
    if (!/^\* \d+ RECENT$/.test(r)) return r;
  }
}

Deno.test("IMAP IDLE: every session wakes at once on delivery, flags and expunge", async () => {
  await withRelay(async (t) => {
    const a = await createAccount(t, "alice0001");
    const b = await createAccount(t, "bobby0001");
    const one = await session(t, b);
    const two = await session(t, b);
    await one.cmd("SELECT INBOX");
    await two.cmd("SELECT INBOX");
    // A message delivered between SELECT and IDLE is reported when IDLE starts.
    await append(t, b.address, NESTED);
    const idleTag = one.nextTag();
    await one.send(`${idleTag} IDLE\r\n`);
    assert.match(await next(one), /^\+ /);
    assert.equal(await next(one), "* 1 EXISTS");
    const idle2 = two.nextTag();
    await two.send(`${idle2} IDLE\r\n`);
    assert.match(await next(two), /^\+ /);
    assert.equal(await next(two), "* 1 EXISTS");

    // SMTP delivery wakes both sessions.
    const smtp = await SmtpTestClient.connect(t.addr("submissions"), { tls: true, caPem: t.caPem });
    await smtp.reply();
    await smtp.cmd("EHLO x.test");
    await smtp.login(a.address, a.password);
    const started = performance.now();
    const sent = await smtp.sendMail(
      a.address,
      [b.address],
      await encryptedMessage(a.address, b.address),
    );
    assert.equal(sent.code, 250);
    assert.equal(await next(one), "* 2 EXISTS");
    assert.equal(await next(two), "* 2 EXISTS");
    const latency = performance.now() - started;
    assert.ok(latency < 5000);
    smtp.close();

    // A flag change and an expunge from a third session.
    const three = await session(t, b);
    await three.cmd("SELECT INBOX");
    await three.cmd("STORE 1 +FLAGS.SILENT (\\Seen)");
    assert.match(await next(one), /^\* 1 FETCH \(UID 1 FLAGS \((\\Recent )?\\Seen\)\)$/);
    await three.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)");
    await three.cmd("EXPUNGE");
    assert.match(await next(one), /^\* 1 FETCH/);
    assert.equal(await next(one), "* 1 EXPUNGE");
    three.close();

    await one.send("DONE\r\n");
    assert.match((await one.collect(idleTag)).status, /^OK/);
    await two.send("DONE\r\n");
    const rest = await two.collect(idle2);
    assert.ok(rest.ok);
    assert.ok(rest.untagged.includes("* 1 EXPUNGE"), rest.untagged.join("|"));
    one.close();
    two.close();
  });
});

Deno.test("IMAP IDLE: a quiet IDLE says * OK Still here at the notify interval, then still wakes and ends", async () => {
  await withRelay(async (t) => {
    const b = await createAccount(t, "bobby0001");
    const s = await session(t, b);
    await s.cmd("SELECT INBOX");
    const tag = s.nextTag();
    await s.send(`${tag} IDLE\r\n`);
    assert.match(await next(s), /^\+ /);
    // Nothing happened: the keepalive, again and again (a vanished phone's session ends at the
    // first write TCP cannot deliver, not at the 31-minute idle limit).
    assert.equal(await next(s), "* OK Still here");
    assert.equal(await next(s), "* OK Still here");
    await append(t, b.address, NESTED);
    let line = await next(s);
    while (line === "* OK Still here") line = await next(s);
    assert.equal(line, "* 1 EXISTS");
    await s.send("DONE\r\n");
    assert.ok((await s.collect(tag)).ok);
    s.close();
  }, { relay: { imapIdleNotifyMs: 300 } });
});

Deno.test("IMAP QRESYNC: VANISHED (EARLIER) and changed flags on SELECT", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    for (let i = 0; i < 3; i++) await append(t, user.address, NESTED);
    const s = await session(t, user);
    assert.match((await s.cmd("ENABLE QRESYNC")).untagged[0], /^\* ENABLED .*QRESYNC/);
    const sel = await s.cmd("SELECT INBOX");
    const uidValidity = /UIDVALIDITY (\d+)/.exec(sel.untagged.join(" "))![1];
    const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.untagged.join(" "))![1]);
    await s.cmd("UNSELECT");
    const other = await session(t, user);
    await other.cmd("SELECT INBOX");
    await other.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)");
    await other.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)");
    await other.cmd("EXPUNGE");
    other.close();
    const re = await s.cmd(`SELECT INBOX (QRESYNC (${uidValidity} ${modseq}))`);
    assert.ok(re.untagged.includes("* VANISHED (EARLIER) 2"), re.untagged.join("|"));
    assert.ok(
      re.untagged.some((l) => /^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$/.test(l)),
      re.untagged.join("|"),
    );
    const changed = await s.cmd(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq} VANISHED)`);
    assert.ok(changed.untagged.includes("* VANISHED (EARLIER) 2"), changed.untagged.join("|"));
    s.close();
  });
});

Deno.test("IMAP METADATA: an entry named twice is answered once, a command names at most 100, and sets all or none", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t, user);
    // 60 000 copies of "/shared" with DEPTH infinity were each answered in full: 40 MB built in
    // memory from a 500 KB command while the relay served no one else.
    const repeated = await s.cmd(
      `GETMETADATA (DEPTH infinity) "" (${Array(2000).fill("/shared").join(" ")})`,
    );
    assert.ok(repeated.ok, repeated.status);
    assert.equal(repeated.untagged.length, 1);
    const answered = repeated.untagged[0].match(/\/shared\/vendor\/deltachat\/maxsmtprecipients /g);
    assert.equal(answered?.length, 1);
    const distinct = Array.from({ length: 101 }, (_, i) => `/shared/x${i}`).join(" ");
    const many = await s.cmd(`GETMETADATA "" (${distinct})`);
    assert.match(many.status, /^NO \[LIMIT\]/);
    assert.deepEqual(many.untagged, []);
    // SETMETADATA: refused before any entry is set.
    const sets = Array(100).fill("/private/devicetoken NIL").join(" ");
    const set = await s.cmd(`SETMETADATA INBOX (${sets} /private/devicetoken "t1")`);
    assert.match(set.status, /^NO \[LIMIT\]/);
    const tokens = await s.cmd("GETMETADATA INBOX /private/devicetoken");
    assert.equal(metadataValue(tokens.untagged[0], "/private/devicetoken"), null);
    // A refused entry leaves the ones before it unset (RFC 5464 §4.3: the command fails).
    const half = await s.cmd('SETMETADATA INBOX (/private/devicetoken "half" /private/other "x")');
    assert.match(half.status, /^NO \[PERMISSIONDENIED\]/);
    const after = await s.cmd("GETMETADATA INBOX /private/devicetoken");
    assert.equal(metadataValue(after.untagged[0], "/private/devicetoken"), null);
    const hundred = Array(99).fill("/private/devicetoken NIL").join(" ");
    assert.ok((await s.cmd(`SETMETADATA INBOX (${hundred} /private/devicetoken "t2")`)).ok);
    s.close();
  });
});

Deno.test("IMAP METADATA and QUOTA as the reference relay", async () => {
  await withRelay(async (t) => {
    const user = await createAccount(t, "alice0001");
    const s = await session(t, user);
    assert.ok((await s.cmd('SETMETADATA INBOX (/private/devicetoken "1111")')).ok);
    assert.ok((await s.cmd('SETMETADATA INBOX (/private/devicetoken "2222")')).ok);
    const tokens = await s.cmd("GETMETADATA INBOX /private/devicetoken");
    // Dovecot's form: INBOX bare, the value a literal.
    assert.equal(tokens.untagged[0], "* METADATA INBOX (/private/devicetoken {9}\r\n1111 2222)");
    assert.equal(tokens.status, "OK Getmetadata completed.");
    assert.match((await s.cmd('SETMETADATA "" (/shared/comment "x")')).status, /^NO/);
    const server = await s.cmd(
      'GETMETADATA "" (/shared/vendor/deltachat/irohrelay /shared/vendor/deltachat/maxsmtprecipients /shared/vendor/deltachat/turn)',
    );
    // The embedded relay, over plain HTTP: iroh clients refuse tern's self-signed certificate.
    assert.equal(
      metadataValue(server.untagged[0], "/shared/vendor/deltachat/irohrelay"),
      `http://127.0.0.1:${t.addr("http").port}`,
    );
    assert.equal(
      metadataValue(server.untagged[0], "/shared/vendor/deltachat/maxsmtprecipients"),
      "1000",
    );
    assert.equal(metadataValue(server.untagged[0], "/shared/vendor/deltachat/turn"), null);
    assert.ok((await s.cmd("SETMETADATA INBOX (/private/devicetoken NIL)")).ok);
    assert.match((await s.cmd("GETMETADATA INBOX /private/devicetoken")).untagged[0], /NIL/);
    await append(t, user.address, NESTED);
    const q = await s.cmd("GETQUOTAROOT INBOX");
    assert.equal(q.untagged[0], '* QUOTAROOT "INBOX" "User quota"');
    assert.match(q.untagged[1], /^\* QUOTA "User quota" \(STORAGE 1 512000\)$/);
    s.close();
  }, { overrides: { turn_port: 0 } });
});

Deno.test("IMAP COMPRESS=DEFLATE over implicit TLS: commands, an APPEND literal and IDLE both ways", async () => {
  const zlib = await import("node:zlib");
  await withRelay(async (t) => {
    const user = await createAccount(t, "compress1");
    const conn = await Deno.connectTls({
      hostname: t.addr("imaps").hostname,
      port: t.addr("imaps").port,
      caCerts: [t.caPem],
    });
    const dec = new TextDecoder();
    let plain = "";
    const inflate = zlib.createInflateRaw();
    let compressed = false;
    inflate.on("data", (d: Uint8Array) => (plain += dec.decode(d)));
    const pump = (async () => {
      const buf = new Uint8Array(16384);
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return;
        const chunk = buf.slice(0, n);
        if (compressed) inflate.write(chunk);
        else plain += dec.decode(chunk);
      }
    })();
    const until = async (needle: string) => {
      const deadline = Date.now() + 10_000;
      while (!plain.includes(needle)) {
        if (Date.now() > deadline) throw new Error(`no "${needle}" in:\n${plain}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      // up to the end of the line the needle is on
      let end = plain.indexOf("\r\n", plain.indexOf(needle) + needle.length - 2);
      while (end < 0) {
        if (Date.now() > deadline) throw new Error(`no line end after "${needle}"`);
        await new Promise((r) => setTimeout(r, 5));
        end = plain.indexOf("\r\n", plain.indexOf(needle) + needle.length - 2);
      }
      const out = plain.slice(0, end + 2);
      plain = plain.slice(out.length);
      return out;
    };
    const deflate = zlib.createDeflateRaw();
    const send = async (text: string) => {
      if (!compressed) return void await conn.write(enc.encode(text));
      const bytes = await new Promise<Uint8Array>((resolve) => {
        const parts: Uint8Array[] = [];
        const onData = (d: Uint8Array) => parts.push(d);
        deflate.on("data", onData);
        deflate.write(text);
        deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          deflate.off("data", onData);
          resolve(Uint8Array.from(parts.flatMap((p) => [...p])));
        });
      });
      await conn.write(bytes);
    };
    try {
      await until("\r\n");
      await send(`a LOGIN ${user.address} ${user.password}\r\n`);
      await until("a OK");
      await send("b COMPRESS DEFLATE\r\n");
      assert.match(await until("\r\n"), /^b OK/);
      compressed = true;
      await send("c CAPABILITY\r\n");
      const caps = await until("c OK");
      assert.ok(!caps.includes("COMPRESS=DEFLATE"), "not offered twice");
      const body = "Subject: squeezed\r\n\r\n" + "all work and no play\r\n".repeat(2000);
      await send(`d APPEND INBOX {${enc.encode(body).length}+}\r\n${body}\r\n`);
      assert.match(await until("d OK"), /APPENDUID/);
      await send("e SELECT INBOX\r\n");
      assert.match(await until("e OK"), /\* 1 EXISTS/);
      await send("f FETCH 1 BODY.PEEK[]\r\n");
      const fetched = await until("f OK");
      assert.ok(fetched.includes(body), "the literal comes back whole");
      await send("g IDLE\r\n");
      await until("+ ");
      // A delivery from another session wakes the compressed IDLE.
      const other = await session(t, user);
      const second = "Subject: second\r\n\r\nhi\r\n";
      assert.ok((await other.cmd(`APPEND INBOX {${second.length}+}\r\n${second}`)).ok);
      other.close();
      await until("* 2 EXISTS");
      await send("DONE\r\n");
      await until("g OK");
      await send("h LOGOUT\r\n");
      await until("h OK");
    } finally {
      conn.close();
      await pump;
      inflate.destroy();
      deflate.destroy();
    }
  });
});
