// Runs a Hono app (or any fetch handler) over HTTP/1.1, plain or HTTPS, with limits per
// connection that Deno.serve does not offer: a cap on connections per client address and in all,
// a deadline for each request head (slowloris: half-sent requests are dropped, not held), and an
// idle deadline for bodies and kept-alive connections.
//
// Built on node:http / node:https (Node's llhttp parser: strict about smuggling, header size
// limited to 16 KiB with 431) because Deno.serve exposes no accepted connection and no header
// timeout. The requests and responses are adapted to the fetch API the apps are written for.
// It serves HTTP/1.1 only (no h2 over ALPN). A connection can be taken over at its first request
// head (`takeover`): raw protocol upgrades that node:http cannot hand out (iroh's `Upgrade: iroh
// derp http` comes without `Connection: Upgrade`, so llhttp treats it as a plain request). The
// listener is therefore a net/tls server that passes each connection on to the HTTP server
// (`emit("connection")`) unless the takeover claims it.

import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { bindServer, limitKey, noteActivity, parseHostPort, setTcpReading } from "../net/mod.ts";

export interface TlsPems {
  certPem: string;
  keyPem: string;
}

/** What a handler learns about the connection (Hono passes it as c.env). */
export interface HttpRequestInfo {
  remoteAddr: { hostname: string; port: number; transport: "tcp" };
}

export interface HttpServerOptions {
  /** "host:port"; port 0 picks a free port. */
  address: string;
  app: {
    fetch(request: Request, info: HttpRequestInfo): Response | Promise<Response>;
  };
  /** PEMs for HTTPS, or a function read at start and at every reload. */
  tls?: TlsPems | (() => TlsPems);
  /** Open connections per client address; more are closed at once. Default 200. */
  maxConnectionsPerIp?: number;
  /** Open connections in all; more are closed at once. Default 20000. */
  maxConnections?: number;
  /**
   * A request head (line and header fields) must arrive within this many ms of the connection
   * opening (TLS handshake included) or of the previous response ending. Default 10 000.
   */
  headerTimeoutMs?: number;
  /** A connection on which no byte moves for this long is closed (slow bodies). Default 60 000. */
  idleTimeoutMs?: number;
  /**
   * Looks at the first request head of each connection; returning true takes the connection
   * over (the socket, and the bytes that came after the head). Only asked when set.
   */
  takeover?: (head: FirstRequest, socket: net.Socket, rest: Uint8Array) => boolean;
}

/** The first request head of a connection, for a takeover to decide on. */
export interface FirstRequest {
  method: string;
  /** Path without the query. */
  path: string;
  headers: Headers;
}

/** A first request head longer than this is left to the HTTP server (which answers 431). */
const MAX_FIRST_HEAD = 16 * 1024;

/**
 * Requests one connection may have in hand (received, response not ended). Pipelined requests
 * arrive faster than they are answered, and answers wait for the ones before them: a client that
 * sends thousands in one write and reads nothing would have them all handled and held in memory.
 * One more closes the connection.
 */
export const MAX_REQUESTS_IN_FLIGHT = 8;

/**
 * Bytes a connection may send that are neither request body nor counted request heads (which
 * llhttp caps at 16 KiB): chunk lines (size and extensions) and trailers. Deno's llhttp sets no
 * limit on chunk extensions: one chunk line could go on for gigabytes, all of it read (and much
 * of it held). The budget grows with each request and with the body (a body sent in 1-byte
 * chunks costs 5 bytes of framing per byte).
 */
const FRAMING_BYTES_BASE = 64 * 1024;
const FRAMING_BYTES_PER_REQUEST = 16 * 1024;
const FRAMING_BYTES_PER_BODY_BYTE = 8;

