// DKIM verification (RFC 6376 §6) for rsa-sha256 and ed25519-sha256 (RFC 8463). Stricter than
// the RFC where the RFC leaves room that an attacker could use:
// - l= (body length limit) must cover the whole canonicalized body: text appended after the
//   signed part would otherwise pass as signed (RFC 6376 §8.2), and a limit beyond the body is
//   a signature over bytes that are not there;
// - rsa-sha1 is refused and RSA keys need at least 1024 bits (RFC 8301);
// - a malformed tag list, a duplicate tag, an i= outside d=, a key record for another algorithm
//   or hash, or for another service than e-mail make the signature fail.

import { Buffer } from "node:buffer";
import { createHash, createPublicKey, createVerify, verify as verifyRaw } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { DnsResolver } from "./resolver.ts";
import {
  hashBody,
  headerCanon,
  parseTagList,
  pickFields,
  splitMessage,
  withoutSignatureValue,
} from "./dkim_canon.ts";
import type { RawField } from "./dkim_canon.ts";

export interface DkimResult {
  /** The signing domain d=, lowercased ("" when unreadable). */
  domain: string;
  ok: boolean;
  /** Why it failed ("" when it passed). */
  reason: string;
  /** The key could not be looked up now (DNS trouble): a later try may pass. */
  temporary?: boolean;
}

const ALGORITHMS = { "rsa-sha256": "rsa", "ed25519-sha256": "ed25519" } as const;
type Algorithm = keyof typeof ALGORITHMS;

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

const lowerDomain = (d: string) => d.toLowerCase().replace(/\.$/, "");

function fromBase64(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return new Uint8Array(Buffer.from(s, "base64"));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The public key of a key record, checked against the signature's algorithm. */
function keyFromRecord(
  record: Map<string, string>,
  algorithm: Algorithm,
  identityDomain: string | null,
  domain: string,
): KeyObject | string {
  const v = record.get("v");
  if (v !== undefined && v !== "DKIM1") return "key record version is not DKIM1";
  const k = (record.get("k") ?? "rsa").toLowerCase();
  if (k !== ALGORITHMS[algorithm]) return `key type ${k} does not match ${algorithm}`;
  const h = record.get("h");
  if (h !== undefined && !h.toLowerCase().split(":").includes("sha256")) {
    return "key record does not allow sha256";
  }
  const s = record.get("s");
  if (s !== undefined && !s.toLowerCase().split(":").some((x) => x === "email" || x === "*")) {
    return "key is not for e-mail";
  }
  const flags = (record.get("t") ?? "").toLowerCase().split(":");
  if (flags.includes("s") && identityDomain !== null && identityDomain !== domain) {
    return "key forbids subdomains in i=";
  }
  const p = record.get("p") ?? "";
  if (p === "") return "key revoked";
  const der = fromBase64(p);
  if (!der) return "bad key record";
  try {
    if (k === "ed25519") {
      if (der.length !== 32) return "bad key record";
      return createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, der]),
        format: "der",
        type: "spki",
      });
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
    } catch {
      // Some records hold a bare RSAPublicKey rather than a SubjectPublicKeyInfo.
      key = createPublicKey({ key: Buffer.from(der), format: "der", type: "pkcs1" });
    }
    if (key.asymmetricKeyType !== "rsa") return "bad key record";
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 1024) {
      return "RSA key shorter than 1024 bits";
    }
    return key;
  } catch {
    return "bad key record";
  }
}

/**
 * The body hash under a canonicalization (relaxed or simple), computed at most once per message:
 * from the body in memory, or as the body streamed in (DkimStream); null when not computed.
 */
export type BodyHashes = (relaxed: boolean) => { digest: Uint8Array; length: number } | null;

interface Context {
  fields: RawField[];
  bodies: BodyHashes;
  dns: DnsResolver;
  now: number;
}

/** Body hashes of a body in memory, each computed on first use. */
function hashesOf(body: Uint8Array): BodyHashes {
  const done = new Map<boolean, { digest: Uint8Array; length: number }>();
  return (relaxed) => {
    let h = done.get(relaxed);
    if (!h) done.set(relaxed, h = hashBody(body, relaxed));
    return h;
  };
}

