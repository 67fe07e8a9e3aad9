// Handshake messages (RFC 8446 §4): reading the ClientHello, writing the server's messages.
// Each message is a 4-byte header (type, 24-bit length) then its body.

import { Alert, TlsAlert } from "./alert.ts";
import { concat, Reader, u16, u24, u8, vector } from "./bytes.ts";

export const HandshakeType = {
  clientHello: 1,
  serverHello: 2,
  newSessionTicket: 4,
  endOfEarlyData: 5,
  encryptedExtensions: 8,
  certificate: 11,
  certificateRequest: 13,
  certificateVerify: 15,
  finished: 20,
  keyUpdate: 24,
} as const;

export const Extension = {
  serverName: 0,
  supportedGroups: 10,
  signatureAlgorithms: 13,
  alpn: 16,
  preSharedKey: 41,
  earlyData: 42,
  supportedVersions: 43,
  keyShare: 51,
} as const;

const TLS13 = 0x0304;

/** What the server needs from a ClientHello (RFC 8446 §4.1.2). */
export interface ClientHello {
  legacyVersion: number;
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuites: number[];
  /** Whether the hello offers TLS 1.3 in supported_versions. */
  offersTls13: boolean;
  /** Null when the extension is absent. */
  supportedGroups: number[] | null;
  signatureAlgorithms: number[] | null;
  keyShares: { group: number; key: Uint8Array }[] | null;
  alpn: string[] | null;
  serverName: string | null;
  earlyData: boolean;
}

/** A handshake message with its header. */
export function handshakeMessage(type: number, body: Uint8Array): Uint8Array {
  return concat([u8(type), u24(body.length), body]);
}

const latin1Decoder = new TextDecoder("latin1");

/** Bytes as a flat string of the same char codes (protocol names and host names are ASCII). */
function latin1(bytes: Uint8Array): string {
  return latin1Decoder.decode(bytes);
}

function u16List(r: Reader, what: string): number[] {
  const out: number[] = [];
  while (r.left > 0) out.push(r.u16());
  if (out.length === 0) throw new TlsAlert(Alert.decodeError, `empty ${what}`);
  return out;
}

/** Parses a ClientHello body (without the 4-byte header). Throws TlsAlert on malformed input. */
export function parseClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body, "ClientHello");
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vector(1);
  if (sessionId.length > 32) throw new TlsAlert(Alert.decodeError, "session id over 32 bytes");
  const suites = r.sub(2, "cipher_suites");
  if (suites.left % 2 !== 0) throw new TlsAlert(Alert.decodeError, "odd cipher_suites length");
  const cipherSuites = u16List(suites, "cipher_suites");
  const compression = r.vector(1);
  if (compression.length === 0) throw new TlsAlert(Alert.decodeError, "no compression method");
  const hello: ClientHello = {
    legacyVersion,
    random,
    sessionId,
    cipherSuites,
    offersTls13: false,
    supportedGroups: null,
    signatureAlgorithms: null,
    keyShares: null,
    alpn: null,
    serverName: null,
    earlyData: false,
  };
  // A hello without extensions is TLS 1.2 or older (§4.1.2).
  if (r.left === 0) return hello;
  const extensions = r.sub(2, "extensions");
  r.end();
  const seen = new Set<number>();
  while (extensions.left > 0) {
    const type = extensions.u16();
    const data = extensions.sub(2, `extension ${type}`);
    if (seen.has(type)) throw new TlsAlert(Alert.illegalParameter, `extension ${type} twice`);
    seen.add(type);
    // pre_shared_key must be the last extension (§4.2.11); it is otherwise ignored.
    if (type === Extension.preSharedKey && extensions.left > 0) {
      throw new TlsAlert(Alert.illegalParameter, "pre_shared_key is not the last extension");
    }
    readExtension(hello, type, data);
  }
  if (hello.offersTls13) {
    const only = compression.length === 1 && compression[0] === 0;
    if (!only) throw new TlsAlert(Alert.illegalParameter, "TLS 1.3 hello with compression");
  }
  return hello;
}

