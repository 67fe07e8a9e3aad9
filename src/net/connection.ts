// A line-protocol connection over one node:net socket, wrapped in TLS at accept (implicit TLS) or
// later (STARTTLS): by tern's own TLS 1.3 engine (src/net/tls13) where the listener asks for it
// and the ClientHello suits it, else by node:tls: buffered reads (lines, exact byte counts,
// chunks) with back-pressure, writes whose every failure is one ConnectionClosedError, and
// COMPRESS=DEFLATE. The one transport of every mail listener: no FFI, no /proc, the same on every
// platform.

import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { SecureContext } from "node:tls";
import { noteActivity } from "./activity.ts";
import { DeflateWriter, InflateReader } from "./compression.ts";
import { normalizeAddress } from "./ip.ts";
import { setTcpReading } from "./tcp_reads.ts";
import { type DelayQueue, delayQueue } from "./delay_queue.ts";
import { checkClientHello, type Tls13Credentials, Tls13ServerSession } from "./tls13/mod.ts";

/**
 * A line over its limit. The connection has dropped it up to its line feed, so the next read
 * starts at the next line; `fatal` means it went on so long (no line feed within DISCARD_LIMIT)
 * that the caller should close the connection instead. `head`: the line's first bytes (at most
 * LINE_HEAD_BYTES), from which a protocol can still tell whose line it was (an IMAP tag).
 */
export class LineTooLongError extends Error {
  constructor(
    readonly limitBytes: number,
    readonly fatal = false,
    readonly head: Uint8Array = new Uint8Array(0),
  ) {
    super(`Cannot read line: longer than ${limitBytes} bytes`);
    this.name = "LineTooLongError";
  }
}

/** How much of a dropped overlong line LineTooLongError keeps. */
export const LINE_HEAD_BYTES = 256;

/** The peer went away (or the connection was closed here): a normal end, not a failure. */
export class ConnectionClosedError extends Error {
  constructor(message = "Connection closed", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConnectionClosedError";
  }
}

export class IdleTimeoutError extends Error {
  constructor(message = "Connection idle timeout") {
    super(message);
    this.name = "IdleTimeoutError";
  }
}

/**
 * setDeadline's limit passed (input did not come in time, or not fast enough): an
 * IdleTimeoutError, so every session ends on it as on the idle limit, but one that can say so.
 */
export class DeadlineError extends IdleTimeoutError {
  constructor() {
    super("Connection deadline passed");
    this.name = "DeadlineError";
  }
}

/** How setDeadline's limit moves and when it starts. */
export interface DeadlineOptions {
  /**
   * The input rate a client must keep up (bytes per second, as Postfix's smtpd_min_data_rate):
   * each byte that arrives moves the deadline on by 1/rate s, but never to more than `ms` after
   * the moment the move is made (see movedDeadline). A large message sent slowly but steadily
   * goes on for as long as it takes; a byte now and then does not. 0 or absent: a fixed deadline.
   */
  minBytesPerSecond?: number;
  /**
   * The clock starts at the next input (at once when some is buffered already): it bounds how
   * long a request takes to arrive, not the wait for it (IMAP IDLE waits for hours).
   */
  fromInput?: boolean;
}

/**
 * Where a deadline with a minimum rate falls next, looked at `now` (when it was due, `at`):
 * `bytes` arrived since `at` was set, each worth 1/minBytesPerSecond s more, but never more than
 * `ms` from now (credit is not banked: a client that sent fast and then trickles has at most
 * `ms` more). At or before `now`: the deadline has passed.
 */
export function movedDeadline(
  at: number,
  bytes: number,
  minBytesPerSecond: number,
  ms: number,
  now: number,
): number {
  return Math.min(at + (bytes * 1000) / minBytesPerSecond, now + ms);
}

/** A TLS handshake that failed or did not finish in time (the connection is dropped). */
export class TlsHandshakeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TlsHandshakeError";
  }
}

