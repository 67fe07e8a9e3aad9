// RFC 2047 encoded words ("=?charset?B|Q?text?="): decoded for display, never for relaying.

import { concatBytes, decodeCharset } from "./bytes.ts";
import { decodeBase64 } from "./transfer_encoding.ts";

const WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

function decodeQ(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const hex = text.slice(i + 1, i + 3);
    if (c === 0x5f) out[n++] = 0x20; // "_" is a space in Q encoding
    else if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else out[n++] = c & 0xff;
  }
  return out.subarray(0, n);
}

/**
 * Decodes every encoded word; whitespace between adjacent encoded words is dropped, and adjacent
 * words in one charset are joined as bytes first, so a character split across words survives.
 */
export function decodeEncodedWords(s: string): string {
  if (!s.includes("=?")) return s;
  let out = "";
  let last = 0;
  let pending: Uint8Array[] = [];
  let pendingCharset = "";
  const flush = () => {
    if (pending.length) out += decodeCharset(concatBytes(pending), pendingCharset);
    pending = [];
  };
  for (const m of s.matchAll(WORD)) {
    const between = s.slice(last, m.index);
    const charset = m[1].replace(/\*.*$/, "").toLowerCase(); // RFC 2231 §5 language suffix
    const bytes = m[2] === "B" || m[2] === "b"
      ? decodeBase64(new TextEncoder().encode(m[3]))
      : decodeQ(m[3]);
    const adjacent = pending.length > 0 && /^[ \t\r\n]*$/.test(between);
    if (!adjacent) {
      flush();
      out += between;
    } else if (charset !== pendingCharset) flush();
    pending.push(bytes);
    pendingCharset = charset;
    last = m.index + m[0].length;
  }
  flush();
  return out + s.slice(last);
}
