// The store contract against a real PostgreSQL (its own server, tests/support/postgres.ts), and
// what only the PostgreSQL store does: migrations checked like SQLite's, blobs across instances.

import assert from "node:assert/strict";
import { runStoreContract } from "../store_contract.ts";
import { runQueriesContract } from "../queries_contract.ts";
import { runQueueContract } from "../queue_contract.ts";
import { type PostgresStore, startPostgresStore } from "./mod.ts";
import { PG_MIGRATIONS } from "./migrations.ts";
import { postgresNeed, startPostgres, stopsServerOfFile } from "../../../tests/support/postgres.ts";
import { bytesBody } from "../message_input.ts";

// One server for the whole file (started as it loads, stopped by the last test); a fresh
// database per store.
const server = postgresNeed.ignore ? null : await startPostgres();
let databases = 0;

async function freshUrl(): Promise<string> {
  return await server!.createDatabase(`t${++databases}`);
}

async function freshStore(): Promise<PostgresStore> {
  return await startPostgresStore(await freshUrl());
}

const pgTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: postgresNeed.title(name), ignore: postgresNeed.ignore, fn });

if (postgresNeed.ignore) {
  pgTest("PostgresStore contract", () => Promise.resolve());
} else {
  runStoreContract("PostgresStore", freshStore);
  runQueriesContract("PostgresStore queries", freshStore);
  // Scripted times hold: one instance's offset to the database's clock cancels out.
  runQueueContract("PostgresStore", freshStore);
}

pgTest("startPostgresStore() migrates a fresh database once and re-opens it", async () => {
  const url = await freshUrl();
  const s1 = await startPostgresStore(url);
  await s1.createAccount({ address: "a@x", passwordHash: "h", now: 1 });
  await s1.close();
  const s2 = await startPostgresStore(url);
  try {
    assert.ok(await s2.getAccount("a@x"));
    const rows = await s2.sql`SELECT name FROM schema_migrations ORDER BY version`;
    assert.deepEqual(rows.map((r) => r.name), PG_MIGRATIONS.map((m) => m.name));
  } finally {
    await s2.close();
  }
});

pgTest("startPostgresStore() refuses a database whose applied migration was edited", async () => {
  const url = await freshUrl();
  await (await startPostgresStore(url)).close();
  const tampered = PG_MIGRATIONS.map((m, i) => i === 0 ? { ...m, sql: m.sql + "\n-- edited" } : m);
  await assert.rejects(
    startPostgresStore(url, { migrations: tampered }),
    /migration 0001_init\.sql was changed after it was applied/,
  );
});

pgTest("startPostgresStore() refuses a database written by a newer tern", async () => {
  const url = await freshUrl();
  const extra = [...PG_MIGRATIONS, {
    version: 999,
    name: "0999_future.sql",
    sql: "CREATE TABLE f (x int)",
  }];
  await (await startPostgresStore(url, { migrations: extra })).close();
  await assert.rejects(startPostgresStore(url), /0999_future\.sql, which this version/);
});

