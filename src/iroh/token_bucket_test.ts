import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("TokenBucket lets the burst through, then asks for waits at the rate", () => {
  let t = 0;
  const b = new TokenBucket({ bytesPerSecond: 1000, burstBytes: 500, now: () => t });
  assert.equal(b.take(500), 0);
  assert.equal(b.take(100), 100); // 100 bytes owed at 1000 B/s
  t = 100;
  assert.equal(b.take(0), 0);
  t = 10_000;
  assert.equal(b.take(400), 0, "refilled, but never above the burst");
  assert.equal(b.take(200), 100);
});

Deno.test("TokenBucket with no rate never waits", () => {
  const b = new TokenBucket({ bytesPerSecond: 0, burstBytes: 1 });
  assert.equal(b.take(1e9), 0);
});
