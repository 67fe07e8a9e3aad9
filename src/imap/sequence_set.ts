// Sequence sets (RFC 9051 §9 "sequence-set"): parsing, membership, expansion and the compact
// `1:3,5,7:9` form used in COPYUID, VANISHED and ESEARCH responses. Work is proportional to the
// number of ranges written, never to the numbers a range covers (`1:4294967295` is one range).

import type { SeqRange, SequenceSet } from "./types.ts";

/** Largest nz-number on the wire (RFC 9051 §9: nz-number is 32-bit). */
export const MAX_NZ_NUMBER = 4294967295;

export class SequenceSetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SequenceSetError";
  }
}

const NUMBER = /^[1-9][0-9]*$/;

function seqNumber(text: string, whole: string): number | null {
  if (text === "*") return null;
  if (!NUMBER.test(text)) {
    throw new SequenceSetError(
      text === "0" || /^0+$/.test(text)
        ? `Invalid sequence set "${whole}": 0 is not a valid message number`
        : `Invalid sequence set "${whole}"`,
    );
  }
  const n = Number(text);
  if (n > MAX_NZ_NUMBER) {
    throw new SequenceSetError(`Invalid sequence set "${whole}": ${text} is too large`);
  }
  return n;
}

/** Parses `1:3,5,7:*` or `$` (RFC 5182). Throws SequenceSetError with a readable reason. */
export function parseSequenceSet(text: string): SequenceSet {
  if (text === "$") return { saved: true };
  if (text === "") throw new SequenceSetError("Missing sequence set");
  const ranges: SeqRange[] = [];
  for (const part of text.split(",")) {
    const colon = part.indexOf(":");
    if (colon < 0) {
      const n = seqNumber(part, text);
      ranges.push({ from: n, to: n });
    } else {
      const from = seqNumber(part.slice(0, colon), text);
      const to = seqNumber(part.slice(colon + 1), text);
      ranges.push({ from, to });
    }
  }
  return { ranges };
}

/** The set as written, for logs and tests. */
export function formatSequenceSet(set: SequenceSet): string {
  if ("saved" in set) return "$";
  const n = (v: number | null) => (v === null ? "*" : String(v));
  return set.ranges.map((r) => (r.from === r.to ? n(r.from) : `${n(r.from)}:${n(r.to)}`)).join(
    ",",
  );
}

function requireRanges(set: SequenceSet): SeqRange[] {
  // "$" must be replaced by the saved result before use (RFC 5182 §2.1); the session does that.
  if ("saved" in set) throw new SequenceSetError("The saved search result ($) is not resolved");
  return set.ranges;
}

/**
 * The set as sorted, merged, inclusive intervals within 1..max. "*" is max, and `n:*` with
 * n > max still means max (RFC 9051 §6.4.8: the range is unordered, so it is `max:n`).
 */
export function setIntervals(set: SequenceSet, max: number): [number, number][] {
  if (max < 1) return [];
  const raw: [number, number][] = [];
  for (const r of requireRanges(set)) {
    const a = r.from ?? max;
    const b = r.to ?? max;
    const lo = Math.max(1, Math.min(a, b));
    const hi = Math.min(max, Math.max(a, b));
    if (lo <= hi) raw.push([lo, hi]);
  }
  raw.sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const iv of raw) {
    const last = out[out.length - 1];
    if (last && iv[0] <= last[1] + 1) last[1] = Math.max(last[1], iv[1]);
    else out.push([iv[0], iv[1]]);
  }
  return out;
}

/** Every number of the set within 1..max, ascending, each once. */
export function resolveSet(set: SequenceSet, max: number): number[] {
  const out: number[] = [];
  for (const [lo, hi] of setIntervals(set, max)) {
    for (let n = lo; n <= hi; n++) out.push(n);
  }
  return out;
}

/** Whether n (1..max) is in the set; constant memory whatever the ranges cover. */
export function contains(set: SequenceSet, n: number, max: number): boolean {
  if (n < 1 || n > max) return false;
  for (const r of requireRanges(set)) {
    const a = r.from ?? max;
    const b = r.to ?? max;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

/**
 * The members of `values` (e.g. the UIDs in a mailbox, ascending) that the set names, where
 * "*" is the largest value. Suits UID sets, whose ranges may cover numbers that do not exist.
 */
export function filterBySet(set: SequenceSet, values: readonly number[]): number[] {
  if (values.length === 0) return [];
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const ivs = setIntervals(set, max);
  return values.filter((v) => {
    for (const [lo, hi] of ivs) {
      if (v < lo) return false;
      if (v <= hi) return true;
    }
    return false;
  }).sort((a, b) => a - b);
}

/** Compresses numbers into `1:3,5,7:9` (sorted and de-duplicated first); "" when empty. */
export function formatSet(numbers: readonly number[]): string {
  let sorted = numbers as number[];
  for (let i = 1; i < numbers.length; i++) {
    if (numbers[i] <= numbers[i - 1]) {
      sorted = [...new Set(numbers)].sort((a, b) => a - b);
      break;
    }
  }
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
