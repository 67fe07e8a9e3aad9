// The frames of the iroh relay protocol, version 3 (iroh-relay 0.35): one type byte and a body.
// Over the "iroh derp http" upgrade a frame is the type, a big-endian u32 body length and the
// body; over WebSocket one binary message is the type and the body. Pure: no I/O.

/** Frame type bytes (iroh-relay 0.35 `FrameType`); 9–11 were DERP meshing, gone in v3. */
export const FrameType = {
  ClientInfo: 2,
  SendPacket: 4,
  RecvPacket: 5,
  KeepAlive: 6,
  NotePreferred: 7,
  PeerGone: 8,
  Ping: 12,
  Pong: 13,
  Health: 14,
  Restarting: 15,
} as const;
export type FrameTypeByte = (typeof FrameType)[keyof typeof FrameType];

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
/** Largest datagram a client may hand the relay (iroh MAX_PACKET_SIZE). */
export const MAX_PACKET_BYTES = 64 * 1024;
/**
 * Largest frame body the relay reads from a client. iroh's framing allows 1 MiB, but every frame
 * a client may send and the relay keeps is at most a SendPacket (key + 64 KiB); a longer one would
 * be refused after it was buffered, so it is refused from its header instead.
 */
export const MAX_CLIENT_FRAME_BYTES = KEY_BYTES + MAX_PACKET_BYTES;
/** "iroh derp http" frame header: type byte + u32 length. */
export const RELAY_HEADER_BYTES = 5;
/** Magic at the start of a ClientInfo body: "RELAY🔑" in UTF-8. */
export const CLIENT_INFO_MAGIC = new TextEncoder().encode("RELAY\u{1F511}");
/** Magic at the start of a disco (hole-punching) datagram: "TS💬" in UTF-8. */
const DISCO_MAGIC = new TextEncoder().encode("TS\u{1F4AC}");

/** A frame as the relay receives it from a client, after validation of its shape. */
export type ClientFrame =
  | { type: "clientInfo"; key: Uint8Array; signature: Uint8Array; message: Uint8Array }
  | { type: "sendPacket"; dst: Uint8Array; packet: Uint8Array }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "notePreferred"; preferred: boolean }
  | { type: "keepAlive" }
  | { type: "health"; problem: Uint8Array }
  /** Server-to-client types sent by a client: well-formed, ignored (iroh counts them). */
  | { type: "ignored"; typeByte: number };

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

function expectLength(name: string, body: Uint8Array, n: number) {
  if (body.length !== n) {
    throw new FrameError(`Cannot read ${name} frame: expected ${n} bytes, got ${body.length}`);
  }
}

/**
 * Validates one frame body by its type byte. Unknown type bytes and malformed bodies throw
 * FrameError: iroh closes the connection on them, and so does the relay.
 */
export function decodeClientFrame(typeByte: number, body: Uint8Array): ClientFrame {
  switch (typeByte) {
    case FrameType.ClientInfo: {
      const fixed = CLIENT_INFO_MAGIC.length + KEY_BYTES + SIGNATURE_BYTES;
      if (body.length < fixed) {
        throw new FrameError(`Cannot read ClientInfo frame: ${body.length} bytes is too short`);
      }
      for (let i = 0; i < CLIENT_INFO_MAGIC.length; i++) {
        if (body[i] !== CLIENT_INFO_MAGIC[i]) {
          throw new FrameError("Cannot read ClientInfo frame: wrong magic");
        }
      }
      const k = CLIENT_INFO_MAGIC.length;
      return {
        type: "clientInfo",
        key: body.subarray(k, k + KEY_BYTES),
        signature: body.subarray(k + KEY_BYTES, fixed),
        message: body.subarray(fixed),
      };
    }
    case FrameType.SendPacket:
      if (body.length < KEY_BYTES) {
        throw new FrameError(`Cannot read SendPacket frame: ${body.length} bytes is too short`);
      }
      if (body.length - KEY_BYTES > MAX_PACKET_BYTES) {
        throw new FrameError(`Cannot read SendPacket frame: packet over ${MAX_PACKET_BYTES} bytes`);
      }
      return {
        type: "sendPacket",
        dst: body.subarray(0, KEY_BYTES),
        packet: body.subarray(KEY_BYTES),
      };
    case FrameType.Ping:
      expectLength("Ping", body, 8);
      return { type: "ping", data: body };
    case FrameType.Pong:
      expectLength("Pong", body, 8);
      return { type: "pong", data: body };
    case FrameType.NotePreferred:
      expectLength("NotePreferred", body, 1);
      if (body[0] > 1) throw new FrameError("Cannot read NotePreferred frame: value not 0 or 1");
      return { type: "notePreferred", preferred: body[0] === 1 };
    case FrameType.KeepAlive:
      expectLength("KeepAlive", body, 0);
      return { type: "keepAlive" };
    case FrameType.Health:
      return { type: "health", problem: body };
    case FrameType.RecvPacket:
      if (body.length < KEY_BYTES) {
        throw new FrameError(`Cannot read RecvPacket frame: ${body.length} bytes is too short`);
      }
      return { type: "ignored", typeByte };
    case FrameType.PeerGone:
      expectLength("PeerGone", body, KEY_BYTES);
      return { type: "ignored", typeByte };
    case FrameType.Restarting:
      expectLength("Restarting", body, 8);
      return { type: "ignored", typeByte };
    default:
      throw new FrameError(`Cannot read frame: unknown type ${typeByte}`);
  }
}

