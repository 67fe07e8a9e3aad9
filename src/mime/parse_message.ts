// Single-pass MIME structure parser (RFC 2045/2046): walks the lines once with a stack of active
// boundaries, so a missing close delimiter ends the part at an enclosing boundary or at the end.

import { CR, isWsp, LF, lineContentEnd, nextLine } from "./bytes.ts";
import { headerValue, parseHeaderBlock } from "./headers.ts";
import { parseContentDisposition, parseContentType } from "./params.ts";
import type { ContentType, HeaderField, MimePart } from "./types.ts";

/** Nesting beyond this is treated as an opaque leaf body. */
export const MAX_MIME_DEPTH = 50;

const DASH = 45;
const encoder = new TextEncoder();

interface State {
  bytes: Uint8Array;
  /** Active boundaries, outermost first. */
  stack: Uint8Array[];
  /** Line feeds before the current scan position. */
  lf: number;
}

/** Where a scan stopped: a boundary line of stack level `level`, or the end (level -1). */
interface Stop {
  pos: number;
  next: number;
  level: number;
  close: boolean;
}

function matchBoundary(st: State, pos: number, contentEnd: number): Stop | undefined {
  const b = st.bytes;
  if (contentEnd - pos < 3 || b[pos] !== DASH || b[pos + 1] !== DASH) return undefined;
  for (let level = st.stack.length - 1; level >= 0; level--) {
    const d = st.stack[level];
    if (contentEnd - pos - 2 < d.length) continue;
    let j = 0;
    while (j < d.length && b[pos + 2 + j] === d[j]) j++;
    if (j < d.length) continue;
    let q = pos + 2 + d.length;
    const next = nextLine(b, pos);
    if (q + 2 <= contentEnd && b[q] === DASH && b[q + 1] === DASH) {
      return { pos, next, level, close: true };
    }
    while (q < contentEnd && isWsp(b[q])) q++;
    if (q === contentEnd) return { pos, next, level, close: false };
  }
  return undefined;
}

function scanToBoundary(st: State, from: number): Stop {
  const b = st.bytes;
  let pos = from;
  while (pos < b.length) {
    const next = nextLine(b, pos);
    if (st.stack.length > 0) {
      const m = matchBoundary(st, pos, lineContentEnd(b, pos, next));
      if (m) return m;
    }
    if (b[next - 1] === LF) st.lf++;
    pos = next;
  }
  return { pos: b.length, next: b.length, level: -1, close: false };
}

/** Consumes the boundary line itself; returns the offset after it. */
function consume(st: State, stop: Stop): number {
  if (stop.next > stop.pos && st.bytes[stop.next - 1] === LF) st.lf++;
  return stop.next;
}

function countLf(b: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let i = b.indexOf(LF, from); i >= 0 && i < to; i = b.indexOf(LF, i + 1)) n++;
  return n;
}

function textPlain(): ContentType {
  return { type: "text", subtype: "plain", params: { charset: "us-ascii" } };
}

function messageRfc822(): ContentType {
  return { type: "message", subtype: "rfc822", params: {} };
}

