import assert from "node:assert/strict";
import { startSqliteStore } from "./mod.ts";

async function withStore(
  fn: (s: Awaited<ReturnType<typeof startSqliteStore>>, path: string) => Promise<void>,
  writerIdleMs?: number,
) {
  const dir = await Deno.makeTempDir({ prefix: "tern-writer-" });
  const store = await startSqliteStore(`${dir}/t.db`, { writerIdleMs });
  try {
    await fn(store, `${dir}/t.db`);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Resolves once `cond` holds; fails after `ms`. */
async function until(cond: () => boolean, ms: number) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const account = (n: number) => ({
  address: `u${n}@example.org`,
  passwordHash: "x",
  now: Date.now(),
});

Deno.test("threaded store: no writer thread after start; writes made while it starts all land", async () => {
  await withStore(async (store) => {
    assert.deepEqual(store.threads, { writer: false, reader: false }, "migrated, then left");
    // Several writes at once while the thread starts: each is kept and answered in order.
    const made = await Promise.all([1, 2, 3, 4, 5].map((n) => store.createAccount(account(n))));
    assert.equal(store.threads.writer, true);
    assert.equal(new Set(made.map((a) => a.account.id)).size, 5);
    for (const n of [1, 2, 3, 4, 5]) {
      assert.ok(await store.getAccount(`u${n}@example.org`), `u${n} stored`);
    }
  });
});

Deno.test("threaded store: the writer stops when idle and starts again for the next write", async () => {
  await withStore(async (store) => {
    await store.createAccount(account(1));
    await until(() => !store.threads.writer, 5000);
    const b = await store.createAccount(account(2));
    assert.equal(store.threads.writer, true);
    assert.equal((await store.getAccount("u2@example.org"))?.id, b.account.id);
    assert.ok(await store.getAccount("u1@example.org"), "the first write survived");
  }, 50);
});

Deno.test("threaded store: close() while the writer starts settles the write first", async () => {
  await withStore(async (store, path) => {
    const write = store.createAccount(account(1));
    await store.close();
    const made = await write;
    const again = await startSqliteStore(path);
    try {
      assert.equal((await again.getAccount("u1@example.org"))?.id, made.account.id);
    } finally {
      await again.close();
    }
  });
});

Deno.test("threaded store: writes with nothing to do are answered without the writer", async () => {
  await withStore(async (store) => {
    const now = Date.now();
    assert.deepEqual(await store.claimPushJobs(now, 10, 1000), []);
    assert.equal(await store.purgeTombstones(now, 100), 0);
    assert.equal(await store.freeUnreferencedBodies(), 0);
    assert.equal((await store.reclaimSpace(100)).freed, 0);
    assert.equal(store.threads.writer, false, "the idle poll and tasks left it stopped");
  });
});

Deno.test("threaded store: a write waiting in the queue is seen by a no-op check after it", async () => {
  await withStore(async (store) => {
    const a = await store.createAccount(account(1));
    const now = Date.now();
    // Not awaited: the job is still on its way to the writer when the claim is asked.
    const queued = store.enqueuePush({ accountId: a.account.id, token: "t", now });
    const claimed = await store.claimPushJobs(now, 10, 1000);
    await queued;
    assert.deepEqual(claimed.map((j) => j.token), ["t"]);
    // Claimed for the lease: nothing due now, and the answer comes without a write.
    assert.deepEqual(await store.claimPushJobs(now, 10, 1000), []);
  });
});
