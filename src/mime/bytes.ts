// Byte-level helpers shared by the MIME parsers: line scanning and tolerant text decoding.

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HT = 9;

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/** Offset just after the line that starts at `pos` (past its LF), or `bytes.length`. */
export function nextLine(bytes: Uint8Array, pos: number): number {
  const nl = bytes.indexOf(LF, pos);
  return nl < 0 ? bytes.length : nl + 1;
}

/** End of the line's content: before its CRLF or LF. `next` is the result of `nextLine`. */
export function lineContentEnd(bytes: Uint8Array, pos: number, next: number): number {
  let e = next;
  if (e > pos && bytes[e - 1] === LF) e--;
  if (e > pos && bytes[e - 1] === CR) e--;
  return e;
}

function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] > 0x7f) return false;
  return true;
}

/** Header text: ASCII as is, otherwise UTF-8 (RFC 6532), falling back to Latin-1 for junk. */
export function decodeHeaderText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start < 256 && isAscii(bytes, start, end)) {
    return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  const view = bytes.subarray(start, end);
  try {
    return utf8Fatal.decode(view);
  } catch {
    return latin1.decode(view); // not UTF-8: keep one character per byte
  }
}

/** Decodes bytes in a named charset; unknown charsets and invalid UTF-8 degrade, never throw. */
export function decodeCharset(bytes: Uint8Array, charset: string | undefined): string {
  const label = (charset ?? "utf-8").trim().toLowerCase();
  if (label === "us-ascii" || label === "ascii" || label === "utf-8" || label === "utf8") {
    try {
      return utf8Fatal.decode(bytes);
    } catch {
      return new TextDecoder("utf-8").decode(bytes); // replacement characters for bad sequences
    }
  }
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return latin1.decode(bytes); // unknown label: TextDecoder throws RangeError
  }
}

export function isWsp(b: number): boolean {
  return b === SP || b === HT;
}

/** Concatenates byte arrays. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
