import assert from "node:assert/strict";
import { collectGarbage, type Gc } from "./gc.ts";

Deno.test("collectGarbage() asks for one full, memory-reducing collection", () => {
  const calls: Parameters<Gc>[0][] = [];
  assert.equal(collectGarbage((o) => calls.push(o)), true);
  assert.deepEqual(calls, [{ type: "major", execution: "sync", flavor: "last-resort" }]);
});

Deno.test("collectGarbage() without an exposed gc does nothing", () => {
  assert.equal(collectGarbage(null), false);
});
