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
