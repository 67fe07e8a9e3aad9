// A client connection that can be cut at any byte, for disconnect chaos: plain TCP, TLS (at once
// or after STARTTLS, through a stream of our own so the handshake can be cut anywhere too) and
// COMPRESS=DEFLATE (RFC 4978) stacked on it. A cut ends the connection the way a phone or a
// hostile client does: FIN (shutdown, then whatever still comes is read and thrown away), close
// (FIN, or RST when unread data is pending) or RST (SO_LINGER 0). Counts are of raw TCP bytes, so
// a cut lands inside TLS records and compressed blocks alike.

import * as net from "node:net";
import * as tls from "node:tls";
import zlib from "node:zlib";
import { Duplex } from "node:stream";

export type CutStyle = "fin" | "close" | "rst";

/** Thrown by every operation once the connection was cut on purpose. */
export class CutError extends Error {
  constructor() {
    super("cut on purpose");
    this.name = "CutError";
  }
}

/** The server ended the connection (FIN or RST) while we still expected something. */
export class ServerClosedError extends Error {
  constructor(what: string, cause?: Error) {
    super(`server closed the connection ${what}${cause ? ` (${cause.message})` : ""}`);
    this.name = "ServerClosedError";
  }
}

/** No answer within the deadline: the server is stuck (or far too slow). */
export class NoAnswerError extends Error {
  constructor(what: string, ms: number) {
    super(`no answer ${what} within ${ms / 1000} s`);
    this.name = "NoAnswerError";
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/**
 * How long a FIN cut keeps reading what the server still sends before it closes the socket
 * itself: a server must notice the end of its input and close its side well within this.
 */
const FIN_DRAIN_MS = 10_000;

export interface ConnectOptions {
  port: number;
  host?: string;
  localAddress?: string;
  /** Deadline for every read (default 30 s). */
  timeoutMs?: number;
}

export class CutConn {
  rawIn = 0;
  rawOut = 0;
  readonly timeoutMs: number;
  #raw: net.Socket;
  #tls: tls.TLSSocket | null = null;
  #tlsPipe: Duplex | null = null;
  #deflate: zlib.DeflateRaw | null = null;
  #inflate: zlib.InflateRaw | null = null;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #endError: Error | undefined;
  #waiter: (() => void) | null = null;
  #cut: CutStyle | null = null;
  #budget: { dir: "in" | "out"; at: number; style: CutStyle } | null = null;
  #closed: Promise<void>;
  #onCut: (() => void) | null = null;
  #finAnswered: Promise<boolean> | null = null;

  private constructor(raw: net.Socket, timeoutMs: number) {
    this.#raw = raw;
    this.timeoutMs = timeoutMs;
    this.#closed = new Promise((resolve) => raw.once("close", () => resolve()));
    raw.on("data", (c: Uint8Array) => this.#fromRaw(c));
    raw.on("end", () => this.#end());
    raw.on("error", (e: Error) => this.#end(e));
    raw.on("close", () => this.#end());
  }

  static connect(options: ConnectOptions): Promise<CutConn> {
    return new Promise((resolve, reject) => {
      const raw = net.connect({
        host: options.host ?? "127.0.0.1",
        port: options.port,
        localAddress: options.localAddress,
      });
      raw.setNoDelay(true);
      const fail = (e: Error) => {
        raw.destroy();
        reject(e);
      };
      raw.once("error", fail);
      raw.once("connect", () => {
        raw.removeListener("error", fail);
        resolve(new CutConn(raw, options.timeoutMs ?? 30_000));
      });
    });
  }

  get isCut(): boolean {
    return this.#cut !== null;
  }

  get isTls(): boolean {
    return this.#tls !== null;
  }

  /** Resolves once the socket is fully closed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /**
   * Cuts the connection once `bytes` more raw bytes went out (or came in): the last write is sent
   * only up to that byte.
   */
  armCut(dir: "in" | "out", bytes: number, style: CutStyle): void {
    this.#budget = { dir, at: (dir === "in" ? this.rawIn : this.rawOut) + bytes, style };
  }

  // ---- the byte path ---------------------------------------------------------------------------

  #fromRaw(chunk: Uint8Array) {
    if (this.#cut) return; // drained after a FIN cut: thrown away
    let c = chunk;
    const b = this.#budget;
    let cutNow = false;
    if (b?.dir === "in" && this.rawIn + c.length >= b.at) {
      c = c.subarray(0, Math.max(0, b.at - this.rawIn));
      cutNow = true;
    }
    this.rawIn += c.length;
    if (c.length) {
      if (this.#tlsPipe) {
        if (!this.#tlsPipe.push(c)) this.#raw.pause();
      } else this.#fromTransport(c);
    }
    if (cutNow) this.cut(b!.style);
  }

  #fromTransport(c: Uint8Array) {
    if (this.#cut) return;
    if (this.#inflate) this.#inflate.write(c);
    else this.#deliver(c);
  }

  #deliver(c: Uint8Array) {
    if (this.#cut || c.length === 0) return;
    this.#chunks.push(c);
    this.#buffered += c.length;
    this.#wake();
  }

  #end(err?: Error) {
    if (err && !this.#endError) this.#endError = err;
    if (this.#ended) return;
    this.#ended = true;
    this.#tlsPipe?.push(null);
    this.#wake();
  }

  #wake() {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** Raw write honouring an armed cut; resolves when the socket took the bytes. */
  #rawWrite(bytes: Uint8Array): Promise<void> {
    if (this.#cut) return Promise.reject(new CutError());
    let b = bytes;
    const budget = this.#budget;
    let cutNow = false;
    if (budget?.dir === "out" && this.rawOut + b.length >= budget.at) {
      b = b.subarray(0, Math.max(0, budget.at - this.rawOut));
      cutNow = true;
    }
    this.rawOut += b.length;
    const done = b.length === 0 || this.#raw.write(b) ? Promise.resolve() : drained(this.#raw);
    if (cutNow) {
      this.cut(budget!.style);
      return Promise.reject(new CutError());
    }
    return done;
  }

  /** Writes application bytes through TLS and COMPRESS as active. */
  async write(data: string | Uint8Array): Promise<void> {
    if (this.#cut) throw new CutError();
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    if (this.#deflate) {
      const d = this.#deflate;
      await new Promise<void>((resolve) => {
        d.write(bytes);
        d.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
      });
    } else await this.#transportWrite(bytes);
    if (this.#cut) throw new CutError();
  }

  #transportWrite(bytes: Uint8Array): Promise<void> {
    const t = this.#tls;
    if (!t) return this.#rawWrite(bytes);
    return t.write(bytes) ? Promise.resolve() : drained(t);
  }

  // ---- layers ----------------------------------------------------------------------------------

  /** The client side of a TLS handshake on this connection (implicit TLS or after STARTTLS). */
  async startTls(caPem: string): Promise<void> {
    if (this.#cut) throw new CutError();
    // Whatever arrived before the handshake belongs to the plain layer and was read already.
    const pipe = new Duplex({
      write: (chunk: Uint8Array, _enc, cb) => {
        this.#rawWrite(chunk).then(() => cb(), () => cb());
      },
      read: () => {
        this.#raw.resume();
      },
      final: (cb) => {
        cb();
      },
    });
    // The pipe fails with the connection; nobody needs those errors.
    pipe.on("error", () => {});
    this.#tlsPipe = pipe;
    if (this.#ended) pipe.push(null);
    const t = tls.connect({
      socket: pipe as unknown as net.Socket,
      ca: caPem,
      servername: "localhost",
      checkServerIdentity: () => undefined,
    });
    t.on("data", (c: Uint8Array) => this.#fromTransport(c));
    t.on("end", () => this.#end());
    t.on("error", (e: Error) => this.#end(e));
    this.#tls = t;
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error) => {
        clearTimeout(timer);
        this.#onCut = null;
        t.removeListener("secureConnect", ok);
        t.removeListener("error", failed);
        t.removeListener("close", failed);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => settle();
      const failed = (e?: unknown) =>
        settle(
          this.#cut
            ? new CutError()
            : new ServerClosedError("during the TLS handshake", e instanceof Error ? e : undefined),
        );
      t.once("secureConnect", ok);
      t.once("error", failed);
      t.once("close", failed);
      const timer = setTimeout(
        () => settle(new NoAnswerError("to the TLS handshake", this.timeoutMs)),
        this.timeoutMs,
      );
      // A cut during the handshake ends it at once (the TLS socket may never notice).
      this.#onCut = () => settle(new CutError());
    });
  }

  /** After the server's OK to COMPRESS DEFLATE: both directions deflated from here on. */
  startCompression(): void {
    const inflate = zlib.createInflateRaw();
    inflate.on("data", (c: Uint8Array) => this.#deliver(c));
    inflate.on("error", (e: Error) => this.#end(e));
    const deflate = zlib.createDeflateRaw({ level: 6 });
    deflate.on("data", (c: Uint8Array) => {
      this.#transportWrite(c).catch(() => {});
    });
    deflate.on("error", () => {});
    // Bytes already buffered came before the switch (the OK line itself): they stay plain.
    this.#inflate = inflate;
    this.#deflate = deflate;
  }

  // ---- reading ---------------------------------------------------------------------------------

  async #wait(what: string): Promise<void> {
    if (this.#cut) throw new CutError();
    if (this.#ended) throw new ServerClosedError(what, this.#endError);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await new Promise<boolean>((resolve) => {
      this.#waiter = () => resolve(false);
      timer = setTimeout(() => resolve(true), this.timeoutMs);
    });
    clearTimeout(timer);
    if (this.#cut) throw new CutError();
    if (timedOut) throw new NoAnswerError(what, this.timeoutMs);
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

  #indexOfLf(): number {
    let pos = 0;
    for (const c of this.#chunks) {
      const i = c.indexOf(10);
      if (i >= 0) return pos + i;
      pos += c.length;
    }
    return -1;
  }

  /** The next line without CRLF. */
  async readLine(what = "(a line)"): Promise<string> {
    while (true) {
      const i = this.#indexOfLf();
      if (i >= 0) return dec.decode(this.#take(i + 1)).replace(/\r?\n$/, "");
      await this.#wait(what);
    }
  }

  async readExact(n: number, what = `(${n} bytes)`): Promise<Uint8Array> {
    while (this.#buffered < n) await this.#wait(what);
    return this.#take(n);
  }

  /** Reads and drops n bytes (a big literal) without holding them. */
  async skip(n: number, what = `(${n} bytes)`): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0) await this.#wait(what);
      const take = Math.min(left, this.#buffered);
      this.#take(take);
      left -= take;
    }
  }

  /** Stops reading from the socket (the server's writes back up); `resume()` undoes it. */
  stall(): void {
    this.#raw.pause();
  }

  resume(): void {
    this.#raw.resume();
  }

  // ---- ending ----------------------------------------------------------------------------------

  /** Ends the connection now, in the given style. Idempotent. */
  cut(style: CutStyle): void {
    if (this.#cut) return;
    this.#cut = style;
    this.#wake();
    this.#onCut?.();
    const raw = this.#raw;
    if (style === "rst") raw.resetAndDestroy();
    else if (style === "close") raw.destroy();
    else {
      // FIN: no more from us; read on (and drop) until the server closes, then close.
      raw.end();
      raw.resume();
      this.#finAnswered = new Promise((resolve) => {
        const timer = setTimeout(() => {
          raw.destroy();
          resolve(false);
        }, FIN_DRAIN_MS);
        raw.once("end", () => {
          clearTimeout(timer);
          raw.destroy();
          resolve(true);
        });
        raw.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    }
    this.#teardownLayers();
  }

  /**
   * After a FIN cut: true once the server closed its side too, false if it still had not after
   * the drain time (the server missed the end of its input). null without a FIN cut.
   */
  get finAnswered(): Promise<boolean> | null {
    return this.#finAnswered;
  }

  /** A polite end after a completed dialogue (no cut): closes the socket. */
  close(): void {
    if (!this.#cut) this.#cut = "close";
    this.#wake();
    this.#raw.destroy();
    this.#teardownLayers();
  }

  #teardownLayers() {
    this.#tls?.destroy();
    this.#tlsPipe?.destroy();
    this.#inflate?.destroy();
    this.#deflate?.destroy();
  }
}

const drains = new WeakMap<net.Socket, Promise<void>>();

/** Resolves at the socket's next drain (or close); one listener however many writers wait. */
function drained(s: net.Socket): Promise<void> {
  let p = drains.get(s);
  if (!p) {
    p = new Promise<void>((resolve) => {
      const settle = () => {
        s.removeListener("drain", settle);
        s.removeListener("close", settle);
        drains.delete(s);
        resolve();
      };
      s.once("drain", settle);
      s.once("close", settle);
    });
    drains.set(s, p);
  }
  return p;
}
