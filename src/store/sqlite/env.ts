// What the synchronous store functions work with: the connection, the file effects of the
// current write transaction (null for a store without body files), and the operation's time.

import type { Db } from "./db.ts";
import type { TxFiles } from "./body_files.ts";

export interface OpEnv {
  db: Db;
  files: TxFiles | null;
  /** The time the caller made the call (the main thread's clock, also in the writer thread). */
  now(): number;
}

/** The synchronous form of a promise-returning interface: what runs inside the store threads. */
export type SyncOf<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : never;
};
