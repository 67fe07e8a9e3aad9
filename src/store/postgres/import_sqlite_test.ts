// migrate-store's copy (import_sqlite.ts): an SQLite store with inline and file-backed bodies,
// flags, keywords, \Recent, tombstones, metadata, queue and push state arrives in PostgreSQL with
// the same ids, UIDs, modseqs and bytes; an interrupted copy resumes; a non-empty target is
// refused.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { openSqliteStore, type SqliteStore } from "../sqlite/mod.ts";
import { bytesBody, spoolBytes } from "../message_input.ts";
import { ImportError, type ImportProgress, importSqlite, startPostgresStore } from "./mod.ts";
import type { Store } from "../types.ts";
import { postgresNeed, startPostgres, stopsServerOfFile } from "../../../tests/support/postgres.ts";

const enc = new TextEncoder();
const server = postgresNeed.ignore ? null : await startPostgres();
let databases = 0;

async function populate(s: SqliteStore) {
  const a = (await s.createAccount({ address: "a@x", passwordHash: "h1", now: 1 })).account;
  const b = (await s.createAccount({ address: "b@x", passwordHash: "h2", now: 2 })).account;
  await s.createMailbox(a.id, "Archive");
  for (let i = 0; i < 23; i++) {
    await s.deliver({
      body: bytesBody(enc.encode(`Subject: m${i}\r\n\r\nbody ${i}\r\n`)),
      internalDate: 10 + i,
      targets: [{ accountId: a.id, mailboxName: "INBOX" }, {
        accountId: b.id,
        mailboxName: "INBOX",
      }],
      defaultQuotaBytes: 1 << 30,
    });
  }
  // Past the inline limit: one body file shared by two messages.
  const large = new Uint8Array(300_000).map((_, i) => 32 + (i * 7) % 90);
  const spooled = await spoolBytes(s, large);
  await s.deliver({
    body: spooled.body,
    internalDate: 50,
    targets: [{ accountId: a.id, mailboxName: "INBOX" }, { accountId: b.id, mailboxName: "INBOX" }],
    defaultQuotaBytes: 1 << 30,
  });
  await spooled.discard();
  const inbox = (await s.getMailbox(a.id, "INBOX"))!;
  await s.setFlags(inbox.id, { uids: [1, 2, 3], mode: "add", flags: ["\\Seen", "$Custom"] });
  await s.setFlags(inbox.id, { uids: [4], mode: "add", flags: ["\\Deleted", "$Gone"] });
  await s.expunge(inbox.id);
  // \Recent claimed up to here: the boundary is copied, later messages stay recent.
  await s.claimRecent(inbox.id);
  await s.setMetadata(a.id, "", "/private/comment", "hello");
  await s.enqueue({
    sender: "a@x",
    body: bytesBody(enc.encode("Subject: out\r\n\r\nx\r\n")),
    recipients: ["c@y.org"],
    now: 70,
  });
  await s.upsertPushToken(a.id, "tok", 80);
  return { a, b, large };
}

/** What a client sees of an account, comparable across stores. */
async function view(s: Store, address: string) {
  const acc = (await s.getAccount(address))!;
  const out: unknown[] = [acc.id, acc.usedBytes];
  for (const m of await s.listMailboxes(acc.id)) {
    out.push([m.id, m.name, m.uidValidity, m.uidNext, m.highestModSeq, m.messages, m.unseen]);
    // What the scale queries answer from: keywords (also ones no message carries any more),
    // \Recent, tombstones with what the message was.
    out.push(m.recent, await s.listKeywords(m.id), await s.mailboxState(m.id));
    out.push(await s.expungedInRange(m.id, 1, 1000, 1000));
    for (const r of await s.listMessages(m.id)) {
      const body = await s.readBody(r.bodyId);
      out.push([
        r.uid,
        r.modSeq,
        r.flags,
        r.size,
        createHash("sha256").update(body!).digest("hex"),
      ]);
    }
    out.push((await s.changesSince(m.id, 0)).expunged);
  }
  return out;
}

Deno.test({
  name: postgresNeed.title("migrate-store copies an SQLite store with its ids, resumes, verifies"),
  ignore: postgresNeed.ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tern-import-" });
    const sqlitePath = `${dir}/tern.db`;
    const src = openSqliteStore(sqlitePath);
    const url = await server!.createDatabase(`i${++databases}`);
    try {
      const { a, b } = await populate(src);
      const before = [await view(src, "a@x"), await view(src, "b@x")];
      await src.close();

      const pg = await startPostgresStore(url);
      try {
        // Stopped after a few slices (Ctrl-C): what was copied stays.
        const stop = new AbortController();
        const seen: ImportProgress[] = [];
        await assert.rejects(
          importSqlite({
            sqlitePath,
            bodiesDir: `${dir}/bodies`,
            store: pg,
            slice: 5,
            signal: stop.signal,
            onProgress(p) {
              seen.push(p);
              if (seen.length === 4) stop.abort();
            },
          }),
          (err: Error) => err.name === "AbortError",
        );
        const progress: ImportProgress[] = [];
        const report = await importSqlite({
          sqlitePath,
          bodiesDir: `${dir}/bodies`,
          store: pg,
          slice: 5,
          onProgress: (p) => progress.push(p),
        });
        assert.equal(report.resumed, true);
        assert.equal(report.rows.messages, 47); // 24 delivered twice, one expunged
        assert.equal(report.rows.body_files, 1);
        assert.equal(report.bodiesVerified, report.rows.bodies);
        // Resumed where it stopped: the first slices were not copied again.
        const copies = progress.filter((p) => p.phase === "copy");
        assert.ok(copies[0].done > 5, `resumed at ${copies[0].done}`);
        assert.equal(copies.at(-1)!.done, copies.at(-1)!.total);
        assert.ok(progress.some((p) => p.phase === "verify"));

        assert.deepEqual([await view(pg, "a@x"), await view(pg, "b@x")], before);
        assert.deepEqual(await pg.getMetadata(a.id, "", "/private/comment"), "hello");
        assert.equal(await pg.countQueued(), 1);
        assert.deepEqual((await pg.listPushTokens(a.id, 0)).map((t) => t.token), ["tok"]);
        // The sequences moved past the copied ids: new rows get fresh ones.
        const c = (await pg.createAccount({ address: "c@x", passwordHash: "h", now: 90 })).account;
        assert.ok(c.id > b.id);
        const [o] = await pg.deliver({
          body: bytesBody(enc.encode("Subject: new\r\n\r\nnew\r\n")),
          internalDate: 100,
          targets: [{ accountId: a.id, mailboxName: "INBOX" }],
          defaultQuotaBytes: 1 << 30,
        });
        assert.ok(o.ok && o.uid === 25, JSON.stringify(o));
        assert.deepEqual(await pg.claimRecent(o.mailboxId), [25, 25]);
        // A keyword new to the mailbox gets a keyword id past the copied ones.
        await pg.setFlags(o.mailboxId, { uids: [25], mode: "add", flags: ["$New"] });
        assert.deepEqual(await pg.listKeywords(o.mailboxId), ["$Custom", "$Gone", "$New"]);

        // Copying into a database that already holds accounts is refused.
        await assert.rejects(
          importSqlite({ sqlitePath, bodiesDir: `${dir}/bodies`, store: pg }),
          (err: Error) => err instanceof ImportError && /already holds/.test(err.message),
        );
      } finally {
        await pg.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// Last in the file: the tests above share the server.
stopsServerOfFile(server);
