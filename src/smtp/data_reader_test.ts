import assert from "node:assert/strict";
import { readData } from "./data_reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `wire` split at `cuts`; returns what the sink got, the result and what was left over. */
async function run(wire: string, cuts: number[], maxBytes = 1000) {
  const bytes = enc.encode(wire);
  const queue: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    queue.push(bytes.slice(at, Math.max(at, c)));
    at = Math.max(at, c);
  }
  let rest = "";
  const writes: string[] = [];
  let overflows = 0;
  const result = await readData(
    {
      readChunk: () => Promise.resolve(queue.shift() ?? null),
      unread: (b) => void (rest = dec.decode(b)),
    },
    { maxBytes, maxLineBytes: 100 },
    {
      write: (b) => {
        assert.equal(overflows, 0, "nothing is written after the overflow");
        writes.push(dec.decode(b));
        return Promise.resolve();
      },
      overflow: () => {
        overflows++;
        return Promise.resolve();
      },
    },
  );
  // What the reader put back, then what it never read.
  rest += queue.map((b) => dec.decode(b)).join("");
  return { text: writes.join(""), writes: writes.length, result, rest, overflows };
}

Deno.test("readData: the unstuffed message is the same however the input is split", async () => {
  const wire = "Subject: dots\r\n\r\n..leading dot\r\n\r\n...\r\nend\r\n.\r\nNOOP\r\n";
  const want = "Subject: dots\r\n\r\n.leading dot\r\n\r\n..\r\nend\r\n";
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a + 1, a + 7, wire.length]) {
      const r = await run(wire, [a, b]);
      assert.equal(r.text, want, `cut at ${a}, ${b}`);
      assert.equal(r.result?.size, want.length);
      assert.equal(r.rest, "NOOP\r\n", "what follows the end is left for the next command");
      assert.ok(r.writes <= 3, "at most one write per chunk read");
    }
  }
});

Deno.test("readData: over the limit, one overflow and nothing more written; the read goes on to the end", async () => {
  const line = "x".repeat(60) + "\r\n";
  const r = await run(line.repeat(40) + ".\r\nQUIT\r\n", [100, 900, 1500], 1000);
  assert.equal(r.result?.tooLarge, true);
  assert.equal(r.overflows, 1);
  assert.ok(r.text.length <= 1000);
  assert.equal(r.result?.size, 62 * 40);
  assert.equal(r.rest, "QUIT\r\n");
  // Cut off before the end: null, whatever was written.
  assert.equal((await run(line.repeat(3), [50])).result, null);
});