pgTest(
  "startPostgresStore() says which database it cannot reach, without the password",
  async () => {
    const url = server!.url("postgres").replace(/:(\d+)\//, ":1/");
    await assert.rejects(startPostgresStore(url), (err: Error) => {
      assert.match(
        err.message,
        /Cannot connect to PostgreSQL at postgres:\/\/tern:\*\*\*@127\.0\.0\.1:1\//,
      );
      assert.doesNotMatch(err.message, /tern-test-password/);
      return true;
    });
  },
);

pgTest("two instances start at once on a fresh database: one migrates, both serve", async () => {
  const url = await freshUrl();
  const [a, b] = await Promise.all([startPostgresStore(url), startPostgresStore(url)]);
  try {
    const acc = (await a.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    assert.equal((await b.getAccount("a@x"))?.id, acc.id);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

pgTest("a large body spooled on one instance is read whole and in ranges on another", async () => {
  const url = await freshUrl();
  const [a, b] = await Promise.all([startPostgresStore(url), startPostgresStore(url)]);
  try {
    const acc = (await a.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const big = new Uint8Array(3_000_000).map((_, i) => (i * 31 + (i >> 9)) & 0xff);
    const spool = a.createSpool();
    for (let off = 0; off < big.length; off += 100_003) {
      await spool.write(big.subarray(off, off + 100_003));
    }
    const r = await a.append({
      accountId: acc.id,
      mailboxName: "INBOX",
      body: await spool.finish(),
      flags: [],
      internalDate: 1,
      defaultQuotaBytes: 1e9,
    });
    await spool.discard();
    const [m] = await b.getMessages(r.mailboxId, [r.uid]);
    const reader = (await b.openBody(m.bodyId))!;
    try {
      assert.equal(reader.size, big.length);
      assert.deepEqual(await reader.read(262_000, 300_000), big.subarray(262_000, 562_000));
      // The reader keeps working after the message is expunged on the other instance.
      await a.removeMessages(r.mailboxId, [r.uid]);
      assert.equal(await b.openBody(m.bodyId), null);
      assert.deepEqual(await reader.read(2_999_000, 5_000), big.subarray(2_999_000));
    } finally {
      await reader.close();
    }
    // Past the grace period the sweep deletes the blob's chunks.
    assert.equal(await b.sweepBodyFiles(Date.now() + 3600_000), 0, "freed moments ago: kept");
    const [{ n }] = await a.sql<{ n: number }[]>`SELECT count(*) AS n FROM blob_chunks`;
    assert.ok(n > 0);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

pgTest("writes of two instances to the same accounts in opposite orders all commit", async () => {
  const url = await freshUrl();
  const [a, b] = await Promise.all([startPostgresStore(url), startPostgresStore(url)]);
  try {
    const ids: number[] = [];
    for (const name of ["x@y", "z@y"]) {
      ids.push((await a.createAccount({ address: name, passwordHash: "h", now: 1 })).account.id);
    }
    const deliver = (s: PostgresStore, order: number[], i: number) =>
      s.deliver({
        body: bytesBody(new TextEncoder().encode(`m${i}\r\n`)),
        internalDate: i,
        targets: order.map((accountId) => ({ accountId, mailboxName: "INBOX" })),
        defaultQuotaBytes: 1e9,
      });
    const all = [];
    for (let i = 0; i < 60; i++) {
      all.push(deliver(a, ids, i), deliver(b, [...ids].reverse(), i));
    }
    const out = (await Promise.all(all)).flat();
    assert.ok(out.every((o) => o.ok));
    for (const id of ids) {
      const inbox = (await a.getMailbox(id, "INBOX"))!;
      assert.equal(inbox.messages, 120);
      const uids = (await a.listMessages(inbox.id)).map((m) => m.uid);
      assert.deepEqual(uids, Array.from({ length: 120 }, (_, i) => i + 1));
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

pgTest(
  "migration 0002 records existing keywords, \\Recent and tombstones, then serves them",
  async () => {
    const url = await freshUrl();
    // A database as the release before 0002 left it.
    const old = await startPostgresStore(url, {
      migrations: PG_MIGRATIONS.filter((m) => m.version < 2),
    });
    await old.sql.unsafe(`
    INSERT INTO accounts (id, address, password_hash, created_at) VALUES (1, 'a@x', 'h', 1);
    INSERT INTO mailboxes (id, account_id, name, uid_validity, uid_next, highest_modseq)
      VALUES (1, 1, 'INBOX', 7, 6, 9), (2, 1, 'Other', 8, 1, 1);
    INSERT INTO bodies (id, size, data, created_at) VALUES (1, 1, '\\x41', 1);
    INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen, recent)
      VALUES (1, 1, 2, 1, 1, 1, '$Zed \\Seen', true, false),
             (1, 2, 3, 1, 1, 1, '$alpha $zed', false, false),
             (1, 4, 4, 1, 1, 1, '', false, true),
             (1, 5, 5, 1, 1, 1, '\\Flagged $Alpha', false, true);
    INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) VALUES (1, 3, 9, 1);
  `).simple();
    await old.close();
    const s = await startPostgresStore(url);
    try {
      assert.deepEqual(await s.listKeywords(1), ["$Zed", "$alpha"]);
      assert.deepEqual(await s.listKeywords(2), []);
      const inbox = (await s.getMailboxById(1))!;
      assert.deepEqual([inbox.messages, inbox.unseen, inbox.recent], [4, 3, 2]);
      assert.deepEqual(await s.claimRecent(1), [4, 5]);
      assert.equal(await s.claimRecent(2), null);
      assert.equal((await s.getMailboxById(1))!.recent, 0);
      assert.equal(await s.firstUnseenUid(1), 2);
      // Tombstones from before keep only their UID and modseq.
      assert.deepEqual(await s.expungedInRange(1, 1, 10, 10), [
        { uid: 3, modSeq: 9, flags: null, size: null, internalDate: null },
      ]);
      // New writes go on from there: a known keyword keeps its spelling, counters move.
      await s.setFlags(1, { uids: [4], mode: "add", flags: ["$ALPHA", "$new"] });
      assert.deepEqual((await s.getMessages(1, [4]))[0].flags, ["$alpha", "$new"]);
      assert.deepEqual(await s.listKeywords(1), ["$Zed", "$alpha", "$new"]);
      await s.setFlags(1, { uids: [5], mode: "add", flags: ["\\Deleted"] });
      assert.deepEqual(await s.expunge(1), [5]);
      assert.deepEqual((await s.expungedInRange(1, 5, 5, 1))[0].flags, [
        "$Alpha",
        "\\Deleted",
        "\\Flagged",
      ]);
    } finally {
      await s.close();
    }
  },
);

pgTest(
  "the bounded queries walk their indexes in order (no scan of the mailbox, no sort)",
  async () => {
    const s = await freshStore();
    const db = await s.sql.reserve();
    try {
      // Plans must not depend on table sizes here: with sequential and bitmap scans priced out,
      // the planner still picks them when no index can serve the query.
      await db`SET enable_seqscan = off`;
      await db`SET enable_bitmapscan = off`;
      const plan = async (text: string) =>
        (await db.unsafe<{ "QUERY PLAN": string }[]>(`EXPLAIN ${text}`))
          .map((r) => r["QUERY PLAN"]).join("\n");
      const uses = async (text: string, index: string, ordered = true) => {
        const p = await plan(text);
        assert.match(p, new RegExp(`Index (Only )?Scan.* using ${index} `), p);
        assert.doesNotMatch(p, /Seq Scan|Bitmap/, p);
        if (ordered) assert.doesNotMatch(p, /Sort/, p);
        return p;
      };
      await uses(
        "SELECT uid FROM messages WHERE mailbox_id = 1 AND NOT seen AND uid < 9 ORDER BY uid LIMIT 1",
        "messages_unseen",
      );
      const changes = await uses(
        `SELECT uid FROM messages WHERE mailbox_id = 1 AND (modseq, uid) > (5, 7)
       AND modseq <= 90 AND uid <= 100 ORDER BY modseq, uid LIMIT 5`,
        "messages_modseq",
      );
      // The keyset bound is where the index walk starts, not a filter over earlier rows.
      assert.match(changes, /Index Cond: .*ROW\(modseq, uid\) > ROW\(5, 7\)/, changes);
      await uses(
        `SELECT uid FROM expunged WHERE mailbox_id = 1 AND (modseq, uid) > (5, 4294967296)
       AND modseq <= 90 AND uid <= 100 ORDER BY modseq, uid LIMIT 5`,
        "expunged_modseq",
      );
      await uses(
        "SELECT uid FROM expunged WHERE mailbox_id = 1 AND uid BETWEEN 3 AND 9 ORDER BY uid LIMIT 5",
        "expunged_pkey",
      );
      await uses(
        "SELECT uid, flags FROM messages WHERE mailbox_id = 1 AND strpos(flags, E'\\\\Deleted') > 0",
        "messages_deleted",
        false,
      );
      await uses(
        "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = 1 ORDER BY id LIMIT 10000",
        "mailbox_keywords_order",
      );
      await uses(
        "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = 1 AND lower(keyword) = ANY('{a,b}')",
        "mailbox_keywords_word",
        false,
      );
      // A scan step's window and listUids' page: a range of the (mailbox_id, uid) key.
      for (const [cmp, order] of [[">", "ASC"], ["<", "DESC"]]) {
        await uses(
          `SELECT uid, modseq FROM messages WHERE mailbox_id = 1 AND uid ${cmp} 50 AND uid <= 90
         ORDER BY uid ${order} LIMIT 10000`,
          "messages_mailbox_id_uid_key",
        );
      }
    } finally {
      db.release();
      await s.close();
    }
  },
);

const HOUR = 3_600_000;

/** Two instances on one fresh database whose clocks are an hour apart (a host without NTP). */
async function skewedInstances() {
  const url = await freshUrl();
  const aNow = () => Date.now();
  const bNow = () => Date.now() + HOUR;
  const [a, b] = await Promise.all([
    startPostgresStore(url, { now: aNow }),
    startPostgresStore(url, { now: bNow }),
  ]);
  return { a, b, aNow, bNow };
}

pgTest(
  "claim leases run on the database's clock: a skewed instance neither steals nor strands mail",
  async () => {
    const { a, b, aNow, bNow } = await skewedInstances();
    try {
      const q = await a.enqueue({
        sender: "x@l",
        body: bytesBody(new TextEncoder().encode("m")),
        recipients: ["1@b.test"],
        now: aNow() - HOUR,
      });
      const [r] = await a.dueRecipientsFor("b.test", aNow(), 10);
      const ids = [r.id];
      const lease = 60_000;
      assert.deepEqual(
        await a.claimRecipients(q, { owner: "a", ids, now: aNow(), leaseMs: lease }),
        { claimed: ids, busyUntil: null },
      );
      // B's clock is past A's lease: still, A is sending and B must not send it a second time.
      assert.deepEqual(await b.dueRecipientsFor("b.test", bNow(), 10), [], "claimed: not due");
      const before = bNow();
      const taken = await b.claimRecipients(q, { owner: "b", ids, now: before, leaseMs: lease });
      assert.deepEqual(taken.claimed, [], "B took the recipient A is sending");
      // When to look again, on B's clock: within the lease from now (give or take the measure
      // of each instance's offset to the database's clock, milliseconds).
      const SLACK = 1000;
      assert.ok(
        taken.busyUntil !== null && taken.busyUntil > before &&
          taken.busyUntil <= bNow() + lease + SLACK,
        `busyUntil ${taken.busyUntil} on B's clock (now ${before})`,
      );
      const next = await b.nextAttemptFor("b.test", before);
      assert.ok(next !== null && next > before && next <= bNow() + lease + SLACK, `next ${next}`);
      // A dies after renewing with a short lease. Its end is measured on the database's clock,
      // not B's: once it passed, B takes the mail over (B's clock being ahead changes nothing).
      assert.deepEqual(
        await a.renewClaims({ owner: "a", ids, now: aNow(), leaseMs: 1 }),
        ids,
      );
      const limit = Date.now() + 30_000;
      let got: number[] = [];
      while (got.length === 0 && Date.now() < limit) {
        await new Promise((ok) => setTimeout(ok, 5));
        got = (await b.claimRecipients(q, { owner: "b", ids, now: bNow(), leaseMs: lease }))
          .claimed;
      }
      assert.deepEqual(got, ids, "A's ended lease was taken over");
      // A's clock is an hour behind B's: A, come back, must still see B's fresh claim.
      assert.deepEqual(await a.dueRecipientsFor("b.test", aNow(), 10), []);
      assert.deepEqual(
        (await a.claimRecipients(q, { owner: "a", ids, now: aNow(), leaseMs: lease })).claimed,
        [],
      );
      // B's claim, taken on a clock an hour ahead, is not an hour longer: a B that dies
      // strands nothing once its lease ended on the shared clock.
      assert.deepEqual(await b.renewClaims({ owner: "b", ids, now: bNow(), leaseMs: 1 }), ids);
      got = [];
      while (got.length === 0 && Date.now() < limit) {
        await new Promise((ok) => setTimeout(ok, 5));
        got = (await a.claimRecipients(q, { owner: "a", ids, now: aNow(), leaseMs: lease }))
          .claimed;
      }
      assert.deepEqual(got, ids, "B's ended lease was taken over");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

pgTest(
  "a claim ending between the due recipients and the next time to look leaves them in one",
  async () => {
    const s = await freshStore();
    try {
      const q = await s.enqueue({
        sender: "x@l",
        body: bytesBody(new TextEncoder().encode("m")),
        recipients: ["1@b.test"],
        now: Date.now() - 1000,
      });
      const [r] = await s.dueRecipientsFor("b.test", Date.now(), 10);
      await s.claimRecipients(q, { owner: "a", ids: [r.id], now: Date.now(), leaseMs: 300 });
      // One look at the queue (outbound.ts #refill): the due recipients, then when to look
      // again, both for the same moment. The claim ends between the two reads.
      const now = Date.now();
      const due = await s.dueRecipientsFor("b.test", now, 10);
      await new Promise((ok) => setTimeout(ok, 600));
      const next = await s.nextAttemptFor("b.test", now);
      assert.ok(
        due.length === 1 || (next !== null && next > now),
        `neither due (${due.length}) nor looked at again (${next}): left until a restart`,
      );
    } finally {
      await s.close();
    }
  },
);

pgTest(
  "push jobs run on the database's clock: an instance whose clock is ahead takes no held job",
  async () => {
    const { a, b, aNow, bNow } = await skewedInstances();
    try {
      const acc = (await a.createAccount({ address: "a@x", passwordHash: "h", now: aNow() }))
        .account;
      const id = await a.enqueuePush({ accountId: acc.id, token: "tok", now: aNow() });
      // Due for B at once: B's clock being ahead makes it no later.
      const [due] = await b.duePushJobs(bNow(), 10);
      assert.equal(due.id, id);
      assert.ok(Math.abs(due.nextAt - bNow()) < 60_000, `next ${due.nextAt} on B's clock`);
      // A takes it for a minute: B, an hour ahead, must not push the phone a second time.
      assert.deepEqual((await a.claimPushJobs(aNow(), 10, 60_000)).map((j) => j.id), [id]);
      assert.deepEqual(await b.duePushJobs(bNow(), 10), []);
      assert.deepEqual(await b.claimPushJobs(bNow(), 10, 60_000), [], "pushed twice");
      // A gives it back, due now (a retry): B takes it.
      await a.reschedulePush(id, 1, aNow());
      assert.deepEqual((await b.claimPushJobs(bNow(), 10, 60_000)).map((j) => j.id), [id]);
      assert.deepEqual(await a.claimPushJobs(aNow(), 10, 60_000), []);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

// Last in the file: the tests above share the server.
stopsServerOfFile(server);
