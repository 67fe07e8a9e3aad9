import assert from "node:assert/strict";
import { hashPassword, passwordWork, verifyPassword } from "./passwords.ts";

Deno.test("passwords: a burst of hashes runs a bounded number at a time and all verify", async () => {
  const n = 12;
  const seen: number[] = [];
  const probe = setInterval(() => seen.push(passwordWork().running), 1);
  try {
    const hashes = await Promise.all(Array.from({ length: n }, (_, i) => hashPassword(`pw-${i}`)));
    const { limit } = passwordWork();
    assert.ok(Math.max(...seen) <= limit, `at most ${limit} at once, saw ${Math.max(...seen)}`);
    assert.ok(Math.max(...seen) >= 1);
    assert.equal(passwordWork().running, 0);
    assert.equal(passwordWork().waiting, 0);
    assert.equal(new Set(hashes).size, n, "each hash has its own salt");
    const checks = await Promise.all(hashes.map((h, i) => verifyPassword(`pw-${i}`, h)));
    assert.deepEqual(checks, Array(n).fill(true));
    assert.equal(await verifyPassword("pw-1", hashes[0]), false);
    assert.equal(await verifyPassword("pw-0", "scrypt$bogus"), false);
  } finally {
    clearInterval(probe);
  }
});
