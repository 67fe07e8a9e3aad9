// The OpenPGP half of the encryption policy: an armored payload is accepted only when it decodes
// to (PKESK | SKESK)* followed by exactly one SEIPD packet and nothing else (RFC 9580 §4.2).

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
      tag = h & 0x3f;
      // New format: partial lengths (224..254) skip chunks, then a final normal length.
      while (true) {
        if (i >= b.length) return false;
        const o = b[i];
        if (o >= 224 && o < 255) {
          i += 1 + (1 << (o & 0x1f));
          if (i > b.length) return false;
          continue;
        }
        if (o < 192) {
          body = o;
          i += 1;
        } else if (o < 224) {
          if (i + 1 >= b.length) return false;
          body = ((o - 192) << 8) + b[i + 1] + 192;
          i += 2;
        } else {
          if (i + 4 >= b.length) return false;
          body = ((b[i + 1] << 24) >>> 0) + (b[i + 2] << 16) + (b[i + 3] << 8) + b[i + 4];
          i += 5;
        }
        break;
      }
    } else {
      tag = (h & 0x3c) >> 2;
      const lenType = h & 3;
      if (lenType === 3) return false;
      const n = [1, 2, 4][lenType];
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

const BEGIN = "-----BEGIN PGP MESSAGE-----\r\n";
const END = "-----END PGP MESSAGE-----";

/** The filtermail armor rules; "incoming" tolerates a leading "Version:" armor header. */
export function checkArmoredPayload(payload: string, direction: "outgoing" | "incoming"): boolean {
  if (!payload.startsWith(BEGIN)) return false;
  const trimmed = payload.replace(/(\r\n)+$/, "");
  if (!trimmed.endsWith(END)) return false;
  let inner = trimmed.slice(BEGIN.length, trimmed.length - END.length);
  if (inner.startsWith("Version: ")) {
    if (direction === "outgoing") return false;
    const eol = inner.indexOf("\r\n");
    inner = eol < 0 ? "" : inner.slice(eol + 2);
  }
  inner = inner.replace(/^(\r\n)+/, "");
  const lastEq = inner.lastIndexOf("=");
  if (lastEq >= 0) inner = inner.slice(0, lastEq);
  const b64 = inner.replace(/[\r\n]/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) return false;
  let bytes: Uint8Array;
  try {
    const padded = b64.replace(/=+$/, "");
    const bin = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return false;
  }
  return bytes.length > 0 && checkOpenpgpPacketStream(bytes);
}
