// How a PostgreSQL store operation is declared: where it runs and, for writes, which shared rows
// it changes (lock keys, write_batch.ts). A Store method of the same name is built from it in
// mod.ts, as op_kinds.ts does for SQLite.
//   read   on the pool, any connection (reads start after the writes they follow committed);
//   write  in the instance's next batch (group commit), after advisory locks on its keys;
//   alone  in a transaction of its own, in order with the batches (keys found inside it).

import type { Q } from "./connection.ts";
import type { OpEnv } from "./write_batch.ts";

export interface KeyContext {
  /** The account owning a mailbox (ids are never reused: cached). */
  accountOf(mailboxId: number): Promise<number>;
  /**
   * The accounts of those addresses as they are now (not cached: an address may be deleted and
   * taken again by a new account); missing ones are left out.
   */
  accountsOf(addresses: string[]): Promise<number[]>;
}

type Run<A extends unknown[], R> = (q: Q, env: OpEnv, ...args: A) => Promise<R>;
/** The lock keys of a write, from its arguments (as one tuple). */
type Keys<A extends unknown[]> = (ctx: KeyContext, args: A) => string[] | Promise<string[]>;

export interface ReadOp<A extends unknown[], R> {
  kind: "read";
  run: Run<A, R>;
}

export interface WriteOp<A extends unknown[], R> {
  kind: "write";
  keys: Keys<A>;
  run: Run<A, R>;
}

export interface AloneOp<A extends unknown[], R> {
  kind: "alone";
  run: Run<A, R>;
}

// deno-lint-ignore no-explicit-any
export type OpDef = ReadOp<any, unknown> | WriteOp<any, unknown> | AloneOp<any, unknown>;

/** The Store methods an op table gives: same arguments, without the connection. */
export type MethodsOf<T> = {
  [K in keyof T]: T[K] extends { run: Run<infer A, infer R> } ? (...args: A) => Promise<R>
    : never;
};

/** A read on the pool. */
export function read<A extends unknown[], R>(run: Run<A, R>): ReadOp<A, R> {
  return { kind: "read", run };
}

/** A write in the next batch, locking `keys` first (given second, so A comes from `run`). */
export function write<A extends unknown[], R>(run: Run<A, R>, keys: Keys<A>): WriteOp<A, R> {
  return { kind: "write", keys, run };
}

/** A write in its own transaction (it finds and locks what it changes itself). */
export function alone<A extends unknown[], R>(run: Run<A, R>): AloneOp<A, R> {
  return { kind: "alone", run };
}

/** Lock key names. */
export const key = {
  account: (id: number) => `a:${id}`,
  address: (a: string) => `addr:${a.toLowerCase()}`,
  uidValidity: "uidvalidity",
  setting: (k: string) => `set:${k}`,
  token: (t: string) => `tok:${t}`,
  blocked: (e: string) => `blk:${e.toLowerCase()}`,
  federation: (d: string) => `fed:${d.toLowerCase()}`,
  /** A destination's queue rows (its recipients' domain). */
  destination: (d: string) => `dst:${d.toLowerCase()}`,
  pushJob: (id: number) => `pj:${id}`,
  body: (id: number) => `b:${id}`,
  queue: (id: number) => `q:${id}`,
  recipient: (id: number) => `qr:${id}`,
};
