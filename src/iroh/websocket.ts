// The server side of RFC 6455 WebSocket framing, for the relay's "websocket" upgrade: the
// accept key, reading masked client frames into whole messages with a size cap, and writing
// unmasked server frames. No extensions are negotiated, so RSV bits must be clear.

import { createHash } from "node:crypto";

const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** RFC 6455 §4.2.2: base64(SHA-1(key + GUID)). */
export function websocketAccept(key: string): string {
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

export const Opcode = {
  Continuation: 0,
  Text: 1,
  Binary: 2,
  Close: 8,
  Ping: 9,
  Pong: 10,
} as const;

/** RFC 6455 §7.4.1 status codes the relay sends. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  PolicyViolation: 1008,
  TooBig: 1009,
} as const;

export class WebSocketError extends Error {
  constructor(readonly closeCode: number, message: string) {
    super(message);
    this.name = "WebSocketError";
  }
}

/** Frames one message may come in. Clients send whole messages (iroh's tungstenite does); the
 *  bound keeps empty or tiny fragments, which the size cap barely counts, from piling up. */
export const MAX_FRAGMENTS = 64;

/** What the reader needs of a connection. */
export interface ByteSource {
  /** Exactly n bytes; null when the stream ends first. */
  readExact(n: number): Promise<Uint8Array | null>;
}

export type WebSocketEvent =
  | { kind: "binary"; data: Uint8Array }
  | { kind: "ping"; data: Uint8Array }
  | { kind: "close"; code: number | null };

/**
 * Reads client frames until a whole binary message, a ping or a close arrives; pongs are
 * skipped, and a control frame between the fragments of a message is returned without losing
 * them. next() is null at the end of the stream. Throws WebSocketError on protocol violations and
 * on messages over maxMessageBytes (checked from each frame header, before its payload is read).
 */
export class WebSocketReader {
  #src: ByteSource;
  #max: number;
  #parts: Uint8Array[] | null = null;
  #total = 0;

  constructor(src: ByteSource, maxMessageBytes: number) {
    this.#src = src;
    this.#max = maxMessageBytes;
  }

  async next(): Promise<WebSocketEvent | null> {
    const src = this.#src;
    while (true) {
      const head = await src.readExact(2);
      if (!head) return null;
      const fin = (head[0] & 0x80) !== 0;
      const opcode = head[0] & 0x0f;
      if (head[0] & 0x70) throw new WebSocketError(CloseCode.ProtocolError, "RSV bits set");
      if ((head[1] & 0x80) === 0) {
        throw new WebSocketError(CloseCode.ProtocolError, "Client frame not masked");
      }
      let length = head[1] & 0x7f;
      if (length === 126) {
        const ext = await src.readExact(2);
        if (!ext) return null;
        length = (ext[0] << 8) | ext[1];
      } else if (length === 127) {
        const ext = await src.readExact(8);
        if (!ext) return null;
        const view = new DataView(ext.buffer, ext.byteOffset, 8);
        if (view.getUint32(0) !== 0) {
          throw new WebSocketError(CloseCode.TooBig, "Frame length over 4 GiB");
        }
        length = view.getUint32(4);
      }
      const control = opcode >= 8;
      if (control && (!fin || length > 125)) {
        throw new WebSocketError(CloseCode.ProtocolError, "Malformed control frame");
      }
      if (!control && this.#total + length > this.#max) {
        throw new WebSocketError(CloseCode.TooBig, `Message over ${this.#max} bytes`);
      }
      const mask = await src.readExact(4);
      if (!mask) return null;
      const payload = length === 0 ? new Uint8Array(0) : await src.readExact(length);
      if (!payload) return null;
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      switch (opcode) {
        case Opcode.Ping:
          return { kind: "ping", data: payload };
        case Opcode.Pong:
          continue;
        case Opcode.Close:
          if (payload.length === 1) {
            throw new WebSocketError(CloseCode.ProtocolError, "Malformed close frame");
          }
          return {
            kind: "close",
            code: payload.length >= 2 ? (payload[0] << 8) | payload[1] : null,
          };
        case Opcode.Text:
          throw new WebSocketError(CloseCode.UnsupportedData, "Text messages are not relay frames");
        case Opcode.Binary:
          if (this.#parts) throw new WebSocketError(CloseCode.ProtocolError, "Message interrupted");
          this.#parts = [];
          break;
        case Opcode.Continuation:
          if (!this.#parts) {
            throw new WebSocketError(CloseCode.ProtocolError, "Continuation of nothing");
          }
          break;
        default:
          throw new WebSocketError(CloseCode.ProtocolError, `Unknown opcode ${opcode}`);
      }
      if (this.#parts.length >= MAX_FRAGMENTS) {
        throw new WebSocketError(
          CloseCode.PolicyViolation,
          `Message in over ${MAX_FRAGMENTS} fragments`,
        );
      }
      this.#parts.push(payload);
      this.#total += payload.length;
      if (fin) {
        const parts = this.#parts;
        const data = parts.length === 1 ? parts[0] : join(parts, this.#total);
        this.#parts = null;
        this.#total = 0;
        return { kind: "binary", data };
      }
    }
  }
}

function join(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Length of a server frame header for a payload of n bytes. */
export function websocketHeaderBytes(n: number): number {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

/** Writes an unmasked, final server frame header at `off`; returns the payload offset. */
export function writeWebSocketHeader(
  out: Uint8Array,
  off: number,
  opcode: number,
  n: number,
): number {
  out[off] = 0x80 | opcode;
  if (n < 126) {
    out[off + 1] = n;
    return off + 2;
  }
  if (n < 65536) {
    out[off + 1] = 126;
    out[off + 2] = n >> 8;
    out[off + 3] = n & 0xff;
    return off + 4;
  }
  out[off + 1] = 127;
  const view = new DataView(out.buffer, out.byteOffset + off + 2, 8);
  view.setUint32(0, 0);
  view.setUint32(4, n);
  return off + 10;
}

export function websocketFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(websocketHeaderBytes(payload.length) + payload.length);
  out.set(payload, writeWebSocketHeader(out, 0, opcode, payload.length));
  return out;
}

export function websocketClose(code: number): Uint8Array {
  return websocketFrame(Opcode.Close, Uint8Array.of(code >> 8, code & 0xff));
}
