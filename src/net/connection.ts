// A line-protocol connection: buffered reads (lines, exact byte counts, raw chunks), back-pressured
// writes and a COMPRESS=DEFLATE layer over a byte transport. Two transports: a node:net/node:tls
// socket (plain listeners, with server-side STARTTLS) and a Deno TLS connection (implicit-TLS
// listeners; about half the memory per idle connection, see deno_connection.ts).

import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { SecureContext } from "node:tls";
import zlib from "node:zlib";

export class LineTooLongError extends Error {
  constructor(readonly limitBytes: number) {
    super(`Cannot read line: longer than ${limitBytes} bytes`);
    this.name = "LineTooLongError";
  }
}

export class ConnectionClosedError extends Error {
  constructor(message = "Connection closed") {
    super(message);
    this.name = "ConnectionClosedError";
  }
}

export class IdleTimeoutError extends Error {
  constructor() {
    super("Connection idle timeout");
    this.name = "IdleTimeoutError";
  }
}

/** What a protocol session sees of its socket. */
export interface Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly localPort: number;
  readonly isTls: boolean;
  readonly isCompressed: boolean;
  /** The next line without its line ending; null at end of stream. */
  readLine(maxBytes: number): Promise<Uint8Array | null>;
  /** Exactly n bytes; null when the stream ends first. */
  readExact(n: number): Promise<Uint8Array | null>;
  /** Whatever is buffered, or the next chunk; null at end of stream. */
  readChunk(): Promise<Uint8Array | null>;
  /** Puts bytes back in front of the read buffer. */
  unread(bytes: Uint8Array): void;
  /** Number of bytes read from the socket but not consumed yet. */
  bufferedBytes(): number;
  write(data: string | Uint8Array): Promise<void>;
  /** Writes the go-ahead line, then performs the server side of a TLS handshake. */
  startTls(goAhead: string): Promise<void>;
  /** Switches both directions to raw DEFLATE (RFC 4978) after writing the go-ahead line. */
  startCompression(goAhead: string): Promise<void>;
  /** Inactivity limit; a pending read then fails with IdleTimeoutError. 0 disables. */
  setIdleTimeout(ms: number): void;
  close(): Promise<void>;
  readonly closed: boolean;
}

const HIGH_WATER = 1 << 20;
const encoder = new TextEncoder();
let nextId = 1;

export interface ConnectionOptions {
  secureContext?: () => SecureContext;
}

