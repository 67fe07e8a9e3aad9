import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { hmac } from "./key_schedule.ts";

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
