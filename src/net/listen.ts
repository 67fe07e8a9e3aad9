// TCP listeners for the line protocols, plain (with optional STARTTLS) or implicit TLS, all on
// node:net with node:tls: per-address and total connection limits counted from the TCP accept (so
// clients that never finish a TLS handshake count too, and are dropped at the deadline), and a
// shutdown that stops accepting at once and gives sessions a bounded time to finish.

import net from "node:net";
import { ConnectionClosedError, SocketConnection } from "./connection.ts";
import { limitKey } from "./ip.ts";
import type { Connection } from "./connection.ts";
import type { ServerTls, TlsVersion } from "./tls.ts";
import type { TlsEngine } from "./connection.ts";

/** A client over a limit gets this long to finish its handshake and read the refusal. */
const REFUSE_HANDSHAKE_MS = 5000;
const MAX_REFUSING = 100;

export type ListenMode = "plain" | "tls";

/**
 * Why a connection ended, for metrics: the client said goodbye (quit), went away without it
 * (gone), was idle too long (idle), was over a connection limit (limit), failed or never finished
 * its TLS handshake (tls), broke the protocol too often (protocol), the relay stopped (shutdown),
 * or a server error (error).
 */
export type EndReason =
  | "quit"
  | "gone"
  | "idle"
  | "limit"
  | "tls"
  | "protocol"
  | "shutdown"
  | "error";

export interface ListenOptions {
  /** "host:port" or "[v6]:port"; port 0 picks a free one. */
  address: string;
  mode: ListenMode;
  /** The current certificate, read at every handshake (a reload needs no restart). */
  tls?: () => ServerTls;
  /** Oldest TLS version a client may use (default TLS 1.2). */
  minTlsVersion?: TlsVersion;
  /**
   * "tern": tern's own TLS 1.3 engine serves the clients it can (less memory per connection),
   * node:tls the others; "node" (default): node:tls serves all.
   */
  tlsEngine?: TlsEngine;
  maxConnections?: number;
  /** Per client address: an IPv4 address, or an IPv6 /64 (one host's usual allocation). */
  maxConnectionsPerIp?: number;
  /** A client that has not completed its TLS handshake by then is dropped (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Answer sent before closing a connection over a limit (e.g. "421 4.7.0 Too many connections\r\n"). */
  overLimitReply?: string;
  /** Runs one session; the signal aborts on shutdown. Returns why it ended. */
  onConnection(conn: Connection, signal: AbortSignal): Promise<EndReason | void>;
  /** A session that failed with an error other than the peer going away. */
  onError?(err: unknown, conn: Connection): void;
  /**
   * Every connection accepted ends here once, with its reason and the TLS engine that served it
   * (null: no TLS, or no handshake completed).
   */
  onEnd?(reason: EndReason, tls: TlsEngine | null): void;
}

export interface Listener {
  /** The bound host ("::" for dual-stack) and port. */
  readonly host: string;
  readonly port: number;
  /** "host:port", with the host in brackets when it is IPv6. */
  readonly address: string;
  readonly connectionCount: number;
  /**
   * Stops accepting at once, asks sessions to finish (the signal), and drops those still open
   * after graceMs.
   */
  close(graceMs?: number): Promise<void>;
}

