import assert from "node:assert/strict";
import { rewrittenAs } from "./message_input.ts";

const enc = new TextEncoder();
const join = (head: Uint8Array, original: Uint8Array, skip: number) => {
  const out = new Uint8Array(head.length + original.length - skip);
  out.set(head);
  out.set(original.subarray(skip), head.length);
  return out;
};

Deno.test("rewrittenAs() shares the body after the header block and rebuilds the rewrite exactly", () => {
  const cases: [string, string][] = [
    ["Received: x\r\nSubject: a\r\n\r\nbody\r\n", "Subject: [...]\r\n\r\nbody\r\n"],
    ["Subject: a\n\nbody\n", "Subject: a\nX: 1\n\nbody\n"],
    ["Subject: a\r\n\r\n", "Subject: b\r\n\r\n"],
    ["no header end at all", "rewritten entirely"],
    ["A: 1\r\n\r\nbody", "A: 1\r\n\r\nBODY changed"],
    ["A: 1\r\n\r\nbody", "A: 1\r\n\r\nbody"],
  ];
  for (const [o, r] of cases) {
    const original = enc.encode(o), rewritten = enc.encode(r);
    const { head, skip } = rewrittenAs(original, rewritten);
    assert.deepEqual(join(head, original, skip), rewritten, JSON.stringify([o, r]));
  }
  const body = new Uint8Array(3_000_000).fill(66);
  const original = new Uint8Array([...enc.encode("Received: x\r\nA: 1\r\n\r\n"), ...body]);
  const rewritten = new Uint8Array([...enc.encode("A: 1\r\n\r\n"), ...body]);
  const { head, skip } = rewrittenAs(original, rewritten);
  assert.equal(head.length, 6, "only the rewritten header block is new");
  assert.equal(skip, 19);
});
