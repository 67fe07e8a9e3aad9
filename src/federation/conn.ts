// One outbound connection (TCP or TLS) read and written under deadlines: the common ground of the
// SMTP client and the HTTPS client. Every wait ends at its deadline with the socket destroyed, so a
// silent or dripping peer costs at most the step's limit.

import * as net from "node:net";
import * as tls from "node:tls";
import { noteActivity } from "../net/activity.ts";

export type TransportErrorKind = "connect" | "tls" | "timeout" | "closed" | "protocol";

/** The peer could not be talked to (as opposed to a reply it gave). */
export class TransportError extends Error {
  constructor(message: string, readonly kind: TransportErrorKind) {
    super(message);
  }
}

/** "[::1]:25" or "192.0.2.1:25". */
export function fmt(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

const MAX_LINE = 8192;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Runs `start` and waits for it to settle within `ms`; on timeout calls `cancel` and rejects. */
export function within<T>(
  ms: number,
  start: (resolve: (v: T) => void, reject: (e: Error) => void) => void,
  onTimeout: () => Error,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const end = () => {
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      if (done) return;
      end();
      onTimeout();
      reject(new TransportError("Outbound delivery is stopping", "closed"));
    };
    const timer = setTimeout(() => {
      if (done) return;
      end();
      reject(onTimeout());
    }, ms);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    start(
      (v) => {
        if (done) return;
        end();
        resolve(v);
      },
      (e) => {
        if (done) return;
        end();
        reject(e);
      },
    );
  });
}

/** TCP connect within `ms`. */
export function connectTcp(
  address: string,
  port: number,
  ms: number,
  signal?: AbortSignal,
): Promise<net.Socket> {
  const where = fmt(address, port);
  let socket: net.Socket | undefined;
  return within<net.Socket>(ms, (resolve, reject) => {
    const s = socket = net.connect({ host: address, port });
    s.once("connect", () => {
      noteActivity();
      s.removeAllListeners("error");
      s.setNoDelay(true);
      resolve(s);
    });
    s.once("error", (e) => {
      s.destroy();
      reject(new TransportError(`Connection to ${where} failed: ${e.message}`, "connect"));
    });
  }, () => {
    socket?.destroy();
    return new TransportError(`Connection to ${where} timed out after ${seconds(ms)}`, "connect");
  }, signal);
}

export interface TlsTarget {
  /** Name the certificate must carry (and SNI); an IP for literals. */
  servername: string;
  /** Certificates are not verified (IP literals, "_" domains). */
  insecure: boolean;
  /** Trusted CAs; undefined: Deno's store (which honours DENO_CERT). See trust.ts. */
  ca?: string[];
  alpn?: string[];
}

/**
 * Closes a socket whose TLS handshake has not finished. Measured in Deno 2.9.6: destroy() on the
 * TLS socket or on the wrapped one leaves the TCP connection open until the peer closes it (a
 * silent peer never does); only a reset closes it.
 */
