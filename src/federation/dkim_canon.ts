// DKIM's view of a message (RFC 6376 §3): the header fields as raw text, the canonicalizations
// of header fields and body, and the tag lists of signatures and key records. Byte-exact and
// self-contained (it does not share the MIME reader's field parsing, whose tolerance serves a
// different purpose), and the body is hashed line by line without a copy of the message.

import { createHash } from "node:crypto";

export interface RawField {
  /** Lowercased name, without the white space an obsolete "Name :" puts before the colon. */
  name: string;
  /** The whole field as Latin-1 text: name, colon, value and folds, with its line end. */
  raw: string;
}

const latin1 = new TextDecoder("latin1");
const CR = 13, LF = 10, SP = 32, HTAB = 9;
const CRLF = new Uint8Array([CR, LF]);

const asciiLower = (s: string) => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/**
 * Splits the header block into fields: a field is a line with a colon and every continuation
 * line (starting with SP or HTAB) after it. Lines without a colon are not fields and no signature
 * can cover them. The body starts after the first empty line (or is empty when none).
 */
export function splitMessage(message: Uint8Array): { fields: RawField[]; body: Uint8Array } {
  const fields: RawField[] = [];
  let current: { start: number; end: number } | null = null;
  const flush = () => {
    if (!current) return;
    const raw = latin1.decode(message.subarray(current.start, current.end));
    const colon = raw.indexOf(":");
    const firstLine = raw.search(/\r?\n/);
    if (colon > 0 && (firstLine < 0 || colon < firstLine)) {
      const name = asciiLower(raw.slice(0, colon).replace(/[ \t]+$/, ""));
      if (/^[!-~]+$/.test(name)) fields.push({ name, raw }); // printable ASCII, no space
    }
    current = null;
  };
  let pos = 0;
  while (pos < message.length) {
    const nl = message.indexOf(LF, pos);
    const next = nl < 0 ? message.length : nl + 1;
    const contentEnd = nl < 0 ? next : (nl > pos && message[nl - 1] === CR ? nl - 1 : nl);
    if (contentEnd === pos) {
      flush();
      return { fields, body: message.subarray(next) };
    }
    const first = message[pos];
    if (current && (first === SP || first === HTAB)) current.end = next;
    else {
      flush();
      current = { start: pos, end: next };
    }
    pos = next;
  }
  flush();
  return { fields, body: message.subarray(message.length) };
}

/** The field without its final line end. */
function unterminated(raw: string): string {
  return raw.replace(/\r?\n$/, "");
}

/** RFC 6376 §3.4.1 "simple": the field unchanged (the caller adds the CRLF). */
export function simpleHeader(raw: string): string {
  return unterminated(raw);
}

/**
 * RFC 6376 §3.4.2 "relaxed": name lowercased, folds unfolded, runs of SP/HTAB made one SP, and
 * SP/HTAB removed at the end of the value and around the colon. Only SP and HTAB count as white
 * space (not, say, a Latin-1 no-break space).
 */
export function relaxedHeader(raw: string): string {
  const field = unterminated(raw);
  const colon = field.indexOf(":");
  const name = asciiLower(field.slice(0, colon).replace(/^[ \t]+|[ \t]+$/g, ""));
  const value = field.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, "").replace(/[ \t]+/g, " ")
    .replace(/^ | $/g, "");
  return `${name}:${value}`;
}

/** The header canonicalization named by a c= tag. */
export function headerCanon(kind: "simple" | "relaxed"): (raw: string) => string {
  return kind === "relaxed" ? relaxedHeader : simpleHeader;
}

/** One body line after "relaxed": runs of SP/HTAB as one SP, none at the end. */
function relaxLine(line: Uint8Array): Uint8Array {
  let changed = false;
  for (let i = 0; i < line.length; i++) {
    const b = line[i];
    if (
      b === HTAB ||
      (b === SP && (i + 1 === line.length || line[i + 1] === SP || line[i + 1] === HTAB))
    ) {
      changed = true;
      break;
    }
  }
  if (!changed) return line;
  const out = new Uint8Array(line.length);
  let n = 0;
  let wsp = false;
  for (const b of line) {
    if (b === SP || b === HTAB) wsp = true;
    else {
      if (wsp) out[n++] = SP;
      wsp = false;
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

/**
 * SHA-256 of the canonicalized body (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) and its length.
 * Lines end at CRLF (a bare LF counts as a line end too); empty lines at the end are ignored; the
 * simple canonicalization of an empty body is one CRLF, the relaxed one is empty.
 */
export function hashBody(
  body: Uint8Array,
  relaxed: boolean,
): { digest: Uint8Array; length: number } {
  const hash = createHash("sha256");
  let length = 0;
  let pendingEmpty = 0;
  let pos = 0;
  while (pos < body.length) {
    const nl = body.indexOf(LF, pos);
    const next = nl < 0 ? body.length : nl + 1;
    const end = nl < 0 ? next : (nl > pos && body[nl - 1] === CR ? nl - 1 : nl);
    const line = relaxed ? relaxLine(body.subarray(pos, end)) : body.subarray(pos, end);
    if (line.length === 0) pendingEmpty++;
    else {
      for (; pendingEmpty > 0; pendingEmpty--) {
        hash.update(CRLF);
        length += 2;
      }
      hash.update(line);
      hash.update(CRLF);
      length += line.length + 2;
    }
    pos = next;
  }
  if (length === 0 && !relaxed) {
    hash.update(CRLF);
    length = 2;
  }
  return { digest: new Uint8Array(hash.digest()), length };
}

/**
 * A tag list (RFC 6376 §3.2) as a map of tag name to value with all white space removed; null
 * when malformed (a tag without "=", a bad tag name, or a tag given twice).
 */
export function parseTagList(text: string): Map<string, string> | null {
  const tags = new Map<string, string>();
  const specs = text.split(";");
  // A final ";" is allowed; empty specs elsewhere are not.
  if (specs.length > 1 && specs[specs.length - 1].trim() === "") specs.pop();
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq < 0) return spec.trim() === "" && specs.length === 1 ? tags : null;
    const name = spec.slice(0, eq).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || tags.has(name)) return null;
    tags.set(name, spec.slice(eq + 1).replace(/[ \t\r\n]+/g, ""));
  }
  return tags;
}

/**
 * The signature field as it enters its own hash (RFC 6376 §3.7): the b= tag's value, with the
 * white space around it, removed; everything else as it was.
 */
export function withoutSignatureValue(raw: string): string {
  const field = unterminated(raw);
  const colon = field.indexOf(":");
  const specs = field.slice(colon + 1).split(";").map((spec) => {
    const eq = spec.indexOf("=");
    return eq >= 0 && spec.slice(0, eq).replace(/[ \t\r\n]+/g, "") === "b"
      ? spec.slice(0, eq + 1)
      : spec;
  });
  return field.slice(0, colon + 1) + specs.join(";");
}

/**
 * The fields named in h=, in order; a name listed n times takes the n-th field of that name from
 * the bottom (RFC 6376 §5.4.2). A name listed more often than it occurs stands for nothing,
 * which is how oversigning keeps fields from being added later.
 */
export function pickFields(fields: RawField[], names: string[]): RawField[] {
  const used = new Map<string, number>();
  const out: RawField[] = [];
  for (const n of names) {
    const k = used.get(n) ?? 0;
    used.set(n, k + 1);
    let seen = 0;
    for (let i = fields.length - 1; i >= 0; i--) {
      if (fields[i].name !== n) continue;
      if (seen++ === k) {
        out.push(fields[i]);
        break;
      }
    }
  }
  return out;
}
