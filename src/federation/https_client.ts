// A small HTTP/1.1 client over node:tls for /mxdeliv: connections are kept alive and reused per
// peer (RFC 9112 §9.3), and every step has a deadline (node:https in Deno 2.9.6 fired its
// `timeout` only after twice the configured time, as an idle timer, and ignored DENO_CERT).
// It connects to an address the caller resolved, so system DNS is never asked.

import { AttemptBudget, transferMs } from "./deadlines.ts";
import { Conn, connectTcp, fmt, startTls, TransportError } from "./conn.ts";
import { bytesMessage, type OutgoingMessage } from "./outgoing_message.ts";

export interface HttpsTarget {
  /** Where to connect. */
  address: string;
  port: number;
  /** Name for SNI, the certificate check and the Host header. */
  host: string;
  insecure: boolean;
  ca?: string[];
}

export interface HttpsResponse {
  status: number;
  /** The body as text (an SMTP reply line for /mxdeliv), trimmed. */
  text: string;
}

/** Answers larger than this are not replies but a misbehaving peer. */
const MAX_BODY = 64 * 1024;
/** The same for the answer's head (status lines and fields, interim 1xx answers included). */
const MAX_HEAD = 64 * 1024;

interface Idle {
  conn: Conn;
  timer: ReturnType<typeof setTimeout>;
}

export interface HttpsPoolOptions {
  /** How long an unused connection is kept (servers close theirs after 60–75 s). */
  idleMs?: number;
  /** Unused connections kept per peer. */
  maxIdlePerPeer?: number;
}

export class HttpsPool {
  #idle = new Map<string, Idle[]>();
  /** Every open connection, idle or in use. */
  #live = new Set<Conn>();
  #idleMs: number;
  #maxIdle: number;
  #closed = false;
  /** Connections opened so far (tests and metrics see the reuse). */
  opened = 0;

  constructor(options: HttpsPoolOptions = {}) {
    this.#idleMs = options.idleMs ?? 15_000;
    this.#maxIdle = options.maxIdlePerPeer ?? 20;
  }

  static key(t: HttpsTarget): string {
    return `${t.address}|${t.port}|${t.host}|${t.insecure ? 1 : 0}`;
  }

