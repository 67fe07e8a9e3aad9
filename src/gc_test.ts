import assert from "node:assert/strict";
import { collectGarbage, type Gc, NativeGarbage } from "./gc.ts";

Deno.test("collectGarbage() asks for one full, memory-reducing collection", () => {
  const calls: Parameters<Gc>[0][] = [];
  assert.equal(collectGarbage((o) => calls.push(o)), true);
  assert.deepEqual(calls, [{ type: "major", execution: "sync", flavor: "last-resort" }]);
});

Deno.test("collectGarbage() without an exposed gc does nothing", () => {
  assert.equal(collectGarbage(null), false);
});

Deno.test("NativeGarbage asks for one concurrent major collection per threshold of native bytes", () => {
  const calls: Parameters<Gc>[0][] = [];
  const g = new NativeGarbage(10_000, () => (o) => calls.push(o));
  for (let i = 0; i < 9; i++) g.add(1000);
  assert.equal(calls.length, 0, "below the threshold: none");
  g.add(1000);
  assert.deepEqual(calls, [{ type: "major", execution: "async" }]);
  for (let i = 0; i < 25; i++) g.add(1000);
  assert.equal(calls.length, 3, "one per 10 000 bytes");
  assert.equal(g.collections, 3);
  assert.equal(g.counted, 35_000);
});

Deno.test("NativeGarbage without an exposed gc only counts", () => {
  const g = new NativeGarbage(1000, () => null);
  g.add(5000);
  assert.equal(g.collections, 0);
  assert.equal(g.counted, 5000);
});
