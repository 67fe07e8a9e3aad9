// The two wire forms of relay frames after the HTTP upgrade: "iroh derp http" (a byte stream of
// type + u32 length + body) and "websocket" (one binary message per frame). Both read from a
// buffered connection, so a rate-limited session simply stops reading (TCP back-pressure).
// WebSocket pings are answered here: each costs a pong write, so they are capped per second (a
// client over the cap is closed with 1008), and their bytes and the pongs' count against the
// client's read rate with the next frame. Every write has the data path's deadline.

import {
  encodeRelayFrames,
  FrameError,
  MAX_CLIENT_FRAME_BYTES,
  RELAY_HEADER_BYTES,
} from "./frames.ts";
import type { OutFrame } from "./frames.ts";
import {
  CloseCode,
  Opcode,
  websocketClose,
  WebSocketError,
  websocketFrame,
  websocketHeaderBytes,
  WebSocketReader,
  writeWebSocketHeader,
} from "./websocket.ts";
import { TokenBucket } from "./token_bucket.ts";

/** WebSocket pings a client may send per second, and at once above that. No iroh client needs
 *  many (iroh keeps its connections alive with relay Ping frames); browsers send none. */
export const PINGS_PER_SECOND = 10;
export const PING_BURST = 20;
/** How long one write may wait for the peer to take it (iroh-relay 0.35: 2 s; phones get more). */
export const WRITE_TIMEOUT_MS = 5_000;

/** A write the peer did not take within its deadline (it does not read). */
export class WriteTimeoutError extends Error {
  constructor(what: string) {
    super(`Cannot write ${what}: the peer took nothing within the write deadline`);
    this.name = "WriteTimeoutError";
  }
}

export type RelayProtocol = "relay" | "websocket";

/** What a relay session needs of its connection (src/net Connection fits). */
export interface RelayConnection {
  readonly remoteAddress: string;
  readExact(n: number): Promise<Uint8Array | null>;
  /** Whatever is buffered, or the next chunk; null at end of stream. */
  readChunk(): Promise<Uint8Array | null>;
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface WireFrame {
  type: number;
  body: Uint8Array;
  /** Bytes the frame took on the wire (for the rate limit), with the WebSocket pings read and
   *  pongs written since the previous frame. */
  wireBytes: number;
}

export interface FrameTransport {
  readonly protocol: RelayProtocol;
  /** The next frame; null at the end of the stream. Throws on malformed or oversized input. */
  read(): Promise<WireFrame | null>;
  /** Frames in wire form, in one buffer. */
  encode(frames: OutFrame[]): Uint8Array;
  /**
   * Bytes to send before closing (a WebSocket close frame), if the form has any; `failure` is
   * why the session failed (its WebSocket close code, when it has one), null when it did not.
   */
  goodbye(failure: Error | null): Uint8Array | null;
}

/**
 * One write that must be taken within `ms`: "late" when the peer did not read it in time (the
 * write may still be pending; closing the connection ends it), "failed" when it cannot be sent.
 */
export async function writeWithin(
  conn: RelayConnection,
  bytes: Uint8Array,
  ms: number,
): Promise<"ok" | "late" | "failed"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), ms)));
  const written = conn.write(bytes).then(() => "ok" as const, () => "failed" as const);
  const outcome = await Promise.race([written, late]);
  clearTimeout(timer);
  return outcome;
}

export interface FrameTransportOptions {
  now?: () => number;
  /** The deadline of the transport's own writes (pongs, the close reply). */
  writeTimeoutMs?: number;
}

export function frameTransport(
  protocol: RelayProtocol,
  conn: RelayConnection,
  options: FrameTransportOptions = {},
): FrameTransport {
  return protocol === "relay" ? relayTransport(conn) : websocketTransport(conn, {
    now: options.now ?? Date.now,
    writeTimeoutMs: options.writeTimeoutMs ?? WRITE_TIMEOUT_MS,
  });
}

