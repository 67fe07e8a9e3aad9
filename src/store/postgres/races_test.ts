// Check-then-act decisions that two instances on one PostgreSQL database make at once: each
// test runs two stores (two instances) and makes their steps overlap deterministically, by
// holding a lock or a row in a third connection until both have reached the point that races,
// then letting go.

import assert from "node:assert/strict";
import { type PostgresStore, startPostgresStore } from "./mod.ts";
import { connect, type Sql } from "./connection.ts";
import { lockKey } from "./write_batch.ts";
import { MetadataService } from "../../discovery/metadata.ts";
import { bytesBody } from "../message_input.ts";
import { postgresNeed, startPostgres, stopsServerOfFile } from "../../../tests/support/postgres.ts";

const server = postgresNeed.ignore ? null : await startPostgres();
let databases = 0;

const pgTest = (
  name: string,
  fn: (a: PostgresStore, b: PostgresStore, gate: Sql) => Promise<void>,
) =>
  Deno.test({
    name: postgresNeed.title(name),
    ignore: postgresNeed.ignore,
    async fn() {
      const url = await server!.createDatabase(`r${++databases}`);
      const a = await startPostgresStore(url, { name: "tern a" });
      const b = await startPostgresStore(url, { name: "tern b" });
      // The test's own connections (one holds, one looks), outside both instances.
      const gate = connect(url, { max: 2, name: "gate" });
      try {
        await fn(a, b, gate);
      } finally {
        await Promise.all([a.close(), b.close(), gate.end({ timeout: 5 })]);
      }
    },
  });

/** Waits (polling the server, bounded by 30 s) until `check` holds. */
async function until(why: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${why}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sessions of the instances waiting for a lock (advisory or row) right now. */
async function waiting(gate: Sql): Promise<number> {
  const [r] = await gate<{ n: number }[]>`
    SELECT count(*) AS n FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND application_name LIKE 'tern %'`;
  return r.n;
}

/** Holds `take` in a transaction of the gate connection until the returned release is called. */
async function hold(gate: Sql, take: (tx: Sql) => Promise<unknown>): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let taken!: () => void;
  const isTaken = new Promise<void>((r) => taken = r);
  const done = gate.begin(async (tx) => {
    await take(tx as unknown as Sql);
    taken();
    await released;
  });
  await Promise.race([isTaken, done]);
  return async () => {
    release();
    await done;
  };
}

pgTest(
  "at the device-token limit, new tokens from two instances at once each drop one old token",
  async (a, b, gate) => {
    const now = Date.now();
    const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now })).account;
    const service = (store: PostgresStore) =>
      new MetadataService({
        store,
        irohRelay: () => null,
        turnCredentials: () => null,
        maxSmtpRecipients: 50,
        appVersions: () => "",
        adminContact: "",
        comment: "",
        now: () => now,
      });
    const [onA, onB] = [service(a), service(b)];
    const set = (s: MetadataService, token: string) =>
      s.set(account.id, "INBOX", "/private/devicetoken", token);
    // At the limit of 20, old0 set longest ago.
    for (let i = 0; i < 20; i++) await a.upsertPushToken(account.id, `old${i}`, now - 20 + i);
    // Every change of the account's tokens takes the account's lock: held here, both sessions
    // have done whatever they do before the change when both wait for it.
    const release = await hold(
      gate,
      (tx) => tx`SELECT pg_advisory_xact_lock(${lockKey(`a:${account.id}`)})`,
    );
    const results = [set(onA, "new-a"), set(onB, "new-b")];
    await until("both instances wait for the account", async () => await waiting(gate) === 2);
    await release();
    assert.deepEqual(await Promise.all(results), [null, null], "both accepted");
    const kept = (await a.listPushTokens(account.id, 0)).map((t) => t.token).sort();
    const expected = [...Array.from({ length: 18 }, (_, i) => `old${i + 2}`), "new-a", "new-b"];
    assert.deepEqual(kept, expected.sort(), "the two set longest ago made room");
  },
);

