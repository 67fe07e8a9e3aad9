// The part tree in a compact binary form, so the store can keep it beside a body (an opaque blob
// per body) and IMAP can render BODYSTRUCTURE, ENVELOPE and BODY[section] offsets without reading
// the message again. Only what cannot be recomputed is kept: per part its offsets, line count and
// raw header bytes; fields, content types and the rest are read back from those header bytes by
// the same code the parser uses, so a decoded tree reads exactly as the parsed one.
//
// Layout (varints are unsigned LEB128): "TMS" 1, then the parts in pre-order:
//   flags (1: has an encapsulated message), start, headerEnd-start, bodyStart-headerEnd,
//   end-bodyStart, bodyLines, header length, header bytes, child count, children…, message.

import { splitFields } from "./headers.ts";
import { describePart, messageRfc822, textPlain } from "./part_meta.ts";
import type { ContentType, MimePart } from "./types.ts";

const MAGIC = [0x54, 0x4d, 0x53, 1]; // "TMS" version 1

/** encodeStructure's working buffer, kept between calls up to SCRATCH_MAX bytes. */
let scratch: Uint8Array = new Uint8Array(1024);
const SCRATCH_MAX = 64 * 1024;

class Writer {
  n = 0;
  constructor(public buf: Uint8Array) {}
  #room(k: number) {
    if (this.n + k <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.n + k, this.buf.length * 2));
    grown.set(this.buf.subarray(0, this.n));
    this.buf = grown;
  }
  byte(b: number) {
    this.#room(1);
    this.buf[this.n++] = b;
  }
  varint(v: number) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`structure: bad number ${v}`);
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }
  bytes(b: Uint8Array) {
    this.varint(b.length);
    this.#room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
}

class Reader {
  i = 0;
  constructor(readonly b: Uint8Array) {}
  byte(): number {
    if (this.i >= this.b.length) throw new RangeError("structure: truncated");
    return this.b[this.i++];
  }
  varint(): number {
    let v = 0, scale = 1;
    for (;;) {
      const b = this.byte();
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new RangeError("structure: number too long");
    }
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.i + n > this.b.length) throw new RangeError("structure: truncated");
    const out = this.b.slice(this.i, this.i + n);
    this.i += n;
    return out;
  }
}

function write(w: Writer, p: MimePart) {
  w.byte(p.message ? 1 : 0);
  w.varint(p.start);
  w.varint(p.headerEnd - p.start);
  w.varint(p.bodyStart - p.headerEnd);
  w.varint(p.end - p.bodyStart);
  w.varint(p.bodyLines);
  w.bytes(p.rawHeader ?? new Uint8Array(0));
  w.varint(p.children.length);
  for (const c of p.children) write(w, c);
  if (p.message) write(w, p.message);
}

/** The tree as a blob. Parts must carry their raw header (parser output always does). */
export function encodeStructure(root: MimePart): Uint8Array {
  const w = new Writer(scratch);
  for (const b of MAGIC) w.byte(b);
  write(w, root);
  // Writing is synchronous: one buffer serves every call, and only the result is allocated.
  if (w.buf.length <= SCRATCH_MAX) scratch = w.buf;
  return w.buf.slice(0, w.n);
}

/** Builds a part from its offsets and raw header, reading the fields as the parser does. */
function part(
  start: number,
  rawHeader: Uint8Array,
  fallback: () => ContentType,
  offsets: { headerEnd: number; bodyStart: number; end: number; bodyLines: number },
): MimePart {
  const { fields } = splitFields(rawHeader, start, Number.MAX_SAFE_INTEGER);
  return {
    start,
    ...offsets,
    ...describePart(fields, fallback),
    rawHeader,
  };
}

function read(r: Reader, fallback: () => ContentType, depth: number): MimePart {
  if (depth > 200) throw new RangeError("structure: nested too deep");
  const flags = r.byte();
  const start = r.varint();
  const headerEnd = start + r.varint();
  const bodyStart = headerEnd + r.varint();
  const end = bodyStart + r.varint();
  const bodyLines = r.varint();
  const raw = r.bytes();
  const p = part(start, raw, fallback, { headerEnd, bodyStart, end, bodyLines });
  const n = r.varint();
  const digest = p.contentType.type === "multipart" && p.contentType.subtype === "digest";
  for (let i = 0; i < n; i++) {
    p.children.push(read(r, digest ? messageRfc822 : textPlain, depth + 1));
  }
  if (flags & 1) p.message = read(r, textPlain, depth + 1);
  return p;
}

/** The tree of a blob made by encodeStructure. Throws RangeError on a damaged blob. */
export function decodeStructure(blob: Uint8Array): MimePart {
  const r = new Reader(blob);
  for (const b of MAGIC) {
    if (r.byte() !== b) throw new RangeError("structure: not a tern structure blob");
  }
  const root = read(r, textPlain, 0);
  if (r.i !== blob.length) throw new RangeError("structure: trailing bytes");
  return root;
}

function shift(p: MimePart, delta: number): MimePart {
  return {
    ...p,
    start: p.start + delta,
    headerEnd: p.headerEnd + delta,
    bodyStart: p.bodyStart + delta,
    end: p.end + delta,
    headers: p.headers.map((f) => ({ ...f, start: f.start + delta, end: f.end + delta })),
    children: p.children.map((c) => shift(c, delta)),
    ...(p.message ? { message: shift(p.message, delta) } : {}),
  };
}

/**
 * The tree of the same message with its top-level header block replaced by `head` (the stored
 * message is `head` + the original bytes from `root.headerEnd` on), as after the privacy
 * rewrites of delivery. The rewrite must leave the Content-* fields as they were.
 */
export function withTopHeader(root: MimePart, head: Uint8Array): MimePart {
  const delta = head.length - root.headerEnd;
  const top = part(0, head, textPlain, {
    headerEnd: head.length,
    bodyStart: root.bodyStart + delta,
    end: root.end + delta,
    bodyLines: root.bodyLines,
  });
  top.children = root.children.map((c) => shift(c, delta));
  if (root.message) top.message = shift(root.message, delta);
  return top;
}
