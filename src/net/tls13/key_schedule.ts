// The TLS 1.3 key schedule (RFC 8446 §7.1) over HKDF (RFC 5869) built on node:crypto's HMAC,
// the traffic keys and IVs derived from a traffic secret (§7.3), and Finished (§4.4.4).

import { createHash, createHmac } from "node:crypto";
import { concat, u16, vector } from "./bytes.ts";
import { type CipherSuite, IV_LENGTH } from "./suites.ts";

const encoder = new TextEncoder();

export function hkdfExtract(hash: string, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return createHmac(hash, salt).update(ikm).digest();
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
    const block = createHmac(hash, prk).update(previous).update(info).update(Uint8Array.of(i))
      .digest();
    out.set(block.subarray(0, Math.min(block.length, length - at)), at);
    at += block.length;
    previous = block;
  }
  return out;
}

/** HKDF-Expand-Label: the HkdfLabel structure with the "tls13 " prefix. */
export function expandLabel(
  hash: string,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const info = concat([
    u16(length),
    vector(1, encoder.encode("tls13 " + label)),
    vector(1, context),
  ]);
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
  return createHmac(suite.hash, key).update(transcriptHash).digest();
}
