// Lean IMAP and SMTP clients for the benchmark (implicit TLS, loopback). Responses are read as
// lines; literals are skipped and only counted, so a client never copies message bodies.

import { Wire } from "./wire.ts";
import { now } from "./util.ts";

const LITERAL = /\{(\d+)\}$/;

export interface ImapResult {
  ok: boolean;
  status: string;
  untagged: string[];
  /** Bytes of all literals in the untagged responses. */
  literalBytes: number;
}

export class Imap {
  readonly wire: Wire;
  #tag = 0;

  private constructor(wire: Wire) {
    this.wire = wire;
  }

  static async connect(
    port: number,
    caPem: string,
    bufSize = 4096,
    host = "127.0.0.1",
  ): Promise<Imap> {
    const wire = await Wire.connect(port, caPem, bufSize, host);
    const c = new Imap(wire);
    const greeting = await wire.line();
    if (!greeting.startsWith("* OK")) {
      wire.close();
      throw new Error(`IMAP greeting: ${greeting}`);
    }
    return c;
  }

  nextTag(): string {
    return `b${++this.#tag}`;
  }

  /** One response (a line plus any literals it announces); literals are skipped. */
  async response(): Promise<{ text: string; literalBytes: number }> {
    let text = await this.wire.line();
    let literalBytes = 0;
    while (true) {
      const m = LITERAL.exec(text);
      if (!m) return { text, literalBytes };
      const n = Number(m[1]);
      await this.wire.skip(n);
      literalBytes += n;
      text = text + "<literal>" + (await this.wire.line());
    }
  }

  /** Reads responses until the tagged status of `tag`. Untagged lines are kept unless `keep` is false. */
  async collect(tag: string, keep = true): Promise<ImapResult> {
    const untagged: string[] = [];
    let literalBytes = 0;
    while (true) {
      const r = await this.response();
      if (r.text.startsWith(tag + " ")) {
        const status = r.text.slice(tag.length + 1);
        return { ok: status.startsWith("OK"), status, untagged, literalBytes };
      }
      literalBytes += r.literalBytes;
      if (keep) untagged.push(r.text);
    }
  }

  async cmd(command: string, keep = true): Promise<ImapResult> {
    const tag = this.nextTag();
    await this.wire.write(`${tag} ${command}\r\n`);
    return await this.collect(tag, keep);
  }

  async login(user: string, pass: string): Promise<void> {
    const r = await this.cmd(`LOGIN "${user}" "${pass}"`);
    if (!r.ok) throw new Error(`IMAP LOGIN ${user}: ${r.status}`);
  }

  async select(mailbox = "INBOX"): Promise<number> {
    const r = await this.cmd(`SELECT ${mailbox}`);
    if (!r.ok) throw new Error(`SELECT: ${r.status}`);
    const exists = r.untagged.map((l) => /^\* (\d+) EXISTS/.exec(l)).find(Boolean);
    return exists ? Number(exists[1]) : 0;
  }

  async messages(mailbox = "INBOX"): Promise<number> {
    const r = await this.cmd(`STATUS ${mailbox} (MESSAGES)`);
    const m = r.untagged.map((l) => /MESSAGES (\d+)/.exec(l)).find(Boolean);
    if (!r.ok || !m) throw new Error(`STATUS: ${r.status}`);
    return Number(m[1]);
  }

  /** Sends IDLE and waits for the continuation. */
  async idle(): Promise<string> {
    const tag = this.nextTag();
    await this.wire.write(`${tag} IDLE\r\n`);
    while (true) {
      const r = await this.response();
      if (r.text.startsWith("+")) return tag;
      if (r.text.startsWith(tag + " ")) throw new Error(`IDLE refused: ${r.text}`);
    }
  }

  /** While idling: resolves with the time the next "* n EXISTS" arrived. */
  async nextExists(): Promise<number> {
    while (true) {
      const r = await this.response();
      if (/^\* \d+ EXISTS/.test(r.text)) return now();
    }
  }

  close(): void {
    this.wire.close();
  }
}

export interface SmtpReply {
  code: number;
  text: string;
}

const enc = new TextEncoder();

export class Smtp {
  readonly wire: Wire;
  pipelining = false;

  private constructor(wire: Wire) {
    this.wire = wire;
  }

  static async connect(port: number, caPem: string, host = "127.0.0.1"): Promise<Smtp> {
    const wire = await Wire.connect(port, caPem, 4096, host);
    const c = new Smtp(wire);
    const g = await c.reply();
    if (g.code !== 220) {
      wire.close();
      throw new Error(`SMTP greeting: ${g.text}`);
    }
    return c;
  }

  async reply(): Promise<SmtpReply> {
    const lines: string[] = [];
    while (true) {
      const line = await this.wire.line();
      lines.push(line);
      if (line[3] !== "-") break;
    }
    return { code: Number(lines[0].slice(0, 3)), text: lines.join("\n") };
  }

  async cmd(line: string): Promise<SmtpReply> {
    await this.wire.write(line + "\r\n");
    return await this.reply();
  }

  /** EHLO and AUTH PLAIN; throws when refused. */
  async login(user: string, pass: string): Promise<void> {
    const e = await this.cmd("EHLO bench.localhost");
    if (e.code !== 250) throw new Error(`EHLO: ${e.text}`);
    this.pipelining = /^250[- ]PIPELINING/m.test(e.text);
    const a = await this.cmd(`AUTH PLAIN ${btoa(`\0${user}\0${pass}`)}`);
    if (a.code !== 235) throw new Error(`AUTH ${user}: ${a.text}`);
  }

  /**
   * One transaction. `head` and `body` together are the message, already dot-stuffed; `body`
   * ends with "\r\n.\r\n". MAIL, RCPT and DATA go in one write when the server offers
   * PIPELINING. Returns the final reply and when the end of data was written.
   */
  async send(
    from: string,
    to: string,
    head: Uint8Array,
    body: Uint8Array,
  ): Promise<SmtpReply & { tDot: number }> {
    const envelope = [`MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, "DATA"];
    const replies: SmtpReply[] = [];
    if (this.pipelining) {
      await this.wire.write(enc.encode(envelope.join("\r\n") + "\r\n"));
      for (let i = 0; i < 3; i++) replies.push(await this.reply());
    } else {
      for (const l of envelope) {
        const r = await this.cmd(l);
        replies.push(r);
        if (r.code >= 400) break;
      }
    }
    const bad = replies.find((r, i) => i < 2 && r.code !== 250);
    const data = replies[2];
    if (bad || !data || data.code !== 354) {
      if (data?.code === 354) {
        // the server accepted DATA although a command before it failed: abort with an empty body
        await this.wire.write(".\r\n");
        await this.reply();
      }
      return { ...(bad ?? data ?? replies[replies.length - 1]), tDot: now() };
    }
    await this.wire.write(head);
    await this.wire.write(body);
    const tDot = now();
    return { ...(await this.reply()), tDot };
  }

  async quit(): Promise<void> {
    try {
      await this.cmd("QUIT");
    } catch {
      // closed already
    }
    this.wire.close();
  }
}
