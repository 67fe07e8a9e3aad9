import assert from "node:assert/strict";
import { bytesBody } from "../message_input.ts";
import { tempStore } from "./testdata/temp_store.ts";
import { Db } from "./db.ts";

const enc = new TextEncoder();

for (const threaded of [false, true]) {
  Deno.test(`reclaimSpace() gives back up to maxPages in one call (${threaded ? "threaded" : "in-process"})`, async () => {
    const s = await tempStore(threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const inbox = (await s.getMailbox(a.id, "INBOX"))!;
      const uids: number[] = [];
      // Bodies under SEGMENT_MIN (segments.ts): stored in the database's own pages.
      for (let i = 0; i < 120; i++) {
        const r = await s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: bytesBody(enc.encode(`Subject: ${i}\r\n\r\n${"x".repeat(30_000)}\r\n`)),
          flags: [],
          internalDate: i,
          defaultQuotaBytes: 1e9,
        });
        uids.push(r.uid);
      }
      await s.removeMessages(inbox.id, uids);
      const pages = () =>
        s.db.get<{ n: number; free: number }>(
          "SELECT page_count AS n, freelist_count AS free FROM pragma_page_count(), pragma_freelist_count()",
        )!;
      const before = pages();
      assert.ok(before.free > 500, `${before.free} free pages after removing 3.6 MB`);
      const step = await s.reclaimSpace(100);
      assert.equal(step.freed, 100);
      assert.equal(step.remaining, before.free - 100);
      const rest = await s.reclaimSpace(1_000_000);
      assert.equal(rest.remaining, 0);
      // The file shrinks by the free pages (and pointer-map pages that covered them).
      assert.ok(pages().n <= before.n - before.free, `${pages().n} pages left of ${before.n}`);
    } finally {
      await s.close();
    }
  });
}

Deno.test("the WAL file is cut back after a large transaction is checkpointed", async () => {
  const dir = await Deno.makeTempDir();
  const db = new Db(`${dir}/t.db`);
  try {
    db.raw.exec("CREATE TABLE big (b BLOB)");
    db.tx(() => {
      for (let i = 0; i < 300; i++) {
        db.run("INSERT INTO big (b) VALUES (?)", new Uint8Array(64 * 1024));
      }
    });
    const wal = () => Deno.statSync(`${dir}/t.db-wal`).size;
    assert.ok(wal() > 16 * 1024 * 1024, `WAL ${wal()} bytes after a 19 MB transaction`);
    db.get("PRAGMA wal_checkpoint(PASSIVE)");
    // The next write starts the WAL over and truncates the file to journal_size_limit.
    db.run("DELETE FROM big WHERE rowid = 1");
    assert.ok(wal() <= 8 * 1024 * 1024, `WAL ${wal()} bytes after the checkpoint`);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
