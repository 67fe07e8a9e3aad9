// DKIM body hashes computed as the message streams in (RFC 6376 §3.4.3 simple, §3.4.4 relaxed,
// §3.7 bh=), so incoming mail is verified without holding its body: DkimStream keeps the top
// header block (bounded) and feeds the body to one hasher per canonicalization its signatures
// name; dkim_verify.ts's verifyAlignedHeader() then judges them. The same canonicalization as
// dkim_canon.ts's hashBody(), fed in pieces split anywhere: lines end at LF (a CR before it
// belongs to the line break), empty lines at the end are ignored, the simple canonicalization of
// an empty body is one CRLF and the relaxed one is empty.

import { createHash, type Hash } from "node:crypto";
import { parseTagList, splitMessage } from "./dkim_canon.ts";

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const CRLF = new Uint8Array([CR, LF]);
const ONE_SP = new Uint8Array([SP]);
const ONE_CR = new Uint8Array([CR]);

/** Header bytes kept before giving up on a message (the gate refuses longer headers anyway). */
export const MAX_DKIM_HEADER = 256 * 1024;

export interface BodyHash {
  /** SHA-256 of the canonicalized body. */
  digest: Uint8Array;
  /** Length of the canonicalized body. */
  length: number;
}

/** SHA-256 of a body's canonical form, fed in pieces split anywhere. */
export class DkimBodyHasher {
  readonly relaxed: boolean;
  #hash: Hash = createHash("sha256");
  #length = 0;
  /** Empty lines seen and not yet known to be followed by content. */
  #pendingEmpty = 0;
  /** The current line has content (relaxed: other than blanks). */
  #content = false;
  /** Relaxed: a run of blanks not yet written (it becomes one SP if content follows). */
  #blank = false;
  /** A CR ended the last piece: the line break's, or content if no LF follows. */
  #heldCr = false;

  constructor(relaxed: boolean) {
    this.relaxed = relaxed;
  }

  push(bytes: Uint8Array): void {
    let pos = 0;
    while (pos < bytes.length) {
      const nl = bytes.indexOf(LF, pos);
      const end = nl < 0 ? bytes.length : nl;
      this.#segment(bytes, pos, end, nl >= 0);
      if (nl < 0) break;
      this.#endLine();
      pos = nl + 1;
    }
  }

  end(): BodyHash {
    if (this.#heldCr) {
      this.#heldCr = false;
      this.#data(ONE_CR, 0, 1); // a final CR without LF is content
    }
    if (this.#content) this.#endLine();
    if (this.#length === 0 && !this.relaxed) this.#emit(CRLF);
    return { digest: new Uint8Array(this.#hash.digest()), length: this.#length };
  }

  /** Bytes [s, e) of the current line; `complete` when its LF follows. */
  #segment(b: Uint8Array, s: number, e: number, complete: boolean) {
    if (this.#heldCr) {
      this.#heldCr = false;
      if (complete && s === e) return; // the CR of a CRLF split between pieces
      this.#data(ONE_CR, 0, 1);
    }
    let ce = e;
    if (ce > s && b[ce - 1] === CR) {
      ce--;
      if (!complete) this.#heldCr = true;
    }
    if (ce > s) this.#data(b, s, ce);
  }

  /** Line content [s, e) (non-empty). */
  #data(b: Uint8Array, s: number, e: number) {
    if (!this.relaxed) {
      this.#startContent();
      this.#emit(b.subarray(s, e));
      return;
    }
    let run = s;
    for (let i = s; i < e; i++) {
      const c = b[i];
      if (c !== SP && c !== HTAB) continue;
      if (i > run) this.#word(b.subarray(run, i));
      this.#blank = true;
      run = i + 1;
    }
    if (e > run) this.#word(b.subarray(run, e));
  }

  /** Relaxed: non-blank bytes, after the single SP a preceding blank run becomes. */
  #word(w: Uint8Array) {
    this.#startContent();
    if (this.#blank) {
      this.#blank = false;
      this.#emit(ONE_SP);
    }
    this.#emit(w);
  }

  #startContent() {
    if (this.#content) return;
    this.#content = true;
    for (; this.#pendingEmpty > 0; this.#pendingEmpty--) this.#emit(CRLF);
  }

  #endLine() {
    if (this.#content) this.#emit(CRLF);
    else this.#pendingEmpty++;
    this.#content = false;
    this.#blank = false;
  }

  #emit(b: Uint8Array) {
    this.#hash.update(b);
    this.#length += b.length;
  }
}

/** The body canonicalization a DKIM-Signature field names (c=header/body, default simple). */
function bodyCanonicalization(raw: string): "simple" | "relaxed" | null {
  const tags = parseTagList(raw.slice(raw.indexOf(":") + 1));
  if (!tags) return null; // malformed: the signature fails without a body hash
  const body = (tags.get("c") ?? "simple/simple").toLowerCase().split("/")[1] ?? "simple";
  return body === "simple" || body === "relaxed" ? body : null;
}

/**
 * A message read once for DKIM: the top header block is kept (up to MAX_DKIM_HEADER), and the
 * body goes to a hasher per body canonicalization named by the header's DKIM-Signature fields.
 */
export class DkimStream {
  #head: Uint8Array | null = new Uint8Array(1024);
  #headLen = 0;
  /** Where the line being scanned for the blank line starts. */
  #lineStart = 0;
  #header: Uint8Array | null = null;
  #tooLong = false;
  #hashers = new Map<string, DkimBodyHasher>();
  #results = new Map<string, BodyHash>();

