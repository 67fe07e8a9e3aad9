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
 * `rewritten` as a head plus `original` from `skip`: the longest common tail is shared (a header
 * rewrite leaves the body as it was), what differs before it becomes the head.
 */
export function rewrittenAs(
  original: Uint8Array,
  rewritten: Uint8Array,
): { head: Uint8Array; skip: number } {
  let common = 0;
  const max = Math.min(original.length, rewritten.length);
  while (
    common < max &&
    original[original.length - 1 - common] === rewritten[rewritten.length - 1 - common]
  ) common++;
  return {
    head: rewritten.subarray(0, rewritten.length - common),
    skip: original.length - common,
  };
}

/** A body already in memory passed as is (small messages, tests): no spool to discard. */
export function bytesBody(bytes: Uint8Array): SpooledBody {
  return { size: bytes.length, bytes, file: null };
}
