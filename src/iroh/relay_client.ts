// One connected, authenticated relay client: a read loop (rate-limited, forwarding SendPacket
// frames through the relay), a write loop draining its bounded send queue, and the keep-alive:
// after pingIntervalMs (plus jitter) without a frame from the client the relay sends a Ping and
// drops the client when no Pong comes back within pongTimeoutMs (iroh-relay 0.35 does the same).

import { setImmediate } from "node:timers";
import { FrameError, healthFrame, pingFrame, pongFrame } from "./frames.ts";
import type { ClientFrame, OutFrame } from "./frames.ts";
import { decodeClientFrame } from "./frames.ts";
import {
  type FrameTransport,
  PING_BURST,
  PINGS_PER_SECOND,
  type RelayConnection,
  WriteTimeoutError,
  writeWithin,
} from "./frame_transport.ts";
import { SendQueue } from "./send_queue.ts";
import type { ByteBudget, Lane, SendQueueLimits } from "./send_queue.ts";
import { TokenBucket } from "./token_bucket.ts";
import { CloseCode, WebSocketError } from "./websocket.ts";

/** Why a session ended (a metric label, bounded). */
export type EndReason =
  | "closed"
  | "replaced"
  | "shutdown"
  | "disabled"
  | "pong_timeout"
  | "write_timeout"
  | "write_failed"
  | "bad_frame"
  | "client_health";

export interface ClientTimings {
  pingIntervalMs: number;
  /** Up to this much is added to each ping interval, so pings do not come in waves. */
  pingJitterMs: number;
  pongTimeoutMs: number;
  writeTimeoutMs: number;
}

/** What a client needs of the relay around it. */
export interface ClientHost {
  forward(from: RelayClient, dst: Uint8Array, packet: Uint8Array): void;
  /** Control frames (pongs) the client's queue could not take. */
  dropped(reason: "control_full"): void;
  relayed(packets: number, bytes: number): void;
  rateLimited(): void;
  received(bytes: number): void;
  enabled(): boolean;
}

export interface RelayClientOptions {
  key: Uint8Array;
  conn: RelayConnection;
  transport: FrameTransport;
  host: ClientHost;
  timings: ClientTimings;
  rate: { bytesPerSecond: number; burstBytes: number };
  queueLimits?: SendQueueLimits;
  /** Shared by all clients: bytes queued relay-wide. */
  budget?: ByteBudget;
  /** Peers this client sent to, remembered for PeerGone notices; bounded. */
  maxPeers?: number;
  now?: () => number;
}

const BATCH_BYTES = 64 * 1024;

export class RelayClient {
  readonly key: Uint8Array;
  /** The key as a map key (one char per byte). */
  readonly id: string;
  readonly #o: RelayClientOptions;
  readonly #queue: SendQueue;
  readonly #bucket: TokenBucket;
  /** The client's relay Ping frames, each answered with a Pong: capped as WebSocket pings. */
  readonly #pings: TokenBucket;
  readonly #now: () => number;
  readonly #sentTo = new Set<string>();
  #reason: EndReason | null = null;
  /** What made the session end with bad_frame (its WebSocket close code, if it has one). */
  #failure: Error | null = null;
  #farewell: OutFrame | null = null;
  #lastReceived: number;
  #ping: { data: Uint8Array; deadline: number } | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;
  /** Resolves with the reason as soon as the session is stopped (before the connection closes). */
  readonly stopped: Promise<EndReason>;
  #signalStopped!: (reason: EndReason) => void;

