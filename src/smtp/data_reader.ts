// Reads the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): dot-unstuffing, a size cap that stops buffering
// without stopping the read, and strict line endings. Only <CRLF>.<CRLF> ends the data, and a
// message with a bare CR or LF is refused afterwards, so no other end marker can smuggle a second
// message past the relay.

export interface DataSource {
  readChunk(): Promise<Uint8Array | null>;
  unread(bytes: Uint8Array): void;
}

export interface DataResult {
  /** The unstuffed message; empty when it was too large. */
  message: Uint8Array;
  /** Bytes seen after unstuffing, including what was not kept. */
  size: number;
  tooLarge: boolean;
  /** A line ended in LF without CR, or a CR appeared without LF. */
  badLineEnding: boolean;
  longLine: boolean;
}

const CR = 13;
const LF = 10;
const DOT = 46;

/** Null when the connection ends before the end-of-data line. */
export async function readData(
  source: DataSource,
  limits: { maxBytes: number; maxLineBytes: number },
): Promise<DataResult | null> {
  const parts: Uint8Array[] = [];
  let size = 0;
  let tooLarge = false;
  let badLineEnding = false;
  let longLine = false;
  let prevCrlf = true;
  let carry: Uint8Array | null = null;
  /** The current line already overflowed the line limit and was dropped. */
  let overflowing = false;

  const emit = (bytes: Uint8Array) => {
    size += bytes.length;
    if (tooLarge) return;
    if (size > limits.maxBytes) {
      tooLarge = true;
      parts.length = 0;
      return;
    }
    parts.push(bytes);
  };

  while (true) {
    const chunk = await source.readChunk();
    if (chunk === null) return null;
    let buf = chunk;
    if (carry) {
      buf = new Uint8Array(carry.length + chunk.length);
      buf.set(carry);
      buf.set(chunk, carry.length);
      carry = null;
    }
    let pos = 0;
    while (pos < buf.length) {
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) {
        const rest = buf.subarray(pos);
        if (rest.length > limits.maxLineBytes) {
          // Keep only the last byte (a possible CR before the coming LF).
          longLine = true;
          overflowing = true;
          emit(rest.subarray(0, rest.length - 1));
          carry = rest.slice(rest.length - 1);
        } else {
          carry = rest.slice();
        }
        break;
      }
      const crlf = lf > pos && buf[lf - 1] === CR;
      const contentEnd = crlf ? lf - 1 : lf;
      if (!crlf) badLineEnding = true;
      const cr = buf.indexOf(CR, pos);
      if (cr >= 0 && cr < contentEnd) badLineEnding = true;
      if (contentEnd - pos > limits.maxLineBytes) longLine = true;
      if (
        prevCrlf && crlf && !overflowing && contentEnd - pos === 1 && buf[pos] === DOT
      ) {
        if (lf + 1 < buf.length) source.unread(buf.slice(lf + 1));
        return {
          message: concat(parts, tooLarge ? 0 : size),
          size,
          tooLarge,
          badLineEnding,
          longLine,
        };
      }
      const stuffed = !overflowing && buf[pos] === DOT;
      emit(buf.subarray(stuffed ? pos + 1 : pos, lf + 1));
      prevCrlf = crlf;
      overflowing = false;
      pos = lf + 1;
    }
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
