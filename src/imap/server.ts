// IMAP listeners: "imaps" (993, implicit TLS) and "imap" (143, STARTTLS, LOGINDISABLED before).

import {
  type EndReason,
  listen,
  type Listener,
  type ServerTls,
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
    onEnd?(reason: EndReason): void;
  };
}

export function startImapServer(options: ImapServerOptions): Promise<Listener> {
  return listen({
    address: options.address,
    mode: options.implicitTls ? "tls" : "plain",
    tls: options.tls,
    minTlsVersion: options.minTlsVersion,
    maxConnections: options.maxConnections,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    overLimitReply: "* BYE Too many connections, try again later\r\n",
    async onConnection(conn, signal) {
      options.hooks?.onConnection?.();
      try {
        const config = {
          ...options.config,
          startTlsAvailable: !conn.isTls && options.tls !== undefined,
        };
        return await new ImapSession(conn, options.backend, config, options.log).run(signal);
      } finally {
        options.hooks?.onDisconnect?.();
      }
    },
    onError(err) {
      options.log?.error("imap connection failed", { error: String(err) });
    },
    onEnd: options.hooks?.onEnd,
  });
}
