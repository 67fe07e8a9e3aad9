// IMAP literals may not carry NUL (RFC 9051 §4.3), so a part with Content-Transfer-Encoding:
// binary could never be returned by BODY[]. As RFC 3516 §4.3 allows, such parts are stored as
// base64; BINARY[] still returns the original bytes.

import { type MimePart, parseMessage } from "../mime/mod.ts";

const enc = new TextEncoder();

function leaves(p: MimePart, out: MimePart[]) {
  if (p.children.length) p.children.forEach((c) => leaves(c, out));
  else if (p.message) leaves(p.message, out);
  else out.push(p);
}

function base64Lines(data: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < data.length; i++) bin += String.fromCharCode(data[i]);
  return btoa(bin).replace(/.{1,76}/g, (l) => l + "\r\n");
}

/** The message with every binary-encoded leaf part re-encoded as base64 (unchanged if none). */
export function binaryPartsToBase64(message: Uint8Array): Uint8Array {
  const parts: MimePart[] = [];
  leaves(parseMessage(message), parts);
  const binary = parts.filter((p) => p.contentTransferEncoding === "binary");
  if (!binary.length) return message;
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const p of binary.sort((a, b) => a.start - b.start)) {
    const cte = p.headers.find((h) => h.name.toLowerCase() === "content-transfer-encoding");
    if (!cte) continue;
    pieces.push(
      message.subarray(at, cte.start),
      enc.encode("Content-Transfer-Encoding: base64\r\n"),
    );
    pieces.push(message.subarray(cte.end, p.bodyStart));
    pieces.push(enc.encode(base64Lines(message.subarray(p.bodyStart, p.end))));
    at = p.end;
  }
  pieces.push(message.subarray(at));
  const out = new Uint8Array(pieces.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of pieces) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}
