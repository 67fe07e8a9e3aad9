// FETCH data from a parsed message (pure, no I/O): ENVELOPE (RFC 3501 §7.4.2), BODY and
// BODYSTRUCTURE, BODY[section] byte slices (§6.4.5) and BINARY content (RFC 3516). Slices come
// straight from the stored bytes through the MIME parser's offsets and are never re-encoded.
// ENVELOPE, BODYSTRUCTURE and sectionRange() need no message bytes when the tree carries its raw
// header blocks (parser output, or a tree decoded from the stored structure blob).

import {
  type Address,
  decodeBody,
  type HeaderField,
  type Mailbox,
  type MimePart,
  parseAddressList,
} from "../mime/mod.ts";
import type { Section } from "./types.ts";
import {
  concatPieces,
  imapString,
  imapStringBytes,
  type Piece,
  PieceList,
} from "./render_strings.ts";

export { concatPieces, imapString, imapStringBytes, type Piece } from "./render_strings.ts";

const CRLF = new Uint8Array([13, 10]);
const COLON = 58;

// ---------------------------------------------------------------------------------------------
// ENVELOPE

function firstField(part: MimePart, name: string): HeaderField | undefined {
  const lower = name.toLowerCase();
  return part.headers.find((f) => f.name.length === lower.length && f.name.toLowerCase() === lower);
}

/**
 * A field's raw bytes: from the part's kept header block when the tree carries it (a tree read
 * back from the store has no message bytes at hand), else from the message.
 */
function fieldBytes(part: MimePart, f: HeaderField, bytes: Uint8Array | undefined): Uint8Array {
  if (part.rawHeader && f.end - part.start <= part.rawHeader.length) {
    return part.rawHeader.subarray(f.start - part.start, f.end - part.start);
  }
  if (!bytes) throw new Error("fetch_render: a part without raw header needs the message bytes");
  return bytes.subarray(f.start, f.end);
}

/**
 * The field's value as raw bytes: unfolded (CR and LF removed, the folding blank kept) and
 * trimmed. Raw, so 8-bit text reaches the client exactly as stored, encoded words untouched.
 */
function rawValue(part: MimePart, bytes: Uint8Array | undefined, f: HeaderField): Uint8Array {
  const raw = fieldBytes(part, f, bytes);
  let i = raw.indexOf(COLON);
  i = i < 0 ? raw.length : i + 1;
  const out = new Uint8Array(raw.length - i);
  let n = 0;
  for (; i < raw.length; i++) if (raw[i] !== 13 && raw[i] !== 10) out[n++] = raw[i];
  let s = 0, e = n;
  while (s < e && (out[s] === 32 || out[s] === 9)) s++;
  while (e > s && (out[e - 1] === 32 || out[e - 1] === 9)) e--;
  return out.subarray(s, e);
}

/** An unstructured envelope member: NIL when the field is absent, else the raw value. */
function rawString(root: MimePart, bytes: Uint8Array | undefined, name: string): Piece {
  const f = firstField(root, name);
  return f ? imapStringBytes(rawValue(root, bytes, f)) : "NIL";
}

function nstring(v: string | undefined): Piece {
  return imapString(v ?? null);
}

function pushMailbox(out: PieceList, m: Mailbox) {
  // (name adl mailbox host). A NIL host would mark a group, so an address without a domain
  // gets an empty host instead (RFC 3501 §7.4.2).
  out.push(
    "(",
    nstring(m.name || undefined),
    " ",
    nstring(m.route || undefined),
    " ",
    imapString(m.local),
    " ",
  );
  out.push(imapString(m.domain), ")");
}

function pushAddressList(out: PieceList, list: Address[] | undefined) {
  if (!list || list.length === 0) return void out.push("NIL");
  out.push("(");
  for (const a of list) {
    if (a.kind === "mailbox") pushMailbox(out, a);
    else {
      // Group syntax: (NIL NIL "name" NIL) starts the group, (NIL NIL NIL NIL) ends it.
      out.push("(NIL NIL ", imapString(a.name), " NIL)");
      for (const m of a.members) pushMailbox(out, m);
      out.push("(NIL NIL NIL NIL)");
    }
  }
  out.push(")");
}