/** A frame the relay sends, as its type byte and body parts (joined when encoded). */
export interface OutFrame {
  type: FrameTypeByte;
  parts: Uint8Array[];
  /** Body length: the sum of the parts. */
  length: number;
}

export function recvPacketFrame(src: Uint8Array, packet: Uint8Array): OutFrame {
  return { type: FrameType.RecvPacket, parts: [src, packet], length: src.length + packet.length };
}

export function peerGoneFrame(key: Uint8Array): OutFrame {
  return { type: FrameType.PeerGone, parts: [key], length: key.length };
}

export function pingFrame(data: Uint8Array): OutFrame {
  return { type: FrameType.Ping, parts: [data], length: 8 };
}

export function pongFrame(data: Uint8Array): OutFrame {
  return { type: FrameType.Pong, parts: [data], length: 8 };
}

export function healthFrame(problem: string): OutFrame {
  const body = new TextEncoder().encode(problem);
  return { type: FrameType.Health, parts: [body], length: body.length };
}

/** Both durations in milliseconds, as big-endian u32. */
export function restartingFrame(reconnectInMs: number, tryForMs: number): OutFrame {
  const body = new Uint8Array(8);
  const view = new DataView(body.buffer);
  view.setUint32(0, reconnectInMs);
  view.setUint32(4, tryForMs);
  return { type: FrameType.Restarting, parts: [body], length: 8 };
}

/** Frames a client sends (the test client and fuzzing use these). */
export function clientFrame(type: number, ...parts: Uint8Array[]): OutFrame {
  return {
    type: type as FrameTypeByte,
    parts,
    length: parts.reduce((n, p) => n + p.length, 0),
  };
}

/** Bytes of a frame on the "iroh derp http" stream. */
export function relayEncodedLength(f: OutFrame): number {
  return RELAY_HEADER_BYTES + f.length;
}

/** Writes frames back to back in "iroh derp http" framing. */
export function encodeRelayFrames(frames: OutFrame[]): Uint8Array {
  let n = 0;
  for (const f of frames) n += RELAY_HEADER_BYTES + f.length;
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const f of frames) {
    out[off] = f.type;
    view.setUint32(off + 1, f.length);
    off += RELAY_HEADER_BYTES;
    for (const p of f.parts) {
      out.set(p, off);
      off += p.length;
    }
  }
  return out;
}

/** One frame as the payload of a WebSocket binary message: type byte, then the body. */
export function encodeFrameMessage(f: OutFrame): Uint8Array {
  const out = new Uint8Array(1 + f.length);
  out[0] = f.type;
  let off = 1;
  for (const p of f.parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** iroh prioritises disco datagrams (hole punching) over data: recognised by their magic. */
export function isDiscoPacket(packet: Uint8Array): boolean {
  if (packet.length < DISCO_MAGIC.length + KEY_BYTES) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (packet[i] !== DISCO_MAGIC[i]) return false;
  return true;
}
