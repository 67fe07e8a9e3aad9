import assert from "node:assert/strict";
import { scryptSync } from "node:crypto";
import { ScryptPool, WORKER_NICE } from "./password_pool.ts";
import { job } from "./testdata/scrypt_job.ts";

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

/** The nice value of thread `tid` of this process (field 19 of its stat line). */
function niceOf(tid: number): number {
  const stat = Deno.readTextFileSync(`/proc/self/task/${tid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

Deno.test({
  name: "ScryptPool: each worker runs at a lower priority than the event loop, which keeps its own",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const pool = new ScryptPool(2, { idleMs: 60_000 });
    try {
      await Promise.all(["a", "b", "c"].map((p) => pool.run(job(p))));
      await until(() => pool.priority.threads.size === pool.stats().workers, "threads reported");
      assert.equal(pool.priority.failure, null);
      assert.ok(pool.priority.threads.size >= 1);
      for (const tid of pool.priority.threads) assert.equal(niceOf(tid), WORKER_NICE);
      const self = Number(Deno.readLinkSync("/proc/thread-self").split("/").pop());
      assert.equal(niceOf(self), 0);
    } finally {
      pool.close();
    }
    assert.equal(pool.priority.threads.size, 0);
  },
});

Deno.test("ScryptPool: an idle worker collects its garbage once, and again after its next job", async () => {
  // gc() exists only with --expose-gc, which the relay runs with (src/cli/runtime_env.ts).
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./testdata/idle_collection.ts", import.meta.url).pathname,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  type Stats = ReturnType<ScryptPool["stats"]>;
  const [burst1, burst2] = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
    JSON.parse(l) as [Stats, Stats]
  );
  for (const [settled, later] of [burst1, burst2]) {
    assert.ok(settled.workers >= 1, JSON.stringify(settled));
    assert.equal(later.collections, settled.collections, "an idle worker collects only once");
  }
  assert.ok(burst1[0].collections >= burst1[0].workers, JSON.stringify(burst1));
  assert.ok(
    burst2[0].collections >= burst1[1].collections + burst2[0].workers,
    `each worker collects again after its next job: ${JSON.stringify([burst1, burst2])}`,
  );
});
