// DKIM (RFC 6376), rsa-sha256: every message leaving the relay is signed; mail arriving from a
// named domain must carry a passing signature aligned with its From domain, as the reference
// relay's filtermail demands (chatmail-relay.md §3.4.7). IP-literal senders are exempt.
// Written against the RFC (a small, auditable core with no dependencies, so the one-file build
// carries it); the tests cross-check it with an independent implementation.

import { Buffer } from "node:buffer";
import {
  createPrivateKey,
  createPublicKey,
  createSign,
  createVerify,
  generateKeyPairSync,
} from "node:crypto";
import { parseHeaderBlock } from "../mime/mod.ts";
import type { DnsResolver } from "./resolver.ts";
import { type BodyHash, DkimStream, hashBody } from "./dkim_body.ts";

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
const latin1 = new TextDecoder("latin1");

interface Field {
  name: string;
  /** Raw bytes of the whole field, name to line end included. */
  raw: string;
}

function split(message: Uint8Array): { fields: Field[]; body: Uint8Array } {
  const block = parseHeaderBlock(message, 0);
  const fields = block.fields.filter((f) => f.name).map((f) => ({
    name: f.name.toLowerCase(),
    raw: latin1.decode(message.subarray(f.start, f.end)),
  }));
  return { fields, body: message.subarray(block.headerEnd) };
}

/** RFC 6376 §3.4.2 relaxed header canonicalization, without the final CRLF. */
function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(":");
  const name = raw.slice(0, colon).trim().toLowerCase();
  const value = raw.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, "").replace(/\r?\n$/, "")
    .replace(/[ \t]+/g, " ").trim();
  return `${name}:${value}`;
}

/** RFC 6376 §3.4.1 simple header canonicalization: the field as it is, without the CRLF. */
function simpleHeader(raw: string): string {
  return raw.replace(/\r?\n$/, "");
}

/** Fields named in h=, each taken from the bottom up as §5.4.2 requires. */
function pickFields(fields: Field[], names: string[]): Field[] {
  const used = new Map<string, number>();
  const out: Field[] = [];
  for (const n of names) {
    const all = fields.filter((f) => f.name === n);
    const k = used.get(n) ?? 0;
    used.set(n, k + 1);
    const f = all[all.length - 1 - k];
    if (f) out.push(f);
  }
  return out;
}

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

/** The message with a DKIM-Signature header prepended (c=relaxed/simple, as the reference). */
export function signMessage(
  message: Uint8Array,
  domain: string,
  key: DkimKey,
): Promise<Uint8Array> {
  const { fields, body } = split(message);
  const names: string[] = [];
  for (const n of SIGNED) {
    const count = fields.filter((f) => f.name === n).length;
    for (let i = 0; i < count; i++) names.push(n);
  }
  names.push("from");
  const bh = Buffer.from(hashBody(body, false).digest).toString("base64");
  const t = Math.floor(Date.now() / 1000);
  const tags = `v=1; a=rsa-sha256; c=relaxed/simple; d=${domain}; s=${key.selector}; t=${t}; ` +
    `h=${names.join(":")}; bh=${bh}; b=`;
  const signer = createSign("RSA-SHA256");
  for (const f of pickFields(fields, names)) signer.update(relaxedHeader(f.raw) + "\r\n");
  signer.update(relaxedHeader(`DKIM-Signature: ${tags}`));
  const b = signer.sign(key.privateKeyPem).toString("base64");
  const header = enc.encode(`DKIM-Signature: ${fold(tags + b)}\r\n`);
  const out = new Uint8Array(header.length + message.length);
  out.set(header);
  out.set(message, header.length);
  return Promise.resolve(out);
}

function parseTags(value: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of value.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/[ \t\r\n]+/g, ""));
  }
  return tags;
}

/** The DKIM-Signature field with the b= value removed (§3.7), keeping everything else. */
function withoutSignature(raw: string): string {
  return raw.replace(/(\bb[ \t\r\n]*=)[^;]*/, "$1");
}

