// IMAP listeners: "imaps" (993, implicit TLS) and "imap" (143, STARTTLS, LOGINDISABLED before).

import {
  type EndReason,
  listen,
  type Listener,
  type ServerTls,
  type TlsEngine,
  type TlsVersion,
} from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { ImapBackend, ImapServerConfig } from "./backend.ts";
import { ImapSession } from "./session.ts";

export interface ImapServerOptions {
  address: string;
  implicitTls: boolean;
  tls?: () => ServerTls;
  /** Oldest TLS version accepted (default TLS 1.2). */
  minTlsVersion?: TlsVersion;
  /** Which TLS serves IMAP clients (default "tern": its own TLS 1.3, node:tls for the rest). */
  tlsEngine?: TlsEngine;
  config: Omit<ImapServerConfig, "startTlsAvailable">;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** How long a client may take to complete a TLS handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  backend: ImapBackend;
  log?: Logger;
  hooks?: {
    onConnection?(): void;
    onDisconnect?(): void;
    /** Every accepted connection ends once, with why (metrics). */
    onEnd?(reason: EndReason, tls: TlsEngine | null): void;
  };
}

export function startImapServer(options: ImapServerOptions): Promise<Listener> {
  // Two configurations, shared by the sessions (a copy for each connection cost heap per
  // connection): STARTTLS can be offered only on a plain connection with a certificate.
  const withStartTls = { ...options.config, startTlsAvailable: options.tls !== undefined };
  const withoutStartTls = { ...options.config, startTlsAvailable: false };
  const disconnected = () => options.hooks?.onDisconnect?.();
  return listen({
    address: options.address,
    mode: options.implicitTls ? "tls" : "plain",
    tls: options.tls,
    minTlsVersion: options.minTlsVersion,
    tlsEngine: options.tlsEngine ?? "tern",
    maxConnections: options.maxConnections,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    overLimitReply: "* BYE Too many connections, try again later\r\n",
    onConnection(conn, signal) {
      options.hooks?.onConnection?.();
      const config = conn.isTls ? withoutStartTls : withStartTls;
      // Not an async function around run(), nor a finally() after it: the session tells of its
      // end itself, so an idle session holds no suspended frame or promise more.
      return new ImapSession(conn, options.backend, config, options.log).run(signal, disconnected);
    },
    onError(err) {
      options.log?.error("imap connection failed", { error: String(err) });
    },
    onEnd: options.hooks?.onEnd,
  });
}
