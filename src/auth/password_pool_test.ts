import assert from "node:assert/strict";
import { scryptSync } from "node:crypto";
import { ScryptPool } from "./password_pool.ts";

const job = (password: string) => ({
  password,
  salt: new Uint8Array(16).fill(7),
  n: 1024,
  r: 8,
  p: 1,
  keyLen: 32,
});

/** Waits (with a deadline) until `cond` holds, checking after each macrotask. */
async function until(cond: () => boolean, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("ScryptPool: results equal node:crypto's, workers at most `size`, stopped when idle", async () => {
  const pool = new ScryptPool(2, { idleMs: 200 });
  try {
    const keys = await Promise.all(["a", "b", "c", "d", "e"].map((p) => pool.run(job(p))));
    for (const [i, p] of ["a", "b", "c", "d", "e"].entries()) {
      const j = job(p);
      assert.deepEqual(keys[i], new Uint8Array(scryptSync(p, j.salt, 32, { N: 1024, r: 8, p: 1 })));
    }
    const s = pool.stats();
    assert.ok(s.started >= 1 && s.started <= 2, JSON.stringify(s));
    assert.equal(s.done, 5);
    // Idle workers ask to stop and are stopped; the next job starts one again.
    await until(() => pool.stats().workers === 0, "idle workers stopped");
    assert.equal((await pool.run(job("f"))).length, 32);
    assert.equal(pool.stats().workers, 1);
  } finally {
    pool.close();
  }
});

Deno.test("ScryptPool: a worker that cannot start marks the pool broken and fails its jobs", async () => {
  const pool = new ScryptPool(2, { workerSource: 'throw new Error("no crypto here");' });
  try {
    await assert.rejects(pool.run(job("a")), /failed to start/);
    assert.match(pool.broken ?? "", /no crypto here/);
    await assert.rejects(pool.run(job("b")), /failed to start/);
    assert.equal(pool.stats().workers, 0);
  } finally {
    pool.close();
  }
});

Deno.test("ScryptPool: close() fails waiting and running jobs and stops the workers", async () => {
  const pool = new ScryptPool(1);
  const jobs = ["a", "b", "c"].map((p) => pool.run(job(p)));
  pool.close();
  for (const j of jobs) await assert.rejects(j, /closed|stopped/);
  assert.deepEqual(pool.stats().workers, 0);
});