/** Body hashes by canonicalization, as DkimStream gives them (null: not computed). */
export type BodyHashes = (relaxed: boolean) => BodyHash | null;

async function verifyOne(
  field: Field,
  fields: Field[],
  bodies: BodyHashes,
  dns: DnsResolver,
): Promise<{ domain: string; ok: boolean; reason: string }> {
  const tags = parseTags(field.raw.slice(field.raw.indexOf(":") + 1));
  const domain = (tags.get("d") ?? "").toLowerCase();
  const fail = (reason: string) => ({ domain, ok: false, reason });
  if (tags.get("v") !== "1" || !domain || !tags.get("s") || !tags.get("b") || !tags.get("bh")) {
    return fail("malformed signature");
  }
  if (tags.get("a") !== "rsa-sha256") return fail(`unsupported algorithm ${tags.get("a")}`);
  const [hc, bc = "simple"] = (tags.get("c") ?? "simple/simple").toLowerCase().split("/");
  const x = tags.get("x");
  if (x && Number(x) * 1000 < Date.now()) return fail("signature expired");
  const names = (tags.get("h") ?? "").toLowerCase().split(":").map((n) => n.trim()).filter(Boolean);
  if (!names.includes("from")) return fail("From is not signed");
  if (bc !== "simple" && bc !== "relaxed") return fail("unknown canonicalization");
  const body = bodies(bc === "relaxed");
  if (!body) return fail("body not hashed");
  // The body is hashed whole as it streams, so a length limit must cover all of it: text
  // appended after a signed prefix would otherwise pass as signed (RFC 6376 §8.2).
  if (tags.has("l") && Number(tags.get("l")) !== body.length) {
    return fail("l= does not cover the whole body");
  }
  const bh = Buffer.from(body.digest).toString("base64");
  if (bh !== tags.get("bh")) return fail("body hash mismatch");
  const record = (await dns.txt(`${tags.get("s")}._domainkey.${domain}`))
    .map(parseTags).find((t) => t.get("p") !== undefined);
  if (!record) return fail("no key record");
  const p = record.get("p");
  if (!p) return fail("key revoked");
  const canon = hc === "relaxed" ? relaxedHeader : simpleHeader;
  const verifier = createVerify("RSA-SHA256");
  for (const f of pickFields(fields, names)) verifier.update(canon(f.raw) + "\r\n");
  verifier.update(canon(withoutSignature(field.raw)));
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(p, "base64"), format: "der", type: "spki" });
  } catch {
    return fail("bad key record");
  }
  const ok = verifier.verify(key, Buffer.from(tags.get("b")!, "base64"));
  return ok ? { domain, ok, reason: "" } : fail("signature mismatch");
}

/**
 * Null when a passing signature's d= equals the From domain; else the reason. `header` is the
 * message's top header block, `bodies` the hashes of its body (see DkimStream).
 */
export async function verifyAlignedHeader(
  header: Uint8Array,
  bodies: BodyHashes,
  fromDomain: string,
  dns: DnsResolver,
): Promise<string | null> {
  const { fields } = split(header);
  const signatures = fields.filter((f) => f.name === "dkim-signature");
  if (!signatures.length) return "No DKIM signature found";
  for (const s of signatures) {
    const r = await verifyOne(s, fields, bodies, dns).catch(() => null);
    if (r?.ok && r.domain === fromDomain.toLowerCase()) return null;
  }
  return "No valid DKIM signature found";
}

/** verifyAlignedHeader for a whole message in memory. */
export function verifyAlignedSignature(
  message: Uint8Array,
  fromDomain: string,
  dns: DnsResolver,
): Promise<string | null> {
  const stream = new DkimStream();
  stream.push(message);
  const header = stream.header();
  if (!header) return Promise.resolve("No DKIM signature found");
  return verifyAlignedHeader(header, (relaxed) => stream.bodyHash(relaxed), fromDomain, dns);
}
