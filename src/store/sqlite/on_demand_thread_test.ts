import assert from "node:assert/strict";
import { type OnDemandOptions, OnDemandThread, type Retirable } from "./on_demand_thread.ts";

/** A thread double: counts its requests, and its close can be held open. */
class FakeThread implements Retirable {
  static made = 0;
  readonly id = ++FakeThread.made;
  alive = true;
  closeCalls = 0;
  /** Released when the close may finish (held: a retire still under way). */
  hold: Promise<void> = Promise.resolve();
  closeError: Error | null = null;
  #closed = Promise.withResolvers<void>();
  /** Resolves once close() has finished. */
  readonly closed = this.#closed.promise;

  async close(): Promise<void> {
    this.closeCalls++;
    await this.hold;
    this.alive = false;
    this.#closed.resolve();
    if (this.closeError) throw this.closeError;
  }
}

/** Timers that fire only when told (the idle timer's arming is what is tested). */
function fakeTimers() {
  let seq = 0;
  const due = new Map<number, { fn: () => void; ms: number }>();
  return {
    set(fn: () => void, ms: number) {
      due.set(++seq, { fn, ms });
      return seq;
    },
    clear(id: unknown) {
      due.delete(id as number);
    },
    /** The idle delays armed now. */
    armed: () => [...due.values()].map((d) => d.ms),
    fire() {
      const all = [...due.values()];
      due.clear();
      for (const d of all) d.fn();
    },
  };
}

function setup(options: Partial<OnDemandOptions> = {}) {
  const timers = fakeTimers();
  const started: FakeThread[] = [];
  let gate: Promise<void> | null = null;
  let failNext: Error | null = null;
  const od = new OnDemandThread(
    "test",
    async () => {
      await gate;
      if (failNext) {
        const err = failNext;
        failNext = null;
        throw err;
      }
      const t = new FakeThread();
      started.push(t);
      return t;
    },
    { idleMs: 1000, timers, ...options },
  );
  return {
    od,
    timers,
    started,
    /** Holds the next starts until the returned function is called. */
    holdStarts() {
      const d = Promise.withResolvers<void>();
      gate = d.promise;
      return () => {
        gate = null;
        d.resolve();
      };
    },
    failNextStart(err: Error) {
      failNext = err;
    },
  };
}

/**
 * Lets every queued promise reaction run: the doubles here settle through promises only, so
 * what has not happened after this will not happen without a new event.
 */
const flush = () => new Promise((r) => setTimeout(r, 0));

