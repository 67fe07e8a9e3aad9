import assert from "node:assert/strict";
import { runStoreContract } from "../store_contract.ts";
import { bytesBody } from "../message_input.ts";
import { MIGRATIONS, openSqliteStore, type SqliteStore } from "./mod.ts";
import { tempStore } from "./testdata/temp_store.ts";

runStoreContract("SqliteStore :memory:", () => openSqliteStore(":memory:"));
runStoreContract("SqliteStore in-process", () => tempStore(false));
runStoreContract("SqliteStore threaded", () => tempStore(true));

Deno.test("openSqliteStore() migrates a fresh file once and re-opens it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s1 = openSqliteStore(`${dir}/t.db`);
    await s1.createAccount({ address: "a@x", passwordHash: "h", now: 1 });
    await s1.close();
    const s2 = openSqliteStore(`${dir}/t.db`);
    assert.ok(await s2.getAccount("a@x"));
    assert.equal(s2.db.all("SELECT * FROM schema_migrations").length, MIGRATIONS.length);
    await s2.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() refuses a database whose applied migration was edited", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await openSqliteStore(`${dir}/t.db`).close();
    const tampered = MIGRATIONS.map((m, i) => i === 0 ? { ...m, sql: m.sql + "\n-- edited" } : m);
    assert.throws(
      () => openSqliteStore(`${dir}/t.db`, { migrations: tampered }),
      /migration 0001_init\.sql was changed after it was applied/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSqliteStore() refuses a database written by a newer tern", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const extra = [...MIGRATIONS, {
      version: 999,
      name: "0999_future.sql",
      sql: "CREATE TABLE f (x)",
    }];
    await openSqliteStore(`${dir}/t.db`, { migrations: extra }).close();
    assert.throws(() => openSqliteStore(`${dir}/t.db`), /0999_future\.sql, which this version/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mass expunge keeps the counters right on a database upgraded from schema v5", async () => {
  const dir = await Deno.makeTempDir();
  const enc = new TextEncoder();
  const append = (s: SqliteStore, accountId: number, mailboxName: string, i: number) =>
    s.append({
      accountId,
      mailboxName,
      body: bytesBody(enc.encode(`m${i}${"x".repeat(i % 97)}\r\n`)),
      flags: i % 3 === 0 ? [] : ["\\Seen"],
      internalDate: i,
      defaultQuotaBytes: 1e9,
    });
  // What the counters must say: recomputed from the rows.
  const expected = (s: SqliteStore, mailboxId: number) =>
    s.db.get<{ n: number; unseen: number; recent: number; bytes: number }>(
      `SELECT COUNT(*) AS n, COALESCE(SUM(seen = 0), 0) AS unseen,
       COALESCE(SUM(uid >= (SELECT first_recent_uid FROM mailboxes WHERE id = ?)), 0) AS recent,
       COALESCE(SUM(size), 0) AS bytes FROM messages WHERE mailbox_id = ?`,
      mailboxId,
      mailboxId,
    )!;
  const check = async (s: SqliteStore, accountId: number, mailboxId: number) => {
    const mb = (await s.getMailboxById(mailboxId))!;
    const want = { ...expected(s, mailboxId) };
    assert.deepEqual(
      { n: mb.messages, unseen: mb.unseen, recent: mb.recent, bytes: mb.sizeBytes },
      want,
    );
    const all = s.db.get<{ b: number }>(
      `SELECT COALESCE(SUM(size), 0) AS b FROM messages
       WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?)`,
      accountId,
    )!.b;
    assert.equal(await s.usedBytes(accountId), all);
  };
  try {
    // Filled by the schema before 0006 (its per-row delete trigger still in place).
    const old = openSqliteStore(`${dir}/t.db`, { migrations: MIGRATIONS.slice(0, 5) });
    const a = (await old.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    await old.createMailbox(a.id, "Archive");
    for (let i = 0; i < 1200; i++) await append(old, a.id, "INBOX", i);
    for (let i = 0; i < 40; i++) await append(old, a.id, "Archive", i);
    await old.close();

    const s = openSqliteStore(`${dir}/t.db`);
    assert.equal(s.db.all("SELECT * FROM schema_migrations").length, MIGRATIONS.length);
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    await check(s, a.id, inbox.id);
    // Half of them claimed as \Recent, then more arrive: recent_count counts only the new.
    await s.claimRecent(inbox.id);
    for (let i = 1200; i < 1500; i++) await append(s, a.id, "INBOX", i);
    await check(s, a.id, inbox.id);
    // 90 % flagged \Deleted, over both sides of the \Recent boundary, then expunged at once
    // (more than one chunk of the set-based delete).
    const doomed = [];
    for (let uid = 1; uid <= 1500; uid++) if (uid % 10 !== 0) doomed.push(uid);
    await s.setFlags(inbox.id, { uids: doomed, mode: "add", flags: ["\\Deleted"] });
    const base = (await s.getMailboxById(inbox.id))!.highestModSeq;
    assert.deepEqual(await s.expunge(inbox.id), doomed);
    await check(s, a.id, inbox.id);
    assert.equal((await s.getMailboxById(inbox.id))!.messages, 150);
    // One modseq for the expunge; every UID has its tombstone with the message's flags.
    const ch = await s.changesSince(inbox.id, base);
    assert.deepEqual(ch.expunged, doomed);
    assert.equal(
      s.db.get<{ n: number }>(
        "SELECT COUNT(*) AS n FROM expunged WHERE mailbox_id = ? AND flags LIKE '%\\Deleted%'",
        inbox.id,
      )!.n,
      doomed.length,
    );
    // UIDs named explicitly, some of them gone already or never flagged.
    await s.setFlags(inbox.id, { uids: [10, 20], mode: "add", flags: ["\\Deleted"] });
    assert.deepEqual(await s.expunge(inbox.id, [1, 10, 20, 30]), [10, 20]);
    await check(s, a.id, inbox.id);
    // Deleting a mailbox gives its bytes back to the account.
    await s.deleteMailbox(a.id, "Archive");
    await check(s, a.id, inbox.id);
    await s.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threaded store: a finished spool's bytes are shared with the writer, stored whole and kept for the next use", async () => {
  const s = await tempStore(true);
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const b = (await s.createAccount({ address: "b@x", passwordHash: "h", now: 1 })).account;
    const message = new Uint8Array(100_000).map((_, i) => 32 + (i % 90));
    const spool = s.createSpool();
    await spool.write(message);
    const body = await spool.finish();
    // Shared, not transferred: the caller may store the same body again.
    assert.ok(body.bytes!.buffer instanceof SharedArrayBuffer);
    const head = new TextEncoder().encode("X-Head: 1\r\n");
    const first = await s.deliver({
      head,
      skip: 10,
      body,
      internalDate: 1,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1e9,
    });
    const second = await s.deliver({
      body,
      internalDate: 1,
      targets: [{ accountId: b.id, mailboxName: "INBOX" }],
      defaultQuotaBytes: 1e9,
    });
    await spool.discard();
    assert.ok(first[0].ok && second[0].ok);
    const stored = async (accountId: number) => {
      const [m] = await s.listMessages((await s.getMailbox(accountId, "INBOX"))!.id);
      return await s.readBody(m.bodyId);
    };
    assert.deepEqual(await stored(a.id), new Uint8Array([...head, ...message.subarray(10)]));
    assert.deepEqual(await stored(b.id), message);
  } finally {
    await s.close();
  }
});

