// Receiving a body with bounded memory: chunks are kept in memory up to the inline limit; the
// first chunk beyond it moves everything to data_dir/bodies/tmp/NAME and the rest streams there,
// each write resolving when the file took it (back-pressure). A chunk is only read until its
// write settles (BodySpool), so only what stays in memory is copied: a large body goes from the
// caller's buffer to the file without a copy of its own (20 hanging 5 MiB DATA transactions
// held ~110 MB of RSS with a copy of every chunk). finish() fsyncs the file's data;
// the commit that stores it links the file into bodies/ (body_files.ts). discard() removes the
// temporary name: a committed body keeps its own link.

import { join } from "node:path";
import type { BodySpool, SpooledBody } from "../types.ts";
import { INLINE_LIMIT } from "./bodies.ts";
import { newBodyFileName, tmpDirOf } from "./body_files.ts";

/** A spool error message callers recognise as "no space" (app/smtp_backend.ts: ENOSPC). */
function spoolError(err: unknown): Error {
  const message = (err as Error)?.message ?? String(err);
  if (/ENOSPC|No space left|os error 28|quota exceeded|EDQUOT/i.test(message)) {
    return new Error(`Cannot spool the message: ENOSPC (no space left on device)`, { cause: err });
  }
  return err instanceof Error ? err : new Error(message);
}

export class SqliteSpool implements BodySpool {
  /** bodies/ directory; null keeps everything in memory (":memory:" stores in tests). */
  #dir: string | null;
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** Bytes actually kept (memory or file): less than size after a failed write. */
  #kept = 0;
  #name: string | null = null;
  #file: Deno.FsFile | null = null;
  #state: "open" | "finished" | "discarded" = "open";
  /** Writes run one after the other even when a caller does not wait. */
  #tail: Promise<void> = Promise.resolve();

  /** True while the store is short of space: nothing more goes to the disk. */
  #lowSpace: () => boolean;
  /** finish() gives bytes in shared memory (see there). */
  #shared: boolean;

  constructor(dir: string | null, lowSpace: () => boolean = () => false, shared = false) {
    this.#dir = dir;
    this.#lowSpace = lowSpace;
    this.#shared = shared;
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.reject(new Error(`The spool is ${this.#state}`));
    this.#size += chunk.length;
    const next = this.#tail.then(() => this.#store(chunk));
    this.#tail = next.catch(() => {});
    return next;
  }

  async #store(chunk: Uint8Array): Promise<void> {
    if (!this.#file) {
      if (this.#dir === null || this.#kept + chunk.length <= INLINE_LIMIT) {
        // Kept past this write: the caller may reuse its buffer once the promise settles.
        this.#chunks.push(chunk.slice());
        this.#kept += chunk.length;
        return;
      }
      if (this.#lowSpace()) throw spoolError(new Error("ENOSPC: the store is short of space"));
      this.#name = newBodyFileName();
      try {
        this.#file = await Deno.open(join(tmpDirOf(this.#dir), this.#name), {
          write: true,
          createNew: true,
          mode: 0o600,
        });
      } catch (err) {
        this.#name = null;
        throw spoolError(err);
      }
      const spilled = this.#chunks;
      this.#chunks = [];
      for (const c of spilled) await this.#writeFile(c);
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
    // Shared (the threaded store): the writer thread reads these bytes where they are, where a
    // plain buffer would be copied into the message to it and again out of it. Nothing writes
    // them once finished, so both threads reading them is safe; a transfer instead would take
    // them from a caller that stores the same body twice (local copies, then the queue).
    const bytes: Uint8Array = this.#shared
      ? new Uint8Array(new SharedArrayBuffer(this.#size))
      : new Uint8Array(this.#size);
    let off = 0;
    for (const c of this.#chunks) {
      bytes.set(c, off);
      off += c.length;
    }
    this.#chunks = [];
    return { size: this.#size, bytes, file: null };
  }

  async discard(): Promise<void> {
    if (this.#state === "discarded") return;
    this.#state = "discarded";
    await this.#tail;
    this.#chunks = [];
    this.#file?.close();
    this.#file = null;
    if (this.#name && this.#dir) {
      await Deno.remove(join(tmpDirOf(this.#dir), this.#name)).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }
}