  constructor(options: RelayClientOptions) {
    this.#o = options;
    this.key = options.key.slice();
    this.id = keyId(this.key);
    this.#queue = new SendQueue(options.queueLimits, options.budget);
    this.#now = options.now ?? Date.now;
    this.#bucket = new TokenBucket({ ...options.rate, now: this.#now });
    this.#pings = new TokenBucket({
      bytesPerSecond: PINGS_PER_SECOND,
      burstBytes: PING_BURST,
      now: this.#now,
    });
    this.#lastReceived = this.#now();
    this.stopped = new Promise((r) => (this.#signalStopped = r));
  }

  get protocol() {
    return this.#o.transport.protocol;
  }

  get remoteAddress(): string {
    return this.#o.conn.remoteAddress;
  }

  /** Peers this client sent packets to. */
  get sentTo(): ReadonlySet<string> {
    return this.#sentTo;
  }

  noteSentTo(id: string): void {
    if (this.#sentTo.size < (this.#o.maxPeers ?? 4096)) this.#sentTo.add(id);
  }

  /** Queues a frame for this client; false when its lane is full (the frame is dropped). */
  enqueue(frame: OutFrame, lane: Lane): boolean {
    return this.#queue.push(frame, lane);
  }

  /** Ends the session; `farewell` (Health, Restarting) is written first when it can be. */
  stop(reason: EndReason, farewell?: OutFrame): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#farewell = farewell ?? null;
    this.#queue.close();
    clearTimeout(this.#timer);
    const w = this.#wake;
    this.#wake = null;
    w?.();
    this.#signalStopped(reason);
  }

  /** Runs until the connection ends or stop() is called; resolves with the reason. */
  async run(): Promise<EndReason> {
    this.#schedule(this.#o.timings.pingIntervalMs + this.#jitter());
    const writing = this.#writeLoop();
    const reading = this.#readLoop();
    // A read may be pending when the session is stopped from outside (replaced, shutdown):
    // it ends once #finish() has closed the connection.
    await Promise.race([reading, this.stopped]);
    await writing;
    await this.#finish();
    await reading;
    return this.#reason ?? "closed";
  }

  async #readLoop(): Promise<void> {
    const { transport, host } = this.#o;
    while (!this.#reason) {
      let wire;
      try {
        wire = await transport.read();
      } catch (err) {
        const bad = err instanceof FrameError || err instanceof WebSocketError;
        if (bad) this.#failure = err;
        this.stop(
          bad ? "bad_frame" : err instanceof WriteTimeoutError ? "write_timeout" : "closed",
        );
        return;
      }
      if (this.#reason) return;
      if (!wire) {
        this.stop("closed");
        return;
      }
      this.#lastReceived = this.#now();
      let frame: ClientFrame;
      try {
        frame = decodeClientFrame(wire.type, wire.body);
      } catch {
        this.stop("bad_frame");
        return;
      }
      this.#handle(frame);
      if (frame.type === "sendPacket") host.received(frame.packet.length);
      const waitMs = this.#bucket.take(wire.wireBytes);
      if (waitMs > 0) {
        host.rateLimited();
        await this.#sleep(waitMs);
      }
    }
  }

  #handle(frame: ClientFrame) {
    const { host } = this.#o;
    switch (frame.type) {
      case "sendPacket":
        host.forward(this, frame.dst, frame.packet);
        return;
      case "ping":
        if (this.#pings.take(1) > 0) {
          // Over the cap: closed as the WebSocket path closes a ping flood (1008 there).
          this.#failure = new WebSocketError(CloseCode.PolicyViolation, "Too many pings");
          this.stop("bad_frame");
          return;
        }
        if (!this.#queue.push(pongFrame(frame.data.slice()), "control")) {
          host.dropped("control_full");
        }
        return;
      case "pong":
        if (this.#ping && equal(this.#ping.data, frame.data)) {
          this.#ping = null;
          this.#schedule(this.#o.timings.pingIntervalMs + this.#jitter());
        }
        return;
      case "health":
        // A client has nothing to report to the relay; iroh ends the connection.
        this.stop("client_health");
        return;
      default:
        // NotePreferred, KeepAlive, a second ClientInfo and server-only frames: ignored.
        return;
    }
  }

  async #writeLoop(): Promise<void> {
    const { conn, transport, host, timings } = this.#o;
    while (true) {
      await this.#queue.wait();
      // One event-loop turn first: senders' reads finish forwarding what they hold, and it
      // leaves in one write instead of one system call per packet. (setImmediate: a 0 ms
      // setTimeout costs about 2 ms here.)
      await new Promise((r) => setImmediate(r));
      const batch = this.#queue.take(BATCH_BYTES);
      if (batch.frames.length === 0) return; // closed and drained
      if (this.#reason && this.#reason !== "closed") return; // stopping: skip the backlog
      const ok = await this.#write(conn, transport.encode(batch.frames), timings.writeTimeoutMs);
      if (!ok) return;
      if (batch.packets > 0) host.relayed(batch.packets, batch.packetBytes);
    }
  }

  async #write(conn: RelayConnection, bytes: Uint8Array, timeoutMs: number): Promise<boolean> {
    const outcome = await writeWithin(conn, bytes, timeoutMs);
    if (outcome === "ok") return true;
    this.stop(outcome === "late" ? "write_timeout" : "write_failed");
    return false;
  }

  /** Farewell frame and transport goodbye, bounded in time, then the connection closes. */
  async #finish(): Promise<void> {
    clearTimeout(this.#timer);
    this.#queue.clear();
    const { conn, transport, timings } = this.#o;
    const tail: Uint8Array[] = [];
    const reason = this.#reason;
    if (reason !== "write_timeout" && reason !== "write_failed") {
      if (this.#farewell) tail.push(transport.encode([this.#farewell]));
      const bye = transport.goodbye(
        reason === "bad_frame" ? this.#failure ?? new FrameError("Bad frame") : null,
      );
      if (bye) tail.push(bye);
    }
    for (const bytes of tail) {
      if (!(await this.#write(conn, bytes, Math.min(timings.writeTimeoutMs, 2000)))) break;
    }
    await conn.close().catch(() => {});
  }

  /** The keep-alive timer: checks the enabled switch, pings a quiet client, enforces the pong. */
  #schedule(ms: number) {
    clearTimeout(this.#timer);
    if (this.#reason) return;
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, ms));
  }

  #tick() {
    const { timings, host } = this.#o;
    if (!host.enabled()) {
      this.stop("disabled", healthFrame("relay disabled"));
      return;
    }
    const now = this.#now();
    if (this.#ping) {
      if (now >= this.#ping.deadline) this.stop("pong_timeout");
      else this.#schedule(this.#ping.deadline - now);
      return;
    }
    const quietFor = now - this.#lastReceived;
    if (quietFor < timings.pingIntervalMs) {
      this.#schedule(timings.pingIntervalMs - quietFor + this.#jitter());
      return;
    }
    const data = crypto.getRandomValues(new Uint8Array(8));
    if (this.#queue.push(pingFrame(data), "control")) {
      this.#ping = { data, deadline: now + timings.pongTimeoutMs };
    }
    this.#schedule(timings.pongTimeoutMs);
  }

  #jitter(): number {
    return Math.floor(Math.random() * this.#o.timings.pingJitterMs);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

export function keyId(key: Uint8Array): string {
  return String.fromCharCode(...key);
}

export function keyHex(key: Uint8Array, bytes = 5): string {
  return Array.from(key.subarray(0, bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
