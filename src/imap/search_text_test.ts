import assert from "node:assert/strict";
import fc from "fast-check";
import { parseMessage } from "../mime/mod.ts";
import { bodyNeedles, textParts, wholeMessage } from "./search_eval.ts";
import { findInTextParts } from "./search_text.ts";
import { unicodeCasemap } from "./casemap.ts";

const enc = new TextEncoder();
const b64 = (s: string) =>
  btoa(String.fromCharCode(...enc.encode(s))).replace(/(.{76})/g, "$1\r\n");
const ATTACHMENT = "A".repeat(4000);

function message(plain: string, html: string): Uint8Array {
  return enc.encode(
    [
      "From: a@x",
      "Subject: test",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: base64",
      "",
      b64(plain),
      "--b",
      "Content-Type: application/octet-stream",
      "Content-Transfer-Encoding: base64",
      "",
      b64(ATTACHMENT + " hidden needle"),
      "--b",
      "Content-Type: text/html; charset=utf-8",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      html,
      "--b--",
      "",
    ].join("\r\n"),
  );
}

/** Reads from `bytes`, recording every range asked for. */
function source(bytes: Uint8Array) {
  const reads: [number, number][] = [];
  return {
    reads,
    read(offset: number, length: number) {
      reads.push([offset, offset + length]);
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
  };
}

const noPause = () => Promise.resolve();

Deno.test("findInTextParts() finds needles across slices, decoded, case-mapped", async () => {
  const bytes = message("Grüße aus Köln, straße 12", "<p>caf=C3=A9 =\r\nCR=C3=88ME</p>");
  const root = parseMessage(bytes);
  const needles = new Set(
    ["GRÜSSE", "grüße aus köln", "Café crème", "hidden needle", "", "12"].map(unicodeCasemap),
  );
  for (const slice of [1, 2, 3, 7, 64, 1 << 20]) {
    const src = source(bytes);
    const found = await findInTextParts(src, textParts(root), needles, noPause, slice);
    assert.deepEqual(
      [...found].sort(),
      ["", unicodeCasemap("grüße aus köln"), unicodeCasemap("Café crème"), "12"].sort(),
      `slice ${slice}`,
    );
  }
});

Deno.test("findInTextParts() reads only the text parts, never the attachment", async () => {
  const bytes = message("hello", "<p>world</p>");
  const root = parseMessage(bytes);
  const parts = textParts(root);
  const src = source(bytes);
  await findInTextParts(src, parts, new Set(["NOT THERE"]), noPause, 16);
  assert.ok(src.reads.length > 0);
  for (const [a, b] of src.reads) {
    assert.ok(
      parts.some((p) => a >= p.bodyStart && b <= p.end),
      `read [${a}, ${b}) is outside the text parts`,
    );
  }
  const read = src.reads.reduce((n, [a, b]) => n + b - a, 0);
  assert.ok(read < bytes.length / 2, `${read} of ${bytes.length} bytes read`);
});

Deno.test("findInTextParts() stops reading once every needle is found", async () => {
  const bytes = message("early " + "x".repeat(3000), "<p>late</p>");
  const root = parseMessage(bytes);
  const src = source(bytes);
  const found = await findInTextParts(src, textParts(root), new Set(["EARLY"]), noPause, 64);
  assert.deepEqual([...found], ["EARLY"]);
  const plain = textParts(root)[0];
  assert.ok(src.reads.every(([, b]) => b <= plain.bodyStart + 64 * 2));
});

Deno.test("findInTextParts() agrees with the whole-message evaluation on any split", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: "binary", maxLength: 60 }),
      fc.string({ unit: "grapheme-composite", maxLength: 40 }),
      fc.array(fc.string({ unit: "binary", maxLength: 6 }), { maxLength: 4 }),
      fc.integer({ min: 1, max: 50 }),
      async (plain, html, words, slice) => {
        const bytes = message(plain, html.replaceAll("=", "=3D"));
        const root = parseMessage(bytes);
        // Needles: the given words and pieces of the texts themselves.
        const keys = [...words, plain.slice(1, 5), html.slice(0, 3)].map((value) => ({
          kind: "BODY" as const,
          value,
        }));
        const needles = bodyNeedles({ kind: "AND", keys });
        const found = await findInTextParts(
          source(bytes),
          textParts(root),
          needles,
          noPause,
          slice,
        );
        const whole = wholeMessage(bytes, root);
        for (const n of needles) assert.equal(found.has(n), whole.bodyHas(n), JSON.stringify(n));
      },
    ),
    { numRuns: 200 },
  );
});