export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address.trim());
  if (!m) throw new Error(`Cannot parse listen address "${address}": expected "host:port"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`Cannot parse listen address "${address}": port out of range`);
  return { host: m[1] ?? (m[2] || "::"), port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function listen(options: ListenOptions): Promise<Listener> {
  const { host, port } = parseHostPort(options.address);
  const tls = options.tls;
  if (options.mode === "tls" && !tls) {
    throw new Error(`Cannot listen on "${options.address}": TLS needs a certificate`);
  }
  const minVersion = options.minTlsVersion ?? "TLSv1.2";
  const perKey = new Map<string, number>();
  const open = new Set<SocketConnection>();
  /** Resolves close()'s wait once the last session has ended. */
  let allEnded: (() => void) | null = null;
  const abort = new AbortController();
  const maxTotal = options.maxConnections ?? 10000;
  const maxPerKey = options.maxConnectionsPerIp ?? 200;
  const connOptions = {
    secureContext: tls && (() => tls().context(minVersion)),
    tls13: tls && options.tlsEngine === "tern" ? () => tls().tls13() : undefined,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    implicitTls: options.mode === "tls",
  };

  const count = (key: string, d: number) => {
    const n = (perKey.get(key) ?? 0) + d;
    if (n <= 0) perKey.delete(key);
    else perKey.set(key, n);
  };

  const onSocket = (socket: net.Socket) => {
    const key = limitKey(socket.remoteAddress ?? "");
    socket.setNoDelay(true);
    if (abort.signal.aborted || open.size >= maxTotal || (perKey.get(key) ?? 0) >= maxPerKey) {
      refuse(socket, { ...connOptions, handshakeTimeoutMs: REFUSE_HANDSHAKE_MS });
      options.onEnd?.("limit", null);
      return;
    }
    const conn = new SocketConnection(socket, connOptions);
    count(key, 1);
    open.add(conn);
    // Callbacks on the session's promise, not an async function or a chain of promises: a
    // session waits for hours (an IDLE), and each link of a chain (a promise, its reaction and
    // the functions that resolve it) would be held all that time for every connection.
    const failed = (err: unknown): EndReason => {
      if (err instanceof ConnectionClosedError) return "gone";
      try {
        options.onError?.(err, conn);
      } catch {
        // A failing logger does not change how the session ended.
      }
      return "error";
    };
    const ended = async (reason: EndReason) => {
      await conn.close();
      open.delete(conn);
      count(key, -1);
      options.onEnd?.(reason, conn.tlsEngine);
      if (open.size === 0) allEnded?.();
    };
    const serve = () => {
      let session: Promise<EndReason | void>;
      try {
        session = options.onConnection(conn, abort.signal);
      } catch (err) {
        ended(failed(err));
        return;
      }
      session.then((r) => ended(r ?? "quit"), (err) => ended(failed(err)));
    };
    // A failed, timed out or abandoned handshake is counted, never logged.
    if (options.mode === "tls") conn.acceptTls().then(serve, () => ended("tls"));
    else serve();
  };

  /** Over a limit: the reply (after the handshake, for implicit TLS; all bounded), then close. */
  const refuse = (socket: net.Socket, opts: typeof connOptions) => {
    const conn = new SocketConnection(socket, opts);
    // Refusals in progress are bounded too: beyond that, drop without a word.
    if (refusing >= MAX_REFUSING || !options.overLimitReply) return conn.destroy();
    refusing++;
    (async () => {
      if (options.mode === "tls") await conn.acceptTls();
      await conn.write(options.overLimitReply!);
    })().catch(() => {
      // The client went away or never finished its handshake: nothing more to say.
    }).finally(async () => {
      await conn.close();
      refusing--;
    });
  };
  let refusing = 0;

  const server = net.createServer(onSocket);
  // Accept errors (EMFILE and the like) are the kernel's to retry; the listener stays.
  server.on("error", () => {});
  const boundHost = await bindServer(server, host, port);
  const boundPort = (server.address() as net.AddressInfo).port;

  return {
    host: boundHost,
    port: boundPort,
    address: formatHostPort(boundHost, boundPort),
    get connectionCount() {
      return open.size;
    },
    async close(graceMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      abort.abort();
      if (open.size > 0) {
        const ended = new Promise<void>((resolve) => (allEnded = resolve));
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        for (const c of open) c.destroy();
        // Dropped sessions end at their next read or write; one stuck elsewhere does not hold
        // the shutdown.
        await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 1000)))]);
        clearTimeout(timer);
      }
      await closed;
    },
  };
}

/**
 * Starts `server` listening; "::" (dual-stack, the default) falls back to "0.0.0.0" on a host
 * without IPv6 (a kernel booted with ipv6.disable=1). Returns the host actually bound.
 */
export async function bindServer(
  server: net.Server,
  host: string,
  port: number,
  options: { exclusive?: boolean } = {},
): Promise<string> {
  const attempt = (h: string) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: h, port, backlog: 4096, ...options }, () => {
        server.removeListener("error", reject);
        resolve();
      });
    });
  try {
    await attempt(host);
    return host;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (host !== "::" || (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL")) throw err;
    await attempt("0.0.0.0");
    return "0.0.0.0";
  }
}
