import assert from "node:assert/strict";
import { type BatchRunner, WriteQueue } from "./write_queue.ts";
import type { BatchOutcome, OpCall } from "./engine.ts";
import { Engine } from "./engine.ts";
import { MIGRATIONS } from "./migrations.ts";
import { startSqliteStore } from "./mod.ts";

/** A runner whose batches finish when the test says so, recording what it was given. */
function heldRunner() {
  const calls: { kind: "batch" | "alone"; names: string[]; finish(): void }[] = [];
  const runner: BatchRunner = {
    runBatch(ops: OpCall[]) {
      return new Promise<BatchOutcome>((resolve) => {
        calls.push({
          kind: "batch",
          names: ops.map((o) => o.name),
          finish: () =>
            resolve({
              results: ops.map((o) => ({ ok: true, value: o.name })),
              lowSpace: false,
            }),
        });
      });
    },
    runAlone(op: OpCall) {
      return new Promise((resolve) => {
        calls.push({ kind: "alone", names: [op.name], finish: () => resolve(op.name) });
      });
    },
  };
  return { runner, calls };
}

const op = (name: string): OpCall => ({ name, args: [], now: 0 });
const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("WriteQueue: a second batch goes while the first is out, a third waits for one of them", async () => {
  const { runner, calls } = heldRunner();
  const q = new WriteQueue(runner);
  const a = q.write(op("a1"));
  const a2 = q.write(op("a2"));
  await turn();
  assert.deepEqual(calls.map((c) => c.names), [["a1", "a2"]]);
  const b = q.write(op("b"));
  await turn();
  assert.deepEqual(calls.map((c) => c.names), [["a1", "a2"], ["b"]]);
  const c1 = q.write(op("c1"));
  const c2 = q.write(op("c2"));
  await turn();
  assert.equal(calls.length, 2, "two batches at most are with the writer");
  calls[0].finish();
  assert.deepEqual(await Promise.all([a, a2]), ["a1", "a2"]);
  await turn();
  assert.deepEqual(calls[2].names, ["c1", "c2"], "what waited leaves as one batch");
  calls[1].finish();
  calls[2].finish();
  assert.deepEqual(await Promise.all([b, c1, c2]), ["b", "c1", "c2"]);
  await q.drained();
  assert.deepEqual(q.stats, { batches: 3, ops: 5 });
});

Deno.test("WriteQueue: an operation alone waits for the batches before it, and none runs beside it", async () => {
  const { runner, calls } = heldRunner();
  const q = new WriteQueue(runner);
  const a = q.write(op("a"));
  await turn();
  const v = q.alone(op("vacuum"));
  const b = q.write(op("b"));
  await turn();
  assert.deepEqual(calls.map((c) => c.kind), ["batch"], "the alone op waits for batch a");
  calls[0].finish();
  await a;
  await turn();
  assert.deepEqual(calls.map((c) => c.kind), ["batch", "alone"]);
  await turn();
  assert.equal(calls.length, 2, "nothing goes beside the alone op");
  calls[1].finish();
  assert.equal(await v, "vacuum");
  await turn();
  assert.deepEqual(calls[2].names, ["b"]);
  calls[2].finish();
  assert.equal(await b, "b");
  await q.drained();
});

Deno.test("Engine deferSync: commits skip the disk wait only where syncWal() follows (the writer thread)", async () => {
  const dir = await Deno.makeTempDir();
  const migrate = (db: Engine["db"]) => db.migrate(MIGRATIONS, 0);
  const level = (e: Engine) => e.db.get<{ synchronous: number }>("PRAGMA synchronous")!.synchronous;
  try {
    const full = new Engine(`${dir}/a.db`, { bodiesDir: null }, migrate);
    assert.equal(full.deferSync, false);
    assert.equal(level(full), 2, "FULL: the commit itself syncs");
    full.close();
    const deferred = new Engine(`${dir}/b.db`, { bodiesDir: null, deferSync: true }, migrate);
    assert.equal(deferred.deferSync, true);
    assert.equal(level(deferred), 1, "NORMAL: syncWal() syncs");
    deferred.db.raw.exec("CREATE TABLE t (x)");
    deferred.db.raw.exec("INSERT INTO t VALUES (1)");
    assert.ok((await Deno.stat(`${dir}/b.db-wal`)).size > 0);
    await deferred.syncWal();
    deferred.close();
    // A store in memory has no WAL to sync: deferSync does not apply.
    const memory = new Engine(":memory:", { bodiesDir: null, deferSync: true }, migrate);
    assert.equal(memory.deferSync, false);
    await memory.syncWal();
    memory.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writer thread: writes still waiting for their WAL sync are answered before it closes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await startSqliteStore(`${dir}/t.db`);
    const made = Array.from(
      { length: 20 },
      (_, i) => store.createAccount({ address: `u${i}@x`, passwordHash: "h", now: 1 }),
    );
    const closed = store.close();
    await Promise.all(made);
    await closed;
    const again = await startSqliteStore(`${dir}/t.db`);
    try {
      for (let i = 0; i < 20; i++) assert.ok(await again.getAccount(`u${i}@x`));
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
