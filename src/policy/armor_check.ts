// The armor half of filtermail's check_armored_payload, on a stream (the decoded body of the
// application/octet-stream part, pushed as it arrives; state bounded by one 32-byte line head):
//   - the first line is exactly "-----BEGIN PGP MESSAGE-----";
//   - a first armor header "Version: …" is refused outgoing and skipped incoming; any other
//     armor header is base64 junk and fails;
//   - the last non-empty line is exactly "-----END PGP MESSAGE-----" (tern also wants it on a line
//     of its own; filtermail would take it glued to the base64);
//   - everything from the last "=" on is ignored (the CRC24 line), the rest is strict standard
//     base64 with canonical padding and zero trailing bits, line breaks removed;
//   - the decoded bytes are walked as OpenPGP packets (PacketWalker).
// A bare LF counts as CRLF, so a message read back from a file checks as it did in SMTP DATA.

import { BYTE_TEXT_MIN, byteText } from "../mime/mod.ts";
import { PacketWalker } from "./openpgp_packets.ts";

const enc = new TextEncoder();
const BEGIN = enc.encode("-----BEGIN PGP MESSAGE-----");
const END = enc.encode("-----END PGP MESSAGE-----");
const VERSION = enc.encode("Version: ");
const HEAD = 32;
const DASH = 45;
/** Runs of data at least this long go to the built-in base64 decoder. */
const NATIVE_MIN = 256;
/**
 * ASCII bytes as chars one to one (UTF-8 decodes ASCII three times faster than latin1 here); any
 * other byte is invalid base64 and is refused either way, whatever it decodes to.
 */
const ASCII = new TextDecoder();

/** Uint8Array.prototype.setFromBase64 (TC39 base64 proposal, in V8; not yet in TypeScript's lib). */
interface Base64Target {
  setFromBase64(
    text: string,
    options: { lastChunkHandling: "stop-before-partial" },
  ): { read: number; written: number };
}

/** True when `c` occurs in text[from, end) (the blanks the built-in decoder would skip). */
function before(text: string, c: string, from: number, end: number): boolean {
  const at = text.indexOf(c, from);
  return at >= 0 && at < end;
}

const B64 = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}

/**
 * Decoded bytes on their way to the packet walker, shared by every checker: each feed empties
 * them before it returns (#flush), and the walker reads bytes as they are pushed without keeping
 * them, so no state lives here between calls (one thread, no await inside a feed). Allocating
 * them per message cost more than decoding a 2 KB payload.
 */
const out = new Uint8Array(3 * 1024);
/** The built-in decoder's output; grows to the longest run decoded at once, up to SCRATCH_MAX. */
let scratch = new Uint8Array(4 * 1024);
/** Longer runs (a whole payload pushed at once) get a buffer of their own, not kept after. */
const SCRATCH_MAX = 256 * 1024;

const enum S {
  /** Base64 data, no "=" yet. */
  Data,
  /** A run of "=" (line breaks between them ignored). */
  Pads,
  /** After the run: ignored unless another "=" comes, which would put data after padding. */
  Tail,
  Failed,
}

/**
 * The text between the armor lines, char by char. Everything before the last "=" must be
 * canonical padded base64: so "=" may only end the data (one or two pads), optionally followed
 * by one more "=" that starts the ignored CRC line.
 */
class ArmorBase64 {
  state = S.Data;
  #acc = 0;
  #n = 0;
  #dataChars = 0;
  #pads = 0;
  #lastValue = 0;
  readonly walker = new PacketWalker();
  #o = 0;

  /** Chars [s, e) of `b`; `text` is `b` as byteText gives it, when the caller has it. */
  feed(b: Uint8Array, s: number, e: number, text: string | null = null) {
    if (this.state === S.Data && e - s >= NATIVE_MIN) s = this.#native(b, s, e, text);
    this.#loop(b, s, e);
  }

