import assert from "node:assert/strict";
import fc from "fast-check";
import { UidSet, UidSetBuilder } from "./uid_set.ts";

const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);
const members = fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 120 });

Deno.test("UidSet keeps runs: positions, membership and ranks agree with a plain sorted list", () => {
  fc.assert(fc.property(members, (xs) => {
    const model = sorted(xs);
    const s = UidSet.of(xs);
    assert.equal(s.size, model.length);
    assert.deepEqual([...s.values()], model);
    assert.deepEqual([...s.valuesDescending()], [...model].reverse());
    assert.equal(s.min, model[0] ?? 0);
    assert.equal(s.max, model[model.length - 1] ?? 0);
    for (let i = 0; i < model.length; i++) {
      assert.equal(s.at(i + 1), model[i]);
      assert.equal(s.seqOf(model[i]), i + 1);
    }
    assert.equal(s.at(0), 0);
    assert.equal(s.at(model.length + 1), 0);
    for (let u = 1; u <= 301; u++) assert.equal(s.has(u), model.includes(u));
    for (const [lo, hi] of [[1, 300], [50, 60], [7, 7], [200, 100]]) {
      assert.equal(s.countWithin(lo, hi), model.filter((u) => u >= lo && u <= hi).length);
    }
    // Runs never touch: each gap is at least one number.
    const runs = [...s.runs()];
    for (let i = 1; i < runs.length; i++) assert.ok(runs[i][0] > runs[i - 1][1] + 1);
  }));
});

Deno.test("UidSet union, intersect and difference agree with sets", () => {
  fc.assert(fc.property(members, members, (xs, ys) => {
    const a = UidSet.of(xs);
    const b = UidSet.of(ys);
    const sx = new Set(xs);
    const sy = new Set(ys);
    assert.deepEqual([...a.union(b).values()], sorted([...xs, ...ys]));
    assert.deepEqual([...a.intersect(b).values()], sorted(xs.filter((x) => sy.has(x))));
    assert.deepEqual([...a.difference(b).values()], sorted(xs.filter((x) => !sy.has(x))));
    assert.deepEqual([...b.difference(a).values()], sorted(ys.filter((y) => !sx.has(y))));
  }));
});

Deno.test("UidSet.atPositions maps sequence intervals to UIDs", () => {
  fc.assert(fc.property(
    members,
    fc.array(fc.tuple(fc.integer({ min: 1, max: 150 }), fc.integer({ min: 0, max: 40 }))),
    (xs, spans) => {
      const model = sorted(xs);
      const s = UidSet.of(xs);
      // Sorted, merged intervals, as setIntervals() makes them.
      const seqs = sorted(
        spans.flatMap(([a, n]) => Array.from({ length: n + 1 }, (_, i) => a + i)),
      );
      const intervals: [number, number][] = [];
      for (const q of seqs) {
        const last = intervals[intervals.length - 1];
        if (last && q === last[1] + 1) last[1] = q;
        else intervals.push([q, q]);
      }
      const want = seqs.filter((q) => q <= model.length).map((q) => model[q - 1]);
      assert.deepEqual([...s.atPositions(intervals).values()], want);
    },
  ));
});

Deno.test("UidSet stays compact: 250 000 contiguous UIDs are one run", () => {
  const s = UidSet.empty();
  for (let lo = 1; lo <= 250_000; lo += 5000) s.addRun(lo, lo + 4999);
  assert.equal(s.runCount, 1);
  assert.equal(s.size, 250_000);
  assert.equal(s.seqOf(123_456), 123_456);
  assert.equal(s.at(250_000), 250_000);
  // Every other message expunged: 125 000 runs, still typed arrays.
  const b = new UidSetBuilder();
  for (let u = 2; u <= 250_000; u += 2) b.add(u);
  const holes = s.difference(b.build());
  assert.equal(holes.size, 125_000);
  assert.equal(holes.runCount, 125_000);
  assert.equal(holes.at(125_000), 249_999);
  assert.equal(holes.seqOf(249_999), 125_000);
});

Deno.test("UidSet formats IMAP sets, in pieces for big ones", () => {
  assert.equal(UidSet.of([1, 2, 3, 5, 7, 8, 9]).format(), "1:3,5,7:9");
  assert.equal(UidSet.empty().format(), "");
  const b = new UidSetBuilder();
  for (let u = 1; u <= 20_000; u += 2) b.add(u);
  const big = b.build();
  const pieces = [...big.formatPieces(1000)];
  assert.ok(pieces.length > 10);
  assert.ok(pieces.every((p) => p.length < 1100));
  assert.equal(pieces.join(""), Array.from({ length: 10_000 }, (_, i) => 2 * i + 1).join(","));
});

Deno.test("UidSet refuses runs out of order or out of range", () => {
  const s = UidSet.range(5, 9);
  assert.throws(() => s.addRun(3, 4), RangeError);
  assert.throws(() => s.addRun(9, 12), RangeError);
  assert.throws(() => UidSet.range(0, 3), RangeError);
  s.addRun(10, 12);
  assert.deepEqual([...s.runs()], [[5, 12]]);
  assert.deepEqual(s.runsWithin(6, 20), [[6, 12]]);
  assert.equal(UidSet.of([1, 3, 5, 7]).runsWithin(1, 7, 2), null);
  const odd = UidSet.of([1, 3, 5, 7, 9]);
  assert.deepEqual(odd.someRunsWithin(2, 8, 2), [[3, 3], [5, 5]]);
  assert.deepEqual(odd.someRunsWithin(2, 8, 2, true), [[5, 5], [7, 7]]);
  assert.deepEqual(odd.someRunsWithin(1, 100, 9, true), [[1, 1], [3, 3], [5, 5], [7, 7], [9, 9]]);
  assert.deepEqual(UidSet.range(1, 10).someRunsWithin(4, 6, 1, true), [[4, 6]]);
  assert.deepEqual(odd.someRunsWithin(10, 20, 3, true), []);
});

Deno.test("empty UidSets share no storage: runs added to one leave every other empty", () => {
  const a = UidSet.empty(), b = UidSet.empty(), c = UidSet.range(5, 4);
  for (let i = 0; i < 9; i++) a.addRun(10 * i + 1, 10 * i + 3);
  assert.equal(a.size, 27);
  assert.equal(a.runCount, 9);
  assert.deepEqual([...a.runs()].slice(0, 2), [[1, 3], [11, 13]]);
  for (const s of [b, c, UidSet.empty()]) {
    assert.equal(s.size, 0);
    assert.deepEqual([...s.runs()], []);
    assert.equal(s.has(1), false);
  }
  b.addRun(7, 7);
  assert.deepEqual([...b.values()], [7]);
  assert.equal(a.has(7), false);
});
