// The /mxdeliv body's dot-unstuffing over a stream cut anywhere: the same bytes as the rule
// applied to the whole body (RFC 5321 §4.5.2, a line's leading "." dropped when more follows).

import assert from "node:assert/strict";
import fc from "fast-check";
import { DotUnstuffer } from "./dot_unstuffer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The rule on the whole text: a "." that starts a line and has more on it goes. */
const reference = (text: string) => text.replace(/(^|\n)\.(?=[^\r\n])/g, "$1");

function unstuff(text: string, cuts: number[]): string {
  const bytes = enc.encode(text);
  const u = new DotUnstuffer();
  const out: string[] = [];
  let at = 0;
  for (const c of [...cuts.filter((c) => c < bytes.length)].sort((a, b) => a - b)) {
    out.push(dec.decode(u.push(bytes.subarray(at, c))));
    at = c;
  }
  out.push(dec.decode(u.push(bytes.subarray(at))), dec.decode(u.end()));
  return out.join("");
}

Deno.test("DotUnstuffer: known bodies, whole and cut at every byte", () => {
  const cases: [string, string][] = [
    ["..hidden\r\n", ".hidden\r\n"],
    ["a\r\n..b\r\n.c\r\n", "a\r\n.b\r\nc\r\n"],
    [".\r\n", ".\r\n"], // a line of just "." is no stuffing
    [".\n", ".\n"],
    ["x\r\n.", "x\r\n."], // a "." that ends the body stays
    ["a.b\r\n", "a.b\r\n"],
    ["\r.x", "\r.x"], // CR alone ends no line
    [".x", "x"], // the body's start is a line start
    ["", ""],
  ];
  for (const [input, want] of cases) {
    assert.equal(unstuff(input, []), want, JSON.stringify(input));
    const n = enc.encode(input).length;
    for (let i = 0; i <= n; i++) assert.equal(unstuff(input, [i]), want, `${input} cut at ${i}`);
    assert.equal(unstuff(input, [...Array(n).keys()]), want, `${input} byte by byte`);
  }
});

Deno.test("DotUnstuffer: any body cut anywhere gives the rule's bytes", () => {
  const piece = fc.constantFrom(".", "..", "\r\n", "\n", "\r", "a", "b.", " ");
  fc.assert(
    fc.property(
      fc.array(piece, { maxLength: 40 }).map((p) => p.join("")).chain((text) =>
        fc.tuple(fc.constant(text), fc.array(fc.nat(text.length), { maxLength: 10 }))
      ),
      ([text, cuts]) => unstuff(text, cuts) === reference(text),
    ),
    { numRuns: 2000 },
  );
});
