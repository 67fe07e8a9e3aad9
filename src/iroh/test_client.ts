// A small iroh relay client (protocol v3) for tests and the benchmark: it performs the HTTP
// upgrade ("iroh derp http" or WebSocket), signs ClientInfo with a fresh Ed25519 key, sends
// packets and reads frames. It answers the relay's pings unless told not to.

import { clientInfoFrame } from "./client_info.ts";
import {
  clientFrame,
  encodeRelayFrames,
  FrameType,
  KEY_BYTES,
  RELAY_HEADER_BYTES,
} from "./frames.ts";
import type { OutFrame } from "./frames.ts";

export interface TestClientOptions {
  hostname: string;
  port: number;
  /** Connect with TLS, trusting these CA certificates (PEM). */
  caCerts?: string[];
  protocol?: "relay" | "websocket";
  path?: string;
  /** Answer Ping frames with Pong (default true). */
  answerPings?: boolean;
  /** Skip the ClientInfo frame (handshake tests send their own). */
  skipHandshake?: boolean;
  /** The endpoint key to use (default: a fresh one). */
  keys?: { publicKey: Uint8Array; privateKey: CryptoKey };
}

export interface Frame {
  type: number;
  body: Uint8Array;
}

export async function newKeys(): Promise<{ publicKey: Uint8Array; privateKey: CryptoKey }> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { publicKey, privateKey: pair.privateKey };
}

export class RelayTestClient {
  readonly publicKey: Uint8Array;
  /** The HTTP status line and headers the relay answered the upgrade with. */
  readonly response: string;
  readonly protocol: "relay" | "websocket";
  /** The status code of the relay's WebSocket close frame, once one came (null: none or empty). */
  closeCode: number | null = null;
  #conn: Deno.Conn;
  #buf: Uint8Array = new Uint8Array(0);
  #ended = false;
  #answerPings: boolean;
  #pending: { chunk: Uint8Array; read: Promise<number | null> } | null = null;

  private constructor(
    conn: Deno.Conn,
    publicKey: Uint8Array,
    response: string,
    protocol: "relay" | "websocket",
    rest: Uint8Array,
    answerPings: boolean,
  ) {
    this.#conn = conn;
    this.publicKey = publicKey;
    this.response = response;
    this.protocol = protocol;
    this.#buf = rest;
    this.#answerPings = answerPings;
  }

  /** Connects and upgrades; throws with the response when the relay does not switch protocols. */
  static async connect(options: TestClientOptions): Promise<RelayTestClient> {
    const keys = options.keys ?? await newKeys();
    const conn = options.caCerts
      ? await Deno.connectTls({
        hostname: options.hostname,
        port: options.port,
        caCerts: options.caCerts,
      })
      : await Deno.connect({ hostname: options.hostname, port: options.port });
    try {
      const protocol = options.protocol ?? "relay";
      const upgrade = protocol === "relay"
        ? "Upgrade: iroh derp http\r\n"
        : "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
      await writeAll(
        conn,
        new TextEncoder().encode(
          `GET ${options.path ?? "/relay"} HTTP/1.1\r\nHost: ${options.hostname}\r\n${upgrade}\r\n`,
        ),
      );
      const { head, rest } = await readResponseHead(conn);
      if (!head.startsWith("HTTP/1.1 101 ")) {
        throw new Error(`Relay refused the upgrade: ${head.split("\r\n")[0]}`);
      }
      const client = new RelayTestClient(
        conn,
        keys.publicKey,
        head,
        protocol,
        rest,
        options.answerPings ?? true,
      );
      if (!options.skipHandshake) await client.sendFrame(await clientInfoFrame(keys));
      return client;
    } catch (err) {
      try {
        conn.close();
      } catch {
        // closed by the relay
      }
      throw err;
    }
  }

