import assert from "node:assert/strict";
import fc from "fast-check";
import { tolerantDecoder } from "./tolerant_stream.ts";
import { decodeBase64, decodeQuotedPrintable } from "./transfer_encoding.ts";

const enc = new TextEncoder();

function piecewise(cte: string, input: Uint8Array, cuts: number[]): Uint8Array {
  const d = tolerantDecoder(cte)!;
  const out: number[] = [];
  let at = 0;
  for (const c of [...cuts, input.length].sort((a, b) => a - b)) {
    const to = Math.min(Math.max(c, at), input.length);
    out.push(...d.push(input.subarray(at, to)));
    at = to;
  }
  out.push(...d.end());
  return Uint8Array.from(out);
}

const tokens = (alphabet: string[]) =>
  fc.array(fc.oneof(fc.constantFrom(...alphabet), fc.string({ maxLength: 4 })), { maxLength: 60 })
    .map((t) => enc.encode(t.join("")));

Deno.test("tolerant base64 in pieces decodes as decodeBase64 on the whole", () => {
  fc.assert(
    fc.property(
      tokens(["QUJD", "RA", "=", "==", "\r\n", " ", "!", "+/", "Zm9v"]),
      fc.array(fc.nat({ max: 300 }), { maxLength: 6 }),
      (input, cuts) => assert.deepEqual(piecewise("base64", input, cuts), decodeBase64(input)),
    ),
    { numRuns: 3000 },
  );
});

Deno.test("tolerant quoted-printable in pieces decodes as decodeQuotedPrintable on the whole", () => {
  const qp = tokens([
    "=",
    "=3D",
    "=\r\n",
    "=\n",
    "= \r\n",
    "  ",
    "\t",
    "\r\n",
    "\n",
    "\r",
    "=4",
    "é",
  ]);
  fc.assert(
    fc.property(
      qp,
      fc.array(fc.nat({ max: 300 }), { maxLength: 6 }),
      (input, cuts) =>
        assert.deepEqual(
          piecewise("quoted-printable", input, cuts),
          decodeQuotedPrintable(input),
        ),
    ),
    { numRuns: 3000 },
  );
});

Deno.test("tolerant quoted-printable: lines longer than the carry limit are cut where it is safe", () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom("abc", "=3D", "  ", "=", " x", "=\r\n", "\t=", "z"), {
        minLength: 30_000,
        maxLength: 40_000,
      }),
      fc.array(fc.nat({ max: 200_000 }), { maxLength: 5 }),
      (parts, cuts) => {
        const input = enc.encode(parts.join("").replaceAll("\r\n", ""));
        assert.deepEqual(
          piecewise("quoted-printable", input, cuts),
          decodeQuotedPrintable(input),
        );
      },
    ),
    { numRuns: 20 },
  );
});
