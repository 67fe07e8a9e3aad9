// Ranged reads of a blob-backed message: its head from memory, the rest from the blob's chunks,
// a bounded read per call. The blob outlives a free by a grace period (bodies.ts), so a reader
// opened before the message was expunged keeps working meanwhile.

import type { BodyReader } from "../types.ts";
import type { Q } from "./connection.ts";
import { readBlob } from "./bodies.ts";

export class BlobBodyReader implements BodyReader {
  readonly size: number;
  readonly structure: Uint8Array | null;
  #q: Q;
  #head: Uint8Array;
  #blobId: number;
  #blobOffset: number;
  #closed = false;

  constructor(
    q: Q,
    head: Uint8Array,
    blobId: number,
    blobOffset: number,
    size: number,
    structure: Uint8Array | null,
  ) {
    this.#q = q;
    this.#head = head;
    this.#blobId = blobId;
    this.#blobOffset = blobOffset;
    this.size = size;
    this.structure = structure;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.#closed) throw new Error("The body reader is closed");
    const start = clamp(offset, this.size);
    const end = clamp(offset + length, this.size);
    const out = new Uint8Array(end - start);
    let pos = start;
    if (pos < this.#head.length) {
      const part = this.#head.subarray(pos, Math.min(end, this.#head.length));
      out.set(part);
      pos += part.length;
    }
    if (pos < end) {
      const at = this.#blobOffset + pos - this.#head.length;
      out.set(await readBlob(this.#q, this.#blobId, at, at + end - pos), pos - start);
    }
    return out;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function clamp(n: number, max: number): number {
  return Math.max(0, Math.min(Math.floor(n), max));
}
