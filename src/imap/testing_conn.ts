// Test support: an in-memory connection over a byte buffer for the command reader, recording what
// the server writes and how large each read was.

import { LineTooLongError } from "../net/connection.ts";
import type { CommandConnection } from "./command_reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export class BufferConnection implements CommandConnection {
  #data: Uint8Array;
  #pos = 0;
  writes: string[] = [];
  largestRead = 0;
  /** Largest piece readExactChunks hands out. */
  chunkBytes = 64 * 1024;

  /** `keepLineEnd` false mimics net's SocketConnection, which strips CRLF. */
  constructor(input: string | Uint8Array, readonly keepLineEnd = true) {
    this.#data = typeof input === "string" ? enc.encode(input) : input;
  }

  /** Bytes not consumed yet, as text. */
  rest(): string {
    return dec.decode(this.#data.subarray(this.#pos));
  }

  readLine(maxBytes: number): Promise<Uint8Array | null> {
    if (this.#pos >= this.#data.length) return Promise.resolve(null);
    const lf = this.#data.indexOf(10, this.#pos);
    const end = lf < 0 ? this.#data.length : lf + 1;
    const line = this.#data.subarray(this.#pos, end);
    this.#pos = end;
    let content = line.length;
    if (line[content - 1] === 10) content--;
    if (line[content - 1] === 13) content--;
    if (content > maxBytes) {
      return Promise.reject(new LineTooLongError(maxBytes, false, line.slice(0, 256)));
    }
    this.largestRead = Math.max(this.largestRead, line.length);
    return Promise.resolve(this.keepLineEnd ? line : line.subarray(0, content));
  }

  readExact(n: number): Promise<Uint8Array | null> {
    if (this.#pos + n > this.#data.length) {
      this.#pos = this.#data.length;
      return Promise.resolve(null);
    }
    const out = this.#data.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    this.largestRead = Math.max(this.largestRead, n);
    return Promise.resolve(out);
  }

  /** Up to `chunkSize` bytes at a time, like a socket handing over what arrived. */
  chunkSize = 1000;

  readChunk(): Promise<Uint8Array | null> {
    if (this.#pos >= this.#data.length) return Promise.resolve(null);
    const out = this.#data.slice(this.#pos, this.#pos + this.chunkSize);
    this.#pos += out.length;
    this.largestRead = Math.max(this.largestRead, out.length);
    return Promise.resolve(out);
  }

  unread(bytes: Uint8Array): void {
    // Only what was just read can be put back: it is still in the buffer before #pos.
    this.#pos -= bytes.length;
  }

  /** Hands the bytes out in pieces of at most `chunkBytes`, as a socket would. */
  async readExactChunks(
    n: number,
    onChunk: (chunk: Uint8Array) => void | Promise<void>,
  ): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.#pos >= this.#data.length) return false;
      const step = Math.min(left, this.chunkBytes, this.#data.length - this.#pos);
      const piece = this.#data.slice(this.#pos, this.#pos + step);
      this.#pos += step;
      left -= step;
      this.largestRead = Math.max(this.largestRead, step);
      await onChunk(piece);
    }
    return true;
  }

  write(data: string | Uint8Array): Promise<void> {
    this.writes.push(typeof data === "string" ? data : dec.decode(data));
    return Promise.resolve();
  }
}
