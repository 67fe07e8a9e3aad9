// A buffered TLS connection for the benchmark clients: CRLF lines out of one growable buffer,
// literals skipped (counted, never copied into strings), whole writes.

const dec = new TextDecoder();
const enc = new TextEncoder();

const MAX_BUF = 256 * 1024;

export class Wire {
  conn: Deno.TlsConn;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  closed = false;

  constructor(conn: Deno.TlsConn, initial = 4096) {
    this.conn = conn;
    this.#buf = new Uint8Array(initial);
  }

  static async connect(
    port: number,
    caPem: string,
    initial?: number,
    host = "127.0.0.1",
  ): Promise<Wire> {
    // TCP first, so that Nagle's algorithm can be turned off before TLS starts: otherwise a
    // small write that follows another one waits for the peer's delayed ACK (~40 ms).
    const tcp = await Deno.connect({ hostname: host, port });
    tcp.setNoDelay(true);
    let conn: Deno.TlsConn;
    try {
      conn = await Deno.startTls(tcp, { hostname: host, caCerts: [caPem] });
      await conn.handshake();
    } catch (err) {
      try {
        tcp.close();
      } catch {
        // taken over by startTls
      }
      throw err;
    }
    return new Wire(conn, initial);
  }

  /** Reads more bytes into the buffer; throws when the peer closed. */
  async #fill(): Promise<void> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf.subarray(0, this.#end));
        this.#buf = bigger;
      }
    }
    const n = await this.conn.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.closed = true;
      throw new Error("connection closed by server");
    }
    this.#end += n;
  }

  /** One line without its CRLF. */
  async line(): Promise<string> {
    let scanned = 0; // bytes after #start known to hold no LF
    while (true) {
      const i = this.#buf.subarray(this.#start + scanned, this.#end).indexOf(10);
      if (i >= 0) {
        const lf = this.#start + scanned + i;
        const endOfText = lf > this.#start && this.#buf[lf - 1] === 13 ? lf - 1 : lf;
        const s = dec.decode(this.#buf.subarray(this.#start, endOfText));
        this.#start = lf + 1;
        return s;
      }
      scanned = this.#end - this.#start;
      await this.#fill();
    }
  }

  /** Discards n bytes (a literal), growing the buffer for large transfers. */
  async skip(n: number): Promise<void> {
    let left = n;
    if (left > this.#buf.length && this.#buf.length < MAX_BUF) {
      const bigger = new Uint8Array(MAX_BUF);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#buf = bigger;
    }
    while (true) {
      const take = Math.min(left, this.#end - this.#start);
      this.#start += take;
      left -= take;
      if (left === 0) return;
      await this.#fill();
    }
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
