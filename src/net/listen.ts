// TCP listeners for the line protocols: plain (with optional STARTTLS) or implicit TLS, with
// per-IP and total connection limits and a graceful, bounded shutdown.

import net from "node:net";
import tls from "node:tls";
import type { SecureContext } from "node:tls";
import { SocketConnection } from "./connection.ts";
import type { Connection } from "./connection.ts";

export type ListenMode = "plain" | "tls";

export interface ListenOptions {
  /** "host:port"; port 0 picks a free one. */
  address: string;
  mode: ListenMode;
  /** Current certificate; called for every handshake so a reload takes effect at once. */
  secureContext?: () => SecureContext;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** Answer sent before closing a connection over a limit (e.g. "421 4.7.0 Too many connections\r\n"). */
  overLimitReply?: string;
  /** Runs one session; the signal aborts on shutdown. */
  onConnection(conn: Connection, signal: AbortSignal): Promise<void>;
  onError?(err: unknown, conn: Connection): void;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  readonly connectionCount: number;
  /** Stops accepting, asks sessions to finish, and drops those still open after graceMs. */
  close(graceMs?: number): Promise<void>;
}

export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address.trim());
  if (!m) throw new Error(`Cannot parse listen address "${address}": expected "host:port"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`Cannot parse listen address "${address}": port out of range`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export async function listen(options: ListenOptions): Promise<Listener> {
  const { host, port } = parseHostPort(options.address);
  const perIp = new Map<string, number>();
  const open = new Set<SocketConnection>();
  const sessions = new Set<Promise<void>>();
  const abort = new AbortController();
  const maxTotal = options.maxConnections ?? 10000;
  const maxPerIp = options.maxConnectionsPerIp ?? 200;

  const handle = (socket: net.Socket) => {
    const ip = socket.remoteAddress ?? "";
    const count = perIp.get(ip) ?? 0;
    if (abort.signal.aborted || open.size >= maxTotal || count >= maxPerIp) {
      socket.on("error", () => {});
      if (options.overLimitReply) socket.end(options.overLimitReply);
      else socket.destroy();
      return;
    }
    perIp.set(ip, count + 1);
    socket.setNoDelay(true);
    const conn = new SocketConnection(socket, { secureContext: options.secureContext });
    open.add(conn);
    const session = (async () => {
      try {
        await options.onConnection(conn, abort.signal);
      } catch (err) {
        options.onError?.(err, conn);
      } finally {
        await conn.close().catch(() => conn.destroy());
        open.delete(conn);
        const n = (perIp.get(ip) ?? 1) - 1;
        if (n <= 0) perIp.delete(ip);
        else perIp.set(ip, n);
      }
    })();
    sessions.add(session);
    session.finally(() => sessions.delete(session));
  };

  let server: net.Server;
  if (options.mode === "tls") {
    const getCtx = options.secureContext;
    if (!getCtx) throw new Error(`Cannot listen on "${options.address}": TLS needs a certificate`);
    server = tls.createServer({
      SNICallback: (_name, cb) => cb(null, getCtx()),
      secureContext: getCtx(),
    } as tls.TlsOptions, handle);
    server.on("tlsClientError", () => {});
  } else {
    server = net.createServer(handle);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;

  return {
    host,
    port: addr.port,
    get connectionCount() {
      return open.size;
    },
    async close(graceMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      abort.abort();
      if (sessions.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.allSettled([...sessions]),
          new Promise((r) => (timer = setTimeout(r, graceMs))),
        ]);
        clearTimeout(timer);
        for (const c of open) c.destroy();
        await Promise.allSettled([...sessions]);
      }
      await closed;
    },
  };
}
