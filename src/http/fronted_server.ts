// An HTTP(S) listener with a front: tern accepts the connections itself (src/net listener: TLS,
// connection limits), reads the first request head, and hands the connection to a takeover (the
// iroh relay's `Upgrade: iroh derp http`, which Deno.serve cannot give away: it yields no raw
// socket for non-WebSocket upgrades). Every other connection is passed byte for byte to the
// Hono app on Deno.serve over loopback; the app sees the client's address, not the loopback one.

import { listen } from "../net/mod.ts";
import type { Connection, ServerTls } from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import { startHttpServer } from "./server.ts";
import type { HttpServer, HttpServerOptions } from "./server.ts";

/** The first request head of a connection. */
export interface RequestHead {
  method: string;
  /** Path without the query. */
  path: string;
  /** Its fields (empty when they are malformed: see `valid`). */
  readonly headers: Headers;
  /** False when a field line is malformed. */
  readonly valid: boolean;
}

export interface ConnectionTakeover {
  /** Whether to take the connection after this first request head. */
  accepts(head: RequestHead): boolean;
  /** Serves the connection; the head is consumed, bytes sent after it are still buffered. */
  serve(conn: Connection, head: RequestHead, signal: AbortSignal): Promise<void>;
}

export interface FrontedHttpServerOptions {
  /** "host:port"; port 0 picks a free port. */
  address: string;
  app: HttpServerOptions["app"];
  /** The certificate for HTTPS, read at start and by reload(); absent: plain HTTP. */
  tls?: () => ServerTls;
  takeover: ConnectionTakeover;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  handshakeTimeoutMs?: number;
  /** A passed-on connection without a byte either way for this long is closed. Default 10 min. */
  idleTimeoutMs?: number;
  log?: Logger;
}

/** A request head longer than this is no relay upgrade: the connection is passed on. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Time between bytes of the first request head, and for all of it. */
const HEAD_IDLE_MS = 15_000;
const HEAD_TOTAL_MS = 30_000;
const SWEEP_MS = 30_000;

