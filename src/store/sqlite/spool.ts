// Receiving a body with bounded memory: up to the inline limit the bytes go straight into a slab
// (slab_pool.ts), the buffer finish() hands to the store as it is, so nothing is copied twice
// and nothing allocated per message once the pool is warm; the first chunk beyond the limit moves
// everything to data_dir/bodies/tmp/NAME (the slab goes back to the pool) and the rest streams
// there, each write resolving when the file took it (back-pressure). A chunk is only read until
// its write settles (BodySpool): a large body goes from the caller's buffer to the file without a
// copy of its own (20 hanging 5 MiB DATA transactions held ~110 MB of RSS with a copy of every
// chunk). finish() fsyncs the file's data; the commit that stores it links the file into bodies/
// (body_files.ts). discard() removes the temporary name (a committed body keeps its own link)
// and gives the slab back once no store call reads it (leaseBody).

import { join } from "node:path";
import type { BodySpool, SpooledBody } from "../types.ts";
import { INLINE_LIMIT } from "./bodies.ts";
import { ensureBodyDirs, newBodyFileName, tmpDirOf } from "./body_files.ts";
import { SlabPool } from "./slab_pool.ts";

/** A spool error message callers recognise as "no space" (app/smtp_backend.ts: ENOSPC). */
function spoolError(err: unknown): Error {
  const message = (err as Error)?.message ?? String(err);
  if (/ENOSPC|No space left|os error 28|quota exceeded|EDQUOT/i.test(message)) {
    return new Error(`Cannot spool the message: ENOSPC (no space left on device)`, { cause: err });
  }
  return err instanceof Error ? err : new Error(message);
}

const RESOLVED = Promise.resolve();
const EMPTY = new Uint8Array(0);

/** The spool behind each body that finish() gave out with a slab under it. */
const slabBodies = new WeakMap<SpooledBody, SqliteSpool>();

/**
 * Marks the body a store call carries (`args[0].body`) as read until the returned function is
 * called, so that its spool's discard() keeps the slab from reuse meanwhile. Null when the call
 * carries no slab.
 */
export function leaseBody(args: readonly unknown[]): (() => void) | null {
  const body = (args[0] as { body?: unknown } | null | undefined)?.body;
  const spool = body && typeof body === "object" ? slabBodies.get(body as SpooledBody) : undefined;
  return spool ? spool.lease() : null;
}

export class SqliteSpool implements BodySpool {
  /** bodies/ directory; null keeps everything in memory (":memory:" stores in tests). */
  #dir: string | null;
  #pool: SlabPool;
  /** The bytes so far while in memory (the first #kept of it). */
  #slab: Uint8Array | null = null;
  #size = 0;
  /** Bytes actually kept (memory or file): less than size after a failed write. */
  #kept = 0;
  /** The body went past the inline limit: every write from then on goes through #tail. */
  #spilling = false;
  #name: string | null = null;
  #file: Deno.FsFile | null = null;
  #state: "open" | "finished" | "discarded" = "open";
  /** File writes run one after the other even when a caller does not wait. */
  #tail: Promise<void> = RESOLVED;
  /** Store calls reading the finished body (leaseBody), and who waits for them to end. */
  #leases = 0;
  #unleased: (() => void) | null = null;

  /** True while the store is short of space: nothing more goes to the disk. */
  #lowSpace: () => boolean;

  constructor(dir: string | null, pool: SlabPool, lowSpace: () => boolean = () => false) {
    this.#dir = dir;
    this.#pool = pool;
    this.#lowSpace = lowSpace;
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.reject(new Error(`The spool is ${this.#state}`));
    this.#size += chunk.length;
    if (!this.#spilling) {
      const end = this.#kept + chunk.length;
      if (this.#dir === null || end <= INLINE_LIMIT) {
        // Copied now: the caller may reuse its buffer once the promise settles.
        if (chunk.length > 0) this.#room(end).set(chunk, this.#kept);
        this.#kept = end;
        return RESOLVED;
      }
      this.#spilling = true;
    }
    const next = this.#tail.then(() => this.#toFile(chunk));
    this.#tail = next.catch(() => {});
    return next;
  }