  push(bytes: Uint8Array): void {
    if (this.#header) {
      for (const h of this.#hashers.values()) h.push(bytes);
      return;
    }
    if (this.#tooLong) return;
    const take = Math.min(bytes.length, MAX_DKIM_HEADER - this.#headLen);
    this.#append(bytes.subarray(0, take));
    const end = this.#blankLineEnd();
    if (end >= 0) {
      const head = this.#head!;
      this.#startBody(head.slice(0, end));
      const after = this.#headLen - end;
      this.#head = null;
      // What followed the blank line in the kept bytes, then the rest of this piece.
      if (after > 0) this.push(head.subarray(end, end + after));
      if (take < bytes.length) this.push(bytes.subarray(take));
    } else if (take < bytes.length || this.#headLen >= MAX_DKIM_HEADER) {
      this.#tooLong = true;
      this.#head = null;
    }
  }

  /** The top header block up to and including its blank line; null when it never ended. */
  header(): Uint8Array | null {
    if (!this.#header && !this.#tooLong && this.#head) {
      // The message ended inside its header: it has no body.
      this.#startBody(this.#head.slice(0, this.#headLen));
      this.#head = null;
    }
    return this.#header;
  }

  /** The body hash under a canonicalization the header's signatures named (after header()). */
  bodyHash(relaxed: boolean): BodyHash | null {
    const key = relaxed ? "relaxed" : "simple";
    const done = this.#results.get(key);
    if (done) return done;
    const h = this.#hashers.get(key);
    if (!h) return null;
    const r = h.end();
    this.#results.set(key, r);
    return r;
  }

  #append(b: Uint8Array) {
    const need = this.#headLen + b.length;
    if (need > this.#head!.length) {
      const grown = new Uint8Array(Math.max(need, this.#head!.length * 2));
      grown.set(this.#head!.subarray(0, this.#headLen));
      this.#head = grown;
    }
    this.#head!.set(b, this.#headLen);
    this.#headLen = need;
  }

  /** End of the blank line that ends the header (as parseHeaderBlock reads it), or -1. */
  #blankLineEnd(): number {
    const h = this.#head!;
    while (true) {
      const nl = h.subarray(0, this.#headLen).indexOf(LF, this.#lineStart);
      if (nl < 0) return -1;
      const s = this.#lineStart;
      this.#lineStart = nl + 1;
      if (nl === s || (nl === s + 1 && h[s] === CR)) return nl + 1;
    }
  }

  #startBody(header: Uint8Array) {
    this.#header = header;
    for (const f of splitMessage(header).fields) {
      if (f.name !== "dkim-signature") continue;
      const c = bodyCanonicalization(f.raw);
      if (c && !this.#hashers.has(c)) this.#hashers.set(c, new DkimBodyHasher(c === "relaxed"));
    }
  }
}
