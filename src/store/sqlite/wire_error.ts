// Errors crossing between the store threads as plain data, rebuilt on the other side with what
// callers look at: RelayError codes, MigrationError, and SQLite's codes and messages (a full disk
// is recognised by "database or disk is full" / SQLITE_FULL, see app/smtp_backend.ts).

import { type ErrorCode, RelayError } from "../../errors.ts";
import { MigrationError } from "./db.ts";

export interface WireError {
  name: string;
  message: string;
  relayCode?: ErrorCode;
  /** node:sqlite: "ERR_SQLITE_ERROR"; node:fs: "ENOSPC", … */
  code?: string;
  /** SQLite's result code (13 = SQLITE_FULL) and its text. */
  errcode?: number;
  errstr?: string;
}

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err) };
  const e = err as Error & { code?: unknown; errcode?: unknown; errstr?: unknown };
  return {
    name: e.name,
    message: e.message,
    relayCode: err instanceof RelayError ? err.code : undefined,
    code: typeof e.code === "string" ? e.code : undefined,
    errcode: typeof e.errcode === "number" ? e.errcode : undefined,
    errstr: typeof e.errstr === "string" ? e.errstr : undefined,
  };
}

export function fromWire(w: WireError): Error {
  if (w.relayCode) return new RelayError(w.relayCode, w.message);
  if (w.name === "MigrationError") return new MigrationError(w.message);
  const err = new Error(w.message) as Error & Record<string, unknown>;
  err.name = w.name;
  if (w.code !== undefined) err.code = w.code;
  if (w.errcode !== undefined) err.errcode = w.errcode;
  if (w.errstr !== undefined) err.errstr = w.errstr;
  return err;
}