  /**
   * Long runs of data go to the built-in decoder: it refuses everything the byte loop refuses
   * except blanks (which it skips: they are looked for first), and decodes only whole 4-char
   * groups. Returns where the byte loop goes on (a partial group, the first "=", or the end).
   */
  #native(b: Uint8Array, s: number, e: number, text: string | null): number {
    // First the byte loop completes a group begun in an earlier piece (at most three chars).
    let i = s;
    for (let want = (4 - this.#n) % 4; want > 0 && i < e; i++) {
      if (b[i] !== 13 && b[i] !== 10) want--;
    }
    this.#loop(b, s, i);
    if (this.state !== S.Data) return i;
    // The searches go over text when there is one (see byteText: the same chars at the same
    // places, and a non-ASCII byte, U+FFFD there, is refused by the decoder either way).
    const eq = text !== null ? text.indexOf("=", i) : b.indexOf(61, i);
    const end = eq < 0 || eq > e ? e : eq;
    if (end - i < NATIVE_MIN) return i;
    let chars: string;
    if (text !== null) {
      // Three memchr-speed searches cost less than one regex test over the run.
      if (before(text, " ", i, end) || before(text, "\t", i, end) || before(text, "\f", i, end)) {
        return i;
      }
      chars = text.slice(i, end);
    } else {
      const run = b.subarray(i, end);
      if (run.indexOf(32) >= 0 || run.indexOf(9) >= 0 || run.indexOf(12) >= 0) return i;
      chars = ASCII.decode(run);
    }
    const need = Math.ceil((end - i) / 4) * 3;
    if (scratch.length < need && need <= SCRATCH_MAX) {
      scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(need, scratch.length * 2)));
    }
    const into = need <= scratch.length ? scratch : new Uint8Array(need);
    let r: { read: number; written: number };
    try {
      r = (into as unknown as Base64Target).setFromBase64(chars, {
        lastChunkHandling: "stop-before-partial",
      });
    } catch {
      this.state = S.Failed; // a char outside the alphabet
      return e;
    }
    this.#flush();
    if (r.written > 0) this.walker.push(into.subarray(0, r.written));
    this.#dataChars += (r.written / 3) * 4;
    return i + r.read;
  }

  #loop(b: Uint8Array, s: number, e: number) {
    // The state lives in locals for the loop (this runs for every byte it is given).
    let state = this.state;
    if (state === S.Failed) return;
    let acc = this.#acc, n = this.#n, dataChars = this.#dataChars, pads = this.#pads;
    let lastValue = this.#lastValue;
    let o = this.#o;
    for (let i = s; i < e; i++) {
      const c = b[i];
      if (c === 13 || c === 10) continue;
      if (state === S.Data) {
        const v = B64[c];
        if (v >= 0) {
          lastValue = v;
          dataChars++;
          acc = (acc << 6) | v;
          if (++n === 4) {
            if (o + 3 > out.length) {
              this.walker.push(out.subarray(0, o));
              o = 0;
            }
            out[o] = (acc >> 16) & 0xff;
            out[o + 1] = (acc >> 8) & 0xff;
            out[o + 2] = acc & 0xff;
            o += 3;
            acc = 0;
            n = 0;
          }
        } else if (c === 61) {
          state = S.Pads;
          pads = 1;
        } else {
          state = S.Failed;
          break;
        }
      } else if (state === S.Pads) {
        if (c === 61) pads++;
        else state = S.Tail;
      } else if (c === 61) { // S.Tail: another "=" would put data after padding
        state = S.Failed;
        break;
      }
    }
    this.state = state;
    this.#acc = acc;
    this.#n = n;
    this.#dataChars = dataChars;
    this.#pads = pads;
    this.#lastValue = lastValue;
    this.#o = o;
    this.#flush();
  }

  #flush() {
    if (this.#o > 0) this.walker.push(out.subarray(0, this.#o));
    this.#o = 0;
  }

  /** The data before the last "=" decoded strictly, and the packets walked to their end. */
  end(): boolean {
    if (this.state === S.Failed) return false;
    // With a run of n "=", the last one is cut off: n - 1 of them pad the data.
    const pads = this.state === S.Data ? 0 : this.#pads - 1;
    const rest = this.#dataChars % 4;
    const ok = (pads === 0 && rest === 0) ||
      (pads === 1 && rest === 3 && (this.#lastValue & 3) === 0) ||
      (pads === 2 && rest === 2 && (this.#lastValue & 15) === 0);
    if (!ok) return false;
    if (rest === 2) this.walker.push(new Uint8Array([(this.#acc >> 4) & 0xff]));
    if (rest === 3) {
      this.walker.push(new Uint8Array([(this.#acc >> 10) & 0xff, (this.#acc >> 2) & 0xff]));
    }
    return this.walker.end();
  }
}

/** Streaming check of an armored PGP message (the decoded body of the encrypted payload part). */
export class ArmorChecker {
  #direction: "outgoing" | "incoming";
  #b64 = new ArmorBase64();
  #failed = false;
  #lineNo = 0;
  /** The first bytes of the current line (up to HEAD), before they are decided. */
  #head = new Uint8Array(HEAD + 1);
  #headLen = 0;
  /** The current line's head was decided: its bytes stream straight to the decoder. */
  #streaming = false;
  /** The current line is the skipped "Version:" header. */
  #skipping = false;
  /** An END line was seen; only empty lines followed so far. */
  #heldEnd = false;

  constructor(direction: "outgoing" | "incoming") {
    this.#direction = direction;
  }

  /** The next bytes; `given`: `b` as byteText gives it, when the caller has it. */
  push(b: Uint8Array, given?: string): void {
    /** `b` for the searches over long pushes (byteText), or null. */
    const text = given ?? (b.length >= BYTE_TEXT_MIN ? byteText(b) : null);
    let i = 0;
    while (i < b.length && !this.#failed) {
      // After the first two lines and before any END line, whole lines that do not start with
      // "-" are base64 data or the CRC line however their head reads: they go to the decoder in
      // one piece, as #piece/#decide would pass them line by line.
      if (
        this.#lineNo >= 2 && this.#headLen === 0 && !this.#streaming && !this.#skipping &&
        !this.#heldEnd && b[i] !== DASH
      ) {
        const dash = text !== null ? text.indexOf("-", i) : b.indexOf(DASH, i);
        const before = (dash < 0 ? b.length : dash) - 1;
        const lastLf = text !== null ? text.lastIndexOf("\n", before) : b.lastIndexOf(10, before);
        if (lastLf >= i) {
          this.#b64.feed(b, i, lastLf + 1, text);
          this.#lineNo++; // past the first two lines, only "not 0 or 1" matters
          i = lastLf + 1;
          continue;
        }
      }
      const nl = text !== null ? text.indexOf("\n", i) : b.indexOf(10, i);
      const e = nl < 0 ? b.length : nl;
      this.#piece(b, i, e);
      if (nl < 0) break;
      this.#lineEnd();
      i = nl + 1;
    }
  }

  #piece(b: Uint8Array, s: number, e: number) {
    if (s >= e) return;
    if (this.#skipping) return;
    if (this.#streaming) return this.#b64.feed(b, s, e);
    const take = Math.min(e - s, HEAD + 1 - this.#headLen);
    const head = this.#head;
    for (let k = 0; k < take; k++) head[this.#headLen + k] = b[s + k];
    this.#headLen += take;
    if (this.#headLen > HEAD) {
      this.#decide(false);
      if (this.#streaming) this.#b64.feed(b, s + take, e);
    }
  }

  /** Decides what the current line is from its head; `complete` when the line has ended. */
  #decide(complete: boolean) {
    let len = this.#headLen;
    if (complete && len > 0 && this.#head[len - 1] === 13) len--;
    const head = this.#head.subarray(0, len);
    if (this.#lineNo === 0) {
      if (!complete || !equal(head, BEGIN)) this.#failed = true;
      return;
    }
    if (this.#heldEnd && (len > 0 || !complete)) {
      // Text after the END line: that END line was data after all.
      this.#b64.feed(END, 0, 1);
      this.#heldEnd = false;
    }
    if (this.#lineNo === 1 && startsWith(head, VERSION)) {
      if (this.#direction === "outgoing") this.#failed = true;
      else this.#skipping = true;
      return;
    }
    if (complete && equal(head, END)) {
      this.#heldEnd = true;
      return;
    }
    this.#b64.feed(this.#head, 0, this.#headLen);
    this.#streaming = true;
  }

  #lineEnd() {
    if (!this.#streaming && !this.#skipping) this.#decide(true);
    this.#lineNo++;
    this.#headLen = 0;
    this.#streaming = false;
    this.#skipping = false;
  }

  /** True when the whole payload passed. */
  end(): boolean {
    if (this.#failed) return false;
    if (this.#headLen > 0 || this.#streaming || this.#skipping) this.#lineEnd();
    if (this.#failed || !this.#heldEnd) return false;
    return this.#b64.end();
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function startsWith(a: Uint8Array, p: Uint8Array): boolean {
  if (a.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (a[i] !== p[i]) return false;
  return true;
}

/** Whole-payload form of the check (filtermail check_armored_payload). */
export function checkArmoredPayload(
  payload: string | Uint8Array,
  direction: "outgoing" | "incoming",
): boolean {
  const c = new ArmorChecker(direction);
  c.push(typeof payload === "string" ? enc.encode(payload) : payload);
  return c.end();
}