export interface HttpServer {
  readonly hostname: string;
  readonly port: number;
  /** Open connections (for tests and metrics). */
  readonly connectionCount: number;
  /** Stops accepting, lets running requests finish (at most graceMs), then resolves. */
  close(graceMs?: number): Promise<void>;
  /** HTTPS: new handshakes use the certificate tls() returns now. */
  reload(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Methods the listeners' apps serve; the fetch API refuses TRACE and CONNECT outright. */
const ALLOW = "GET, HEAD, POST, PUT, DELETE";

/** A JSON error answer written straight to a socket the HTTP server gave up (or never had). */
function rawJsonError(status: number, reason: string, message: string, allow?: string): string {
  const body = JSON.stringify({ error: message });
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\n` +
    `content-length: ${body.length}\r\n${allow ? `allow: ${allow}\r\n` : ""}` +
    `connection: close\r\n\r\n${body}`;
}

const unmapped = (a: string | undefined) => (a ?? "").replace(/^::ffff:(?=\d+\.)/, "");

interface ConnState {
  ip: string;
  /** Pending deadline for the next request head, if armed. */
  headTimer: ReturnType<typeof setTimeout> | undefined;
  /** Requests received whose response has not ended. */
  active: number;
  /** The TCP socket (under TLS, the one the TLS socket reads from). */
  raw: net.Socket;
  /** Whether reading the TCP socket is stopped (holdTcp). */
  held: boolean;
  /** Bytes handed to the HTTP parser; of these, the body bytes it parsed out. */
  wireBytes: number;
  bodyBytes: number;
  /** Requests whose head was parsed. */
  requests: number;
  /** Refused for its framing: nothing more is read. */
  refused: boolean;
}

/**
 * Stops or restarts reading the TCP socket itself (under TLS, pausing the TLS socket does not:
 * src/net/tcp_reads.ts). Plain TCP sockets stop with pause().
 */
function holdTcp(st: ConnState, stop: boolean) {
  if (st.refused) stop = true;
  if (st.held === stop || st.raw.destroyed) return;
  st.held = stop;
  setTcpReading(st.raw, !stop);
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { host, port } = parseHostPort(options.address);
  const pems = () => typeof options.tls === "function" ? options.tls() : options.tls;
  const maxPerIp = options.maxConnectionsPerIp ?? 200;
  const maxTotal = options.maxConnections ?? 20_000;
  const headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const scheme = options.tls ? "https" : "http";

  const initial = pems();
  // The HTTP server never listens: the listener hands it each connection (after TLS).
  const server = http.createServer();
  // What Node announces in Keep-Alive: the head deadline below is what closes idle connections.
  server.keepAliveTimeout = headerTimeoutMs;
  // Deno's node:http closes a connection after each response when its server is not listening
  // itself (resOnFinish); it is listening as far as keep-alive is concerned while the listener is.
  Object.defineProperty(server, "listening", { get: () => listener.listening });
  const listener: net.Server = initial
    ? tls.createServer({
      cert: initial.certPem,
      key: initial.keyPem,
      minVersion: "TLSv1.2",
      handshakeTimeout: headerTimeoutMs,
    })
    : net.createServer();

  // Connections are known by peer address and port: the raw socket (where limits apply) and the
  // TLS socket a request arrives on share them.
  const conns = new Map<string, ConnState>();
  const sockets = new Set<net.Socket>();
  const perIp = new Map<string, number>();
  const keyOf = (s: net.Socket) => `${s.remoteAddress}|${s.remotePort}`;
  let closing = false;

  const armHeadTimer = (st: ConnState, socket: net.Socket) => {
    clearTimeout(st.headTimer);
    st.headTimer = setTimeout(() => socket.destroy(), headerTimeoutMs);
  };

  listener.on("connection", (socket: net.Socket) => {
    noteActivity();
    socket.on("error", () => {}); // a reset peer is normal; the socket closes either way
    // Per client address, an IPv6 client by its /64 (as the mail listeners count).
    const ip = limitKey(socket.remoteAddress ?? "");
    if (closing || sockets.size >= maxTotal || (perIp.get(ip) ?? 0) >= maxPerIp) {
      if (scheme === "http") {
        socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
        socket.resume(); // read (and drop) until the peer's end, so the socket can close
      } else socket.destroy();
      return;
    }
    const key = keyOf(socket);
    const st: ConnState = {
      ip,
      headTimer: undefined,
      active: 0,
      raw: socket,
      held: false,
      wireBytes: 0,
      bodyBytes: 0,
      requests: 0,
      refused: false,
    };
    conns.set(key, st);
    sockets.add(socket);
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    armHeadTimer(st, socket);
    socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    socket.once("close", () => {
      clearTimeout(st.headTimer);
      conns.delete(key);
      sockets.delete(socket);
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(ip);
      else perIp.set(ip, n);
    });
    if (!initial) dispatch(socket);
  });
  if (initial) {
    listener.on("secureConnection", (socket: tls.TLSSocket) => {
      socket.on("error", () => {});
      dispatch(socket);
    });
    listener.on("tlsClientError", (_err: Error, socket: net.Socket) => socket.destroy());
  }

  /**
   * Hands the socket to the HTTP server, counting what its parser is given. Deno's node:http
   * would otherwise have its parser read the socket's handle natively, out of JavaScript's
   * sight; marked as taken, the handle is read through 'data' events, which are counted.
   */
  const serve = (socket: net.Socket) => {
    const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
    if (handle) handle._consumed = true;
    server.emit("connection", socket);
    const st = conns.get(keyOf(socket));
    if (!st) return;
    // Registered after the server's own listener: the parser has taken these bytes (and the
    // heads and body bytes in them are counted) when this runs.
    socket.on("data", (chunk: Buffer) => {
      st.wireBytes += chunk.length;
      const budget = FRAMING_BYTES_BASE + st.requests * FRAMING_BYTES_PER_REQUEST +
        st.bodyBytes * FRAMING_BYTES_PER_BODY_BYTE;
      if (!st.refused && st.wireBytes - st.bodyBytes > budget) refuse(st, socket);
    });
  };

  /**
   * Too much framing: nothing more is read, the request's body fails, and the client is answered
   * 400 in JSON when no answer has begun (else the connection just ends). The connection is then
   * half-closed, not closed: closing with unread input would reset it, and the answer with it
   * (the client would never read it). It is closed after the head deadline.
   */
  const refuse = (st: ConnState, socket: net.Socket) => {
    st.refused = true;
    const req = latest.get(socket);
    if (req) failBody.get(req)?.(new Error("request framing too large"));
    const answerable = st.active === 1 && !latestResponse.get(socket)?.headersSent;
    if (!answerable) return void socket.destroy();
    socket.removeAllListeners("data");
    socket.pause();
    holdTcp(st, true);
    socket.end(rawJsonError(400, "Bad Request", "request framing too large"));
    st.raw.setTimeout(headerTimeoutMs, () => st.raw.destroy());
  };

  /** To the HTTP server, or to the takeover when it claims the first request head. */
  const dispatch = (socket: net.Socket) => {
    const take = options.takeover;
    if (!take) return serve(socket);
    let buffered = new Uint8Array(0);
    const onData = (chunk: Buffer) => {
      const next = new Uint8Array(buffered.length + chunk.length);
      next.set(buffered);
      next.set(chunk, buffered.length);
      buffered = next;
      const end = headEnd(buffered);
      if (end < 0 && buffered.length <= MAX_FIRST_HEAD) return;
      socket.off("data", onData);
      socket.pause();
      const head = end < 0 ? null : firstRequest(buffered.subarray(0, end));
      if (head && take(head, socket, buffered.subarray(end))) {
        const st = conns.get(keyOf(socket));
        if (st) clearTimeout(st.headTimer);
        socket.setTimeout(0);
        socket.resume(); // the taker has its listeners on by now
        return;
      }
      socket.unshift(Buffer.from(buffered));
      serve(socket);
      socket.resume();
    };
    socket.on("data", onData);
  };

  const requestOf = (
    req: http.IncomingMessage,
    signal: AbortSignal,
    hold: (stop: boolean) => void,
  ): Request | null => {
    const target = req.url ?? "";
    if (!target.startsWith("/")) return null; // absolute-form and "*" are for proxies
    const hostHeader = req.headers.host ?? "";
    const authority = /^[A-Za-z0-9.:[\]-]{1,300}$/.test(hostHeader) ? hostHeader : options.address;
    try {
      const url = new URL(target, `${scheme}://${authority}`);
      const headers = new Headers();
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
      }
      const method = req.method ?? "GET";
      const hasBody = method !== "GET" && method !== "HEAD";
      return new Request(url, {
        method,
        headers,
        body: hasBody ? bodyStream(req, hold, (fail) => failBody.set(req, fail)) : undefined,
        signal,
        // @ts-ignore: required by the fetch spec for stream bodies, not in every lib typing
        duplex: "half",
      });
    } catch {
      return null; // a URL or header the fetch API refuses
    }
  };

  // The latest request of each connection: only it can still be receiving its body.
  const latest = new WeakMap<net.Socket, http.IncomingMessage>();
  const latestResponse = new WeakMap<net.Socket, http.ServerResponse>();
  // How to fail each request's body stream (a refused connection ends it at once).
  const failBody = new WeakMap<http.IncomingMessage, (err: Error) => void>();

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    noteActivity();
    const st = conns.get(keyOf(req.socket));
    if (st && st.active >= MAX_REQUESTS_IN_FLIGHT) {
      // Paused first: a TLS socket destroyed while flowing still hands the parser what it has
      // buffered (a flood parsed to its end, every request an object, after the close).
      req.socket.pause();
      req.socket.destroy();
      return;
    }
    if (st) {
      clearTimeout(st.headTimer);
      st.headTimer = undefined;
      st.active++;
      st.requests++;
      // The parser hands each piece of the body to push(): counted, read by the app or not.
      const push = req.push;
      req.push = function (chunk: unknown, encoding?: BufferEncoding) {
        if (chunk instanceof Uint8Array) st.bodyBytes += chunk.byteLength;
        return push.call(this, chunk, encoding);
      };
    }
    res.once("close", () => {
      if (!st) return;
      st.active--;
      // Kept alive: the next request head must come within the deadline too.
      if (st.active === 0 && !req.socket.destroyed) armHeadTimer(st, req.socket);
      // Closing: the answer is written; end the connection after it (not cut it off).
      if (closing && st.active === 0) req.socket.end();
    });
    // A client that ends its side before its request body is complete will never complete it:
    // the connection is dropped at once (which fails the body's stream), not left half-closed
    // until the idle timeout. One listener per connection, however many requests it carries.
    const socket = req.socket;
    if (!latest.has(socket)) {
      socket.once("end", () => {
        if (!latest.get(socket)?.complete) socket.destroy();
      });
    }
    latest.set(socket, req);
    latestResponse.set(socket, res);
    handle(req, res).catch(() => res.destroy());
  });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const abort = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    // HTTPS: while the body waits for its reader, the TCP socket is not read either. Only the
    // latest request of the connection decides (an earlier pipelined one, ending, must not
    // restart reading under a body that waits).
    const st = initial ? conns.get(keyOf(req.socket)) : undefined;
    const hold = (stop: boolean) => {
      if (st && latest.get(req.socket) === req) holdTcp(st, stop && !req.complete);
    };
    // The request is over: the next one on the connection must be read.
    res.once("close", () => hold(false));
    const request = requestOf(req, abort.signal, hold);
    if (!request) {
      // TRACE (and TRACK) the fetch API refuses to build: not allowed here, like any method no
      // route serves. Otherwise the target or a header is one the fetch API cannot carry.
      const forbidden = /^(TRACE|TRACK)$/i.test(req.method ?? "");
      const body = JSON.stringify({ error: forbidden ? "method not allowed" : "bad request" });
      res.writeHead(forbidden ? 405 : 400, {
        "content-type": "application/json",
        "content-length": String(body.length),
        ...(forbidden ? { allow: ALLOW } : {}),
        connection: "close",
      });
      res.end(body);
      return;
    }
    const info: HttpRequestInfo = {
      remoteAddr: {
        hostname: unmapped(req.socket.remoteAddress),
        port: req.socket.remotePort ?? 0,
        transport: "tcp",
      },
    };
    let response: Response;
    try {
      response = await options.app.fetch(request, info);
    } catch {
      response = new Response("Internal Server Error\n", { status: 500 });
    }
    // Answered already: the connection was refused for its framing.
    if (conns.get(keyOf(req.socket))?.refused || res.headersSent) {
      return void await response.body?.cancel().catch(() => undefined);
    }
    await writeResponse(req, res, response);
  };

  server.on("clientError", (err: Error & { code?: string }, socket: net.Socket) => {
    // A request llhttp refuses (smuggling attempts, bad syntax, a head over 16 KiB).
    if (!socket.destroyed && socket.writable) {
      socket.end(
        err.code === "HPE_HEADER_OVERFLOW"
          ? rawJsonError(431, "Request Header Fields Too Large", "request header fields too large")
          : rawJsonError(400, "Bad Request", "bad request"),
      );
    } else socket.destroy();
  });
  // CONNECT is for proxies; node:http hands it out apart from requests.
  server.on("connect", (_req: http.IncomingMessage, socket: net.Socket) => {
    if (!socket.destroyed && socket.writable) {
      socket.end(rawJsonError(405, "Method Not Allowed", "method not allowed", ALLOW));
    } else socket.destroy();
  });

  // "::" (dual-stack) falls back to IPv4 alone on a host without IPv6, as the mail listeners do.
  await bindServer(listener, host, port, { exclusive: true }).catch((err: Error) => {
    throw new Error(`Cannot listen on ${options.address}: ${err.message}`, { cause: err });
  });
  listener.on("error", () => {}); // after listening, errors belong to single connections
  const bound = listener.address() as net.AddressInfo;

  let closed: Promise<void> | null = null;
  const close = (graceMs = 5000) =>
    closed ??= (async () => {
      closing = true;
      const done = new Promise<void>((r) => listener.close(() => r()));
      // Idle kept-alive connections go now; busy ones when their response ends or the grace ends.
      for (const s of sockets) {
        if ((conns.get(keyOf(s))?.active ?? 0) === 0) s.destroy();
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        done,
        new Promise<void>((r) => (timer = setTimeout(r, graceMs))),
      ]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await done;
    })();

  return {
    hostname: bound.address,
    port: bound.port,
    get connectionCount() {
      return sockets.size;
    },
    close,
    [Symbol.asyncDispose]: () => close(),
    reload() {
      const tls = pems();
      if (tls && !closing) {
        (listener as tls.Server).setSecureContext({
          cert: tls.certPem,
          key: tls.keyPem,
          minVersion: "TLSv1.2",
        });
      }
      return Promise.resolve();
    },
  };
}

