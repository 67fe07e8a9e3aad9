// Content-Transfer-Encoding decoders (RFC 2045 §6): tolerant of the junk real mail contains.

import { decodeCharset, HT, LF, SP } from "./bytes.ts";
import type { MimePart } from "./types.ts";

const B64 = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}
const utf8 = new TextDecoder(); // fast for ASCII; anything else falls back below

/** Base64 that skips every byte outside the alphabet and stops at padding, like most MUAs. */
export function decodeBase64(input: Uint8Array): Uint8Array {
  try {
    // Fast path: native decoder accepts the alphabet plus ASCII whitespace.
    return Uint8Array.fromBase64(utf8.decode(input), { lastChunkHandling: "loose" });
  } catch {
    // Falls through to the tolerant decoder below for stray characters or odd lengths.
  }
  const out = new Uint8Array(Math.floor((input.length * 3) / 4) + 3);
  let n = 0, acc = 0, bits = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === 0x3d) break; // "=" padding ends the data
    const v = B64[c];
    if (v < 0) continue;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Quoted-printable: soft breaks removed, =XX decoded, malformed escapes kept literally. */
export function decodeQuotedPrintable(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input.length);
  let n = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === 0x3d) {
      let j = i + 1;
      while (j < input.length && (input[j] === SP || input[j] === HT)) j++;
      if (j < input.length && input[j] === 13 && input[j + 1] === LF) {
        i = j + 1; // soft line break "=\r\n" (trailing blanks tolerated)
        continue;
      }
      if (j < input.length && input[j] === LF) {
        i = j;
        continue;
      }
      if (j >= input.length) break;
      const hi = hexValue(input[i + 1]), lo = hexValue(input[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out[n++] = (hi << 4) | lo;
        i += 2;
        continue;
      }
    }
    if ((c === SP || c === HT)) {
      // RFC 2045 §6.7 (3): whitespace at the end of an encoded line is padding and is dropped.
      let j = i;
      while (j < input.length && (input[j] === SP || input[j] === HT)) j++;
      if (j >= input.length || input[j] === LF || (input[j] === 13 && input[j + 1] === LF)) {
        i = j - 1;
        continue;
      }
    }
    out[n++] = c;
  }
  return out.subarray(0, n);
}

/** The part's body with its transfer encoding removed; other encodings are returned as they are. */
export function decodeBody(part: MimePart, bytes: Uint8Array): Uint8Array {
  const raw = bytes.subarray(part.bodyStart, part.end);
  switch (part.contentTransferEncoding) {
    case "base64":
      return decodeBase64(raw);
    case "quoted-printable":
      return decodeQuotedPrintable(raw);
    default:
      return raw;
  }
}

/** The decoded body as text in the part's charset (UTF-8 when absent or unknown). */
export function decodeText(part: MimePart, bytes: Uint8Array): string {
  return decodeCharset(decodeBody(part, bytes), part.contentType.params.charset);
}