  /** The slab, with room for `end` bytes (moved to a bigger one when full). */
  #room(end: number): Uint8Array {
    const slab = this.#slab;
    if (slab && end <= slab.length) return slab;
    const bigger = this.#pool.take(end);
    if (slab) {
      bigger.set(slab.subarray(0, this.#kept));
      this.#pool.give(slab);
    }
    return this.#slab = bigger;
  }

  async #toFile(chunk: Uint8Array): Promise<void> {
    if (!this.#file) {
      if (this.#lowSpace()) throw spoolError(new Error("ENOSPC: the store is short of space"));
      this.#name = newBodyFileName();
      const open = () =>
        Deno.open(join(tmpDirOf(this.#dir!), this.#name!), {
          write: true,
          createNew: true,
          mode: 0o600,
        });
      try {
        this.#file = await open().catch(async (err) => {
          // The spool directory removed under the relay (an operator's clean-up): made again.
          if (!(err instanceof Deno.errors.NotFound)) throw err;
          ensureBodyDirs(this.#dir!);
          return await open();
        });
      } catch (err) {
        this.#name = null;
        throw spoolError(err);
      }
      const slab = this.#slab;
      if (slab) {
        await this.#writeFile(slab.subarray(0, this.#kept));
        // Only back once written: the file write read it until then.
        this.#slab = null;
        this.#pool.give(slab);
      }
    }
    await this.#writeFile(chunk);
    this.#kept += chunk.length;
  }

  async #writeFile(bytes: Uint8Array): Promise<void> {
    try {
      let off = 0;
      while (off < bytes.length) off += await this.#file!.write(bytes.subarray(off));
    } catch (err) {
      throw spoolError(err);
    }
  }

  async finish(): Promise<SpooledBody> {
    if (this.#state !== "open") throw new Error(`The spool is ${this.#state}`);
    await this.#tail;
    // A failed write is reported again here rather than storing a short body.
    if (this.#kept !== this.#size) throw new Error("Cannot spool the message: a write failed");
    this.#state = "finished";
    if (this.#file) {
      try {
        await this.#file.syncData();
      } catch (err) {
        throw spoolError(err);
      } finally {
        this.#file.close();
        this.#file = null;
      }
      return { size: this.#size, bytes: null, file: this.#name };
    }
    if (!this.#slab) return { size: 0, bytes: EMPTY, file: null };
    // The slab as it is. Shared (the threaded store): the writer thread reads these bytes where
    // they are, where a plain buffer would be copied into the message to it and again out of it.
    // Nothing writes them until discard() gives the slab back, so both threads reading them is
    // safe; a transfer instead would take them from a caller that stores the same body twice
    // (local copies, then the queue).
    const body = { size: this.#size, bytes: this.#slab.subarray(0, this.#size), file: null };
    slabBodies.set(body, this);
    return body;
  }

  /** One store call reads the finished body until the returned function is called. */
  lease(): () => void {
    this.#leases++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#leases === 0) this.#unleased?.();
    };
  }

  async discard(): Promise<void> {
    if (this.#state === "discarded") return;
    this.#state = "discarded";
    await this.#tail;
    const slab = this.#slab;
    this.#slab = null;
    if (slab) {
      // A store call still reading the body (a caller that did not wait for it) keeps it.
      while (this.#leases > 0) await new Promise<void>((r) => this.#unleased = r);
      this.#unleased = null;
      this.#pool.give(slab);
    }
    this.#file?.close();
    this.#file = null;
    if (this.#name && this.#dir) {
      await Deno.remove(join(tmpDirOf(this.#dir), this.#name)).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }
}
