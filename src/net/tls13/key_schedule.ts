// The TLS 1.3 key schedule (RFC 8446 §7.1) over HKDF (RFC 5869) built on HMAC (RFC 2104) over
// SHA-256 in TypeScript (sha256.ts) or node:crypto's other hashes, the traffic keys and IVs
// derived from a traffic secret (§7.3), and Finished (§4.4.4).

import { createHash } from "node:crypto";
import { Sha256, sha256 } from "./sha256.ts";
import { type CipherSuite, IV_LENGTH } from "./suites.ts";

const encoder = new TextEncoder();

/**
 * The digest of the parts, one after the other: SHA-256 in TypeScript (sha256.ts: node:crypto's
 * hash objects hold native memory until V8's next full collection), the others by node:crypto.
 */
export function digest(hash: string, parts: readonly Uint8Array[]): Uint8Array {
  if (hash === "sha256") return sha256(parts);
  const h = createHash(hash);
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * HMAC (RFC 2104) of the parts under `key`, made of two digests. Deno's createHmac builds a
 * whole Transform stream (readable and writable state, listeners), a 128-byte buffer of zeros
 * and its padded keys for each HMAC, and two native hash objects; a handshake makes about
 * twenty.
 */
export function hmac(hash: string, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const block = hash === "sha384" || hash === "sha512" ? 128 : 64;
  const pad = new Uint8Array(block);
  pad.set(key.length > block ? digest(hash, [key]) : key);
  for (let i = 0; i < block; i++) pad[i] ^= 0x36;
  parts.unshift(pad);
  const inner = digest(hash, parts);
  // 0x36 ^ 0x5c: from the inner pad to the outer one.
  for (let i = 0; i < block; i++) pad[i] ^= 0x6a;
  return digest(hash, [pad, inner]);
}

export function hkdfExtract(hash: string, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(hash, salt, ikm);
}

export function hkdfExpand(
  hash: string,
  prk: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let at = 0, i = 1; at < length; i++) {
    const block = hmac(hash, prk, previous, info, Uint8Array.of(i));
    out.set(block.subarray(0, Math.min(block.length, length - at)), at);
    at += block.length;
    previous = block;
  }
  return out;
}

/** The labels of the key schedule, encoded once with their "tls13 " prefix. */
const labels = new Map(
  [
    "derived",
    "c hs traffic",
    "s hs traffic",
    "c ap traffic",
    "s ap traffic",
    "traffic upd",
    "key",
    "iv",
    "finished",
  ].map((l) => [l, encoder.encode("tls13 " + l)]),
);

/** HKDF-Expand-Label: the HkdfLabel structure with the "tls13 " prefix. */
export function expandLabel(
  hash: string,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  // HkdfLabel: length (2 bytes), "tls13 " + label and the context, each after a 1-byte length.
  const name = labels.get(label) ?? encoder.encode("tls13 " + label);
  const info = new Uint8Array(2 + 1 + name.length + 1 + context.length);
  info[0] = length >> 8;
  info[1] = length & 0xff;
  info[2] = name.length;
  info.set(name, 3);
  info[3 + name.length] = context.length;
  info.set(context, 4 + name.length);
  return hkdfExpand(hash, secret, info, length);
}

/** Derive-Secret with a transcript hash already computed. */
export function deriveSecret(
  suite: CipherSuite,
  secret: Uint8Array,
  label: string,
  transcriptHash: Uint8Array,
): Uint8Array {
  return expandLabel(suite.hash, secret, label, transcriptHash, suite.hashLength);
}

export function hashOf(suite: CipherSuite, parts: Uint8Array[]): Uint8Array {
  return digest(suite.hash, parts);
}

/** The handshake transcript's hash, taken as messages are added. */
export interface Transcript {
  add(message: Uint8Array): void;
  hash(): Uint8Array;
}

/** A running SHA-256 for the SHA-256 suites (each message hashed once); the parts otherwise. */
export function transcript(suite: CipherSuite, ...messages: Uint8Array[]): Transcript {
  if (suite.hash === "sha256") {
    const h = new Sha256();
    for (const m of messages) h.update(m);
    return { add: (m) => h.update(m), hash: () => h.digest() };
  }
  return { add: (m) => messages.push(m), hash: () => hashOf(suite, messages) };
}

/**
 * Per suite, what the key schedule derives from constants alone: Derive-Secret(early secret,
 * "derived", "") with no PSK, and the hash of no messages (for the master secret's "derived").
 */
const constants = new Map<CipherSuite, { derivedEarly: Uint8Array; emptyHash: Uint8Array }>();

function suiteConstants(suite: CipherSuite) {
  let c = constants.get(suite);
  if (!c) {
    const zeros = new Uint8Array(suite.hashLength);
    const early = hkdfExtract(suite.hash, zeros, zeros);
    const emptyHash = hashOf(suite, []);
    c = { derivedEarly: deriveSecret(suite, early, "derived", emptyHash), emptyHash };
    constants.set(suite, c);
  }
  return c;
}

/** The handshake secret from the (EC)DHE shared secret, with no PSK (all-zero early secret). */
export function handshakeSecret(suite: CipherSuite, shared: Uint8Array): Uint8Array {
  return hkdfExtract(suite.hash, suiteConstants(suite).derivedEarly, shared);
}

export function masterSecret(suite: CipherSuite, handshake: Uint8Array): Uint8Array {
  const derived = deriveSecret(suite, handshake, "derived", suiteConstants(suite).emptyHash);
  return hkdfExtract(suite.hash, derived, new Uint8Array(suite.hashLength));
}

/** The next generation of an application traffic secret (KeyUpdate, §7.2). */
export function nextTrafficSecret(suite: CipherSuite, secret: Uint8Array): Uint8Array {
  return expandLabel(suite.hash, secret, "traffic upd", new Uint8Array(0), suite.hashLength);
}

export function trafficKey(suite: CipherSuite, secret: Uint8Array): Uint8Array {
  return expandLabel(suite.hash, secret, "key", new Uint8Array(0), suite.keyLength);
}

export function trafficIv(suite: CipherSuite, secret: Uint8Array): Uint8Array {
  return expandLabel(suite.hash, secret, "iv", new Uint8Array(0), IV_LENGTH);
}

/** Finished's verify_data: HMAC with the finished key over the transcript hash. */
export function finishedData(
  suite: CipherSuite,
  baseKey: Uint8Array,
  transcriptHash: Uint8Array,
): Uint8Array {
  const key = expandLabel(suite.hash, baseKey, "finished", new Uint8Array(0), suite.hashLength);
  return hmac(suite.hash, key, transcriptHash);
}
