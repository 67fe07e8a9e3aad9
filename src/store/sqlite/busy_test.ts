// Another process holding the database's write lock (an operator's `sqlite3 tern.db` inside a
// write transaction): the batch that finds it waits SQLite's busy timeout and fails with
// "database is locked"; the batches after it wait only briefly (a queue of writes would
// otherwise wait the whole timeout each, one after the other); once a batch gets the lock again
// the full timeout is back, and nothing of the failed writes was stored.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "./mod.ts";
import { BUSY_TIMEOUT_MS } from "./db.ts";
import { bytesBody } from "../message_input.ts";

Deno.test("a write lock held by another process: locked errors, short waits after the first, recovery", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tern-busy-" });
  const s = openSqliteStore(`${dir}/t.db`);
  const timeout = () => s.db.get<{ timeout: number }>("PRAGMA busy_timeout")!.timeout;
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const append = (n: number) =>
      s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: bytesBody(new Uint8Array(n).fill(65)),
        flags: [],
        internalDate: 1,
        defaultQuotaBytes: 1e9,
      });
    await append(10);
    assert.equal(timeout(), BUSY_TIMEOUT_MS);
    const lock = new DatabaseSync(`${dir}/t.db`);
    lock.exec("BEGIN IMMEDIATE");
    try {
      await assert.rejects(append(20), /database is locked/);
      assert.ok(timeout() < BUSY_TIMEOUT_MS, "the next batches wait less");
      await assert.rejects(append(30), /database is locked/);
      await assert.rejects(s.recordLogin(a.id, 2), /database is locked/);
    } finally {
      lock.exec("ROLLBACK");
      lock.close();
    }
    const again = await append(40);
    assert.equal(timeout(), BUSY_TIMEOUT_MS, "the full timeout is back");
    assert.equal(again.uid, 2, "no UID was taken by the failed writes");
    const inbox = (await s.getMailbox(a.id, "INBOX"))!;
    const all = await s.listMessages(inbox.id);
    assert.deepEqual(all.map((m) => m.size), [10, 40]);
    assert.equal(inbox.messages, 2);
    assert.equal(await s.usedBytes(a.id), 50);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});