Deno.test("threaded store: a trickle of commits starts no checkpoint thread", async () => {
  const s = await tempStore(true);
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    for (let i = 0; i < 3; i++) {
      const [o] = await s.deliver({
        body: bytesBody(new TextEncoder().encode(`Subject: ${i}\r\n\r\nhi\r\n`)),
        internalDate: i,
        targets: [{ accountId: a.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1e9,
      });
      assert.ok(o.ok);
    }
    // A started thread makes its first round within ~100 ms of its start: none must come.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(s.checkpointStats!.rounds, 0);
    assert.equal(s.checkpointStats!.failures, 0);
  } finally {
    await s.close();
  }
});

Deno.test("threaded store: a checkpoint thread copies the WAL into the database file while the writer goes on", async () => {
  const s = await tempStore(true);
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    // Under SEGMENT_MIN (segments.ts), so the body is stored in the database itself.
    const message = new Uint8Array(30_000).map((_, i) => 32 + (i % 90));
    const before = (await Deno.stat(s.db.path)).size;
    const deadline = Date.now() + 20_000;
    // Commits one after the other start the thread (a few within a second); each is ~8 WAL
    // frames, far below the writer's own checkpoint threshold (and SQLite's default).
    let n = 0;
    while (s.checkpointStats!.rounds === 0) {
      assert.ok(Date.now() < deadline, `no checkpoint round after ${n} commits`);
      const [o] = await s.deliver({
        body: bytesBody(message),
        internalDate: n++,
        targets: [{ accountId: a.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1e9,
      });
      assert.ok(o.ok);
    }
    // The last commit's round follows; its answer comes after the file has grown.
    while ((await Deno.stat(s.db.path)).size < before + n * 30_000) {
      assert.ok(Date.now() < deadline, `the database file stayed at ${before} bytes`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(s.checkpointStats!.failures, 0);
    const mb = (await s.getMailbox(a.id, "INBOX"))!;
    const last = (await s.listMessages(mb.id)).at(-1)!;
    assert.deepEqual(await s.readBody(last.bodyId), message);
  } finally {
    await s.close();
  }
});

Deno.test("threaded store: a heavy read that comes while the store closes is refused and starts no reader thread", async () => {
  const s = await tempStore(true);
  await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 });
  assert.equal(s.threads.writer, true);
  const closing = s.close();
  // The writer's close is on its way to the thread (its answer is an event, not a microtask):
  // the read connection is still open, and the close has begun.
  for (let i = 0; i < 50 && s.threads.writer; i++) await Promise.resolve();
  const late = s.listAccounts({});
  await assert.rejects(late, /store closed: no reader thread after close\(\)/);
  await closing;
  assert.deepEqual(s.threads, { writer: false, reader: false });
});