  /**
   * Pings the relay and waits for the pong: the relay answers only registered clients, so after
   * this packets for this client's key reach it. Other frames that arrive first are dropped.
   */
  async ready(timeoutMs = 10_000): Promise<void> {
    const data = crypto.getRandomValues(new Uint8Array(8));
    await this.sendFrame(clientFrame(FrameType.Ping, data));
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (!f) throw new Error("Relay closed the connection before answering a ping");
      if (f.type === FrameType.Pong && f.body.every((b, i) => b === data[i])) return;
    }
  }

  /** Sends a packet for the client holding `dst`. */
  send(dst: Uint8Array, packet: Uint8Array): Promise<void> {
    return this.sendFrame(clientFrame(FrameType.SendPacket, dst, packet));
  }

  sendFrame(frame: OutFrame): Promise<void> {
    return this.sendRaw(this.encode(frame));
  }

  /** Frame bytes in this client's wire form (relay framing, or a masked WebSocket message). */
  encode(frame: OutFrame): Uint8Array {
    if (this.protocol === "relay") return encodeRelayFrames([frame]);
    const payload = new Uint8Array(1 + frame.length);
    payload[0] = frame.type;
    let off = 1;
    for (const p of frame.parts) {
      payload.set(p, off);
      off += p.length;
    }
    return maskedMessage(2, payload);
  }

  async sendRaw(bytes: Uint8Array): Promise<void> {
    await writeAll(this.#conn, bytes);
  }

  /** The next frame within timeoutMs; null when the relay closed the connection. */
  async next(timeoutMs = 10_000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const f = this.protocol === "relay"
        ? await this.#nextRelayFrame(deadline)
        : await this.#nextWsFrame(deadline);
      if (!f) return null;
      if (f.type === FrameType.Ping && this.#answerPings) {
        await this.sendFrame(clientFrame(FrameType.Pong, f.body)).catch(() => {});
        continue;
      }
      return f;
    }
  }

  /** The next RecvPacket (other frames are skipped). */
  async receive(timeoutMs = 10_000): Promise<{ src: Uint8Array; packet: Uint8Array }> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (!f) throw new Error("Relay closed the connection while a packet was awaited");
      if (f.type !== FrameType.RecvPacket) continue;
      return { src: f.body.subarray(0, KEY_BYTES), packet: f.body.subarray(KEY_BYTES) };
    }
  }

  /** Reads until the relay closes; resolves with the frames seen on the way. */
  async untilClosed(timeoutMs = 10_000): Promise<Frame[]> {
    const seen: Frame[] = [];
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (!f) return seen;
      seen.push(f);
    }
  }

  /** Closes the connection and waits for a read still in flight. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // already closed by the relay
    }
    await this.#pending?.read;
    this.#pending = null;
  }

  async #fill(n: number, deadline: number): Promise<boolean> {
    while (this.#buf.length < n) {
      if (this.#ended) return false;
      if (!this.#pending) {
        const chunk = new Uint8Array(64 * 1024);
        this.#pending = { chunk, read: this.#conn.read(chunk).catch(() => null) };
      }
      const pending = this.#pending;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((r) => {
        timer = setTimeout(() => r("late"), Math.max(0, deadline - Date.now()));
      });
      const got = await Promise.race([pending.read, late]);
      clearTimeout(timer);
      // A read that outlives the deadline stays pending for the next call.
      if (got === "late") throw new Error("Timed out waiting for a frame from the relay");
      this.#pending = null;
      if (got === null) {
        this.#ended = true;
        return false;
      }
      const next = new Uint8Array(this.#buf.length + got);
      next.set(this.#buf);
      next.set(pending.chunk.subarray(0, got), this.#buf.length);
      this.#buf = next;
    }
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async #nextRelayFrame(deadline: number): Promise<Frame | null> {
    if (!(await this.#fill(RELAY_HEADER_BYTES, deadline))) return null;
    const length = new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint32(1);
    if (!(await this.#fill(RELAY_HEADER_BYTES + length, deadline))) return null;
    const type = this.#buf[0];
    this.#take(RELAY_HEADER_BYTES);
    return { type, body: this.#take(length) };
  }

  async #nextWsFrame(deadline: number): Promise<Frame | null> {
    while (true) {
      if (!(await this.#fill(2, deadline))) return null;
      const opcode = this.#buf[0] & 0x0f;
      let length = this.#buf[1] & 0x7f;
      let header = 2;
      if (length === 126) {
        if (!(await this.#fill(4, deadline))) return null;
        length = (this.#buf[2] << 8) | this.#buf[3];
        header = 4;
      } else if (length === 127) {
        if (!(await this.#fill(10, deadline))) return null;
        length = new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint32(6);
        header = 10;
      }
      if (!(await this.#fill(header + length, deadline))) return null;
      this.#take(header);
      const payload = this.#take(length);
      if (opcode === 8) {
        this.closeCode = payload.length >= 2 ? (payload[0] << 8) | payload[1] : null;
        return null;
      }
      if (opcode !== 2) continue;
      return { type: payload[0], body: payload.subarray(1) };
    }
  }
}

/** A masked client WebSocket frame (RFC 6455 §5.3) with FIN set. */
export function maskedMessage(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(header + 4 + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setUint32(6, n);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, header);
  for (let i = 0; i < n; i++) out[header + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

async function readResponseHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array }> {
  let buf = new Uint8Array(0);
  while (buf.length < 16 * 1024) {
    const chunk = new Uint8Array(4096);
    const n = await conn.read(chunk);
    if (n === null) break;
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
    for (let i = 0; i + 3 < buf.length; i++) {
      if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
        return {
          head: new TextDecoder().decode(buf.subarray(0, i)),
          rest: buf.slice(i + 4),
        };
      }
    }
  }
  throw new Error(`Relay sent no response head: ${JSON.stringify(new TextDecoder().decode(buf))}`);
}