/** The buffering and framing shared by every transport; subclasses move the bytes. */
export abstract class BufferedConnection implements Connection {
  readonly id: string;
  abstract readonly remoteAddress: string;
  abstract readonly localPort: number;
  abstract readonly isTls: boolean;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  #paused = false;
  #inflate: zlib.InflateRaw | null = null;
  #deflate: zlib.DeflateRaw | null = null;
  #idleMs = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor() {
    this.id = (nextId++).toString(36);
  }

  /** Writes bytes to the transport; resolves when it can take more. */
  protected abstract transportWrite(bytes: Uint8Array): Promise<void>;
  protected abstract pauseTransport(): void;
  protected abstract resumeTransport(): void;
  /** Ends the transport gracefully (bounded in time). */
  protected abstract endTransport(): Promise<void>;
  protected abstract destroyTransport(): void;
  /** True once the transport cannot be written any more. */
  protected abstract get transportGone(): boolean;
  abstract startTls(goAhead: string): Promise<void>;

  get isCompressed(): boolean {
    return this.#deflate !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  protected markClosed(): void {
    this.#closed = true;
  }

  /** Bytes read from the transport. */
  protected received(chunk: Uint8Array) {
    this.touch();
    if (this.#inflate) {
      this.#inflate.write(chunk);
      return;
    }
    this.#append(chunk);
  }

  #append(chunk: Uint8Array) {
    if (chunk.length === 0) return;
    this.#chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#buffered += chunk.length;
    if (this.#buffered > HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.pauseTransport();
    }
    this.#wake();
  }

  /** End of the input (err set when it failed). */
  protected finish(err: Error | null) {
    if (err && !this.#error) this.#error = err;
    this.#ended = true;
    clearTimeout(this.#idleTimer);
    this.#wake();
  }

  #wake() {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  protected touch() {
    if (this.#idleMs <= 0 || this.#closed) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#error = new IdleTimeoutError();
      this.#ended = true;
      this.#wake();
    }, this.#idleMs);
  }

  setIdleTimeout(ms: number): void {
    this.#idleMs = ms;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.touch();
  }

  #maybeResume() {
    if (this.#paused && this.#buffered < HIGH_WATER / 2) {
      this.#paused = false;
      this.resumeTransport();
    }
  }

  async #wait(): Promise<void> {
    this.#maybeResume();
    if (this.#ended) {
      if (this.#error instanceof IdleTimeoutError) throw this.#error;
      return;
    }
    await new Promise<void>((resolve) => (this.#waiter = resolve));
    if (this.#error instanceof IdleTimeoutError) throw this.#error;
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const need = n - off;
      if (c.length <= need) {
        out.set(c, off);
        off += c.length;
        this.#chunks.shift();
      } else {
        out.set(c.subarray(0, need), off);
        this.#chunks[0] = c.subarray(need);
        off += need;
      }
    }
    this.#buffered -= n;
    return out;
  }

  #indexOfLf(limit: number): number {
    let pos = 0;
    for (const c of this.#chunks) {
      const i = c.indexOf(10);
      if (i >= 0) return pos + i;
      pos += c.length;
      if (pos > limit) return -1;
    }
    return -1;
  }

  async readLine(maxBytes: number): Promise<Uint8Array | null> {
    let discarding = false;
    while (true) {
      const i = this.#indexOfLf(discarding ? Infinity : maxBytes + 2);
      if (i >= 0) {
        const raw = this.#take(i + 1);
        if (discarding) throw new LineTooLongError(maxBytes);
        let end = raw.length - 1;
        if (end > 0 && raw[end - 1] === 13) end--;
        if (end > maxBytes) throw new LineTooLongError(maxBytes);
        return raw.subarray(0, end);
      }
      if (this.#buffered > maxBytes + 2) {
        // Too long: drop it up to its line feed (which may already be buffered; the next
        // command must stay intact), or drop everything and keep discarding.
        const end = this.#indexOfLf(Infinity);
        if (end >= 0) {
          this.#take(end + 1);
          throw new LineTooLongError(maxBytes);
        }
        this.#take(this.#buffered);
        discarding = true;
      }
      if (this.#ended && this.#chunks.length === 0) {
        if (discarding) throw new LineTooLongError(maxBytes);
        return null;
      }
      if (this.#ended) {
        // A final line without a line ending.
        const rest = this.#take(this.#buffered);
        if (discarding || rest.length > maxBytes) throw new LineTooLongError(maxBytes);
        return rest;
      }
      await this.#wait();
    }
  }

  async readExact(n: number): Promise<Uint8Array | null> {
    while (this.#buffered < n) {
      if (this.#ended) return null;
      await this.#wait();
    }
    return this.#take(n);
  }

  async readChunk(): Promise<Uint8Array | null> {
    while (this.#buffered === 0) {
      if (this.#ended) return null;
      await this.#wait();
    }
    const c = this.#chunks.shift()!;
    this.#buffered -= c.length;
    this.#maybeResume();
    return c;
  }

  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#buffered += bytes.length;
  }

  bufferedBytes(): number {
    return this.#buffered;
  }

  write(data: string | Uint8Array): Promise<void> {
    if (this.#closed || this.transportGone) {
      return Promise.reject(new ConnectionClosedError());
    }
    this.touch();
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (this.#deflate) {
      const d = this.#deflate;
      return new Promise((resolve, reject) => {
        d.write(bytes, (err) => err ? reject(err) : undefined);
        d.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
      });
    }
    return this.transportWrite(bytes);
  }

  async startCompression(goAhead: string): Promise<void> {
    await this.transportWrite(encoder.encode(goAhead));
    const inflate = zlib.createInflateRaw();
    inflate.on("data", (c: Uint8Array) => this.#append(c));
    inflate.on("error", (e: Error) => this.finish(e));
    const pending = this.#chunks.splice(0);
    this.#buffered = 0;
    this.#inflate = inflate;
    for (const c of pending) inflate.write(c);
    const deflate = zlib.createDeflateRaw({ level: 6 });
    deflate.on("data", (c: Uint8Array) => {
      this.transportWrite(c).catch(() => {});
    });
    this.#deflate = deflate;
  }

  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    if (this.#closed || this.transportGone) {
      this.#closed = true;
      return;
    }
    const d = this.#deflate;
    if (d) await new Promise<void>((resolve) => d.flush(zlib.constants.Z_SYNC_FLUSH, resolve));
    await this.endTransport();
    this.#closed = true;
  }

  /** Drops the connection at once (shutdown, abuse). */
  destroy(): void {
    clearTimeout(this.#idleTimer);
    this.#inflate?.destroy();
    this.#deflate?.destroy();
    this.destroyTransport();
    this.#closed = true;
    this.finish(null);
  }
}

/** A node:net socket, possibly wrapped in TLS (implicitly or by STARTTLS). */
export class SocketConnection extends BufferedConnection {
  readonly remoteAddress: string;
  readonly localPort: number;
  #socket: Socket;
  #tlsSocket: TLSSocket | null = null;
  #options: ConnectionOptions;
  #onData = (chunk: Uint8Array) => this.received(chunk);
  #onEnd = () => this.finish(null);
  #onError = (e: Error) => this.finish(e);

  constructor(socket: Socket, options: ConnectionOptions = {}) {
    super();
    this.#socket = socket;
    this.#options = options;
    this.remoteAddress = normalizeAddress(socket.remoteAddress ?? "");
    this.localPort = socket.localPort ?? 0;
    if (socket instanceof TLSSocket) this.#tlsSocket = socket;
    this.#attach(socket);
    socket.on("close", () => {
      this.markClosed();
      this.finish(null);
    });
  }

  get isTls(): boolean {
    return this.#tlsSocket !== null;
  }

  #current(): Socket {
    return this.#tlsSocket ?? this.#socket;
  }

  #attach(s: Socket) {
    s.on("data", this.#onData);
    s.on("end", this.#onEnd);
    s.on("error", this.#onError);
  }

  #detach(s: Socket) {
    s.removeListener("data", this.#onData);
    s.removeListener("end", this.#onEnd);
  }

  protected get transportGone(): boolean {
    return this.#current().destroyed;
  }

  protected pauseTransport(): void {
    this.#current().pause();
  }

  protected resumeTransport(): void {
    this.#current().resume();
  }

  protected transportWrite(bytes: Uint8Array): Promise<void> {
    const s = this.#current();
    return new Promise((resolve, reject) => {
      const ok = s.write(bytes, (err) => {
        if (err) reject(err);
        else if (!ok) resolve();
      });
      if (ok) resolve();
    });
  }

  async startTls(goAhead: string): Promise<void> {
    const ctx = this.#options.secureContext?.();
    if (!ctx) throw new Error("Cannot start TLS: no certificate configured");
    if (this.#tlsSocket) throw new Error("Cannot start TLS: already active");
    const raw = this.#socket;
    this.#detach(raw);
    // Deno 2.9: pause before writing the go-ahead, or the ClientHello can be lost.
    raw.pause();
    await new Promise<void>((resolve, reject) =>
      raw.write(encoder.encode(goAhead), (e) => (e ? reject(e) : resolve()))
    );
    const t = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    this.#tlsSocket = t;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      t.once("secure", () => {
        t.removeListener("error", fail);
        resolve();
      });
      t.once("error", fail);
      t.once(
        "close",
        () => reject(new ConnectionClosedError("Connection closed during TLS handshake")),
      );
    });
    this.#attach(t);
    this.touch();
  }

  protected endTransport(): Promise<void> {
    const s = this.#current();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        s.destroy();
        resolve();
      }, 2000);
      s.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      s.end();
      if (this.#tlsSocket) this.#socket.end();
    });
  }

  protected destroyTransport(): void {
    this.#current().destroy();
    this.#socket.destroy();
  }
}

export function normalizeAddress(a: string): string {
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}
