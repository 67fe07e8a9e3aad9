// The store contract: one suite every Store implementation must pass (SQLite now, PostgreSQL later).

import assert from "node:assert/strict";
import type { Store } from "./types.ts";
import { bytesBody } from "./message_input.ts";
import { isRelayError } from "../errors.ts";

const enc = new TextEncoder();

export function runStoreContract(name: string, makeStore: () => Store | Promise<Store>): void {
  const test = (title: string, fn: (s: Store) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const s = await makeStore();
      try {
        await fn(s);
      } finally {
        await s.close();
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

  test("createAccountUnlessBlocked() creates nothing for a blocked address or domain", async (s) => {
    const old = await s.createAccount({ address: "old@spam.example", passwordHash: "h", now: 1 });
    await s.addBlocked("Bad@ok.example", "", 1);
    await s.addBlocked("@spam.example", "", 1);
    await s.addBlocked("bare.example", "", 1);
    const attempt = (address: string) =>
      s.createAccountUnlessBlocked({ address, passwordHash: "h", now: 2 });
    assert.equal(await attempt("bad@OK.example"), null);
    assert.equal(await attempt("new@spam.example"), null);
    assert.equal(await attempt("new@bare.example"), null);
    assert.equal(await s.countAccounts(), 1);
    const existing = await attempt("old@spam.example");
    assert.deepEqual(existing, { account: old.account, created: false }, "no creation: returned");
    const made = await attempt("Good@ok.example");
    assert.equal(made?.created, true);
    assert.equal(made?.account.address, "good@ok.example");
    assert.deepEqual((await s.listMailboxes(made!.account.id)).map((b) => b.name), ["INBOX"]);
  });

  test("deliver() shares one body and assigns increasing UIDs and modseqs", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const b = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    const data = enc.encode("Subject: hi\r\n\r\nbody\r\n");
    const out = await s.deliver({
      body: bytesBody(data),
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
      body: bytesBody(data),
      internalDate: 6,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.ok(out2[0].ok && out2[0].uid === 2 && out2[0].modSeq > ma.modSeq);
  });

  test("deliver() to the same mailbox twice in one call stores two messages", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const out = await s.deliver({
      body: bytesBody(enc.encode("Subject: twice\r\n\r\nbody\r\n")),
      internalDate: 5,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }, {
        accountId: a.id,
        mailboxName: "INBOX",
      }],
      defaultQuotaBytes: 1000,
    });
    assert.deepEqual(out.map((o) => o.ok && o.uid), [1, 2]);
    const box = (await s.listMailboxes(a.id))[0];
    assert.equal(box.messages, 2);
    assert.equal(box.uidNext, 3);
  });

  test("deliver() refuses a recipient over quota and stores nothing for it", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const data = new Uint8Array(600);
    const first = await s.deliver({
      body: bytesBody(data),
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.equal(first[0].ok, true);
    const second = await s.deliver({
      body: bytesBody(data),
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1000,
    });
    assert.deepEqual(second[0], {
      accountId: a.id,
      address: "a@x",
      ok: false,
      code: "quota_exceeded",
    });
    assert.equal(await s.usedBytes(a.id), 600);
  });

  test("deliver() resolves targets by address and reports use, quota and push tokens", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const b = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    await s.setQuota(b.id, 5000);
    await s.upsertPushToken(b.id, "tok", 1);
    const out = await s.deliver({
      body: bytesBody(new Uint8Array(300)),
      internalDate: 1,
      targets: [
        { address: "A@X", mailboxName: "INBOX" },
        { address: "b@x", mailboxName: "INBOX" },
        { accountId: b.id, mailboxName: "INBOX" },
      ],
      defaultQuotaBytes: 1000,
    });
    const [oa, ob, ob2] = out;
    assert.ok(oa.ok && ob.ok && ob2.ok);
    assert.deepEqual(
      [oa.accountId, oa.address, oa.usedBytes, oa.quotaBytes, oa.hasPushTokens],
      [a.id, "a@x", await s.usedBytes(a.id), null, false],
    );
    assert.equal(await s.usedBytes(a.id), 300);
    // Both copies for b counted: the figures are those after the whole delivery.
    for (const o of [ob, ob2]) {
      assert.deepEqual(
        [o.accountId, o.address, o.usedBytes, o.quotaBytes, o.hasPushTokens],
        [b.id, "b@x", 600, 5000, true],
      );
    }
    assert.equal(await s.usedBytes(b.id), 600);
    assert.equal((await s.getAccountById(b.id))!.usedBytes, 600);
  });

  test("deliver() stores nothing for unknown, deleted or blocked accounts", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const b = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    const c = (await s.createAccount({ address: "c@x", passwordHash: "h", now: 1 })).account;
    await s.setAccountBlocked(b.id, true);
    await s.deleteAccount(c.id);
    const deliver = (targets: Parameters<Store["deliver"]>[0]["targets"]) =>
      s.deliver({
        body: bytesBody(enc.encode("Subject: x\r\n\r\nbody\r\n")),
        internalDate: 1,
        targets,
        defaultQuotaBytes: 1000,
      });
    const none = await deliver([
      { address: "b@x", mailboxName: "INBOX" },
      { accountId: b.id, mailboxName: "INBOX" },
      { address: "c@x", mailboxName: "INBOX" },
      { accountId: c.id, mailboxName: "INBOX" },
      { address: "nobody@x", mailboxName: "INBOX" },
    ]);
    assert.deepEqual(none, [
      { ok: false, accountId: b.id, address: "b@x", code: "no_account" },
      { ok: false, accountId: b.id, address: "b@x", code: "no_account" },
      { ok: false, accountId: null, address: "c@x", code: "no_account" },
      { ok: false, accountId: c.id, address: null, code: "no_account" },
      { ok: false, accountId: null, address: "nobody@x", code: "no_account" },
    ]);
    assert.equal((await s.listMailboxes(b.id))[0].messages, 0);
    assert.equal(await s.usedBytes(b.id), 0);
    // Mixed: the usable account gets its copy, the others still nothing.
    const mixed = await deliver([
      { address: "b@x", mailboxName: "INBOX" },
      { address: "a@x", mailboxName: "INBOX" },
    ]);
    assert.deepEqual(mixed.map((o) => o.ok), [false, true]);
    assert.equal((await s.listMailboxes(a.id))[0].messages, 1);
    assert.equal((await s.listMailboxes(b.id))[0].messages, 0);
    // Unblocked, it receives again.
    await s.setAccountBlocked(b.id, false);
    assert.equal((await deliver([{ address: "b@x", mailboxName: "INBOX" }]))[0].ok, true);
  });

  test("setFlags(), expunge() and changesSince() track modseqs", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    for (let i = 0; i < 3; i++) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: bytesBody(enc.encode(`m${i}\r\n`)),
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
      body: bytesBody(enc.encode("x\r\n")),
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
      body: bytesBody(enc.encode("y\r\n")),
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
        body: bytesBody(enc.encode(d)),
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
      body: bytesBody(enc.encode("x\r\n")),
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
      body: bytesBody(enc.encode("x\r\n")),
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
    assert.equal(await s.addBlocked("@spam.example", "spam", 1), true);
    assert.equal(await s.addBlocked("@SPAM.example", "other", 2), false, "there already");
    assert.deepEqual(await s.listBlocked(), [{
      entry: "@spam.example",
      reason: "spam",
      createdAt: 1,
    }]);
    assert.equal(await s.isBlocked("x@spam.example"), true);
    assert.equal(await s.isBlocked("x@ok.example"), false);
  });

  test("queue keeps per-recipient status and frees its body on delete", async (s) => {
    const id = await s.enqueue({
      sender: "a@x",
      body: bytesBody(enc.encode("m\r\n")),
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
    assert.equal(await s.enqueuePush({ accountId: a.id, token: "tok1", now: 31 }), j, "one job");
    await s.reschedulePush(j, 1, 40);
    assert.equal((await s.duePushJobs(35, 10)).length, 0);
    assert.equal((await s.duePushJobs(40, 10))[0].attempt, 1);
  });

  test("at the push token limit a new token drops the live one set longest ago", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const other = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    const limit = { max: 3, notBefore: 15 };
    const tokens = async () =>
      (await s.listPushTokens(a.id, 0)).map((t) => [t.token, t.updatedAt]).sort();
    assert.equal(await s.upsertPushToken(a.id, "expired", 10), 0);
    assert.equal(await s.upsertPushToken(other.id, "b1", 16), 0);
    assert.equal(await s.upsertPushToken(a.id, "t1", 22, limit), 0);
    assert.equal(await s.upsertPushToken(a.id, "t2", 20, limit), 0, "an expired one is no count");
    assert.equal(await s.upsertPushToken(a.id, "t3", 20, limit), 0);
    assert.equal(await s.upsertPushToken(a.id, "t2", 25, limit), 0, "known: refreshed, none lost");
    // Full: t3 (20) was set longest ago; the expired one and the other account's stay.
    assert.equal(await s.upsertPushToken(a.id, "t4", 30, limit), 1);
    assert.deepEqual(await tokens(), [["expired", 10], ["t1", 22], ["t2", 25], ["t4", 30]]);
    // Setting an expired token again makes it live: it takes a place like a new one.
    assert.equal(await s.upsertPushToken(a.id, "expired", 31, limit), 1);
    assert.deepEqual(await tokens(), [["expired", 31], ["t2", 25], ["t4", 30]]);
    assert.equal(await s.upsertPushToken(a.id, "t5", 31, { max: 2, notBefore: 15 }), 2);
    assert.deepEqual(await tokens(), [["expired", 31], ["t5", 31]]);
    // Equal times: the one added first goes.
    assert.equal(await s.upsertPushToken(a.id, "t6", 31, { max: 2, notBefore: 15 }), 1);
    assert.deepEqual(await tokens(), [["t5", 31], ["t6", 31]]);
    assert.deepEqual((await s.listPushTokens(other.id, 0)).map((t) => t.token), ["b1"]);
  });

  test("push jobs are claimed by one caller at a time, for a lease", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const j1 = await s.enqueuePush({ accountId: a.id, token: "tok1", now: 100 });
    const j2 = await s.enqueuePush({ accountId: a.id, token: "tok2", now: 200 });
    const [first, second] = await Promise.all([
      s.claimPushJobs(150, 10, 1000),
      s.claimPushJobs(150, 10, 1000),
    ]);
    assert.deepEqual([...first, ...second].map((j) => j.id), [j1], "only the due job, once");
    assert.deepEqual((await s.claimPushJobs(250, 10, 1000)).map((j) => j.id), [j2]);
    assert.deepEqual(await s.claimPushJobs(1100, 10, 1000), [], "both leased");
    const again = await s.claimPushJobs(1150, 10, 1000);
    assert.deepEqual(again.map((j) => [j.id, j.token, j.attempt]), [[j1, "tok1", 0]]);
  });

  test("spooled bodies: small and large round-trip, ranged reads, small-body batches", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const small = enc.encode("Subject: s\r\n\r\nsmall\r\n");
    const large = pattern(300_000);
    const ids: number[] = [];
    for (const bytes of [small, large]) {
      const spool = s.createSpool();
      // Odd chunk sizes, awaited one by one (back-pressure).
      for (let off = 0; off < bytes.length; off += 65_537) {
        await spool.write(bytes.subarray(off, off + 65_537));
      }
      assert.equal(spool.size, bytes.length);
      const body = await spool.finish();
      assert.equal(body.size, bytes.length);
      const r = await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body,
        flags: [],
        internalDate: 1,
        defaultQuotaBytes: 1e9,
      });
      await spool.discard();
      await spool.discard();
      ids.push((await s.getMessages(r.mailboxId, [r.uid]))[0].bodyId);
    }
    assert.deepEqual(await s.readBody(ids[0]), small);
    assert.deepEqual(await s.readBody(ids[1]), large);
    const reader = (await s.openBody(ids[1]))!;
    try {
      assert.equal(reader.size, large.length);
      assert.deepEqual(await reader.read(0, 10), large.subarray(0, 10));
      assert.deepEqual(await reader.read(131_000, 5_000), large.subarray(131_000, 136_000));
      assert.deepEqual(await reader.read(299_990, 100), large.subarray(299_990));
      assert.equal((await reader.read(400_000, 10)).length, 0);
      // Ranges in order (each starting where the last ended), asked for at once, then backwards.
      const pieces = await Promise.all(
        [0, 70_000, 140_000, 210_000, 280_000].map((o) => reader.read(o, 70_000)),
      );
      assert.deepEqual(concat(...pieces), large);
      assert.deepEqual(await reader.read(150_000, 10), large.subarray(150_000, 150_010));
      assert.deepEqual(await reader.read(100, 10), large.subarray(100, 110));
      assert.deepEqual(await reader.read(110, 10), large.subarray(110, 120));
    } finally {
      await reader.close();
    }
    const batch = await s.readSmallBodies([ids[0], ids[1], 999_999]);
    assert.deepEqual(batch.get(ids[0])?.bytes, small);
    assert.equal(batch.has(999_999), false);
    assert.equal(await s.openBody(999_999), null);
  });

  test("a spool's caller may reuse its buffer once each write settled", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    // Below the inline limit (kept in memory) and far past it (written through to a file).
    for (const total of [40_000, 400_000]) {
      const expected = pattern(total);
      const buf = new Uint8Array(16_384);
      const spool = s.createSpool();
      for (let off = 0; off < total; off += buf.length) {
        const piece = expected.subarray(off, off + buf.length);
        buf.set(piece);
        await spool.write(buf.subarray(0, piece.length));
        buf.fill(0x21); // what a reused socket buffer would hold next
      }
      const body = await spool.finish();
      const r = await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body,
        flags: [],
        internalDate: 1,
        defaultQuotaBytes: 1e9,
      });
      await spool.discard();
      const id = (await s.getMessages(r.mailboxId, [r.uid]))[0].bodyId;
      assert.deepEqual(await s.readBody(id), expected, `${total} bytes`);
    }
  });

  test("a discarded spool refuses more writes and can be given up at any point", async (s) => {
    const spool = s.createSpool();
    await spool.write(pattern(200_000));
    await spool.discard();
    await assert.rejects(spool.write(new Uint8Array(1)), /discarded/);
    await assert.rejects(spool.finish(), /discarded/);
  });

  test("one spooled body stored with different heads; freed when its last user goes", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    const header = enc.encode("Subject: secret\r\nReceived: x\r\n\r\n");
    const original = concat(header, pattern(250_000));
    const spool = s.createSpool();
    await spool.write(original);
    const body = await spool.finish();
    const storedHead = enc.encode("Subject: secret\r\n\r\n");
    const queuedHead = enc.encode("Subject: [...]\r\n\r\n");
    const [o] = await s.deliver({
      head: storedHead,
      body,
      skip: header.length,
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1e9,
    });
    const qid = await s.enqueue({
      head: queuedHead,
      body,
      skip: header.length,
      sender: "a@x",
      recipients: ["b@y.org"],
      now: 1,
    });
    await spool.discard();
    assert.ok(o.ok);
    const [m] = await s.getMessages(inbox.id, [o.uid]);
    assert.equal(m.size, storedHead.length + original.length - header.length);
    assert.equal(await s.usedBytes(a.id), m.size);
    assert.deepEqual(
      await s.readBody(m.bodyId),
      concat(storedHead, original.subarray(header.length)),
    );
    const q = (await s.getQueueEntry(qid))!;
    assert.deepEqual(
      await s.readBody(q.bodyId),
      concat(queuedHead, original.subarray(header.length)),
    );
    assert.equal(await s.deleteQueueEntry(qid), true);
    assert.equal(await s.readBody(q.bodyId), null);
    assert.deepEqual(
      await s.readBody(m.bodyId),
      concat(storedHead, original.subarray(header.length)),
      "the stored copy outlives the queue copy",
    );
    await s.removeMessages(inbox.id, [o.uid]);
    assert.equal(await s.openBody(m.bodyId), null);
    await assert.rejects(
      s.deliver({
        body,
        skip: body.size + 1,
        internalDate: 1,
        targets: [{ accountId: a.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1e9,
      }),
      (err: unknown) => isRelayError(err, "invalid_argument"),
    );
  });

  test("structure blobs are kept with the body and can be backfilled", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const structure = new Uint8Array([1, 2, 3, 250]);
    const withIt = await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: bytesBody(enc.encode("x\r\n")),
      structure,
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    const without = await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: bytesBody(enc.encode("y\r\n")),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e6,
    });
    const [m1, m2] = await s.getMessages(withIt.mailboxId, [withIt.uid, without.uid]);
    const r1 = (await s.openBody(m1.bodyId))!;
    assert.deepEqual(r1.structure, structure);
    await r1.close();
    assert.deepEqual((await s.readSmallBodies([m1.bodyId])).get(m1.bodyId)?.structure, structure);
    assert.equal((await s.readSmallBodies([m2.bodyId])).get(m2.bodyId)?.structure, null);
    await s.setBodyStructure(m2.bodyId, new Uint8Array([9]));
    const r2 = (await s.openBody(m2.bodyId))!;
    assert.deepEqual(r2.structure, new Uint8Array([9]));
    await r2.close();
  });

  test("counters follow every change of messages and mailboxes", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    const other = await s.createMailbox(a.id, "Other");
    const check = async () => {
      let used = 0;
      for (const mb of await s.listMailboxes(a.id)) {
        const msgs = await s.listMessages(mb.id, { afterUid: 0, limit: 1000 });
        const recent = mb.recent;
        assert.equal(mb.messages, msgs.length, `${mb.name} messages`);
        assert.equal(mb.unseen, msgs.filter((m) => !m.flags.includes("\\Seen")).length);
        assert.equal(mb.sizeBytes, msgs.reduce((n, m) => n + m.size, 0), `${mb.name} size`);
        assert.ok(recent >= 0 && recent <= msgs.length);
        used += mb.sizeBytes;
      }
      assert.equal(await s.usedBytes(a.id), used);
      assert.equal((await s.getAccountById(a.id))!.usedBytes, used);
    };
    for (let i = 0; i < 6; i++) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: bytesBody(enc.encode(`message ${i}\r\n`.repeat(i + 1))),
        flags: i % 2 ? ["\\Seen"] : [],
        internalDate: i,
        defaultQuotaBytes: 1e6,
      });
    }
    await check();
    assert.equal((await s.getMailboxById(inbox.id))!.recent, 6);
    await s.claimRecent(inbox.id);
    assert.equal((await s.getMailboxById(inbox.id))!.recent, 0);
    await s.setFlags(inbox.id, { uids: [1, 2], mode: "add", flags: ["\\Seen"] });
    await s.setFlags(inbox.id, { uids: [3], mode: "remove", flags: ["\\Seen"] });
    await check();
    await s.copyMessages(inbox.id, [1, 2], other.id);
    await s.moveMessages(inbox.id, [3], other.id);
    await check();
    await s.setFlags(inbox.id, { uids: [4], mode: "add", flags: ["\\Deleted"] });
    await s.expunge(inbox.id);
    await s.removeMessages(inbox.id, [5]);
    await check();
    await s.renameMailbox(a.id, "INBOX", "Old");
    await check();
    await s.deleteMailbox(a.id, "Other");
    await check();
    assert.equal((await s.getMailbox(a.id, "INBOX"))!.messages, 0);
  });

  test("listMessages pages in UID order", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    for (let i = 0; i < 5; i++) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: bytesBody(enc.encode(`${i}\r\n`)),
        flags: [],
        internalDate: i,
        defaultQuotaBytes: 1e6,
      });
    }
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    const p1 = await s.listMessages(inbox.id, { afterUid: 0, limit: 2 });
    const p2 = await s.listMessages(inbox.id, { afterUid: p1[1].uid, limit: 2 });
    const p3 = await s.listMessages(inbox.id, { afterUid: p2[1].uid, limit: 2 });
    assert.deepEqual([...p1, ...p2, ...p3].map((m) => m.uid), [1, 2, 3, 4, 5]);
    assert.deepEqual((await s.listMessages(inbox.id)).map((m) => m.uid), [1, 2, 3, 4, 5]);
  });

  test("old expunge tombstones are forgotten and the horizon says up to where", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    for (let i = 0; i < 3; i++) {
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: bytesBody(enc.encode(`${i}\r\n`)),
        flags: [],
        internalDate: i,
        defaultQuotaBytes: 1e6,
      });
    }
    await s.removeMessages(inbox.id, [1]);
    const expungedAt = (await s.getMailboxById(inbox.id))!.highestModSeq;
    assert.equal((await s.getMailboxById(inbox.id))!.expungeHorizonModSeq, 0);
    assert.equal(await s.purgeTombstones(0, 100), 0, "nothing is that old");
    assert.equal(await s.purgeTombstones(Date.now() + 60_000, 100), 1);
    await s.removeMessages(inbox.id, [2]);
    const mb = (await s.getMailboxById(inbox.id))!;
    assert.equal(mb.expungeHorizonModSeq, expungedAt);
    assert.deepEqual((await s.changesSince(inbox.id, 0)).expunged, [2]);
    const space = await s.reclaimSpace(100);
    assert.ok(space.freed >= 0 && space.remaining >= 0);
  });

  test("writes made together commit together; one failing write fails alone", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const appends = Array.from({ length: 40 }, (_, i) =>
      s.append({
        accountId: a.id,
        mailboxName: i === 17 ? "Missing" : "INBOX",
        body: bytesBody(enc.encode(`${i}\r\n`)),
        flags: [],
        internalDate: i,
        defaultQuotaBytes: 1e6,
      }));
    const results = await Promise.allSettled(appends);
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(failed.length, 1);
    assert.ok(isRelayError((failed[0] as PromiseRejectedResult).reason, "mailbox_not_found"));
    const uids = results.flatMap((r) => r.status === "fulfilled" ? [r.value.uid] : []);
    assert.deepEqual(uids, Array.from({ length: 39 }, (_, i) => i + 1));
    assert.equal((await s.getMailbox(a.id, "INBOX"))!.messages, 39);
  });

  test("listings that may touch many rows: accounts, inactive accounts, queue, retention", async (s) => {
    for (const [i, name] of ["b@x", "a@x", "c@y"].entries()) {
      await s.createAccount({ address: name, passwordHash: "h", now: 10 + i });
    }
    const page = await s.listAccounts({ search: "@x", offset: 0, limit: 10 });
    assert.deepEqual([page.total, page.items.map((a) => a.address)], [2, ["a@x", "b@x"]]);
    assert.deepEqual((await s.listInactiveAccounts(12, 10)).map((a) => a.address), ["b@x", "a@x"]);
    await s.enqueue({
      body: bytesBody(enc.encode("q\r\n")),
      sender: "a@x",
      recipients: ["r@z"],
      now: 1,
    });
    assert.equal((await s.listQueue({ offset: 0, limit: 10 })).total, 1);
    const a = (await s.getAccount("a@x"))!;
    await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: bytesBody(enc.encode("old\r\n")),
      flags: [],
      internalDate: 5,
      defaultQuotaBytes: 1e6,
    });
    const old = await s.listMessagesForRetention({ olderThan: 6, limit: 10 });
    assert.deepEqual(old.map((m) => [m.accountId, m.internalDate]), [[a.id, 5]]);
  });

  test("freeUnreferencedBodies() and sweepBodyFiles() keep what is in use", async (s) => {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const spool = s.createSpool();
    await spool.write(pattern(200_000));
    const r = await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: await spool.finish(),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e9,
    });
    await spool.discard();
    assert.equal(await s.freeUnreferencedBodies(), 0);
    assert.equal(await s.sweepBodyFiles(Date.now() + 60_000), 0);
    const [m] = await s.getMessages(r.mailboxId, [r.uid]);
    assert.deepEqual(await s.readBody(m.bodyId), pattern(200_000));
  });
}

/** Bytes that differ at every offset (a wrong range shows). */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 8)) & 0xff;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
