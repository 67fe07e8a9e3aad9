import assert from "node:assert/strict";
import { ConcurrencyWindow } from "./concurrency_window.ts";

Deno.test("ConcurrencyWindow starts small and grows by one per success up to the cap", () => {
  const w = new ConcurrencyWindow(2, 5);
  assert.equal(w.limit, 2);
  const seen = [];
  for (let i = 0; i < 5; i++) {
    w.success();
    seen.push(w.limit);
  }
  assert.deepEqual(seen, [3, 4, 5, 5, 5]);
});

Deno.test("ConcurrencyWindow halves on failure and reports a dead peer at one", () => {
  const w = new ConcurrencyWindow(2, 20);
  for (let i = 0; i < 18; i++) w.success();
  assert.equal(w.limit, 20);
  assert.equal(w.failure(), "shrunk");
  assert.equal(w.limit, 10);
  assert.deepEqual([w.failure(), w.failure(), w.failure()], ["shrunk", "shrunk", "shrunk"]);
  assert.equal(w.limit, 1);
  assert.equal(w.failure(), "dead");
  assert.equal(w.limit, 1);
  w.success();
  assert.equal(w.limit, 2);
  w.restart();
  assert.equal(w.limit, 1);
});

Deno.test("ConcurrencyWindow never starts above its cap or below one", () => {
  assert.equal(new ConcurrencyWindow(5, 3).limit, 3);
  assert.equal(new ConcurrencyWindow(0, 3).limit, 1);
});
