import assert from "node:assert/strict";
import {
  contains,
  filterBySet,
  formatSequenceSet,
  formatSet,
  parseSequenceSet,
  resolveSet,
  SequenceSetError,
  setIntervals,
} from "./sequence_set.ts";

Deno.test("parseSequenceSet: valid forms", () => {
  const cases: [string, unknown][] = [
    ["1", { ranges: [{ from: 1, to: 1 }] }],
    ["*", { ranges: [{ from: null, to: null }] }],
    ["1:*", { ranges: [{ from: 1, to: null }] }],
    ["5:2", { ranges: [{ from: 5, to: 2 }] }],
    ["1,3:4,*", {
      ranges: [{ from: 1, to: 1 }, { from: 3, to: 4 }, { from: null, to: null }],
    }],
    ["1:4294967295", { ranges: [{ from: 1, to: 4294967295 }] }],
    ["$", { saved: true }],
  ];
  for (const [text, want] of cases) {
    assert.deepEqual(parseSequenceSet(text), want, text);
    assert.equal(formatSequenceSet(parseSequenceSet(text)), text);
  }
});

Deno.test("parseSequenceSet: errors", () => {
  for (const bad of ["", "0", "1:0", "1,", ",1", "1::2", "a", "4294967296", "1:2:3", "$,1", "01"]) {
    assert.throws(() => parseSequenceSet(bad), SequenceSetError, bad);
  }
  assert.throws(() => parseSequenceSet("0"), /0 is not a valid message number/);
});

Deno.test("resolveSet: clamps, sorts, de-duplicates", () => {
  const cases: [string, number, number[]][] = [
    ["1:3", 10, [1, 2, 3]],
    ["5:2", 10, [2, 3, 4, 5]],
    ["*", 10, [10]],
    ["*", 0, []],
    ["8:*", 10, [8, 9, 10]],
    // RFC 9051 §6.4.8: n:* with n > max still names max.
    ["15:*", 10, [10]],
    ["15", 10, []],
    ["3,1,2,2:3", 10, [1, 2, 3]],
    ["9:12,1", 10, [1, 9, 10]],
    ["1:4294967295", 3, [1, 2, 3]],
  ];
  for (const [text, max, want] of cases) {
    assert.deepEqual(resolveSet(parseSequenceSet(text), max), want, `${text} max ${max}`);
  }
  assert.throws(() => resolveSet({ saved: true }, 5), SequenceSetError);
});

Deno.test("setIntervals merges adjacent and overlapping ranges", () => {
  assert.deepEqual(setIntervals(parseSequenceSet("1:3,4,6:8,7:10,*"), 20), [[1, 4], [6, 10], [
    20,
    20,
  ]]);
});

Deno.test("contains: huge ranges without expansion", () => {
  const huge = parseSequenceSet("1:4294967295");
  assert.equal(contains(huge, 4000000000, 4294967295), true);
  assert.equal(contains(huge, 0, 4294967295), false);
  const set = parseSequenceSet("5:2,9,20:*");
  const max = 25;
  const want = [2, 3, 4, 5, 9, 20, 21, 22, 23, 24, 25];
  for (let n = 0; n <= 30; n++) assert.equal(contains(set, n, max), want.includes(n), `n=${n}`);
  assert.equal(contains(parseSequenceSet("30:*"), 25, 25), true);
  assert.equal(contains(parseSequenceSet("30:*"), 24, 25), false);
});

Deno.test("filterBySet: picks existing UIDs", () => {
  const uids = [3, 7, 8, 100, 4000];
  assert.deepEqual(filterBySet(parseSequenceSet("1:99"), uids), [3, 7, 8]);
  assert.deepEqual(filterBySet(parseSequenceSet("*"), uids), [4000]);
  assert.deepEqual(filterBySet(parseSequenceSet("5000:*"), uids), [4000]);
  assert.deepEqual(filterBySet(parseSequenceSet("8,1:4294967295"), uids), uids);
  assert.deepEqual(filterBySet(parseSequenceSet("1"), []), []);
});

Deno.test("formatSet compresses runs", () => {
  const cases: [number[], string][] = [
    [[], ""],
    [[1], "1"],
    [[1, 2, 3, 5, 7, 8, 9], "1:3,5,7:9"],
    [[9, 8, 7, 1, 1, 2], "1:2,7:9"],
    [[4294967294, 4294967295], "4294967294:4294967295"],
  ];
  for (const [nums, want] of cases) assert.equal(formatSet(nums), want);
});
