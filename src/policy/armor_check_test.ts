import { strict as assert } from "node:assert";
import { ArmorChecker } from "./armor_check.ts";

const enc = new TextEncoder();

// Deterministic PRNG (mulberry32): a failure reproduces from its seed.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A PKESK then a SEIPD (new-format headers), `size` bytes of SEIPD body. */
function packets(size: number, r: () => number): Uint8Array {
  const pkesk = [0xc1, 12, ...Array.from({ length: 12 }, () => Math.floor(r() * 256))];
  const body = Array.from({ length: size }, () => Math.floor(r() * 256));
  const len = size < 192 ? [size] : [((size - 192) >> 8) + 192, (size - 192) & 0xff];
  return Uint8Array.from([...pkesk, 0xd2, ...len, ...body]);
}

function armor(bytes: Uint8Array, br: string): string[] {
  const b64 = btoa(String.fromCharCode(...bytes));
  const lines = ["-----BEGIN PGP MESSAGE-----", ""];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push("=njUN", "-----END PGP MESSAGE-----", "");
  return lines.map((l, i) => (i < lines.length - 1 ? l + br : l));
}

/** Ways to spoil (or not) a line of an armored payload. */
const EDITS: ((line: string, r: () => number) => string)[] = [
  (l) => l,
  (l) => "-" + l,
  (l) => l.replace(/(\r?\n)$/, "-$1"),
  (l) => l.replace(/(\r?\n)$/, " $1"),
  (l) => "=" + l,
  (l) => l.replace(/(\r?\n)$/, "=$1"),
  (l) => l.replace(/\r\n$/, "\n"),
  (l) => l + "\r\n",
  (l) => "Version: x\r\n" + l,
  (l) => l + "-----END PGP MESSAGE-----\r\n",
  (l, r) => l.slice(0, Math.floor(r() * l.length)) + l.slice(Math.floor(r() * l.length)),
  (l) => l.replace(/^(.)/, "$1$1"),
  // junk inside a line: the built-in decoder (long runs) must refuse what the byte loop refuses
  (l, r) => {
    const at = Math.floor(r() * l.length);
    return l.slice(0, at) + [" ", "\t", "\f", "_", ".", "\u00e9", "\v"][Math.floor(r() * 7)] +
      l.slice(at);
  },
];

function verdict(text: string, direction: "outgoing" | "incoming", next: () => number): boolean {
  const bytes = enc.encode(text);
  const c = new ArmorChecker(direction);
  for (let i = 0; i < bytes.length;) {
    const k = next();
    c.push(bytes.subarray(i, i + k));
    i += k;
  }
  return c.end();
}

Deno.test("ArmorChecker: any split gives the same verdict, for whole and spoiled payloads", () => {
  let passed = 0;
  for (let seed = 1; seed <= 600; seed++) {
    const r = rng(seed);
    const size = 1 + Math.floor(r() * (seed % 3 === 0 ? 3000 : 400));
    const lines = armor(packets(size, r), r() < 0.8 ? "\r\n" : "\n");
    const edits = seed <= 50 ? 0 : 1 + Math.floor(r() * 3);
    for (let k = 0; k < edits; k++) {
      const at = Math.floor(r() * lines.length);
      lines[at] = EDITS[Math.floor(r() * EDITS.length)](lines[at], r);
    }
    const text = lines.join("");
    for (const direction of ["outgoing", "incoming"] as const) {
      const whole = verdict(text, direction, () => text.length || 1);
      if (seed <= 50) assert.equal(whole, true, `seed ${seed}: an intact payload passes`);
      if (whole) passed++;
      assert.equal(verdict(text, direction, () => 1), whole, `seed ${seed} ${direction}: bytes`);
      assert.equal(
        verdict(text, direction, () => 1 + Math.floor(r() * 90)),
        whole,
        `seed ${seed} ${direction}: random pieces`,
      );
      // Pieces of 512 bytes and more are searched as text (byteText): mid-line cuts there too.
      assert.equal(
        verdict(text, direction, () => 512 + Math.floor(r() * 1500)),
        whole,
        `seed ${seed} ${direction}: long pieces`,
      );
    }
  }
  assert.ok(passed > 100 && passed < 1100, `${passed} of 1200 readings passed`);
});

Deno.test("ArmorChecker: a payload larger than the shared decode buffer, whole or in socket reads", () => {
  const r = rng(7);
  const text = armor(packets(8_000, r), "\r\n").join(""); // two-octet length: at most 8383
  // A SEIPD of 300 000 bytes (five-octet length): about 400 KB of armor.
  const big = new Uint8Array(300_000);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(r() * 256);
  const head = [0xc1, 12, ...big.subarray(0, 12), 0xd2, 0xff, ...u32(big.length)];
  const packetBytes = new Uint8Array(head.length + big.length);
  packetBytes.set(head);
  packetBytes.set(big, head.length);
  let binary = "";
  for (let i = 0; i < packetBytes.length; i += 8192) {
    binary += String.fromCharCode(...packetBytes.subarray(i, i + 8192));
  }
  const b64 = btoa(binary);
  const lines = ["-----BEGIN PGP MESSAGE-----", ""];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push("=njUN", "-----END PGP MESSAGE-----", "");
  const many = lines.join("\r\n");
  assert.ok(many.length > 400_000);
  for (const payload of [text, many]) {
    const bytes = enc.encode(payload);
    for (const piece of [bytes.length, 65536, 16384]) {
      const c = new ArmorChecker("outgoing");
      for (let i = 0; i < bytes.length; i += piece) c.push(bytes.subarray(i, i + piece));
      assert.equal(c.end(), true, `${bytes.length} bytes in pieces of ${piece}`);
    }
    // One changed char in the middle is still found in the long runs.
    const spoiled = bytes.slice();
    spoiled[spoiled.length >> 1] = 0x2e; // "."
    const c = new ArmorChecker("outgoing");
    c.push(spoiled);
    assert.equal(c.end(), false);
  }
});

function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
