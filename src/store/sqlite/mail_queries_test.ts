import assert from "node:assert/strict";
import { runQueriesContract } from "../queries_contract.ts";
import { Db, MIGRATIONS, openSqliteStore } from "./mod.ts";

import { tempStore } from "./testdata/temp_store.ts";

runQueriesContract("SqliteStore queries :memory:", () => openSqliteStore(":memory:"));
runQueriesContract("SqliteStore queries in-process", () => tempStore(false));
runQueriesContract("SqliteStore queries threaded", () => tempStore(true));

Deno.test("migration 0004 records existing keywords and \\Recent, then serves them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A database as the release before 0004 left it.
    const old = new Db(`${dir}/t.db`);
    old.migrate(MIGRATIONS.filter((m) => m.version < 4));
    old.raw.exec(`
      INSERT INTO accounts (id, address, password_hash, created_at) VALUES (1, 'a@x', 'h', 1);
      INSERT INTO mailboxes (id, account_id, name, uid_validity, uid_next, highest_modseq)
        VALUES (1, 1, 'INBOX', 7, 6, 9), (2, 1, 'Other', 8, 1, 1);
      INSERT INTO bodies (id, size, data, created_at) VALUES (1, 1, x'41', 1);
      INSERT INTO messages (mailbox_id, uid, modseq, body_id, size, internal_date, flags, seen, recent)
        VALUES (1, 1, 2, 1, 1, 1, '$Zed \\Seen', 1, 0),
               (1, 2, 3, 1, 1, 1, '$alpha $zed', 0, 0),
               (1, 4, 4, 1, 1, 1, '', 0, 1),
               (1, 5, 5, 1, 1, 1, '\\Flagged $Alpha', 0, 1);
    `);
    old.close();
    const s = openSqliteStore(`${dir}/t.db`);
    assert.deepEqual(await s.listKeywords(1), ["$Zed", "$alpha"]);
    assert.deepEqual(await s.listKeywords(2), []);
    assert.equal((await s.getMailboxById(1))!.recent, 2);
    assert.deepEqual(await s.claimRecent(1), [4, 5]);
    assert.equal(await s.claimRecent(2), null);
    assert.equal(await s.firstUnseenUid(1), 2);
    await s.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bounded queries use their indexes", async () => {
  const s = openSqliteStore(":memory:");
  try {
    const plan = (sql: string) =>
      s.db.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`).map((r) => r.detail).join("; ");
    assert.match(
      plan("SELECT MIN(uid) FROM messages WHERE mailbox_id = 1 AND seen = 0 AND uid < 5"),
      /messages_unseen/,
    );
    assert.match(
      plan(
        "SELECT uid FROM messages WHERE mailbox_id = 1 AND modseq > 1 AND modseq <= 9 AND (modseq, uid) > (1, 4294967296) ORDER BY modseq, uid LIMIT 5",
      ),
      /messages_modseq/,
    );
    assert.doesNotMatch(
      plan(
        "SELECT uid FROM messages WHERE mailbox_id = 1 AND modseq > 1 AND modseq <= 9 AND (modseq, uid) > (1, 4294967296) ORDER BY modseq, uid LIMIT 5",
      ),
      /TEMP B-TREE/,
    );
    assert.match(
      plan("SELECT uid FROM messages WHERE mailbox_id = 1 AND instr(flags, '\\Deleted') > 0"),
      /messages_deleted/,
    );
  } finally {
    await s.close();
  }
});
