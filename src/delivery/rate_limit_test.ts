import assert from "node:assert/strict";
import { SendRateLimiter } from "./rate_limit.ts";

Deno.test("SendRateLimiter allows a burst of 10, then one per second (60/min)", () => {
  let now = 1_000_000;
  const rl = new SendRateLimiter({ perMinute: 60, burst: 10, now: () => now });
  for (let i = 0; i < 10; i++) assert.equal(rl.take("a@x").allowed, true, `message ${i + 1}`);
  const refused = rl.take("a@x");
  assert.equal(refused.allowed, false);
  assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000);
  assert.equal(rl.take("b@x").allowed, true, "other senders are independent");
  now += 1000;
  assert.equal(rl.take("a@x").allowed, true);
  assert.equal(rl.take("a@x").allowed, false);
  now += 60_000;
  for (let i = 0; i < 10; i++) assert.equal(rl.take("a@x").allowed, true);
  assert.equal(rl.take("a@x").allowed, false);
});