pgTest(
  "a token's push job is queued once when two instances queue it at once",
  async (a, b, gate) => {
    const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now: 1 })).account;
    await a.setSetting("gate", "0");
    // Instance a's batch queues the job and then waits for the settings row held here, so its
    // transaction stays open with the job not yet visible to anyone else.
    const release = await hold(
      gate,
      (tx) => tx`SELECT * FROM settings WHERE key = 'gate' FOR UPDATE`,
    );
    const first = a.enqueuePush({ accountId: account.id, token: "t", now: 10 });
    const gated = a.setSetting("gate", "1");
    await until("instance a waits for the held row", async () => await waiting(gate) === 1);
    let secondDone = false;
    const second = b.enqueuePush({ accountId: account.id, token: "t", now: 11 }).finally(() =>
      secondDone = true
    );
    // Instance b either queued (it did not see a's job) or waits for a's transaction.
    await until("instance b queued or waits", async () => secondDone || await waiting(gate) === 2);
    await release();
    const [idA, idB] = await Promise.all([first, second, gated]);
    assert.equal(idB, idA, "the second finds the first's job");
    const [{ n }] = await a.sql<{ n: number }[]>`SELECT count(*) AS n FROM push_jobs`;
    assert.equal(n, 1, "one job: the phone is woken once");
  },
);

pgTest(
  "an address blocked on one instance while another creates it gets no account",
  async (a, b, gate) => {
    await b.setSetting("gate", "0");
    // Instance b's batch adds the entry and then waits for the settings row held here, so the
    // entry is in an open transaction when instance a looks at the blocklist.
    const release = await hold(
      gate,
      (tx) => tx`SELECT * FROM settings WHERE key = 'gate' FOR UPDATE`,
    );
    const block = b.addBlocked("late@x", "spam", 1);
    const gated = b.setSetting("gate", "1");
    await until("instance b waits for the held row", async () => await waiting(gate) === 1);
    let createDone = false;
    const create = a.createAccountUnlessBlocked({ address: "late@x", passwordHash: "h", now: 2 })
      .finally(() => createDone = true);
    // Instance a either created (it did not see b's entry) or waits for b's transaction.
    await until("instance a created or waits", async () => createDone || await waiting(gate) === 2);
    await release();
    const [made, added] = await Promise.all([create, block, gated]);
    assert.equal(added, true);
    assert.equal(made, null, "the block committed first wins");
    assert.equal(await a.getAccount("late@x"), null);
  },
);

pgTest(
  "the last two copies of a message removed on two instances at once free its body",
  async (a, b, gate) => {
    const ids: number[] = [];
    for (const address of ["x@x", "y@x"]) {
      ids.push((await a.createAccount({ address, passwordHash: "h", now: 1 })).account.id);
    }
    // One delivery to both: one body, two messages.
    const out = await a.deliver({
      body: bytesBody(new TextEncoder().encode("Subject: hi\r\n\r\nhello\r\n")),
      internalDate: 1,
      targets: ids.map((accountId) => ({ accountId, mailboxName: "INBOX" })),
      defaultQuotaBytes: 1e9,
    });
    const [{ n: bodies }] = await a.sql<{ n: number }[]>`SELECT count(*) AS n FROM bodies`;
    assert.equal(bodies, 1);
    for (const k of ["gate a", "gate b"]) await a.setSetting(k, "0");
    // Each instance's batch removes its copy and then waits for a held settings row: both
    // removals are in open transactions at once.
    const release = await hold(
      gate,
      (tx) => tx`SELECT 1 FROM settings WHERE key IN ('gate a', 'gate b') FOR UPDATE`,
    );
    const mailboxOf = (i: number) => (out[i] as { mailboxId: number }).mailboxId;
    const uidOf = (i: number) => (out[i] as { uid: number }).uid;
    const work = [
      a.removeMessages(mailboxOf(0), [uidOf(0)]),
      a.setSetting("gate a", "1"),
      b.removeMessages(mailboxOf(1), [uidOf(1)]),
      b.setSetting("gate b", "1"),
    ];
    await until("both instances wait", async () => await waiting(gate) === 2);
    await release();
    await Promise.all(work);
    const [{ n }] = await a.sql<{ n: number }[]>`SELECT count(*) AS n FROM bodies`;
    assert.equal(n, 0, "the body nothing references any more is gone");
  },
);

