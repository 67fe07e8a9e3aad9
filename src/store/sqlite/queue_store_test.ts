import assert from "node:assert/strict";
import { openSqliteStore } from "./mod.ts";
import { bytesBody } from "../message_input.ts";
import { tempStore } from "./testdata/temp_store.ts";
import { runQueueContract } from "../queue_contract.ts";

const enc = new TextEncoder();

runQueueContract("SqliteStore :memory:", () => openSqliteStore(":memory:"));
runQueueContract("SqliteStore threaded", () => tempStore(true));

Deno.test("queue: migration 0005 keeps queued recipients of an older database", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { MIGRATIONS } = await import("./migrations.ts");
    const old = openSqliteStore(`${dir}/t.db`, {
      migrations: MIGRATIONS.filter((m) => m.version < 5),
    });
    const q = await old.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("m")),
      recipients: ["1@b.test", "2@c.test"],
      now: 7,
    });
    await old.close();
    const s = openSqliteStore(`${dir}/t.db`);
    try {
      const e = (await s.getQueueEntry(q))!;
      assert.deepEqual(e.recipients.map((r) => [r.recipient, r.status, r.nextAttemptAt]), [
        ["1@b.test", "queued", 7],
        ["2@c.test", "queued", 7],
      ]);
      assert.equal((await s.dueRecipientsFor("c.test", 7, 10)).length, 1);
      await s.deleteQueueEntry(q);
      assert.equal(await s.countQueued(), 0, "the cascade still holds");
    } finally {
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("queue: the sole sender's open ends claims a process that ended left behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { startSqliteStore } = await import("./mod.ts");
    const path = `${dir}/t.db`;
    const first = await startSqliteStore(path);
    const q = await first.enqueue({
      sender: "x@l",
      body: bytesBody(enc.encode("m")),
      recipients: ["1@b.test"],
      now: 100,
    });
    const [r] = await first.dueRecipientsFor("b.test", 100, 10);
    const lease = { owner: "dead", ids: [r.id], now: 100, leaseMs: 300_000 };
    assert.deepEqual((await first.claimRecipients(q, lease)).claimed, [r.id]);
    // The process dies holding it (its claims are never let go).
    await first.close();
    // Another open (a CLI command beside the relay) leaves the claim alone...
    const other = await startSqliteStore(path);
    assert.deepEqual(await other.dueRecipientsFor("b.test", 200, 10), []);
    await other.close();
    // ...the relay's own open ends it: the mail is due again at once, not in five minutes.
    const next = await startSqliteStore(path, { soleSender: true });
    try {
      assert.deepEqual((await next.dueRecipientsFor("b.test", 200, 10)).map((x) => x.id), [r.id]);
      assert.deepEqual(
        (await next.claimRecipients(q, { ...lease, owner: "new", now: 200 })).claimed,
        [
          r.id,
        ],
      );
    } finally {
      await next.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