function hardClose(socket: net.Socket) {
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

/** TLS client handshake over a connected socket within `ms`, certificate checked. */
export function startTls(
  socket: net.Socket,
  target: TlsTarget,
  where: string,
  ms: number,
  signal?: AbortSignal,
): Promise<tls.TLSSocket> {
  let t: tls.TLSSocket;
  return within<tls.TLSSocket>(ms, (resolve, reject) => {
    t = tls.connect({
      socket,
      servername: net.isIP(target.servername) ? undefined : target.servername,
      rejectUnauthorized: !target.insecure,
      ca: target.ca,
      minVersion: "TLSv1.2",
      ALPNProtocols: target.alpn,
    });
    t.once("secureConnect", () => {
      t.removeAllListeners("error");
      if (!target.insecure) {
        const problem = tls.checkServerIdentity(target.servername, t.getPeerCertificate());
        if (problem) {
          t.destroy();
          return reject(new TransportError(`TLS with ${where}: ${problem.message}`, "tls"));
        }
      }
      resolve(t);
    });
    t.once("error", (e) => {
      hardClose(socket);
      t.destroy();
      reject(new TransportError(`TLS with ${where} failed: ${e.message}`, "tls"));
    });
  }, () => {
    // The reset first: destroying the TLS socket first keeps the connection open (measured).
    hardClose(socket);
    t?.destroy();
    return new TransportError(
      `TLS handshake with ${where} timed out after ${seconds(ms)}`,
      "timeout",
    );
  }, signal);
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** A connected socket with a read buffer; reads and writes wait at most their deadline. */
export class Conn {
  #socket: net.Socket;
  #buf: Uint8Array = new Uint8Array(0);
  #error: TransportError | null = null;
  #wake: (() => void) | null = null;
  #onData = (d: Uint8Array) => {
    // As the listeners' input (net/activity.ts): a relay busy delivering is not quiet.
    noteActivity();
    this.#buf = concat(this.#buf, d);
    this.received += d.length;
    this.#notify();
  };
  #onError = (e: Error) => {
    this.#error ??= new TransportError(`${this.where}: ${e.message}`, "closed");
    this.#notify();
  };
  #onClose = () => {
    this.#error ??= new TransportError(`${this.where} closed the connection`, "closed");
    this.#notify();
  };
  /** Bytes received since the connection was made. */
  received = 0;

  constructor(socket: net.Socket, readonly where: string, signal?: AbortSignal) {
    this.#socket = socket;
    this.#listen(socket);
    if (signal) {
      // Stopping the relay cuts the connection; the listener goes with the connection.
      const cut = () => this.destroy();
      if (signal.aborted) cut();
      signal.addEventListener("abort", cut, { once: true });
      socket.once("close", () => signal.removeEventListener("abort", cut));
    }
  }

  #listen(s: net.Socket) {
    s.on("data", this.#onData);
    s.on("error", this.#onError);
    s.on("close", this.#onClose);
    s.on("end", this.#onClose);
  }

  #notify() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  /** Closed, failed, or sent something nobody asked for: not fit for another request. */
  get broken(): boolean {
    return this.#error !== null || this.#buf.length > 0 || this.#socket.destroyed;
  }

  /**
   * Hands the raw socket over for a TLS upgrade. Bytes the server sent after its go-ahead would
   * be plaintext injected before the handshake (RFC 3207 §6): refused.
   */
  release(): net.Socket {
    if (this.#buf.length > 0) {
      throw new TransportError(`${this.where} sent data before the TLS handshake`, "protocol");
    }
    const s = this.#socket;
    s.off("data", this.#onData);
    s.off("error", this.#onError);
    s.off("close", this.#onClose);
    s.off("end", this.#onClose);
    return s;
  }

  /** Continues on the upgraded socket. */
  adopt(s: net.Socket) {
    this.#socket = s;
    this.#error = null;
    this.#listen(s);
  }

  async #waitMore(deadline: number, what: string): Promise<void> {
    if (this.#error) throw this.#error;
    const ms = deadline - performance.now();
    if (ms <= 0) throw this.#timeout(what);
    await within<void>(ms, (resolve) => {
      this.#wake = resolve;
    }, () => {
      this.#wake = null;
      return this.#timeout(what);
    });
  }

  #timeout(what: string): TransportError {
    this.destroy();
    return new TransportError(`${this.where}: no ${what} in time`, "timeout");
  }

  /** One line without its CRLF. */
  async readLine(ms: number, what: string): Promise<string> {
    const deadline = performance.now() + ms;
    for (;;) {
      const i = this.#buf.indexOf(10);
      if (i >= 0) {
        const line = this.#buf.subarray(0, i);
        this.#buf = this.#buf.subarray(i + 1);
        const end = line.length > 0 && line[line.length - 1] === 13 ? line.length - 1 : line.length;
        return new TextDecoder().decode(line.subarray(0, end));
      }
      if (this.#buf.length > MAX_LINE) {
        this.destroy();
        throw new TransportError(
          `${this.where} sent a line longer than ${MAX_LINE} bytes`,
          "protocol",
        );
      }
      await this.#waitMore(deadline, what);
    }
  }

  /** Exactly n bytes. */
  async readBytes(n: number, ms: number, what: string): Promise<Uint8Array> {
    const deadline = performance.now() + ms;
    while (this.#buf.length < n) await this.#waitMore(deadline, what);
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Everything until the peer closes, at most `max` bytes. */
  async readToClose(max: number, ms: number, what: string): Promise<Uint8Array> {
    const deadline = performance.now() + ms;
    for (;;) {
      if (this.#buf.length > max) {
        this.destroy();
        throw new TransportError(`${this.where} sent more than ${max} bytes`, "protocol");
      }
      if (this.#error?.kind === "closed") {
        const out = this.#buf;
        this.#buf = new Uint8Array(0);
        return out;
      }
      await this.#waitMore(deadline, what);
    }
  }

  /** Writes and waits until the data left for the kernel (back-pressure) within `ms`. */
  write(data: string | Uint8Array, ms: number, what: string): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    noteActivity();
    return within<void>(ms, (resolve, reject) => {
      this.#socket.write(bytes, (e) => {
        if (e) reject(new TransportError(`${this.where}: ${e.message}`, "closed"));
        else resolve();
      });
    }, () => {
      this.destroy();
      return new TransportError(`${this.where}: ${what} not taken in time`, "timeout");
    });
  }

  destroy() {
    this.#socket.destroy();
  }
}
