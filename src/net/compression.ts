// COMPRESS=DEFLATE (RFC 4978) for a connection, with back-pressure both ways: output is deflated
// in bounded pieces and each piece waits for the socket before the next is made; inflated input
// stops when the reader's buffer is full, and compressed input stops while inflate is behind. So
// a client that stops reading, or a small upload that inflates to gigabytes, holds a bounded
// amount of memory.

import zlib from "node:zlib";

/** Input deflated at once; a large write becomes several flushed pieces (5 bytes each extra). */
const PIECE = 256 * 1024;

/** Deflates writes in order; write() resolves once its output was accepted by `sink`. */
export class DeflateWriter {
  #z = zlib.createDeflateRaw({ level: 6 });
  #out: Uint8Array[] = [];
  #error: Error | null = null;
  #chain: Promise<void> = Promise.resolve();
  #sink: (bytes: Uint8Array) => Promise<void>;

  constructor(sink: (bytes: Uint8Array) => Promise<void>) {
    this.#sink = sink;
    this.#z.on("data", (c: Uint8Array) => this.#out.push(c));
    this.#z.on("error", (e: Error) => (this.#error ??= e));
  }

  write(bytes: Uint8Array): Promise<void> {
    const p = this.#chain.then(() => this.#write(bytes));
    // The caller handles p; the chain only orders the next write after it.
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Resolves when every write so far has been handed to the sink (or failed). */
  settled(): Promise<void> {
    return this.#chain;
  }

  destroy() {
    this.#z.destroy();
  }

  async #write(bytes: Uint8Array) {
    let off = 0;
    do {
      const piece = bytes.subarray(off, off + PIECE);
      off += piece.length;
      await this.#deflate(piece);
      const out = concat(this.#out.splice(0));
      if (out.length > 0) await this.#sink(out);
    } while (off < bytes.length);
  }

  #deflate(piece: Uint8Array): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      this.#z.once("error", fail);
      if (piece.length > 0) this.#z.write(piece);
      // Z_SYNC_FLUSH: everything written so far leaves now, ending on a byte boundary.
      this.#z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.#z.removeListener("error", fail);
        if (this.#error) reject(this.#error);
        else resolve();
      });
    });
  }
}

/**
 * Inflates compressed input into `onData`. `write()` returns false when inflate is behind (stop
 * reading the socket until `onDrain`); `pause()` stops output while the reader's buffer is full.
 */
export class InflateReader {
  #z = zlib.createInflateRaw();
  #paused = false;

  constructor(
    onData: (bytes: Uint8Array) => void,
    onError: (e: Error) => void,
    onDrain: () => void,
  ) {
    this.#z.on("data", onData);
    this.#z.on("error", onError);
    this.#z.on("drain", onDrain);
  }

  write(chunk: Uint8Array): boolean {
    return this.#z.write(chunk);
  }

  pause() {
    if (this.#paused) return;
    this.#paused = true;
    this.#z.pause();
  }

  resume() {
    if (!this.#paused) return;
    this.#paused = false;
    this.#z.resume();
  }

  destroy() {
    this.#z.destroy();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
