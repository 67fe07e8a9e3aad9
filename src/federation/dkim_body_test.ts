import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { DkimBodyHasher, DkimStream } from "./dkim_body.ts";
import { hashBody } from "./dkim_canon.ts";

const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** RFC 6376 §3.4.3/§3.4.4 written as text rewriting: the reference for the streaming hasher. */
function reference(body: Uint8Array, relaxed: boolean): { hex: string; length: number } {
  let text = latin1.decode(body).replace(/\r?\n/g, "\r\n");
  if (relaxed) {
    text = text.split("\r\n").map((l) => l.replace(/[ \t]+/g, " ").replace(/ $/, "")).join("\r\n");
  }
  text = text.replace(/(\r\n)+$/, "");
  text = text === "" ? (relaxed ? "" : "\r\n") : text + "\r\n";
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  return { hex: createHash("sha256").update(bytes).digest("hex"), length: bytes.length };
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

const bodyBytes = fc.array(
  fc.oneof(
    fc.constantFrom("\r\n", "\n", "\r", " ", "\t", "  \t ", "a", "xyz", "\r\n\r\n", " \r\n"),
    fc.string({ maxLength: 8 }),
  ),
  { maxLength: 40 },
).map((parts) => enc.encode(parts.join("")));

Deno.test("DKIM body hash: streamed in any pieces, both canonicalizations match the RFC's rewriting", () => {
  fc.assert(
    fc.property(
      bodyBytes,
      fc.array(fc.nat({ max: 400 }), { maxLength: 6 }),
      fc.boolean(),
      (body, cuts, relaxed) => {
        const want = reference(body, relaxed);
        const whole = hashBody(body, relaxed);
        assert.equal(hex(whole.digest), want.hex);
        assert.equal(whole.length, want.length);
        const h = new DkimBodyHasher(relaxed);
        let at = 0;
        for (const c of [...cuts].sort((a, b) => a - b)) {
          const to = Math.min(c, body.length);
          h.push(body.subarray(at, Math.max(at, to)));
          at = Math.max(at, to);
        }
        h.push(body.subarray(at));
        const streamed = h.end();
        assert.equal(hex(streamed.digest), want.hex);
        assert.equal(streamed.length, want.length);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("DkimStream: splits the header at its blank line in any chunking and hashes only the named canonicalizations", () => {
  const header = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.example\r\n" +
    "From: a@a.example\r\n\r\n";
  const body = "line one  \r\n\tline two\r\n\r\n";
  const message = enc.encode(header + body);
  for (let cut = 0; cut <= message.length; cut++) {
    const s = new DkimStream();
    s.push(message.subarray(0, cut));
    s.push(message.subarray(cut));
    assert.equal(latin1.decode(s.header()!), header);
    assert.equal(s.bodyHash(false), null, "simple was not named");
    const got = s.bodyHash(true)!;
    assert.equal(hex(got.digest), reference(enc.encode(body), true).hex);
  }
  // A header without a blank line is the whole message; one over the cap is not kept.
  const s = new DkimStream();
  s.push(enc.encode("From: a@a.example\r\n"));
  assert.equal(latin1.decode(s.header()!), "From: a@a.example\r\n");
  const big = new DkimStream();
  big.push(enc.encode("X: " + "y".repeat(300 * 1024) + "\r\n\r\nbody"));
  assert.equal(big.header(), null);
});
