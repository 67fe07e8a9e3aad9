// tern's own TLS 1.3 server engine (RFC 8446): pure (no sockets, no timers; node:crypto only).
// A connection's first bytes go to checkClientHello; on "accept" a Tls13ServerSession serves it,
// otherwise node:tls does. See server.ts for what the engine does and does not do.

export { type Tls13Credentials, tls13Credentials } from "./credentials.ts";
export { checkClientHello, type HelloCheck } from "./client_hello.ts";
export { type Tls13Options, Tls13ServerSession, type TlsOutput } from "./server.ts";
export { PeerAlert, TlsAlert } from "./alert.ts";
