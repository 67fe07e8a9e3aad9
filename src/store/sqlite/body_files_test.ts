// The SQLite store's file side: large bodies are files shared by their users and deleted with
// the last one; leftovers of crashes are swept; backups carry the files; upgrades move large
// legacy bodies out of the database; group commit really groups.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { tempStore } from "./testdata/temp_store.ts";
import { openSqliteStore, restoreBodyFiles } from "./mod.ts";
import { isBodyFileName, TxFiles } from "./body_files.ts";
import { bytesBody } from "../message_input.ts";

const FIXTURE_DB =
  new URL("../../../tests/fixtures/upgrade-378cb07/datadir/tern.db", import.meta.url)
    .pathname;

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 13 + seed + (i >> 9)) & 0xff;
  return out;
}

/** Body files and spools in `dir` (the space reserve and other names left out). */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && isBodyFileName(e.name)) out.push(e.name);
  return out.sort();
}

for (const threaded of [false, true]) {
  const mode = threaded ? "threaded" : "in-process";

  Deno.test(`${mode}: a large body is one file shared by its copies, deleted with the last`, async () => {
    const s = await tempStore(threaded);
    try {
      const dir = s.bodiesDir!;
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const spool = s.createSpool();
      await spool.write(pattern(500_000));
      assert.equal((await names(`${dir}/tmp`)).length, 1, "spilled to a spool file");
      const body = await spool.finish();
      assert.equal(body.bytes, null);
      const [o] = await s.deliver({
        body,
        head: new TextEncoder().encode("X-Local: 1\r\n"),
        internalDate: 1,
        targets: [{ accountId: a.id, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1e9,
      });
      const qid = await s.enqueue({ body, sender: "a@x", recipients: ["b@y.org"], now: 1 });
      await spool.discard();
      assert.deepEqual(await names(`${dir}/tmp`), [], "the spool's name is gone");
      assert.equal((await names(dir)).length, 1, "one file for both copies");
      assert.ok(o.ok);
      await s.deleteQueueEntry(qid);
      assert.equal((await names(dir)).length, 1);
      await s.removeMessages(o.mailboxId, [o.uid]);
      assert.deepEqual(await names(dir), [], "deleted with its last user");
    } finally {
      await s.close();
    }
  });

  Deno.test(`${mode}: the sweep deletes orphaned files and stale spools, never used ones`, async () => {
    const s = await tempStore(threaded);
    try {
      const dir = s.bodiesDir!;
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const spool = s.createSpool();
      await spool.write(pattern(300_000));
      await s.append({
        accountId: a.id,
        mailboxName: "INBOX",
        body: await spool.finish(),
        flags: [],
        internalDate: 1,
        defaultQuotaBytes: 1e9,
      });
      await spool.discard();
      const [used] = await names(dir);
      const orphan = "0123456789abcdef0123456789abcdef";
      await Deno.writeFile(`${dir}/${orphan}`, pattern(10));
      await Deno.writeFile(`${dir}/tmp/fedcba9876543210fedcba9876543210`, pattern(10));
      await Deno.writeFile(`${dir}/not-a-body`, pattern(10));
      assert.equal(await s.sweepBodyFiles(Date.now() - 60_000), 0, "young files are kept");
      assert.equal(await s.sweepBodyFiles(Date.now() + 60_000), 2);
      assert.deepEqual(await names(dir), [used]);
      assert.ok((await Deno.stat(`${dir}/not-a-body`)).isFile, "other names are left alone");
      assert.deepEqual(await names(`${dir}/tmp`), []);
    } finally {
      await s.close();
    }
  });

  Deno.test(`${mode}: group commit gathers concurrent writes into few batches`, async () => {
    const s = await tempStore(threaded);
    try {
      const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
      const before = { ...s.writeStats };
      await Promise.all(Array.from({ length: 200 }, (_, i) =>
        s.append({
          accountId: a.id,
          mailboxName: "INBOX",
          body: bytesBody(pattern(100, i)),
          flags: [],
          internalDate: i,
          defaultQuotaBytes: 1e9,
        })));
      const batches = s.writeStats.batches - before.batches;
      assert.equal(s.writeStats.ops - before.ops, 200);
      assert.ok(batches <= 2, `${batches} batches for 200 writes made together`);
      assert.equal((await s.getMailbox(a.id, "INBOX"))!.messages, 200);
    } finally {
      await s.close();
    }
  });
}

Deno.test("a file adopted by an operation that rolls back is unlinked again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new TxFiles(`${dir}/bodies`);
    const name = "00112233445566778899aabbccddeeff";
    await Deno.writeFile(files.spoolPath(name), pattern(10));
    const mark = files.mark();
    files.adopt(name);
    files.adopt(name);
    assert.ok((await Deno.stat(files.path(name))).isFile);
    files.undoTo(mark);
    await assert.rejects(Deno.stat(files.path(name)), Deno.errors.NotFound);
    assert.ok((await Deno.stat(files.spoolPath(name))).isFile, "the spool itself stays");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backup carries the body files in one private file; restore writes them back", async () => {
  const s = await tempStore(true);
  const out = await Deno.makeTempDir();
  try {
    const a = (await s.createAccount({ address: "a@x", passwordHash: "h", now: 1 })).account;
    const big = pattern(2_500_000, 3);
    const spool = s.createSpool();
    await spool.write(big);
    const r = await s.append({
      accountId: a.id,
      mailboxName: "INBOX",
      body: await spool.finish(),
      flags: ["\\Seen"],
      internalDate: 1,
      defaultQuotaBytes: 1e9,
    });
    await spool.discard();
    await s.backup(`${out}/backup.db`);
    assert.equal((await Deno.stat(`${out}/backup.db`)).mode! & 0o777, 0o600);
    await assert.rejects(s.backup(`${out}/backup.db`), Deno.errors.AlreadyExists);
    // The pin is gone again: freed files go at once.
    await s.removeMessages(r.mailboxId, [r.uid]);
    assert.deepEqual(await names(s.bodiesDir!), []);

    await Deno.mkdir(`${out}/data`);
    await Deno.copyFile(`${out}/backup.db`, `${out}/data/tern.db`);
    assert.equal(restoreBodyFiles(`${out}/data/tern.db`, `${out}/data/bodies`), 1);
    const restored = openSqliteStore(`${out}/data/tern.db`);
    try {
      const mb = (await restored.getMailbox(a.id, "INBOX"))!;
      const [m] = await restored.listMessages(mb.id, { afterUid: 0, limit: 10 });
      assert.deepEqual(await restored.readBody(m.bodyId), big);
      assert.equal(await restored.getSetting("internal.backup_pin"), null);
    } finally {
      await restored.close();
    }
  } finally {
    await s.close();
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("upgrade data steps move large legacy bodies to files and enable incremental vacuum", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(FIXTURE_DB, `${dir}/tern.db`);
    const old = new DatabaseSync(`${dir}/tern.db`, { readOnly: true });
    const legacy = old.prepare("SELECT id, data FROM bodies WHERE size > 131072").all() as {
      id: number;
      data: Uint8Array;
    }[];
    old.close();
    assert.equal(legacy.length, 1, "the fixture has one large inline body");
    const s = openSqliteStore(`${dir}/tern.db`);
    try {
      const progress: string[] = [];
      const r = await s.migrateData({
        vacuum: "always",
        onProgress: (p) => progress.push(`${p.step} ${p.done}/${p.total}`),
      });
      assert.deepEqual(r, { bodiesMoved: 1, vacuumed: true, vacuumPending: false });
      assert.deepEqual(progress, ["bodies 1/1", "vacuum 0/1", "vacuum 1/1"]);
      assert.equal((await names(`${dir}/bodies`)).length, 1);
      assert.deepEqual(await s.readBody(legacy[0].id), legacy[0].data);
      assert.equal(
        s.db.get<{ n: number }>("SELECT length(data) AS n FROM bodies WHERE id = ?", legacy[0].id)!
          .n,
        0,
      );
      // Resumable: a second run finds nothing left to do.
      assert.deepEqual(await s.migrateData({ vacuum: "always" }), {
        bodiesMoved: 0,
        vacuumed: false,
        vacuumPending: false,
      });
      // Incremental vacuum now gives pages back after a mass delete.
      const bob = (await s.getAccount("bobby0001@[127.0.0.1]"))!;
      for (let i = 0; i < 300; i++) {
        await s.append({
          accountId: bob.id,
          mailboxName: "INBOX",
          body: bytesBody(pattern(20_000, i)),
          flags: [],
          internalDate: i,
          defaultQuotaBytes: 1e9,
        });
      }
      const inbox = (await s.getMailbox(bob.id, "INBOX"))!;
      const uids = (await s.listMessages(inbox.id)).map((m) => m.uid);
      await s.removeMessages(inbox.id, uids);
      let freed = 0;
      for (let step = await s.reclaimSpace(64); step.freed > 0; step = await s.reclaimSpace(64)) {
        freed += step.freed;
      }
      assert.ok(freed > 1000, `${freed} pages given back`);
      assert.equal((await s.reclaimSpace(64)).remaining, 0);
    } finally {
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