pgTest(
  "two bodies sharing a blob removed on two instances at once free the blob",
  async (a, b, gate) => {
    const ids: number[] = [];
    for (const address of ["x@x", "y@x"]) {
      ids.push((await a.createAccount({ address, passwordHash: "h", now: 1 })).account.id);
    }
    // A large body (a blob), stored twice (two bodies on one blob), as a submission is for its
    // local copy and its queue entry.
    const spool = a.createSpool();
    await spool.write(new Uint8Array(400_000).fill(66));
    const body = await spool.finish();
    const stored = [];
    for (const accountId of ids) {
      stored.push(
        await a.append({
          accountId,
          mailboxName: "INBOX",
          body,
          flags: [],
          internalDate: 1,
          defaultQuotaBytes: 1e9,
        }),
      );
    }
    await spool.discard();
    const blobs = async () =>
      (await a.sql<{ freed: boolean }[]>`SELECT freed_at IS NOT NULL AS freed FROM blobs`)
        .map((r) => r.freed);
    assert.deepEqual(await blobs(), [false]);
    for (const k of ["gate a", "gate b"]) await a.setSetting(k, "0");
    const release = await hold(
      gate,
      (tx) => tx`SELECT 1 FROM settings WHERE key IN ('gate a', 'gate b') FOR UPDATE`,
    );
    const work = [
      a.removeMessages(stored[0].mailboxId, [stored[0].uid]),
      a.setSetting("gate a", "1"),
      b.removeMessages(stored[1].mailboxId, [stored[1].uid]),
      b.setSetting("gate b", "1"),
    ];
    await until("both instances wait", async () => await waiting(gate) === 2);
    await release();
    await Promise.all(work);
    // Marked freed: the sweep deletes it after the readers' grace (never, unmarked).
    assert.deepEqual(await blobs(), [true]);
  },
);

// What was checked and found right (the account's lock and one-statement decisions), kept
// as tests: each makes the two instances overlap many times.

pgTest(
  "the first login of one address on two instances at once makes one account",
  async (a, b) => {
    for (let i = 0; i < 20; i++) {
      const address = `new${i}@x`;
      const made = await Promise.all(
        [a, b, a, b].map((s, j) => s.createAccount({ address, passwordHash: `h${j}`, now: 1 })),
      );
      assert.equal(made.filter((m) => m.created).length, 1, "one creation");
      assert.equal(new Set(made.map((m) => m.account.id)).size, 1, "the same account for all");
      // The losers see the winner's password: a login with another one fails, not a second account.
      const winner = made.find((m) => m.created)!.account.passwordHash;
      assert.ok(made.every((m) => m.account.passwordHash === winner));
      const inboxes = await a.listMailboxes(made[0].account.id);
      assert.deepEqual(inboxes.map((m) => m.name), ["INBOX"]);
    }
  },
);

pgTest(
  "deliveries, appends and removals on two instances keep UIDs, modseqs and counters exact",
  async (a, b) => {
    const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now: 1 })).account;
    const size = 100;
    const quota = 10 * size;
    const inbox = (await a.getMailbox(account.id, "INBOX"))!;
    const body = () => bytesBody(new Uint8Array(size).fill(65));
    const stored: { uid: number; modSeq: number }[] = [];
    const removed: number[] = [];
    const attempt = async (s: PostgresStore, i: number) => {
      if (i % 2) {
        const [o] = await s.deliver({
          body: body(),
          internalDate: i,
          targets: [{ accountId: account.id, mailboxName: "INBOX" }],
          defaultQuotaBytes: quota,
        });
        if (o.ok) stored.push({ uid: o.uid, modSeq: o.modSeq });
        else assert.equal(o.code, "quota_exceeded");
      } else {
        const r = await s.append({
          body: body(),
          accountId: account.id,
          mailboxName: "INBOX",
          flags: [],
          internalDate: i,
          defaultQuotaBytes: quota,
        }).catch((err) => {
          assert.match(String(err), /quota/);
          return null;
        });
        if (r) stored.push({ uid: r.uid, modSeq: r.modSeq });
      }
      // Now and then the other instance makes room: the two lowest UIDs it finds.
      if (i % 5 === 0) {
        const other = s === a ? b : a;
        const uids = (await other.listMessages(inbox.id, { afterUid: 0, limit: 2 })).map((m) =>
          m.uid
        );
        removed.push(...await other.removeMessages(inbox.id, uids));
      }
    };
    const all = [];
    for (let i = 0; i < 60; i++) all.push(attempt(a, i), attempt(b, i));
    await Promise.all(all);
    // Every message stored got a UID of its own, in the order of the mailbox's modseq.
    const uids = stored.map((m) => m.uid).sort((x, y) => x - y);
    assert.deepEqual(uids, Array.from({ length: uids.length }, (_, i) => i + 1), "no UID twice");
    const byUid = stored.toSorted((x, y) => x.uid - y.uid).map((m) => m.modSeq);
    assert.ok(byUid.every((m, i) => i === 0 || m > byUid[i - 1]), "modseq rises with the UID");
    assert.equal(new Set(removed).size, removed.length, "no message removed twice");
    // The counters are the messages there, and within the quota.
    const left = await a.listMessages(inbox.id);
    assert.equal(left.length, stored.length - removed.length);
    const box = (await b.getMailbox(account.id, "INBOX"))!;
    assert.equal(box.messages, left.length);
    assert.equal(box.sizeBytes, left.length * size);
    assert.equal(await b.usedBytes(account.id), left.length * size);
    assert.ok(left.length * size <= quota);
    assert.equal(box.uidNext, uids.length + 1);
    const modSeqs = [...stored.map((m) => m.modSeq)];
    assert.ok(box.highestModSeq >= Math.max(...modSeqs));
    assert.equal(new Set(modSeqs).size, modSeqs.length, "no modseq twice");
  },
);

