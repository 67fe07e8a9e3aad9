// IMAP string forms for FETCH data (RFC 3501 §4.3): NIL, quoted strings and literals, built as
// pieces so message bytes reach the wire without a round trip through JavaScript strings.

/** A chunk of response: strings are ASCII protocol text, byte arrays are sent as they are. */
export type Piece = string | Uint8Array;

const encoder = new TextEncoder();
const BACKSLASH = 92;
const DQUOTE = 34;

/** True when the bytes fit a quoted string: 7-bit TEXT-CHARs only (no NUL, CR or LF). */
function quotable(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0 || c === 10 || c === 13 || c > 0x7f) return false;
  }
  return true;
}

/**
 * Bytes as an IMAP string: quoted (escaping `"` and `\`, RFC 3501 §9 quoted-specials) when they
 * are 7-bit without CR/LF/NUL, otherwise a literal `{n}\r\n` followed by the bytes untouched.
 */
export function imapStringBytes(b: Uint8Array): Piece {
  if (quotable(b)) {
    let s = '"';
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      if (c === DQUOTE || c === BACKSLASH) s += "\\";
      s += String.fromCharCode(c);
    }
    return s + '"';
  }
  const head = encoder.encode(`{${b.length}}\r\n`);
  const out = new Uint8Array(head.length + b.length);
  out.set(head);
  out.set(b, head.length);
  return out;
}

/** A string (UTF-8 on the wire) as NIL, quoted or literal. */
export function imapString(value: string | null | undefined): Piece {
  if (value === null || value === undefined) return "NIL";
  return imapStringBytes(encoder.encode(value));
}

/** Concatenates pieces into one byte array (strings as UTF-8). */
export function concatPieces(pieces: readonly Piece[]): Uint8Array {
  const parts = pieces.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Accumulates pieces, merging adjacent strings so responses stay few and large. */
export class PieceList {
  readonly pieces: Piece[] = [];

  push(...items: Piece[]): this {
    for (const p of items) {
      const last = this.pieces.length - 1;
      if (typeof p === "string" && last >= 0 && typeof this.pieces[last] === "string") {
        this.pieces[last] += p;
      } else if (typeof p !== "string" || p.length > 0) this.pieces.push(p);
    }
    return this;
  }
}
