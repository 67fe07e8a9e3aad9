// A sorted set of UIDs kept as runs of consecutive numbers in typed arrays: the message sequence
// numbers of a selected mailbox (seq n is the n-th UID), pending expunges, \Recent, SEARCH
// results. Mailboxes are mostly contiguous, so 250 000 UIDs are a handful of runs, and even a
// fully fragmented set costs 8 bytes a UID instead of one JS value each. Every operation is
// O(log runs) or O(runs); nothing expands a run into its members unless asked to.

/** Inclusive [first, last] ranges, ascending, not overlapping or touching. */
export type Runs = readonly (readonly [number, number])[];

const MAX_UID = 4294967295;
/** The storage of every set made empty: it is never written (addRun grows first), so it can be
 * shared, and an idle session's empty sets (pending expunges, \Recent, saved) cost no buffers. */
const NONE = new Uint32Array(0);

export class UidSet {
  #lo: Uint32Array;
  #hi: Uint32Array;
  #n = 0;
  #size = 0;
  /** #before[i] = members in runs before i; rebuilt lazily after a change. */
  #before: Float64Array | null = null;

  private constructor(capacity = 0) {
    this.#lo = capacity ? new Uint32Array(capacity) : NONE;
    this.#hi = capacity ? new Uint32Array(capacity) : NONE;
  }

  static empty(): UidSet {
    return new UidSet();
  }

  /** From flat [lo, hi, lo, hi, …] runs, ascending (as the store returns them). */
  static fromFlatRuns(flat: ArrayLike<number>): UidSet {
    const s = new UidSet(Math.max(4, flat.length >> 1));
    for (let i = 0; i + 1 < flat.length; i += 2) s.addRun(flat[i], flat[i + 1]);
    return s;
  }

  /** From any numbers, in any order, duplicates allowed. */
  static of(values: Iterable<number>): UidSet {
    const b = new UidSetBuilder();
    for (const v of values) b.add(v);
    return b.build();
  }

  static range(lo: number, hi: number): UidSet {
    const s = new UidSet();
    if (lo <= hi) s.addRun(lo, hi);
    return s;
  }

  get size(): number {
    return this.#size;
  }

  get runCount(): number {
    return this.#n;
  }

  /** Smallest member, 0 when empty. */
  get min(): number {
    return this.#n ? this.#lo[0] : 0;
  }

  /** Largest member, 0 when empty. */
  get max(): number {
    return this.#n ? this.#hi[this.#n - 1] : 0;
  }

