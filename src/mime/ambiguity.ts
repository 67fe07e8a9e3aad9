// What the MIME reader notices while it reads: every place where another reasonable reader (the
// Rust mailparse crate Delta Chat and filtermail use, Node's mailparser or postal-mime, a webmail)
// could see a different message than tern does. The reader reports; the gate decides (src/policy).
//
// The header checks below are written against mailparse 0.16 semantics (read, never copied):
// a field name is every byte up to the first ":" (so "From :" is a field named "From "); values
// decode encoded words and keep trailing blanks; Content-Type is split on every ";" (quotes
// ignored), its first piece lowercased is the MIME type, and a later parameter of the same name
// replaces an earlier one.

import { byteText } from "./byte_text.ts";
import { CR, LF } from "./bytes.ts";
import type { HeaderField } from "./types.ts";

export type AmbiguityCode =
  /** A header line that is not "name: value": blanks or control/8-bit bytes in the name, no colon. */
  | "field-name"
  /** A header block that begins with a blank (mailparse refuses the whole message). */
  | "leading-blank"
  /** A CR not followed by LF in a header block (mailparse refuses a lone CR at a line start). */
  | "bare-cr"
  /** A second field of a name that must occur once (first and last readers disagree). */
  | "duplicate-field"
  /** A Content-Type other readers split differently: comments, blanks in the type, encoded words. */
  | "content-type"
  /** The same parameter twice (filtermail takes the last, tern the first). */
  | "duplicate-param"
  /** A boundary parameter outside RFC 2046 §5.1.1 (empty, longer than 70, odd characters). */
  | "boundary-param"
  /** A Content-Transfer-Encoding that is not exactly one of the five RFC 2045 names. */
  | "transfer-encoding"
  /** A line that starts with "--boundary" but is not exactly a delimiter (mailparse: it is). */
  | "boundary-prefix"
  /** A close delimiter before any delimiter (mailparse opens a part after it). */
  | "close-before-open"
  /** A line starting with "--boundary" after that boundary's close delimiter. */
  | "boundary-after-close"
  /** A multipart that ends without its close delimiter. */
  | "missing-close"
  /** A body part whose header block is not ended by a blank line. */
  | "header-cut"
  /** Text (not only blanks) before the first delimiter of a multipart. */
  | "preamble-text"
  /** Text (not only blanks) after the close delimiter of a multipart. */
  | "epilogue-text"
  /** A depth, part, header-size or field-count cap was reached: not everything was read. */
  | "limit";

export interface Ambiguity {
  code: AmbiguityCode;
  /** IMAP part number of the part concerned ([] for the message itself). */
  path: readonly number[];
  /** True inside an encapsulated message (message/rfc822), which filters treat as opaque. */
  inMessage: boolean;
  /** Lowercased field name concerned, if any (for field-name: the name up to the colon, trimmed). */
  field?: string;
  detail: string;
}

/** Fields a message header may carry once (RFC 5322 §3.6, RFC 2045, chatmail's own). */
const MESSAGE_SINGLETONS = new Set([
  "date",
  "from",
  "sender",
  "reply-to",
  "to",
  "cc",
  "bcc",
  "message-id",
  "in-reply-to",
  "references",
  "subject",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-disposition",
  "secure-join",
  "auto-submitted",
]);

/** Fields a body part header may carry once (RFC 2045 §3, RFC 2183). */
const PART_SINGLETONS = new Set([
  "content-type",
  "content-transfer-encoding",
  "content-disposition",
  "content-id",
  "content-description",
]);

const TRANSFER_ENCODINGS = new Set(["7bit", "8bit", "binary", "base64", "quoted-printable"]);

/** RFC 2045 token characters: printable ASCII without blanks and tspecials. */
function isTokenChar(c: number): boolean {
  if (c <= 32 || c >= 127) return false;
  return !'()<>@,;:\\"/[]?='.includes(String.fromCharCode(c));
}

/** RFC 2046 §5.1.1 bchars (space allowed inside, not last). */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

type Report = (code: AmbiguityCode, detail: string, field?: string) => void;

/** Checks one header block: `raw` holds its bytes, `fields` its fields (offsets minus `base`). */
export function checkHeaderBlock(
  raw: Uint8Array,
  base: number,
  fields: readonly HeaderField[],
  isMessageHeader: boolean,
  report: Report,
): void {
  if (raw.length > 0 && (raw[0] === 32 || raw[0] === 9)) {
    report(raw[0] === 32 ? "leading-blank" : "field-name", "the header begins with a blank");
  }
  // Every CR is looked at (one per line): searched as text (byteText) unless the block is a
  // line or two, where one decode would cost more than the searches it saves.
  const text = raw.length >= 64 ? byteText(raw) : null;
  const nextCr = (from: number) => text !== null ? text.indexOf("\r", from) : raw.indexOf(CR, from);
  for (let i = nextCr(0); i >= 0; i = nextCr(i + 1)) {
    if (raw[i + 1] !== LF) {
      report("bare-cr", "a CR without LF in the header");
      break;
    }
  }
  const singletons = isMessageHeader ? MESSAGE_SINGLETONS : PART_SINGLETONS;
  const seen = new Set<string>();
  for (const f of fields) {
    const s = f.start - base;
    if (f.name === "" || !plainName(raw, s)) {
      const rawName = nameBeforeColon(raw, s, f.end - base);
      report(
        "field-name",
        `header line "${preview(rawName)}" is not a plain field`,
        rawName.trim().toLowerCase(),
      );
      continue;
    }
    const name = f.name.toLowerCase();
    if (singletons.has(name)) {
      if (seen.has(name)) report("duplicate-field", `a second ${f.name} field`, name);
      seen.add(name);
    }
    if (name === "content-type") {
      checkContentType(raw, text, s + f.name.length + 1, f.end - base, report);
    } else if (name === "content-transfer-encoding") {
      checkTransferEncoding(raw, text, s + f.name.length + 1, f.end - base, report);
    }
  }
}

