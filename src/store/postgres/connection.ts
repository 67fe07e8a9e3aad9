// The PostgreSQL client: npm `postgres` (postgres.js 3.4), chosen over `pg` (node-postgres) after
// measuring both under Deno here (README "Growing beyond one machine", /work/notes in the repo
// history): postgres.js answered the small indexed queries tern makes on every command about
// 1.1–2.4× faster, pipelines queries on one connection (a batch of 50 inserts in one transaction
// went 2.5× faster than awaiting each, the way group commit sends SAVEPOINT with an operation's
// first statement), re-listens by itself after a reconnect (LISTEN/NOTIFY for IDLE), and has no
// dependencies (pg pulls in 15 packages). NOTIFY latency was the same (0.3 ms p50). Its one weak
// spot, bytea as hex text, is avoided for large values: chunks cross as base64 (decode costs
// 0.4 ms per 256 KiB instead of 3.5 ms for hex).

import postgres from "postgres";
import { Buffer } from "node:buffer";

export type Sql = postgres.Sql;
/** A connection or transaction to run statements on (the pool, or a reserved connection). */
export type Q = postgres.Sql | postgres.TransactionSql;

/** bigint (int8) and numeric results as JavaScript numbers: ids, sizes and times fit in 2^53. */
const INT8 = {
  to: 20,
  from: [20, 1700],
  serialize: (x: unknown) => String(x),
  parse: (x: string) => Number(x),
};

export interface ConnectOptions {
  /** Connections in the pool (reads, spool chunks, alone operations); the writer takes one. */
  max?: number;
  /** application_name, seen in pg_stat_activity. */
  name?: string;
  /** Commits without waiting for the WAL flush (spooled chunks: see spool.ts). */
  asyncCommit?: boolean;
  /**
   * Keeps each connection open until closed (no idle timeout, no maximum lifetime): what a
   * session holds, such as a session-level advisory lock, lasts as long as the process.
   */
  lasting?: boolean;
}

export function connect(url: string, options: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    types: { int8: INT8 } as unknown as Record<string, postgres.PostgresType>,
    // Undefined parameters are NULL (optional fields of the store's inputs).
    transform: { undefined: null },
    idle_timeout: options.lasting ? 0 : 60,
    ...(options.lasting ? { max_lifetime: 0 } : {}),
    connect_timeout: 10,
    connection: {
      application_name: options.name ?? "tern",
      ...(options.asyncCommit ? { synchronous_commit: "off" } : {}),
    },
    // Notices (e.g. "relation already exists, skipping") are not errors; tern logs no SQL.
    onnotice: () => {},
  });
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** SQLSTATE of a PostgreSQL error, or undefined. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A deadlock or serialization failure: the whole transaction may simply run again. */
export function isRetryable(err: unknown): boolean {
  const s = sqlState(err);
  return s === "40P01" || s === "40001";
}

/**
 * PostgreSQL's errors as callers recognise them: a full disk (53100, 53200 out of memory is
 * not) reads "database or disk is full", as SQLite's does (app/smtp_backend.ts answers 452).
 */
export function storeError(err: unknown): unknown {
  const s = sqlState(err);
  if (s === "53100") {
    const e = new Error(`database or disk is full (PostgreSQL: ${(err as Error).message})`, {
      cause: err,
    });
    (e as Error & { code?: string }).code = s;
    return e;
  }
  return err;
}

/** bytea crosses as base64 text in both directions (see the file comment). */
export function fromBase64(text: string | null): Uint8Array | null {
  if (text === null) return null;
  const b = Buffer.from(text, "base64");
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}
