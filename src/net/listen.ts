// TCP listeners for the line protocols: plain (node:net, with optional STARTTLS) or implicit TLS
// (Deno TLS), with per-IP and total connection limits and a graceful, bounded shutdown.

import net from "node:net";
import nodeTls from "node:tls";
import { BufferedConnection, normalizeAddress, SocketConnection } from "./connection.ts";
import type { Connection } from "./connection.ts";
import { DenoTlsConnection } from "./deno_connection.ts";
import type { ServerTls } from "./tls.ts";
import { setListenerNoDelay } from "./linux_socket.ts";

export type ListenMode = "plain" | "tls";

export interface ListenOptions {
  /** "host:port"; port 0 picks a free one. */
  address: string;
  mode: ListenMode;
  /** Current certificate: read for every STARTTLS, and by reloadTls() for implicit TLS. */
  tls?: () => ServerTls;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /**
   * Implicit TLS on Deno TLS (the default; lighter per connection) or node:tls (used anyway where
   * TCP_NODELAY cannot be set on a Deno listener).
   */
  implicitTlsWith?: "deno" | "node";
  /** Implicit TLS: a client that has not completed its handshake by then is dropped. */
  handshakeTimeoutMs?: number;
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
  /** Takes up the certificate tls() now returns (implicit TLS; STARTTLS reads it each time). */
  reloadTls(): Promise<void>;
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
  const open = new Set<BufferedConnection>();
  const sessions = new Set<Promise<void>>();
  const abort = new AbortController();
  const maxTotal = options.maxConnections ?? 10000;
  const maxPerIp = options.maxConnectionsPerIp ?? 200;

  const overLimit = (ip: string) =>
    abort.signal.aborted || open.size >= maxTotal || (perIp.get(ip) ?? 0) >= maxPerIp;

  const serve = (conn: BufferedConnection, ready?: () => Promise<void>) => {
    const ip = conn.remoteAddress;
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    open.add(conn);
    const session = (async () => {
      try {
        try {
          await ready?.();
        } catch (err) {
          conn.destroy(); // no handshake: nothing to end gracefully
          throw err;
        }
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

  const onSocket = (socket: net.Socket) => {
    if (overLimit(normalizeAddress(socket.remoteAddress ?? ""))) {
      socket.on("error", () => {});
      if (options.overLimitReply) socket.end(options.overLimitReply);
      else socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const tls = options.tls;
    serve(new SocketConnection(socket, { secureContext: tls && (() => tls().context) }));
  };
  const onDenoTls = (tcp: Deno.TlsConn) => {
    const conn = new DenoTlsConnection(tcp);
    if (overLimit(conn.remoteAddress)) {
      refuse(conn, options.overLimitReply);
      return;
    }
    serve(conn, () => conn.handshake(options.handshakeTimeoutMs ?? 30_000));
  };
  let server: NativeListener | null = null;
  if (options.mode === "tls") {
    const getTls = options.tls;
    if (!getTls) throw new Error(`Cannot listen on "${options.address}": TLS needs a certificate`);
    if (options.implicitTlsWith !== "node") {
      server = await listenDenoTls(host, port, getTls, onDenoTls);
    }
    // Without TCP_NODELAY, node:tls (heavier per connection, but it sets the option per socket).
    server ??= await listenNode(host, port, onSocket, getTls);
  } else {
    server = await listenNode(host, port, onSocket);
  }

  return {
    host,
    port: server.port,
    get connectionCount() {
      return open.size;
    },
    reloadTls: () => server.reloadTls(),
    async close(graceMs = 5000) {
      const closed = server.close();
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

/** Over a limit: the reply (after the handshake, bounded in time), then close. */
function refuse(conn: DenoTlsConnection, reply?: string) {
  (async () => {
    try {
      if (reply) {
        await conn.handshake(5000);
        await conn.write(reply);
      }
    } catch {
      // the client went away
    } finally {
      conn.destroy();
    }
  })();
}

interface NativeListener {
  port: number;
  close(): Promise<void>;
  reloadTls(): Promise<void>;
}

/** node:net, or node:tls when getTls is given (its certificate is read at every handshake). */
async function listenNode(
  host: string,
  port: number,
  onSocket: (s: net.Socket) => void,
  getTls?: () => ServerTls,
): Promise<NativeListener> {
  let server: net.Server;
  if (getTls) {
    server = nodeTls.createServer({
      SNICallback: (_name, cb) => cb(null, getTls().context),
      secureContext: getTls().context,
    } as nodeTls.TlsOptions, onSocket);
    server.on("tlsClientError", () => {});
  } else {
    server = net.createServer(onSocket);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    reloadTls: () => Promise.resolve(),
  };
}

/**
 * Deno's TLS listener holds one certificate: a reload replaces the listener (same port; open
 * connections stay). Connections arriving in the instant between the two are refused by the
 * kernel and retried by the client. Null when TCP_NODELAY cannot be set (see linux_socket.ts).
 */
// deno-lint-ignore require-await
async function listenDenoTls(
  host: string,
  port: number,
  getTls: () => ServerTls,
  onConn: (c: Deno.TlsConn) => void,
): Promise<NativeListener | null> {
  let current = getTls();
  const bind = (p: number, t: ServerTls) =>
    Deno.listenTls({ hostname: host, port: p, cert: t.certPem, key: t.keyPem });
  let listener = bind(port, current);
  const boundPort = (listener.addr as Deno.NetAddr).port;
  if (!setListenerNoDelay(boundPort)) {
    listener.close();
    return null;
  }
  let closing = false;
  const loops = new Map<Deno.TlsListener, Promise<void>>();
  const acceptLoop = (l: Deno.TlsListener) => {
    const loop = (async () => {
      while (true) {
        let c: Deno.TlsConn;
        try {
          c = await l.accept();
        } catch (err) {
          if (l !== listener || closing || err instanceof Deno.errors.BadResource) return;
          // EMFILE and the like: wait a little rather than spin.
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        onConn(c);
      }
    })();
    loops.set(l, loop);
    loop.finally(() => loops.delete(l));
  };
  // The port is free only once the old listener's pending accept has been cancelled.
  const rebind = async (t: ServerTls) => {
    for (let attempt = 0;; attempt++) {
      try {
        return bind(boundPort, t);
      } catch (err) {
        if (!(err instanceof Deno.errors.AddrInUse) || attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  };
  let reloading: Promise<void> = Promise.resolve();
  const reload = async () => {
    const next = getTls();
    if (closing || next === current) return;
    const old = listener;
    old.close();
    await loops.get(old);
    try {
      listener = await rebind(next);
      current = next;
      setListenerNoDelay(boundPort);
    } catch (err) {
      // Keep serving the certificate that worked.
      listener = await rebind(current);
      setListenerNoDelay(boundPort);
      throw err;
    } finally {
      acceptLoop(listener);
    }
  };
  acceptLoop(listener);
  return {
    port: boundPort,
    reloadTls() {
      const r = reloading.then(reload);
      reloading = r.catch(() => {});
      return r;
    },
    async close() {
      closing = true;
      await reloading;
      try {
        listener.close();
      } catch {
        // already closed
      }
      await Promise.allSettled([...loops.values()]);
    },
  };
}
