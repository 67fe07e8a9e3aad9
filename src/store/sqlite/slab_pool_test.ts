import assert from "node:assert/strict";
import { POOL_BYTES, SLAB_MIN, SlabPool } from "./slab_pool.ts";

Deno.test("slab sizes: SLAB_MIN, then the largest kept, then doubling; each boundary on the smaller side", () => {
  const pool = new SlabPool(false, 8 * SLAB_MIN);
  assert.equal(pool.sizeFor(0), SLAB_MIN);
  assert.equal(pool.sizeFor(1), SLAB_MIN);
  assert.equal(pool.sizeFor(SLAB_MIN), SLAB_MIN);
  assert.equal(pool.sizeFor(SLAB_MIN + 1), 8 * SLAB_MIN);
  assert.equal(pool.sizeFor(8 * SLAB_MIN), 8 * SLAB_MIN);
  assert.equal(pool.sizeFor(8 * SLAB_MIN + 1), 16 * SLAB_MIN);
  assert.equal(pool.sizeFor(32 * SLAB_MIN + 1), 64 * SLAB_MIN);
});

Deno.test("a slab given back is the next one taken of its size; shared slabs are shared", () => {
  for (const shared of [false, true]) {
    const pool = new SlabPool(shared, 8 * SLAB_MIN);
    const a = pool.take(100);
    assert.equal(a.buffer instanceof SharedArrayBuffer, shared);
    assert.equal(a.length, SLAB_MIN);
    pool.give(a);
    assert.equal(pool.freeBytes, SLAB_MIN);
    assert.notEqual(pool.take(SLAB_MIN + 1), a, "another size: a new slab");
    assert.equal(pool.take(SLAB_MIN), a);
    assert.equal(pool.freeBytes, 0);
    assert.notEqual(pool.take(SLAB_MIN), a, "taken once only");
  }
});

Deno.test("the pool keeps no slab over its largest size and no more than its budget", () => {
  const pool = new SlabPool(false, 4 * SLAB_MIN, 6 * SLAB_MIN);
  pool.give(pool.take(4 * SLAB_MIN + 1));
  assert.equal(pool.freeBytes, 0, "over the largest size");
  pool.give(pool.take(4 * SLAB_MIN));
  pool.give(new Uint8Array(2 * SLAB_MIN));
  assert.equal(pool.freeBytes, 6 * SLAB_MIN);
  pool.give(new Uint8Array(SLAB_MIN));
  assert.equal(pool.freeBytes, 6 * SLAB_MIN, "over the budget: left to the garbage collector");
  assert.ok(POOL_BYTES >= 16 * 128 * 1024, "the default keeps a slab per session of a busy relay");
});
