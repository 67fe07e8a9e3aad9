// The store contract: one suite every Store implementation must pass (SQLite now, PostgreSQL later).

import assert from "node:assert/strict";
import type { Store } from "./types.ts";

const enc = new TextEncoder();

export function runStoreContract(name: string, makeStore: () => Store | Promise<Store>): void {
  const test = (title: string, fn: (s: Store) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const s = await makeStore();
      try {
        await fn(s);
      } finally {
        s.close();
      }
    });

  test("createAccount() creates INBOX once and reports existing accounts", async (s) => {
    const a = await s.createAccount({ address: "Alice@Example.org", passwordHash: "h1", now: 1 });
    assert.equal(a.created, true);
    assert.equal(a.account.address, "alice@example.org");
    const again = await s.createAccount({
      address: "alice@example.org",
      passwordHash: "h2",
      now: 2,
    });
    assert.equal(again.created, false);
    assert.equal(again.account.passwordHash, "h1");
    const boxes = await s.listMailboxes(a.account.id);
    assert.deepEqual(boxes.map((b) => b.name), ["INBOX"]);
  });

  test("deliver() shares one body and assigns increasing UIDs and modseqs", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const b = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    const data = enc.encode("Subject: hi\r\n\r\nbody\r\n");
    const out = await s.deliver({
      data,
      internalDate: 5,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }, {
        accountId: b.id,
        mailboxName: "INBOX",
      }],
      defaultQuotaBytes: 1000,
    });
    assert.ok(out.every((o) => o.ok));
    const [ma] = await s.listMessages(out[0].ok ? out[0].mailboxId : 0);
    const [mb] = await s.listMessages(out[1].ok ? out[1].mailboxId : 0);
    assert.equal(ma.bodyId, mb.bodyId);
    assert.equal(ma.uid, 1);
    assert.deepEqual(await s.readBody(ma.bodyId), data);
    const out2 = await s.deliver({
      data,
      internalDate: 6,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.ok(out2[0].ok && out2[0].uid === 2 && out2[0].modSeq > ma.modSeq);
  });

  test("deliver() refuses a recipient over quota and stores nothing for it", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const data = new Uint8Array(600);
    const first = await s.deliver({
      data,
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.equal(first[0].ok, true);
    const second = await s.deliver({
      data,
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.deepEqual(second[0], { accountId: a.id, ok: false, code: "quota_exceeded" });
    assert.equal(await s.usedBytes(a.id), 600);
  });

  test("setFlags(), expunge() and changesSince() track modseqs", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    for (let i = 0; i < 3; i++) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        data: enc.encode(`m${i}\r\n`),
        flags: [],
        internalDate: i,
        defaultQuotaBytes: 1e6,
      });
    }
    const base = (await s.getMailboxById(inbox.id))!.highestModSeq;
    const r = await s.setFlags(inbox.id, {
      uids: [1, 2],
      mode: "add",
      flags: ["\\seen", "$custom"],
    });
    assert.deepEqual(r.updated.map((m) => m.flags), [["$custom", "\\Seen"], ["$custom", "\\Seen"]]);
    const cond = await s.setFlags(inbox.id, {
      uids: [1, 3],
      mode: "add",
      flags: ["\\Flagged"],
      unchangedSince: base,
    });
    assert.deepEqual(cond.modified, [1]);
    await s.setFlags(inbox.id, { uids: [2], mode: "add", flags: ["\\Deleted"] });
    assert.deepEqual(await s.expunge(inbox.id), [2]);
    const ch = await s.changesSince(inbox.id, base);
    assert.deepEqual(ch.changed.map((m) => m.uid), [1, 3]);
    assert.deepEqual(ch.expunged, [2]);
    const mb = (await s.getMailboxById(inbox.id))!;
    assert.equal(mb.messages, 2);
    assert.equal(mb.unseen, 1);
    assert.equal(mb.uidNext, 4);
  });

  test("moveMessages() keeps the body, expunges the source, never reuses UIDs", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    const dc = await s.createMailbox(a.id, "DeltaChat");
    await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      data: enc.encode("x\r\n"),
      flags: ["\\Seen"],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    const r = await s.moveMessages(inbox.id, [1], dc.id);
    assert.deepEqual(r.mapping, [[1, 1]]);
    assert.equal(r.uidValidity, dc.uidValidity);
    assert.equal((await s.listMessages(inbox.id)).length, 0);
    const [m] = await s.listMessages(dc.id);
    assert.deepEqual(m.flags, ["\\Seen"]);
    const again = await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      data: enc.encode("y\r\n"),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    assert.equal(again.uid, 2);
  });

  test("claimRecent() hands each new message's \\Recent to exactly one caller", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    for (const d of ["x\r\n", "y\r\n"]) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        data: enc.encode(d),
        flags: [],
        internalDate: 1,
        defaultQuotaBytes: 1e6,
      });
    }
    assert.equal((await s.getMailboxById(inbox.id))!.recent, 2);
    assert.deepEqual(await s.claimRecent(inbox.id), [1, 2]);
    assert.equal(await s.claimRecent(inbox.id), null);
    assert.equal((await s.getMailboxById(inbox.id))!.recent, 0);
  });

  test("renameMailbox() of INBOX moves the messages and keeps INBOX", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      data: enc.encode("x\r\n"),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    await s.renameMailbox(a.id, "INBOX", "Old");
    const names = (await s.listMailboxes(a.id)).map((b) => `${b.name}:${b.messages}`);
    assert.deepEqual(names, ["INBOX:0", "Old:1"]);
    await assert.rejects(s.renameMailbox(a.id, "Old", "INBOX"), /exists/);
  });

  test("deleteAccount() frees bodies no one else uses", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      data: enc.encode("x\r\n"),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    const [m] = await s.listMessages((await s.getMailbox(a.id, "INBOX"))!.id);
    assert.equal(await s.deleteAccount(a.id), true);
    assert.equal(await s.readBody(m.bodyId), null);
    assert.equal(await s.getAccount("a@x"), null);
  });

  test("metadata, settings, tokens and blocklist round-trip", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    await s.setMetadata(a.id, "", "/shared/comment", "hello");
    assert.equal(await s.getMetadata(a.id, "", "/shared/comment"), "hello");
    await s.setMetadata(a.id, "", "/shared/comment", null);
    assert.equal(await s.getMetadata(a.id, "", "/shared/comment"), null);
    await s.setSetting("registration", "closed");
    assert.deepEqual(await s.listSettings(), { registration: "closed" });
    await s.createToken({
      token: "t1",
      maxUses: 1,
      uses: 0,
      expiresAt: null,
      createdAt: 1,
      comment: "",
    });
    assert.equal(await s.consumeToken("t1", 2), true);
    assert.equal(await s.consumeToken("t1", 2), false);
    await s.addBlocked("@spam.example", "spam", 1);
    assert.equal(await s.isBlocked("x@spam.example"), true);
    assert.equal(await s.isBlocked("x@ok.example"), false);
  });

  test("queue keeps per-recipient status and frees its body on delete", async (s) => {
    const id = await s.enqueue({
      sender: "a@x",
      data: enc.encode("m\r\n"),
      recipients: ["b@y.org", "c@z.org"],
      now: 10,
    });
    const due = await s.dueRecipients(10, 10);
    assert.deepEqual(due.map((r) => r.domain), ["y.org", "z.org"]);
    await s.updateRecipient(due[0].id, { status: "delivered", attempts: 1, now: 11 });
    await s.updateRecipient(due[1].id, {
      status: "deferred",
      attempts: 1,
      nextAttemptAt: 100,
      lastError: "timeout",
      now: 11,
    });
    assert.equal((await s.dueRecipients(50, 10)).length, 0);
    assert.equal(await s.countQueued(), 1);
    const e = (await s.getQueueEntry(id))!;
    assert.deepEqual(e.recipients.map((r) => r.status), ["delivered", "deferred"]);
    assert.equal(await s.retryQueueEntry(id, 20), true);
    assert.equal((await s.dueRecipients(20, 10)).length, 1);
    assert.equal(await s.deleteQueueEntry(id), true);
    assert.equal(await s.readBody(e.bodyId), null);
  });

  test("push tokens and jobs persist", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    await s.upsertPushToken(a.id, "tok1", 10);
    await s.upsertPushToken(a.id, "tok2", 20);
    assert.deepEqual((await s.listPushTokens(a.id, 15)).map((t) => t.token), ["tok2"]);
    const j = await s.enqueuePush({ accountId: a.id, token: "tok1", now: 30 });
    await s.reschedulePush(j, 1, 40);
    assert.equal((await s.duePushJobs(35, 10)).length, 0);
    assert.equal((await s.duePushJobs(40, 10))[0].attempt, 1);
  });
}
