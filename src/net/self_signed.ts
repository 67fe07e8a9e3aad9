// The self-signed fallback: a local CA and a leaf certificate for the relay's names, written as
// DER by hand (RFC 5280 profile, ECDSA P-256 with SHA-256, RFC 5758 §3.2) and signed with Web
// Crypto. Two certificates with fixed fields need a few dozen lines of DER, where an X.509 library
// would stay loaded in every relay for good (about 8 MB of resident memory at each first start).

import { parseIp } from "./ip.ts";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** What generateSelfSigned returns (tls.ts's TlsMaterial in the self-signed case). */
export interface SelfSignedMaterial {
  certPem: string;
  keyPem: string;
  caPem: string;
  selfSigned: true;
}

// ---- DER (X.690) ---------------------------------------------------------------------------

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One TLV with a definite length (short form below 128 bytes, long form above). */
function tlv(tag: number, ...content: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const body = concat(content);
  const n = body.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = [0x80 | bytes.length, ...bytes];
  }
  return concat([Uint8Array.of(tag, ...len), body]);
}

const seq = (...c: Uint8Array[]) => tlv(0x30, ...c);
const set = (...c: Uint8Array[]) => tlv(0x31, ...c);
const bool = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));
const octets = (b: Uint8Array) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
/** BIT STRING with `unused` padding bits in the last byte. */
const bits = (b: Uint8Array, unused = 0) => tlv(0x03, Uint8Array.of(unused), b);
/** [n] EXPLICIT (constructed context tag). */
const explicit = (n: number, ...c: Uint8Array[]) => tlv(0xa0 | n, ...c);

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0 byte when the top bit is set. */
function uint(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? concat([Uint8Array.of(0), v]) : v);
}

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) {
      groups.unshift(0x80 | (v & 0x7f));
    }
    out.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(d: Date): Uint8Array {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}` +
    `${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const y = d.getUTCFullYear();
  const enc = new TextEncoder();
  return y < 2050
    ? tlv(0x17, enc.encode(`${p(y % 100)}${rest}`))
    : tlv(0x18, enc.encode(`${p(y, 4)}${rest}`));
}

// ---- certificate fields ----------------------------------------------------------------------

const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
};

const signatureAlgorithm = () => seq(oid(OID.ecdsaWithSha256));

/** A Name with one common name. */
const cnName = (cn: string) => seq(set(seq(oid(OID.commonName), utf8(cn))));

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

/** The bytes of an IPv4 or IPv6 address (for an iPAddress general name); throws on anything else. */
export function ipBytes(ip: string): Uint8Array {
  const b = parseIp(ip);
  if (!b) throw new Error(`not an IP address: ${ip}`);
  return b;
}

function isIp(name: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) || name.includes(":");
}

/** GeneralNames: dNSName [2] IA5String or iPAddress [7] OCTET STRING (both implicit). */
function altNames(names: string[]): Uint8Array {
  return seq(
    ...names.map((n) => isIp(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, new TextEncoder().encode(n))),
  );
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the EC point). */
async function keyId(publicKey: CryptoKey): Promise<Uint8Array> {
  const raw = await crypto.subtle.exportKey("raw", publicKey);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", raw));
}

/** Web Crypto gives ECDSA signatures as r‖s; X.509 wants Ecdsa-Sig-Value (RFC 3279 §2.2.3). */
function derSignature(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(uint(raw.subarray(0, half)), uint(raw.subarray(half)));
}

interface CertSpec {
  issuer: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  extensions: Uint8Array[];
}

async function certificate(spec: CertSpec): Promise<Uint8Array> {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  // Positive, and the first byte 0x40–0x7f: 16 bytes and 32 hex digits, no leading zero to strip
  // (a first byte below 0x10 was printed with 31 digits).
  serial[0] = (serial[0] & 0x3f) | 0x40;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", spec.publicKey));
  const tbs = seq(
    explicit(0, uint(Uint8Array.of(2))), // v3
    uint(serial),
    signatureAlgorithm(),
    cnName(spec.issuer),
    seq(time(spec.notBefore), time(spec.notAfter)),
    cnName(spec.subject),
    spki,
    explicit(3, seq(...spec.extensions)),
  );
  const sig = new Uint8Array(await crypto.subtle.sign(ALG, spec.signingKey, tbs));
  return seq(tbs, signatureAlgorithm(), bits(derSignature(sig)));
}

function pem(der: Uint8Array, label: string): string {
  let bin = "";
  for (let i = 0; i < der.length; i += 0x8000) {
    bin += String.fromCharCode(...der.subarray(i, i + 0x8000));
  }
  const b64 = btoa(bin);
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * Creates a CA and a leaf certificate for the given names (DNS names or IP addresses). The leaf is
 * not a CA itself (Deno's TLS client refuses a self-signed CA certificate as a server's).
 */
export async function generateSelfSigned(
  names: string[],
  days = 36500,
): Promise<SelfSignedMaterial> {
  const unique = [...new Set(names.map((n) => n.replace(/^\[|\]$/g, "")).filter(Boolean))];
  const first = unique[0] ?? "localhost";
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  const notAfter = new Date(notBefore.getTime() + 3600_000 + days * 86400_000);
  const caKeys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const caId = await keyId(caKeys.publicKey);
  const caName = `tern local CA ${first}`;
  const ca = await certificate({
    issuer: caName,
    subject: caName,
    notBefore,
    notAfter,
    publicKey: caKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      // cA TRUE, pathLenConstraint 0: it signs the leaf and nothing below it
      extension(OID.basicConstraints, true, seq(bool(true), uint(Uint8Array.of(0)))),
      // keyCertSign (5) and cRLSign (6): 0b0000011 with one unused bit
      extension(OID.keyUsage, true, bits(Uint8Array.of(0x06), 1)),
      extension(OID.subjectKeyIdentifier, false, octets(caId)),
    ],
  });
  const leafKeys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const leaf = await certificate({
    issuer: caName,
    subject: first,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      extension(OID.basicConstraints, true, seq()),
      // digitalSignature (0): one bit used, seven unused
      extension(OID.keyUsage, true, bits(Uint8Array.of(0x80), 7)),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, altNames(unique.length ? unique : [first])),
      // keyIdentifier [0] IMPLICIT OCTET STRING
      extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, caId))),
    ],
  });
  const key = new Uint8Array(await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey));
  const caPem = pem(ca, "CERTIFICATE");
  return {
    certPem: pem(leaf, "CERTIFICATE") + "\n" + caPem + "\n",
    keyPem: pem(key, "PRIVATE KEY"),
    caPem: caPem + "\n",
    selfSigned: true,
  };
}