/** What a protocol session sees of its socket. */
export interface Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly localPort: number;
  readonly isTls: boolean;
  readonly isCompressed: boolean;
  /**
   * The next line without its line ending; null at end of stream. A line the stream ends in
   * (no line end) throws ConnectionClosedError.
   */
  readLine(maxBytes: number): Promise<Uint8Array | null>;
  /** Exactly n bytes in one array (n bytes of memory); null when the stream ends first. */
  readExact(n: number): Promise<Uint8Array | null>;
  /**
   * Exactly n bytes handed to onChunk in order, as they arrive (each piece at most what one read
   * brought); the next piece is read once onChunk's promise resolves. False when the stream ends
   * first.
   */
  readExactChunks(
    n: number,
    onChunk: (chunk: Uint8Array) => void | Promise<void>,
  ): Promise<boolean>;
  /** Whatever is buffered, or the next chunk; null at end of stream. */
  readChunk(): Promise<Uint8Array | null>;
  /**
   * Calls `ready` once (in a microtask at the soonest) when readLine(maxBytes) would not wait:
   * a whole line, or more than a line of maxBytes, is buffered, or the input ended or failed.
   * A callback and no read in progress: IDLE waits here for hours on thousands of connections
   * and holds no suspended frame. null forgets it; no other read may wait meanwhile.
   */
  whenLine(maxBytes: number, ready: (() => void) | null): void;
  /** Puts bytes back in front of the read buffer. */
  unread(bytes: Uint8Array): void;
  /** Number of bytes read from the socket but not consumed yet. */
  bufferedBytes(): number;
  /**
   * Resolves when the bytes were handed to the socket and it can take more (back-pressure);
   * rejects with ConnectionClosedError, whatever the cause, when they cannot be sent, or with
   * IdleTimeoutError (and the connection is dropped) when it waited past the idle limit.
   */
  write(data: string | Uint8Array): Promise<void>;
  /** Writes the go-ahead line, then performs the server side of a TLS handshake. */
  startTls(goAhead: string): Promise<void>;
  /** Switches both directions to raw DEFLATE (RFC 4978) after writing the go-ahead line. */
  startCompression(goAhead: string): Promise<void>;
  /** Inactivity limit; a pending read then fails with IdleTimeoutError. 0 disables. */
  setIdleTimeout(ms: number): void;
  /**
   * A limit that input does not restart: `ms` from now, unless set again (0 clears it), a
   * pending or later read fails with DeadlineError (an IdleTimeoutError). A client trickling a
   * byte now and then keeps the idle clock going, but not this one (logging in, one command).
   * It bounds the wait for input, not the session's own work: passed while no read waits (a
   * password being verified), it fails the next read, unless it is set again or cleared first.
   * `options`: a minimum input rate that moves it on, and a clock that starts with input.
   */
  setDeadline(ms: number, options?: DeadlineOptions): void;
  /**
   * How much may be read ahead of the session before the socket is paused (default 1 MiB);
   * small before login, so idle or hostile clients hold little memory.
   */
  setReadAhead(bytes?: number): void;
  close(): Promise<void>;
  /**
   * Ends the connection after what was written so far, reading nothing more (a flooding client):
   * no graceful wait for the peer.
   */
  abort(): void;
  readonly closed: boolean;
}

/** Default read-ahead: above it the socket is paused until the session consumes. */
const HIGH_WATER = 1 << 20;
/** An overlong line is dropped up to its line feed, but not beyond this many bytes. */
const DISCARD_LIMIT = 1 << 20;
/** close(): how long pending output and the peer's close may take before the socket is dropped. */
const END_GRACE_MS = 2000;
const DEFAULT_HANDSHAKE_MS = 30_000;
/** A ClientHello still incomplete at this size goes to node:tls undecided (its alert, if any). */
const HELLO_LIMIT = 64 * 1024;
const encoder = new TextEncoder();
let nextId = 1;

export interface ConnectionOptions {
  /** The certificate and TLS policy for a handshake; read at each one. */
  secureContext?: () => SecureContext;
  /** How long a client may take to complete a TLS handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Implicit TLS: nothing is read before acceptTls() has completed the handshake. */
  implicitTls?: boolean;
  /**
   * tern's own TLS 1.3 engine, with this certificate (read at each handshake), for the clients
   * it can serve; the others (TLS 1.2, ...) get node:tls and secureContext as before. Null: the
   * engine cannot use this certificate's key.
   */
  tls13?: () => Tls13Credentials | null;
}

