import assert from "node:assert/strict";
import { readData } from "./data_reader.ts";
import { byteText } from "../mime/mod.ts";

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
  const writes: Uint8Array[] = [];
  let overflows = 0;
  let texts = 0;
  const result = await readData(
    {
      readChunk: () => Promise.resolve(queue.shift() ?? null),
      unread: (b) => void (rest = dec.decode(b)),
    },
    { maxBytes, maxLineBytes: 100 },
    {
      write: (b, text) => {
        assert.equal(overflows, 0, "nothing is written after the overflow");
        if (text !== undefined) {
          assert.equal(text, byteText(b), "the text handed on is that of the bytes");
          texts++;
        }
        writes.push(b.slice()); // decoded together: a write may end inside a character
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
  const text = dec.decode(new Uint8Array(writes.flatMap((w) => [...w])));
  return { text, texts, writes: writes.length, result, rest, overflows };
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
      // One write per chunk read, and one more for the line that completes a carried one.
      assert.ok(r.writes <= 5, "at most two writes per chunk read");
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

Deno.test("readData: a chunk that begins mid-line is handed on as a view of itself after that line", async () => {
  // Lines of 80 bytes read in chunks of 1000: every chunk but the first begins mid-line.
  const wire = enc.encode(("y".repeat(78) + "\r\n").repeat(50) + ".\r\n");
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < wire.length; at += 1000) chunks.push(wire.slice(at, at + 1000));
  const reads = [...chunks];
  const buffers = new Set(chunks.map((c) => c.buffer));
  let viewed = 0, copied = 0, text = "";
  const result = await readData(
    { readChunk: () => Promise.resolve(reads.shift() ?? null), unread: () => {} },
    { maxBytes: 1e6, maxLineBytes: 1000 },
    {
      write: (b) => {
        text += dec.decode(b);
        if (buffers.has(b.buffer as ArrayBuffer)) viewed += b.length;
        else copied += b.length;
        return Promise.resolve();
      },
      overflow: () => Promise.resolve(),
    },
  );
  assert.equal(text, dec.decode(wire.subarray(0, wire.length - 3)));
  assert.equal(result?.size, 4000);
  // Only the lines that straddle two chunks were joined (one per chunk boundary, ≤ 80 bytes).
  assert.ok(copied <= (chunks.length - 1) * 80, `${copied} bytes copied`);
  assert.equal(viewed + copied, 4000);
});

Deno.test("readData: a stray CR or bare LF is seen wherever the input is split", async () => {
  const cases: [string, boolean][] = [
    ["a\r\nb\r\n", false],
    ["a\rb\r\nc\r\n", true],
    ["a\r\nb\r\r\n", true],
    ["a\r\nb\nc\r\n", true],
    ["\r\r\n", true],
    ["x".repeat(30) + "\r\n" + "y".repeat(30) + "\rz\r\n", true],
  ];
  for (const [body, bad] of cases) {
    const wire = body + ".\r\n";
    for (let a = 0; a <= wire.length; a++) {
      for (const b of [a + 1, a + 5, wire.length]) {
        const r = await run(wire, [a, b]);
        assert.equal(r.result?.badLineEnding, bad, `${JSON.stringify(body)} cut at ${a}, ${b}`);
      }
    }
  }
});

Deno.test("readData: chunks long enough to be scanned as text read as byte-sized pieces do", async () => {
  // Chunks of 512 bytes or more are searched as text (when every byte maps to one character);
  // shorter ones byte by byte. Both must see the same dots, line endings and long lines.
  const line = (n: number, c: string) => c.repeat(n) + "\r\n";
  const bodies = [
    line(70, "A").repeat(12) + ".hidden\r\n" + line(70, "B").repeat(12),
    line(70, "A").repeat(10) + "..\r\n" + "x\ny\r\n" + line(70, "C").repeat(10),
    line(70, "A").repeat(10) + "a\rb\r\n" + line(150, "L") + line(70, "D").repeat(10),
    line(60, "é").repeat(8) + ".é\r\n" + line(70, "E").repeat(8),
    "\uFEFF" + line(70, "F").repeat(12) + ".\r\r\n" + line(70, "G").repeat(4),
  ];
  for (const body of bodies) {
    const wire = body + ".\r\n" + "QUIT\r\n";
    const length = enc.encode(wire).length;
    const small: number[] = [];
    for (let c = 7; c < length; c += 7) small.push(c);
    // A size limit the message stays under, and one it crosses mid-chunk.
    for (const maxBytes of [1_000_000, 1500]) {
      const expected = await run(wire, small, maxBytes);
      assert.ok(expected.result);
      let texts = 0;
      assert.equal(expected.result.tooLarge, maxBytes < length);
      for (let a = 0; a <= length; a++) {
        const r = await run(wire, [a], maxBytes);
        texts += r.texts;
        // Over the limit, how much went out before the overflow depends on the chunks (the
        // transaction is aborted then): only the result and what follows must agree.
        const sent = (x: typeof r) => x.result?.tooLarge ? "" : x.text;
        assert.deepEqual(
          [sent(r), r.result, r.rest, r.overflows],
          [sent(expected), expected.result, expected.rest, expected.overflows],
          `${JSON.stringify(body.slice(0, 20))} cut at ${a}, limit ${maxBytes}`,
        );
      }
      if (maxBytes > length && !/[é\uFEFF]/.test(body)) {
        assert.ok(texts > 0, `some writes carry text: ${JSON.stringify(body.slice(0, 30))}`);
      }
    }
  }
});

Deno.test("readData: the end line is found in text-scanned chunks wherever it is split", async () => {
  const body = "Subject: x\r\n\r\n" + ("y".repeat(76) + "\r\n").repeat(20);
  const wire = body + ".\r\nMAIL FROM:<a@b>\r\n";
  const length = enc.encode(wire).length;
  for (let a = 0; a <= length; a++) {
    for (const b of [a + 1, a + 2, a + 3, a + 600]) {
      const r = await run(wire, [a, b], 1_000_000);
      assert.equal(r.text, body, `cut at ${a}, ${b}`);
      assert.equal(r.rest, "MAIL FROM:<a@b>\r\n", `cut at ${a}, ${b}`);
      assert.equal(r.result?.badLineEnding, false);
      assert.equal(r.result?.size, body.length);
    }
  }
  // The client vanishes one byte short of the end line: no result.
  const cut = await run(body + ".\r", [], 1_000_000);
  assert.equal(cut.result, null);
});

Deno.test("readData: runs of ordinary lines are checked as a whole as line by line, cut anywhere", async () => {
  // Runs of ordinary lines are taken at once (a stray CR found by counting CRs over the run):
  // the result must be what byte-sized pieces (line by line) give, wherever a chunk ends:
  // in a CRLF, before a stuffed dot, on a line exactly at the line limit (100) or one over.
  const line = (n: number, c: string) => c.repeat(n) + "\r\n";
  const run64 = line(76, "Q").repeat(8);
  const bodies = [
    run64 + line(100, "A") + run64 + line(101, "B") + run64,
    run64 + line(50, "C") + "mid\rline\r\n" + run64 + line(60, "D") + "\r\r\n" + run64,
    run64 + "lone\nLF\r\n" + run64 + "x\ry\r\n" + run64,
    run64 + "..stuffed\r\n" + run64 + ".\r\r\n" + run64 + "..\r\n" + run64,
    run64 + line(100, "E") + "\r" + run64, // the CR of one line's CRLF, then a stray CR
    run64 + line(101, "F").repeat(3) + run64,
    // Runs of equally long lines are taken by where their line ends must be; two shorter lines
    // that end where one such line would, a line with a bare LF or a stray CR in the same 78
    // bytes, or a stuffed dot must read as line by line.
    run64 + run64 + line(36, "G") + line(38, "H") + run64 + run64,
    run64 + run64 + "I".repeat(37) + "\n" + line(38, "J") + run64 + run64,
    run64 + run64 + "K".repeat(37) + "\r" + line(38, "L") + run64 + run64,
    run64 + run64 + "." + line(75, "M") + run64 + run64,
    run64 + run64 + line(76, "N") + line(2, "O") + run64 + run64,
  ];
  for (const body of bodies) {
    const wire = body + ".\r\n" + "RSET\r\n";
    const length = enc.encode(wire).length;
    const small: number[] = [];
    for (let c = 3; c < length; c += 3) small.push(c);
    const expected = await run(wire, small, 1_000_000);
    assert.ok(expected.result);
    for (let a = 1; a < length; a++) {
      for (const b of [a + 513, length - 2]) {
        const r = await run(wire, [a, b], 1_000_000);
        assert.deepEqual(
          [r.text, r.result, r.rest],
          [expected.text, expected.result, expected.rest],
          `${JSON.stringify(body.slice(600, 640))} cut at ${a}, ${b}`,
        );
      }
    }
  }
});

Deno.test("readData: a client that vanishes anywhere before the end line gives no result", async () => {
  const body = ("R".repeat(76) + "\r\n").repeat(30) + "..x\r\n" +
    ("S".repeat(76) + "\r\n").repeat(10);
  const wire = body + ".\r\n";
  for (let cut = 0; cut < wire.length; cut++) {
    // Two chunks then the end of the stream, one byte short of the end line at most.
    const r = await run(wire.slice(0, cut), [Math.floor(cut / 2)], 1_000_000);
    assert.equal(r.result, null, `vanished after ${cut} bytes`);
  }
  const whole = await run(wire, [wire.length >> 1], 1_000_000);
  assert.equal(whole.result?.size, body.length - 1);
});
