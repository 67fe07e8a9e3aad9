// The relay handshake (iroh relay protocol v3): the client's first frame is ClientInfo, holding
// its Ed25519 public key (its endpoint id), a postcard-encoded `ClientInfo { version }` and the
// client's signature over those message bytes. The relay checks the signature, so a client can
// only receive packets for a key it holds, and then the protocol version.

import { CLIENT_INFO_MAGIC, FrameType, KEY_BYTES, SIGNATURE_BYTES } from "./frames.ts";
import type { OutFrame } from "./frames.ts";

export const PROTOCOL_VERSION = 3;

export type HandshakeFailure = "weak_key" | "bad_signature" | "bad_message" | "bad_version";

export class HandshakeError extends Error {
  constructor(readonly reason: HandshakeFailure, message: string) {
    super(message);
    this.name = "HandshakeError";
  }
}

/**
 * y-coordinates (little-endian, sign bit cleared) of the points of small order, in canonical
 * and non-canonical encodings: 0, 1, p-1, p, p+1 and the two order-8 points. A signature can
 * verify under such a key without a secret (iroh uses ed25519-dalek `verify_strict`, which
 * refuses them too), so they are refused as endpoint ids.
 */
const SMALL_ORDER_Y = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
].map((hex) => Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16)));

export function isWeakKey(key: Uint8Array): boolean {
  return SMALL_ORDER_Y.some((y) => {
    for (let i = 0; i < 31; i++) if (key[i] !== y[i]) return false;
    return (key[31] & 0x7f) === y[31];
  });
}

/** Reads postcard's unsigned LEB128 varint (at most 10 bytes for a u64); null if malformed. */
export function readVarint(bytes: Uint8Array): number | null {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < bytes.length && i < 10; i++) {
    value += (bytes[i] & 0x7f) * scale;
    if ((bytes[i] & 0x80) === 0) return Number.isSafeInteger(value) ? value : null;
    scale *= 128;
  }
  return null;
}

/** Checks key, signature and version; resolves with nothing or throws HandshakeError. */
export async function verifyClientInfo(
  info: { key: Uint8Array; signature: Uint8Array; message: Uint8Array },
): Promise<void> {
  if (isWeakKey(info.key)) throw new HandshakeError("weak_key", "Cannot accept a weak key");
  let valid = false;
  try {
    const key = await crypto.subtle.importKey(
      "raw",
      info.key as Uint8Array<ArrayBuffer>,
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    valid = await crypto.subtle.verify(
      "Ed25519",
      key,
      info.signature as Uint8Array<ArrayBuffer>,
      info.message as Uint8Array<ArrayBuffer>,
    );
  } catch {
    valid = false; // bytes that are no point on the curve cannot sign anything
  }
  if (!valid) throw new HandshakeError("bad_signature", "Cannot verify the ClientInfo signature");
  // postcard `ClientInfo { version: usize }`: one varint; trailing bytes are ignored, as iroh's
  // postcard::from_bytes does.
  const version = readVarint(info.message);
  if (version === null) throw new HandshakeError("bad_message", "Cannot decode ClientInfo");
  if (version !== PROTOCOL_VERSION) {
    throw new HandshakeError(
      "bad_version",
      `Cannot serve relay protocol version ${version}: expected ${PROTOCOL_VERSION}`,
    );
  }
}

/** A client's ClientInfo frame, signed with its key (used by the test client). */
export async function clientInfoFrame(
  keys: { publicKey: Uint8Array; privateKey: CryptoKey },
  version = PROTOCOL_VERSION,
): Promise<OutFrame> {
  const message = encodeVarint(version);
  const signature = new Uint8Array(
    await crypto.subtle.sign("Ed25519", keys.privateKey, message as Uint8Array<ArrayBuffer>),
  );
  if (keys.publicKey.length !== KEY_BYTES || signature.length !== SIGNATURE_BYTES) {
    throw new Error("Cannot build ClientInfo: unexpected key or signature size");
  }
  const parts = [CLIENT_INFO_MAGIC, keys.publicKey, signature, message];
  return {
    type: FrameType.ClientInfo,
    parts,
    length: parts.reduce((n, p) => n + p.length, 0),
  };
}

export function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Uint8Array.from(out);
}
