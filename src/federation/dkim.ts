// DKIM (RFC 6376): every message leaving the relay is signed (rsa-sha256, c=relaxed/simple, as the
// reference's OpenDKIM); mail arriving from a named domain must carry a passing signature aligned
// with its From domain, as the reference relay's filtermail demands (chatmail-relay.md §3.4.7),
// verified in dkim_verify.ts. IP-literal senders are exempt. Written against the RFCs (a small,
// auditable core with no dependencies, so the one-file build carries it); the tests cross-check
// it with an independent implementation (mailauth).

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, createSign, generateKeyPairSync } from "node:crypto";
import { hashBody, pickFields, relaxedHeader, splitMessage } from "./dkim_canon.ts";

export {
  verifyAlignedHeader,
  verifyAlignedSignature,
  verifyDkimSignatures,
} from "./dkim_verify.ts";
export type { BodyHashes, DkimResult } from "./dkim_verify.ts";

export const DKIM_SELECTOR = "opendkim";

export interface DkimKey {
  selector: string;
  privateKeyPem: string;
}

/** Header fields signed when present; From is oversigned so none can be added (RFC 6376 §8.15). */
const SIGNED = [
  "from",
  "to",
  "cc",
  "subject",
  "date",
  "message-id",
  "in-reply-to",
  "references",
  "reply-to",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "autocrypt",
  "autocrypt-gossip",
  "chat-version",
  "secure-join",
];

export function generateDkimKey(): string {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}

/** The TXT record to publish at `<selector>._domainkey.<domain>`. */
export function dkimDnsRecord(privateKeyPem: string): string {
  const spki = createPublicKey(createPrivateKey(privateKeyPem)).export({
    type: "spki",
    format: "der",
  });
  return `v=DKIM1;k=rsa;p=${Buffer.from(spki).toString("base64")};s=email;t=s`;
}

const enc = new TextEncoder();

function fold(value: string): string {
  const out: string[] = [];
  let line = "";
  for (const part of value.split(" ")) {
    if (line && line.length + part.length > 72) {
      out.push(line);
      line = "\t" + part;
    } else line = line ? `${line} ${part}` : part;
  }
  out.push(line);
  return out.join("\r\n");
}

/**
 * The message with a DKIM-Signature header prepended (c=relaxed/simple, as the reference). Every
 * field of SIGNED present is signed, and the names in `oversign` (default From) once more than
 * they occur, so that none can be added without breaking the signature (RFC 6376 §8.15).
 */
export function signMessage(
  message: Uint8Array,
  domain: string,
  key: DkimKey,
  options: { oversign?: readonly string[] } = {},
): Promise<Uint8Array> {
  const { fields, body } = splitMessage(message);
  const names: string[] = [];
  for (const n of SIGNED) {
    const count = fields.filter((f) => f.name === n).length;
    for (let i = 0; i < count; i++) names.push(n);
  }
  names.push(...(options.oversign ?? ["from"]));
  const bh = Buffer.from(hashBody(body, false).digest).toString("base64");
  const t = Math.floor(Date.now() / 1000);
  const tags = `v=1; a=rsa-sha256; c=relaxed/simple; d=${domain}; s=${key.selector}; t=${t}; ` +
    `h=${names.join(":")}; bh=${bh}; b=`;
  let input = "";
  for (const f of pickFields(fields, names)) input += relaxedHeader(f.raw) + "\r\n";
  input += relaxedHeader(`DKIM-Signature: ${tags}`);
  // The fields are Latin-1 text standing for their bytes: hash those bytes, not UTF-8.
  const b = createSign("RSA-SHA256").update(Buffer.from(input, "latin1")).sign(key.privateKeyPem)
    .toString("base64");
  const header = enc.encode(`DKIM-Signature: ${fold(tags + b)}\r\n`);
  const out = new Uint8Array(header.length + message.length);
  out.set(header);
  out.set(message, header.length);
  return Promise.resolve(out);
}
