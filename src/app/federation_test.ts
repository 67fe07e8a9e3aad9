import assert from "node:assert/strict";
import { ReceivedCounter } from "./federation.ts";
import { openSqliteStore } from "../store/sqlite/mod.ts";

Deno.test("ReceivedCounter stores the counts of many messages in one write", async () => {
  const store = openSqliteStore(":memory:");
  const writes: number[] = [];
  const counting = {
    countFederationReceived(counts: { domain: string; count: number }[], now: number) {
      writes.push(counts.length);
      return store.countFederationReceived(counts, now);
    },
  };
  try {
    const c = new ReceivedCounter(counting, () => 42, undefined, 10_000);
    for (let i = 0; i < 5; i++) c.add("A.test");
    c.add("b.test");
    assert.deepEqual(await store.listFederationStats(), [], "nothing stored before the flush");
    await c.flush();
    await c.flush();
    assert.deepEqual(writes, [2], "one write, none when nothing is new");
    const stats = await store.listFederationStats();
    assert.deepEqual(stats.map((s) => [s.domain, s.received, s.lastAt]), [
      ["a.test", 5, 42],
      ["b.test", 1, 42],
    ]);
    c.add("a.test");
    await c.flush();
    assert.equal((await store.listFederationStats())[0].received, 6);
  } finally {
    await store.close();
  }
});
