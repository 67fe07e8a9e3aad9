import assert from "node:assert/strict";
import { MimeStreamParser } from "./stream_parser.ts";
import type { AmbiguityCode } from "./ambiguity.ts";
import type { MimePart } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

// Deterministic PRNG (mulberry32): a failure reproduces from its seed.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "\r\n",
  "\n",
  "\r",
  " ",
  "\t",
  "--",
  "--a",
  "--a--",
  "--b",
  "--b--",
  "--a ",
  ":",
  ";",
  "x",
  "\r\n\r\n",
  "Content-Type: multipart/mixed; boundary=a\r\n",
  'Content-Type: multipart/alternative; boundary="b"\n',
  "Content-Type: message/rfc822\r\n",
  "Content-Type: multipart/digest; boundary=a\r\n",
  "Content-Transfer-Encoding: base64\r\n",
  "From: a <b@c>\r\n",
  " folded\r\n",
  "\r\n--a\r\n",
  "\n--b--\n",
  "a-b",
  "-",
  "-x\r\n",
  "y".repeat(9000),
  "z\r".repeat(5000),
  "\u00e9\r\n", // long pushes without it are searched as text (byteText), with it byte by byte
];

/** The tree without the raw header copies, keys sorted: comparable as JSON. */
function canon(p: MimePart): unknown {
  const { rawHeader: _raw, ...rest } = p;
  const o: Record<string, unknown> = {
    ...rest,
    children: p.children.map(canon),
    message: p.message ? canon(p.message) : undefined,
  };
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

interface Read {
  tree: string;
  codes: string;
  sinks: { part: MimePart; chunks: Uint8Array[] }[];
}

function read(bytes: Uint8Array, next: () => number): Read {
  const sinks: Read["sinks"] = [];
  const p = new MimeStreamParser({
    onLeaf(part) {
      const rec = { part, chunks: [] as Uint8Array[] };
      sinks.push(rec);
      return { write: (b) => void rec.chunks.push(b.slice()), end: () => {} };
    },
  });
  let i = 0;
  while (i < bytes.length) {
    const k = next();
    p.push(bytes.subarray(i, i + k));
    i += k;
  }
  const root = p.end();
  return {
    tree: JSON.stringify(canon(root)),
    codes: p.ambiguities.map((a) => `${a.code}@${a.path.join(".")}`).join(","),
    sinks,
  };
}

Deno.test("MimeStreamParser: any chunking gives the same tree, ambiguities and leaf bodies", () => {
  for (let seed = 1; seed <= 1000; seed++) {
    const r = rng(seed);
    let s = "";
    const n = 1 + Math.floor(r() * 40);
    for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
    const bytes = enc.encode(s);
    const whole = read(bytes, () => bytes.length || 1);
    const small = read(bytes, () => 1 + Math.floor(r() * 7));
    const big = read(bytes, () => 1 + Math.floor(r() * 20000));
    assert.equal(small.tree, whole.tree, `seed ${seed}`);
    assert.equal(big.tree, whole.tree, `seed ${seed}`);
    assert.equal(small.codes, whole.codes, `seed ${seed}`);
    for (const rd of [whole, small, big]) {
      for (const { part, chunks } of rd.sinks) {
        const want = dec.decode(bytes.subarray(part.bodyStart, part.end));
        const got = dec.decode(new Uint8Array(chunks.flatMap((c) => [...c])));
        assert.equal(got, want, `seed ${seed}: leaf body`);
      }
    }
  }
});

function codesOf(text: string): AmbiguityCode[] {
  const p = new MimeStreamParser();
  p.push(enc.encode(text.replace(/\r?\n/g, "\r\n")));
  p.end();
  return p.ambiguities.map((a) => a.code);
}

Deno.test("MimeStreamParser reports what other readers could read differently", async (t) => {
  const mp = (body: string, ct = "multipart/mixed; boundary=BB") =>
    `From: a@b.c\nContent-Type: ${ct}\n\n${body}`;
  const cases: [string, string, AmbiguityCode[]][] = [
    ["a clean message", mp("--BB\n\nx\n--BB--\n"), []],
    ["blank before a colon", "From : a@b.c\nFrom: b@b.c\n\nx\n", ["field-name"]],
    ["a line without colon", "From: a@b.c\nnot a field\n\nx\n", ["field-name"]],
    ["header starting with a space", " From: a@b.c\n\nx\n", ["leading-blank", "field-name"]],
    ["a second From", "From: a@b.c\nFrom: b@b.c\n\nx\n", ["duplicate-field"]],
    [
      "a second Content-Type in a part",
      mp("--BB\nContent-Type: a/b\nContent-Type: c/d\n\nx\n--BB--\n"),
      [
        "duplicate-field",
      ],
    ],
    ["duplicate boundary", mp("--BB\n\nx\n--BB--\n", "multipart/mixed; boundary=BB; boundary=CC"), [
      "duplicate-param",
    ]],
    ["comment in the type", mp("--BB\n\nx\n--BB--\n", "multipart/mixed (c); boundary=BB"), [
      "content-type",
    ]],
    ["blank in the type", mp("--BB\n\nx\n--BB--\n", "multipart/ mixed; boundary=BB"), [
      "content-type",
    ]],
    [
      "quoted ; in the boundary",
      mp("--BB;x\n\nx\n--BB;x--\n", 'multipart/mixed; boundary="BB;x"'),
      [
        "content-type",
      ],
    ],
    ["a boundary prefix line", mp("--BB\n\nx\n--BBx\ny\n--BB--\n"), ["boundary-prefix"]],
    ["close before open", mp("--BB--\n--BB\n\nx\n"), [
      "close-before-open",
      "boundary-after-close",
      "epilogue-text",
    ]],
    ["missing close", mp("--BB\n\nx\n"), ["missing-close"]],
    ["preamble and epilogue text", mp("hi\n--BB\n\nx\n--BB--\nbye\n"), [
      "preamble-text",
      "epilogue-text",
    ]],
    ["a part header cut by a boundary", mp("--BB\nContent-Type: a/b\n--BB\n\nx\n--BB--\n"), [
      "header-cut",
    ]],
    ["an odd transfer encoding", "Content-Transfer-Encoding: base64 \n\nx\n", [
      "transfer-encoding",
    ]],
    ["a bare CR in the header", "Subject: a\rb\n\nx\n", ["bare-cr"]],
  ];
  for (const [name, text, want] of cases) {
    await t.step(name, () => assert.deepEqual(codesOf(text), want));
  }
});

Deno.test("MimeStreamParser caps parts and keeps memory bounded", () => {
  const p = new MimeStreamParser({ limits: { maxParts: 10 } });
  p.push(enc.encode("Content-Type: multipart/mixed; boundary=b\r\n\r\n"));
  for (let i = 0; i < 100; i++) p.push(enc.encode("--b\r\n\r\nx\r\n"));
  p.push(enc.encode("--b--\r\n"));
  const root = p.end();
  assert.equal(root.children.length, 9);
  assert.deepEqual(p.ambiguities.map((a) => a.code), ["limit"]);
  assert.equal(dec.decode(root.rawHeader), "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
});

Deno.test("MimeStreamParser: header buffers passed on after end() leave every reading intact", () => {
  const msg = (n: number) =>
    enc.encode(
      `From: a${n} <a@b>\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n` +
        `Content-Type: text/plain\r\nX-N: ${"n".repeat(n)}\r\n\r\nbody ${n}\r\n--z--\r\n`,
    );
  const alone = (b: Uint8Array) => {
    const p = new MimeStreamParser();
    p.push(b);
    return p.end();
  };
  const want = [1, 700, 3000].map((n) => JSON.stringify(canon(alone(msg(n)))));
  const raws = [1, 700, 3000].map((n) => dec.decode(alone(msg(n)).children[0].rawHeader));
  // Interleaved parsers, ended in turn: one's buffer goes to the next while others still read.
  const bytes = [1, 700, 3000].map(msg);
  const parsers = bytes.map(() => new MimeStreamParser());
  for (let at = 0; at < 4000; at += 13) {
    parsers.forEach((p, i) => (i > 0 || at <= 26) && p.push(bytes[i].subarray(at, at + 13)));
    if (at === 26) parsers[0].end();
  }
  const roots = parsers.map((p) => p.end());
  const again = alone(msg(5)); // takes a returned buffer
  assert.equal(again.children[0].headers.find((h) => h.name === "X-N")?.value, "nnnnn");
  roots.forEach((r, i) => {
    if (i > 0) assert.equal(JSON.stringify(canon(r)), want[i], `parser ${i}`);
    assert.equal(dec.decode(r.children[0]?.rawHeader ?? new Uint8Array()), i > 0 ? raws[i] : "");
  });
});
