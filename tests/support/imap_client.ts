// A small IMAP client for protocol tests: sends tagged commands, collects untagged responses
// (with literals inlined) until the tagged status.

import { readWithin } from "./util.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface ImapTestResult {
  /** Untagged responses, each with literals inlined as text. */
  untagged: string[];
  /** The tagged status line without the tag, e.g. "OK [READ-WRITE] SELECT completed". */
  status: string;
  ok: boolean;
}

export class ImapTestClient {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #tag = 0;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  static async connect(
    addr: { hostname: string; port: number },
    options: { tls?: boolean; caPem?: string } = {},
  ): Promise<{ client: ImapTestClient; greeting: string }> {
    const conn = options.tls
      ? await Deno.connectTls({
        port: addr.port,
        // A loopback address of its own (a second instance on 127.0.0.2), else IPv4 loopback.
        hostname: /^127\./.test(addr.hostname) ? addr.hostname : "127.0.0.1",
        caCerts: [options.caPem!],
      })
      : await Deno.connect(addr);
    const client = new ImapTestClient(conn);
    const greeting = await client.readResponse();
    return { client, greeting };
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(256 * 1024);
    const n = await readWithin(this.#conn, chunk);
    if (n === null) throw new Error("connection closed by server");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  async #line(): Promise<string> {
    while (true) {
      const i = this.#buf.indexOf(10);
      if (i >= 0) {
        const line = dec.decode(this.#buf.subarray(0, i)).replace(/\r$/, "");
        this.#buf = this.#buf.slice(i + 1);
        return line;
      }
      await this.#fill();
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) await this.#fill();
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** One response line with any literals it announces inlined. */
  async readResponse(): Promise<string> {
    let text = await this.#line();
    while (true) {
      const m = /~?\{(\d+)\}$/.exec(text);
      if (!m) return text;
      const data = await this.#bytes(Number(m[1]));
      text = text + "\r\n" + dec.decode(data) + (await this.#line());
    }
  }

  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  nextTag(): string {
    return `T${++this.#tag}`;
  }

  /** Reads untagged responses until the status for `tag`. */
  async collect(tag: string): Promise<ImapTestResult> {
    const untagged: string[] = [];
    while (true) {
      const line = await this.readResponse();
      if (line.startsWith(tag + " ")) {
        const status = line.slice(tag.length + 1);
        return { untagged, status, ok: status.startsWith("OK") };
      }
      untagged.push(line);
    }
  }

  async cmd(command: string): Promise<ImapTestResult> {
    const tag = this.nextTag();
    await this.send(`${tag} ${command}\r\n`);
    return await this.collect(tag);
  }

  async login(user: string, password: string): Promise<ImapTestResult> {
    return await this.cmd(`LOGIN "${user}" "${password}"`);
  }

  async startTls(caPem: string): Promise<void> {
    const r = await this.cmd("STARTTLS");
    if (!r.ok) throw new Error(`STARTTLS refused: ${r.status}`);
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "127.0.0.1",
      caCerts: [caPem],
    });
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * The value of `entry` in a `* METADATA` response (literals inlined as readResponse does):
 * the string, or null for NIL; undefined when the entry is not in the response.
 */
export function metadataValue(response: string, entry: string): string | null | undefined {
  const m = new RegExp(`[ (]${entry.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} `).exec(response);
  if (!m) return undefined;
  const rest = response.slice(m.index + m[0].length);
  if (rest.startsWith("NIL")) return null;
  const lit = /^\{(\d+)\}\r\n/.exec(rest);
  if (lit) {
    const bytes = new TextEncoder().encode(rest.slice(lit[0].length));
    return new TextDecoder().decode(bytes.subarray(0, Number(lit[1])));
  }
  const q = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
  return q ? q[1].replace(/\\(.)/g, "$1") : undefined;
}
