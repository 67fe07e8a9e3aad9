// The embedded iroh relay (iroh-relay 0.35 protocol v3): takes over HTTP connections that ask for
// GET /relay with `Upgrade: iroh derp http` or `Upgrade: websocket`, authenticates each client by
// the signature in its ClientInfo frame, and forwards SendPacket frames to the client holding the
// destination key. Caps on clients (in all and per client address), a per-client read rate,
// bounded per-client send queues and strict framing keep one client from exhausting the server; a
// bad client loses only its own connection.

import type { Logger } from "../log/mod.ts";
import { silentLogger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import { HandshakeError, verifyClientInfo } from "./client_info.ts";
import { decodeClientFrame, FrameError, healthFrame, isDiscoPacket } from "./frames.ts";
import { peerGoneFrame, recvPacketFrame, restartingFrame } from "./frames.ts";
import { frameTransport, WRITE_TIMEOUT_MS } from "./frame_transport.ts";
import type { FrameTransport, RelayConnection, RelayProtocol } from "./frame_transport.ts";
import { keyHex, keyId, RelayClient } from "./relay_client.ts";
import type { ClientHost, ClientTimings, EndReason } from "./relay_client.ts";
import { ByteBudget } from "./send_queue.ts";
import type { SendQueueLimits } from "./send_queue.ts";
import { websocketAccept } from "./websocket.ts";
import { limitKey } from "../net/mod.ts";

export const RELAY_PATH = "/relay";
/** Older clients connected here; iroh-relay still accepts it. */
export const LEGACY_RELAY_PATH = "/derp";
const RELAY_UPGRADE = "iroh derp http";

/** The first request head of an HTTP/1.1 connection, as the HTTP listener read it. */
export interface UpgradeRequest {
  method: string;
  /** Path without the query. */
  path: string;
  headers: { get(name: string): string | null };
}

export type IrohMetrics = Pick<
  RelayMetrics,
  | "irohClients"
  | "irohSessions"
  | "irohRelayedPackets"
  | "irohRelayedBytes"
  | "irohReceivedBytes"
  | "irohDropped"
  | "irohRateLimited"
>;

export interface IrohRelayOptions {
  /** Read at every upgrade and keep-alive: false refuses new clients and ends running ones. */
  enabled: () => boolean;
  /** Connected clients (and handshakes in progress) at most; more get 503. Default 1000. */
  maxClients?: number;
  /**
   * Per client address (IPv6: per /64), connected clients and handshakes in progress at most;
   * more get 429. Default 100.
   */
  maxClientsPerIp?: number;
  /** Per client address, upgraded connections that have not sent ClientInfo yet; more get 429.
   *  Default 10. */
  maxHandshakesPerIp?: number;
  /** Per client, bytes per second read from it (0: unlimited). Default 2 MiB/s. */
  clientBytesPerSecond?: number;
  /** Per client, bytes it may send at once above the rate. Default 4 MiB. */
  clientBurstBytes?: number;
  /** Time to send ClientInfo after the upgrade. Default 10 s (iroh). */
  handshakeTimeoutMs?: number;
  timings?: Partial<ClientTimings>;
  queueLimits?: SendQueueLimits;
  /** Bytes queued for all clients together at most; beyond it packets are dropped. 64 MiB. */
  maxQueuedBytes?: number;
  metrics?: IrohMetrics;
  log?: Logger;
  now?: () => number;
}

export const DEFAULT_TIMINGS: ClientTimings = {
  // iroh-relay 0.35: a ping after 15 s (+1–5 s) without a frame, 5 s for the pong, 2 s per
  // write. Writes get more here: phones on slow links stall longer, and the queue stays bounded.
  pingIntervalMs: 15_000,
  pingJitterMs: 5_000,
  pongTimeoutMs: 5_000,
  writeTimeoutMs: WRITE_TIMEOUT_MS,
};

/** The upgrade a request asks for; null when it is no relay upgrade (HTTP serves it). */
export function relayUpgradeOf(req: UpgradeRequest): RelayProtocol | null {
  if (req.method !== "GET" || (req.path !== RELAY_PATH && req.path !== LEGACY_RELAY_PATH)) {
    return null;
  }
  const upgrade = req.headers.get("upgrade")?.trim().toLowerCase();
  if (upgrade === RELAY_UPGRADE) return "relay";
  if (upgrade === "websocket") return "websocket";
  return null;
}

export class IrohRelay {
  readonly #o: IrohRelayOptions;
  readonly #log: Logger;
  readonly #clients = new Map<string, RelayClient>();
  #handshakes = 0;
  /** Per limitKey() of the client address: upgraded connections, and those still handshaking. */
  readonly #perIp = new Map<string, { connections: number; handshakes: number }>();
  #closing = false;
  readonly #host: ClientHost;
  readonly #budget: ByteBudget;

  constructor(options: IrohRelayOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#budget = new ByteBudget(options.maxQueuedBytes ?? 64 * 1024 * 1024);
    const m = options.metrics;
    this.#host = {
      forward: (from, dst, packet) => this.#forward(from, dst, packet),
      dropped: (reason) => m?.irohDropped.inc({ reason }),
      relayed: (packets, bytes) => {
        m?.irohRelayedPackets.inc(undefined, packets);
        m?.irohRelayedBytes.inc(undefined, bytes);
      },
      rateLimited: () => m?.irohRateLimited.inc(),
      received: (bytes) => m?.irohReceivedBytes.inc(undefined, bytes),
      enabled: () => !this.#closing && options.enabled(),
    };
  }

  /** Connected clients. */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** Bytes queued for all clients now. */
  get queuedBytes(): number {
    return this.#budget.used;
  }

  /** Whether the HTTP listener should hand this connection over (see serve()). */
  accepts(req: UpgradeRequest): boolean {
    return !this.#closing && this.#o.enabled() && relayUpgradeOf(req) !== null;
  }

  /**
   * Answers the upgrade and runs the client until it leaves. `conn` has the request head
   * consumed; anything the client sent after it is still in its buffer.
   */
  async serve(conn: RelayConnection, req: UpgradeRequest, signal: AbortSignal): Promise<void> {
    const protocol = relayUpgradeOf(req);
    if (!protocol) return await refuse(conn, 400, "Bad Request", "not a relay upgrade");
    const max = this.#o.maxClients ?? 1000;
    if (this.#clients.size + this.#handshakes >= max || this.#closing) {
      this.#ended("full");
      return await refuse(conn, 503, "Service Unavailable", "relay full, try again later");
    }
    let head: string;
    if (protocol === "websocket") {
      const key = req.headers.get("sec-websocket-key")?.trim() ?? "";
      const version = req.headers.get("sec-websocket-version")?.trim();
      if (!/^[A-Za-z0-9+/]{22}==$/.test(key) || version !== "13") {
        return await refuse(
          conn,
          400,
          "Bad Request",
          "bad WebSocket upgrade",
          "Sec-WebSocket-Version: 13\r\n",
        );
      }
      head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`;
    } else {
      head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${RELAY_UPGRADE}\r\n` +
        "Connection: Upgrade\r\n\r\n";
    }
    const ip = limitKey(conn.remoteAddress);
    const mine = this.#perIp.get(ip) ?? { connections: 0, handshakes: 0 };
    if (
      mine.connections >= (this.#o.maxClientsPerIp ?? 100) ||
      mine.handshakes >= (this.#o.maxHandshakesPerIp ?? 10)
    ) {
      this.#ended("ip_limit");
      return await refuse(
        conn,
        429,
        "Too Many Requests",
        "too many relay connections from your address",
        "Retry-After: 10\r\n",
      );
    }
    // Held from here until the connection ends, whichever way.
    mine.connections++;
    mine.handshakes++;
    this.#perIp.set(ip, mine);
    try {
      await this.#serveUpgraded(conn, protocol, head, signal, mine);
    } finally {
      mine.connections--;
      if (mine.connections === 0) this.#perIp.delete(ip);
    }
  }

  async #serveUpgraded(
    conn: RelayConnection,
    protocol: RelayProtocol,
    head: string,
    signal: AbortSignal,
    mine: { handshakes: number },
  ): Promise<void> {
    this.#handshakes++;
    let client: RelayClient;
    try {
      await conn.write(new TextEncoder().encode(head));
      const transport = frameTransport(protocol, conn, {
        now: this.#o.now,
        writeTimeoutMs: this.#o.timings?.writeTimeoutMs ?? DEFAULT_TIMINGS.writeTimeoutMs,
      });
      const key = await this.#handshake(conn, transport);
      if (!key) return;
      client = new RelayClient({
        key,
        conn,
        transport,
        host: this.#host,
        timings: { ...DEFAULT_TIMINGS, ...this.#o.timings },
        rate: {
          bytesPerSecond: this.#o.clientBytesPerSecond ?? 2 * 1024 * 1024,
          burstBytes: this.#o.clientBurstBytes ?? 4 * 1024 * 1024,
        },
        queueLimits: this.#o.queueLimits,
        budget: this.#budget,
        now: this.#o.now,
      });
    } catch (err) {
      this.#log.debug("iroh relay: upgrade failed", { err: (err as Error).message });
      await conn.close().catch(() => {});
      return;
    } finally {
      this.#handshakes--;
      mine.handshakes--;
    }
    await this.#run(client, signal);
  }

  /** Ends every session when the relay was switched off (clients learn why in a Health frame). */
  disconnectAll(): void {
    for (const c of this.#clients.values()) c.stop("disabled", healthFrame("relay disabled"));
  }

  /** Ends every session with a Restarting notice (clients reconnect after a second). */
  close(): void {
    this.#closing = true;
    for (const c of this.#clients.values()) c.stop("shutdown", restartingFrame(1000, 30_000));
  }

  /** Reads and checks ClientInfo within the deadline; null (connection closed) when it fails. */
  async #handshake(conn: RelayConnection, transport: FrameTransport): Promise<Uint8Array | null> {
    const timeoutMs = this.#o.handshakeTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const deadline = new Promise<null>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve(null);
      }, timeoutMs);
    });
    const first = transport.read();
    first.catch(() => {}); // settles after the close below when the deadline passes first
    let failure: string;
    try {
      const wire = await Promise.race([first, deadline]);
      if (!wire) {
        failure = timedOut ? "handshake_timeout" : "closed";
      } else {
        const frame = decodeClientFrame(wire.type, wire.body);
        if (frame.type !== "clientInfo") throw new FrameError("Expected ClientInfo");
        await verifyClientInfo(frame);
        clearTimeout(timer);
        return frame.key;
      }
    } catch (err) {
      if (err instanceof HandshakeError) {
        failure = err.reason;
        // iroh tells a refused client why before closing (a Health frame).
        const bytes = transport.encode([healthFrame(err.message)]);
        await Promise.race([conn.write(bytes).catch(() => {}), deadline]);
      } else {
        failure = "bad_frame";
        // A WebSocket client learns why in the close frame (1008 for a ping flood).
        const bye = transport.goodbye(err as Error);
        if (bye) await Promise.race([conn.write(bye).catch(() => {}), deadline]);
      }
    }
    clearTimeout(timer);
    this.#ended(failure);
    await conn.close().catch(() => {});
    await first.catch(() => null);
    return null;
  }

  async #run(client: RelayClient, signal: AbortSignal) {
    const m = this.#o.metrics;
    const protocol = { protocol: client.protocol };
    this.#clients.get(client.id)?.stop("replaced");
    this.#clients.set(client.id, client);
    m?.irohClients.inc(protocol);
    const onAbort = () => client.stop("shutdown", restartingFrame(1000, 30_000));
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted || this.#closing) onAbort();
    this.#log.debug("iroh relay: client connected", {
      key: keyHex(client.key),
      protocol: client.protocol,
      remote: client.remoteAddress,
    });
    const running = client.run();
    // Unregistered as soon as it stops: nothing is queued for it while its connection closes.
    const reason: EndReason = await client.stopped;
    signal.removeEventListener("abort", onAbort);
    if (this.#clients.get(client.id) === client) this.#clients.delete(client.id);
    m?.irohClients.dec(protocol);
    this.#ended(reason);
    // Peers this client sent to learn that it is gone (they may drop its reverse path).
    for (const id of client.sentTo) {
      const peer = this.#clients.get(id);
      if (peer && !peer.enqueue(peerGoneFrame(client.key), "control")) {
        m?.irohDropped.inc({ reason: "control_full" });
      }
    }
    this.#log.debug("iroh relay: client left", { key: keyHex(client.key), reason });
    await running;
  }

  #forward(from: RelayClient, dst: Uint8Array, packet: Uint8Array) {
    const m = this.#o.metrics;
    const id = keyId(dst);
    const to = this.#clients.get(id);
    if (!to) {
      m?.irohDropped.inc({ reason: "no_peer" });
      return;
    }
    const lane = isDiscoPacket(packet) ? "disco" : "data";
    // A packet may be a view into a larger read buffer: copied when it would keep much more
    // memory alive than the queue accounts for.
    const own = packet.byteLength * 4 < packet.buffer.byteLength ? packet.slice() : packet;
    if (!to.enqueue(recvPacketFrame(from.key, own), lane)) {
      m?.irohDropped.inc({ reason: "queue_full" });
      return;
    }
    from.noteSentTo(id);
  }

  #ended(reason: string) {
    this.#o.metrics?.irohSessions.inc({ outcome: reason });
  }
}

/** Answers the upgrade request with an error (a JSON body saying why) and closes. */
async function refuse(
  conn: RelayConnection,
  status: number,
  text: string,
  message: string,
  extra = "",
) {
  const body = JSON.stringify({ error: message });
  const head = `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${body.length}\r\nConnection: close\r\n${extra}\r\n${body}`;
  await conn.write(new TextEncoder().encode(head)).catch(() => {});
  await conn.close().catch(() => {});
}
