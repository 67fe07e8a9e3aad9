// Reading and writing the TLS presentation language (RFC 8446 §3): big-endian integers and
// vectors with a 1-, 2- or 3-byte length prefix. A short or overlong field is a decode_error.

import { Alert, TlsAlert } from "./alert.ts";

/** Reads fields in order from a byte array; every read past the end throws decode_error. */
export class Reader {
  #at = 0;
  readonly #data: Uint8Array;

  constructor(data: Uint8Array, private readonly what = "message") {
    this.#data = data;
  }

  get left(): number {
    return this.#data.length - this.#at;
  }

  #take(n: number): Uint8Array {
    const at = this.#skip(n);
    return this.#data.subarray(at, at + n);
  }

  /** Moves past `n` bytes; returns where they start. */
  #skip(n: number): number {
    if (n > this.left) throw new TlsAlert(Alert.decodeError, `${this.what} is truncated`);
    const at = this.#at;
    this.#at += n;
    return at;
  }

  // The integers are read in place: a subarray per number was most of the garbage a
  // ClientHello's parse left (its lists of cipher suites, groups and signature schemes).
  u8(): number {
    return this.#data[this.#skip(1)];
  }

  u16(): number {
    const at = this.#skip(2), d = this.#data;
    return (d[at] << 8) | d[at + 1];
  }

  u24(): number {
    const at = this.#skip(3), d = this.#data;
    return (d[at] << 16) | (d[at + 1] << 8) | d[at + 2];
  }

  bytes(n: number): Uint8Array {
    return this.#take(n);
  }

  /** A vector whose length prefix has `width` bytes. */
  vector(width: 1 | 2 | 3): Uint8Array {
    const n = width === 1 ? this.u8() : width === 2 ? this.u16() : this.u24();
    return this.#take(n);
  }

  /** A vector read back as its own Reader (for lists of structures). */
  sub(width: 1 | 2 | 3, what = this.what): Reader {
    return new Reader(this.vector(width), what);
  }

  /** Throws decode_error if bytes are left over. */
  end(): void {
    if (this.left !== 0) throw new TlsAlert(Alert.decodeError, `${this.what} has trailing bytes`);
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
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

export function u8(n: number): Uint8Array {
  return Uint8Array.of(n);
}

export function u16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff);
}

export function u24(n: number): Uint8Array {
  return Uint8Array.of(n >> 16, (n >> 8) & 0xff, n & 0xff);
}

/** A vector: `width` length bytes, then the content. */
export function vector(width: 1 | 2 | 3, ...content: Uint8Array[]): Uint8Array {
  const body = concat(content);
  const len = width === 1 ? u8(body.length) : width === 2 ? u16(body.length) : u24(body.length);
  return concat([len, body]);
}

/**
 * A FIFO of bytes: appends grow the buffer by doubling (after compacting), so bytes arriving one
 * at a time cost linear time in total. When emptied it lets go of its buffer, so an idle
 * connection holds none.
 */
/** One shared empty array, so the many idle queues hold no buffer of their own. */
const EMPTY = new Uint8Array(0);

export class ByteQueue {
  #buf = EMPTY;
  #start = 0;
  #end = 0;

  get length(): number {
    return this.#end - this.#start;
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#end + bytes.length > this.#buf.length) {
      const held = this.#end - this.#start;
      const need = held + bytes.length;
      if (need <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const next = new Uint8Array(Math.max(need, 2 * this.#buf.length, 256));
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = held;
    }
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** The byte at offset `i` from the front (i < length). */
  at(i: number): number {
    return this.#buf[this.#start + i];
  }

  /** Removes and returns (as a copy) the first `n` bytes (n ≤ length). */
  take(n: number): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) {
      this.#buf = EMPTY;
      this.#start = this.#end = 0;
    }
    return out;
  }

  clear(): void {
    this.#buf = EMPTY;
    this.#start = this.#end = 0;
  }
}
