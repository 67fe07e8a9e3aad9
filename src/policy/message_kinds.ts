// The shapes a message may have to pass (filtermail message.rs, outbound.rs, inbound.rs), judged
// on the structure the streaming reader built plus what the gate's body checkers found.

import { decodeEncodedWords, type MimePart } from "../mime/mod.ts";
import { exactField } from "./sender_identity.ts";

export function mimeType(p: MimePart): string {
  return `${p.contentType.type}/${p.contentType.subtype}`;
}

/** A leaf: no subparts, no encapsulated message (mailparse: "not multipart"). */
export function isLeaf(p: MimePart): boolean {
  return p.children.length === 0 && p.message === undefined;
}

/** Charsets in which ASCII text decodes to itself: the ones body checks can trust. */
const ASCII_CHARSETS = /^(us-ascii|ascii|utf-?8|iso-8859-\d{1,2}|windows-125\d|latin-?1)$/i;

export function asciiCharset(p: MimePart): boolean {
  const c = p.contentType.params.charset;
  return c === undefined || ASCII_CHARSETS.test(c.trim());
}

const WORD = /^=\?(utf-8|us-ascii|iso-8859-1)\?([BbQq])\?([A-Za-z0-9+/=_.-]*)\?=$/i;

/**
 * The value of the first field named exactly `name`, as every reader sees it, or undefined when
 * readers could differ: one line (mailparse turns a fold into a leading or doubled blank), no
 * trailing blank (mailparse keeps it, tern drops it), and either plain text or one encoded word
 * in a common charset (mailparse decodes it, so tern does too).
 */
export function exactValue(root: MimePart, name: string): string | undefined {
  const f = exactField(root, name);
  if (!f || !root.rawHeader) return undefined;
  const raw = root.rawHeader.subarray(f.start - root.start + name.length + 1, f.end - root.start);
  let s = 0;
  let e = raw.length;
  if (e > s && raw[e - 1] === 10) e--;
  if (e > s && raw[e - 1] === 13) e--;
  while (s < e && (raw[s] === 32 || raw[s] === 9)) s++;
  for (let i = s; i < e; i++) if (raw[i] < 32 || raw[i] > 126) return undefined;
  if (e > s && (raw[e - 1] === 32 || raw[e - 1] === 9)) return undefined;
  const text = String.fromCharCode(...raw.subarray(s, Math.min(e, s + 200)));
  if (!text.includes("=?")) return text;
  return WORD.test(text) ? decodeEncodedWords(text) : undefined;
}

export const SECURE_JOIN_STEPS = ["vc-request", "vg-request"];
export const SECURE_JOIN_BODIES = ["secure-join: vc-request", "secure-join: vg-request"];

/** Envelope addresses compare lowercased and without angle brackets. */
export function normalizeEnvelopeAddress(a: string): string {
  const t = a.trim();
  return (t.startsWith("<") && t.endsWith(">") ? t.slice(1, -1).trim() : t).toLowerCase();
}
