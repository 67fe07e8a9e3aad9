import assert from "node:assert/strict";
import { countLf } from "./bytes.ts";

function naive(b: Uint8Array, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) if (b[i] === 10) n++;
  return n;
}

Deno.test("countLf: the same count as a byte loop at every alignment and range", () => {
  // Bytes that a faulty word trick would confuse with LF: 0x8a, 0x0b, 0x09, 0x00, 0xff.
  const alphabet = [10, 0x8a, 11, 9, 0, 255, 10, 0x0a | 0x80, 13];
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  const backing = new Uint8Array(400);
  for (let i = 0; i < backing.length; i++) backing[i] = alphabet[rand(alphabet.length)];
  for (let off = 0; off < 8; off++) {
    const view = backing.subarray(off, off + 300);
    for (let k = 0; k < 400; k++) {
      const s = rand(view.length + 1);
      const e = s + rand(view.length - s + 1);
      assert.equal(countLf(view, s, e), naive(view, s, e), `offset ${off}, [${s}, ${e})`);
    }
  }
  const allLf = new Uint8Array(1000).fill(10);
  assert.equal(countLf(allLf, 0, 1000), 1000);
  assert.equal(countLf(allLf, 3, 3), 0);
});