  #take(key: string): Conn | null {
    const list = this.#idle.get(key);
    while (list?.length) {
      const { conn, timer } = list.pop()!;
      clearTimeout(timer);
      if (!conn.broken) return conn;
      conn.destroy();
    }
    return null;
  }

  #give(key: string, conn: Conn) {
    if (this.#closed) return conn.destroy();
    let list = this.#idle.get(key);
    if (!list) this.#idle.set(key, list = []);
    if (list.length >= this.#maxIdle) return conn.destroy();
    const entry: Idle = {
      conn,
      timer: setTimeout(() => {
        conn.destroy();
        const l = this.#idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (i >= 0) l!.splice(i, 1);
        if (l && l.length === 0) this.#idle.delete(key);
      }, this.#idleMs),
    };
    list.push(entry);
  }

  async #open(t: HttpsTarget, budget: AttemptBudget): Promise<Conn> {
    const where = `https://${fmt(t.host, t.port)}`;
    const tcp = await connectTcp(
      t.address,
      t.port,
      budget.step(budget.deadlines.connectMs).ms,
      budget.signal,
    );
    const s = await startTls(
      tcp,
      { servername: t.host, insecure: t.insecure, ca: t.ca, alpn: ["http/1.1"] },
      where,
      budget.step(budget.deadlines.tlsMs).ms,
      budget.signal,
    );
    this.opened++;
    if (this.#closed) {
      s.destroy();
      throw new TransportError("Outbound delivery is stopping", "closed");
    }
    const conn = new Conn(s, where, budget.signal);
    this.#live.add(conn);
    s.once("close", () => this.#live.delete(conn));
    return conn;
  }

  /**
   * POSTs `body` to `path` (read in pieces while it is sent). A kept-alive connection the server closed before answering is
   * replaced by a fresh one once (it had received no byte of a response, so no answer is lost).
   */
  post(
    t: HttpsTarget,
    path: string,
    headers: [string, string][],
    body: Uint8Array | OutgoingMessage,
    budget: AttemptBudget,
  ): Promise<HttpsResponse> {
    return this.request(t, "POST", path, headers, body, budget);
  }

  async request(
    t: HttpsTarget,
    method: "GET" | "POST",
    path: string,
    headers: [string, string][],
    data: Uint8Array | OutgoingMessage,
    budget: AttemptBudget,
  ): Promise<HttpsResponse> {
    const key = HttpsPool.key(t);
    const body = data instanceof Uint8Array ? bytesMessage(data) : data;
    const head = requestHead(t, method, path, headers, body.size);
    for (let fresh = false;; fresh = true) {
      const reused = fresh ? null : this.#take(key);
      const conn = reused ?? await this.#open(t, budget);
      const before = conn.received;
      try {
        const r = await exchange(conn, head, body, budget);
        if (r.keepAlive && !conn.broken) this.#give(key, conn);
        else conn.destroy();
        return r.response;
      } catch (err) {
        conn.destroy();
        const retry = reused && conn.received === before && err instanceof TransportError &&
          err.kind === "closed";
        if (!retry) throw err;
      }
    }
  }

  /** Connections open now. */
  get size(): number {
    return this.#live.size;
  }

  /** Closes every connection; requests in flight fail. */
  close() {
    this.#closed = true;
    for (const list of this.#idle.values()) {
      for (const { timer } of list) clearTimeout(timer);
    }
    this.#idle.clear();
    for (const conn of this.#live) conn.destroy();
    this.#live.clear();
  }
}

function requestHead(
  t: HttpsTarget,
  method: string,
  path: string,
  headers: [string, string][],
  length: number,
): Uint8Array {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  const lines = [
    `${method} ${path} HTTP/1.1`,
    `Host: ${t.port === 443 ? host : `${host}:${t.port}`}`,
    ...(method === "POST" ? [`Content-Length: ${length}`] : []),
  ];
  for (const [name, value] of headers) {
    // An address with a line break would start a header of its own (request smuggling).
    if (/[\r\n]/.test(name + value)) {
      throw new TransportError(`Refusing a header with a line break: ${name}`, "protocol");
    }
    lines.push(`${name}: ${value}`);
  }
  return new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
}

async function exchange(
  conn: Conn,
  head: Uint8Array,
  body: OutgoingMessage,
  budget: AttemptBudget,
): Promise<{ response: HttpsResponse; keepAlive: boolean }> {
  const d = budget.deadlines;
  // The head, then the body piece by piece as it is read, all within one deadline by size.
  const until = performance.now() + budget.step(transferMs(d, head.length + body.size)).ms;
  const sendLeft = () => Math.max(1, until - performance.now());
  await conn.write(head, sendLeft(), "the request");
  for await (const piece of body.pieces()) await conn.write(piece, sendLeft(), "the request");
  // The head of the answer (skipping 1xx interim responses) within one command deadline.
  const headMs = budget.step(d.commandMs).ms;
  const headEnd = performance.now() + headMs;
  const left = () => Math.max(1, headEnd - performance.now());
  let status = 0;
  let version = "";
  const fields = new Map<string, string>();
  // Every line counts against MAX_HEAD: a peer streaming header fields (or 100 Continues) until
  // the deadline would otherwise fill memory with them.
  let headBytes = 0;
  const headLine = async (what: string) => {
    const line = await conn.readLine(left(), what);
    headBytes += line.length + 2;
    if (headBytes > MAX_HEAD) {
      throw new TransportError(`${conn.where} sent a head over ${MAX_HEAD} bytes`, "protocol");
    }
    return line;
  };
  do {
    const line = await headLine("HTTP response");
    const m = /^HTTP\/(1\.[01]) (\d{3})(?: |$)/.exec(line);
    if (!m) throw new TransportError(`${conn.where} answered with no HTTP status line`, "protocol");
    version = m[1];
    status = Number(m[2]);
    fields.clear();
    for (;;) {
      const h = await headLine("HTTP response header");
      if (h === "") break;
      const i = h.indexOf(":");
      if (i <= 0) throw new TransportError(`${conn.where} sent a malformed header`, "protocol");
      const name = h.slice(0, i).trim().toLowerCase();
      const value = h.slice(i + 1).trim();
      fields.set(name, fields.has(name) ? `${fields.get(name)}, ${value}` : value);
    }
  } while (status >= 100 && status < 200);
  const bodyMs = budget.step(d.commandMs).ms;
  const connection = (fields.get("connection") ?? "").toLowerCase();
  let keepAlive = version === "1.1"
    ? !/\bclose\b/.test(connection)
    : /\bkeep-alive\b/.test(connection);
  let data: Uint8Array;
  const te = (fields.get("transfer-encoding") ?? "").toLowerCase();
  if (te) {
    if (!/\bchunked\s*$/.test(te)) {
      throw new TransportError(`${conn.where} used transfer-encoding ${te}`, "protocol");
    }
    data = await readChunked(conn, bodyMs);
  } else if (fields.has("content-length")) {
    const n = Number(fields.get("content-length"));
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_BODY) {
      throw new TransportError(
        `${conn.where} announced a body of ${fields.get("content-length")}`,
        "protocol",
      );
    }
    data = await conn.readBytes(n, bodyMs, "HTTP response body");
  } else if (status === 204 || status === 304) {
    data = new Uint8Array(0);
  } else {
    keepAlive = false;
    data = await conn.readToClose(MAX_BODY, bodyMs, "HTTP response body");
  }
  return {
    response: { status, text: new TextDecoder().decode(data).trim() },
    keepAlive,
  };
}

/** RFC 9112 §7.1: hex size lines, data, CRLF; a zero chunk and optional trailers end it. */
async function readChunked(conn: Conn, ms: number): Promise<Uint8Array> {
  const end = performance.now() + ms;
  const left = () => Math.max(1, end - performance.now());
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const line = await conn.readLine(left(), "HTTP chunk size");
    const size = parseInt(line.split(";")[0].trim(), 16);
    if (!Number.isFinite(size) || size < 0 || !/^[0-9a-f]+$/i.test(line.split(";")[0].trim())) {
      throw new TransportError(`${conn.where} sent a bad chunk size`, "protocol");
    }
    if (size === 0) break;
    total += size;
    if (total > MAX_BODY) {
      throw new TransportError(`${conn.where} sent more than ${MAX_BODY} bytes`, "protocol");
    }
    parts.push(await conn.readBytes(size, left(), "HTTP chunk"));
    if (await conn.readLine(left(), "HTTP chunk end") !== "") {
      throw new TransportError(`${conn.where} sent a malformed chunk`, "protocol");
    }
  }
  while (await conn.readLine(left(), "HTTP trailer") !== "") { /* trailers are ignored */ }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
