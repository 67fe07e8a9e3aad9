// A raw mail-protocol client over node:net/node:tls for transport tests: bytes and lines with a
// deadline, IMAP responses with literals skipped, COMPRESS=DEFLATE (RFC 4978), and the two ways
// a phone leaves (close, reset) at any byte.

import net from "node:net";
import tls from "node:tls";
import zlib from "node:zlib";

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface WireOptions {
  host?: string;
  /** Implicit TLS with this CA. */
  tlsCa?: string;
  /** TLS versions the client offers (default: whatever node offers). */
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

export class WireClient {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #wake: (() => void) | null = null;
  #inflate: zlib.InflateRaw | null = null;
  #deflate: zlib.DeflateRaw | null = null;
  /** Resolves when the server has closed the connection (or it was reset). */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (c: Uint8Array) => this.#received(c));
    socket.on("error", () => this.#end());
    this.closed = new Promise((resolve) => socket.on("close", () => resolve()));
    socket.on("close", () => this.#end());
  }

  static connect(port: number, options: WireOptions = {}): Promise<WireClient> {
    const host = options.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      const s = options.tlsCa
        ? tls.connect({
          host,
          port,
          ca: options.tlsCa,
          servername: "localhost",
          minVersion: options.minVersion,
          maxVersion: options.maxVersion,
        }, () => resolve(new WireClient(s)))
        : net.connect({ host, port }, () => resolve(new WireClient(s)));
      s.once("error", reject);
    });
  }

  /** Upgrades to TLS in place (after the server's STARTTLS go-ahead). */
  startTls(ca: string, versions: Pick<WireOptions, "minVersion" | "maxVersion"> = {}) {
    return new Promise<void>((resolve, reject) => {
      this.#socket.removeAllListeners("data");
      const t = tls.connect(
        { socket: this.#socket, ca, servername: "localhost", ...versions },
        () => resolve(),
      );
      t.once("error", reject);
      t.on("data", (c: Uint8Array) => this.#received(c));
      this.#socket = t;
    });
  }

  #received(c: Uint8Array) {
    if (this.#inflate) this.#inflate.write(c);
    else this.#append(c);
  }

  #append(c: Uint8Array) {
    this.#chunks.push(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    this.#buffered += c.length;
    this.#wakeUp();
  }

  #end() {
    this.#ended = true;
    this.#wakeUp();
  }

  #wakeUp() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async #more(ms: number) {
    if (this.#ended) throw new Error("connection closed by the server");
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((r) => (this.#wake = r)),
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }

  /** The next line without CRLF. */
  async line(ms = 30_000): Promise<string> {
    while (true) {
      let pos = 0;
      for (const c of this.#chunks) {
        const i = c.indexOf(10);
        if (i >= 0) {
          const raw = this.#take(pos + i + 1);
          return dec.decode(raw).replace(/\r?\n$/, "");
        }
        pos += c.length;
      }
      await this.#more(ms);
    }
  }

  async bytes(n: number, ms = 30_000): Promise<Uint8Array> {
    while (this.#buffered < n) await this.#more(ms);
    return this.#take(n);
  }

  /**
   * IMAP: reads responses up to the tagged one; literals are read and replaced by their size (or
   * kept as text with `inline`). Returns the untagged lines and the tagged status (without the
   * tag).
   */
  async response(
    tag: string,
    ms = 30_000,
    inline = false,
  ): Promise<{ untagged: string[]; status: string }> {
    const untagged: string[] = [];
    while (true) {
      let l = await this.line(ms);
      let m: RegExpExecArray | null;
      while ((m = /\{(\d+)\}$/.exec(l))) {
        const literal = await this.bytes(Number(m[1]), ms);
        const text = inline ? dec.decode(literal) : `<${m[1]} bytes>`;
        l = l.slice(0, m.index) + text + (await this.line(ms));
      }
      if (l.startsWith(`${tag} `)) return { untagged, status: l.slice(tag.length + 1) };
      untagged.push(l);
    }
  }

  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    const d = this.#deflate;
    if (d) {
      return new Promise((resolve) => {
        d.write(bytes);
        d.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
      });
    }
    return new Promise((resolve, reject) =>
      this.#socket.write(bytes, (err) => err ? reject(err) : resolve())
    );
  }

  /** Sends an IMAP command and waits for its tagged response. */
  async cmd(tag: string, command: string, ms = 30_000, inline = false) {
    await this.write(`${tag} ${command}\r\n`);
    return await this.response(tag, ms, inline);
  }

  /** Both directions raw DEFLATE from here (after the server's OK to COMPRESS). */
  startCompression() {
    const inflate = zlib.createInflateRaw();
    inflate.on("data", (c: Uint8Array) => this.#append(c));
    inflate.on("error", () => this.#end());
    const pending = this.#chunks.splice(0);
    this.#buffered = 0;
    this.#inflate = inflate;
    for (const c of pending) inflate.write(c);
    const deflate = zlib.createDeflateRaw();
    deflate.on("data", (c: Uint8Array) => this.#socket.write(c));
    this.#deflate = deflate;
  }

  /** The client goes away: FIN (close) or RST (reset), whatever is unread. */
  close() {
    this.#inflate?.destroy();
    this.#deflate?.destroy();
    this.#socket.end();
    this.#socket.destroy();
  }

  reset() {
    this.#inflate?.destroy();
    this.#deflate?.destroy();
    this.#socket.resetAndDestroy();
  }
}

/** The first line a TLS client connecting from `localAddress` gets from `port`. */
export function tlsFirstLine(port: number, localAddress: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: "127.0.0.1", port, localAddress });
    raw.on("error", reject);
    const socket = tls.connect({
      socket: raw,
      ca: caPem,
      servername: "localhost",
      checkServerIdentity: () => undefined,
    });
    let buf = "";
    socket.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      const i = buf.indexOf("\r\n");
      if (i >= 0) {
        socket.destroy();
        resolve(buf.slice(0, i));
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(buf));
  });
}
