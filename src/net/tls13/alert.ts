// TLS alerts (RFC 8446 §6): the codes the engine sends, and the error that carries one from
// wherever a check fails up to the session, which turns it into the alert record it sends.

/** AlertDescription values used by the engine (RFC 8446 §6, RFC 7301 §3.2). */
export const Alert = {
  closeNotify: 0,
  unexpectedMessage: 10,
  badRecordMac: 20,
  recordOverflow: 22,
  handshakeFailure: 40,
  illegalParameter: 47,
  decodeError: 50,
  decryptError: 51,
  protocolVersion: 70,
  internalError: 80,
  userCanceled: 90,
  missingExtension: 109,
} as const;

/** A fatal protocol error: `alert` is the description to send before closing. */
export class TlsAlert extends Error {
  constructor(readonly alert: number, message: string) {
    super(message);
    this.name = "TlsAlert";
  }
}

/** The client sent a fatal alert: nothing is sent back, the connection just ends. */
export class PeerAlert extends Error {
  constructor(readonly alert: number) {
    super(`the client sent alert ${alert}`);
    this.name = "PeerAlert";
  }
}
