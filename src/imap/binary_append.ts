// IMAP literals may not carry NUL (RFC 9051 §4.3), so a part with Content-Transfer-Encoding:
// binary could never be returned by BODY[]. As RFC 3516 §4.3 allows, such parts of a literal8
// APPEND are stored as base64; BINARY[] still returns the original bytes.
//
// The conversion streams: the message passes through on its way to the spool, held back by a
// window of WINDOW bytes so that a part's header can still be rewritten when the MIME reader
// reaches its end and finds the part binary; the part's body is then written base64-encoded
// (76-character lines) as it arrives, and the original bytes resume after it.

import { type LeafBodySink, type MimePart, MimeStreamParser } from "../mime/mod.ts";
import { DEFAULT_MIME_LIMITS } from "../mime/mod.ts";
import type { AppendUpload } from "./backend.ts";

const enc = new TextEncoder();
const CTE_BASE64 = enc.encode("Content-Transfer-Encoding: base64\r\n");
const CRLF = enc.encode("\r\n");
/** Bytes of one base64 line (57 bytes → 76 characters). */
const LINE_BYTES = 57;
/** How far the output lags behind the input: a part header the reader keeps, and a line. */
const WINDOW = DEFAULT_MIME_LIMITS.maxHeaderBytes + 16 * 1024;

/** Base64 in 76-character CRLF-ended lines, fed in pieces. */
class Base64Lines implements LeafBodySink {
  #rest = new Uint8Array(0);
  constructor(readonly out: (b: Uint8Array) => void) {}

  write(b: Uint8Array) {
    let data = b;
    if (this.#rest.length) {
      data = new Uint8Array(this.#rest.length + b.length);
      data.set(this.#rest);
      data.set(b, this.#rest.length);
    }
    const whole = data.length - (data.length % LINE_BYTES);
    if (whole > 0) this.#lines(data.subarray(0, whole));
    this.#rest = data.slice(whole);
  }

  end() {
    if (this.#rest.length) this.#lines(this.#rest);
    this.#rest = new Uint8Array(0);
  }

  #lines(b: Uint8Array) {
    const text = b.toBase64();
    const out = new Uint8Array(text.length + Math.ceil(text.length / 76) * 2);
    let o = 0;
    for (let i = 0; i < text.length; i += 76) {
      o += enc.encodeInto(text.slice(i, i + 76), out.subarray(o)).written;
      out.set(CRLF, o);
      o += 2;
    }
    this.out(out.subarray(0, o));
  }
}

/**
 * An APPEND upload that re-encodes every binary leaf part as base64 before passing the message
 * on to `target`. end() must be called once the whole literal was written; `failed` then tells
 * that a part could not be converted (its header was longer than the window).
 */
export class BinaryToBase64 implements AppendUpload {
  readonly target: AppendUpload;
  failed = false;
  #parser: MimeStreamParser;
  /** Input bytes not passed on yet, from absolute offset #heldAt. */
  #held: Uint8Array[] = [];
  #heldAt = 0;
  #heldLen = 0;
  /** Absolute offset of everything pushed to the reader. */
  #offset = 0;
  /** While a binary part's body streams: its original bytes are not passed on. */
  #encoding = false;
  #out: Uint8Array[] = [];

  constructor(target: AppendUpload) {
    this.target = target;
    this.#parser = new MimeStreamParser({ onLeaf: (part) => this.#leaf(part) });
  }

  /** Input bytes held back now (bounded by the window and one chunk). */
  get held(): number {
    return this.#heldLen;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#held.push(chunk.slice());
    this.#heldLen += chunk.length;
    this.#offset += chunk.length;
    this.#parser.push(chunk);
    if (!this.#encoding) this.#pass(this.#offset - WINDOW);
    await this.#flush();
  }

  /** The literal is complete: the rest goes out. */
  async end(): Promise<void> {
    this.#parser.end();
    this.#pass(this.#offset);
    await this.#flush();
  }

  discard(): Promise<void> {
    this.#held = [];
    this.#out = [];
    return this.target.discard();
  }

  async #flush() {
    const out = this.#out;
    this.#out = [];
    for (const b of out) if (b.length) await this.target.write(b);
  }

  #leaf(part: MimePart): LeafBodySink | undefined {
    if (part.contentTransferEncoding !== "binary") return undefined;
    const cte = part.headers.find((h) => h.name.toLowerCase() === "content-transfer-encoding");
    if (!cte) return undefined;
    if (cte.start < this.#heldAt) {
      this.failed = true;
      return undefined;
    }
    this.#pass(cte.start);
    this.#out.push(CTE_BASE64);
    this.#drop(cte.end);
    this.#pass(part.bodyStart);
    this.#encoding = true;
    const lines = new Base64Lines((b) => this.#out.push(b));
    let seen = part.bodyStart;
    return {
      write: (b) => {
        lines.write(b);
        // The reader hands over body bytes only once they are known to be body: forget them.
        this.#drop(seen += b.length);
      },
      end: () => {
        lines.end();
        this.#encoding = false;
        this.#drop(part.end);
      },
    };
  }

  /** Passes the held input on up to absolute offset `to`. */
  #pass(to: number) {
    this.#take(to, true);
  }

  /** Forgets the held input up to absolute offset `to`. */
  #drop(to: number) {
    this.#take(to, false);
  }

  #take(to: number, keep: boolean) {
    while (this.#heldAt < to && this.#held.length) {
      const c = this.#held[0];
      const n = Math.min(c.length, to - this.#heldAt);
      if (keep) this.#out.push(c.subarray(0, n));
      if (n === c.length) this.#held.shift();
      else this.#held[0] = c.subarray(n);
      this.#heldAt += n;
      this.#heldLen -= n;
    }
  }
}
