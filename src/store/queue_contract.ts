// Contract for the outbound queue per destination (QueueStore): every Store implementation runs
// it, so the delivery scheduler behaves the same on SQLite and PostgreSQL.

import assert from "node:assert/strict";
import type { AttemptRecord, Store } from "./types.ts";
import { bytesBody } from "./message_input.ts";

const enc = new TextEncoder();

/** Stores an attempt's outcome as the outbound worker does: under its claim on the recipients. */
async function record(s: Store, input: Omit<AttemptRecord, "owner">) {
  const ids = input.updates.map((u) => u.id);
  await s.claimRecipients(input.queueId, { owner: "w", ids, now: input.now, leaseMs: 60_000 });
  return await s.recordAttempt({ ...input, owner: "w" });
}

export function runQueueContract(name: string, makeStore: () => Store | Promise<Store>): void {
  const test = (title: string, fn: (s: Store) => Promise<void>) =>
    Deno.test(`${name}: queue: ${title}`, async () => {
      const s = await makeStore();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  test("new recipients are found after a cursor, by id, and only while pending", async (s) => {
    const a = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("a")),
      recipients: ["1@b.test", "2@c.test"],
      now: 10,
    });
    const first = await s.pendingRecipientsAfter(0, 10);
    assert.deepEqual(first.map((r) => [r.queueId, r.recipient, r.domain]), [
      [a, "1@b.test", "b.test"],
      [a, "2@c.test", "c.test"],
    ]);
    const b = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("b")),
      recipients: ["3@B.test"],
      now: 11,
    });
    const later = await s.pendingRecipientsAfter(first[1].id, 10);
    assert.deepEqual(later.map((r) => [r.queueId, r.domain]), [[b, "b.test"]]);
    await record(s, {
      queueId: b,
      domain: "b.test",
      now: 12,
      updates: [{ id: later[0].id, status: "delivered", attempts: 1, lastError: null }],
    });
    assert.deepEqual(await s.pendingRecipientsAfter(first[1].id, 10), []);
    assert.equal((await s.pendingRecipientsAfter(0, 1)).length, 1, "the limit holds");
  });

  test("per-destination due recipients, next attempt and release", async (s) => {
    const q = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("m")),
      recipients: ["1@b.test", "2@b.test", "3@c.test"],
      now: 100,
    });
    const [r1, r2] = await s.dueRecipientsFor("b.test", 100, 10);
    assert.deepEqual([r1.recipient, r2.recipient], ["1@b.test", "2@b.test"]);
    assert.deepEqual(await s.dueRecipientsFor("b.test", 99, 10), []);
    await record(s, {
      queueId: q,
      domain: "b.test",
      now: 101,
      updates: [
        { id: r1.id, status: "deferred", attempts: 1, nextAttemptAt: 5000, lastError: "refused" },
        { id: r2.id, status: "deferred", attempts: 1, nextAttemptAt: 3000, lastError: "later" },
      ],
    });
    assert.deepEqual(await s.dueRecipientsFor("b.test", 200, 10), []);
    assert.equal(await s.nextAttemptFor("b.test", 200), 3000);
    assert.equal(await s.nextAttemptFor("b.test", 3000), 5000);
    assert.deepEqual(
      (await s.dueRecipientsFor("b.test", 4000, 10)).map((r) => r.recipient),
      ["2@b.test"],
    );
    assert.equal(await s.nextAttemptFor("d.test", 0), null);
    // The peer answered again: everything deferred for it is due now, nothing else moves.
    assert.equal(await s.releaseDestination("b.test", 300), 2);
    assert.deepEqual(
      (await s.dueRecipientsFor("b.test", 300, 10)).map((r) => [r.recipient, r.attempts]),
      [["1@b.test", 1], ["2@b.test", 1]],
    );
    assert.equal(await s.releaseDestination("b.test", 300), 0);
    assert.equal((await s.dueRecipientsFor("c.test", 100, 10)).length, 1);
  });

  test("recordAttempt() finishes the entry, frees its body and counts per domain", async (s) => {
    const q = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("body")),
      recipients: ["1@b.test", "2@b.test"],
      now: 1,
    });
    const [r1, r2] = await s.dueRecipientsFor("b.test", 1, 10);
    const entry = (await s.getQueueEntry(q))!;
    let r = await record(s, {
      queueId: q,
      domain: "b.test",
      now: 2,
      updates: [{ id: r1.id, status: "delivered", attempts: 1, lastError: null }],
    });
    assert.deepEqual(r, { finished: false, recorded: 1 });
    assert.ok(await s.readBody(entry.bodyId));
    r = await record(s, {
      queueId: q,
      domain: "b.test",
      now: 3,
      updates: [{ id: r2.id, status: "failed", attempts: 1, lastError: "550 unknown" }],
    });
    assert.deepEqual(r, { finished: true, recorded: 1 });
    assert.equal(await s.getQueueEntry(q), null);
    assert.equal(await s.readBody(entry.bodyId), null);
    const [stats] = await s.listFederationStats();
    assert.deepEqual(
      [stats.domain, stats.sent, stats.failures, stats.lastError],
      ["b.test", 1, 1, "550 unknown"],
    );
    // An entry the operator deleted meanwhile: the outcome changes nothing.
    assert.deepEqual(
      await record(s, {
        queueId: q,
        domain: "b.test",
        now: 4,
        updates: [{ id: r2.id, status: "delivered", attempts: 2, lastError: null }],
      }),
      { finished: true, recorded: 0 },
    );
    assert.equal((await s.listFederationStats())[0].sent, 1);
  });

  test("destinations summary, oldest entry and entries before a time", async (s) => {
    assert.equal(await s.oldestQueueEntryAt(), null);
    const q1 = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("1")),
      recipients: ["1@b.test", "1@c.test"],
      now: 50,
    });
    const q2 = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("2")),
      recipients: ["2@b.test"],
      now: 70,
    });
    const [b1] = await s.dueRecipientsFor("b.test", 50, 1);
    await record(s, {
      queueId: q1,
      domain: "b.test",
      now: 60,
      updates: [{
        id: b1.id,
        status: "deferred",
        attempts: 1,
        nextAttemptAt: 900,
        lastError: "timed out",
      }],
    });
    assert.deepEqual(await s.queueDestinations(10), [
      {
        domain: "b.test",
        pending: 2,
        deferred: 1,
        oldestAt: 50,
        nextAttemptAt: 70,
        lastError: "timed out",
      },
      {
        domain: "c.test",
        pending: 1,
        deferred: 0,
        oldestAt: 50,
        nextAttemptAt: 50,
        lastError: null,
      },
    ]);
    assert.equal((await s.queueDestinations(1)).length, 1);
    assert.equal(await s.oldestQueueEntryAt(), 50);
    assert.deepEqual(await s.queueEntriesBefore(60, 10), [q1]);
    assert.deepEqual(await s.queueEntriesBefore(70, 10), [q1, q2]);
    assert.deepEqual(await s.queueEntriesBefore(70, 1), [q1]);
  });

  test("recipient ids are never reused, so a cursor over them sees every new one", async (s) => {
    const q = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("1")),
      recipients: ["1@b.test"],
      now: 1,
    });
    const [r] = await s.pendingRecipientsAfter(0, 10);
    await record(s, {
      queueId: q,
      domain: "b.test",
      now: 2,
      updates: [{ id: r.id, status: "delivered", attempts: 1, lastError: null }],
    });
    await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("2")),
      recipients: ["2@b.test"],
      now: 3,
    });
    const after = await s.pendingRecipientsAfter(r.id, 10);
    assert.deepEqual(after.map((x) => x.recipient), ["2@b.test"]);
    assert.ok(after[0].id > r.id);
  });
  test("a claim gives recipients to one worker until its lease ends, then to the next", async (s) => {
    const q = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("m")),
      recipients: ["1@b.test", "2@b.test"],
      now: 100,
    });
    const [r1, r2] = await s.dueRecipientsFor("b.test", 100, 10);
    const ids = [r1.id, r2.id];
    const claim = (owner: string, now: number, leaseMs = 50) =>
      s.claimRecipients(q, { owner, ids, now, leaseMs });
    assert.deepEqual(await claim("a", 100), { claimed: ids, busyUntil: null });
    // A second worker (it took over while A sends) gets nothing, and learns when to look again.
    assert.deepEqual(await claim("b", 120), { claimed: [], busyUntil: 150 });
    assert.deepEqual(await s.dueRecipientsFor("b.test", 120, 10), [], "claimed: not due");
    assert.equal(await s.nextAttemptFor("b.test", 120), 150);
    // A long transfer: A renews (claiming again is a renewal too).
    assert.deepEqual(
      await s.renewClaims({ owner: "a", ids: [r1.id], now: 130, leaseMs: 50 }),
      [r1.id],
    );
    assert.deepEqual(await claim("a", 140), { claimed: ids, busyUntil: null });
    assert.deepEqual(await claim("b", 189), { claimed: [], busyUntil: 190 });
    assert.deepEqual(
      await s.renewClaims({ owner: "b", ids, now: 189, leaseMs: 50 }),
      [],
      "only the owner renews",
    );
    // A died: at the end of its lease the recipients are due again and B takes them.
    assert.deepEqual(
      (await s.dueRecipientsFor("b.test", 190, 10)).map((r) => r.id),
      ids,
      "a dead worker's mail is not lost",
    );
    assert.deepEqual(await claim("b", 190), { claimed: ids, busyUntil: null });
    assert.deepEqual(await s.renewClaims({ owner: "a", ids, now: 191, leaseMs: 50 }), []);
    // B's outcome is stored; A's (its attempt ended late) changes nothing.
    assert.deepEqual(
      await s.recordAttempt({
        queueId: q,
        domain: "b.test",
        now: 200,
        owner: "b",
        updates: [{ id: r1.id, status: "delivered", attempts: 1, lastError: null }],
      }),
      { finished: false, recorded: 1 },
    );
    assert.deepEqual(
      await s.recordAttempt({
        queueId: q,
        domain: "b.test",
        now: 201,
        owner: "a",
        updates: [
          { id: r1.id, status: "deferred", attempts: 1, nextAttemptAt: 900, lastError: "cut" },
          { id: r2.id, status: "failed", attempts: 1, lastError: "550 stale" },
        ],
      }),
      { finished: false, recorded: 0 },
    );
    const e = (await s.getQueueEntry(q))!;
    assert.deepEqual(e.recipients.map((r) => [r.status, r.attempts, r.lastError]), [
      ["delivered", 1, null],
      ["queued", 0, null],
    ]);
    const [stats] = await s.listFederationStats();
    assert.deepEqual([stats.sent, stats.failures], [1, 0], "the stale outcome is not counted");
  });

  test("claims: only pending recipients of the entry; an outcome or a zero lease ends them", async (s) => {
    const q = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("m")),
      recipients: ["1@b.test", "2@b.test", "3@b.test"],
      now: 10,
    });
    const other = await s.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("n")),
      recipients: ["4@b.test"],
      now: 10,
    });
    const [r1, r2, r3] = await s.dueRecipientsFor("b.test", 10, 10);
    await record(s, {
      queueId: q,
      domain: "b.test",
      now: 11,
      updates: [
        { id: r1.id, status: "delivered", attempts: 1, lastError: null },
        { id: r2.id, status: "deferred", attempts: 1, nextAttemptAt: 500, lastError: "later" },
      ],
    });
    // Delivered: nothing to claim. Deferred: its claim ended with the outcome, anyone may take
    // it. Another entry's recipient is not this entry's to claim.
    assert.deepEqual(
      await s.claimRecipients(q, { owner: "a", ids: [r1.id, r2.id], now: 12, leaseMs: 100 }),
      { claimed: [r2.id], busyUntil: null },
    );
    assert.deepEqual(
      await s.claimRecipients(other, { owner: "a", ids: [r3.id], now: 12, leaseMs: 100 }),
      { claimed: [], busyUntil: null },
    );
    assert.deepEqual(
      await s.claimRecipients(q, { owner: "a", ids: [r3.id], now: 12, leaseMs: 100 }),
      { claimed: [r3.id], busyUntil: null },
    );
    assert.equal(await s.nextAttemptFor("b.test", 12), 112, "the end of the claims");
    // A worker that stops lets go at once: a zero lease.
    assert.deepEqual(
      await s.renewClaims({ owner: "a", ids: [r2.id, r3.id], now: 13, leaseMs: 0 }),
      [r2.id, r3.id],
    );
    assert.deepEqual((await s.dueRecipientsFor("b.test", 13, 10)).map((r) => r.id), [
      r3.id,
      (await s.getQueueEntry(other))!.recipients[0].id,
    ]);
    assert.deepEqual(
      await s.claimRecipients(q, { owner: "b", ids: [r2.id, r3.id], now: 13, leaseMs: 100 }),
      { claimed: [r2.id, r3.id], busyUntil: null },
    );
  });
}
