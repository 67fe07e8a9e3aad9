// Reads the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): dot-unstuffing, a size cap that stops passing
// bytes on without stopping the read, and strict line endings. Only <CRLF>.<CRLF> ends the data,
// and a message with a bare CR or LF is refused afterwards, so no other end marker can smuggle a
// second message past the relay.
//
// The message is never held here: the unstuffed bytes of each chunk read go to the sink, and the
// next chunk is read only once the sink took them (back-pressure). At most one line of
// `maxLineBytes` is carried between chunks; the line that completes it goes to the sink on its
// own, the rest of the chunk as views of the chunk (copied only where a stuffed dot splits it).

import { BYTE_TEXT_MIN, byteText, countChar } from "../mime/mod.ts";

export interface DataSource {
  readChunk(): Promise<Uint8Array | null>;
  unread(bytes: Uint8Array): void;
}

/** Where the unstuffed message goes, in order. */
export interface DataSink {
  /**
   * The next bytes (a view that is only valid until the promise settles); `text`, when given, is
   * `bytes` as byteText gives it (the reader had it), for readers that search them as text.
   */
  write(bytes: Uint8Array, text?: string): Promise<void>;
  /** The message went over `maxBytes`: nothing more is written (the read goes on to the end). */
  overflow(): Promise<void>;
}

export interface DataResult {
  /** Bytes seen after unstuffing, including what was not passed on. */
  size: number;
  tooLarge: boolean;
  /** A line ended in LF without CR, or a CR appeared without LF. */
  badLineEnding: boolean;
  longLine: boolean;
}

const CR = 13;
const LF = 10;
const DOT = 46;
const NO_BYTES = new Uint8Array(0);
/** Equally long lines worth confirming with a count (it costs about what a few searches do). */
const GUESS_MIN = 8;