function relayTransport(conn: RelayConnection): FrameTransport {
  // Frames are cut out of the chunks the connection delivers: a frame that lies within one chunk
  // is a view of it (no copy; most frames), one that spans chunks is assembled.
  let chunk: Uint8Array = new Uint8Array(0);
  let off = 0;
  const take = async (n: number): Promise<Uint8Array | null> => {
    if (chunk.length - off >= n) {
      off += n;
      return chunk.subarray(off - n, off);
    }
    const out = new Uint8Array(n);
    let got = chunk.length - off;
    out.set(chunk.subarray(off));
    chunk = new Uint8Array(0);
    off = 0;
    while (got < n) {
      const c = await conn.readChunk();
      if (!c) return null;
      const k = Math.min(n - got, c.length);
      out.set(c.subarray(0, k), got);
      got += k;
      if (k < c.length) {
        chunk = c;
        off = k;
      }
    }
    return out;
  };
  return {
    protocol: "relay",
    async read() {
      const head = await take(RELAY_HEADER_BYTES);
      if (!head) return null;
      const length = new DataView(head.buffer, head.byteOffset, RELAY_HEADER_BYTES).getUint32(1);
      if (length > MAX_CLIENT_FRAME_BYTES) {
        throw new FrameError(`Cannot read frame: ${length} bytes is over the limit`);
      }
      const type = head[0];
      const body = length === 0 ? new Uint8Array(0) : await take(length);
      if (!body) return null;
      return { type, body, wireBytes: RELAY_HEADER_BYTES + length };
    },
    encode: encodeRelayFrames,
    goodbye: () => null,
  };
}

function websocketTransport(
  conn: RelayConnection,
  { now, writeTimeoutMs }: Required<FrameTransportOptions>,
): FrameTransport {
  const reader = new WebSocketReader(conn, 1 + MAX_CLIENT_FRAME_BYTES);
  // Counts pings, not bytes.
  const pings = new TokenBucket({ bytesPerSecond: PINGS_PER_SECOND, burstBytes: PING_BURST, now });
  let controlBytes = 0;
  return {
    protocol: "websocket",
    async read() {
      while (true) {
        const event = await reader.next();
        if (!event) return null;
        if (event.kind === "close") {
          // RFC 6455 §5.5.1: answer with a close frame; the session then ends (whether the
          // peer takes it or not).
          await writeWithin(conn, websocketClose(CloseCode.Normal), writeTimeoutMs);
          return null;
        }
        if (event.kind === "ping") {
          if (pings.take(1) > 0) {
            throw new WebSocketError(CloseCode.PolicyViolation, "Too many pings");
          }
          const pong = websocketFrame(Opcode.Pong, event.data);
          controlBytes += websocketHeaderBytes(event.data.length) + 4 + event.data.length +
            pong.length;
          // With the data path's deadline: a peer that never reads would hold this read here.
          const written = await writeWithin(conn, pong, writeTimeoutMs);
          if (written === "late") throw new WriteTimeoutError("pong");
          if (written === "failed") throw new Error("Cannot write pong: connection lost");
          continue;
        }
        if (event.data.length === 0) throw new FrameError("Cannot read frame: empty message");
        const n = event.data.length;
        const wireBytes = websocketHeaderBytes(n) + 4 + n + controlBytes;
        controlBytes = 0;
        return { type: event.data[0], body: event.data.subarray(1), wireBytes };
      }
    },
    encode(frames) {
      let n = 0;
      for (const f of frames) n += websocketHeaderBytes(1 + f.length) + 1 + f.length;
      const out = new Uint8Array(n);
      let off = 0;
      for (const f of frames) {
        off = writeWebSocketHeader(out, off, Opcode.Binary, 1 + f.length);
        out[off++] = f.type;
        for (const p of f.parts) {
          out.set(p, off);
          off += p.length;
        }
      }
      return out;
    },
    goodbye: (failure) =>
      websocketClose(
        failure === null
          ? CloseCode.GoingAway
          : failure instanceof WebSocketError
          ? failure.closeCode
          : CloseCode.ProtocolError,
      ),
  };
}