  /** Index of the run holding uid, or -(insertion point) - 1. */
  #find(uid: number): number {
    let lo = 0;
    let hi = this.#n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#hi[mid] < uid) lo = mid + 1;
      else if (this.#lo[mid] > uid) hi = mid - 1;
      else return mid;
    }
    return -lo - 1;
  }

  #prefix(): Float64Array {
    if (this.#before) return this.#before;
    const b = new Float64Array(this.#n);
    let acc = 0;
    for (let i = 0; i < this.#n; i++) {
      b[i] = acc;
      acc += this.#hi[i] - this.#lo[i] + 1;
    }
    return this.#before = b;
  }

  has(uid: number): boolean {
    return this.#find(uid) >= 0;
  }

  /** 1-based position of uid (its message sequence number), 0 when absent. */
  seqOf(uid: number): number {
    const i = this.#find(uid);
    if (i < 0) return 0;
    return this.#prefix()[i] + (uid - this.#lo[i]) + 1;
  }

  /** The member at 1-based position seq, 0 when out of range. */
  at(seq: number): number {
    if (seq < 1 || seq > this.#size) return 0;
    const i = this.#runOfSeq(seq);
    return this.#lo[i] + (seq - 1 - this.#prefix()[i]);
  }

  /** The run holding the seq-th member (1 ≤ seq ≤ size). */
  #runOfSeq(seq: number): number {
    const before = this.#prefix();
    let lo = 0;
    let hi = this.#n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (before[mid] < seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #grow() {
    const cap = Math.max(4, this.#lo.length * 2);
    const lo = new Uint32Array(cap);
    const hi = new Uint32Array(cap);
    lo.set(this.#lo.subarray(0, this.#n));
    hi.set(this.#hi.subarray(0, this.#n));
    this.#lo = lo;
    this.#hi = hi;
  }

  /** Appends [lo, hi]; lo must be above every member (merges when it touches the last run). */
  addRun(lo: number, hi: number) {
    if (lo > hi) return;
    if (lo < 1 || hi > MAX_UID) throw new RangeError(`UID run ${lo}:${hi} out of range`);
    const n = this.#n;
    if (n && lo <= this.#hi[n - 1]) {
      throw new RangeError(`UID run ${lo}:${hi} is not above ${this.#hi[n - 1]}`);
    }
    this.#before = null;
    this.#size += hi - lo + 1;
    if (n && lo === this.#hi[n - 1] + 1) {
      this.#hi[n - 1] = hi;
      return;
    }
    if (n === this.#lo.length) this.#grow();
    this.#lo[n] = lo;
    this.#hi[n] = hi;
    this.#n = n + 1;
  }

  /** Runs in ascending order. */
  *runs(): Generator<[number, number]> {
    for (let i = 0; i < this.#n; i++) yield [this.#lo[i], this.#hi[i]];
  }

  /** Runs in descending order. */
  *runsDescending(): Generator<[number, number]> {
    for (let i = this.#n - 1; i >= 0; i--) yield [this.#lo[i], this.#hi[i]];
  }

  /** The runs that meet [lo, hi], clipped to it; at most `limit` (then null: too many). */
  runsWithin(lo: number, hi: number, limit = Infinity): [number, number][] | null {
    const out: [number, number][] = [];
    let i = this.#find(lo);
    if (i < 0) i = -i - 1;
    for (; i < this.#n && this.#lo[i] <= hi; i++) {
      if (out.length >= limit) return null;
      out.push([Math.max(lo, this.#lo[i]), Math.min(hi, this.#hi[i])]);
    }
    return out;
  }

  /**
   * At most `max` of the runs that meet [lo, hi], clipped to it, ascending: the lowest ones, or
   * the highest ones with `fromTop`. O(log runs + max).
   */
  someRunsWithin(lo: number, hi: number, max: number, fromTop = false): [number, number][] {
    const out: [number, number][] = [];
    if (lo > hi) return out;
    if (!fromTop) {
      let i = this.#find(lo);
      if (i < 0) i = -i - 1;
      for (; i < this.#n && this.#lo[i] <= hi && out.length < max; i++) {
        out.push([Math.max(lo, this.#lo[i]), Math.min(hi, this.#hi[i])]);
      }
      return out;
    }
    let j = this.#find(hi);
    if (j < 0) j = -j - 2;
    for (; j >= 0 && this.#hi[j] >= lo && out.length < max; j--) {
      out.push([Math.max(lo, this.#lo[j]), Math.min(hi, this.#hi[j])]);
    }
    return out.reverse();
  }

  /** Members within [lo, hi]. */
  countWithin(lo: number, hi: number): number {
    if (lo > hi || this.#n === 0) return 0;
    return this.#rank(hi) - this.#rank(lo - 1);
  }

  /** Members ≤ uid. */
  #rank(uid: number): number {
    if (uid < 1 || this.#n === 0) return 0;
    const i = this.#find(uid);
    const before = this.#prefix();
    if (i >= 0) return before[i] + (uid - this.#lo[i]) + 1;
    const next = -i - 1;
    return next >= this.#n ? this.#size : before[next];
  }

  /** Every member, ascending. Only for sets known to be small. */
  *values(): Generator<number> {
    for (let i = 0; i < this.#n; i++) {
      for (let u = this.#lo[i]; u <= this.#hi[i]; u++) yield u;
    }
  }

  /** Members, descending. */
  *valuesDescending(): Generator<number> {
    for (let i = this.#n - 1; i >= 0; i--) {
      for (let u = this.#hi[i]; u >= this.#lo[i]; u--) yield u;
    }
  }

  /**
   * The members at the given 1-based positions (sorted, merged intervals of sequence numbers,
   * as setIntervals() gives them): what a sequence set names.
   */
  atPositions(intervals: readonly (readonly [number, number])[]): UidSet {
    const out = new UidSet();
    const before = this.#prefix();
    for (const [a0, b0] of intervals) {
      const a = Math.max(1, a0);
      const b = Math.min(this.#size, b0);
      if (a > b) continue;
      let i = this.#runOfSeq(a);
      let seq = a;
      while (seq <= b && i < this.#n) {
        const first = this.#lo[i] + (seq - 1 - before[i]);
        const runEnd = before[i] + (this.#hi[i] - this.#lo[i] + 1);
        const lastSeq = Math.min(b, runEnd);
        out.addRun(first, first + (lastSeq - seq));
        seq = lastSeq + 1;
        i++;
      }
    }
    return out;
  }

  /** The members inside the given sorted, merged intervals of UIDs. */
  within(intervals: readonly (readonly [number, number])[]): UidSet {
    return this.intersect(UidSet.fromIntervals(intervals));
  }

  static fromIntervals(intervals: readonly (readonly [number, number])[]): UidSet {
    const s = new UidSet(Math.max(4, intervals.length));
    for (const [a, b] of intervals) s.addRun(a, b);
    return s;
  }

  union(other: UidSet): UidSet {
    return merge(this, other, (a, b) => a || b);
  }

  intersect(other: UidSet): UidSet {
    return merge(this, other, (a, b) => a && b);
  }

  difference(other: UidSet): UidSet {
    return merge(this, other, (a, b) => a && !b);
  }

  /** The set in IMAP form, `1:3,5,7:9` ("" when empty). Only for sets of bounded run count. */
  format(): string {
    const parts: string[] = [];
    for (const p of this.formatPieces(Infinity)) parts.push(p);
    return parts.join("");
  }

  /**
   * The IMAP form in pieces of about `chunk` characters, for sets of any size: the caller writes
   * each piece and may yield in between.
   */
  *formatPieces(chunk = 16 * 1024): Generator<string> {
    let buf = "";
    for (let i = 0; i < this.#n; i++) {
      const lo = this.#lo[i];
      const hi = this.#hi[i];
      buf += (i ? "," : "") + (lo === hi ? `${lo}` : `${lo}:${hi}`);
      if (buf.length >= chunk) {
        yield buf;
        buf = "";
      }
    }
    if (buf) yield buf;
  }

  /** Flat [lo, hi, …] copy, e.g. to hand to the store. */
  toFlatRuns(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#n; i++) out.push(this.#lo[i], this.#hi[i]);
    return out;
  }
}

/** Walks both run lists once, keeping the stretches where `keep(inA, inB)` holds. */
function merge(a: UidSet, b: UidSet, keep: (inA: boolean, inB: boolean) => boolean): UidSet {
  // Boundaries where membership may change, as half-open [start, end) events.
  const out = UidSet.empty();
  const ra = a.runs();
  const rb = b.runs();
  let ca = ra.next();
  let cb = rb.next();
  let pos = 1;
  let pendingLo = 0;
  let pendingHi = -1;
  const emit = (lo: number, hi: number) => {
    if (lo > hi) return;
    if (pendingHi >= 0 && lo === pendingHi + 1) pendingHi = hi;
    else {
      if (pendingHi >= 0) out.addRun(pendingLo, pendingHi);
      pendingLo = lo;
      pendingHi = hi;
    }
  };
  while (!ca.done || !cb.done) {
    // Skip runs that end before pos.
    while (!ca.done && ca.value[1] < pos) ca = ra.next();
    while (!cb.done && cb.value[1] < pos) cb = rb.next();
    if (ca.done && cb.done) break;
    const inA = !ca.done && ca.value[0] <= pos;
    const inB = !cb.done && cb.value[0] <= pos;
    // The next point where either membership flips.
    let next = Infinity;
    if (!ca.done) next = Math.min(next, inA ? ca.value[1] + 1 : ca.value[0]);
    if (!cb.done) next = Math.min(next, inB ? cb.value[1] + 1 : cb.value[0]);
    if (!inA && !inB) {
      pos = next;
      continue;
    }
    if (keep(inA, inB)) emit(pos, next - 1);
    pos = next;
  }
  if (pendingHi >= 0) out.addRun(pendingLo, pendingHi);
  return out;
}

/** Collects numbers in any order into a growable typed array; build() sorts and compresses. */
export class UidSetBuilder {
  #buf = new Uint32Array(64);
  #n = 0;

  get length(): number {
    return this.#n;
  }

  add(uid: number) {
    if (this.#n === this.#buf.length) {
      const next = new Uint32Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = uid;
  }

  build(): UidSet {
    const v = this.#buf.subarray(0, this.#n).sort();
    const s = UidSet.empty();
    let i = 0;
    while (i < v.length) {
      let j = i;
      while (j + 1 < v.length && v[j + 1] <= v[j] + 1) j++;
      s.addRun(v[i], v[j]);
      i = j + 1;
    }
    return s;
  }
}