function describe(fields: HeaderField[], fallback: () => ContentType) {
  const ctValue = headerValue(fields, "content-type");
  const cte = headerValue(fields, "content-transfer-encoding");
  const meta: Omit<MimePart, "start" | "headerEnd" | "bodyStart" | "end" | "bodyLines"> = {
    headers: fields,
    contentType: (ctValue !== undefined ? parseContentType(ctValue) : undefined) ?? fallback(),
    contentTransferEncoding: /^[^\s;(]*/.exec(cte ?? "")![0].toLowerCase() || "7bit",
    children: [],
  };
  const opt = (name: string) => headerValue(fields, name);
  const id = opt("content-id"), description = opt("content-description");
  const disposition = opt("content-disposition"), language = opt("content-language");
  const location = opt("content-location"), md5 = opt("content-md5");
  if (id !== undefined) meta.contentId = id;
  if (description !== undefined) meta.contentDescription = description;
  const parsedDisposition = disposition !== undefined
    ? parseContentDisposition(disposition)
    : undefined;
  if (parsedDisposition) meta.contentDisposition = parsedDisposition;
  if (language !== undefined) {
    meta.contentLanguage = language.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (location !== undefined) meta.contentLocation = location;
  if (md5 !== undefined) meta.contentMd5 = md5;
  return meta;
}

function isIdentityEncoding(cte: string): boolean {
  return cte === "7bit" || cte === "8bit" || cte === "binary";
}

function parseMultipart(
  st: State,
  bodyStart: number,
  boundary: string,
  depth: number,
  digest: boolean,
): { children: MimePart[]; stop: Stop } {
  st.stack.push(encoder.encode(boundary));
  const level = st.stack.length - 1;
  const children: MimePart[] = [];
  let stop = scanToBoundary(st, bodyStart); // preamble
  while (stop.level === level && !stop.close) {
    const r = parsePart(st, consume(st, stop), depth + 1, digest ? messageRfc822 : textPlain);
    children.push(r.part);
    stop = r.stop;
  }
  st.stack.pop();
  if (stop.level === level) stop = scanToBoundary(st, consume(st, stop)); // epilogue
  return { children, stop };
}

function parsePart(
  st: State,
  start: number,
  depth: number,
  fallback: () => ContentType,
): { part: MimePart; stop: Stop } {
  const b = st.bytes;
  let cut: Stop | undefined;
  const block = parseHeaderBlock(
    b,
    start,
    st.stack.length > 0 ? (p, ce) => (cut = matchBoundary(st, p, ce)) !== undefined : undefined,
  );
  st.lf += countLf(b, start, block.headerEnd);
  const meta = describe(block.fields, fallback);
  const bodyStart = cut ? lineBreakBefore(b, cut.pos, start) : block.headerEnd;
  const lfAtBody = st.lf;
  let stop: Stop;
  let end: number | undefined;
  const ct = meta.contentType;
  const boundary = ct.params.boundary;
  if (cut) stop = cut;
  else if (ct.type === "multipart" && boundary && depth < MAX_MIME_DEPTH) {
    const r = parseMultipart(st, bodyStart, boundary, depth, ct.subtype === "digest");
    meta.children = r.children;
    stop = r.stop;
  } else if (
    ct.type === "message" && (ct.subtype === "rfc822" || ct.subtype === "global") &&
    isIdentityEncoding(meta.contentTransferEncoding) && depth < MAX_MIME_DEPTH
  ) {
    const r = parsePart(st, bodyStart, depth + 1, textPlain);
    meta.message = r.part;
    stop = r.stop;
    end = r.part.end;
  } else stop = scanToBoundary(st, bodyStart);
  end ??= stop.level >= 0 ? lineBreakBefore(b, stop.pos, bodyStart) : b.length;
  const lfAtEnd = st.lf - (stop.level >= 0 && end < stop.pos && b[stop.pos - 1] === LF ? 1 : 0);
  const bodyLines = Math.max(0, lfAtEnd - lfAtBody) +
    (end > bodyStart && b[end - 1] !== LF ? 1 : 0);
  return {
    part: { start, headerEnd: bodyStart, bodyStart, end, bodyLines, ...meta },
    stop,
  };
}

/** Offset of the line break that ends just before `pos` (it belongs to a boundary), at least `floor`. */
function lineBreakBefore(b: Uint8Array, pos: number, floor: number): number {
  let e = pos;
  if (e > floor && b[e - 1] === LF) e--;
  if (e > floor && b[e - 1] === CR) e--;
  return e;
}

/** Parses a whole message. Never throws: malformed input yields a best-effort tree. */
export function parseMessage(bytes: Uint8Array): MimePart {
  return parsePart({ bytes, stack: [], lf: 0 }, 0, 0, textPlain).part;
}
