// Outbound SMTP to another mail server (RFC 5321): EHLO, mandatory STARTTLS (RFC 3207), then
// any number of transactions on one session. With PIPELINING (RFC 2920) a transaction costs one
// round trip before the data: RSET (on a reused session), MAIL, every RCPT and DATA go in one
// write. Certificates are verified unless the route says otherwise (IP literals, "_" domains).

import { AttemptBudget, type Deadlines, DEFAULT_DEADLINES, transferMs } from "./deadlines.ts";
import { Conn, connectTcp, fmt, startTls, TransportError } from "./conn.ts";
import { bytesMessage, DotStuffer, type OutgoingMessage } from "./outgoing_message.ts";

export interface SmtpTarget {
  address: string;
  port: number;
  /** Name to verify the certificate against (and SNI). */
  servername: string;
  insecure: boolean;
  ca?: string[];
  heloName: string;
}

export interface SmtpMessage {
  sender: string;
  recipients: string[];
  /** The message, whole or read in pieces (from the store) while it is sent. */
  data: Uint8Array | OutgoingMessage;
}

export interface RecipientResult {
  recipient: string;
  code: number;
  text: string;
}

/** The server answered a session step (greeting, EHLO, STARTTLS) with a refusal. */
export class SmtpReplyError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** RFC 5321 §4.5.2: a leading "." is doubled; the data ends with CRLF "." CRLF. */
export function dotStuff(data: Uint8Array): Uint8Array {
  const stuffer = new DotStuffer();
  const body = stuffer.push(data);
  const end = stuffer.end();
  const out = new Uint8Array(body.length + end.length);
  out.set(body);
  out.set(end, body.length);
  return out;
}

interface Reply {
  code: number;
  text: string;
}

const ok = (code: number) => code >= 200 && code < 300;

/** One SMTP session after STARTTLS and the second EHLO, ready for transactions. */
export class SmtpSession {
  #conn: Conn;
  #caps: Set<string>;
  #size: number;
  #closed = false;
  /** Transactions started on this session. */
  transactions = 0;
  readonly openedAt = performance.now();

  private constructor(conn: Conn, ehlo: string) {
    this.#conn = conn;
    const { caps, size } = capabilities(ehlo);
    this.#caps = caps;
    this.#size = size;
  }

  get where(): string {
    return this.#conn.where;
  }

  get pipelining(): boolean {
    return this.#caps.has("PIPELINING");
  }

  /** Open and not left in an unknown state by a failure. */
  get usable(): boolean {
    return !this.#closed && !this.#conn.broken;
  }

