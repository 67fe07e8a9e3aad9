// The receiving half of RFC 5321 §4.5.2 over pieces of a stream: a "." that starts a line with
// more on it is dropped. /mxdeliv bodies come in this form from the reference relay (its
// filtermail posts the DATA as SMTP carries it, without the final "." line).

const DOT = 0x2e;
const CR = 0x0d;
const LF = 0x0a;
const EMPTY = new Uint8Array(0);

export class DotUnstuffer {
  /** The next byte starts a line. */
  #lineStart = true;
  /** A "." that started a line ended the last piece: what follows decides whether it stays. */
  #heldDot = false;

  /** The unstuffed bytes of the next piece (the piece itself when nothing changes). */
  push(piece: Uint8Array): Uint8Array {
    if (piece.length === 0) return EMPTY;
    if (!this.#heldDot && !this.#hasLineDot(piece)) {
      this.#lineStart = piece[piece.length - 1] === LF;
      return piece;
    }
    const out = new Uint8Array(piece.length + 1);
    let o = 0;
    if (this.#heldDot) {
      this.#heldDot = false;
      // A line of just "." is no stuffing (a stuffed body never has one): it stays.
      if (piece[0] === CR || piece[0] === LF) out[o++] = DOT;
    }
    for (let i = 0; i < piece.length; i++) {
      const b = piece[i];
      if (b === DOT && this.#lineStart) {
        this.#lineStart = false;
        if (i + 1 === piece.length) this.#heldDot = true;
        else if (piece[i + 1] === CR || piece[i + 1] === LF) out[o++] = DOT;
        continue;
      }
      out[o++] = b;
      this.#lineStart = b === LF;
    }
    return out.subarray(0, o);
  }

  /** What is left at the end of the stream: a held "." that ended it. */
  end(): Uint8Array {
    if (!this.#heldDot) return EMPTY;
    this.#heldDot = false;
    return Uint8Array.of(DOT);
  }

  #hasLineDot(piece: Uint8Array): boolean {
    if (this.#lineStart && piece[0] === DOT) return true;
    for (let i = piece.indexOf(LF); i >= 0 && i + 1 < piece.length; i = piece.indexOf(LF, i + 1)) {
      if (piece[i + 1] === DOT) return true;
    }
    return false;
  }
}
