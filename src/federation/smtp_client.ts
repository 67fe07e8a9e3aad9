// Outbound SMTP to another mail server (RFC 5321): EHLO, mandatory STARTTLS (RFC 3207),
// MAIL/RCPT/DATA with dot-stuffing, per-recipient results. Certificates are verified unless the
// route says otherwise (IP literals, "_" domains).

import * as net from "node:net";
import * as tls from "node:tls";

export interface SmtpAttempt {
  address: string;
  port: number;
  /** Name to verify the certificate against (and SNI). */
  servername: string;
  insecureTls: boolean;
  heloName: string;
  sender: string;
  recipients: string[];
  data: Uint8Array;
  timeoutMs?: number;
  caCerts?: string[];
}

export interface RecipientResult {
  recipient: string;
  code: number;
  text: string;
}

export class SmtpClientError extends Error {
  /** Reply code when the server refused; 0 for connection/TLS/timeouts. */
  constructor(message: string, readonly code = 0) {
    super(message);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

class Lines {
  #socket: net.Socket;
  #buf = "";
  #waiters: (() => void)[] = [];
  #error: Error | null = null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(s: net.Socket) {
    s.on("data", (d: Uint8Array) => {
      this.#buf += dec.decode(d);
      this.#wake();
    });
    s.on("error", (e) => {
      this.#error = e;
      this.#wake();
    });
    s.on("close", () => {
      this.#error ??= new Error("Connection closed");
      this.#wake();
    });
  }

  replace(s: net.Socket) {
    this.#socket = s;
    this.#buf = "";
    this.#attach(s);
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async reply(): Promise<{ code: number; text: string }> {
    const lines: string[] = [];
    while (true) {
      const i = this.#buf.indexOf("\n");
      if (i < 0) {
        if (this.#error) throw new SmtpClientError(this.#error.message);
        await new Promise<void>((r) => this.#waiters.push(r));
        continue;
      }
      const line = this.#buf.slice(0, i).replace(/\r$/, "");
      this.#buf = this.#buf.slice(i + 1);
      lines.push(line);
      if (line[3] !== "-") {
        return { code: Number(line.slice(0, 3)) || 0, text: lines.join("\n") };
      }
    }
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.write(
        typeof data === "string" ? enc.encode(data) : data,
        (e) => e ? reject(new SmtpClientError(e.message)) : resolve(),
      )
    );
  }
}

/** RFC 5321 §4.5.2: a leading "." is doubled; the data ends with CRLF "." CRLF. */
export function dotStuff(data: Uint8Array): Uint8Array {
  let dots = data[0] === 0x2e ? 1 : 0;
  for (let i = 1; i < data.length; i++) if (data[i] === 0x2e && data[i - 1] === 0x0a) dots++;
  const endsWithCrlf = data.length >= 2 && data[data.length - 2] === 13 &&
    data[data.length - 1] === 10;
  const out = new Uint8Array(data.length + dots + (endsWithCrlf ? 0 : 2) + 3);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x2e && (i === 0 || data[i - 1] === 0x0a)) out[o++] = 0x2e;
    out[o++] = data[i];
  }
  if (!endsWithCrlf) {
    out[o++] = 13;
    out[o++] = 10;
  }
  out.set([0x2e, 13, 10], o);
  return out.subarray(0, o + 3);
}

function connect(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: address, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SmtpClientError(`Connection to ${fmt(address, port)} timed out`));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(new SmtpClientError(`Connection to ${fmt(address, port)} failed: ${e.message}`));
    });
  });
}

export function fmt(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * One SMTP transaction with one server. Resolves with each recipient's result when the server
 * answered (accepted or refused); rejects with SmtpClientError when it could not talk to it.
 */
export async function sendSmtp(a: SmtpAttempt): Promise<RecipientResult[]> {
  const timeoutMs = a.timeoutMs ?? 60_000;
  let socket = await connect(a.address, a.port, timeoutMs);
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error("timed out")));
  const io = new Lines(socket);
  const where = fmt(a.address, a.port);
  const expect = async (ok: (code: number) => boolean, step: string) => {
    const r = await io.reply();
    if (!ok(r.code)) throw new SmtpClientError(`${where} answered ${step} with: ${r.text}`, r.code);
    return r;
  };
  try {
    await expect((c) => c === 220, "the greeting");
    await io.write(`EHLO ${a.heloName}\r\n`);
    let ehlo = await expect((c) => c === 250, "EHLO");
    if (!/^250[ -]STARTTLS\b/im.test(ehlo.text)) {
      throw new SmtpClientError(`${where} does not offer STARTTLS`);
    }
    await io.write("STARTTLS\r\n");
    await expect((c) => c === 220, "STARTTLS");
    socket.removeAllListeners("data");
    socket.removeAllListeners("error");
    socket.removeAllListeners("close");
    socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({
        socket,
        servername: net.isIP(a.servername) ? undefined : a.servername,
        rejectUnauthorized: !a.insecureTls,
        ca: a.caCerts,
        minVersion: "TLSv1.2",
      });
      t.once("secureConnect", () => resolve(t));
      t.once("error", (e) => reject(new SmtpClientError(`TLS with ${where} failed: ${e.message}`)));
    });
    if (!a.insecureTls) {
      const t = socket as tls.TLSSocket;
      const problem = tls.checkServerIdentity(a.servername, t.getPeerCertificate());
      if (problem) throw new SmtpClientError(`TLS with ${where}: ${problem.message}`);
    }
    io.replace(socket);
    await io.write(`EHLO ${a.heloName}\r\n`);
    ehlo = await expect((c) => c === 250, "EHLO");
    const utf8 = /^250[ -]SMTPUTF8\b/im.test(ehlo.text);
    const needsUtf8 = [a.sender, ...a.recipients].some((x) => /[^\p{ASCII}]/u.test(x));
    await io.write(
      `MAIL FROM:<${a.sender}> SIZE=${a.data.length}${
        /^250[ -]8BITMIME\b/im.test(ehlo.text) ? " BODY=8BITMIME" : ""
      }${needsUtf8 && utf8 ? " SMTPUTF8" : ""}\r\n`,
    );
    await expect((c) => c === 250, "MAIL FROM");
    const results: RecipientResult[] = [];
    for (const r of a.recipients) {
      await io.write(`RCPT TO:<${r}>\r\n`);
      const reply = await io.reply();
      results.push({ recipient: r, code: reply.code, text: reply.text });
    }
    if (!results.some((r) => r.code === 250 || r.code === 251)) {
      await io.write("QUIT\r\n").catch(() => {});
      return results;
    }
    await io.write("DATA\r\n");
    await expect((c) => c === 354, "DATA");
    await io.write(dotStuff(a.data));
    const final = await io.reply();
    await io.write("QUIT\r\n").catch(() => {});
    return results.map((r) =>
      r.code === 250 || r.code === 251
        ? { recipient: r.recipient, code: final.code, text: final.text }
        : r
    );
  } finally {
    socket.destroy();
  }
}