/** setDeadline's limit while one is set. */
interface Deadline {
  ms: number;
  /** DeadlineOptions.minBytesPerSecond (0: a fixed deadline). */
  rate: number;
  /** When it falls (performance.now()); 0 until the first input, with fromInput. */
  at: number;
  /** Bytes that arrived since `at` was last set (with a rate). */
  bytes: number;
  /** It passed while no read waited: the next read fails. */
  passed: boolean;
  /** The timer of a deadline moved on (the first `ms` wait in the shared queue of `ms`). */
  timer: ReturnType<typeof setTimeout> | undefined;
  fire: () => void;
}

/** Which TLS serves a connection: tern's own engine, or node:tls. */
export type TlsEngine = "tern" | "node";

/** tern's engine while its handshake runs. */
interface OwnHandshake {
  creds: Tls13Credentials;
  /**
   * The ClientHello's bytes so far, while the engine is not chosen yet (then null): the first
   * `helloLength` bytes of a buffer that doubles, so a hello trickled in a byte at a time costs
   * linear time, not a copy of everything before it per byte.
   */
  hello: Uint8Array | null;
  helloLength: number;
  /** Settles the handshake: served (true), handed to node:tls (false), or failed. */
  settle(err: Error | null, served?: boolean): void;
}

export class SocketConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  readonly localPort: number;
  #raw: Socket;
  #tls: TLSSocket | null = null;
  /** tern's TLS engine, when it serves the connection (then the raw socket carries records). */
  #session: Tls13ServerSession | null = null;
  #own: OwnHandshake | null = null;
  #options: ConnectionOptions;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #readAhead = HIGH_WATER;
  /** Bytes a pending readExact needs buffered at once (it may exceed HIGH_WATER). */
  #wanted = 0;
  #ended = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  #socketPaused = false;
  #inflateBehind = false;
  #inflate: InflateReader | null = null;
  #deflate: DeflateWriter | null = null;
  #idleMs = 0;
  /** The shared deadlines of the idle limit (null when there is none). */
  #idleQueue: DelayQueue | null = null;
  /**
   * setDeadline's limit (null when none is set: made per deadline, so a session waiting for
   * its next command holds nothing for it).
   */
  #deadline: Deadline | null = null;
  #closed = false;
  /** Writes waiting for the socket to drain (made on the first one: most never wait). */
  #pendingWrites: Set<(e: Error) => void> | null = null;
  // The sockets' listeners: one function each, shared by every connection, called with the
  // socket as `this` (raw or node:tls), which finds its connection in `owners`. Four arrow
  // functions per connection were four closures of its own (heap snapshots of 1000 idle TLS
  // IMAP sessions: 5808 -> 5559 B per session in V8's heap after GC, 6184 -> 5966 by snapshot).
  static #onData = function (this: Socket, chunk: Uint8Array) {
    const c = owners.get(this);
    if (!c) return;
    noteActivity();
    if (c.#session || c.#own) c.#fromTls(chunk);
    else c.#received(chunk);
  };
  static #onEnd = function (this: Socket) {
    const c = owners.get(this);
    if (c) c.#finish(null);
  };
  static #onError = function (this: Socket, e: Error) {
    const c = owners.get(this);
    if (c) c.#finish(e);
  };
  static #onClose = function (this: Socket) {
    const c = owners.get(this);
    if (!c) return;
    c.#closed = true;
    c.#finish(null);
    c.#failWrites();
  };

  constructor(socket: Socket, options: ConnectionOptions = {}) {
    this.id = (nextId++).toString(36);
    noteActivity();
    this.#raw = socket;
    this.#options = options;
    this.remoteAddress = normalizeAddress(socket.remoteAddress ?? "");
    this.localPort = socket.localPort ?? 0;
    forgetAddresses(socket);
    owners.set(socket, this);
    // Always an error listener: an unhandled 'error' event would end the process.
    socket.on("error", SocketConnection.#onError);
    socket.on("close", SocketConnection.#onClose);
    if (!options.implicitTls) {
      socket.on("data", SocketConnection.#onData);
      socket.on("end", SocketConnection.#onEnd);
    }
  }

  get isTls(): boolean {
    return this.#tls !== null || this.#session !== null;
  }

  /** Which TLS serves the connection (null: plain, or no handshake done). */
  get tlsEngine(): TlsEngine | null {
    return this.#session ? "tern" : this.#tls ? "node" : null;
  }

  get isCompressed(): boolean {
    return this.#deflate !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #current(): Socket {
    return this.#tls ?? this.#raw;
  }

  // ---- input -------------------------------------------------------------------------------

  #received(chunk: Uint8Array) {
    this.#touch();
    if (this.#inflate) {
      if (!this.#inflate.write(chunk)) {
        this.#inflateBehind = true;
        this.#flow();
      }
      return;
    }
    this.#append(chunk);
  }

  #append(chunk: Uint8Array) {
    if (chunk.length === 0) return;
    const d = this.#deadline;
    if (d) {
      if (d.at === 0) this.#startDeadline(d);
      d.bytes += chunk.length;
    }
    this.#chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#buffered += chunk.length;
    this.#flow();
    this.#wake();
  }

  /**
   * Back-pressure: the buffer holds at most HIGH_WATER (or what a pending readExact needs);
   * with compression, inflate stops at that point and the socket stops while inflate is behind.
   */
  #flow() {
    const full = this.#buffered >= Math.max(this.#readAhead, this.#wanted);
    let pauseSocket = full;
    if (this.#inflate) {
      if (full) this.#inflate.pause();
      else this.#inflate.resume();
      pauseSocket = this.#inflateBehind;
    }
    if (pauseSocket === this.#socketPaused || this.#current().destroyed) return;
    this.#socketPaused = pauseSocket;
    if (pauseSocket) this.#current().pause();
    else this.#current().resume();
    // Under TLS, pausing stops only the 'data' events: the TCP socket beneath is held itself.
    if (this.#tls) setTcpReading(this.#raw, !pauseSocket);
  }

  /** End of the input (err set when it failed). */
  #finish(err: Error | null) {
    this.#own?.settle(
      err
        ? new TlsHandshakeError(err.message, { cause: err })
        : new ConnectionClosedError("Connection closed during TLS handshake"),
    );
    if (err && !this.#error) this.#error = err;
    this.#ended = true;
    this.#stopIdle();
    this.#wake();
  }

  #wake() {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /**
   * Input seen: the idle clock starts again. One entry in a queue shared by every connection
   * with the same limit, moved to its end (not a timer of its own: an idle connection would
   * hold one for its whole life, and clearing and making a timer for every chunk read cost a
   * few % of the event loop under a submission load).
   */
  #touch() {
    if (this.#idleMs <= 0 || this.#closed) return;
    this.#idleQueue?.schedule(this.#onIdle);
  }

  #onIdle = () => {
    if (this.#idleMs <= 0) return;
    this.#expire();
  };

  /** The idle limit or the deadline passed: reads fail from now on. */
  #expire(error: IdleTimeoutError = new IdleTimeoutError()) {
    if (this.#closed || this.#ended) return;
    this.#error = error;
    this.#ended = true;
    this.#wake();
    // A write waiting as long for the socket to drain: the peer reads nothing (gone without
    // FIN or RST, or holding its window shut), and the write would wait for as long as the
    // kernel keeps the socket (forever while the peer's stack answers window probes).
    // The write fails with the idle error: the session ends as idle, not as gone.
    if (this.#pendingWrites?.size) {
      this.#failWrites(this.#error);
      this.destroy();
    }
  }

  #stopIdle() {
    this.#idleQueue?.cancel(this.#onIdle);
    this.#clearDeadline();
  }

  #clearDeadline() {
    const d = this.#deadline;
    if (!d) return;
    this.#deadline = null;
    delayQueue(d.ms).cancel(d.fire);
    clearTimeout(d.timer);
  }

  setIdleTimeout(ms: number): void {
    this.#idleQueue?.cancel(this.#onIdle);
    this.#idleMs = ms;
    this.#idleQueue = ms > 0 ? delayQueue(ms) : null;
    this.#touch();
  }

  setDeadline(ms: number, options: DeadlineOptions = {}): void {
    this.#clearDeadline();
    if (ms <= 0 || this.#closed || this.#ended) return;
    const d: Deadline = {
      ms,
      rate: options.minBytesPerSecond ?? 0,
      at: 0,
      bytes: 0,
      passed: false,
      timer: undefined,
      fire: () => this.#deadlineDue(d),
    };
    this.#deadline = d;
    if (!options.fromInput || this.#buffered > 0) this.#startDeadline(d);
  }

  #startDeadline(d: Deadline) {
    d.at = performance.now() + d.ms;
    // The first wait in the queue shared by every deadline of `ms` (most commands end in it).
    delayQueue(d.ms).schedule(d.fire);
  }

  /** The deadline's time came: moved on by the input since, or passed. */
  #deadlineDue(d: Deadline) {
    if (this.#deadline !== d) return;
    d.timer = undefined;
    if (d.rate > 0 && d.bytes > 0) {
      const now = performance.now();
      const next = movedDeadline(d.at, d.bytes, d.rate, d.ms, now);
      d.at = next;
      d.bytes = 0;
      if (next > now) {
        d.timer = setTimeout(d.fire, next - now);
        return;
      }
    }
    // A read waiting for input fails now; otherwise the session is at work (verifying a
    // password, storing a message): the next read fails, unless the session moves on first.
    if (this.#waiter) {
      this.#deadline = null;
      this.#expire(new DeadlineError());
    } else d.passed = true;
  }

  /** A deadline that passed while no read waited: reads fail from now on. */
  #deadlinePassed() {
    if (!this.#deadline?.passed) return;
    this.#deadline = null;
    this.#expire(new DeadlineError());
  }

  /** At the start of a read: a deadline that passed meanwhile fails it. */
  #checkDeadline() {
    if (!this.#deadline?.passed) return;
    this.#deadlinePassed();
    this.#checkIdle();
  }

  setReadAhead(bytes = HIGH_WATER): void {
    this.#readAhead = bytes;
    this.#flow();
  }

  /**
   * Until input comes or the stream ends; callers then call #checkIdle(). Not an async function:
   * an idle session waits here for hours, and a suspended async frame costs about 400 bytes.
   */
  #wait(): Promise<void> | undefined {
    this.#flow();
    this.#deadlinePassed();
    if (this.#ended) return undefined;
    return new Promise<void>((resolve) => (this.#waiter = resolve));
  }

  #checkIdle() {
    if (this.#error instanceof IdleTimeoutError) throw this.#error;
  }

  /** The next n buffered bytes: a view when they lie in one chunk, unless `copy`. */
  #take(n: number, copy = false): Uint8Array {
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.length >= n) {
      out = copy ? first.slice(0, n) : first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
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
    let discarded = -1; // ≥ 0 while dropping an overlong line
    let head = new Uint8Array(0); // its first bytes, for the error
    const tooLong = (fatal = false) => new LineTooLongError(maxBytes, fatal, head);
    this.#checkDeadline();
    while (true) {
      const i = this.#indexOfLf(discarded >= 0 ? Infinity : maxBytes + 2);
      if (i >= 0) {
        const raw = this.#take(i + 1);
        if (discarded >= 0) throw tooLong();
        let end = raw.length - 1;
        if (end > 0 && raw[end - 1] === 13) end--;
        if (end > maxBytes) {
          head = raw.slice(0, LINE_HEAD_BYTES);
          throw tooLong();
        }
        return raw.subarray(0, end);
      }
      if (this.#buffered > maxBytes + 2) {
        // Too long: drop it up to its line feed (which may already be buffered; the next
        // command must stay intact), but a line that goes on and on (a decompression bomb, a
        // stream of junk) ends the connection.
        const end = this.#indexOfLf(Infinity);
        if (end >= 0) {
          const dropped = this.#take(end + 1);
          if (discarded < 0) head = dropped.slice(0, LINE_HEAD_BYTES);
          throw tooLong();
        }
        const dropped = this.#take(this.#buffered);
        if (discarded < 0) head = dropped.slice(0, LINE_HEAD_BYTES);
        discarded = Math.max(discarded, 0) + dropped.length;
        if (discarded > DISCARD_LIMIT) throw tooLong(true);
      }
      if (this.#ended && this.#chunks.length === 0) {
        if (discarded >= 0) throw tooLong();
        // Ended by the idle limit before this read began (whenLine saw it): as when it waited.
        this.#checkIdle();
        return null;
      }
      if (this.#ended) {
        // A last line without its line end was cut off (a phone's network went away inside
        // it): what arrived is not the command the client sent, and must not be run as one.
        this.#take(this.#buffered);
        if (discarded >= 0) throw tooLong();
        // Or the idle limit or the deadline ended the input in it (a trickled line).
        this.#checkIdle();
        throw new ConnectionClosedError("Connection closed in the middle of a line");
      }
      await this.#wait();
      this.#checkIdle();
    }
  }

  whenLine(maxBytes: number, ready: (() => void) | null): void {
    if (!ready) {
      this.#waiter = null;
      return;
    }
    this.#deadlinePassed();
    const check = () => {
      if (this.#ended || this.#buffered > maxBytes + 2 || this.#indexOfLf(maxBytes + 2) >= 0) {
        this.#waiter = null;
        return ready();
      }
      this.#flow();
      this.#waiter = check;
    };
    this.#waiter = check;
    queueMicrotask(() => {
      if (this.#waiter === check) check();
    });
  }

  async readExact(n: number): Promise<Uint8Array | null> {
    this.#checkDeadline();
    // Nothing to take (an empty literal): the buffer may hold no chunk at all.
    if (n === 0) return new Uint8Array(0);
    try {
      while (this.#buffered < n) {
        if (this.#ended) return null;
        this.#wanted = n;
        await this.#wait();
        this.#checkIdle();
      }
    } finally {
      this.#wanted = 0;
    }
    // A copy: a view would keep the whole socket chunk behind it alive.
    const out = this.#take(n, true);
    this.#flow();
    return out;
  }

  async readExactChunks(
    n: number,
    onChunk: (chunk: Uint8Array) => void | Promise<void>,
  ): Promise<boolean> {
    this.#checkDeadline();
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0) {
        if (this.#ended) return false;
        await this.#wait();
        this.#checkIdle();
        continue;
      }
      const piece = this.#take(Math.min(left, this.#chunks[0].length));
      left -= piece.length;
      this.#flow();
      await onChunk(piece);
    }
    return true;
  }

  async readChunk(): Promise<Uint8Array | null> {
    this.#checkDeadline();
    while (this.#buffered === 0) {
      if (this.#ended) return null;
      await this.#wait();
      this.#checkIdle();
    }
    const c = this.#chunks.shift()!;
    this.#buffered -= c.length;
    this.#flow();
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

  // ---- output ------------------------------------------------------------------------------

  write(data: string | Uint8Array): Promise<void> {
    if (this.#closed || this.#current().destroyed) {
      return Promise.reject(new ConnectionClosedError());
    }
    this.#touch();
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (this.#deflate) return this.#deflate.write(bytes);
    return this.#send(bytes);
  }

  /** One write to the socket; resolves at once, or once the socket drained when it is full. */
  #send(bytes: Uint8Array): Promise<void> {
    const s = this.#current();
    if (s.destroyed || !s.writable) return Promise.reject(new ConnectionClosedError());
    if (this.#session) {
      try {
        bytes = this.#session.seal(bytes);
      } catch (err) {
        // The session failed or was closed: nothing more can be sent.
        return Promise.reject(new ConnectionClosedError("Connection closed", { cause: err }));
      }
    }
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      let full = false;
      let called = false;
      const accepted = s.write(bytes, (err) => {
        called = true;
        this.#pendingWrites?.delete(fail);
        if (err) reject(closedBy(err));
        else if (full) resolve();
      });
      if (accepted || called) return resolve();
      full = true;
      (this.#pendingWrites ??= new Set()).add(fail);
    });
  }

  #failWrites(e: Error = new ConnectionClosedError()) {
    if (!this.#pendingWrites) return;
    for (const fail of this.#pendingWrites) fail(e);
    this.#pendingWrites = null;
  }

  // ---- TLS and compression -----------------------------------------------------------------

  async startTls(goAhead: string): Promise<void> {
    if (this.#tls) throw new Error("Cannot start TLS: already active");
    const raw = this.#raw;
    raw.removeListener("data", SocketConnection.#onData);
    raw.removeListener("end", SocketConnection.#onEnd);
    // Deno 2.9: pause before writing the go-ahead, or the ClientHello can be lost.
    raw.pause();
    await this.#send(encoder.encode(goAhead));
    await this.#handshake();
  }

  /** Implicit TLS: the server side of the handshake, with a deadline; then reading starts. */
  acceptTls(): Promise<void> {
    if (this.#tls) return Promise.reject(new Error("Cannot start TLS: already active"));
    this.#raw.pause();
    return this.#handshake();
  }

  async #handshake(): Promise<void> {
    const context = this.#options.secureContext?.();
    if (!context) throw new Error("Cannot start TLS: no certificate configured");
    let ms = this.#options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS;
    const creds = this.#options.tls13?.();
    if (creds) {
      const started = performance.now();
      if (await this.#ownHandshake(creds, ms)) {
        // The raw socket flows already, into the engine.
        this.#socketPaused = false;
        this.#touch();
        return;
      }
      // Handed to node:tls: the same deadline, from the connection's first byte.
      ms = Math.max(1, ms - (performance.now() - started));
    }
    const t = new TLSSocket(this.#raw, { isServer: true, secureContext: context });
    this.#tls = t;
    owners.set(t, this);
    t.on("error", SocketConnection.#onError);
    t.on("close", SocketConnection.#onClose);
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The handshake's own listeners go once it is settled: left on an idle connection they
    // would keep this promise and its closures for the connection's life.
    let onError = (_e: Error) => {}, onClose = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new TlsHandshakeError("TLS handshake timed out")), ms);
        onError = (e: Error) => reject(new TlsHandshakeError(e.message, { cause: e }));
        onClose = () => reject(new ConnectionClosedError("Connection closed during TLS handshake"));
        handshaking.set(t, resolve);
        // One listener shared by every socket, left in place: removing a socket's only
        // "secure" listener (as once() does) deletes the key from its events object, which
        // V8 then keeps in dictionary mode, 450 bytes more for the connection's life.
        t.on("secure", secured);
        t.once("error", onError);
        t.once("close", onClose);
      });
    } catch (err) {
      this.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
      handshaking.delete(t);
      t.off("error", onError);
      t.off("close", onClose);
    }
    this.#socketPaused = false;
    t.on("data", SocketConnection.#onData);
    t.on("end", SocketConnection.#onEnd);
    this.#touch();
  }

  /**
   * tern's engine: reads the ClientHello off the raw socket; true once the engine has completed
   * the handshake, false when the client is node:tls's (its bytes are put back for it).
   */
  async #ownHandshake(creds: Tls13Credentials, ms: number): Promise<boolean> {
    const raw = this.#raw;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<boolean>((resolve, reject) => {
        timer = setTimeout(() => reject(new TlsHandshakeError("TLS handshake timed out")), ms);
        this.#own = {
          creds,
          hello: new Uint8Array(0),
          helloLength: 0,
          settle: (err, served) => err ? reject(err) : resolve(served === true),
        };
        raw.on("data", SocketConnection.#onData);
        raw.on("end", SocketConnection.#onEnd);
        raw.resume();
      });
    } catch (err) {
      // An engine's alert on its way out (the socket goes once it is sent, or at close()).
      if (!raw.writableEnded) this.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
      this.#own = null;
    }
  }

  /** Raw bytes under tern's engine: the ClientHello, then TLS records. */
  #fromTls(chunk: Uint8Array) {
    const raw = this.#raw;
    const own = this.#own;
    if (own?.hello) {
      const head = own.helloLength === 0 ? chunk : appendHello(own, chunk);
      const check = head.length > HELLO_LIMIT ? "fallback" : checkClientHello(head, own.creds).kind;
      if (check === "more") {
        if (own.helloLength === 0) appendHello(own, chunk);
        return;
      }
      own.hello = null;
      if (check === "fallback") {
        raw.pause();
        raw.off("data", SocketConnection.#onData);
        raw.off("end", SocketConnection.#onEnd);
        raw.unshift(head);
        own.settle(null, false);
        return;
      }
      this.#session = new Tls13ServerSession(own.creds);
      chunk = head;
    }
    // After a fatal alert or close(), what the peer still sends is not read.
    if (!this.#session || raw.writableEnded) return;
    let out;
    try {
      out = this.#session.receive(chunk);
    } catch (err) {
      // Not expected (receive() reports failures in its output): the connection cannot go on.
      own?.settle(new TlsHandshakeError((err as Error).message, { cause: err }));
      this.destroy();
      return;
    }
    if (out.error) {
      const alert = out.send.pop();
      for (const b of out.send) raw.write(b);
      // The alert, FIN, then the socket goes (at close() at the latest).
      if (alert) raw.end(alert);
      raw.destroySoon();
      own?.settle(new TlsHandshakeError(out.error.message, { cause: out.error }));
      this.#finish(null);
      this.#failWrites();
      return;
    }
    for (const b of out.send) raw.write(b);
    if (out.established) own?.settle(null, true);
    for (const d of out.data) this.#received(d);
    if (out.peerClosed) this.#finish(null);
  }

  async startCompression(goAhead: string): Promise<void> {
    await this.#send(encoder.encode(goAhead));
    const inflate = new InflateReader(
      (c) => this.#append(c),
      (e) => this.#finish(e),
      () => {
        this.#inflateBehind = false;
        this.#flow();
      },
    );
    const pending = this.#chunks.splice(0);
    this.#buffered = 0;
    this.#inflate = inflate;
    for (const c of pending) {
      if (!inflate.write(c)) this.#inflateBehind = true;
    }
    this.#flow();
    this.#deflate = new DeflateWriter((bytes) => this.#send(bytes));
  }

  // ---- end ---------------------------------------------------------------------------------

  /**
   * Sends what is pending and ends the connection; a peer that does not read or close within
   * END_GRACE_MS is dropped, so it cannot hold the slot.
   */
  async close(): Promise<void> {
    this.#stopIdle();
    if (this.#closed || this.#current().destroyed) {
      this.#closed = true;
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, END_GRACE_MS)));
    try {
      if (this.#deflate) await Promise.race([this.#deflate.settled(), late]);
      const s = this.#current();
      const gone = new Promise<void>((resolve) => s.once("close", () => resolve()));
      this.#end();
      await Promise.race([gone, late]);
    } finally {
      clearTimeout(timer);
      this.destroy();
    }
  }

  abort(): void {
    if (this.#closed) return;
    this.#stopIdle();
    this.#readAhead = 0;
    this.#flow();
    const s = this.#current();
    // FIN after the pending output; then the socket is dropped, whatever the peer does.
    this.#end(() => this.destroy());
    const timer = setTimeout(() => this.destroy(), END_GRACE_MS);
    s.once("close", () => clearTimeout(timer));
  }

  /** FIN after the pending output, and after a close_notify when tern's engine serves TLS. */
  #end(done?: () => void) {
    const s = this.#current();
    let notify: Uint8Array | null = null;
    if (this.#session && s.writable) {
      try {
        notify = this.#session.close();
      } catch {
        // Failed or closed already: no close_notify.
      }
    }
    if (notify) s.end(notify, done);
    else s.end(done);
  }

  /** Drops the connection at once (shutdown, abuse, failed handshake). */
  destroy(): void {
    this.#stopIdle();
    this.#inflate?.destroy();
    this.#deflate?.destroy();
    this.#tls?.destroy();
    this.#raw.destroy();
    this.#closed = true;
    this.#finish(null);
    this.#failWrites();
  }
}

/** Socket (raw, or node:tls's over it) → its connection, for the listeners all share. */
const owners = new WeakMap<Socket, SocketConnection>();

/** Sockets in their TLS handshake → what to call once it succeeded. */
const handshaking = new Map<TLSSocket, (value: void) => void>();

function secured(this: TLSSocket) {
  handshaking.get(this)?.();
}

/** Adds `chunk` to the ClientHello's bytes so far; returns them all (a view of the buffer). */
function appendHello(own: OwnHandshake, chunk: Uint8Array): Uint8Array {
  const n = own.helloLength + chunk.length;
  let buf = own.hello!;
  if (n > buf.length) {
    const next = new Uint8Array(Math.max(n, 2 * buf.length, 512));
    next.set(buf.subarray(0, own.helloLength));
    own.hello = buf = next;
  }
  buf.set(chunk, own.helloLength);
  own.helloLength = n;
  return buf.subarray(0, n);
}

/**
 * Drops node:net's cached copies of the socket's two addresses, which reading remoteAddress and
 * localPort made: this connection keeps what it needs of them, and the cache would keep two
 * objects and their strings for the connection's life (about 190 bytes of heap per connection,
 * heap snapshots of 1000 idle TLS IMAP sessions). node:net sets the same two properties to
 * undefined itself (its constructor does), so the socket's shape does not change; a later read
 * asks the handle again.
 */
function forgetAddresses(socket: Socket): void {
  const cached = socket as unknown as { _peername?: unknown; _sockname?: unknown };
  cached._peername = undefined;
  cached._sockname = undefined;
}

function closedBy(err: Error): ConnectionClosedError {
  const code = (err as { code?: string }).code;
  return new ConnectionClosedError(`Connection lost${code ? ` (${code})` : ""}`, { cause: err });
}
