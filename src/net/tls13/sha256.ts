// SHA-256 (FIPS 180-4) in plain TypeScript, for the key schedule of the SHA-256 suites. Each
// node:crypto hash object holds native memory that only V8's full collections give back (a
// loop making 200 000 of them grew the process by 46 MB while the JS heap stayed at 10 MB),
// and a handshake made about fifty (twenty-odd HMACs of two hashes each, the transcript
// hashes): a burst of handshakes left that much native garbage per connection until the next
// full collection. Here a hash is a few numbers in small arrays and its 32-byte result.

const K = Int32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

const INITIAL = Int32Array.from([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** A running SHA-256: bytes added in pieces, digests taken along the way (a transcript). */
export class Sha256 {
  readonly #state = Int32Array.from(INITIAL);
  /** The bytes of the block not yet full. */
  readonly #block = new Uint8Array(64);
  #fill = 0;
  #total = 0;

  reset(): void {
    this.#state.set(INITIAL);
    this.#fill = this.#total = 0;
  }

  update(p: Uint8Array): this {
    const block = this.#block;
    let fill = this.#fill;
    let at = 0;
    this.#total += p.length;
    if (fill > 0) {
      while (fill < 64 && at < p.length) block[fill++] = p[at++];
      if (fill < 64) {
        this.#fill = fill;
        return this;
      }
      compress(this.#state, block, 0);
      fill = 0;
    }
    for (; at + 64 <= p.length; at += 64) compress(this.#state, p, at);
    while (at < p.length) block[fill++] = p[at++];
    this.#fill = fill;
    return this;
  }

  /** The digest of the bytes so far; more may be added after. */
  digest(): Uint8Array {
    const state = scratchState, block = scratchBlock;
    state.set(this.#state);
    block.set(this.#block);
    let fill = this.#fill;
    // Padding: a 1 bit, zeros, and the length in bits as a 64-bit big-endian number.
    block[fill++] = 0x80;
    if (fill > 56) {
      block.fill(0, fill);
      compress(state, block, 0);
      fill = 0;
    }
    block.fill(0, fill, 56);
    const bits = this.#total * 8;
    writeWord(block, 56, Math.floor(bits / 0x1_0000_0000));
    writeWord(block, 60, bits >>> 0);
    compress(state, block, 0);
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) writeWord(out, 4 * i, state[i]);
    return out;
  }
}

// Scratch space shared by every digest (each runs to its end without yielding).
const scratchState = new Int32Array(8);
const scratchBlock = new Uint8Array(64);
const words = new Int32Array(64);
const oneShot = new Sha256();

/** The SHA-256 digest of the parts, one after the other. */
export function sha256(parts: readonly Uint8Array[]): Uint8Array {
  oneShot.reset();
  for (const p of parts) oneShot.update(p);
  return oneShot.digest();
}

function writeWord(to: Uint8Array, at: number, w: number): void {
  to[at] = w >>> 24;
  to[at + 1] = w >>> 16;
  to[at + 2] = w >>> 8;
  to[at + 3] = w;
}

/** One 64-byte block of `d` at `at` into `state`. */
function compress(state: Int32Array, d: Uint8Array, at: number): void {
  const w = words;
  for (let i = 0; i < 16; i++, at += 4) {
    w[i] = (d[at] << 24) | (d[at + 1] << 16) | (d[at + 2] << 8) | d[at + 3];
  }
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15], b = w[i - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], e0 = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    h = g;
    g = f;
    f = e;
    e = (e0 + t1) | 0;
    e0 = c;
    c = b;
    b = a;
    a = (t1 + s0 + maj) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + e0) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}