pgTest(
  "two instances delivering into the last room of a quota store one message",
  async (a, b, gate) => {
    const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now: 1 })).account;
    const inbox = (await a.getMailbox(account.id, "INBOX"))!;
    const deliver = (s: PostgresStore) =>
      s.deliver({
        body: bytesBody(new Uint8Array(100)),
        internalDate: 1,
        targets: [{ accountId: account.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1000,
      });
    for (let i = 0; i < 9; i++) assert.equal((await deliver(a))[0].ok, true);
    // The mailbox row held: both deliveries have begun (what they read of the account's use is
    // read by then, were nothing to order them) when both wait.
    const release = await hold(
      gate,
      (tx) => tx`SELECT 1 FROM mailboxes WHERE id = ${inbox.id} FOR UPDATE`,
    );
    const both = [deliver(a), deliver(b)];
    await until("both instances wait", async () => await waiting(gate) === 2);
    await release();
    const outcomes = (await Promise.all(both)).flat();
    assert.deepEqual(outcomes.map((o) => o.ok).toSorted(), [false, true]);
    assert.equal(await a.usedBytes(account.id), 1000);
    assert.equal((await b.getMailbox(account.id, "INBOX"))!.messages, 10);
  },
);

pgTest("two instances claiming push jobs at once each take different jobs", async (a, b) => {
  const account = (await a.createAccount({ address: "u@x", passwordHash: "h", now: 1 })).account;
  for (let i = 0; i < 60; i++) {
    await a.enqueuePush({ accountId: account.id, token: `t${i}`, now: 10 });
  }
  const claimed: number[] = [];
  const drain = async (s: PostgresStore) => {
    for (;;) {
      const jobs = await s.claimPushJobs(100, 3, 60_000);
      if (jobs.length === 0) return;
      claimed.push(...jobs.map((j) => j.id));
    }
  };
  await Promise.all([drain(a), drain(b), drain(a), drain(b)]);
  assert.equal(claimed.length, 60, "each job once");
  assert.equal(new Set(claimed).size, 60);
});

pgTest(
  "two instances claiming the same queued recipients at once: one takes them, the other waits",
  async (a, b, gate) => {
    const q = await a.enqueue({
      sender: "x@l",
      body: bytesBody(new TextEncoder().encode("m")),
      recipients: ["1@b.test", "2@b.test"],
      now: 100,
    });
    const ids = (await a.getQueueEntry(q))!.recipients.map((r) => r.id);
    // A worker that died claimed them; its lease has ended (leases run on the database's clock).
    await a.claimRecipients(q, { owner: "dead", ids, now: 100, leaseMs: 0 });
    // Both instances' claims wait for the entry's lock held here, then run one after the other.
    const release = await hold(
      gate,
      (tx) => tx`SELECT pg_advisory_xact_lock(${lockKey(`q:${q}`)})`,
    );
    const claims = [
      a.claimRecipients(q, { owner: "a", ids, now: 200, leaseMs: 60_000 }),
      b.claimRecipients(q, { owner: "b", ids, now: 200, leaseMs: 60_000 }),
    ];
    await until("both instances wait", async () => await waiting(gate) === 2);
    await release();
    const [ca, cb] = await Promise.all(claims);
    const won = ca.claimed.length ? ca : cb;
    const lost = ca.claimed.length ? cb : ca;
    assert.deepEqual(won, { claimed: ids, busyUntil: null });
    assert.deepEqual(lost.claimed, [], "each recipient is sent once");
    // The winner's lease, on the loser's clock (200 then): 60 s from then, give or take the
    // measure of each instance's offset to the database's clock (milliseconds).
    assert.ok(Math.abs(lost.busyUntil! - 60_200) < 1000, `${lost.busyUntil}`);
  },
);

// Last in the file: the tests above share the server.
stopsServerOfFile(server);
