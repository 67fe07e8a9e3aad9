// The record layer (RFC 8446 §5): cutting the byte stream into records without quadratic
// copying, and AEAD protection of records with a traffic secret's key, IV and sequence number.

import { createCipheriv, createDecipheriv } from "node:crypto";
import { Alert, TlsAlert } from "./alert.ts";
import { ByteQueue } from "./bytes.ts";
import { trafficIv, trafficKey } from "./key_schedule.ts";
import { type CipherSuite, IV_LENGTH, TAG_LENGTH } from "./suites.ts";

export const ContentType = {
  changeCipherSpec: 20,
  alert: 21,
  handshake: 22,
  applicationData: 23,
} as const;

/** Largest TLSPlaintext fragment (§5.1). */
export const MAX_PLAINTEXT = 1 << 14;
/** Largest TLSCiphertext fragment (§5.2): 2^14 plus 256 bytes of expansion. */
export const MAX_CIPHERTEXT = (1 << 14) + 256;
const HEADER = 5;
/**
 * Sequence numbers are JS numbers, exact up to 2^53; the connection ends well before the 2^64
 * the RFC allows, and long before any wrap (a KeyUpdate starts over at 0).
 */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/** One record as it came off the wire. */
export interface RawRecord {
  type: number;
  /** The 5 header bytes (the AAD of a protected record). */
  header: Uint8Array;
  fragment: Uint8Array;
}

/** Cuts the byte stream into whole records (the queue keeps the growth linear). */
export class RecordReader extends ByteQueue {
  /**
   * The next whole record (its bytes are a copy the caller keeps), or null until more bytes
   * come. Throws record_overflow for a length beyond the ciphertext limit, decode_error for a
   * header that is not a TLS record.
   */
  next(): RawRecord | null {
    if (this.length < HEADER) return null;
    if (this.at(1) !== 3) throw new TlsAlert(Alert.decodeError, "not a TLS record");
    const length = (this.at(3) << 8) | this.at(4);
    if (length > MAX_CIPHERTEXT) {
      throw new TlsAlert(Alert.recordOverflow, `record of ${length} bytes`);
    }
    if (this.length < HEADER + length) return null;
    const bytes = this.take(HEADER + length);
    return { type: bytes[0], header: bytes.subarray(0, HEADER), fragment: bytes.subarray(HEADER) };
  }
}

/**
 * The per-record nonce (§5.3): `iv` XOR the 64-bit sequence number, left-padded to 12 bytes.
 * Throws (internal_error, the connection ends) at 2^53 - 1, where a JS number stops being
 * exact: far below 2^64, so a sequence number never wraps or repeats.
 */
export function recordNonce(iv: Uint8Array, seq: number): Uint8Array {
  if (!(seq >= 0 && seq < MAX_SEQUENCE)) {
    throw new TlsAlert(Alert.internalError, "sequence number exhausted");
  }
  const nonce = iv.slice(0, IV_LENGTH);
  const high = Math.floor(seq / 0x1_0000_0000), low = seq >>> 0;
  for (let i = 0; i < 4; i++) {
    nonce[4 + i] ^= (high >>> (24 - 8 * i)) & 0xff;
    nonce[8 + i] ^= (low >>> (24 - 8 * i)) & 0xff;
  }
  return nonce;
}

/** A plaintext record (ServerHello, the compatibility change_cipher_spec, early alerts). */
export function plainRecord(type: number, fragment: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + fragment.length);
  out.set([type, 3, 3, fragment.length >> 8, fragment.length & 0xff]);
  out.set(fragment, HEADER);
  return out;
}

/**
 * One direction's protection: the traffic secret (kept for KeyUpdate), the key and IV derived
 * from it, and the sequence number. Secret ‖ key ‖ IV sit at `at` in `store`, an array the two
 * directions of a session can share (each typed array costs about 200 bytes of heap).
 */
export class RecordProtection {
  #store: Uint8Array;
  #at: number;
  #seq = 0;

  /** Bytes one direction needs in a store. */
  static size(suite: CipherSuite): number {
    return suite.hashLength + suite.keyLength + IV_LENGTH;
  }