export async function startFrontedHttpServer(
  options: FrontedHttpServerOptions,
): Promise<HttpServer> {
  const peers = new Map<number, Deno.NetAddr>();
  const inner = await startHttpServer({
    address: "127.0.0.1:0",
    app: {
      fetch(req, info) {
        const peer = peers.get(info.remoteAddr.port);
        // Only the front connects here; anyone else on this host is refused.
        if (!peer) return new Response("Misdirected request\n", { status: 421 });
        return options.app.fetch(req, { ...info, remoteAddr: peer });
      },
    },
  });
  const pipes = new Set<Pipe>();
  const idleMs = options.idleTimeoutMs ?? 600_000;
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const p of pipes) if (now - p.last > idleMs) p.abort();
  }, Math.min(SWEEP_MS, idleMs));

  const passOn = async (conn: Connection) => {
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: inner.port });
    } catch (err) {
      options.log?.error("http front: cannot reach the HTTP server", { err });
      return;
    }
    const localPort = (upstream.localAddr as Deno.NetAddr).port;
    peers.set(localPort, { transport: "tcp", hostname: conn.remoteAddress, port: 0 });
    const pipe = new Pipe(conn, upstream);
    pipes.add(pipe);
    try {
      await pipe.run();
    } finally {
      pipes.delete(pipe);
      peers.delete(localPort);
    }
  };

  const tls = options.tls;
  const listener = await listen({
    address: options.address,
    mode: tls ? "tls" : "plain",
    tls,
    maxConnections: options.maxConnections,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    async onConnection(conn, signal) {
      conn.setIdleTimeout(HEAD_IDLE_MS);
      const { raw, head, headBytes } = await readHead(conn);
      conn.setIdleTimeout(0);
      if (raw.length === 0) return;
      if (head && options.takeover.accepts(head) && head.valid) {
        conn.unread(raw.subarray(headBytes));
        await options.takeover.serve(conn, head, signal);
        return;
      }
      conn.unread(raw);
      await passOn(conn);
    },
    onError(err) {
      options.log?.debug("http front: connection failed", { err: (err as Error)?.message });
    },
  });

  let closing: Promise<void> | null = null;
  const close = () =>
    closing ??= (async () => {
      clearInterval(sweeper);
      await Promise.all([listener.close(), inner.close()]);
    })();
  return {
    hostname: listener.host,
    port: listener.port,
    close,
    reload: () => listener.reloadTls(),
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Reads until the end of the first request head (or MAX_HEAD_BYTES, the deadline, or the end of
 * the stream).
 * `raw` is everything read; `head` is null when it is no parseable HTTP/1.x request head.
 */
export async function readHead(
  conn: Pick<Connection, "readChunk">,
  options: { totalMs?: number; now?: () => number } = {},
): Promise<{ raw: Uint8Array; head: RequestHead | null; headBytes: number }> {
  let raw = new Uint8Array(0);
  const now = options.now ?? Date.now;
  const deadline = now() + (options.totalMs ?? HEAD_TOTAL_MS);
  // A head dripping in byte by byte is passed on once the time is up (the HTTP server then
  // applies its own limits), so the front holds no connection longer than that.
  while (raw.length < MAX_HEAD_BYTES && now() < deadline) {
    let chunk: Uint8Array | null;
    try {
      chunk = await conn.readChunk();
    } catch {
      chunk = null; // idle: what was read is passed on as it is
    }
    if (!chunk) break;
    const from = Math.max(0, raw.length - 3);
    const next = new Uint8Array(raw.length + chunk.length);
    next.set(raw);
    next.set(chunk, raw.length);
    raw = next;
    const end = indexOfBlankLine(raw, from);
    if (end >= 0) return { raw, head: parseHead(raw.subarray(0, end)), headBytes: end + 4 };
  }
  return { raw, head: null, headBytes: 0 };
}

function indexOfBlankLine(b: Uint8Array, from: number): number {
  for (let i = from; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * RFC 9112 §3: request-line CRLF *( field-line CRLF ); null if the request line is not one. The
 * fields are parsed when first asked for (most requests are passed on without): null headers
 * then mean malformed fields.
 */
export function parseHead(bytes: Uint8Array): RequestHead | null {
  const text = new TextDecoder("latin1").decode(bytes);
  const eol = text.indexOf("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(eol < 0 ? text : text.slice(0, eol));
  if (!m) return null;
  let path = m[2];
  if (!path.startsWith("/")) {
    try {
      path = new URL(path).pathname; // absolute-form
    } catch {
      return null;
    }
  }
  const q = path.indexOf("?");
  if (q >= 0) path = path.slice(0, q);
  let headers: Headers | null | undefined;
  return {
    method: m[1],
    path,
    get headers() {
      if (headers === undefined) {
        headers = eol < 0 ? new Headers() : parseFields(text.slice(eol + 2));
      }
      return headers ?? new Headers();
    },
    get valid() {
      if (headers === undefined) {
        headers = eol < 0 ? new Headers() : parseFields(text.slice(eol + 2));
      }
      return headers !== null;
    },
  };
}

function parseFields(text: string): Headers | null {
  const headers = new Headers();
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i <= 0) return null;
    try {
      headers.append(line.slice(0, i), line.slice(i + 1).trim());
    } catch {
      return null; // not a valid field name or value
    }
  }
  return headers;
}

/** Copies bytes both ways between a client connection and the loopback HTTP server. */
class Pipe {
  last = Date.now();
  #conn: Connection;
  #upstream: Deno.TcpConn;
  #aborted = false;

  constructor(conn: Connection, upstream: Deno.TcpConn) {
    this.#conn = conn;
    this.#upstream = upstream;
  }

  abort() {
    if (this.#aborted) return;
    this.#aborted = true;
    try {
      this.#upstream.close();
    } catch {
      // already closed
    }
  }

  async run(): Promise<void> {
    const up = this.#up();
    await this.#down();
    // The server is done with the connection: the client's side ends too.
    await this.#conn.close().catch(() => {});
    this.abort();
    await up;
  }

  async #up() {
    try {
      while (true) {
        const chunk = await this.#conn.readChunk();
        if (!chunk) break;
        this.last = Date.now();
        for (let off = 0; off < chunk.length;) {
          off += await this.#upstream.write(chunk.subarray(off));
        }
      }
      // The client finished sending (half-close): the server answers what it has, then closes.
      await this.#upstream.closeWrite();
    } catch {
      // one side went away; #down ends the pipe
    }
  }

  async #down() {
    // Small at first (most answers are), larger once the server sends more.
    let buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await this.#upstream.read(buf);
        if (n === buf.length && buf.length < 64 * 1024) {
          await this.#conn.write(buf.slice(0, n));
          buf = new Uint8Array(64 * 1024);
          this.last = Date.now();
          continue;
        }
        if (n === null) return;
        this.last = Date.now();
        await this.#conn.write(buf.slice(0, n));
      }
    } catch {
      // reset by either side
    }
  }
}
