// Taking in one message as it arrives (SMTP DATA, /mxdeliv, IMAP APPEND): every chunk goes to the
// store's spool and to the readers that judge or describe the message (the encryption gate, the
// MIME reader, DKIM body hashes), so the message is never whole in memory and is read once.
//
// Readers are fed in slices of at most SLICE bytes, and the event loop gets a turn between slices
// once they held it for a few ms (net's loopTurn): the worst message for a reader (a 50-deep
// nested multipart at the size limit) then holds the loop for a few ms and one slice's work,
// never for a whole network chunk, and other connections are served meanwhile (issue 15, "cost
// bound").

import { loopTurn } from "../net/mod.ts";
import type { BodySpool, SpooledBody } from "../store/types.ts";

/** Reads the message's bytes in order; push() must not throw. */
export interface IntakeReader {
  /** `text`, when given, is `bytes` as mime's byteText gives it (no need to decode them again). */
  push(bytes: Uint8Array, text?: string): void;
}

/** Largest piece a reader is given at once. */
export const SLICE = 16 * 1024;

export class MessageIntake {
  #spool: BodySpool;
  #readers: IntakeReader[];
  #failure: Error | null = null;
  #discarded = false;
  #size = 0;

  constructor(spool: BodySpool, readers: IntakeReader[]) {
    this.#spool = spool;
    this.#readers = readers;
  }

  /** Bytes taken in so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * The next bytes (the view may be reused once the promise settles); resolves when the spool
   * took them. Never rejects: a spool failure (disk full) is kept and reported by finish().
   */
  async write(chunk: Uint8Array, text?: string): Promise<void> {
    if (this.#discarded) return;
    this.#size += chunk.length;
    // The spool reads the chunk until `stored` settles (awaited below, before the caller may
    // reuse its view); the readers take their slices now.
    const stored = this.#failure ? null : this.#spool.write(chunk).catch((err) => {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
    });
    for (let i = 0; i < chunk.length; i += SLICE) {
      const slice = chunk.subarray(i, i + SLICE);
      const sliceText = text?.slice(i, i + SLICE);
      for (const r of this.#readers) r.push(slice, sliceText);
      await loopTurn();
    }
    await stored;
  }

  /** The spooled body, ready to be stored; throws what made a write fail. */
  async finish(): Promise<SpooledBody> {
    if (this.#discarded) throw new Error("The message was discarded");
    if (this.#failure) throw this.#failure;
    return await this.#spool.finish();
  }

  /** Frees the spool (after the last store call using the body, or to give up). Idempotent. */
  async discard(): Promise<void> {
    if (this.#discarded) return;
    this.#discarded = true;
    await this.#spool.discard();
  }
}
