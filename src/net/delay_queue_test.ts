import assert from "node:assert/strict";
import { DelayQueue, delayQueue } from "./delay_queue.ts";

/** A promise and the function that settles it, for a callback to say it ran. */
function signal(): { ran: Promise<void>; fire: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { ran: promise, fire: () => resolve() };
}

Deno.test("DelayQueue: callbacks run in the order of their deadlines; a rescheduled one goes last, a cancelled one never runs", async () => {
  const q = new DelayQueue(30);
  const order: string[] = [];
  const last = signal();
  const a = () => {
    order.push("a");
    last.fire();
  };
  const b = () => order.push("b");
  const c = () => order.push("c");
  const d = () => order.push("d");
  q.schedule(a);
  q.schedule(b);
  q.schedule(c);
  q.schedule(d);
  q.schedule(a); // starts over: after d
  q.cancel(c);
  assert.equal(q.size, 3);
  await last.ran;
  assert.deepEqual(order, ["b", "d", "a"]);
  assert.equal(q.size, 0);
  // Nothing left waiting: no timer outlives the test (the op sanitizer checks).
});

Deno.test("DelayQueue: a callback may schedule itself again and others still run; the timer stops when the queue is empty", async () => {
  const q = new DelayQueue(20);
  let rounds = 0;
  const done = signal();
  const other = signal();
  const again = () => {
    if (++rounds < 3) q.schedule(again);
    else done.fire();
  };
  q.schedule(again);
  q.schedule(other.fire);
  await other.ran;
  await done.ran;
  assert.equal(rounds, 3);
  assert.equal(q.size, 0);
});

Deno.test("delayQueue(): one shared queue per delay", () => {
  assert.equal(delayQueue(12_345), delayQueue(12_345));
  assert.notEqual(delayQueue(12_345), delayQueue(12_346));
  const q = delayQueue(12_347);
  const f = () => {};
  q.schedule(f);
  q.cancel(f);
  assert.equal(q.size, 0);
});