/** True when the field at `s` starts with token characters directly followed by ":". */
function plainName(raw: Uint8Array, s: number): boolean {
  let i = s;
  while (i < raw.length && raw[i] !== 58) {
    const c = raw[i];
    if (c <= 32 || c >= 127) return false;
    i++;
  }
  return i > s && i < raw.length;
}

function nameBeforeColon(raw: Uint8Array, s: number, e: number): string {
  let i = s;
  while (i < e && raw[i] !== 58 && raw[i] !== LF && raw[i] !== CR) i++;
  return latin1.decode(raw.subarray(s, Math.min(i, s + 80)));
}

function preview(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "?");
}

const latin1 = new TextDecoder("latin1");

/**
 * Bytes [s, e) as the Latin-1 decoder gives them. An ASCII range (every Content-Type and
 * Content-Transfer-Encoding a mailer writes) is the same chars in `text`, the block as byteText
 * gave it (a slice, no decoder call), or copied char by char when it is short.
 */
function latin1Text(raw: Uint8Array, text: string | null, s: number, e: number): string {
  let i = s;
  while (i < e && raw[i] < 0x80) i++;
  if (i === e) {
    if (text !== null) return text.slice(s, e);
    if (e - s <= 256) {
      return String.fromCharCode.apply(null, raw.subarray(s, e) as unknown as number[]);
    }
  }
  return latin1.decode(raw.subarray(s, e));
}

/**
 * Content-Type in the one form every reader splits alike: `type/subtype` of tokens, then
 * `; name=value` with a token or a plain quoted string (no backslash, ";", CR, LF or encoded
 * word), no comments, no RFC 2231 `*` names, no parameter twice, a boundary within RFC 2046.
 */
function checkContentType(
  raw: Uint8Array,
  text: string | null,
  s: number,
  e: number,
  report: Report,
): void {
  for (let i = s; i < e; i++) {
    const c = raw[i];
    if (c >= 127 || (c < 32 && c !== 9 && c !== CR && c !== LF)) {
      return report("content-type", "Content-Type holds control or 8-bit bytes", "content-type");
    }
  }
  const v = latin1Text(raw, text, s, e);
  let i = 0;
  const blanks = (allowFold: boolean) => {
    for (;;) {
      if (v[i] === " " || v[i] === "\t") i++;
      else if (allowFold && v[i] === "\r" && v[i + 1] === "\n" && /[ \t]/.test(v[i + 2] ?? "")) {
        i += 2;
      } else if (allowFold && v[i] === "\n" && /[ \t]/.test(v[i + 1] ?? "")) i += 1;
      else return;
    }
  };
  const token = () => {
    const start = i;
    while (i < v.length && isTokenChar(v.charCodeAt(i))) i++;
    return v.slice(start, i);
  };
  const bad = (why: string) => report("content-type", `Content-Type ${why}`, "content-type");
  if (v.includes("=?")) return bad("holds an encoded word");
  if (v.includes("(")) return bad("holds a comment");
  blanks(true);
  const type = token();
  if (!type || v[i] !== "/") return bad("is not type/subtype");
  i++;
  const subtype = token();
  if (!subtype) return bad("is not type/subtype");
  const names = new Set<string>();
  for (;;) {
    blanks(true);
    if (i >= v.length || v.slice(i).trim() === "") return;
    if (v[i] !== ";") return bad(`has "${preview(v.slice(i, i + 20))}" after the type`);
    i++;
    blanks(true);
    if (i >= v.length || v.slice(i).trim() === "") return; // a trailing ";" is harmless
    const name = token().toLowerCase();
    if (!name || v[i] !== "=") return bad("has a parameter without a name or value");
    if (name.includes("*")) return bad(`uses an RFC 2231 parameter (${name})`);
    i++;
    let value: string;
    if (v[i] === '"') {
      const close = v.indexOf('"', i + 1);
      if (close < 0) return bad("has an unterminated quoted string");
      value = v.slice(i + 1, close);
      if (/[\\;\r\n]/.test(value)) return bad("has a quoted value other readers split");
      i = close + 1;
    } else {
      value = token();
      if (!value) return bad(`has an empty value for ${name}`);
    }
    if (names.has(name)) {
      report("duplicate-param", `Content-Type names ${name} twice`, "content-type");
    }
    names.add(name);
    if (name === "boundary" && !BOUNDARY.test(value)) {
      report("boundary-param", "the boundary is not an RFC 2046 boundary", "content-type");
    }
  }
}

/** Exactly one of the five encodings, unfolded, without trailing blanks or comments. */
function checkTransferEncoding(
  raw: Uint8Array,
  text: string | null,
  s: number,
  e: number,
  report: Report,
): void {
  let i = s;
  while (i < e && (raw[i] === 32 || raw[i] === 9)) i++;
  let end = e;
  if (end > i && raw[end - 1] === LF) end--;
  if (end > i && raw[end - 1] === CR) end--;
  const value = latin1Text(raw, text, i, Math.max(i, Math.min(end, i + 64))).toLowerCase();
  if (!TRANSFER_ENCODINGS.has(value)) {
    report(
      "transfer-encoding",
      `Content-Transfer-Encoding "${preview(value.slice(0, 40))}" is not one of the five`,
      "content-transfer-encoding",
    );
  }
}
