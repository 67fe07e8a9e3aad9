// Header blocks on raw bytes: field splitting with exact offsets, lookups, and byte-exact rewriting
// that leaves the body and every untouched field as they were (RFC 5322 §2.2).

import { byteText } from "./byte_text.ts";
import { concatBytes, CR, decodeHeaderText, isWsp, LF, lineContentEnd, nextLine } from "./bytes.ts";
import type { HeaderField, MimePart } from "./types.ts";

export interface HeaderBlock {
  fields: HeaderField[];
  /** Just after the blank line; where a stop line begins; or the end of the data. */
  headerEnd: number;
  /** True when a blank line ended the block. */
  complete: boolean;
}

/** Decides whether the line at [pos, contentEnd) ends the block early (a MIME boundary). */
export type StopLine = (pos: number, contentEnd: number) => boolean;

const COLON = 58;
/** Blocks from this size on are read through byteText (shorter: one field or two). */
const HEADER_TEXT_MIN = 64;

/** The text of [s, e): a slice of `text` when that holds only ASCII there (see byteText). */
function fieldText(bytes: Uint8Array, text: string | null, s: number, e: number): string {
  if (text !== null) {
    const t = text.slice(s, e);
    if (!t.includes("\uFFFD")) return t; // ASCII only: what decodeHeaderText gives
  }
  return decodeHeaderText(bytes, s, e);
}

/** `text`: `bytes` as byteText gives it, or null (then the bytes are searched). */
function makeField(
  bytes: Uint8Array,
  start: number,
  end: number,
  text: string | null,
): HeaderField {
  const nl = text !== null ? text.indexOf("\n", start) : bytes.indexOf(LF, start);
  const firstEnd = lineContentEnd(bytes, start, nl < 0 ? bytes.length : nl + 1);
  const colon = text !== null ? text.indexOf(":", start) : bytes.indexOf(COLON, start);
  let nameEnd = colon >= 0 && colon < firstEnd ? colon : -1;
  let valid = nameEnd > start;
  if (valid) {
    while (nameEnd > start && isWsp(bytes[nameEnd - 1])) nameEnd--; // obs-optional: "Name :"
    for (let i = start; i < nameEnd; i++) {
      const b = bytes[i];
      if (b <= 32 || b >= 127) {
        valid = false;
        break;
      }
    }
    valid &&= nameEnd > start;
  }
  const valueStart = valid ? colon + 1 : start;
  // The field's own line break is left out before decoding: line breaks are removed anyway, and
  // most values then have none left to remove.
  let valueEnd = end;
  while (valueEnd > valueStart && (bytes[valueEnd - 1] === LF || bytes[valueEnd - 1] === CR)) {
    valueEnd--;
  }
  let value = fieldText(bytes, text, valueStart, valueEnd);
  if (value.includes("\n") || value.includes("\r")) value = value.replace(/[\r\n]+/g, "");
  return {
    name: valid ? fieldText(bytes, text, start, nameEnd) : "",
    value: value.trim(),
    start,
    end,
  };
}

/** Splits the header block starting at `start` into fields. Never throws. */
export function parseHeaderBlock(bytes: Uint8Array, start = 0, stop?: StopLine): HeaderBlock {
  const fields: HeaderField[] = [];
  let fieldStart = -1;
  let pos = start;
  // Searched as text when long enough (every caller passes a header block, which is bounded).
  // One decode of the block costs less than decoding its names and values one by one.
  const text = bytes.length - start >= HEADER_TEXT_MIN ? byteText(bytes) : null;
  const flush = (end: number) => {
    if (fieldStart >= 0) fields.push(makeField(bytes, fieldStart, end, text));
    fieldStart = -1;
  };
  while (pos < bytes.length) {
    const nl = text !== null ? text.indexOf("\n", pos) : bytes.indexOf(LF, pos);
    const next = nl < 0 ? bytes.length : nl + 1;
    const contentEnd = lineContentEnd(bytes, pos, next);
    if (contentEnd === pos) {
      flush(pos);
      return { fields, headerEnd: next, complete: true };
    }
    if (stop && stop(pos, contentEnd)) {
      flush(pos);
      return { fields, headerEnd: pos, complete: false };
    }
    if (!(fieldStart >= 0 && isWsp(bytes[pos]))) {
      flush(pos);
      fieldStart = pos;
    }
    pos = next;
  }
  flush(bytes.length);
  return { fields, headerEnd: bytes.length, complete: false };
}

