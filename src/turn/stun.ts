// STUN message codec (RFC 5389, with the TURN attributes of RFC 5766/8656): header, attributes
// with 32-bit padding, XOR'd transport addresses, MESSAGE-INTEGRITY, FINGERPRINT, ERROR-CODE and
// TURN ChannelData framing. Decoding never throws on network input: malformed bytes give null.

import { createHmac } from "node:crypto";
import { parseIp, plainAddress } from "../net/ip.ts";

export const MAGIC_COOKIE = 0x2112a442;
const HEADER = 20;

export const Method = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;

export const Class = { Request: 0, Indication: 1, Success: 2, Error: 3 } as const;

export const Attr = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  XorMappedAddress: 0x0020,
  ReservationToken: 0x0022,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;

export interface StunAttribute {
  type: number;
  value: Uint8Array;
}

export interface StunMessage {
  method: number;
  cls: number;
  /** 12 bytes. */
  transactionId: Uint8Array;
  /** In wire order; none after MESSAGE-INTEGRITY except FINGERPRINT, none after FINGERPRINT. */
  attributes: StunAttribute[];
}

export interface DecodedStun extends StunMessage {
  /** The message's bytes (header + Length), a view into the datagram. */
  raw: Uint8Array;
  /** Offset in raw of the MESSAGE-INTEGRITY attribute header, or -1. */
  integrityAt: number;
  /** Offset in raw of the FINGERPRINT attribute header, or -1. */
  fingerprintAt: number;
}

export interface TransportAddress {
  family: 4 | 6;
  /** IPv4 dotted quad or IPv6 in RFC 5952 form. */
  ip: string;
  port: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

export function text(b: Uint8Array | undefined): string | undefined {
  return b === undefined ? undefined : dec.decode(b);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function messageType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) |
    ((cls & 1) << 4) | ((cls & 2) << 7);
}

function splitType(type: number): { method: number; cls: number } {
  const method = (type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80);
  const cls = ((type >> 4) & 1) | ((type >> 7) & 2);
  return { method, cls };
}

/** True when the bytes look like a STUN message (top bits 00 and the magic cookie). */
export function isStun(buf: Uint8Array): boolean {
  return buf.length >= HEADER && (buf[0] & 0xc0) === 0 &&
    view(buf).getUint32(4) === MAGIC_COOKIE;
}

/** Parses one STUN message; null when the bytes are not a well-formed one. */
export function decodeStun(buf: Uint8Array): DecodedStun | null {
  try {
    if (!(buf instanceof Uint8Array) || !isStun(buf)) return null;
    const dv = view(buf);
    const length = dv.getUint16(2);
    if (length % 4 !== 0 || HEADER + length > buf.length) return null;
    const raw = buf.subarray(0, HEADER + length);
    const { method, cls } = splitType(dv.getUint16(0));
    const attributes: StunAttribute[] = [];
    let integrityAt = -1;
    let fingerprintAt = -1;
    let off = HEADER;
    while (off < raw.length) {
      if (off + 4 > raw.length) return null;
      const type = dv.getUint16(off);
      const len = dv.getUint16(off + 2);
      const end = off + 4 + len;
      if (end > raw.length) return null;
      const padded = off + 4 + ((len + 3) & ~3);
      if (padded > raw.length) return null;
      const value = raw.subarray(off + 4, end);
      if (fingerprintAt < 0) {
        if (type === Attr.Fingerprint) {
          if (len !== 4) return null;
          fingerprintAt = off;
          attributes.push({ type, value });
        } else if (integrityAt < 0) {
          if (type === Attr.MessageIntegrity) {
            if (len !== 20) return null;
            integrityAt = off;
          }
          attributes.push({ type, value });
        }
        // Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored (RFC 5389 15.4).
      }
      off = padded;
    }
    return {
      method,
      cls,
      transactionId: raw.slice(8, 20),
      attributes,
      raw,
      integrityAt,
      fingerprintAt,
    };
  } catch {
    return null;
  }
}

export function getAttr(msg: StunMessage, type: number): Uint8Array | undefined {
  return msg.attributes.find((a) => a.type === type)?.value;
}

export function getAttrs(msg: StunMessage, type: number): Uint8Array[] {
  return msg.attributes.filter((a) => a.type === type).map((a) => a.value);
}