function addresses(root: MimePart, name: string): Address[] | undefined {
  const f = firstField(root, name);
  return f ? parseAddressList(f.value) : undefined;
}

function envelopeInto(out: PieceList, root: MimePart, bytes: Uint8Array | undefined) {
  const from = addresses(root, "from");
  // Sender and Reply-To default to From when absent or empty (RFC 3501 §7.4.2).
  const orFrom = (list: Address[] | undefined) => list && list.length ? list : from;
  out.push("(", rawString(root, bytes, "date"), " ", rawString(root, bytes, "subject"), " ");
  pushAddressList(out, from);
  out.push(" ");
  pushAddressList(out, orFrom(addresses(root, "sender")));
  out.push(" ");
  pushAddressList(out, orFrom(addresses(root, "reply-to")));
  for (const name of ["to", "cc", "bcc"]) {
    out.push(" ");
    pushAddressList(out, addresses(root, name));
  }
  out.push(" ", rawString(root, bytes, "in-reply-to"), " ");
  out.push(rawString(root, bytes, "message-id"), ")");
}

/**
 * ENVELOPE of a message: (date subject from sender reply-to to cc bcc in-reply-to message-id).
 * Unstructured members are the raw header values (encoded words not decoded); NIL when absent.
 */
export function renderEnvelope(root: MimePart, bytes?: Uint8Array): Piece[] {
  const out = new PieceList();
  envelopeInto(out, root, bytes);
  return out.pieces;
}

// ---------------------------------------------------------------------------------------------
// BODY / BODYSTRUCTURE

function pushParams(out: PieceList, params: Record<string, string>) {
  const entries = Object.entries(params);
  if (entries.length === 0) return void out.push("NIL");
  out.push("(");
  entries.forEach(([k, v], i) =>
    out.push(i ? " " : "", imapString(k.toUpperCase()), " ", imapString(v))
  );
  out.push(")");
}

/** body-fld-dsp SP body-fld-lang SP body-fld-loc, shared by single parts and multiparts. */
function pushDspLangLoc(out: PieceList, part: MimePart) {
  const d = part.contentDisposition;
  if (d) {
    out.push("(", imapString(d.value.toUpperCase()), " ");
    pushParams(out, d.params);
    out.push(")");
  } else out.push("NIL");
  out.push(" ");
  const lang = part.contentLanguage ?? [];
  if (lang.length === 0) out.push("NIL");
  else if (lang.length === 1) out.push(imapString(lang[0]));
  else {
    out.push("(");
    lang.forEach((l, i) => out.push(i ? " " : "", imapString(l)));
    out.push(")");
  }
  out.push(" ", nstring(part.contentLocation));
}

function isEncapsulated(part: MimePart): part is MimePart & { message: MimePart } {
  const ct = part.contentType;
  return part.message !== undefined && ct.type === "message" &&
    (ct.subtype === "rfc822" || ct.subtype === "global");
}

/** A multipart without any body part is not allowed by the grammar: stand in an empty text part. */
const EMPTY_TEXT = '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0';

function bodyInto(out: PieceList, part: MimePart, bytes: Uint8Array | undefined, ext: boolean) {
  const ct = part.contentType;
  if (ct.type === "multipart") {
    // body-type-mpart: the bodies back to back, then the subtype and extension data.
    out.push("(");
    if (part.children.length === 0) {
      out.push(EMPTY_TEXT, ext ? " NIL NIL NIL NIL)" : ")");
    }
    for (const child of part.children) bodyInto(out, child, bytes, ext);
    out.push(" ", imapString(ct.subtype.toUpperCase()));
    if (ext) {
      out.push(" ");
      pushParams(out, ct.params);
      out.push(" ");
      pushDspLangLoc(out, part);
    }
    out.push(")");
    return;
  }
  const params = ct.type === "text" && ct.subtype === "plain" && !("charset" in ct.params)
    ? { ...ct.params, charset: "us-ascii" } // RFC 2046 §4.1.2 default
    : ct.params;
  // body-fields: type subtype params id description encoding octets.
  out.push("(", imapString(ct.type.toUpperCase()), " ", imapString(ct.subtype.toUpperCase()), " ");
  pushParams(out, params);
  out.push(" ", nstring(part.contentId), " ", nstring(part.contentDescription), " ");
  out.push(imapString(part.contentTransferEncoding.toUpperCase()), " ");
  out.push(String(part.end - part.bodyStart));
  if (isEncapsulated(part)) {
    // body-type-msg: envelope and body of the encapsulated message, then its line count.
    out.push(" ");
    envelopeInto(out, part.message, bytes);
    out.push(" ");
    bodyInto(out, part.message, bytes, ext);
    out.push(" ", String(part.bodyLines));
  } else if (ct.type === "text") out.push(" ", String(part.bodyLines));
  if (ext) {
    out.push(" ", nstring(part.contentMd5), " ");
    pushDspLangLoc(out, part);
  }
  out.push(")");
}

