// The OpenPGP half of the encryption policy (filtermail check_armored_payload): an armored payload
// passes only when it decodes to (PKESK | SKESK)* followed by exactly one SEIPD (RFC 9580 §5).

const TAG_PKESK = 1;
const TAG_SKESK = 3;
const TAG_SEIPD = 18;

/** True for zero or more session-key packets followed by exactly one SEIPD ending the data. */
export function checkOpenpgpPacketStream(b: Uint8Array): boolean {
  let i = 0;
  while (i < b.length) {
    const h = b[i++];
    if ((h & 0x80) === 0) return false;
    let tag: number;
    let body = 0;
    if ((h & 0x40) !== 0) {
      // New format (RFC 9580 §4.2.1): partial lengths (224..254) skip chunks, then a final length.
      tag = h & 0x3f;
      for (;;) {
        if (i >= b.length) return false;
        const o = b[i];
        if (o < 224 || o === 255) break;
        i += 1 + (1 << (o & 0x1f));
      }
      const o = b[i];
      if (o < 192) {
        body = o;
        i += 1;
      } else if (o < 224) {
        if (i + 1 >= b.length) return false;
        body = ((o - 192) << 8) + b[i + 1] + 192;
        i += 2;
      } else {
        if (i + 4 >= b.length) return false;
        body = b[i + 1] * 0x1000000 + (b[i + 2] << 16) + (b[i + 3] << 8) + b[i + 4];
        i += 5;
      }
    } else {
      // Legacy format (RFC 9580 §4.2.2), still written by GnuPG; indeterminate length is refused.
      tag = (h & 0x3c) >> 2;
      const lengthType = h & 3;
      if (lengthType === 3) return false;
      const n = lengthType === 0 ? 1 : lengthType === 1 ? 2 : 4;
      if (i + n > b.length) return false;
      for (let k = 0; k < n; k++) body = body * 256 + b[i + k];
      i += n;
    }
    i += body;
    if (i > b.length) return false;
    if (i === b.length) return tag === TAG_SEIPD;
    if (tag !== TAG_PKESK && tag !== TAG_SKESK) return false;
  }
  return false;
}

const BEGIN = "-----BEGIN PGP MESSAGE-----";
const END = "-----END PGP MESSAGE-----";
// Non-ASCII can never pass, and UTF-8 decoding of ASCII is much faster than Latin-1.
const utf8 = new TextDecoder();

/** Length of the line break at `i` (CRLF, or a bare LF taken as CRLF), else 0. */
function breakAt(s: string, i: number): number {
  if (s[i] === "\n") return 1;
  return s[i] === "\r" && s[i + 1] === "\n" ? 2 : 0;
}

/** Length of the line break ending just before `end`, else 0. */
function breakBefore(s: string, end: number): number {
  if (s[end - 1] !== "\n") return 0;
  return s[end - 2] === "\r" ? 2 : 1;
}

// After CR and LF are dropped: standard alphabet with canonical padding (Rust base64 STANDARD).
const STRICT_BASE64 = /^[A-Za-z0-9+/\r\n]*(?:=[\r\n]*){0,2}$/;

/**
 * filtermail's armor rules. Outgoing refuses a leading "Version:" armor header; incoming drops it.
 * Everything from the last "=" on (the CRC24 line) is ignored. A bare LF counts as CRLF, so a
 * message read back from a Maildir file checks the same as it did in SMTP DATA.
 */
export function checkArmoredPayload(
  payload: string | Uint8Array,
  direction: "outgoing" | "incoming",
): boolean {
  const s = typeof payload === "string" ? payload : utf8.decode(payload);
  if (!s.startsWith(BEGIN)) return false;
  let start = BEGIN.length + breakAt(s, BEGIN.length);
  if (start === BEGIN.length) return false;
  let end = s.length;
  for (let n = breakBefore(s, end); n > 0 && end - n >= start; n = breakBefore(s, end)) end -= n;
  if (end - start < END.length || !s.startsWith(END, end - END.length)) return false;
  end -= END.length;
  if (s.startsWith("Version: ", start)) {
    if (direction === "outgoing") return false;
    const eol = s.indexOf("\n", start);
    if (eol >= 0 && eol < end) start = eol + 1;
  }
  for (let n = breakAt(s, start); n > 0 && start < end; n = breakAt(s, start)) start += n;
  const crc = s.lastIndexOf("=", end - 1);
  const body = s.slice(start, crc >= start ? crc : end);
  if (!STRICT_BASE64.test(body)) return false;
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(body, { lastChunkHandling: "strict" });
  } catch {
    return false; // missing padding or non-zero trailing bits
  }
  return checkOpenpgpPacketStream(bytes);
}
