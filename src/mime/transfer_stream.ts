// Streaming Content-Transfer-Encoding decoders (RFC 2045 §6) that also tell whether the input was
// in the one canonical form every decoder agrees on. The tolerant whole-buffer decoders in
// transfer_encoding.ts skip junk; readers differ on junk, so the gate refuses it instead:
//   base64: only the alphabet, line breaks and blanks; "=" only as the final padding.
//   quoted-printable: "=" only before two upper-case hex digits or a line break (soft break);
//   no blank right before a line break (decoders disagree on dropping it).

export interface StreamDecoder {
  /** Decoded bytes of this piece (may be empty; may hold bytes of earlier pieces). */
  push(bytes: Uint8Array): Uint8Array;
  /** The rest, at the end of the body. */
  end(): Uint8Array;
  /** False once the input left the canonical form. */
  readonly canonical: boolean;
}

const B64 = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}
const EMPTY = new Uint8Array(0);

function isBreakOrBlank(c: number): boolean {
  return c === 13 || c === 10 || c === 32 || c === 9;
}

class Base64Decoder implements StreamDecoder {
  canonical = true;
  #acc = 0;
  #n = 0;
  #pads = 0;

  push(bytes: Uint8Array): Uint8Array {
    const out = new Uint8Array(Math.floor((bytes.length + 4) * 3 / 4));
    let o = 0;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if (isBreakOrBlank(c)) continue;
      if (c === 61) { // "="
        this.#pads++;
        if (this.#pads > 2) this.canonical = false;
        continue;
      }
      const v = B64[c];
      if (v < 0 || this.#pads > 0) {
        this.canonical = false; // junk, or data after padding
        continue;
      }
      this.#acc = (this.#acc << 6) | v;
      if (++this.#n === 4) {
        out[o++] = (this.#acc >> 16) & 0xff;
        out[o++] = (this.#acc >> 8) & 0xff;
        out[o++] = this.#acc & 0xff;
        this.#acc = 0;
        this.#n = 0;
      }
    }
    return out.subarray(0, o);
  }

  end(): Uint8Array {
    const n = this.#n;
    if ((n + this.#pads) % 4 !== 0 || n === 1 || (n === 0 && this.#pads > 0)) {
      this.canonical = false;
    }
    if (n === 2) return new Uint8Array([(this.#acc >> 4) & 0xff]);
    if (n === 3) return new Uint8Array([(this.#acc >> 10) & 0xff, (this.#acc >> 2) & 0xff]);
    return EMPTY;
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

class QuotedPrintableDecoder implements StreamDecoder {
  canonical = true;
  /** Bytes of an escape or a run of blanks not yet decided. */
  #held: number[] = [];

  push(bytes: Uint8Array): Uint8Array {
    const out: number[] = [];
    for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i], out);
    return new Uint8Array(out);
  }

  #byte(c: number, out: number[]) {
    const h = this.#held;
    if (h.length > 0 && h[0] === 61) { // "=" escape in progress
      h.push(c);
      if (h.length === 2 && c === 10) return void (h.length = 0); // "=\n"
      if (h.length === 2 && c === 13) return; // maybe "=\r\n"
      if (h.length === 3 && h[1] === 13) {
        if (c !== 10) this.canonical = false;
        return void (h.length = 0);
      }
      if (h.length === 2 && hex(c) < 0) {
        this.canonical = false;
        h.length = 0;
        return;
      }
      if (h.length === 3) {
        const v = hex(h[1]) * 16 + hex(c);
        if (hex(c) < 0) this.canonical = false;
        else out.push(v);
        h.length = 0;
      }
      return;
    }
    if (c === 32 || c === 9) return void h.push(c); // blanks wait for what follows
    if ((c === 13 || c === 10) && h.length > 0) this.canonical = false; // blank before a break
    for (const b of h) out.push(b);
    h.length = 0;
    if (c === 61) h.push(c);
    else out.push(c);
  }

  end(): Uint8Array {
    const h = this.#held;
    if (h.length > 0 && h[0] === 61) this.canonical = false;
    const rest = h[0] === 61 ? EMPTY : new Uint8Array(h);
    h.length = 0;
    return rest;
  }
}

class IdentityDecoder implements StreamDecoder {
  readonly canonical = true;
  push(bytes: Uint8Array): Uint8Array {
    return bytes;
  }
  end(): Uint8Array {
    return EMPTY;
  }
}

/** A decoder for a (lowercased) transfer encoding; undefined for one that is not in RFC 2045. */
export function streamDecoder(cte: string): StreamDecoder | undefined {
  switch (cte) {
    case "7bit":
    case "8bit":
    case "binary":
      return new IdentityDecoder();
    case "base64":
      return new Base64Decoder();
    case "quoted-printable":
      return new QuotedPrintableDecoder();
  }
  return undefined;
}
