export {
  ConnectionClosedError,
  DeadlineError,
  IdleTimeoutError,
  LineTooLongError,
  SocketConnection,
  TlsHandshakeError,
} from "./connection.ts";
export type { Connection, DeadlineOptions, TlsEngine } from "./connection.ts";
export { bindServer, formatHostPort, listen, parseHostPort } from "./listen.ts";
export { ipv6Groups, isPublicIpv6, limitKey, normalizeAddress } from "./ip.ts";
export { addressKind, addressPolicy } from "./public_address.ts";
export type { AddressKind, AddressPolicyOptions } from "./public_address.ts";
export type { EndReason, Listener, ListenMode, ListenOptions } from "./listen.ts";
export {
  createSecureContext,
  describeCertificate,
  generateSelfSigned,
  loadTlsMaterial,
  serverTls,
} from "./tls.ts";
export type { CertificateInfo, ServerTls, TlsMaterial, TlsVersion } from "./tls.ts";
export { resolvingFetch } from "./resolving_fetch.ts";
export type { Resolve } from "./resolving_fetch.ts";
export { BUSY_MS, loopTurn } from "./loop_turn.ts";
export { setTcpReading } from "./tcp_reads.ts";
export { DelayQueue, delayQueue } from "./delay_queue.ts";
export { activityCount, noteActivity } from "./activity.ts";
