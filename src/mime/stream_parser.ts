// Streaming MIME reader (RFC 5322, RFC 2045/2046): push the message in chunks as it arrives,
// get the part tree (MimePart, byte offsets into the message, raw header bytes kept) and the list
// of ambiguities it saw. Work per push is O(chunk); memory is bounded: at most one line of 8 KiB
// carried between chunks, header bytes per part up to a cap, parts, fields and depth capped.
//
//   const p = new MimeStreamParser({ onLeaf });   // onLeaf: optional body sinks, see below
//   p.push(chunk); p.push(chunk); …               // dot-unstuffed message bytes, any split
//   const root = p.end();                         // MimePart tree; p.ambiguities
//
// The reading is tern's one reading, the same parseMessage() gives: a part's header ends at a
// blank line (or at a boundary line, which cuts it); a boundary matches a line that is exactly
// "--boundary" (blanks may follow) or starts with "--boundary--", innermost boundary first; the
// line break before a delimiter belongs to the delimiter; a part without its close delimiter ends
// at an enclosing boundary or at the end. Everything where other readers could differ is reported
// (see ambiguity.ts) rather than guessed.

import { BYTE_TEXT_MIN, byteText, countChar } from "./byte_text.ts";
import { CR, LF } from "./bytes.ts";
import { type Ambiguity, type AmbiguityCode, checkHeaderBlock } from "./ambiguity.ts";
import { splitFields } from "./headers.ts";
import {
  describePart,
  isEncapsulating,
  messageRfc822,
  type PartMeta,
  textPlain,
} from "./part_meta.ts";
import type { ContentType, MimePart } from "./types.ts";

/** Nesting beyond this is treated as an opaque leaf body. */
export const MAX_MIME_DEPTH = 50;

export interface MimeLimits {
  /** Deepest nesting of multiparts and encapsulated messages that is opened. */
  maxDepth: number;
  /** Parts recorded in the tree (the message itself counts); later parts are not opened. */
  maxParts: number;
  /** Header bytes kept per part; the rest of a longer header is skipped. */
  maxHeaderBytes: number;
  /** Header fields recorded over the whole message. */
  maxFields: number;
}

export const DEFAULT_MIME_LIMITS: MimeLimits = {
  maxDepth: MAX_MIME_DEPTH,
  maxParts: 1000,
  maxHeaderBytes: 128 * 1024,
  maxFields: 10_000,
};

/** Receives the raw (still transfer-encoded) body of one leaf part, in order. */
export interface LeafBodySink {
  /**
   * The next bytes of the body. `text`, when given, is `bytes` as byteText gives it (the parser
   * had it already): a sink that searches the bytes as text need not decode them again.
   */
  write(bytes: Uint8Array, text?: string): void;
  end(): void;
}

/** Where a leaf part sits: its IMAP part number and whether it is inside message/rfc822. */
export interface LeafContext {
  path: readonly number[];
  inMessage: boolean;
  /** The enclosing multipart's content type (undefined for a message's own body). */
  parent?: ContentType;
}

export interface MimeStreamOptions {
  limits?: Partial<MimeLimits>;
  /** Called when a leaf part's header is complete; a returned sink gets its body bytes. */
  onLeaf?: (part: MimePart, where: LeafContext) => LeafBodySink | undefined;
}

/** Ambiguities kept: the first ones tell enough, the gate refuses on any. */
const MAX_REPORTS = 64;

/** Longest line handled as one piece; longer lines are content and never delimiters. */
const LINE_CAP = 8 * 1024;
const DASH = 45;

const enum Phase {
  Header,
  Leaf,
  Multipart,
  Message,
  /** A part past the part cap: read over, not recorded. */
  Opaque,
}

const enum MpState {
  Preamble,
  Parts,
  Epilogue,
}

