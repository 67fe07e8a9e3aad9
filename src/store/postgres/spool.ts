// Receiving a body with bounded memory, into PostgreSQL: chunks stay in memory up to the inline
// limit; past it the body becomes a blob (bodies.ts) and every full chunk is inserted as it
// fills, each write resolving when the database took it (back-pressure). The chunk inserts are
// committed asynchronously (synchronous_commit off, on the bulk connections): the transaction
// that stores the message commits synchronously later, and flushing the WAL up to its commit
// record makes every chunk written before it durable too. discard() deletes a blob no commit
// adopted; an adopted one stays with its bodies.

import type { BodySpool, SpooledBody } from "../types.ts";
import { blobName, CHUNK, INLINE_LIMIT } from "./bodies.ts";
import { type Sql, storeError, toBase64 } from "./connection.ts";

export class PgSpool implements BodySpool {
  #bulk: Sql;
  #now: () => number;
  #chunks: Uint8Array[] = [];
  /** Bytes held in #chunks. */
  #held = 0;
  #size = 0;
  /** Bytes actually kept (memory or database): less than size after a failed write. */
  #kept = 0;
  #blob: number | null = null;
  #seq = 0;
  #state: "open" | "finished" | "discarded" = "open";
  /** Writes run one after the other even when a caller does not wait. */
  #tail: Promise<void> = Promise.resolve();

  constructor(bulk: Sql, now: () => number) {
    this.#bulk = bulk;
    this.#now = now;
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.reject(new Error(`The spool is ${this.#state}`));
    const copy = chunk.slice();
    this.#size += copy.length;
    const next = this.#tail.then(() => this.#store(copy));
    this.#tail = next.catch(() => {});
    return next;
  }

  async #store(chunk: Uint8Array): Promise<void> {
    if (this.#blob === null && this.#held + chunk.length <= INLINE_LIMIT) {
      this.#chunks.push(chunk);
      this.#held += chunk.length;
      this.#kept += chunk.length;
      return;
    }
    if (this.#blob === null) {
      const [r] = await this.#bulk<{ id: number }[]>`
        INSERT INTO blobs (created_at) VALUES (${this.#now()}) RETURNING id`.catch((err) => {
        throw storeError(err);
      });
      this.#blob = r.id;
    }
    this.#chunks.push(chunk);
    this.#held += chunk.length;
    while (this.#held >= CHUNK) await this.#flush(CHUNK);
    this.#kept += chunk.length;
  }

  /** Inserts the first `n` held bytes as the next chunk. */
  async #flush(n: number): Promise<void> {
    const data = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const take = Math.min(c.length, n - off);
      data.set(c.subarray(0, take), off);
      off += take;
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
    }
    this.#held -= n;
    await this.#bulk`
      INSERT INTO blob_chunks (blob_id, seq, data)
      VALUES (${this.#blob}, ${this.#seq}, decode(${toBase64(data)}, 'base64'))`.catch((err) => {
      throw storeError(err);
    });
    this.#seq++;
  }

  async finish(): Promise<SpooledBody> {
    if (this.#state !== "open") throw new Error(`The spool is ${this.#state}`);
    await this.#tail;
    if (this.#blob === null) {
      if (this.#kept !== this.#size) throw new Error("Cannot spool the message: a write failed");
      this.#state = "finished";
      const bytes = new Uint8Array(this.#size);
      let off = 0;
      for (const c of this.#chunks) {
        bytes.set(c, off);
        off += c.length;
      }
      this.#chunks = [];
      return { size: this.#size, bytes, file: null };
    }
    if (this.#kept !== this.#size) throw new Error("Cannot spool the message: a write failed");
    if (this.#held > 0) await this.#flush(this.#held);
    await this.#bulk`UPDATE blobs SET size = ${this.#size} WHERE id = ${this.#blob}`.catch(
      (err) => {
        throw storeError(err);
      },
    );
    this.#state = "finished";
    return { size: this.#size, bytes: null, file: blobName(this.#blob) };
  }

  async discard(): Promise<void> {
    if (this.#state === "discarded") return;
    this.#state = "discarded";
    await this.#tail;
    this.#chunks = [];
    if (this.#blob !== null) {
      const id = this.#blob;
      this.#blob = null;
      await this.#bulk`DELETE FROM blobs WHERE id = ${id} AND NOT committed`;
    }
  }
}