function readExtension(hello: ClientHello, type: number, data: Reader): void {
  switch (type) {
    case Extension.supportedVersions: {
      const list = data.sub(1, "supported_versions");
      data.end();
      hello.offersTls13 = u16List(list, "supported_versions").includes(TLS13);
      return;
    }
    case Extension.supportedGroups: {
      const list = data.sub(2, "supported_groups");
      data.end();
      hello.supportedGroups = u16List(list, "supported_groups");
      return;
    }
    case Extension.signatureAlgorithms: {
      const list = data.sub(2, "signature_algorithms");
      data.end();
      hello.signatureAlgorithms = u16List(list, "signature_algorithms");
      return;
    }
    case Extension.keyShare: {
      const list = data.sub(2, "key_share");
      data.end();
      const shares: { group: number; key: Uint8Array }[] = [];
      // A Set: a 64 KiB hello holds up to 13 000 shares, too many to compare pairwise.
      const groups = new Set<number>();
      while (list.left > 0) {
        const group = list.u16();
        const key = list.vector(2);
        if (key.length === 0) throw new TlsAlert(Alert.decodeError, "empty key share");
        if (groups.has(group)) {
          throw new TlsAlert(Alert.illegalParameter, `two key shares for group ${group}`);
        }
        groups.add(group);
        shares.push({ group, key });
      }
      hello.keyShares = shares;
      return;
    }
    case Extension.alpn: {
      const list = data.sub(2, "application_layer_protocol_negotiation");
      data.end();
      const names: string[] = [];
      while (list.left > 0) {
        const name = list.vector(1);
        if (name.length === 0) throw new TlsAlert(Alert.decodeError, "empty ALPN protocol name");
        names.push(latin1(name));
      }
      if (names.length === 0) throw new TlsAlert(Alert.decodeError, "empty ALPN list");
      hello.alpn = names;
      return;
    }
    case Extension.serverName: {
      const list = data.sub(2, "server_name");
      data.end();
      while (list.left > 0) {
        const nameType = list.u8();
        const name = list.vector(2);
        if (nameType === 0 && hello.serverName === null) {
          hello.serverName = latin1(name);
        }
      }
      return;
    }
    case Extension.earlyData:
      hello.earlyData = true;
      return;
    default:
      return; // not used by this server (§4.2: unknown extensions are ignored)
  }
}

/** ServerHello (§4.1.3) for TLS 1.3 with one key share. */
export function serverHello(
  random: Uint8Array,
  sessionId: Uint8Array,
  suite: number,
  group: number,
  share: Uint8Array,
): Uint8Array {
  const extensions = concat([
    u16(Extension.supportedVersions),
    vector(2, u16(TLS13)),
    u16(Extension.keyShare),
    vector(2, u16(group), vector(2, share)),
  ]);
  const body = concat([
    u16(0x0303),
    random,
    vector(1, sessionId),
    u16(suite),
    u8(0),
    vector(2, extensions),
  ]);
  return handshakeMessage(HandshakeType.serverHello, body);
}

/** EncryptedExtensions (§4.3.1): the chosen ALPN protocol, and an empty server_name ack. */
export function encryptedExtensions(alpn: string | null, ackServerName: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  if (ackServerName) parts.push(u16(Extension.serverName), vector(2));
  if (alpn !== null) {
    const name = Uint8Array.from(alpn, (c) => c.charCodeAt(0));
    parts.push(u16(Extension.alpn), vector(2, vector(2, vector(1, name))));
  }
  return handshakeMessage(HandshakeType.encryptedExtensions, vector(2, ...parts));
}

/** Certificate (§4.4.2): empty request context, each certificate with no extensions. */
export function certificate(chain: Uint8Array[]): Uint8Array {
  const entries = chain.map((der) => concat([vector(3, der), vector(2)]));
  return handshakeMessage(HandshakeType.certificate, concat([vector(1), vector(3, ...entries)]));
}

/** The content a server's CertificateVerify signs (§4.4.3). */
export function certificateVerifyContent(transcriptHash: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(64).fill(0x20);
  const context = new TextEncoder().encode("TLS 1.3, server CertificateVerify");
  return concat([prefix, context, u8(0), transcriptHash]);
}

export function certificateVerify(scheme: number, signature: Uint8Array): Uint8Array {
  return handshakeMessage(
    HandshakeType.certificateVerify,
    concat([u16(scheme), vector(2, signature)]),
  );
}

export function finished(verifyData: Uint8Array): Uint8Array {
  return handshakeMessage(HandshakeType.finished, verifyData);
}

/** KeyUpdate (§4.6.3) with update_not_requested. */
export function keyUpdateNotRequested(): Uint8Array {
  return handshakeMessage(HandshakeType.keyUpdate, u8(0));
}
