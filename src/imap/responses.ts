// Response vocabulary shared by the command handlers: the NO/BAD error, and strings in the
// forms IMAP needs (quoted when safe, a literal otherwise, NIL for null).

import { encodeMailbox } from "./encode.ts";

export type Piece = string | Uint8Array;

/** Thrown by a handler: becomes `<tag> NO [code] message` (or BAD). */
export class ImapNo extends Error {
  constructor(message: string, readonly code?: string, readonly bad = false) {
    super(message);
  }
}

export const bad = (message: string) => new ImapNo(message, undefined, true);

const enc = new TextEncoder();

/** A string as quoted (ASCII without CR/LF) or as a literal. */
export function str(s: string | null | undefined): string {
  if (s === null || s === undefined) return "NIL";
  if (/^[\x20-\x7e]*$/.test(s) && s.length < 1024) {
    return `"${s.replace(/[\\"]/g, (c) => "\\" + c)}"`;
  }
  return `{${enc.encode(s).length}}\r\n${s}`;
}

/** A mailbox name on the wire: modified UTF-7, quoted. */
export function mailboxName(name: string): string {
  return str(encodeMailbox(name));
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** INTERNALDATE form, in UTC: "17-Jul-1996 02:44:25 +0000". */
export function imapDate(ms: number): string {
  const d = new Date(ms);
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${
    p2(d.getUTCHours())
  }:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`;
}
