import assert from "node:assert/strict";
import { quietCollector } from "./quiet_collector.ts";

const MB = 1024 * 1024;

/** A relay in a test tube: its activity count, its size, the collections it got, a clock. */
function bench() {
  const state = { activity: 0, size: 70 * MB, collected: 0, tick: null as (() => void) | null };
  const c = quietCollector({
    activity: () => state.activity,
    memory: () => state.size,
    gc: (o) => {
      assert.deepEqual(o, { type: "major", execution: "sync", flavor: "last-resort" });
      state.collected++;
      state.size -= 20 * MB; // what the collection gave back
    },
    intervalMs: 2000,
    minGrowthBytes: 8 * MB,
    timers: {
      every: (fn) => (state.tick = fn),
      cancel: () => (state.tick = null),
    },
  });
  return { state, c, tick: () => state.tick?.() };
}

Deno.test("quiet collector: one collection once a burst is over, none while it goes on", () => {
  const { state, c, tick } = bench();
  // A burst: clients act in every interval while the process grows.
  for (let i = 0; i < 10; i++) {
    state.activity += 100;
    state.size += 10 * MB;
    tick();
  }
  assert.equal(state.collected, 0, "never while clients act");
  tick(); // a whole interval without activity
  assert.equal(state.collected, 1);
  assert.equal(c.collections, 1);
  for (let i = 0; i < 50; i++) tick(); // the relay stays idle
  assert.equal(state.collected, 1, "an idle relay is collected once, not again and again");
  c.stop();
});

Deno.test("quiet collector: activity that did not grow the process costs no collection", () => {
  const { state, c, tick } = bench();
  for (let i = 0; i < 20; i++) {
    state.activity++; // one client's NOOP now and then
    tick();
    tick();
  }
  assert.equal(state.collected, 0);
  // Growth that came in small steps adds up, measured from the smallest size seen.
  state.size -= 5 * MB;
  tick();
  state.activity++;
  state.size += 9 * MB;
  tick();
  tick();
  assert.equal(state.collected, 1);
  c.stop();
});

Deno.test("quiet collector: the next burst owes one more collection", () => {
  const { state, c, tick } = bench();
  state.activity++;
  state.size += 30 * MB;
  tick();
  tick();
  assert.equal(state.collected, 1);
  state.activity++;
  state.size += 30 * MB;
  tick();
  assert.equal(state.collected, 1, "not in the interval the clients acted in");
  tick();
  assert.equal(state.collected, 2);
  c.stop();
  assert.equal(state.tick, null, "stop() cancels the timer");
});

Deno.test("quiet collector: without an exposed gc no timer is set", () => {
  let set = 0;
  const c = quietCollector({
    activity: () => 0,
    gc: null,
    timers: { every: () => set++, cancel: () => {} },
  });
  assert.equal(set, 0);
  c.stop();
});

Deno.test("quiet collector: the real timer neither keeps the process alive nor leaks", () => {
  // The op sanitizer fails the test if stop() leaves the interval behind.
  const c = quietCollector({ activity: () => 0, gc: () => {} });
  c.stop();
});

Deno.test("quiet collector: free malloc memory is handed back right after each collection", () => {
  const calls: string[] = [];
  let tick: (() => void) | null = null;
  let activity = 0;
  let size = 70 * MB;
  const c = quietCollector({
    activity: () => activity,
    memory: () => size,
    gc: () => {
      calls.push("gc");
      size -= 20 * MB;
    },
    trim: () => calls.push("trim"),
    timers: { every: (fn) => (tick = fn), cancel: () => (tick = null) },
  });
  activity++;
  size += 30 * MB;
  tick!(); // clients acted: neither a collection nor a trim
  assert.deepEqual(calls, []);
  tick!();
  assert.deepEqual(calls, ["gc", "trim"], "the trim follows the collection");
  for (let i = 0; i < 5; i++) tick!();
  assert.deepEqual(calls, ["gc", "trim"], "no trim without a collection");
  c.stop();
});