async function verifyOne(field: RawField, ctx: Context): Promise<DkimResult> {
  const tags = parseTagList(field.raw.slice(field.raw.indexOf(":") + 1));
  const domain = lowerDomain(tags?.get("d") ?? "");
  const fail = (reason: string): DkimResult => ({ domain, ok: false, reason });
  if (!tags) return fail("malformed signature");
  for (const t of ["v", "a", "b", "bh", "d", "h", "s"]) {
    if (!tags.get(t)) return fail(`signature without ${t}=`);
  }
  if (tags.get("v") !== "1") return fail("unknown signature version");
  const algorithm = tags.get("a")!.toLowerCase();
  if (!(algorithm in ALGORITHMS)) return fail(`unsupported algorithm ${algorithm}`);
  const [hc, bc = "simple", extra] = (tags.get("c") ?? "simple/simple").toLowerCase().split("/");
  if (
    extra !== undefined || !["simple", "relaxed"].includes(hc) ||
    !["simple", "relaxed"].includes(bc)
  ) {
    return fail("unknown canonicalization");
  }
  const names = tags.get("h")!.split(":").map((n) => n.toLowerCase());
  if (names.some((n) => n === "")) return fail("malformed h=");
  if (!names.includes("from")) return fail("From is not signed");
  const i = tags.get("i");
  let identityDomain: string | null = null;
  if (i !== undefined) {
    identityDomain = lowerDomain(i.slice(i.lastIndexOf("@") + 1));
    if (!i.includes("@") || (identityDomain !== domain && !identityDomain.endsWith(`.${domain}`))) {
      return fail("i= is not within d=");
    }
  }
  const x = tags.get("x");
  if (x !== undefined) {
    const t = tags.get("t");
    if (!/^\d{1,12}$/.test(x) || (t !== undefined && /^\d+$/.test(t) && Number(x) < Number(t))) {
      return fail("bad expiry");
    }
    if (Number(x) * 1000 < ctx.now) return fail("signature expired");
  }

  const bodyKey = bc;
  const body = ctx.bodies(bodyKey === "relaxed");
  if (!body) return fail("body not hashed");
  const l = tags.get("l");
  if (l !== undefined) {
    if (!/^\d{1,76}$/.test(l)) return fail("malformed l=");
    // Only a limit that covers the whole body is accepted (see the top of this file).
    if (BigInt(l) !== BigInt(body.length)) return fail("l= does not cover the whole body");
  }
  const bh = fromBase64(tags.get("bh")!);
  if (!bh || !equalBytes(bh, body.digest)) return fail("body hash mismatch");
  const signature = fromBase64(tags.get("b")!);
  if (!signature) return fail("malformed b=");

  const selector = tags.get("s")!;
  let records: string[];
  try {
    records = await ctx.dns.txt(`${selector}._domainkey.${domain}`);
  } catch (err) {
    return { ...fail(`key lookup failed: ${(err as Error).message}`), temporary: true };
  }
  const record = records.map(parseTagList).find((r) => r?.has("p"));
  if (!record) return fail("no key record");
  const key = keyFromRecord(record, algorithm as Algorithm, identityDomain, domain);
  if (typeof key === "string") return fail(key);

  const canon = headerCanon(hc as "simple" | "relaxed");
  let input = "";
  for (const f of pickFields(ctx.fields, names)) input += canon(f.raw) + "\r\n";
  input += canon(withoutSignatureValue(field.raw));
  const data = Buffer.from(input, "latin1");
  let ok: boolean;
  try {
    ok = algorithm === "ed25519-sha256"
      // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the header data.
      ? verifyRaw(null, createHash("sha256").update(data).digest(), key, signature)
      : createVerify("RSA-SHA256").update(data).verify(key, signature);
  } catch {
    ok = false; // a signature of the wrong size for the key
  }
  return ok ? { domain, ok: true, reason: "" } : fail("signature mismatch");
}

/** Every DKIM-Signature of the message, verified, top first. */
export function verifyDkimSignatures(
  message: Uint8Array,
  dns: DnsResolver,
  now: number = Date.now(),
): Promise<DkimResult[]> {
  const { fields, body } = splitMessage(message);
  return verifyFields({ fields, bodies: hashesOf(body), dns, now });
}

async function verifyFields(ctx: Context): Promise<DkimResult[]> {
  const results: DkimResult[] = [];
  for (const f of ctx.fields) {
    if (f.name !== "dkim-signature") continue;
    results.push(
      await verifyOne(f, ctx).catch((err) => ({
        domain: "",
        ok: false,
        reason: `key lookup failed: ${(err as Error).message}`,
      })),
    );
  }
  return results;
}

/** Why no signature passed, and whether that may change (an aligned key not looked up). */
export interface DkimVerdict {
  reason: string;
  temporary: boolean;
}

function aligned(results: DkimResult[], fromDomain: string): DkimVerdict | null {
  if (!results.length) return { reason: "No DKIM signature found", temporary: false };
  const want = lowerDomain(fromDomain);
  if (results.some((r) => r.ok && r.domain === want)) return null;
  const later = results.find((r) => r.temporary && r.domain === want);
  return later
    ? { reason: `DKIM key not available now, try again later (${later.reason})`, temporary: true }
    : { reason: "No valid DKIM signature found", temporary: false };
}

/** Null when a passing signature's d= equals the From domain; else the reason. */
export async function verifyAlignedSignature(
  message: Uint8Array,
  fromDomain: string,
  dns: DnsResolver,
  now?: number,
): Promise<string | null> {
  return aligned(await verifyDkimSignatures(message, dns, now), fromDomain)?.reason ?? null;
}

/**
 * verifyAlignedSignature for a message that streamed in: its top header block (up to the blank
 * line) and the hashes of its body (DkimStream), so the body is never held.
 */
export async function verifyAlignedHeader(
  header: Uint8Array,
  bodies: BodyHashes,
  fromDomain: string,
  dns: DnsResolver,
  now: number = Date.now(),
): Promise<DkimVerdict | null> {
  const { fields } = splitMessage(header);
  return aligned(await verifyFields({ fields, bodies, dns, now }), fromDomain);
}
