export {
  ConnectionClosedError,
  IdleTimeoutError,
  LineTooLongError,
  SocketConnection,
} from "./connection.ts";
export { DenoTlsConnection } from "./deno_connection.ts";
export type { Connection } from "./connection.ts";
export { listen, parseHostPort } from "./listen.ts";
export type { Listener, ListenMode, ListenOptions } from "./listen.ts";
export {
  createSecureContext,
  describeCertificate,
  generateSelfSigned,
  loadTlsMaterial,
  serverTls,
} from "./tls.ts";
export type { CertificateInfo, ServerTls, TlsMaterial } from "./tls.ts";
export { resolvingFetch } from "./resolving_fetch.ts";
export type { Resolve } from "./resolving_fetch.ts";
