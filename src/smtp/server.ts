// SMTP listeners: "inbound" (25, STARTTLS required before MAIL, no AUTH) and "submission" (587
// STARTTLS / 465 implicit TLS, AUTH required). Each accepted connection runs one SmtpSession.

import {
  type EndReason,
  listen,
  type Listener,
  type ServerTls,
  type TlsEngine,
  type TlsVersion,
} from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { SmtpBackend, SmtpSessionHooks } from "./backend.ts";
import { SmtpSession } from "./session.ts";

export interface SmtpServerOptions {
  address: string;
  mode: "submission" | "inbound";
  implicitTls: boolean;
  tls?: () => ServerTls;
  /** Oldest TLS version accepted (default TLS 1.2). */
  minTlsVersion?: TlsVersion;
  /** Refuse MAIL before STARTTLS (inbound). */
  requireTls?: boolean;
  hostname: string;
  /** The mail domain: `RCPT TO:<postmaster>` means postmaster at it. */
  mailDomain: string;
  maxMessageBytes: number;
  maxRecipients: number;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** How long a client may take to complete a TLS handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  commandTimeoutMs?: number;
  dataTimeoutMs?: number;
  /** Submission: from connect to AUTH (default 3 min). */
  loginDeadlineMs?: number;
  backend: SmtpBackend;
  log?: Logger;
  hooks?: SmtpSessionHooks & {
    onConnection?(): void;
    onDisconnect?(): void;
    /** Every accepted connection ends once, with why (metrics). */
    onEnd?(reason: EndReason, tls: TlsEngine | null): void;
  };
}

export function startSmtpServer(options: SmtpServerOptions): Promise<Listener> {
  return listen({
    address: options.address,
    mode: options.implicitTls ? "tls" : "plain",
    tls: options.tls,
    minTlsVersion: options.minTlsVersion,
    maxConnections: options.maxConnections,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    overLimitReply: `421 4.7.0 ${options.hostname} Too many connections, try again later\r\n`,
    async onConnection(conn, signal) {
      options.hooks?.onConnection?.();
      try {
        return await new SmtpSession(conn, {
          mode: options.mode,
          hostname: options.hostname,
          mailDomain: options.mailDomain,
          maxMessageBytes: options.maxMessageBytes,
          maxRecipients: options.maxRecipients,
          startTlsAvailable: !conn.isTls && options.tls !== undefined,
          requireTls: options.requireTls,
          commandTimeoutMs: options.commandTimeoutMs,
          dataTimeoutMs: options.dataTimeoutMs,
          loginDeadlineMs: options.loginDeadlineMs,
          log: options.log,
          hooks: options.hooks,
        }, options.backend).run(signal);
      } finally {
        options.hooks?.onDisconnect?.();
      }
    },
    onError(err) {
      options.log?.error("smtp connection failed", { error: String(err) });
    },
    onEnd: options.hooks?.onEnd,
  });
}
