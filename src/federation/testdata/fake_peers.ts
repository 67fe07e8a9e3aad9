// Peers for outbound tests, each recording what it saw: an SMTP server with STARTTLS (PIPELINING
// on or off, replies per recipient), a raw HTTPS server whose answers the test scripts (keep-alive,
// closing, dripping), and a silent server that accepts connections and never says a word.

import * as net from "node:net";
import * as tls from "node:tls";
import { generateSelfSigned, type TlsMaterial } from "../../net/tls.ts";

export async function testCertificate(names = ["peer.test", "127.0.0.1"]): Promise<TlsMaterial> {
  return await generateSelfSigned(names, 2);
}

interface Listening {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Listens on host:port (0: any) and tracks sockets so close() leaves nothing behind. */
async function listen(
  onSocket: (s: net.Socket) => void,
  host = "127.0.0.1",
  port = 0,
): Promise<Listening & { sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    onSocket(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    host,
    port: (server.address() as net.AddressInfo).port,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Reads CRLF lines from a socket (and raw bytes while `raw` is set). */
class LineSocket {
  buf = "";
  #waiters: (() => void)[] = [];
  closed = false;
  constructor(public s: net.Socket) {
    this.watch(s);
  }
  watch(s: net.Socket) {
    this.s = s;
    s.on("data", (d: Uint8Array) => {
      this.buf += new TextDecoder("latin1").decode(d);
      this.#wake();
    });
    s.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }
  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }
  async until(marker: string): Promise<string | null> {
    for (;;) {
      const i = this.buf.indexOf(marker);
      if (i >= 0) {
        const out = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + marker.length);
        return out;
      }
      if (this.closed) return null;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }
}

export interface SmtpPeerOptions {
  tls: TlsMaterial;
  pipelining?: boolean;
  /** Offer STARTTLS (default true). */
  starttls?: boolean;
  /** SIZE limit to advertise (default 1000000). */
  size?: number;
  /** Reply to RCPT TO for an address (default "250 2.1.5 OK"). */
  rcpt?: (address: string) => string;
  /** Reply after the data (default "250 2.0.0 Queued"). */
  data?: () => string;
  /** Reply to the DATA command (default "354 Go ahead"); the data is only read after a 354. */
  dataCommand?: () => string;
  /** Reply to MAIL FROM (default "250 2.1.0 OK"). */
  mail?: () => string;
  host?: string;
  port?: number;
}

export interface ReceivedMail {
  from: string;
  to: string[];
  data: string;
}

/** A minimal SMTP server: EHLO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT. */
export async function smtpPeer(o: SmtpPeerOptions) {
  const context = tls.createSecureContext({ cert: o.tls.certPem, key: o.tls.keyPem });
  const sessions: string[][] = [];
  const mails: ReceivedMail[] = [];
  /** Writes by the client that carried more than one command (pipelining seen on the wire). */
  let groupedWrites = 0;
  const l = await listen(
    (raw) => {
      const log: string[] = [];
      sessions.push(log);
      serve(raw, log).catch(() => raw.destroy());
    },
    o.host,
    o.port,
  );

  async function serve(raw: net.Socket, log: string[]) {
    const io = new LineSocket(raw);
    let out: net.Socket = raw;
    const say = (line: string) => out.write(line + "\r\n");
    let secure = false;
    let from: string | null = null;
    let to: string[] = [];
    say("220 peer.test ESMTP fake");
    for (;;) {
      const before = io.buf;
      const line = await io.until("\r\n");
      if (line === null) return;
      if (before.split("\r\n").length > 2) groupedWrites++;
      log.push(line);
      const verb = line.split(/[ :]/)[0].toUpperCase();
      if (verb === "EHLO") {
        const caps = ["250-peer.test", `250-SIZE ${o.size ?? 1000000}`, "250-8BITMIME"];
        if (!secure && o.starttls !== false) caps.push("250-STARTTLS");
        if (o.pipelining !== false) caps.push("250-PIPELINING");
        caps.push("250 ENHANCEDSTATUSCODES");
        for (const c of caps) say(c);
      } else if (verb === "STARTTLS") {
        raw.removeAllListeners("data");
        raw.pause();
        say("220 2.0.0 Ready");
        const t = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
        io.buf = "";
        io.watch(t);
        t.on("error", () => t.destroy());
        out = t;
        secure = true;
      } else if (verb === "MAIL") {
        const r = o.mail?.() ?? "250 2.1.0 OK";
        from = r.startsWith("2") ? /<([^>]*)>/.exec(line)?.[1] ?? "" : null;
        to = [];
        say(r);
      } else if (verb === "RCPT") {
        if (from === null) {
          say("503 5.5.1 MAIL first");
          continue;
        }
        const a = /<([^>]*)>/.exec(line)?.[1] ?? "";
        const r = o.rcpt?.(a) ?? "250 2.1.5 OK";
        if (r.startsWith("2")) to.push(a);
        say(r);
      } else if (verb === "DATA") {
        if (!to.length) {
          say("554 5.5.1 No valid recipients");
          continue;
        }
        const go = o.dataCommand?.() ?? "354 Go ahead";
        say(go);
        if (!go.startsWith("354")) continue;
        // The CRLF before the final "." may be the one that ended DATA (an empty message).
        io.buf = "\r\n" + io.buf;
        const data = await io.until("\r\n.\r\n");
        if (data === null) return;
        mails.push({ from: from ?? "", to, data: data.slice(2).replace(/^\.\./gm, ".") });
        log.push(`<data ${data.length} bytes>`);
        say(o.data?.() ?? "250 2.0.0 Queued");
      } else if (verb === "RSET" || verb === "NOOP") {
        if (verb === "RSET") from = null;
        say("250 2.0.0 OK");
      } else if (verb === "QUIT") {
        say("221 2.0.0 Bye");
        out.end();
        return;
      } else {
        say("502 5.5.2 Unknown command");
      }
    }
  }
  return {
    host: l.host,
    port: l.port,
    sessions,
    mails,
    get groupedWrites() {
      return groupedWrites;
    },
    /** Connections open now. */
    get open() {
      return l.sockets.size;
    },
    close: l.close,
  };
}

export interface HttpRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body: string;
}

/** What the HTTPS peer does with one request: answer (text written as is) or drop. */
export type HttpScript = (
  req: HttpRequest,
  conn: { index: number; requests: number },
) => { raw: string; close?: boolean; dripMs?: number } | "drop";

/**
 * A raw HTTP/1.1 server over TLS; the script writes the whole response bytes. `readRate`: a
 * slow link, reading at most that many bytes a second.
 */
export async function httpsPeer(
  o: { tls: TlsMaterial; script: HttpScript; host?: string; readRate?: number },
) {
  const requests: HttpRequest[] = [];
  let connections = 0;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const server = tls.createServer({ cert: o.tls.certPem, key: o.tls.keyPem }, (s) => {
    const conn = { index: connections++, requests: 0 };
    s.on("error", () => s.destroy());
    const rate = o.readRate;
    if (rate) {
      s.on("data", (d: Uint8Array) => {
        s.pause();
        const t = setTimeout(() => {
          timers.delete(t);
          s.resume();
        }, (d.length / rate) * 1000);
        timers.add(t);
      });
    }
    const io = new LineSocket(s);
    (async () => {
      for (;;) {
        const head = await io.until("\r\n\r\n");
        if (head === null) return;
        const [start, ...lines] = head.split("\r\n");
        const [method, path] = start.split(" ");
        const headers = lines.map((l) => {
          const i = l.indexOf(":");
          return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
        });
        const length = Number(headers.find(([n]) => n === "content-length")?.[1] ?? 0);
        while (io.buf.length < length && !io.closed) {
          await new Promise<void>((r) => {
            s.once("data", () => r());
            s.once("close", () => r());
          });
        }
        const body = io.buf.slice(0, length);
        io.buf = io.buf.slice(length);
        const req = { method, path, headers, body };
        requests.push(req);
        conn.requests++;
        const answer = o.script(req, conn);
        if (answer === "drop") return s.destroy();
        if (answer.dripMs) {
          // One byte per tick: an idle timer never fires, only a deadline ends it.
          for (const ch of answer.raw) {
            if (s.destroyed) return;
            s.write(ch);
            await new Promise<void>((r) => {
              const t = setTimeout(() => {
                timers.delete(t);
                r();
              }, answer.dripMs);
              timers.add(t);
            });
          }
        } else s.write(answer.raw);
        if (answer.close) return s.end();
      }
    })().catch(() => s.destroy());
  });
  const sockets = new Set<net.Socket>();
  server.on("secureConnection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, o.host ?? "127.0.0.1", () => r()));
  return {
    host: o.host ?? "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    requests,
    get connections() {
      return connections;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** "HTTP/1.1 200 OK" with a body and Content-Length. */
export function httpAnswer(status: number, body: string, extra: string[] = []): string {
  const reason = status < 300 ? "OK" : status < 500 ? "Bad Request" : "Error";
  return [
    `HTTP/1.1 ${status} ${reason}`,
    `content-length: ${new TextEncoder().encode(body).length}`,
    ...extra,
    "",
    body,
  ].join("\r\n");
}

/** Accepts TCP connections and never answers; counts them. */
export async function silentPeer(host = "127.0.0.1", port = 0) {
  let accepted = 0;
  const l = await listen(() => accepted++, host, port);
  return {
    host: l.host,
    port: l.port,
    get accepted() {
      return accepted;
    },
    /** Connections the client has not closed yet. */
    get open() {
      return l.sockets.size;
    },
    close: l.close,
  };
}

/** Sends `text` one byte per `everyMs` on every connection (a peer that answers slowly). */
export async function drippingPeer(text: string, everyMs: number, host = "127.0.0.1", port = 0) {
  const timers = new Set<ReturnType<typeof setInterval>>();
  const l = await listen(
    (s) => {
      let i = 0;
      const t = setInterval(() => {
        if (s.destroyed || i >= text.length) {
          clearInterval(t);
          timers.delete(t);
          return;
        }
        s.write(text[i++]);
      }, everyMs);
      timers.add(t);
    },
    host,
    port,
  );
  return {
    host: l.host,
    port: l.port,
    get open() {
      return l.sockets.size;
    },
    async close() {
      for (const t of timers) clearInterval(t);
      await l.close();
    },
  };
}