/**
 * The request body as a web stream that reads from the socket only as fast as it is consumed;
 * `hold` is told when reading stops and starts again; `onFail` gets a way to fail it.
 */
function bodyStream(
  req: http.IncomingMessage,
  hold: (stop: boolean) => void,
  onFail: (fail: (err: Error) => void) => void,
): ReadableStream<Uint8Array> {
  // Once the stream has ended, failed or been cancelled, the request's late events (data still
  // buffered after "aborted", an "end" after an error) are dropped: the controller refuses them.
  let settled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        controller.error(err);
      };
      req.on("data", (chunk: Buffer) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) {
          req.pause();
          hold(true);
        }
      });
      req.once("end", () => {
        if (settled) return;
        settled = true;
        controller.close();
      });
      req.once("error", fail);
      req.once("aborted", () => fail(new Error("request aborted by the client")));
      onFail(fail);
      req.pause();
      hold(true);
    },
    pull() {
      hold(false);
      req.resume();
    },
    cancel() {
      // The app stopped reading (too large, for instance): the rest is never read, so the
      // connection cannot carry another request.
      settled = true;
      req.pause();
      (req as { bodyCancelled?: boolean }).bodyCancelled = true;
    },
  });
}

async function writeResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Response,
): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of response.headers) if (k !== "set-cookie") headers[k] = v;
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers["set-cookie"] = cookies;
  if ((req as { bodyCancelled?: boolean }).bodyCancelled || !req.complete) {
    // The body was not read to its end: answer, then close instead of parsing leftovers.
    headers.connection = "close";
  }
  if (!response.body || req.method === "HEAD") {
    res.writeHead(response.status, headers);
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    // A body that comes in one piece (most answers) is sent with its length, not chunked.
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (second.done && !("content-length" in headers)) {
      headers["content-length"] = String(first.value?.byteLength ?? 0);
    }
    res.writeHead(response.status, headers);
    const pending = [first, second].filter((r) => !r.done).map((r) => r.value!);
    for (;;) {
      const { done, value } = pending.length
        ? { done: false, value: pending.shift()! }
        : await reader.read();
      if (done) break;
      if (res.destroyed) return;
      if (!res.write(value)) {
        await new Promise<void>((r) => {
          res.once("drain", r);
          res.once("close", r);
        });
      }
    }
    res.end();
  } finally {
    // The client is gone: stop the producer; its own failure to stop is nobody's concern now.
    if (res.destroyed) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * Offset just after the blank line ending a request head, or -1. A line ended by a bare LF ends
 * it too: such a head is no takeover's (firstRequest refuses it) and the HTTP server answers 400
 * at once, instead of the connection waiting out the head deadline for a CRLF CRLF.
 */
function headEnd(b: Uint8Array): number {
  for (let i = 1; i < b.length; i++) {
    if (b[i] !== 10) continue;
    if (b[i - 1] === 10 || (i >= 2 && b[i - 1] === 13 && b[i - 2] === 10)) return i + 1;
  }
  return -1;
}

/** Request line and fields of a head; null when it is not a well-formed HTTP/1.x head. */
function firstRequest(bytes: Uint8Array): FirstRequest | null {
  const lines = new TextDecoder("latin1").decode(bytes).split("\r\n");
  const m = /^([A-Z]+) (\/[^ ?#]*)(?:\?[^ ]*)? HTTP\/1\.[01]$/.exec(lines[0]);
  if (!m) return null;
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    if (line === "") break;
    const colon = line.indexOf(":");
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) return null;
    try {
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    } catch {
      return null;
    }
  }
  return { method: m[1], path: m[2], headers };
}