export function hmacSha1(key: Uint8Array | string, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha1", key).update(data).digest());
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as in ISO 3309 / ITU-T V.42 (the one zlib and PNG use). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const FINGERPRINT_XOR = 0x5354554e;

/** HMAC-SHA1 over the message before `at`, with the header's Length set to cover `at` + 24. */
function integrityOver(raw: Uint8Array, at: number, key: Uint8Array | string): Uint8Array {
  const head = raw.slice(0, at);
  view(head).setUint16(2, at + 24 - HEADER);
  return hmacSha1(key, head);
}

function fingerprintOver(raw: Uint8Array, at: number): number {
  const head = raw.slice(0, at);
  view(head).setUint16(2, at + 8 - HEADER);
  return (crc32(head) ^ FINGERPRINT_XOR) >>> 0;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Checks MESSAGE-INTEGRITY with the key (long-term: MD5 of user:realm:pass; short-term: the
 *  password). False when the attribute is absent. */
export function checkIntegrity(msg: DecodedStun, key: Uint8Array | string): boolean {
  if (msg.integrityAt < 0) return false;
  const got = msg.raw.subarray(msg.integrityAt + 4, msg.integrityAt + 24);
  return equalBytes(integrityOver(msg.raw, msg.integrityAt, key), got);
}

/** "absent", "valid" or "invalid". */
export function checkFingerprint(msg: DecodedStun): "absent" | "valid" | "invalid" {
  if (msg.fingerprintAt < 0) return "absent";
  const got = view(msg.raw).getUint32(msg.fingerprintAt + 4);
  return fingerprintOver(msg.raw, msg.fingerprintAt) === got ? "valid" : "invalid";
}

export interface EncodeOptions {
  /** Appends MESSAGE-INTEGRITY computed with this key. */
  integrityKey?: Uint8Array | string;
  /** Appends FINGERPRINT. */
  fingerprint?: boolean;
}

/** Serializes a message; attribute values are zero-padded to 32 bits. Throws on values that
 *  cannot be encoded (a programming error, never network input). */
export function encodeStun(msg: StunMessage, options: EncodeOptions = {}): Uint8Array {
  if (msg.transactionId.length !== 12) throw new RangeError("transaction id must be 12 bytes");
  let size = HEADER;
  for (const a of msg.attributes) {
    if (a.value.length > 0xffff) throw new RangeError("attribute too long");
    size += 4 + ((a.value.length + 3) & ~3);
  }
  if (options.integrityKey !== undefined) size += 24;
  if (options.fingerprint) size += 8;
  if (size - HEADER > 0xffff) throw new RangeError("message too long");
  const out = new Uint8Array(size);
  const dv = view(out);
  dv.setUint16(0, messageType(msg.method, msg.cls));
  dv.setUint16(2, size - HEADER);
  dv.setUint32(4, MAGIC_COOKIE);
  out.set(msg.transactionId, 8);
  let off = HEADER;
  for (const a of msg.attributes) {
    dv.setUint16(off, a.type);
    dv.setUint16(off + 2, a.value.length);
    out.set(a.value, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  if (options.integrityKey !== undefined) {
    const mac = integrityOver(out, off, options.integrityKey);
    dv.setUint16(off, Attr.MessageIntegrity);
    dv.setUint16(off + 2, 20);
    out.set(mac, off + 4);
    off += 24;
  }
  if (options.fingerprint) {
    const fp = fingerprintOver(out, off);
    dv.setUint16(off, Attr.Fingerprint);
    dv.setUint16(off + 2, 4);
    dv.setUint32(off + 4, fp);
  }
  return out;
}

// --- IP addresses ---

/** 4 or 16 bytes for an IP literal (brackets and an IPv6 zone allowed); null for anything else. */
export function ipToBytes(ip: string): Uint8Array | null {
  return typeof ip === "string" ? parseIp(plainAddress(ip)) : null;
}

/** Text form of 4 or 16 bytes: dotted quad, or RFC 5952 for IPv6. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestAt = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(":");
  return hex.slice(0, bestAt).join(":") + "::" + hex.slice(bestAt + bestLen).join(":");
}

/** Canonical form of an address as sockets report it; IPv4-mapped IPv6 becomes IPv4. */
export function normalizeIp(ip: string): { family: 4 | 6; ip: string } | null {
  const b = ipToBytes(ip);
  if (!b) return null;
  if (
    b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff
  ) {
    return { family: 4, ip: bytesToIp(b.subarray(12)) };
  }
  return { family: b.length === 4 ? 4 : 6, ip: bytesToIp(b) };
}

// --- Address attributes ---

function addressValue(addr: TransportAddress, xorWith: Uint8Array | null): Uint8Array {
  const ipb = ipToBytes(addr.ip);
  if (!ipb || (ipb.length === 4) !== (addr.family === 4)) {
    throw new TypeError(`not an IPv${addr.family} address: ${addr.ip}`);
  }
  const out = new Uint8Array(4 + ipb.length);
  const dv = view(out);
  dv.setUint8(1, addr.family === 4 ? 0x01 : 0x02);
  dv.setUint16(2, xorWith ? addr.port ^ (MAGIC_COOKIE >>> 16) : addr.port);
  for (let i = 0; i < ipb.length; i++) out[4 + i] = xorWith ? ipb[i] ^ xorWith[i] : ipb[i];
  return out;
}

function parseAddress(value: Uint8Array, xorWith: Uint8Array | null): TransportAddress | null {
  if (!(value instanceof Uint8Array) || value.length < 4) return null;
  const fam = value[1];
  const n = fam === 0x01 ? 4 : fam === 0x02 ? 16 : 0;
  if (n === 0 || value.length !== 4 + n) return null;
  let port = view(value).getUint16(2);
  if (xorWith) port ^= MAGIC_COOKIE >>> 16;
  const ipb = new Uint8Array(n);
  for (let i = 0; i < n; i++) ipb[i] = xorWith ? value[4 + i] ^ xorWith[i] : value[4 + i];
  return { family: n === 4 ? 4 : 6, ip: bytesToIp(ipb), port };
}

function xorKey(transactionId: Uint8Array): Uint8Array {
  const k = new Uint8Array(16);
  view(k).setUint32(0, MAGIC_COOKIE);
  k.set(transactionId.subarray(0, 12), 4);
  return k;
}

/** Value of XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS or XOR-RELAYED-ADDRESS. */
export function encodeXorAddress(addr: TransportAddress, transactionId: Uint8Array): Uint8Array {
  return addressValue(addr, xorKey(transactionId));
}

export function decodeXorAddress(
  value: Uint8Array | undefined,
  transactionId: Uint8Array,
): TransportAddress | null {
  if (value === undefined || transactionId.length !== 12) return null;
  return parseAddress(value, xorKey(transactionId));
}

/** Value of MAPPED-ADDRESS (plain, RFC 3489 style). */
export function encodeAddress(addr: TransportAddress): Uint8Array {
  return addressValue(addr, null);
}

export function decodeAddress(value: Uint8Array | undefined): TransportAddress | null {
  return value === undefined ? null : parseAddress(value, null);
}

// --- Other attribute values ---

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  view(b).setUint32(0, n >>> 0);
  return b;
}

/** A 32-bit value, or null when the attribute is not exactly 4 bytes. */
export function readU32(value: Uint8Array | undefined): number | null {
  return value && value.length === 4 ? view(value).getUint32(0) : null;
}

/** A value whose first byte carries the field and three bytes RFFU (REQUESTED-TRANSPORT, ...). */
export function firstByte(value: Uint8Array | undefined): number | null {
  return value && value.length >= 1 ? value[0] : null;
}

export function encodeErrorCode(code: number, reason: string): Uint8Array {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw new RangeError("error code");
  const r = utf8(reason);
  const out = new Uint8Array(4 + r.length);
  out[2] = Math.floor(code / 100);
  out[3] = code % 100;
  out.set(r, 4);
  return out;
}

export function decodeErrorCode(
  value: Uint8Array | undefined,
): { code: number; reason: string } | null {
  if (!value || value.length < 4) return null;
  const cls = value[2] & 0x07;
  const num = value[3];
  if (cls < 3 || cls > 6 || num > 99) return null;
  return { code: cls * 100 + num, reason: dec.decode(value.subarray(4)) };
}

export function encodeUnknownAttributes(types: number[]): Uint8Array {
  const out = new Uint8Array(types.length * 2);
  types.forEach((t, i) => view(out).setUint16(2 * i, t));
  return out;
}

/** Comprehension-required attribute types (0x0000-0x7FFF) not in `known`. */
export function unknownRequired(msg: StunMessage, known: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (const a of msg.attributes) {
    if (a.type < 0x8000 && !known.has(a.type) && !out.includes(a.type)) out.push(a.type);
  }
  return out;
}

// --- ChannelData (RFC 5766 section 11.4) ---

/** True when the first two bits are 01, as for a ChannelData message. */
export function isChannelData(buf: Uint8Array): boolean {
  return buf.length >= 4 && (buf[0] & 0xc0) === 0x40;
}

export function decodeChannelData(buf: Uint8Array): { channel: number; data: Uint8Array } | null {
  if (!(buf instanceof Uint8Array) || !isChannelData(buf)) return null;
  const dv = view(buf);
  const channel = dv.getUint16(0);
  const len = dv.getUint16(2);
  if (4 + len > buf.length) return null;
  return { channel, data: buf.subarray(4, 4 + len) };
}

/** A ChannelData message; `pad` rounds it up to 32 bits (needed over TCP, optional over UDP). */
export function encodeChannelData(channel: number, data: Uint8Array, pad = false): Uint8Array {
  if (channel < 0x4000 || channel > 0x7fff) throw new RangeError("channel number");
  if (data.length > 0xffff) throw new RangeError("data too long");
  const size = 4 + (pad ? (data.length + 3) & ~3 : data.length);
  const out = new Uint8Array(size);
  view(out).setUint16(0, channel);
  view(out).setUint16(2, data.length);
  out.set(data, 4);
  return out;
}