interface Frame {
  part: MimePart;
  path: number[];
  depth: number;
  inMessage: boolean;
  fallback: () => ContentType;
  parentType?: ContentType;
  phase: Phase;
  /** LF count before the part's first byte and before its body. */
  lfAtStart: number;
  lfAtBody: number;
  // Header
  /** Bytes of this frame's header block in the parser's #hdr (only the top frame reads one). */
  hdrLen: number;
  hdrSkipped: boolean;
  meta?: PartMeta;
  // Leaf body
  sink?: LeafBodySink;
  /** The line break after the last body line: body content only if more body follows. */
  pendingBreak?: Uint8Array;
  // Multipart
  boundary?: Uint8Array;
  mpState: MpState;
  children: number;
  /** Bits: 1 preamble text reported, 2 epilogue text reported. */
  saidText: number;
  /** Result of finishing: LF count before `end`, and whether the byte before `end` is not LF. */
  lfAtEnd: number;
  endNotLf: boolean;
}

/** The stop of a part: a delimiter line at `pos`, or the end of the data. */
interface Stop {
  pos: number;
  /** LF count before the stop line. */
  lfBefore: number;
}

/**
 * Header buffers of ended parsers, for the next ones: allocating a typed array this size costs
 * a few µs (its memory lives outside the heap), a tenth of reading a small message.
 */
const HEADER_BUFFERS: Uint8Array[] = [];
const HEADER_BUFFER = 1024;
const HEADER_BUFFERS_KEPT = 64;

const CRLF = new Uint8Array([CR, LF]);
const JUST_LF = new Uint8Array([LF]);
const NO_BYTES = new Uint8Array(0);

function emptyPart(start: number): MimePart {
  return {
    start,
    headerEnd: start,
    bodyStart: start,
    end: start,
    headers: [],
    contentType: textPlain(),
    contentTransferEncoding: "7bit",
    children: [],
    bodyLines: 0,
  };
}

export class MimeStreamParser {
  readonly ambiguities: Ambiguity[] = [];
  readonly limits: MimeLimits;
  #onLeaf?: MimeStreamOptions["onLeaf"];
  #frames: Frame[] = [];
  #root: MimePart;
  #offset = 0;
  #lf = 0;
  #lastByte = -1;
  /** The previous line: where its content ended, whether it had content. */
  #prevContentEnd = 0;
  #prevNonEmpty = false;
  #parts = 1;
  #fieldsLeft: number;
  #limitSaid = new Set<string>();
  // Line carried between chunks (at most LINE_CAP bytes), or a long line being passed through.
  #carry = NO_BYTES; // allocated when a line first spans two pushes (typed arrays cost µs each)
  #carryLen = 0;
  #carryStart = 0;
  #long = false;
  #longNonBlank = false;
  #longHeldCr = false;
  #ended = false;

  constructor(options: MimeStreamOptions = {}) {
    this.limits = { ...DEFAULT_MIME_LIMITS, ...options.limits };
    this.#onLeaf = options.onLeaf;
    this.#fieldsLeft = this.limits.maxFields;
    const root = this.#newFrame(0, [], 0, false, textPlain, undefined, true);
    this.#root = root.part;
  }

  /** Bytes pushed so far. */
  get size(): number {
    return this.#offset;
  }

