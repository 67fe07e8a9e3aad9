// The spool's memory side: bytes go straight into a slab that grows (once) up to the
// inline limit and is handed out as it is; past the limit the body moves to a file and the slab
// goes back; a spool given up at any point gives its slab back, but never while a store call
// still reads its body.

import assert from "node:assert/strict";
import { INLINE_LIMIT } from "./bodies.ts";
import { ensureBodyDirs, tmpDirOf } from "./body_files.ts";
import { SLAB_MIN, SlabPool } from "./slab_pool.ts";
import { leaseBody, SqliteSpool } from "./spool.ts";

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}

async function withDir(run: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tern-spool-" });
  try {
    ensureBodyDirs(dir);
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function tmpNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(tmpDirOf(dir))) names.push(e.name);
  return names;
}

/** Writes `bytes` in `chunk`-sized pieces from one reused buffer (as a socket reader does). */
async function spoolAll(spool: SqliteSpool, bytes: Uint8Array, chunk: number) {
  const buf = new Uint8Array(chunk);
  for (let off = 0; off < bytes.length; off += chunk) {
    const piece = bytes.subarray(off, off + chunk);
    buf.set(piece);
    await spool.write(buf.subarray(0, piece.length));
    buf.fill(0x21);
  }
}

/** Both slab boundaries (the second is the inline limit) and the bytes either side of them. */
const MEMORY_SIZES = [0, 1, SLAB_MIN - 1, SLAB_MIN, SLAB_MIN + 1, 50_000];
MEMORY_SIZES.push(INLINE_LIMIT - 1, INLINE_LIMIT);

Deno.test("in memory up to the inline limit: every slab boundary, in one piece or many, byte for byte", async () => {
  await withDir(async (dir) => {
    for (const shared of [false, true]) {
      const pool = new SlabPool(shared, INLINE_LIMIT);
      for (const size of MEMORY_SIZES) {
        const expected = pattern(size, size);
        for (const chunk of [1000, SLAB_MIN, 65_537, Math.max(size, 1)]) {
          const spool = new SqliteSpool(dir, pool);
          await spoolAll(spool, expected, chunk);
          const body = await spool.finish();
          const what = `${size} bytes in ${chunk}-byte pieces`;
          assert.equal(body.file, null, what);
          assert.equal(body.size, size, what);
          assert.deepEqual(body.bytes, expected, what);
          if (size > 0) {
            // The slab as it is: the smallest that holds the body, shared when asked for.
            assert.equal(
              body.bytes!.buffer.byteLength,
              size <= SLAB_MIN ? SLAB_MIN : INLINE_LIMIT,
              what,
            );
            assert.equal(body.bytes!.buffer instanceof SharedArrayBuffer, shared, what);
          }
          await spool.discard();
        }
      }
      assert.deepEqual(await tmpNames(dir), [], "nothing went to a file");
    }
  });
});

Deno.test("one byte past the inline limit: the body moves to a file and its slab goes back", async () => {
  await withDir(async (dir) => {
    const pool = new SlabPool(true, INLINE_LIMIT);
    for (const chunk of [1000, 65_537, INLINE_LIMIT + 1]) {
      const expected = pattern(INLINE_LIMIT + 1, chunk);
      const spool = new SqliteSpool(dir, pool);
      await spoolAll(spool, expected, chunk);
      assert.equal((await tmpNames(dir)).length, 1, `${chunk}: spilled to a spool file`);
      // Every slab it filled is free again: one of each size (the first body grew through both;
      // the others reuse them, or never take one when their first piece is too big).
      assert.equal(pool.freeBytes, SLAB_MIN + INLINE_LIMIT, `${chunk}: the slabs are back`);
      const body = await spool.finish();
      assert.equal(body.bytes, null);
      assert.equal(body.size, expected.length);
      assert.deepEqual(await Deno.readFile(`${tmpDirOf(dir)}/${body.file}`), expected);
      await spool.discard();
      assert.deepEqual(await tmpNames(dir), [], `${chunk}: the spool file is gone`);
    }
  });
});

Deno.test("a spool given up mid-body (the client vanished) gives its slab back for the next message", async () => {
  await withDir(async (dir) => {
    const pool = new SlabPool(true, INLINE_LIMIT);
    const first = new SqliteSpool(dir, pool);
    await spoolAll(first, pattern(50_000, 1), 10_000);
    assert.equal(pool.freeBytes, SLAB_MIN, "the slab it grew out of");
    await first.discard();
    assert.equal(pool.freeBytes, SLAB_MIN + INLINE_LIMIT, "and its own");
    await assert.rejects(first.write(new Uint8Array(1)), /discarded/);
    await assert.rejects(first.finish(), /discarded/);
    // The next body takes the slabs back, sees none of the old bytes, and is whole.
    const second = new SqliteSpool(dir, pool);
    const expected = pattern(60_000, 2);
    await spoolAll(second, expected, 4096);
    const body = await second.finish();
    assert.equal(pool.freeBytes, SLAB_MIN, "the large slab is the reused one");
    assert.deepEqual(body.bytes, expected);
    await second.discard();
  });
});

Deno.test("discard() keeps the slab out of reuse while a store call still reads the body", async () => {
  const pool = new SlabPool(true, INLINE_LIMIT);
  const spool = new SqliteSpool(null, pool);
  const expected = pattern(100_000, 3);
  await spool.write(expected);
  const body = await spool.finish();
  const release = leaseBody([{ body, internalDate: 1 }])!;
  assert.ok(release, "a body in a slab is leased");
  assert.equal(leaseBody([{ body: { size: 0, bytes: new Uint8Array(0), file: null } }]), null);
  assert.equal(leaseBody([]), null);
  let discarded = false;
  const discarding = spool.discard().then(() => discarded = true);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(discarded, false, "waits for the lease");
  const before = pool.freeBytes;
  // Meanwhile another message gets another slab: the leased bytes stay as they were.
  const other = new SqliteSpool(null, pool);
  await other.write(pattern(100_000, 4));
  assert.notEqual((await other.finish()).bytes!.buffer, body.bytes!.buffer);
  assert.deepEqual(body.bytes, expected);
  release();
  release(); // idempotent
  await discarding;
  assert.ok(pool.freeBytes > before, "given back once released");
  await other.discard();
});

Deno.test("a store without a bodies directory keeps bodies past the inline limit in memory", async () => {
  const pool = new SlabPool(false, INLINE_LIMIT);
  const spool = new SqliteSpool(null, pool);
  const expected = pattern(3 * INLINE_LIMIT + 5, 5);
  await spoolAll(spool, expected, 65_537);
  const body = await spool.finish();
  assert.deepEqual(body.bytes, expected);
  await spool.discard();
  assert.ok(pool.freeBytes <= 2 * INLINE_LIMIT, "slabs over the largest size are not kept");
});