/** Resolves with `p`, or fails after `ms` (a deadline, not a sleep). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("OnDemandThread: no thread before the first use; uses at once share one start", async () => {
  const { od, started, holdStarts } = setup();
  assert.equal(od.running, false);
  assert.equal(od.active, false);
  const release = holdStarts();
  const uses = [1, 2, 3].map((n) => od.use((t) => Promise.resolve([n, t.id])));
  assert.equal(od.active, true, "starting");
  assert.equal(od.running, false);
  release();
  const got = await Promise.all(uses);
  assert.equal(started.length, 1);
  assert.deepEqual(got, [[1, started[0].id], [2, started[0].id], [3, started[0].id]]);
  assert.equal(od.running, true);
  assert.equal(od.stats.starts, 1);
  await od.close();
});

Deno.test("OnDemandThread: stays while a use is under way, retires after idle once the last settles", async () => {
  const { od, timers, started } = setup({ idleMs: 1234 });
  const slow = Promise.withResolvers<string>();
  const long = od.use(() => slow.promise);
  assert.equal(await od.use(() => Promise.resolve("quick")), "quick");
  assert.deepEqual(timers.armed(), [], "one use still under way: no idle timer");
  slow.resolve("slow");
  assert.equal(await long, "slow");
  assert.deepEqual(timers.armed(), [1234]);
  // A use disarms it; its end arms it again.
  const again = od.use(() => Promise.resolve(1));
  assert.deepEqual(timers.armed(), []);
  await again;
  assert.deepEqual(timers.armed(), [1234]);
  assert.equal(started[0].closeCalls, 0);
  timers.fire();
  assert.equal(od.running, false);
  await started[0].closed;
  assert.equal(od.stats.retires, 1);
  await od.close();
  assert.equal(started[0].closeCalls, 1, "a retired thread is not closed twice");
});

Deno.test("OnDemandThread: retires after idle with real timers, and starts again at the next use", async () => {
  const { od, started } = setup({ idleMs: 5, timers: undefined });
  await od.use(() => Promise.resolve());
  await within(started[0].closed, 5000, "retire");
  assert.equal(od.running, false);
  assert.equal(await od.use((t) => Promise.resolve(t.id)), started[1].id);
  assert.equal(od.stats.starts, 2);
  assert.equal(od.stats.retires, 1);
  await od.close();
  assert.equal(started[1].alive, false);
});

Deno.test("OnDemandThread: oneAtATime: a use during a retire starts the next thread only once the old one closed", async () => {
  for (const oneAtATime of [true, false]) {
    const { od, timers, started } = setup({ oneAtATime });
    await od.use(() => Promise.resolve());
    const release = Promise.withResolvers<void>();
    started[0].hold = release.promise;
    timers.fire();
    // The retire's close is under way: the next use cannot use the retiring thread.
    const next = od.use((t) => Promise.resolve(t.id));
    await flush();
    assert.equal(started.length, oneAtATime ? 1 : 2, `oneAtATime ${oneAtATime}`);
    release.resolve();
    assert.equal(await next, started[1].id);
    assert.equal(started.length, 2, "one new thread, not two");
    assert.equal(started[0].alive, false);
    await od.close();
  }
});

Deno.test("OnDemandThread: a thread that died is replaced at the next use", async () => {
  const { od, started } = setup();
  await od.use(() => Promise.resolve());
  started[0].alive = false;
  assert.equal(od.running, false);
  assert.equal(await od.use((t) => Promise.resolve(t.id)), started[1].id);
  await od.close();
});

Deno.test("OnDemandThread: a failed start fails the uses waiting for it; the next use tries again", async () => {
  const { od, started, failNextStart, timers } = setup();
  failNextStart(new Error("open failed"));
  await assert.rejects(od.use(() => Promise.resolve()), /open failed/);
  assert.equal(od.active, false);
  timers.fire(); // nothing to retire
  assert.equal(await od.use((t) => Promise.resolve(t.id)), started[0].id);
  await od.close();
});

Deno.test("OnDemandThread: close() refuses later uses, closes the thread at once even with a use under way, and is idempotent", async () => {
  const { od, timers, started } = setup();
  const slow = Promise.withResolvers<string>();
  const long = od.use(() => slow.promise);
  await flush();
  const first = od.close();
  const second = od.close();
  assert.equal(first, second, "one close");
  await assert.rejects(
    od.use(() => Promise.resolve()),
    /store closed: no test thread after close\(\)/,
  );
  // A StoreThread answers the requests posted before its close and fails the rest: a use that
  // never settles cannot hold the shutdown.
  await first;
  assert.equal(started[0].closeCalls, 1);
  assert.equal(started[0].alive, false);
  slow.resolve("done");
  assert.equal(await long, "done");
  assert.deepEqual(timers.armed(), [], "no idle timer after close");
  await od.close();
  assert.equal(started[0].closeCalls, 1);
});

Deno.test("OnDemandThread: close() while the thread starts lets the waiting use run, then closes it", async () => {
  const { od, started, holdStarts } = setup();
  const release = holdStarts();
  const use = od.use((t) => Promise.resolve(t.id));
  const closing = od.close();
  release();
  assert.equal(await use, started[0].id);
  await closing;
  assert.equal(started.length, 1);
  assert.equal(started[0].alive, false);
});

Deno.test("OnDemandThread: close() of a oneAtATime thread waits for a retire under way; a thread never started needs nothing", async () => {
  const { od, started } = setup();
  await od.close();
  assert.equal(started.length, 0);
  const b = setup({ oneAtATime: true });
  await b.od.use(() => Promise.resolve());
  const release = Promise.withResolvers<void>();
  b.started[0].hold = release.promise;
  b.timers.fire();
  let closed = false;
  const closing = b.od.close().then(() => (closed = true));
  await flush();
  assert.equal(closed, false, "the retired thread is still closing");
  release.resolve();
  await closing;
  assert.equal(b.started[0].alive, false);
  assert.deepEqual(b.timers.armed(), []);
});

Deno.test("OnDemandThread: a retired thread's failed close is reported, and the next use starts a new one", async () => {
  const errors: unknown[] = [];
  const { od, timers, started } = setup({ onRetireError: (e) => errors.push(e) });
  await od.use(() => Promise.resolve());
  started[0].closeError = new Error("close failed");
  timers.fire();
  await started[0].closed;
  await flush();
  assert.equal(errors.length, 1);
  assert.equal(od.stats.lastRetireError, "close failed");
  assert.equal(await od.use((t) => Promise.resolve(t.id)), started[1].id);
  await od.close();
});