  /** The next bytes; `given`: `chunk` as byteText gives it, when the caller has it. */
  push(chunk: Uint8Array, given?: string): void {
    if (this.#ended) throw new Error("MimeStreamParser: push after end");
    let i = 0;
    const n = chunk.length;
    /** The chunk for the line searches when it is long (byteText), or null. */
    const text = given ?? (n >= BYTE_TEXT_MIN ? byteText(chunk) : null);
    while (i < n) {
      if (!this.#long && this.#carryLen === 0 && chunk[i] !== DASH) {
        const top = this.#frames[this.#frames.length - 1];
        if (top.phase === Phase.Leaf) {
          const after = this.#leafRun(top, chunk, i, text);
          if (after > i) {
            i = after;
            continue;
          }
        }
      }
      const nl = text !== null ? text.indexOf("\n", i) : chunk.indexOf(LF, i);
      const stop = nl < 0 ? n : nl + 1;
      if (this.#long) {
        this.#longPiece(chunk, i, stop, this.#offset + i, nl >= 0);
      } else if (this.#carryLen === 0 && nl >= 0) {
        this.#line(chunk, i, stop, this.#offset + i);
      } else {
        const take = stop - i;
        if (this.#carryLen + take > LINE_CAP) {
          this.#startLong(chunk, i, stop, nl >= 0);
        } else {
          if (this.#carryLen === 0) this.#carryStart = this.#offset + i;
          this.#carryAppend(chunk, i, stop);
          if (nl >= 0) {
            const len = this.#carryLen;
            this.#carryLen = 0;
            this.#line(this.#carry, 0, len, this.#carryStart);
          }
        }
      }
      i = stop;
    }
    if (n > 0) this.#lastByte = chunk[n - 1];
    this.#offset += n;
  }

  /** Ends the message: finishes every open part and returns the tree. */
  end(): MimePart {
    if (this.#ended) return this.#root;
    if (this.#carryLen > 0) {
      const len = this.#carryLen;
      this.#carryLen = 0;
      this.#line(this.#carry, 0, len, this.#carryStart);
    } else if (this.#long) this.#endLong(undefined, this.#offset);
    this.#ended = true;
    while (this.#frames.length > 0) this.#finishTop(undefined);
    // Every header was read and copied out: the buffer serves the next parser.
    if (this.#hdr.length === HEADER_BUFFER && HEADER_BUFFERS.length < HEADER_BUFFERS_KEPT) {
      HEADER_BUFFERS.push(this.#hdr);
    }
    this.#hdr = NO_BYTES;
    return this.#root;
  }

  // ---- lines ---------------------------------------------------------------------------------

  #carryAppend(src: Uint8Array, s: number, e: number) {
    const need = this.#carryLen + (e - s);
    if (need > this.#carry.length) {
      const grown = new Uint8Array(Math.min(LINE_CAP, Math.max(need, this.#carry.length * 2, 256)));
      grown.set(this.#carry.subarray(0, this.#carryLen));
      this.#carry = grown;
    }
    this.#carry.set(src.subarray(s, e), this.#carryLen);
    this.#carryLen = need;
  }

  /** One complete line [s, next) of `b` (next includes its LF, if any), at absolute `abs`. */
  #line(b: Uint8Array, s: number, next: number, abs: number) {
    let ce = next;
    const hasLf = ce > s && b[ce - 1] === LF;
    if (hasLf) ce--;
    if (ce > s && b[ce - 1] === CR) ce--;
    const top = this.#frames[this.#frames.length - 1];
    const isDashes = ce - s >= 2 && b[s] === DASH && b[s + 1] === DASH;
    // A line longer than LINE_CAP is never a delimiter, however it arrived (chunking never
    // changes the reading).
    const long = next - s > LINE_CAP;
    if (isDashes && long) this.#longDashes(b.subarray(s, ce), top);
    const stop = isDashes && !long ? this.#delimiter(b, s, ce, top) : undefined;
    if (stop) {
      this.#stopAt(stop.level, stop.close, abs, abs + (next - s), hasLf);
    } else if (top.phase === Phase.Header) {
      if (ce === s) this.#headerDone(top, b, s, next, abs + (next - s), hasLf);
      else this.#appendHeader(top, b, s, next);
    } else this.#bodyLine(top, b, s, ce, next);
    if (hasLf) this.#lf++;
    this.#prevContentEnd = abs + (ce - s);
    this.#prevNonEmpty = ce > s;
  }

  /**
   * Complete lines of a leaf's body from `s` (a line start) up to the next line that starts with
   * "-" (which might be a delimiter): they need nothing but counting and passing on, so they go
   * to the sink in one write, exactly the bytes #bodyLine would pass line by line. Returns where
   * the run ended (`s` when there is no complete line to take).
   */
  #leafRun(f: Frame, b: Uint8Array, s: number, text: string | null): number {
    let lastLf: number;
    let lfs = 0, lineStart = s;
    if (text !== null) {
      // The LF before the first line after s that starts with "-" (s itself does not). A dash
      // is searched alone first: one memchr, and in base64 (no "-" in its alphabet) the only
      // search; a two-char search stops at every LF. A dash inside a line falls back to it.
      const dash = text.indexOf("-", s + 1);
      const d = dash < 0
        ? -1
        : text.charCodeAt(dash - 1) === LF
        ? dash - 1
        : text.indexOf("\n-", dash);
      lastLf = d < 0 ? text.lastIndexOf("\n") : d;
      if (lastLf < s) return s;
      // Counted in one native call, not found one by one (a call per line costs twice as much).
      lfs = countChar(text, "\n", s, lastLf + 1);
      const prev = lastLf > s ? text.lastIndexOf("\n", lastLf - 1) : -1;
      lineStart = prev >= s ? prev + 1 : s;
    } else {
      let d = b.indexOf(DASH, s);
      while (d > s && b[d - 1] !== LF) d = b.indexOf(DASH, d + 1);
      const limit = d < 0 ? b.length : d;
      lastLf = b.lastIndexOf(LF, limit - 1);
      if (lastLf < s) return s;
      for (let p = s; p <= lastLf;) {
        const q = b.indexOf(LF, p);
        lfs++;
        lineStart = p;
        p = q + 1;
      }
    }
    let ce = lastLf;
    if (ce > lineStart && b[ce - 1] === CR) ce--;
    const sink = f.sink;
    if (sink) {
      if (f.pendingBreak) sink.write(f.pendingBreak);
      if (ce > s) {
        if (text !== null) sink.write(b.subarray(s, ce), text.slice(s, ce));
        else sink.write(b.subarray(s, ce));
      }
      f.pendingBreak = lastLf - ce === 1 ? CRLF : JUST_LF;
    }
    this.#lf += lfs;
    this.#prevContentEnd = this.#offset + ce;
    this.#prevNonEmpty = ce > lineStart;
    return lastLf + 1;
  }

  /** A line longer than LINE_CAP: passed through in pieces; it is never a delimiter. */
  #startLong(chunk: Uint8Array, s: number, e: number, complete: boolean) {
    this.#long = true;
    this.#longNonBlank = false;
    this.#longHeldCr = false;
    const top = this.#frames[this.#frames.length - 1];
    const head = this.#carryLen > 0
      ? this.#carry.subarray(0, this.#carryLen)
      : chunk.subarray(s, e);
    if (head.length >= 2 && head[0] === DASH && head[1] === DASH) this.#longDashes(head, top);
    if (top.phase === Phase.Leaf && top.sink && top.pendingBreak) {
      top.sink.write(top.pendingBreak);
    }
    top.pendingBreak = undefined;
    if (this.#carryLen > 0) {
      const len = this.#carryLen;
      this.#carryLen = 0;
      this.#longPiece(this.#carry, 0, len, this.#carryStart, false);
    }
    this.#longPiece(chunk, s, e, this.#offset + s, complete);
  }

  #longDashes(head: Uint8Array, top: Frame) {
    for (let i = this.#frames.length - 1; i >= 0; i--) {
      const f = this.#frames[i];
      if (f.phase !== Phase.Multipart || !f.boundary) continue;
      if (startsWithAt(head, 2, head.length, f.boundary)) {
        this.#say(top, "boundary-prefix", "a very long line starts with a boundary");
        return;
      }
    }
  }

  /** A piece [s, e) at absolute `abs` of a long line; `complete` when it holds the line's LF. */
  #longPiece(b: Uint8Array, s: number, e: number, abs: number, complete: boolean) {
    const top = this.#frames[this.#frames.length - 1];
    // A CR that ended the previous piece is held back: it may be the CR of the line's CRLF.
    let heldCr = this.#longHeldCr;
    let ce = e;
    let brkLen = 0;
    if (complete) {
      ce--;
      brkLen = 1;
      if (ce > s && b[ce - 1] === CR) {
        ce--;
        brkLen = 2;
      } else if (ce === s && heldCr) {
        brkLen = 2;
        heldCr = false; // it was the line break's CR
      }
    }
    this.#longHeldCr = !complete && e > s && b[e - 1] === CR;
    if (top.phase === Phase.Header) this.#appendHeader(top, b, s, e);
    else {
      if (!this.#longNonBlank && !isBlankRange(b, s, ce)) this.#longNonBlank = true;
      if (top.phase === Phase.Leaf && top.sink) {
        if (heldCr) top.sink.write(CRLF.subarray(0, 1));
        const we = this.#longHeldCr ? ce - 1 : ce;
        if (we > s) top.sink.write(b.subarray(s, we));
      }
    }
    if (complete) {
      this.#endLong(brkLen === 2 ? CRLF : JUST_LF, abs + (e - s) - brkLen);
    }
  }

  /** The long line ended at `contentEnd` with `brk`, or (brk undefined) at the end of data. */
  #endLong(brk: Uint8Array | undefined, contentEnd: number) {
    const top = this.#frames[this.#frames.length - 1];
    if (top.phase === Phase.Multipart && this.#longNonBlank) this.#sayText(top);
    if (top.phase === Phase.Leaf && top.sink) {
      if (this.#longHeldCr) top.sink.write(CRLF.subarray(0, 1));
      top.pendingBreak = brk;
    }
    this.#longHeldCr = false;
    this.#long = false;
    if (brk) this.#lf++;
    this.#prevContentEnd = contentEnd;
    this.#prevNonEmpty = true;
  }

  // ---- delimiters ------------------------------------------------------------------------------

  /**
   * The delimiter this "--" line is, innermost boundary first (tern's reading), reporting every
   * way another reader could take it differently.
   */
  #delimiter(
    b: Uint8Array,
    s: number,
    ce: number,
    top: Frame,
  ): { level: number; close: boolean } | undefined {
    let found: { level: number; close: boolean } | undefined;
    const at = s + 2;
    const avail = ce - at;
    for (let i = this.#frames.length - 1; i >= 0; i--) {
      const f = this.#frames[i];
      const d = f.boundary;
      // Inlined prefix test: this runs for every "--" line against every open boundary.
      if (f.phase !== Phase.Multipart || !d || avail < d.length || b[at] !== d[0]) continue;
      let j = 1;
      while (j < d.length && b[at + j] === d[j]) j++;
      if (j < d.length) continue;
      const q = s + 2 + d.length;
      if (f.mpState === MpState.Epilogue) {
        this.#say(top, "boundary-after-close", "a boundary line after the close delimiter");
        continue;
      }
      const close = q + 2 <= ce && b[q] === DASH && b[q + 1] === DASH;
      const exact = isWspRange(b, close ? q + 2 : q, ce);
      if (!close && !exact) {
        this.#say(top, "boundary-prefix", "a line starts with a boundary but is not a delimiter");
        continue;
      }
      if (found) {
        this.#say(top, "boundary-prefix", "a delimiter line matches two boundaries");
        continue;
      }
      if (!exact) this.#say(top, "boundary-prefix", "a close delimiter is followed by text");
      found = { level: i, close };
    }
    return found;
  }

  /** A delimiter of the multipart at stack level `level` on the line [pos, next). */
  #stopAt(level: number, close: boolean, pos: number, next: number, hasLf: boolean) {
    const stop: Stop = { pos, lfBefore: this.#lf };
    while (this.#frames.length - 1 > level) this.#finishTop(stop);
    const mp = this.#frames[level];
    if (close) {
      if (mp.mpState === MpState.Preamble) {
        this.#say(mp, "close-before-open", "a close delimiter comes before the first delimiter");
      }
      mp.mpState = MpState.Epilogue;
      return;
    }
    mp.mpState = MpState.Parts;
    const index = ++mp.children;
    if (this.#parts >= this.limits.maxParts) {
      // Past the part cap: one reused frame reads over the part; nothing is recorded.
      this.#limit(mp, "parts", "more parts than the part cap");
      const o = this.#opaque ??= this.#newFrame(
        next,
        mp.path,
        mp.depth + 1,
        mp.inMessage,
        textPlain,
        undefined,
        false,
      );
      if (this.#frames[this.#frames.length - 1] !== o) this.#frames.push(o);
      o.path = mp.path;
      o.inMessage = mp.inMessage;
      return;
    }
    const digest = mp.part.contentType.subtype === "digest";
    const lfAfter = this.#lf + (hasLf ? 1 : 0);
    const child = this.#newFrame(
      next,
      [...mp.path, index],
      mp.depth + 1,
      mp.inMessage,
      digest ? messageRfc822 : textPlain,
      mp.part.contentType,
      true,
      lfAfter,
    );
    this.#parts++;
    mp.part.children.push(child.part);
  }

  #opaque?: Frame;
  /**
   * The header block being read, reused from part to part: only the top frame is ever in its
   * header (a part starts only once its parent's header was read, and a delimiter that cuts a
   * header short finishes that part first), and #readHeader copies the block out.
   */
  #hdr = HEADER_BUFFERS.pop() ?? new Uint8Array(HEADER_BUFFER);

  // ---- frames ----------------------------------------------------------------------------------

  #newFrame(
    start: number,
    path: number[],
    depth: number,
    inMessage: boolean,
    fallback: () => ContentType,
    parentType: ContentType | undefined,
    recorded: boolean,
    lfAtStart = this.#lf,
  ): Frame {
    const f: Frame = {
      part: emptyPart(start),
      path,
      depth,
      inMessage,
      fallback,
      parentType,
      phase: recorded ? Phase.Header : Phase.Opaque,
      lfAtStart,
      lfAtBody: lfAtStart,
      hdrLen: 0,
      hdrSkipped: false,
      mpState: MpState.Preamble,
      children: 0,
      saidText: 0,
      lfAtEnd: 0,
      endNotLf: false,
    };
    this.#frames.push(f);
    return f;
  }

  #appendHeader(f: Frame, b: Uint8Array, s: number, e: number) {
    const max = this.limits.maxHeaderBytes;
    const room = max - f.hdrLen;
    if (room < e - s) {
      if (!f.hdrSkipped) this.#limit(f, "header", "a header block longer than the header cap");
      f.hdrSkipped = true;
      e = s + Math.max(0, room);
    }
    if (e <= s) return;
    const need = f.hdrLen + (e - s);
    if (need > this.#hdr.length) {
      const grown = new Uint8Array(Math.min(max, Math.max(need, this.#hdr.length * 2)));
      grown.set(this.#hdr.subarray(0, f.hdrLen));
      this.#hdr = grown;
    }
    this.#hdr.set(b.subarray(s, e), f.hdrLen);
    f.hdrLen = need;
  }

  /** Parses the buffered header block and fills the part's metadata. */
  #readHeader(f: Frame) {
    const raw = this.#hdr.subarray(0, f.hdrLen);
    const { fields, truncated } = splitFields(raw, f.part.start, Math.max(0, this.#fieldsLeft));
    this.#fieldsLeft -= fields.length;
    if (truncated) this.#limit(f, "fields", "more header fields than the field cap");
    const isMessageHeader = f.path.length === 0 || f.parentType === undefined;
    checkHeaderBlock(raw, f.part.start, fields, isMessageHeader, (code, detail, field) => {
      this.#say(f, code, detail, field);
    });
    f.meta = describePart(fields, f.fallback);
    f.part.rawHeader = raw.slice();
    f.hdrLen = 0;
    Object.assign(f.part, f.meta);
  }

  /** The blank line [s, next) ends the header of the top frame. */
  #headerDone(
    f: Frame,
    b: Uint8Array,
    s: number,
    next: number,
    absNext: number,
    hasLf: boolean,
  ) {
    this.#appendHeader(f, b, s, next);
    this.#readHeader(f);
    f.part.headerEnd = absNext;
    f.part.bodyStart = absNext;
    f.lfAtBody = this.#lf + (hasLf ? 1 : 0);
    const meta = f.meta!;
    const ct = meta.contentType;
    const deepEnough = f.depth < this.limits.maxDepth;
    if (ct.type === "multipart" && ct.params.boundary) {
      if (deepEnough) {
        f.phase = Phase.Multipart;
        f.boundary = new TextEncoder().encode(ct.params.boundary);
        return;
      }
      this.#limit(f, "depth", "multiparts nested deeper than the depth cap");
    } else if (isEncapsulating(meta)) {
      if (deepEnough) {
        f.phase = Phase.Message;
        this.#newFrame(absNext, f.path, f.depth + 1, true, textPlain, undefined, true, f.lfAtBody);
        return;
      }
      this.#limit(f, "depth", "messages nested deeper than the depth cap");
    }
    f.phase = Phase.Leaf;
    f.sink = this.#onLeaf?.(f.part, {
      path: f.path,
      inMessage: f.inMessage,
      ...(f.parentType ? { parent: f.parentType } : {}),
    });
  }

  #bodyLine(f: Frame, b: Uint8Array, s: number, ce: number, next: number) {
    if (f.phase === Phase.Leaf) {
      const sink = f.sink;
      if (sink) {
        if (f.pendingBreak) sink.write(f.pendingBreak);
        if (ce > s) sink.write(b.subarray(s, ce));
        const n = next - ce;
        f.pendingBreak = n === 0
          ? undefined
          : n === 1 && b[ce] === LF
          ? JUST_LF
          : n === 2 && b[ce] === CR
          ? CRLF
          : b.slice(ce, next);
      }
    } else if (f.phase === Phase.Multipart && f.saidText !== 3 && !isBlankRange(b, s, ce)) {
      this.#sayText(f);
    }
  }

  #sayText(f: Frame) {
    const type = `${f.part.contentType.type}/${f.part.contentType.subtype}`;
    if (f.mpState === MpState.Epilogue) {
      if (f.saidText & 2) return;
      f.saidText |= 2;
      this.#say(f, "epilogue-text", `text after the close delimiter of ${type}`);
    } else {
      if (f.saidText & 1) return;
      f.saidText |= 1;
      this.#say(f, "preamble-text", `text before the first delimiter of ${type}`);
    }
  }

  /** Finishes the top frame at `stop` (a delimiter line) or at the end of the data. */
  #finishTop(stop: Stop | undefined) {
    const f = this.#frames.pop()!;
    const p = f.part;
    if (f.phase === Phase.Opaque) {
      this.#lastFinished = f;
      return;
    }
    if (f.phase === Phase.Header) {
      this.#readHeader(f);
      if (f.path.length > 0 || f.inMessage) {
        this.#say(f, "header-cut", "a part header is not ended by a blank line");
      }
      if (stop) {
        const cut = this.#breakBefore(stop, p.start);
        p.headerEnd = p.bodyStart = p.end = cut.end;
        f.lfAtEnd = cut.lfAtEnd;
        f.endNotLf = cut.endNotLf;
      } else {
        p.headerEnd = p.bodyStart = p.end = this.#offset;
        f.lfAtEnd = this.#lf;
        f.endNotLf = this.#lastByte >= 0 && this.#lastByte !== LF;
        // The header ran to the end: an encapsulated message is then empty (as parseMessage).
        if (f.meta && isEncapsulating(f.meta)) {
          if (f.depth < this.limits.maxDepth) {
            p.message = { ...emptyPart(this.#offset), rawHeader: new Uint8Array(0) };
          }
        }
      }
      p.bodyLines = 0;
    } else if (f.phase === Phase.Message) {
      // The inner message was finished first (it was above this frame).
      const inner = this.#lastFinished!;
      p.message = inner.part;
      p.end = inner.part.end;
      f.lfAtEnd = inner.lfAtEnd;
      f.endNotLf = inner.endNotLf;
      p.bodyLines = Math.max(0, f.lfAtEnd - f.lfAtBody) +
        (p.end > p.bodyStart && f.endNotLf ? 1 : 0);
    } else {
      if (stop) {
        const r = this.#breakBefore(stop, p.bodyStart);
        p.end = r.end;
        f.lfAtEnd = r.lfAtEnd;
        f.endNotLf = r.endNotLf;
      } else {
        p.end = this.#offset;
        f.lfAtEnd = this.#lf;
        f.endNotLf = this.#lastByte >= 0 && this.#lastByte !== LF;
        if (f.sink && f.pendingBreak) f.sink.write(f.pendingBreak);
      }
      p.bodyLines = Math.max(0, f.lfAtEnd - f.lfAtBody) +
        (p.end > p.bodyStart && f.endNotLf ? 1 : 0);
      if (f.phase === Phase.Multipart && f.mpState !== MpState.Epilogue) {
        this.#say(f, "missing-close", "a multipart ends without its close delimiter");
      }
      f.sink?.end();
    }
    this.#lastFinished = f;
  }

  #lastFinished?: Frame;

  /**
   * Where a part ends before the stop line: before the line break that precedes it (that break
   * belongs to the delimiter), but never before `floor`.
   */
  #breakBefore(stop: Stop, floor: number): { end: number; lfAtEnd: number; endNotLf: boolean } {
    if (stop.pos > floor && this.#prevContentEnd >= floor) {
      return {
        end: this.#prevContentEnd,
        lfAtEnd: stop.lfBefore - 1,
        endNotLf: this.#prevNonEmpty,
      };
    }
    return { end: floor, lfAtEnd: stop.lfBefore, endNotLf: false };
  }

  // ---- reports -------------------------------------------------------------------------------

  /** Ambiguities past MAX_REPORTS are counted, not kept (a flood of them must not cost memory). */
  ambiguitiesDropped = 0;

  #say(f: Frame, code: AmbiguityCode, detail: string, field?: string) {
    // Who sent the message is always kept: a gate must never miss a sender ambiguity.
    const sender = f.path.length === 0 && !f.inMessage && (field === "from" || field === "sender");
    if (this.ambiguities.length >= MAX_REPORTS && !sender) return void this.ambiguitiesDropped++;
    const a: Ambiguity = { code, path: f.path, inMessage: f.inMessage, detail };
    if (field !== undefined) a.field = field;
    this.ambiguities.push(a);
  }

  #limit(f: Frame, which: string, detail: string) {
    if (this.#limitSaid.has(which)) return;
    this.#limitSaid.add(which);
    this.#say(f, "limit", detail);
  }
}

function startsWithAt(b: Uint8Array, at: number, end: number, d: Uint8Array): boolean {
  if (end - at < d.length) return false;
  for (let j = 0; j < d.length; j++) if (b[at + j] !== d[j]) return false;
  return true;
}

/** Only SP and HT in [s, e). */
function isWspRange(b: Uint8Array, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (b[i] !== 32 && b[i] !== 9) return false;
  return true;
}

/** Only blanks (SP, HT) and CR in [s, e). */
function isBlankRange(b: Uint8Array, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const c = b[i];
    if (c !== 32 && c !== 9 && c !== CR) return false;
  }
  return true;
}
