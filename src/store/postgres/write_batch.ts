// Group commit for PostgreSQL, as the SQLite writer does it (store/sqlite/write_queue.ts): at
// most one batch of writes is in flight per instance; writes asked for meanwhile leave together
// as the next batch, one transaction (BEGIN … one COMMIT, one WAL flush for all), each inside
// its own SAVEPOINT so a failing one is rolled back alone. Each write's promise settles after
// that COMMIT with its own result, in the order the writes were made (UIDs follow call order).
//
// Several instances write to one database at once. Every write names the shared rows it will
// change as lock keys ("a:ACCOUNT", "set:KEY", …); a batch first takes transaction-scoped
// advisory locks on all its keys in one sorted order, so two batches (of two instances) that
// touch the same accounts queue behind each other instead of deadlocking halfway. What slips
// through (a rare deadlock, a serialization failure) rolls the whole batch back and runs it
// again: nothing of it was answered yet. Writes that cannot know their keys beforehand run
// alone, each in its own transaction, taking their locks inside it, retried the same way.

import type postgres from "postgres";
import { isRetryable, type Q, type Sql, sqlState, storeError } from "./connection.ts";

export interface OpEnv {
  /** The caller's clock at the call (injected clocks work as with SQLite). */
  now(): number;
  /**
   * How far the database's clock is ahead of the caller's (ms): claim leases and push jobs'
   * times, which instances share, are kept on the database's clock (onDb).
   */
  clockOffset(): number;
}

/** A time on the caller's clock as the database's clock shows that moment (OpEnv.clockOffset). */
export const onDb = (env: OpEnv, callerTime: number): number => callerTime + env.clockOffset();

export type OpRun = (q: Q, env: OpEnv, ...args: never[]) => Promise<unknown>;

export interface WriteItem {
  name: string;
  run: OpRun;
  args: unknown[];
  env: OpEnv;
  /** Lock keys, resolved before the batch runs; null: run alone in its own transaction. */
  keys: Promise<string[]> | null;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** Bounds one batch (and so the wait of the writes behind it). */
const MAX_BATCH = 256;
const MAX_RETRIES = 8;

/** A 52-bit key per lock name (advisory locks take a bigint; 52 bits stay exact in JS). */
export function lockKey(name: string): number {
  // FNV-1a, 64-bit, truncated: collisions only merge two locks (still one global order).
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < name.length; i++) {
    h ^= BigInt(name.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(h >> 12n);
}

/** Connection-level failures: the server or the network went; the batch's fate is unknown. */
function isConnectionError(err: unknown): boolean {
  const s = sqlState(err);
  if (s === undefined) {
    const code = (err as { code?: unknown })?.code;
    return typeof code === "string" && /^(CONNECTION_|ECONN|EPIPE|ETIMEDOUT|ENOTFOUND)/.test(code);
  }
  return s.startsWith("08") || s.startsWith("57");
}

export class WriteBatcher {
  #sql: Sql;
  #queue: WriteItem[] = [];
  #busy = false;
  #scheduled = false;
  #idle: (() => void)[] = [];
  readonly stats = { batches: 0, ops: 0, retries: 0 };

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  add(item: Omit<WriteItem, "resolve" | "reject">): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // A key lookup that fails is the write's failure; it must not be unhandled meanwhile.
      item.keys?.catch(() => {});
      this.#queue.push({ ...item, resolve, reject });
      // Writes made in the same turn of the event loop go in the same batch.
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  /** Resolves once every write made so far has settled. */
  drained(): Promise<void> {
    if (!this.#busy && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump(): void {
    if (this.#busy) return;
    if (this.#queue.length === 0) {
      for (const r of this.#idle.splice(0)) r();
      return;
    }
    this.#busy = true;
    let items: WriteItem[];
    if (this.#queue[0].keys === null) items = this.#queue.splice(0, 1);
    else {
      let n = 0;
      while (n < this.#queue.length && n < MAX_BATCH && this.#queue[n].keys !== null) n++;
      items = this.#queue.splice(0, n);
    }
    this.stats.batches++;
    this.stats.ops += items.length;
    const run = items[0].keys === null ? this.#alone(items[0]) : this.#batch(items);
    run.finally(() => {
      this.#busy = false;
      this.#pump();
    });
  }

  async #alone(item: WriteItem): Promise<void> {
    try {
      item.resolve(
        await this.#retrying((tx) => item.run(tx, item.env, ...(item.args as never[]))),
      );
    } catch (err) {
      item.reject(storeError(err));
    }
  }

  async #batch(items: WriteItem[]): Promise<void> {
    // Writes whose keys could not be found fail alone before the batch starts.
    const ready: { item: WriteItem; keys: string[] }[] = [];
    for (const item of items) {
      try {
        ready.push({ item, keys: await item.keys! });
      } catch (err) {
        item.reject(err);
      }
    }
    if (ready.length === 0) return;
    const keys = [...new Set(ready.flatMap((r) => r.keys).map(lockKey))].sort((a, b) => a - b);
    type Result = { ok: true; value: unknown } | { ok: false; error: unknown };
    let results: Result[];
    try {
      results = await this.#retrying(async (tx) => {
        const out: Result[] = [];
        if (keys.length) {
          await tx`SELECT pg_advisory_xact_lock(k) FROM unnest(${keys}::bigint[]) AS k`;
        }
        for (const { item } of ready) {
          try {
            const value = await tx.savepoint((sp) =>
              item.run(sp, item.env, ...(item.args as never[]))
            );
            out.push({ ok: true, value });
          } catch (err) {
            // The batch as a whole runs again (deadlock), or fails (connection gone).
            if (isRetryable(err) || isConnectionError(err)) throw err;
            out.push({ ok: false, error: storeError(err) });
          }
        }
        return out;
      });
    } catch (err) {
      for (const { item } of ready) item.reject(storeError(err));
      return;
    }
    ready.forEach(({ item }, i) => {
      const r = results[i];
      if (r.ok) item.resolve(r.value);
      else item.reject(r.error);
    });
  }

  /**
   * Runs fn in one transaction (postgres.js begin: every statement on the transaction's own
   * connection, which is never replaced halfway), again after a deadlock or serialization failure.
   */
  async #retrying<T>(fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#sql.begin((tx) => fn(tx)) as T;
      } catch (err) {
        if (!isRetryable(err) || attempt >= MAX_RETRIES) throw err;
        this.stats.retries++;
        // A short random pause lets the other side finish.
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
      }
    }
  }
}
