// A deliberately small SMTP client for protocol tests: raw lines in, parsed replies out.

import { readWithin } from "./util.ts";

export interface SmtpTestReply {
  code: number;
  lines: string[];
  /** All reply lines joined with "\n", codes included. */
  text: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class SmtpTestClient {
  #conn: Deno.Conn;
  #buf = "";

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  static async connect(
    addr: { hostname: string; port: number },
    options: { tls?: boolean; caPem?: string } = {},
  ): Promise<SmtpTestClient> {
    const conn = options.tls
      ? await Deno.connectTls({ ...addr, caCerts: [options.caPem!] })
      : await Deno.connect(addr);
    return new SmtpTestClient(conn);
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await readWithin(this.#conn, chunk);
    if (n === null) return false;
    this.#buf += dec.decode(chunk.subarray(0, n));
    return true;
  }

  /** Reads one (possibly multi-line) reply. */
  async reply(): Promise<SmtpTestReply> {
    const lines: string[] = [];
    while (true) {
      const i = this.#buf.indexOf("\r\n");
      if (i < 0) {
        if (!(await this.#fill())) {
          throw new Error(`connection closed; got ${JSON.stringify(lines)}`);
        }
        continue;
      }
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 2);
      lines.push(line);
      if (line[3] !== "-") break;
    }
    return { code: Number(lines[0].slice(0, 3)), lines, text: lines.join("\n") };
  }

  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  async cmd(line: string): Promise<SmtpTestReply> {
    await this.send(line + "\r\n");
    return await this.reply();
  }

  async startTls(caPem: string): Promise<void> {
    const r = await this.cmd("STARTTLS");
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.text}`);
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "127.0.0.1",
      caCerts: [caPem],
    });
  }

  /** EHLO, AUTH PLAIN, MAIL, RCPT…, DATA; returns the final reply (or the first refusal). */
  async login(user: string, password: string): Promise<SmtpTestReply> {
    const token = btoa(`\0${user}\0${password}`);
    return await this.cmd(`AUTH PLAIN ${token}`);
  }

  async sendMail(from: string, to: string[], message: string | Uint8Array): Promise<SmtpTestReply> {
    let r = await this.cmd(`MAIL FROM:<${from}>`);
    if (r.code !== 250) return r;
    for (const t of to) {
      r = await this.cmd(`RCPT TO:<${t}>`);
      if (r.code !== 250) return r;
    }
    r = await this.cmd("DATA");
    if (r.code !== 354) return r;
    await this.send(dotStuff(message));
    await this.send(".\r\n");
    return await this.reply();
  }

  /** True when the server closed the connection. */
  async closedByServer(): Promise<boolean> {
    try {
      return !(await this.#fill());
    } catch {
      return true;
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

export function dotStuff(message: string | Uint8Array): Uint8Array {
  const text = typeof message === "string" ? message : dec.decode(message);
  const withCrlf = text.endsWith("\r\n") ? text : text + "\r\n";
  return enc.encode(withCrlf.replace(/^\./gm, ".."));
}
