import assert from "node:assert/strict";
import { backoffMs } from "./backoff.ts";

const policy = { baseMs: 1000, capMs: 60_000 };

Deno.test("backoffMs() doubles per failure up to the cap", () => {
  const top = (n: number) => backoffMs(n, policy, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 100].map(top), [
    1000,
    2000,
    4000,
    8000,
    16000,
    32000,
    60000,
    60000,
    60000,
  ]);
  assert.equal(top(0), 1000, "a zero count is the first failure");
});

Deno.test("backoffMs() keeps half the delay and jitters the other half", () => {
  assert.equal(backoffMs(3, policy, () => 0), 2000);
  assert.equal(backoffMs(3, policy, () => 0.5), 3000);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = backoffMs(5, policy);
    assert.ok(d >= 8000 && d <= 16000, `${d}`);
    seen.add(d);
  }
  assert.ok(seen.size > 50, "deferred mail does not come back in step");
});
