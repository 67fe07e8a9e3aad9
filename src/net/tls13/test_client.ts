// Test support: a minimal in-process TLS 1.3 client (x25519, any of the three suites) built on
// the engine's own key schedule and record layer, so tests can drive a Tls13ServerSession into
// each state synchronously and make valid or broken records for it. It checks nothing about
// the server (the interop tests do that with real clients). Tests only.

import { createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto";
import { concat, Reader, u16, u8, vector } from "./bytes.ts";
import {
  deriveSecret,
  finishedData,
  handshakeSecret,
  hashOf,
  masterSecret,
  nextTrafficSecret,
} from "./key_schedule.ts";
import { X25519_SPKI } from "./key_exchange.ts";
import { Extension, finished, handshakeMessage, HandshakeType } from "./messages.ts";
import { ContentType, plainRecord, RecordProtection, RecordReader } from "./record.ts";
import { type CipherSuite, Group, Scheme, SUITES } from "./suites.ts";

export interface HelloOptions {
  suites?: number[];
  /** supported_versions; null leaves the extension out (a TLS 1.2 hello). */
  versions?: number[] | null;
  groups?: number[];
  /** key_share entries: groups with a key, x25519 gets a real one. */
  shareGroups?: number[];
  schemes?: number[];
  alpn?: string[];
  serverName?: string;
  earlyData?: boolean;
  sessionId?: Uint8Array;
  /** Extra bytes in a padding extension (RFC 7685). */
  padding?: number;
  /** Raw extensions (type, body) added after the others, in order. */
  extra?: [number, Uint8Array][];
}

function ext(type: number, body: Uint8Array): Uint8Array {
  return concat([u16(type), vector(2, body)]);
}

const list16 = (values: number[]) => vector(2, ...values.map(u16));

/** A ClientHello handshake message and the x25519 private key of its share. */
export function clientHello(o: HelloOptions = {}) {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const extensions: Uint8Array[] = [];
  if (o.serverName !== undefined) {
    const name = new TextEncoder().encode(o.serverName);
    extensions.push(ext(Extension.serverName, vector(2, u8(0), vector(2, name))));
  }
  const versions = o.versions === undefined ? [0x0304] : o.versions;
  if (versions) extensions.push(ext(Extension.supportedVersions, vector(1, ...versions.map(u16))));
  extensions.push(ext(Extension.supportedGroups, list16(o.groups ?? [Group.x25519])));
  const schemes = o.schemes ?? [Scheme.ecdsaSecp256r1Sha256, Scheme.rsaPssRsaeSha256];
  extensions.push(ext(Extension.signatureAlgorithms, list16(schemes)));
  const shares = (o.shareGroups ?? [Group.x25519]).map((g) =>
    concat([u16(g), vector(2, g === Group.x25519 ? raw : new Uint8Array(97).fill(4))])
  );
  extensions.push(ext(Extension.keyShare, vector(2, ...shares)));
  if (o.alpn) {
    const names = o.alpn.map((n) => vector(1, new TextEncoder().encode(n)));
    extensions.push(ext(Extension.alpn, vector(2, ...names)));
  }
  if (o.earlyData) extensions.push(ext(Extension.earlyData, new Uint8Array(0)));
  if (o.padding) extensions.push(ext(21, new Uint8Array(o.padding)));
  for (const [type, extBody] of o.extra ?? []) extensions.push(ext(type, extBody));
  const body = concat([
    u16(0x0303),
    new Uint8Array(32).fill(7),
    vector(1, o.sessionId ?? new Uint8Array(0)),
    list16(o.suites ?? SUITES.map((s) => s.code)),
    vector(1, u8(0)),
    vector(2, ...extensions),
  ]);
  return { message: handshakeMessage(HandshakeType.clientHello, body), privateKey };
}

/** Handshake message bytes as plaintext records of at most `size` bytes each. */
export function handshakeRecords(message: Uint8Array, size = 16384): Uint8Array {
  const out: Uint8Array[] = [];
  for (let at = 0; at < message.length; at += size) {
    out.push(plainRecord(ContentType.handshake, message.subarray(at, at + size)));
  }
  return concat(out);
}

/** The client's side of one connection. */
export class TestClient {
  readonly hello: Uint8Array;
  #privateKey;
  #message: Uint8Array;
  suite: CipherSuite | null = null;
  write: RecordProtection | null = null;
  /** The client's handshake keys at sequence 0 (for records a client should not send). */
  handshakeWrite: RecordProtection | null = null;
  read: RecordProtection | null = null;
  #reader = new RecordReader();

  constructor(options: HelloOptions = {}) {
    const { message, privateKey } = clientHello(options);
    this.#message = message;
    this.#privateKey = privateKey;
    this.hello = handshakeRecords(message);
  }

  /** Takes the server's first flight; returns the client's Finished record (`wrong`: bad data). */
  finish(serverBytes: Uint8Array, wrong = false): Uint8Array {
    this.#reader.push(serverBytes);
    const sh = this.#reader.next()!;
    const r = new Reader(sh.fragment.subarray(4));
    r.u16();
    r.bytes(32);
    r.vector(1);
    const code = r.u16();
    r.u8();
    const exts = r.sub(2);
    let share: Uint8Array | null = null;
    while (exts.left > 0) {
      const type = exts.u16();
      const data = exts.sub(2);
      if (type === Extension.keyShare) {
        data.u16();
        share = data.vector(2);
      }
    }
    const suite = this.suite = SUITES.find((s) => s.code === code)!;
    const peer = createPublicKey({
      key: Buffer.from(concat([X25519_SPKI, share!])),
      format: "der",
      type: "spki",
    });
    const shared = diffieHellman({ privateKey: this.#privateKey, publicKey: peer });
    const transcript = [this.#message, sh.fragment];
    const hs = handshakeSecret(suite, shared);
    const helloHash = hashOf(suite, transcript);
    const clientHs = deriveSecret(suite, hs, "c hs traffic", helloHash);
    const serverHs = new RecordProtection(
      suite,
      deriveSecret(suite, hs, "s hs traffic", helloHash),
    );
    // The encrypted flight up to the server's Finished.
    const flight: Uint8Array[] = [];
    for (let rec = this.#reader.next(); rec !== null; rec = this.#reader.next()) {
      if (rec.type === ContentType.changeCipherSpec) continue;
      flight.push(serverHs.open(rec).content);
    }
    transcript.push(concat(flight));
    const finishedHash = hashOf(suite, transcript);
    const master = masterSecret(suite, hs);
    this.read = new RecordProtection(
      suite,
      deriveSecret(suite, master, "s ap traffic", finishedHash),
    );
    const write = new RecordProtection(suite, clientHs);
    this.handshakeWrite = new RecordProtection(suite, clientHs);
    const verifyData = finishedData(suite, clientHs, finishedHash);
    if (wrong) verifyData[0] ^= 1;
    const record = write.seal(ContentType.handshake, finished(verifyData));
    write.rekey(deriveSecret(suite, master, "c ap traffic", finishedHash));
    this.write = write;
    return record;
  }

  data(bytes: Uint8Array): Uint8Array {
    return this.write!.seal(ContentType.applicationData, bytes);
  }

  /** A KeyUpdate record; the client's keys move on after it. */
  keyUpdate(requested: boolean): Uint8Array {
    const record = this.write!.seal(
      ContentType.handshake,
      handshakeMessage(HandshakeType.keyUpdate, u8(requested ? 1 : 0)),
    );
    this.write!.rekey(nextTrafficSecret(this.suite!, this.write!.secret));
    return record;
  }

  alert(description: number): Uint8Array {
    return this.write!.seal(ContentType.alert, Uint8Array.of(description ? 2 : 1, description));
  }

  /** Opens what the server sent after the handshake: application data and alerts. */
  receive(bytes: Uint8Array): { data: Uint8Array[]; alerts: number[] } {
    this.#reader.push(bytes);
    const out = { data: [] as Uint8Array[], alerts: [] as number[] };
    for (let rec = this.#reader.next(); rec !== null; rec = this.#reader.next()) {
      const { type, content } = this.read!.open(rec);
      if (type === ContentType.applicationData) out.data.push(content);
      else if (type === ContentType.alert) out.alerts.push(content[1]);
      else if (type === ContentType.handshake && content[0] === HandshakeType.keyUpdate) {
        this.read!.rekey(nextTrafficSecret(this.suite!, this.read!.secret));
      }
    }
    return out;
  }
}