/**
 * BODYSTRUCTURE (`extensible` true: with extension data md5/params, disposition, language,
 * location) or BODY (false). A message/rfc822 part the MIME parser did not open (for example a
 * base64 one) is described as a basic part, without envelope.
 */
export function renderBodyStructure(
  root: MimePart,
  bytes: Uint8Array | undefined,
  extensible: boolean,
): Piece[] {
  const out = new PieceList();
  bodyInto(out, root, bytes, extensible);
  return out.pieces;
}

// ---------------------------------------------------------------------------------------------
// BODY[section], BINARY[part]

/**
 * The part a part path names (RFC 3501 §6.4.5): multipart children are numbered from 1; a
 * non-multipart message has only part 1, its body; the numbers after a message/rfc822 part
 * count inside the encapsulated message. The empty path names the message itself.
 */
export function resolvePart(root: MimePart, path: readonly number[]): MimePart | null {
  let cur = root;
  let isMessage = true; // cur is a message (root or encapsulated), not a body part
  for (const n of path) {
    if (!Number.isInteger(n) || n < 1) return null;
    if (!isMessage && isEncapsulated(cur)) {
      cur = cur.message;
      isMessage = true;
    }
    if (cur.children.length > 0) cur = cur.children[n - 1];
    else if (isMessage && n === 1) { /* part 1 of a non-multipart message: its body */ }
    else return null;
    if (!cur) return null;
    isMessage = false;
  }
  return cur;
}

function headerFields(
  bytes: Uint8Array | undefined,
  msg: MimePart,
  names: readonly string[],
  not: boolean,
): Uint8Array {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const chunks: Uint8Array[] = [];
  for (const f of msg.headers) {
    if (!f.name || wanted.has(f.name.toLowerCase()) === not) continue;
    const raw = fieldBytes(msg, f, bytes);
    chunks.push(raw);
    if (raw.length === 0 || raw[raw.length - 1] !== 10) chunks.push(CRLF); // unterminated last line
  }
  chunks.push(CRLF); // the blank line that ends the subset (RFC 3501 §6.4.5)
  return concatPieces(chunks);
}

/**
 * BODY[section] content. Returns a view into `bytes` where possible, a fresh array for
 * HEADER.FIELDS (.NOT). Returns null when the part does not exist or the specifier does not
 * apply to it (HEADER/TEXT of a part that is not message/rfc822, MIME without a part); the
 * session answers that with an empty string (RFC 9051 §6.4.5), so null never reaches the wire.
 */
export function sectionBytes(
  bytes: Uint8Array,
  root: MimePart,
  section: Section,
): Uint8Array | null {
  const part = resolvePart(root, section.part);
  if (!part) return null;
  const top = section.part.length === 0;
  switch (section.specifier) {
    case "":
      return top ? bytes : bytes.subarray(part.bodyStart, part.end);
    case "MIME":
      // The part's own MIME header; for part 1 of a non-multipart message, the message header.
      return top ? null : bytes.subarray(part.start, part.headerEnd);
  }
  // HEADER and TEXT of the message itself, or of the message a message/rfc822 part carries.
  const msg = top ? root : isEncapsulated(part) ? part.message : null;
  if (!msg) return null;
  switch (section.specifier) {
    case "HEADER":
      return bytes.subarray(msg.start, msg.headerEnd);
    case "TEXT":
      return bytes.subarray(msg.bodyStart, msg.end);
    case "HEADER.FIELDS":
      return headerFields(bytes, msg, section.fields ?? [], false);
    case "HEADER.FIELDS.NOT":
      return headerFields(bytes, msg, section.fields ?? [], true);
  }
}

