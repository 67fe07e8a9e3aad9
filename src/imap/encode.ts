// Response encoding: strings as atoms, quoted strings or literals (RFC 9051 §4.3), mailbox names
// in modified UTF-7 (RFC 3501 §5.1.3), flag lists, INTERNALDATE, and a builder that joins the
// text and byte pieces of a response into one buffer.

/** A piece of a response: text, or bytes sent verbatim (literal contents). */
export type Piece = string | Uint8Array;

const enc = new TextEncoder();

// QUOTED-CHAR is 7-bit TEXT-CHAR (no NUL, CR, LF); longer strings go as literals to keep lines
// within client line limits.
// deno-lint-ignore no-control-regex -- the CTLs allowed in quoted strings are intended
const QUOTABLE = /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/;
const MAX_QUOTED = 1000;
// ASTRING-CHAR: ATOM-CHAR plus "]" (RFC 9051 §9).
// deno-lint-ignore no-control-regex -- CTLs are atom-specials
const ASTRING_ATOM = /^[^(){ %*"\\\x00-\x1f\x7f-\uffff]+$/;

/** `"..."` with `"` and `\` escaped, or null when the text cannot be quoted (CR, LF, 8-bit). */
export function quoted(s: string): string | null {
  if (s.length > MAX_QUOTED || !QUOTABLE.test(s)) return null;
  return `"${s.replace(/["\\]/g, (c) => "\\" + c)}"`;
}

/** A synchronizing literal, `{n}\r\n` then the bytes; `~{n}` (literal8) when binary is set. */
export function literal(data: string | Uint8Array, binary = false): Uint8Array {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  const head = enc.encode(`${binary ? "~" : ""}{${bytes.length}}\r\n`);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

function bytesQuotable(b: Uint8Array): boolean {
  if (b.length > MAX_QUOTED) return false;
  for (const c of b) if (c === 0 || c === 10 || c === 13 || c > 0x7f) return false;
  return true;
}

/** A string: quoted when possible, otherwise a literal. */
export function stringOrLiteral(value: string | Uint8Array): Piece {
  if (typeof value === "string") return quoted(value) ?? literal(value);
  if (!bytesQuotable(value)) return literal(value);
  return quoted(new TextDecoder().decode(value))!;
}

/** An astring: a bare atom when safe (never `NIL`, which would read as nil), else a string. */
export function astringOrLiteral(value: string): Piece {
  if (ASTRING_ATOM.test(value) && value.toUpperCase() !== "NIL") return value;
  return stringOrLiteral(value);
}

/** An nstring: `NIL` for null, otherwise a quoted string or literal. */
export function nstring(value: string | Uint8Array | null | undefined): Piece {
  if (value === null || value === undefined) return "NIL";
  return stringOrLiteral(value);
}

// ---- Modified UTF-7 (RFC 3501 §5.1.3) ----

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]));

export class MailboxNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MailboxNameError";
  }
}

/** Unicode → modified UTF-7: printable ASCII as itself (`&` as `&-`), the rest base64 UTF-16. */
export function encodeMailbox(name: string): string {
  let out = "";
  let units: number[] = [];
  const flush = () => {
    if (!units.length) return;
    let bits = 0;
    let acc = 0;
    out += "&";
    for (const u of units) {
      acc = (acc << 16) | u;
      bits += 16;
      while (bits >= 6) {
        bits -= 6;
        out += B64[(acc >>> bits) & 63];
      }
      acc &= (1 << bits) - 1;
    }
    if (bits > 0) out += B64[(acc << (6 - bits)) & 63];
    out += "-";
    units = [];
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? "&-" : name[i];
    } else {
      units.push(c);
    }
  }
  flush();
  return out;
}

/**
 * Modified UTF-7 → Unicode. Strict: only the canonical encoding is accepted (no 8-bit, no
 * encoded printable ASCII, no padding bits, paired surrogates), so one name has one spelling.
 */
export function decodeMailbox(wire: string): string {
  let out = "";
  let i = 0;
  while (i < wire.length) {
    const c = wire.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new MailboxNameError(
        "Mailbox name must be 7-bit modified UTF-7 (RFC 3501 §5.1.3)",
      );
    }
    if (c !== 0x26) {
      out += wire[i++];
      continue;
    }
    const end = wire.indexOf("-", i + 1);
    if (end < 0) throw new MailboxNameError(`Mailbox name has "&" without closing "-"`);
    if (end === i + 1) {
      out += "&";
      i = end + 1;
      continue;
    }
    out += decodeBase64Run(wire.slice(i + 1, end));
    i = end + 1;
    if (wire[i] === "&" && wire[i + 1] !== "-") {
      throw new MailboxNameError("Mailbox name has two adjacent encoded runs");
    }
  }
  return out;
}

function decodeBase64Run(run: string): string {
  const units: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of run) {
    const v = B64_VALUE.get(ch);
    if (v === undefined) throw new MailboxNameError(`Mailbox name has invalid character "${ch}"`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 16) {
      bits -= 16;
      units.push((acc >>> bits) & 0xffff);
      acc &= (1 << bits) - 1;
    }
  }
  if (bits >= 6 || acc !== 0 || units.length === 0) {
    throw new MailboxNameError("Mailbox name has a badly padded modified UTF-7 run");
  }
  for (let k = 0; k < units.length; k++) {
    const u = units[k];
    if (u >= 0x20 && u <= 0x7e) {
      throw new MailboxNameError("Mailbox name encodes printable ASCII in modified UTF-7");
    }
    if (u >= 0xd800 && u <= 0xdbff) {
      const next = units[k + 1];
      if (next === undefined || next < 0xdc00 || next > 0xdfff) {
        throw new MailboxNameError("Mailbox name has an unpaired UTF-16 surrogate");
      }
      k++;
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      throw new MailboxNameError("Mailbox name has an unpaired UTF-16 surrogate");
    }
  }
  // In slices: spreading an unbounded array into arguments overflows the stack (~150 000).
  let out = "";
  for (let i = 0; i < units.length; i += 8192) {
    out += String.fromCharCode.apply(null, units.slice(i, i + 8192));
  }
  return out;
}

/** A mailbox name for a response: mUTF-7, then atom/quoted/literal as needed. */
export function mailboxPiece(name: string): Piece {
  const wire = encodeMailbox(name);
  // INBOX goes bare; other names are always quoted for clients with sloppy atom parsing.
  return wire === "INBOX" ? wire : stringOrLiteral(wire);
}

/** `(\Seen $Label)`. */
export function flagList(flags: Iterable<string>): string {
  return `(${[...flags].join(" ")})`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const two = (n: number) => String(n).padStart(2, "0");

/** INTERNALDATE as a quoted date-time in UTC: `"17-Jul-1996 02:44:25 +0000"` (RFC 9051 §9). */
export function imapDate(ms: number): string {
  const d = new Date(ms);
  return `"${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000"`;
}

/** Collects response pieces and joins them into one buffer. */
export class ResponseBuilder {
  #parts: Uint8Array[] = [];
  #length = 0;

  /** Appends pieces; strings are UTF-8 encoded. */
  push(...pieces: Piece[]): this {
    for (const p of pieces) {
      const b = typeof p === "string" ? enc.encode(p) : p;
      if (b.length === 0) continue;
      this.#parts.push(b);
      this.#length += b.length;
    }
    return this;
  }

  /** Appends pieces then CRLF. */
  line(...pieces: Piece[]): this {
    return this.push(...pieces, "\r\n");
  }

  get length(): number {
    return this.#length;
  }

  build(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}