  static async open(t: SmtpTarget, budget: AttemptBudget): Promise<SmtpSession> {
    const d = budget.deadlines;
    const where = fmt(t.address, t.port);
    const socket = await connectTcp(t.address, t.port, budget.step(d.connectMs).ms, budget.signal);
    const conn = new Conn(socket, where, budget.signal);
    try {
      const expect = async (step: string, want: (c: number) => boolean) => {
        const r = await readReply(conn, budget.step(d.commandMs).ms, step);
        if (!want(r.code)) {
          throw new SmtpReplyError(`${where} answered ${step} with: ${r.text}`, r.code);
        }
        return r;
      };
      await expect("the greeting", (c) => c === 220);
      await conn.write(`EHLO ${t.heloName}\r\n`, budget.step(d.commandMs).ms, "EHLO");
      const first = await expect("EHLO", (c) => c === 250);
      if (!capabilities(first.text).caps.has("STARTTLS")) {
        throw new TransportError(`${where} does not offer STARTTLS`, "tls");
      }
      await conn.write("STARTTLS\r\n", budget.step(d.commandMs).ms, "STARTTLS");
      await expect("STARTTLS", (c) => c === 220);
      const tlsSocket = await startTls(
        conn.release(),
        { servername: t.servername, insecure: t.insecure, ca: t.ca },
        where,
        budget.step(d.tlsMs).ms,
        budget.signal,
      );
      conn.adopt(tlsSocket);
      // RFC 3207 §4.2: everything learnt before TLS is forgotten; EHLO again.
      await conn.write(`EHLO ${t.heloName}\r\n`, budget.step(d.commandMs).ms, "EHLO");
      const second = await expect("EHLO after STARTTLS", (c) => c === 250);
      return new SmtpSession(conn, second.text);
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /**
   * One transaction. Resolves with each recipient's result (a refusal of MAIL or of the data is
   * every accepted recipient's result); rejects with TransportError when the session broke, which
   * leaves it unusable. A reused session starts with RSET.
   */
  async send(m: SmtpMessage, budget: AttemptBudget): Promise<RecipientResult[]> {
    if (!this.usable) throw new TransportError(`${this.where}: session is closed`, "closed");
    const d = budget.deadlines;
    const conn = this.#conn;
    const reset = this.transactions > 0;
    this.transactions++;
    const message = m.data instanceof Uint8Array ? bytesMessage(m.data) : m.data;
    try {
      const all = (r: Reply) => m.recipients.map((recipient) => ({ recipient, ...r }));
      if (this.#size > 0 && message.size > this.#size) {
        return all({ code: 552, text: `552 5.3.4 Message too big for ${this.where}` });
      }
      const needsUtf8 = [m.sender, ...m.recipients].some((x) => /[^\p{ASCII}]/u.test(x));
      if (needsUtf8 && !this.#caps.has("SMTPUTF8")) {
        return all({ code: 553, text: `553 5.6.7 ${this.where} does not support SMTPUTF8` });
      }
      const params = [
        this.#size > 0 ? ` SIZE=${message.size}` : "",
        this.#caps.has("8BITMIME") ? " BODY=8BITMIME" : "",
        needsUtf8 ? " SMTPUTF8" : "",
      ].join("");
      const commands = [
        ...(reset ? ["RSET"] : []),
        `MAIL FROM:<${m.sender}>${params}`,
        ...m.recipients.map((r) => `RCPT TO:<${r}>`),
        "DATA",
      ];
      for (const c of commands) {
        if (/[\r\n]/.test(c)) {
          throw new TransportError("Refusing a command with a line break", "protocol");
        }
      }
      const step = () => budget.step(d.commandMs).ms;
      const replies: Reply[] = [];
      if (this.pipelining) {
        // RFC 2920 §3.1: DATA ends the group; the replies come back in order.
        await conn.write(commands.map((c) => c + "\r\n").join(""), step(), "the commands");
        for (const c of commands) replies.push(await readReply(conn, step(), c.split(/[ :]/)[0]));
      } else {
        const one = async (c: string) => {
          const verb = c.split(/[ :]/)[0];
          await conn.write(c + "\r\n", step(), verb);
          const r = await readReply(conn, step(), verb);
          replies.push(r);
          return r;
        };
        const [first, ...rest] = commands;
        if (!reset || ok((await one(first)).code)) {
          const mail = await one(reset ? rest[0] : first);
          if (ok(mail.code)) {
            let accepted = false;
            for (const r of m.recipients) {
              accepted = ok((await one(`RCPT TO:<${r}>`)).code) || accepted;
            }
            if (accepted) await one("DATA");
          }
        }
      }
      if (reset && !ok(replies[0].code)) {
        this.#closed = true;
        throw new TransportError(`${this.where} refused RSET: ${replies[0].text}`, "protocol");
      }
      const base = reset ? 1 : 0;
      const mail = replies[base];
      if (replies.some((r) => r.code === 421)) this.#closed = true;
      if (!ok(mail.code)) {
        await this.#endData(replies[base + 1 + m.recipients.length], step);
        return all(mail);
      }
      const results = m.recipients.map((recipient, i) => {
        const r = replies[base + 1 + i] ?? { code: 503, text: "503 5.5.1 not sent" };
        return { recipient, code: r.code, text: r.text };
      });
      const accepted = results.some((r) => ok(r.code));
      const data = replies[base + 1 + m.recipients.length];
      if (!accepted) {
        await this.#endData(data, step);
        return results;
      }
      if (!data || data.code !== 354) {
        let refusal = data ?? { code: 451, text: "451 4.3.0 DATA was not answered" };
        if (refusal.code < 400) {
          // A success that never asked for the message is no delivery: a broken peer, whose
          // session is in a state nobody knows.
          this.#closed = true;
          refusal = { code: 451, text: `451 4.5.0 DATA was answered with: ${refusal.text}` };
        }
        return results.map((r) =>
          ok(r.code) ? { ...r, code: refusal.code, text: refusal.text } : r
        );
      }
      // The message goes piece by piece as it is read; the transfer has one deadline for all of
      // it (by size), and each write waits for the socket so only one piece is held here.
      const until = performance.now() + budget.step(transferMs(d, message.size)).ms;
      const left = () => Math.max(1, until - performance.now());
      const stuffer = new DotStuffer();
      for await (const piece of message.pieces()) {
        await conn.write(stuffer.push(piece), left(), "the message");
      }
      await conn.write(stuffer.end(), left(), "the message");
      const final = await readReply(conn, budget.step(transferMs(d, 0)).ms, "end of data");
      if (final.code === 421) this.#closed = true;
      return results.map((r) => ok(r.code) ? { ...r, code: final.code, text: final.text } : r);
    } catch (err) {
      this.#closed = true;
      conn.destroy();
      throw err;
    }
  }

  /** A 354 nobody wanted (all RCPTs refused, RFC 2920 §3.1): send an empty message, ignore it. */
  async #endData(data: Reply | undefined, step: () => number) {
    if (data?.code !== 354) return;
    await this.#conn.write(".\r\n", step(), "the empty message");
    await readReply(this.#conn, step(), "end of data");
  }

  /** QUIT, waiting briefly for the goodbye, then closes. */
  async quit(ms = 2000): Promise<void> {
    if (this.#closed || this.#conn.broken) return this.#conn.destroy();
    this.#closed = true;
    try {
      await this.#conn.write("QUIT\r\n", ms, "QUIT");
      await readReply(this.#conn, ms, "QUIT");
    } catch {
      // The session is over either way; a peer that does not say goodbye changes nothing.
    } finally {
      this.#conn.destroy();
    }
  }

  /** Closes without QUIT. */
  destroy() {
    this.#closed = true;
    this.#conn.destroy();
  }
}

/** A multi-line reply (RFC 5321 §4.2.1): "250-…" lines, then "250 …". */
async function readReply(conn: Conn, ms: number, step: string): Promise<Reply> {
  const end = performance.now() + ms;
  const lines: string[] = [];
  for (;;) {
    const line = await conn.readLine(Math.max(1, end - performance.now()), `reply to ${step}`);
    const m = /^(\d{3})([ -]|$)/.exec(line);
    if (!m || (lines.length && !line.startsWith(lines[0].slice(0, 3)))) {
      conn.destroy();
      throw new TransportError(
        `${conn.where} sent a malformed reply to ${step}: ${line.slice(0, 80)}`,
        "protocol",
      );
    }
    lines.push(line);
    if (m[2] !== "-") return { code: Number(m[1]), text: lines.join("\n") };
    if (lines.length > 100) {
      conn.destroy();
      throw new TransportError(`${conn.where} sent an endless reply to ${step}`, "protocol");
    }
  }
}

function capabilities(ehlo: string): { caps: Set<string>; size: number } {
  const caps = new Set<string>();
  let size = 0;
  for (const line of ehlo.split("\n").slice(1)) {
    const [word, arg] = line.slice(4).trim().split(/\s+/);
    if (!word) continue;
    caps.add(word.toUpperCase());
    if (word.toUpperCase() === "SIZE" && /^\d+$/.test(arg ?? "")) size = Number(arg);
  }
  return { caps, size };
}

/**
 * One message on a new session, then QUIT (for one-off checks such as `tern doctor`). Rejects
 * with TransportError or SmtpReplyError when the server could not be talked to.
 */
export async function sendSmtp(
  a: Omit<SmtpTarget, "insecure" | "ca"> & SmtpMessage & {
    insecureTls: boolean;
    timeoutMs?: number;
    caCerts?: string[];
  },
): Promise<RecipientResult[]> {
  const ms = a.timeoutMs ?? DEFAULT_DEADLINES.commandMs;
  const deadlines: Deadlines = { connectMs: ms, tlsMs: ms, commandMs: ms, attemptMs: 3 * ms };
  const budget = new AttemptBudget(deadlines);
  const session = await SmtpSession.open(
    { ...a, insecure: a.insecureTls, ca: a.caCerts },
    budget,
  );
  try {
    return await session.send(a, budget);
  } finally {
    await session.quit(Math.min(ms, 2000));
  }
}
