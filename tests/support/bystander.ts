// A well-behaved client beside a load: one IMAP session (993) doing NOOP, SELECT and FETCH, and
// one submission session (465) sending to itself, in loops until stopped. Every command must be
// answered (30 s deadline each); the latencies are kept for the report, never asserted on.

import { CutConn } from "./cut_conn.ts";
import { concat, type Cred, imapTagged, type Ledger, pause } from "./chaos_scenarios.ts";
import { dotStuff } from "./smtp_client.ts";
import { pgpMime } from "./messages.ts";

const enc = new TextEncoder();

export interface BystanderReport {
  imapCommands: number;
  submissions: number;
  /** Milliseconds per command or submission. */
  latencies: number[];
  error: Error | null;
}

export class Bystander {
  #stopped = false;
  #loops: Promise<void>[] = [];
  readonly report: BystanderReport = {
    imapCommands: 0,
    submissions: 0,
    latencies: [],
    error: null,
  };

  private constructor() {}

  /**
   * Starts both loops. `pauseMs` spaces the operations (a phone's pace, not a flood); every
   * submission that gets 250 goes into the ledger as accepted.
   */
  static async start(options: {
    ports: { imaps: number; submissions: number };
    caPem: string;
    user: Cred;
    ledger: Ledger;
    localAddress: string;
    payload: string;
    pauseMs?: number;
  }): Promise<Bystander> {
    const b = new Bystander();
    const connect = async (port: number) => {
      const c = await CutConn.connect({ port, localAddress: options.localAddress });
      await c.startTls(options.caPem);
      return c;
    };
    const imap = await connect(options.ports.imaps);
    const smtp = await connect(options.ports.submissions);
    const gap = options.pauseMs ?? 20;
    const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const out = await fn();
      b.report.latencies.push(performance.now() - t0);
      return out;
    };
    await imap.readLine("IMAP greeting");
    await imap.write(`l LOGIN "${options.user.address}" "${options.user.password}"\r\n`);
    await imapTagged(imap, "l", "bystander LOGIN");
    await smtpExpect(smtp, 220);
    await smtp.write("EHLO bystander.test\r\n");
    await smtpExpect(smtp, 250);
    await smtp.write(
      `AUTH PLAIN ${btoa(`\0${options.user.address}\0${options.user.password}`)}\r\n`,
    );
    await smtpExpect(smtp, 235);
    const guard = (loop: () => Promise<void>, conn: CutConn) =>
      loop().catch((err) => {
        b.report.error ??= err as Error;
      }).finally(() => conn.close());
    b.#loops.push(guard(async () => {
      let tag = 0;
      while (!b.#stopped) {
        const step = tag % 3;
        const t = `b${++tag}`;
        const lines = await timed(async () => {
          await imap.write(
            step === 0
              ? `${t} NOOP\r\n`
              : step === 1
              ? `${t} SELECT INBOX\r\n`
              : `${t} FETCH * (FLAGS BODY.PEEK[])\r\n`,
          );
          return await imapTagged(imap, t, "bystander IMAP");
        });
        if (step === 1 && lines.some((l) => l === "* 0 EXISTS")) tag++; // nothing to FETCH yet
        b.report.imapCommands++;
        await pause(gap);
      }
      await imap.write("z LOGOUT\r\n");
      await imapTagged(imap, "z", "bystander LOGOUT");
    }, imap));
    b.#loops.push(guard(async () => {
      let n = 0;
      while (!b.#stopped) {
        const id = `bystander-${++n}-${crypto.randomUUID()}@chaos.test`;
        const msg = pgpMime(options.user.address, options.user.address, options.payload)
          .replace(/^Message-ID: <[^>]+>/m, `Message-ID: <${id}>`);
        const a = options.user.address;
        await timed(async () => {
          await smtp.write(`MAIL FROM:<${a}>\r\nRCPT TO:<${a}>\r\nDATA\r\n`);
          await smtpExpect(smtp, 250);
          await smtpExpect(smtp, 250);
          await smtpExpect(smtp, 354);
          await smtp.write(concat(dotStuff(enc.encode(msg)), enc.encode(".\r\n")));
          await smtpExpect(smtp, 250);
        });
        options.ledger.set(id, a, "accepted", "bystander: 250");
        b.report.submissions++;
        await pause(gap);
      }
      await smtp.write("QUIT\r\n");
      await smtpExpect(smtp, 221);
    }, smtp));
    return b;
  }

  /** Ends both loops after their current operation; resolves with the report. */
  async stop(): Promise<BystanderReport> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    return this.report;
  }
}

async function smtpExpect(conn: CutConn, code: number): Promise<void> {
  let line: string;
  do line = await conn.readLine(`bystander SMTP ${code}`); while (line[3] === "-");
  if (Number(line.slice(0, 3)) !== code) {
    throw new Error(`bystander: expected ${code}, got ${line}`);
  }
}

/** Message-ID → how many times it is in the account's INBOX (over 993). */
export async function countMessageIds(
  options: { port: number; caPem: string; user: Cred },
): Promise<Map<string, number>> {
  const c = await CutConn.connect({ port: options.port, timeoutMs: 120_000 });
  try {
    await c.startTls(options.caPem);
    await c.readLine("greeting");
    await c.write(`l LOGIN "${options.user.address}" "${options.user.password}"\r\n`);
    await imapTagged(c, "l", "LOGIN");
    await c.write("s SELECT INBOX\r\n");
    const sel = await imapTagged(c, "s", "SELECT");
    const counts = new Map<string, number>();
    if (sel.includes("* 0 EXISTS")) return counts;
    await c.write("f FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n");
    for (const line of await imapTagged(c, "f", "FETCH Message-IDs")) {
      const id = /Message-ID:\s*<([^>]+)>/i.exec(line)?.[1];
      if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  } finally {
    c.close();
  }
}