/**
 * Splits a whole header block held in `bytes` (up to its blank line or the end) into at most
 * `maxFields` fields, with offsets shifted by `base`. `truncated` tells that fields were left out.
 */
export function splitFields(
  bytes: Uint8Array,
  base: number,
  maxFields: number,
): { fields: HeaderField[]; truncated: boolean } {
  const block = parseHeaderBlock(bytes, 0);
  const truncated = block.fields.length > maxFields;
  const fields = truncated ? block.fields.slice(0, maxFields) : block.fields;
  if (base !== 0) {
    for (const f of fields) {
      f.start += base;
      f.end += base;
    }
  }
  return { fields, truncated };
}

/** Where the top-level header block ends: just after its blank line, or at the end of the data. */
export function splitHeader(bytes: Uint8Array): { headerEnd: number; complete: boolean } {
  let pos = 0;
  while (pos < bytes.length) {
    const next = nextLine(bytes, pos);
    if (lineContentEnd(bytes, pos, next) === pos) return { headerEnd: next, complete: true };
    pos = next;
  }
  return { headerEnd: bytes.length, complete: false };
}

type Fields = MimePart | readonly HeaderField[];

function fieldsOf(h: Fields): readonly HeaderField[] {
  return Array.isArray(h) ? h : (h as MimePart).headers;
}

/** Value of the first field with this name (case-insensitive). */
export function headerValue(h: Fields, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const f of fieldsOf(h)) {
    if (f.name.length === lower.length && f.name.toLowerCase() === lower) return f.value;
  }
  return undefined;
}

/** Values of every field with this name (case-insensitive), in order. */
export function headerValues(h: Fields, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const f of fieldsOf(h)) {
    if (f.name.length === lower.length && f.name.toLowerCase() === lower) out.push(f.value);
  }
  return out;
}

/** A field to write: new, or a changed copy of a parsed one. */
export interface NewHeaderField {
  name: string;
  value: string;
}

const encoder = new TextEncoder();
const CRLF_BYTES = encoder.encode("\r\n");
const LF_BYTES = encoder.encode("\n");

function serializeField(f: NewHeaderField, eol: string): Uint8Array {
  // Keep folding the caller wrote; any other line break would inject a field, so it becomes a space.
  const value = f.value.replace(
    /\r\n|\r|\n/g,
    (
      m,
      at: number,
      all: string,
    ) => (all[at + m.length] === " " || all[at + m.length] === "\t" ? eol : " "),
  );
  const name = f.name.replace(/[\s:]+/g, "");
  return encoder.encode(`${name}: ${value}${eol}`);
}

/**
 * Rewrites the top-level header block. `edit` gets the parsed fields and returns the fields to
 * keep, in order: returned originals are copied byte-exact, anything else is serialized anew.
 * The blank line and the body are copied untouched.
 */
export function rewriteHeaders(
  bytes: Uint8Array,
  edit: (fields: readonly HeaderField[]) => ReadonlyArray<HeaderField | NewHeaderField>,
): Uint8Array {
  const block = parseHeaderBlock(bytes, 0);
  const fieldsEnd = block.fields.length ? block.fields[block.fields.length - 1].end : 0;
  const firstBreak = bytes.indexOf(LF);
  const eol = firstBreak > 0 && bytes[firstBreak - 1] === CR
    ? "\r\n"
    : firstBreak < 0
    ? "\r\n"
    : "\n";
  const eolBytes = eol === "\n" ? LF_BYTES : CRLF_BYTES;
  const originals = new Set<object>(block.fields);
  const out: Uint8Array[] = [];
  let endsWithBreak = true;
  for (const f of edit(block.fields)) {
    if (originals.has(f)) {
      const o = f as HeaderField;
      if (!endsWithBreak) out.push(eolBytes);
      out.push(bytes.subarray(o.start, o.end));
      endsWithBreak = o.end > o.start && bytes[o.end - 1] === LF;
    } else {
      if (!endsWithBreak) out.push(eolBytes);
      out.push(serializeField(f, eol));
      endsWithBreak = true;
    }
  }
  const rest = bytes.subarray(fieldsEnd);
  if (!endsWithBreak && rest.length > 0) out.push(eolBytes);
  out.push(rest);
  return concatBytes(out);
}
