// The tolerant Content-Transfer-Encoding decoders of transfer_encoding.ts, fed in pieces: the same
// output as decodeBase64 / decodeQuotedPrintable on the whole body, whatever the split, so that
// IMAP BINARY can decode a large part from ranged reads without holding it.

import { decodeQuotedPrintable } from "./transfer_encoding.ts";

export interface PieceDecoder {
  /** Decoded bytes of this piece (may be empty; may hold bytes of earlier pieces). */
  push(bytes: Uint8Array): Uint8Array;
  /** The rest, at the end of the body. */
  end(): Uint8Array;
}

const B64 = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}
const EMPTY = new Uint8Array(0);

/** decodeBase64: bytes outside the alphabet are skipped, "=" ends the data. */
class Base64Pieces implements PieceDecoder {
  #acc = 0;
  #bits = 0;
  #stopped = false;

  push(input: Uint8Array): Uint8Array {
    if (this.#stopped) return EMPTY;
    const out = new Uint8Array(Math.floor((input.length * 3) / 4) + 3);
    let n = 0, acc = this.#acc, bits = this.#bits;
    for (let i = 0; i < input.length; i++) {
      const c = input[i];
      if (c === 0x3d) {
        this.#stopped = true;
        break;
      }
      const v = B64[c];
      if (v < 0) continue;
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[n++] = (acc >> bits) & 0xff;
      }
    }
    this.#acc = acc;
    this.#bits = bits;
    return out.subarray(0, n);
  }

  end(): Uint8Array {
    return EMPTY;
  }
}

const LF = 10, CR = 13, SP = 32, HT = 9, EQ = 61;
/** A line longer than this is cut at a point where no escape or blank run spans the cut. */
const LONG_LINE = 64 * 1024;

/**
 * decodeQuotedPrintable looks ahead only within a line, so complete lines decode alone; the
 * unfinished last line is carried (a very long one is cut where nothing spans the cut).
 */
class QuotedPrintablePieces implements PieceDecoder {
  #carry: Uint8Array = EMPTY;

  push(input: Uint8Array): Uint8Array {
    let data = input;
    if (this.#carry.length) {
      data = new Uint8Array(this.#carry.length + input.length);
      data.set(this.#carry);
      data.set(input, this.#carry.length);
    }
    let cut = data.lastIndexOf(LF) + 1;
    if (data.length - cut > LONG_LINE) cut = Math.max(cut, safeCut(data, cut));
    this.#carry = data.slice(cut);
    return cut > 0 ? decodeQuotedPrintable(data.subarray(0, cut)) : EMPTY;
  }

  end(): Uint8Array {
    const rest = this.#carry;
    this.#carry = EMPTY;
    return decodeQuotedPrintable(rest);
  }
}

/**
 * The last offset after `from` where the data may be split: the byte before it is no blank,
 * "=" or CR, and no "=" two before it, so no escape, soft break or blank run crosses it; `from`
 * when there is none.
 */
function safeCut(b: Uint8Array, from: number): number {
  for (let p = b.length; p > from + 2; p--) {
    const c = b[p - 1];
    if (c === SP || c === HT || c === EQ || c === CR || b[p - 2] === EQ) continue;
    return p;
  }
  return from;
}

class Identity implements PieceDecoder {
  push(bytes: Uint8Array): Uint8Array {
    return bytes;
  }
  end(): Uint8Array {
    return EMPTY;
  }
}

/** A piecewise decoder for base64, quoted-printable or an identity encoding; else undefined. */
export function tolerantDecoder(cte: string): PieceDecoder | undefined {
  switch (cte) {
    case "7bit":
    case "8bit":
    case "binary":
      return new Identity();
    case "base64":
      return new Base64Pieces();
    case "quoted-printable":
      return new QuotedPrintablePieces();
  }
  return undefined;
}
