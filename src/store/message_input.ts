// Helpers for callers that still hold a whole message in memory: spool it for the store, and
// describe a rewritten copy (new header block) as a head over the same spooled bytes, so every
// copy of a large message shares one body file.

import type { SpooledBody, Store } from "./types.ts";

const PIECE = 1 << 20;

export interface Spooled {
  body: SpooledBody;
  /** Frees the spool once every store call that uses it has settled. */
  discard(): Promise<void>;
}

/** Spools bytes already in memory (in 1 MiB pieces). */
export async function spoolBytes(
  store: Pick<Store, "createSpool">,
  bytes: Uint8Array,
): Promise<Spooled> {
  const spool = store.createSpool();
  try {
    for (let off = 0; off < bytes.length; off += PIECE) {
      await spool.write(bytes.subarray(off, off + PIECE));
    }
    return { body: await spool.finish(), discard: () => spool.discard() };
  } catch (err) {
    await spool.discard();
    throw err;
  }
}

/**
 * `rewritten` as a head plus `original` from `skip`. A header rewrite leaves everything from the
 * blank line after the header block as it was: when `rewritten` ends with exactly that, only
 * what comes before it is the head (compared natively: a 30 MB body costs a few ms); otherwise
 * the whole of `rewritten` is the head.
 */
export function rewrittenAs(
  original: Uint8Array,
  rewritten: Uint8Array,
): { head: Uint8Array; skip: number } {
  const start = headerEnd(original);
  const tail = original.length - start;
  if (
    start >= 0 && tail <= rewritten.length &&
    view(original, start, tail).equals(view(rewritten, rewritten.length - tail, tail))
  ) {
    return { head: rewritten.subarray(0, rewritten.length - tail), skip: start };
  }
  return { head: rewritten, skip: original.length };
}

function view(b: Uint8Array, offset: number, length: number): Buffer {
  return Buffer.from(b.buffer, b.byteOffset + offset, length);
}

/** Offset of the line break that ends the header block (the empty line), or -1. */
function headerEnd(bytes: Uint8Array): number {
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) {
    const next = bytes[i + 1] === 13 ? i + 2 : i + 1;
    if (bytes[next] === 10) return i + 1;
  }
  return -1;
}

/** A body already in memory passed as is (small messages, tests): no spool to discard. */
export function bytesBody(bytes: Uint8Array): SpooledBody {
  return { size: bytes.length, bytes, file: null };
}
