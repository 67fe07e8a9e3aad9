import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { hmac } from "./key_schedule.ts";
import { Sha256, sha256 } from "./sha256.ts";

Deno.test("hmac: the same as node:crypto's HMAC for keys shorter than, as long as and longer than a block", () => {
  for (const hash of ["sha256", "sha384"]) {
    for (const keyLength of [0, 1, 32, 48, 64, 65, 128, 129, 200]) {
      const key = Uint8Array.from({ length: keyLength }, (_, i) => (i * 7 + keyLength) & 0xff);
      const a = Uint8Array.from({ length: 100 }, (_, i) => i);
      const b = Uint8Array.of(1, 2, 3);
      const want = createHmac(hash, key).update(a).update(b).digest();
      assert.deepEqual(
        new Uint8Array(hmac(hash, key, a, b)),
        new Uint8Array(want),
        `${hash} key ${keyLength}`,
      );
      assert.deepEqual(
        new Uint8Array(hmac(hash, key)),
        new Uint8Array(createHmac(hash, key).digest()),
      );
    }
  }
});

Deno.test("sha256: the same as node:crypto's for every length around the block and padding boundaries, in one part or many", () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31 + 7) & 0xff);
  for (let n = 0; n <= 300; n++) {
    const bytes = data.subarray(0, n);
    const want = new Uint8Array(createHash("sha256").update(bytes).digest());
    assert.deepEqual(sha256([bytes]), want, `length ${n}`);
    // The same bytes cut in three pieces where the block boundaries fall differently.
    const a = Math.floor(n / 3), b = Math.floor((2 * n) / 3) + 1;
    const cut = [bytes.subarray(0, a), bytes.subarray(a, Math.min(b, n)), bytes.subarray(b)];
    assert.deepEqual(sha256(cut), want, `length ${n} in pieces`);
  }
  const big = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 13) & 0xff);
  assert.deepEqual(
    sha256([big.subarray(0, 1), big.subarray(1, 64), big.subarray(64)]),
    new Uint8Array(createHash("sha256").update(big).digest()),
  );
});

Deno.test("Sha256: a digest taken along the way is that of the bytes so far, and adding goes on after it", () => {
  const data = Uint8Array.from({ length: 700 }, (_, i) => (i * 17 + 3) & 0xff);
  const h = new Sha256();
  let at = 0;
  for (const step of [0, 1, 55, 8, 64, 63, 120, 200, 189]) {
    h.update(data.subarray(at, at + step));
    at += step;
    const want = new Uint8Array(createHash("sha256").update(data.subarray(0, at)).digest());
    assert.deepEqual(h.digest(), want, `after ${at} bytes`);
  }
});