  constructor(
    readonly suite: CipherSuite,
    secret: Uint8Array,
    store = new Uint8Array(RecordProtection.size(suite)),
    at = 0,
  ) {
    this.#store = store;
    this.#at = at;
    this.rekey(secret);
  }

  get secret(): Uint8Array {
    return this.#store.subarray(this.#at, this.#at + this.suite.hashLength);
  }

  get sequence(): number {
    return this.#seq;
  }

  /** Moves to a new traffic secret (KeyUpdate): new key and IV, sequence number 0. */
  rekey(secret: Uint8Array): void {
    const { hashLength, keyLength } = this.suite;
    const key = trafficKey(this.suite, secret), iv = trafficIv(this.suite, secret);
    this.#store.set(secret, this.#at);
    this.#store.set(key, this.#at + hashLength);
    this.#store.set(iv, this.#at + hashLength + keyLength);
    this.#seq = 0;
  }

  #key(): Uint8Array {
    const at = this.#at + this.suite.hashLength;
    return this.#store.subarray(at, at + this.suite.keyLength);
  }

  #nonce(): Uint8Array {
    const at = this.#at + this.suite.hashLength + this.suite.keyLength;
    return recordNonce(this.#store.subarray(at, at + IV_LENGTH), this.#seq++);
  }

  /** Protects one record: `content` (≤ 2^14 bytes) with inner type `type`, no padding. */
  seal(type: number, content: Uint8Array): Uint8Array {
    const length = content.length + 1 + TAG_LENGTH;
    const out = new Uint8Array(HEADER + length);
    out.set([ContentType.applicationData, 3, 3, length >> 8, length & 0xff]);
    const cipher = sealer(this.suite, this.#key(), this.#nonce());
    cipher.setAAD(out.subarray(0, HEADER), { plaintextLength: content.length + 1 });
    const a = cipher.update(content);
    const b = cipher.update(Uint8Array.of(type));
    const c = cipher.final();
    out.set(a, HEADER);
    out.set(b, HEADER + a.length);
    out.set(c, HEADER + a.length + b.length);
    out.set(cipher.getAuthTag(), HEADER + content.length + 1);
    return out;
  }

  /**
   * Removes protection from one application_data record: the inner content type and the content
   * without padding. bad_record_mac if it does not authenticate, unexpected_message if the inner
   * plaintext is all padding, record_overflow if it is longer than 2^14 + 1 bytes.
   */
  open(record: RawRecord): { type: number; content: Uint8Array } {
    const f = record.fragment;
    if (f.length < TAG_LENGTH + 1) {
      throw new TlsAlert(Alert.badRecordMac, "protected record too short");
    }
    const body = f.subarray(0, f.length - TAG_LENGTH);
    let plain: Uint8Array;
    try {
      const decipher = opener(this.suite, this.#key(), this.#nonce());
      decipher.setAuthTag(f.subarray(f.length - TAG_LENGTH));
      decipher.setAAD(record.header, { plaintextLength: body.length });
      const a = decipher.update(body);
      const b = decipher.final();
      plain = b.length === 0 ? a : Buffer.concat([a, b]);
    } catch (e) {
      if (e instanceof TlsAlert) throw e;
      throw new TlsAlert(Alert.badRecordMac, "record did not authenticate");
    }
    if (plain.length > MAX_PLAINTEXT + 1) {
      throw new TlsAlert(Alert.recordOverflow, "inner plaintext too long");
    }
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) throw new TlsAlert(Alert.unexpectedMessage, "record with no content type");
    return { type: plain[end], content: plain.subarray(0, end) };
  }
}

/** The AEAD encryptor for one record (two calls so each gets node:crypto's AEAD typing). */
function sealer(suite: CipherSuite, key: Uint8Array, nonce: Uint8Array) {
  const options = { authTagLength: TAG_LENGTH };
  return suite.aead === "chacha20-poly1305"
    ? createCipheriv(suite.aead, key, nonce, options)
    : createCipheriv(suite.aead, key, nonce, options);
}

function opener(suite: CipherSuite, key: Uint8Array, nonce: Uint8Array) {
  const options = { authTagLength: TAG_LENGTH };
  return suite.aead === "chacha20-poly1305"
    ? createDecipheriv(suite.aead, key, nonce, options)
    : createDecipheriv(suite.aead, key, nonce, options);
}
