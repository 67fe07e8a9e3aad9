// Choosing the parameters of a handshake from a ClientHello (RFC 8446 §4.1.1), and
// checkClientHello: a look at the first bytes of a connection that says whether tern's engine
// serves this client or node:tls should (TLS ≤ 1.2, a hello that would need HelloRetryRequest,
// 0-RTT, a key it cannot sign with, anything malformed).

import { Alert, TlsAlert } from "./alert.ts";
import { concat } from "./bytes.ts";
import { keySchemes, type Tls13Credentials } from "./credentials.ts";
import { type ClientHello, HandshakeType, parseClientHello } from "./messages.ts";
import { MAX_PLAINTEXT } from "./record.ts";
import { type CipherSuite, GROUPS, SUITES } from "./suites.ts";

/** The largest ClientHello the engine takes (and checkClientHello waits for). */
export const MAX_CLIENT_HELLO = 64 * 1024;
/**
 * The most records a ClientHello may span for the engine. checkClientHello walks the records
 * from the start on every call, so a hello in thousands of tiny records, trickled in, would cost
 * quadratic time; real clients send one or two. node:tls gets the others.
 */
export const MAX_HELLO_RECORDS = 16;

/** What the server picked for a handshake. */
export interface Negotiated {
  suite: CipherSuite;
  group: number;
  clientShare: Uint8Array;
  scheme: number;
}

/**
 * Picks suite, group and signature scheme, the server's preference first. Throws TlsAlert when
 * the hello cannot be served by a full TLS 1.3 handshake without HelloRetryRequest.
 */
export function negotiate(hello: ClientHello, creds: Tls13Credentials): Negotiated {
  if (!hello.offersTls13) {
    throw new TlsAlert(Alert.protocolVersion, "client does not offer TLS 1.3");
  }
  if (hello.legacyVersion !== 0x0303) {
    throw new TlsAlert(Alert.protocolVersion, "legacy_version is not TLS 1.2");
  }
  if (hello.earlyData) throw new TlsAlert(Alert.handshakeFailure, "0-RTT is not supported");
  if (hello.signatureAlgorithms === null) {
    throw new TlsAlert(Alert.missingExtension, "no signature_algorithms");
  }
  if (hello.keyShares === null || hello.supportedGroups === null) {
    throw new TlsAlert(Alert.missingExtension, "no key_share or supported_groups");
  }
  const suite = SUITES.find((s) => hello.cipherSuites.includes(s.code));
  if (!suite) throw new TlsAlert(Alert.handshakeFailure, "no common cipher suite");
  const offered = hello.signatureAlgorithms;
  const scheme = keySchemes(creds.key).find((s) => offered.includes(s));
  if (scheme === undefined) {
    throw new TlsAlert(Alert.handshakeFailure, "no common signature scheme");
  }
  const shares = hello.keyShares;
  for (const group of GROUPS) {
    const share = shares.find((s) => s.group === group);
    if (share) return { suite, group, clientShare: share.key, scheme };
  }
  throw new TlsAlert(Alert.handshakeFailure, "no key share in a supported group");
}

export type HelloCheck =
  | { kind: "more" }
  | { kind: "accept" }
  | { kind: "fallback"; reason: string };

/**
 * Gathers the ClientHello's body from the handshake records at the start of `head`: the body,
 * null while incomplete, or a string saying why this is not a well-formed start of TLS.
 */
export function clientHelloBody(head: Uint8Array): Uint8Array | null | string {
  const parts: Uint8Array[] = [];
  let gathered = 0, need = -1, at = 0;
  while (true) {
    if (head.length - at < 5) {
      const prefix = head.subarray(at);
      if (prefix.length >= 1 && prefix[0] !== 22) return "not a handshake record";
      if (prefix.length >= 2 && prefix[1] !== 3) return "not a TLS record";
      return null;
    }
    if (head[at] !== 22) return "not a handshake record";
    if (head[at + 1] !== 3) return "not a TLS record";
    const length = (head[at + 3] << 8) | head[at + 4];
    if (length === 0 || length > MAX_PLAINTEXT) return "bad record length";
    if (parts.length === MAX_HELLO_RECORDS) return "ClientHello in too many records";
    const available = Math.min(length, head.length - at - 5);
    parts.push(head.subarray(at + 5, at + 5 + available));
    gathered += available;
    if (need < 0 && gathered >= 4) {
      const first = joined(parts);
      if (first[0] !== HandshakeType.clientHello) return "first message is not a ClientHello";
      need = 4 + ((first[1] << 16) | (first[2] << 8) | first[3]);
      if (need > MAX_CLIENT_HELLO) return "ClientHello too large";
    }
    if (need >= 0 && gathered >= need) return joined(parts).subarray(4, need);
    if (available < length) return null;
    at += 5 + length;
  }
}

/** The parts as one array: the part itself when there is one (no copy). */
function joined(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : concat(parts);
}

/**
 * Looks at the first bytes of the stream (never consumes). "more" only while a well-formed
 * ClientHello is still incomplete and under MAX_CLIENT_HELLO; anything the engine would not
 * serve is "fallback".
 */
export function checkClientHello(head: Uint8Array, creds: Tls13Credentials): HelloCheck {
  const body = clientHelloBody(head);
  if (body === null) {
    if (head.length > MAX_CLIENT_HELLO + 1024) {
      return { kind: "fallback", reason: "ClientHello too large" };
    }
    return { kind: "more" };
  }
  if (typeof body === "string") return { kind: "fallback", reason: body };
  try {
    negotiate(parseClientHello(body), creds);
    return { kind: "accept" };
  } catch (e) {
    return { kind: "fallback", reason: e instanceof Error ? e.message : String(e) };
  }
}