/** Null when the connection ends before the end-of-data line. */
export async function readData(
  source: DataSource,
  limits: { maxBytes: number; maxLineBytes: number },
  sink: DataSink,
): Promise<DataResult | null> {
  let size = 0;
  let tooLarge = false;
  let badLineEnding = false;
  let longLine = false;
  let prevCrlf = true;
  let carry: Uint8Array | null = null;
  /** The current line already overflowed the line limit and was dropped. */
  let overflowing = false;
  // What the current chunk passes on: runs of `buf`, merged when they touch.
  let runs: Uint8Array[] = [];
  let runStart = -1;
  let runEnd = -1;
  let buf: Uint8Array = NO_BYTES;
  /** `buf` as text for the line searches (byteText), when `buf` is long enough for it to pay. */
  let text: string | null = null;

  const emit = (start: number, end: number) => {
    size += end - start;
    if (tooLarge) return;
    if (size > limits.maxBytes) {
      tooLarge = true;
      runs = [];
      runStart = -1;
      return;
    }
    if (start === runEnd) runEnd = end;
    else {
      if (runStart >= 0) runs.push(buf.subarray(runStart, runEnd));
      runStart = start;
      runEnd = end;
    }
  };

  /** Hands what this chunk passes on to the sink (one write, copied only when dots split it). */
  const flush = async () => {
    let out: Uint8Array;
    let outText: string | undefined;
    if (runs.length === 0 && runStart >= 0) {
      // One run of `buf`: its text is a slice of the text of `buf`, when there is one.
      out = buf.subarray(runStart, runEnd);
      if (text !== null) outText = text.slice(runStart, runEnd);
    } else {
      if (runStart >= 0) runs.push(buf.subarray(runStart, runEnd));
      out = runs.length === 1 ? runs[0] : concat(runs);
    }
    runStart = runEnd = -1;
    runs = [];
    if (tooLarge) {
      if (!overflowSaid) {
        overflowSaid = true;
        await sink.overflow();
      }
      return;
    }
    if (out.length > 0) await sink.write(out, outText);
  };
  let overflowSaid = false;
  /** Whether runs of equally long lines are still guessed (off for good after a wrong guess). */
  let guessLines = true;

  while (true) {
    const chunk = await source.readChunk();
    if (chunk === null) return null;
    buf = chunk;
    text = null;
    /** The chunk's bytes after the line that completes the carried one. */
    let rest: Uint8Array | null = null;
    if (carry) {
      // Only the line the carry begins is joined (and handed on alone): joining the whole chunk
      // would copy every byte of a big message once more, as nearly every read ends mid-line.
      const lf = chunk.indexOf(LF);
      const cut = lf < 0 ? chunk.length : lf + 1;
      buf = concat([carry, chunk.subarray(0, cut)]);
      if (cut < chunk.length) rest = chunk.subarray(cut);
      carry = null;
    } else if (buf.length >= BYTE_TEXT_MIN) text = byteText(buf);
    let pos = 0;
    while (true) {
      if (pos >= buf.length) {
        if (!rest) break;
        await flush();
        buf = rest;
        text = buf.length >= BYTE_TEXT_MIN ? byteText(buf) : null;
        rest = null;
        pos = 0;
      }
      if (text !== null && !overflowing) {
        // Ordinary lines (CRLF, not starting with ".", within the line limit) only extend what
        // is passed on: a tight loop takes them; the first other line, or a line not complete
        // in `buf`, goes the general way below.
        let p = pos;
        let lines = 0;
        /** Where the line that the loop looks at begins. */
        let start = p;
        while (true) {
          const nl = text.indexOf("\n", p);
          if (
            nl <= p || text.charCodeAt(nl - 1) !== CR || text.charCodeAt(p) === DOT ||
            nl - 1 - p > limits.maxLineBytes
          ) break;
          lines++;
          p = nl + 1;
          if (guessLines) {
            // The lines that follow may be as long as this one (base64 bodies: all but the last
            // of a part): their ends, CRLF, and their first bytes are looked at where they
            // would be, and one count of the LFs over them confirms that no line ends between.
            // Lines that pass are exactly the lines the search above would pass.
            const len = p - start;
            let q = p, k = 0;
            while (
              q + len <= text.length && text.charCodeAt(q + len - 1) === LF &&
              text.charCodeAt(q + len - 2) === CR && text.charCodeAt(q) !== DOT
            ) {
              q += len;
              k++;
            }
            if (k >= GUESS_MIN) {
              if (countChar(text, "\n", p, q) === k) {
                lines += k;
                p = q;
              } else guessLines = false; // shorter lines line up: searched line by line now
            }
          }
          start = p;
        }
        if (p > pos) {
          // Each of these lines ends in CRLF: one CR per line, any more is a stray CR inside
          // one (counted once for the run, not searched for per line). Such a line reads like
          // any other otherwise (its length, its dot and its end were checked), so the run
          // stays one piece.
          if (!badLineEnding && countChar(text, "\r", pos, p) !== lines) badLineEnding = true;
          emit(pos, p);
          prevCrlf = true;
          pos = p;
          continue;
        }
      }
      const lf = text !== null ? text.indexOf("\n", pos) : buf.indexOf(LF, pos);
      if (lf < 0) {
        const partial = buf.subarray(pos);
        // A CR that ends the chunk may be the line's own CR (its LF comes next): it does not
        // count against the line limit yet, or a line exactly at the limit would be refused.
        const content = partial.length - (partial[partial.length - 1] === CR ? 1 : 0);
        if (content > limits.maxLineBytes) {
          // Keep only the last byte (a possible CR before the coming LF).
          longLine = true;
          overflowing = true;
          emit(pos, buf.length - 1);
          carry = buf.slice(buf.length - 1);
        } else {
          carry = partial.slice();
        }
        break;
      }
      const crlf = lf > pos && buf[lf - 1] === CR;
      const contentEnd = crlf ? lf - 1 : lf;
      if (!crlf) badLineEnding = true;
      else if (!badLineEnding) {
        // Bounded: the line's own CR stops the search. Once a bad ending was seen there is
        // nothing more to find (a search over the whole chunk per line would be quadratic).
        const cr = text !== null ? text.indexOf("\r", pos) : buf.indexOf(CR, pos);
        if (cr < contentEnd) badLineEnding = true;
      }
      if (contentEnd - pos > limits.maxLineBytes) longLine = true;
      if (
        prevCrlf && crlf && !overflowing && contentEnd - pos === 1 && buf[pos] === DOT
      ) {
        await flush();
        // A copy: a view would keep the whole socket chunk behind it alive.
        if (rest) source.unread(rest.slice());
        if (lf + 1 < buf.length) source.unread(buf.slice(lf + 1));
        return { size, tooLarge, badLineEnding, longLine };
      }
      const stuffed = !overflowing && buf[pos] === DOT;
      emit(stuffed ? pos + 1 : pos, lf + 1);
      prevCrlf = crlf;
      overflowing = false;
      pos = lf + 1;
    }
    await flush();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