/**
 * Where BODY[section] lies in the stored message, for a ranged read instead of a whole body:
 * a byte range, or the bytes themselves for HEADER.FIELDS (.NOT), built from the tree's kept
 * header blocks. Null as for sectionBytes. Works on a tree read back from the store.
 */
export function sectionRange(
  root: MimePart,
  section: Section,
): { start: number; end: number } | { bytes: Uint8Array } | null {
  const part = resolvePart(root, section.part);
  if (!part) return null;
  const top = section.part.length === 0;
  switch (section.specifier) {
    case "":
      return top ? { start: root.start, end: root.end } : { start: part.bodyStart, end: part.end };
    case "MIME":
      return top ? null : { start: part.start, end: part.headerEnd };
  }
  const msg = top ? root : isEncapsulated(part) ? part.message : null;
  if (!msg) return null;
  switch (section.specifier) {
    case "HEADER":
      return { start: msg.start, end: msg.headerEnd };
    case "TEXT":
      return { start: msg.bodyStart, end: msg.end };
    case "HEADER.FIELDS":
      return { bytes: headerFields(undefined, msg, section.fields ?? [], false) };
    case "HEADER.FIELDS.NOT":
      return { bytes: headerFields(undefined, msg, section.fields ?? [], true) };
  }
}

/** `<offset.length>` partial: an empty array when the offset is at or past the end (§6.4.5). */
export function partialSlice(data: Uint8Array, offset: number, length: number): Uint8Array {
  const start = Math.min(Math.max(0, offset), data.length);
  return data.subarray(start, Math.min(data.length, start + Math.max(0, length)));
}

/** Returned by binarySection for a transfer encoding it cannot undo: `NO [UNKNOWN-CTE]`. */
export const UNKNOWN_CTE = "UNKNOWN-CTE";

const IDENTITY_CTE = new Set(["7bit", "8bit", "binary"]);

/**
 * Where BINARY[part] lies in the stored message (RFC 3516 §4.2), for a ranged read: the part's
 * body, and the transfer encoding to remove from it (null: none). The empty path is the whole
 * message. Null when the part does not exist; UNKNOWN_CTE for an encoding that cannot be undone.
 */
export function binaryRange(
  root: MimePart,
  part: readonly number[],
): { start: number; end: number; decode: string | null } | null | typeof UNKNOWN_CTE {
  if (part.length === 0) return { start: root.start, end: root.end, decode: null };
  const p = resolvePart(root, part);
  if (!p) return null;
  const cte = p.contentTransferEncoding;
  if (IDENTITY_CTE.has(cte) || p.children.length > 0 || isEncapsulated(p)) {
    return { start: p.bodyStart, end: p.end, decode: null };
  }
  if (cte === "base64" || cte === "quoted-printable") {
    return { start: p.bodyStart, end: p.end, decode: cte };
  }
  return UNKNOWN_CTE;
}

/**
 * BINARY[part] (RFC 3516 §4.2): the part's content with its Content-Transfer-Encoding removed.
 * The empty path is the whole message as stored; multipart and message parts are returned as
 * they are (they carry no encoding of their own). Null when the part does not exist.
 */
export function binarySection(
  bytes: Uint8Array,
  root: MimePart,
  part: readonly number[],
): Uint8Array | null | typeof UNKNOWN_CTE {
  if (part.length === 0) return bytes;
  const p = resolvePart(root, part);
  if (!p) return null;
  const cte = p.contentTransferEncoding;
  if (IDENTITY_CTE.has(cte)) return bytes.subarray(p.bodyStart, p.end);
  if (p.children.length > 0 || isEncapsulated(p)) return bytes.subarray(p.bodyStart, p.end);
  if (cte === "base64" || cte === "quoted-printable") return decodeBody(p, bytes);
  return UNKNOWN_CTE;
}
