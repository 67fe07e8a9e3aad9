// The TLS 1.3 key schedule (RFC 8446 §7.1) over HKDF (RFC 5869) built on HMAC (RFC 2104) over
// node:crypto's hashes, the traffic keys and IVs derived from a traffic secret (§7.3), and
// Finished (§4.4.4).

import { createHash } from "node:crypto";
import { type CipherSuite, IV_LENGTH } from "./suites.ts";

const encoder = new TextEncoder();

/**
 * HMAC (RFC 2104) of the parts under `key`, made of two node:crypto hashes. Deno's createHmac
 * builds a whole Transform stream (readable and writable state, listeners), a 128-byte buffer
 * of zeros and its padded keys for each HMAC; a handshake makes about twenty, and that garbage
 * (about 40 KB per handshake, heap sampling of 2000 TLS IMAP logins) was most of what a
 * handshake left behind.
 */
export function hmac(hash: string, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const block = hash === "sha384" || hash === "sha512" ? 128 : 64;
  const pad = new Uint8Array(block);
  pad.set(key.length > block ? createHash(hash).update(key).digest() : key);
  for (let i = 0; i < block; i++) pad[i] ^= 0x36;
  const inner = createHash(hash).update(pad);
  for (const p of parts) inner.update(p);
  const innerHash = inner.digest();
  // 0x36 ^ 0x5c: from the inner pad to the outer one.
  for (let i = 0; i < block; i++) pad[i] ^= 0x6a;
  return createHash(hash).update(pad).update(innerHash).digest();
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
  const h = createHash(suite.hash);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The handshake secret from the (EC)DHE shared secret, with no PSK (all-zero early secret). */
export function handshakeSecret(suite: CipherSuite, shared: Uint8Array): Uint8Array {
  const zeros = new Uint8Array(suite.hashLength);
  const early = hkdfExtract(suite.hash, zeros, zeros);
  const derived = deriveSecret(suite, early, "derived", hashOf(suite, []));
  return hkdfExtract(suite.hash, derived, shared);
}

export function masterSecret(suite: CipherSuite, handshake: Uint8Array): Uint8Array {
  const derived = deriveSecret(suite, handshake, "derived", hashOf(suite, []));
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
