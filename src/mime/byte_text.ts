// Bytes as a string with one character per byte at the same index, for searching. String
// searches run at memchr speed with little call overhead, where Uint8Array.prototype.indexOf costs
// more per call than a short line takes to scan (and a JS byte loop is slower still): the DATA
// reader, the MIME stream parser and the armor check find their line ends this way.

const UTF8 = new TextDecoder();

/** Below this, decoding costs more than the searches it saves. */
export const BYTE_TEXT_MIN = 512;

/**
 * `bytes` as a string where index i holds byte i when it is ASCII (and U+FFFD otherwise), or
 * null when no such string comes cheaply. UTF-8 decoding is the fast path for ASCII; each segment
 * it decodes yields at most one character per byte, and exactly one only for an ASCII byte or a
 * lone invalid byte (U+FFFD). So an equal length means every index maps to itself (a valid
 * multi-byte character, or a leading BOM, which is dropped, makes the string shorter: null).
 */
export function byteText(bytes: Uint8Array): string | null {
  const text = UTF8.decode(bytes);
  return text.length === bytes.length ? text : null;
}

const LF_ALL = /\n/g;
const CR_ALL = /\r/g;

/**
 * How many times `char` (LF or CR) occurs in text[start, end). A global match of a one-char
 * pattern runs natively in one call (V8's atom search), where a search per occurrence costs a
 * call per line: about half the time on base64 lines, for a small array of references to one
 * string.
 */
export function countChar(text: string, char: "\n" | "\r", start: number, end: number): number {
  if (end <= start) return 0;
  const range = start === 0 && end === text.length ? text : text.slice(start, end);
  return range.match(char === "\n" ? LF_ALL : CR_ALL)?.length ?? 0;
}
