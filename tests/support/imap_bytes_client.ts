// An IMAP client for large transfers in tests: responses are read as bytes (literals as
// Uint8Array, never decoded into strings), writes go out in pieces, and COMPRESS=DEFLATE
// (RFC 4978) can be switched on, so APPEND and FETCH of messages up to the size limit can be
// checked byte for byte.

import zlib from "node:zlib";

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface ImapBytesResponse {
  /** Untagged lines (text between literals joined; literals replaced by `{n}`). */
  untagged: string[];
  /** Every literal of the untagged responses, in order. */
  literals: Uint8Array[];
  status: string;
  ok: boolean;
}

export class ImapBytesClient {
  #conn: Deno.Conn;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #wake: (() => void) | null = null;
  #inflate: zlib.InflateRaw | null = null;
  #deflate: zlib.DeflateRaw | null = null;
  #pump: Promise<void>;
  #tag = 0;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#pump = this.#read();
  }

  static async connect(
    addr: { hostname: string; port: number },
    caPem: string,
  ): Promise<ImapBytesClient> {
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: addr.port,
      caCerts: [caPem],
    });
    const c = new ImapBytesClient(conn);
    const greeting = await c.line();
    if (!greeting.startsWith("* OK")) throw new Error(`greeting: ${greeting}`);
    return c;
  }

  async #read() {
    const buf = new Uint8Array(256 * 1024);
    while (true) {
      const n = await this.#conn.read(buf).catch(() => null);
      if (n === null) break;
      const chunk = buf.slice(0, n);
      if (this.#inflate) this.#inflate.write(chunk);
      else this.#push(chunk);
    }
    this.#ended = true;
    this.#signal();
  }

  #push(chunk: Uint8Array) {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#signal();
  }

  #signal() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async #more(): Promise<void> {
    if (this.#ended) throw new Error("connection closed by server");
    await new Promise<void>((r) => this.#wake = r);
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }

  /** One line without its CRLF. */
  async line(): Promise<string> {
    while (true) {
      let at = 0;
      for (const c of this.#chunks) {
        const i = c.indexOf(10);
        if (i >= 0) {
          const raw = this.#take(at + i + 1);
          return dec.decode(raw.subarray(0, raw.length - (raw[raw.length - 2] === 13 ? 2 : 1)));
        }
        at += c.length;
      }
      await this.#more();
    }
  }

  async bytes(n: number): Promise<Uint8Array> {
    while (this.#buffered < n) await this.#more();
    return this.#take(n);
  }

  /** Writes through the compression layer when it is on, in pieces of at most 1 MiB. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let i = 0;
    do {
      const piece = bytes.subarray(i, i + (1 << 20));
      const out = this.#deflate ? await this.#compress(piece) : piece;
      let off = 0;
      while (off < out.length) off += await this.#conn.write(out.subarray(off));
      i += 1 << 20;
    } while (i < bytes.length);
  }

  #compress(piece: Uint8Array): Promise<Uint8Array> {
    const d = this.#deflate!;
    return new Promise((resolve) => {
      const parts: Uint8Array[] = [];
      const onData = (c: Uint8Array) => parts.push(c);
      d.on("data", onData);
      d.write(piece);
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        d.off("data", onData);
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) out.set(p, (o += p.length) - p.length);
        resolve(out);
      });
    });
  }

  nextTag(): string {
    return `T${++this.#tag}`;
  }

  /** Responses until the tagged status of `tag`, literals kept as bytes. */
  async collect(tag: string): Promise<ImapBytesResponse> {
    const untagged: string[] = [];
    const literals: Uint8Array[] = [];
    while (true) {
      let text = await this.line();
      while (true) {
        const m = /~?\{(\d+)\}$/.exec(text);
        if (!m) break;
        literals.push(await this.bytes(Number(m[1])));
        text += await this.line();
      }
      if (text.startsWith(tag + " ")) {
        const status = text.slice(tag.length + 1);
        return { untagged, literals, status, ok: status.startsWith("OK") };
      }
      untagged.push(text);
    }
  }

  async cmd(command: string): Promise<ImapBytesResponse> {
    const tag = this.nextTag();
    await this.write(`${tag} ${command}\r\n`);
    return await this.collect(tag);
  }

  /** APPEND with a synchronizing literal (waits for "+"), or LITERAL+ when `nonSync`. */
  async append(mailbox: string, message: Uint8Array, nonSync = false): Promise<ImapBytesResponse> {
    const tag = this.nextTag();
    await this.write(`${tag} APPEND ${mailbox} {${message.length}${nonSync ? "+" : ""}}\r\n`);
    if (!nonSync) {
      const go = await this.line();
      if (!go.startsWith("+")) return { untagged: [], literals: [], status: go, ok: false };
    }
    await this.write(message);
    await this.write("\r\n");
    return await this.collect(tag);
  }

  /** COMPRESS DEFLATE: both directions compressed from the next byte on. */
  async compress(): Promise<void> {
    const r = await this.cmd("COMPRESS DEFLATE");
    if (!r.ok) throw new Error(`COMPRESS: ${r.status}`);
    const inflate = zlib.createInflateRaw();
    inflate.on("data", (c: Uint8Array) => this.#push(new Uint8Array(c)));
    this.#inflate = inflate;
    this.#deflate = zlib.createDeflateRaw();
  }

  /** Closes at once (also usable to vanish mid-command) and waits for the reader to stop. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
    await this.#pump;
    this.#inflate?.destroy();
    this.#deflate?.destroy();
  }
}
