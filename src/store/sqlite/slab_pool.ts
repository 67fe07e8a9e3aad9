// Reusable buffers for spooled bodies kept in memory. In a loop, a new 100 KB SharedArrayBuffer
// cost ~48 µs (allocation, zeroing, and the garbage collector's share of external memory) and a
// growable one more still (~100-130 µs: it reserves and commits address space); taking a slab
// that an earlier message gave back costs ~0 (the whole spool of a 100 KB body: 80-135 -> 20 µs). Two sizes: SLAB_MIN for the many small
// messages, then the inline limit (the largest body kept in memory), so a large body moves once,
// copying SLAB_MIN bytes. (Doubling from SLAB_MIN instead moved a 100 KB body three times and
// copied 112 KB more: 39 instead of 20 µs of the main thread per message in the spool.) Stores
// without a bodies directory keep any body in memory: past the limit their slabs double.
//
// A slab is given back only when nobody reads it any more: its spool's discard(), which callers
// make after the last store call using the body (and which waits for store calls still in flight:
// spool.ts leaseBody).

/** The smallest slab: a few KB message takes one of these. */
export const SLAB_MIN = 16 * 1024;

/** Bytes of free slabs kept for reuse; more are left to the garbage collector. */
export const POOL_BYTES = 4 << 20;

export class SlabPool {
  readonly shared: boolean;
  readonly #maxSlab: number;
  readonly #budget: number;
  /** Free slabs by size. */
  #free = new Map<number, Uint8Array[]>();
  #freeBytes = 0;

  /**
   * `shared`: slabs in SharedArrayBuffers (the writer thread reads them where they are);
   * `maxSlab`: the size after SLAB_MIN; larger slabs are never kept.
   */
  constructor(shared: boolean, maxSlab: number, budget = POOL_BYTES) {
    this.shared = shared;
    this.#maxSlab = maxSlab;
    this.#budget = budget;
  }

  /** Bytes held by free slabs. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** The size of the slab take(min) gives. */
  sizeFor(min: number): number {
    if (min <= SLAB_MIN) return SLAB_MIN;
    let n = this.#maxSlab;
    while (n < min) n *= 2;
    return n;
  }

  /** A slab of at least `min` bytes (its contents are whatever its last user left). */
  take(min: number): Uint8Array {
    const size = this.sizeFor(min);
    const slab = this.#free.get(size)?.pop();
    if (slab) {
      this.#freeBytes -= size;
      return slab;
    }
    return new Uint8Array(this.shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
  }

  /** Takes `slab` back for reuse; the caller must not touch it afterwards. */
  give(slab: Uint8Array): void {
    const size = slab.length;
    if (size > this.#maxSlab || this.#freeBytes + size > this.#budget) return;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(slab);
    this.#freeBytes += size;
  }
}
