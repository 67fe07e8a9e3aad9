// A message on its way to another relay, read from the store in pieces rather than held whole:
// the DKIM-Signature field made for this attempt, then the stored message as ranged reads of its
// body (a large queued message stays a file; memory per delivery is one piece). The same message
// can be read again from the start: /mxdeliv is asked once per recipient after a refusal, and
// SMTP follows when /mxdeliv fails.

/** Bytes read from the store per piece. */
export const PIECE = 64 * 1024;

export interface OutgoingMessage {
  readonly size: number;
  /** The whole message from its first byte, in pieces of about PIECE bytes (stuffing adds a few). */
  pieces(): AsyncIterable<Uint8Array>;
}

/** What the store's BodyReader gives (ranged reads). */
export interface RangedBody {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A message held in memory (tests, one-off sends). */
export function bytesMessage(bytes: Uint8Array): OutgoingMessage {
  return {
    size: bytes.length,
    async *pieces() {
      for (let at = 0; at < bytes.length; at += PIECE) yield bytes.subarray(at, at + PIECE);
    },
  };
}

/** `prefix` (a header field added for sending), then the stored body read range by range. */
export function storedMessage(prefix: Uint8Array, body: RangedBody): OutgoingMessage {
  return {
    size: prefix.length + body.size,
    async *pieces() {
      if (prefix.length) yield prefix;
      for (let at = 0; at < body.size;) {
        const piece = await body.read(at, Math.min(PIECE, body.size - at));
        // A body that shrank under us would otherwise loop forever or send a short message
        // whose announced size (SIZE=, Content-Length) is wrong.
        if (piece.length === 0) throw new Error(`stored body ended at ${at} of ${body.size} bytes`);
        at += piece.length;
        yield piece;
      }
    },
  };
}

/** The message whole (for small things such as a bounce's header block); at most `max` bytes. */
export async function readPrefix(m: OutgoingMessage, max: number): Promise<Uint8Array> {
  const out = new Uint8Array(Math.min(max, m.size));
  let at = 0;
  for await (const piece of m.pieces()) {
    const take = Math.min(piece.length, out.length - at);
    out.set(piece.subarray(0, take), at);
    at += take;
    if (at >= out.length) break;
  }
  return out.subarray(0, at);
}

/**
 * RFC 5321 §4.5.2 over pieces: a "." at the start of a line is doubled, and the data ends with
 * CRLF "." CRLF (a CRLF is added when the message does not end with one).
 */
export class DotStuffer {
  /** The previous byte was LF (true at the start: the first line starts there). */
  #lineStart = true;
  #lastTwo = 0;
  #seen = 0;

  push(piece: Uint8Array): Uint8Array {
    let dots = 0;
    for (let i = 0; i < piece.length; i++) {
      if (piece[i] === 0x2e && (i === 0 ? this.#lineStart : piece[i - 1] === 0x0a)) dots++;
    }
    const out = dots ? new Uint8Array(piece.length + dots) : piece;
    if (dots) {
      let o = 0;
      for (let i = 0; i < piece.length; i++) {
        if (piece[i] === 0x2e && (i === 0 ? this.#lineStart : piece[i - 1] === 0x0a)) {
          out[o++] = 0x2e;
        }
        out[o++] = piece[i];
      }
    }
    if (piece.length) {
      this.#lineStart = piece[piece.length - 1] === 0x0a;
      this.#lastTwo = piece.length >= 2
        ? (piece[piece.length - 2] << 8) | piece[piece.length - 1]
        : ((this.#lastTwo & 0xff) << 8) | piece[0];
      this.#seen += piece.length;
    }
    return out;
  }

  /** The end of the data: "." CRLF, after a CRLF when the message lacked one. */
  end(): Uint8Array {
    const endsWithCrlf = this.#seen >= 2 && this.#lastTwo === 0x0d0a;
    return new TextEncoder().encode(endsWithCrlf ? ".\r\n" : "\r\n.\r\n");
  }
}

/**
 * The message as SMTP DATA carries it, without the final "." line: dot-stuffed, ending in CRLF.
 * The reference relay's filtermail posts /mxdeliv bodies in this form and reads them so
 * (chatmail-relay.md §5.5, §5.6). A first read of the message counts the bytes, so that the
 * request can announce its length.
 */
export async function stuffedData(m: OutgoingMessage): Promise<OutgoingMessage> {
  const counter = new DotStuffer();
  let size = 0;
  for await (const piece of m.pieces()) size += counter.push(piece).length;
  size += unterminated(counter).length;
  return {
    size,
    async *pieces() {
      const stuffer = new DotStuffer();
      for await (const piece of m.pieces()) yield stuffer.push(piece);
      const tail = unterminated(stuffer);
      if (tail.length) yield tail;
    },
  };
}

/** The end of the data without its "." line: a CRLF when the message lacked one, else nothing. */
function unterminated(stuffer: DotStuffer): Uint8Array {
  const end = stuffer.end();
  return end.subarray(0, end.length - 3);
}
