import assert from "node:assert/strict";
import { byteText, countChar } from "./byte_text.ts";

Deno.test("countChar counts LF and CR in a range as a search per occurrence would", () => {
  const naive = (t: string, c: string, s: number, e: number) => {
    let n = 0;
    for (let i = s; i < e; i++) if (t[i] === c) n++;
    return n;
  };
  const text = "a\r\nb\n\rc\r\r\n\n" + "x".repeat(600) + "\r\n";
  for (let s = 0; s <= text.length; s += 3) {
    for (const e of [s, s + 1, s + 5, s + 40, text.length]) {
      const end = Math.min(e, text.length);
      for (const c of ["\n", "\r"] as const) {
        assert.equal(countChar(text, c, s, end), naive(text, c, s, end), `${c} in [${s}, ${end})`);
      }
    }
  }
  assert.equal(countChar("abc", "\n", 0, 3), 0);
  assert.equal(countChar("\n\n", "\n", 2, 1), 0, "an empty or reversed range holds none");
  // On byteText's strings: every index is the byte's.
  const t = byteText(new TextEncoder().encode("ab\r\n".repeat(200)))!;
  assert.equal(countChar(t, "\r", 0, t.length), 200);
});
