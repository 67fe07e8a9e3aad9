// The sessions of disconnect chaos, one per listener and kind: well-formed dialogues that a cut
// ends at one named point (chosen by the cycle's seeded generator), at a random byte of what is
// being sent there. Every message a session offers is entered in the ledger as absent (cut before
// its end), unknown (complete, but the answer was never read) or accepted (250 / OK / 200 read).

import { CutConn, CutError, type CutStyle } from "./cut_conn.ts";
import type { Prng } from "./prng.ts";
import { dotStuff } from "./smtp_client.ts";
import { pgpMime } from "./messages.ts";

export interface Cred {
  address: string;
  password: string;
}

export type Port = "smtp" | "submission" | "submissions" | "imap" | "imaps" | "https";

export interface ChaosTarget {
  ports: Record<Port, number>;
  caPem: string;
  senders: Cred[];
  sinks: Cred[];
  /** The account holding the big message, its UID and size. */
  big: Cred & { uid: number; size: number };
  /** Armored OpenPGP payloads of three sizes. */
  payloads: { small: string; medium: string; large: string };
}

export type Fate = "absent" | "unknown" | "accepted";

/** What every offered message must have become: its account and how far its session got. */
export class Ledger {
  readonly entries = new Map<string, { account: string; fate: Fate; how: string }>();

  set(id: string, account: string, fate: Fate, how: string): void {
    this.entries.set(id, { account, fate, how });
  }

  count(fate: Fate): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.fate === fate) n++;
    return n;
  }
}

export interface Cycle {
  index: number;
  rng: Prng;
  style: CutStyle;
  target: ChaosTarget;
  ledger: Ledger;
  localAddress: string;
}

/** A cycle's session, ended at `point` ("end": not cut, it ends as a polite client's does). */
export interface Scenario {
  name: string;
  points: string[];
  run(cx: Cx): Promise<void>;
}

const enc = new TextEncoder();
export const REMOTE_SENDER = "chaos0001@[127.0.0.9]";

/** The cut of one cycle, and the steps that honour it. */
export class Cx {
  /** Every connection the cycle opened (closed by the runner if the cycle gets stuck). */
  readonly conns: CutConn[] = [];
  /** What the cycle did worth saying in a failure (message sizes). */
  readonly notes: string[] = [];
  constructor(readonly cycle: Cycle, readonly point: string) {}

  get rng() {
    return this.cycle.rng;
  }

  async connect(port: Port): Promise<CutConn> {
    const conn = await CutConn.connect({
      port: this.cycle.target.ports[port],
      localAddress: this.cycle.localAddress,
    });
    this.conns.push(conn);
    return conn;
  }

  /** Cuts here when this is the point. */
  at(conn: CutConn, label: string): void {
    if (label !== this.point) return;
    conn.cut(this.cycle.style);
    throw new CutError();
  }

  /** Sends `data`; at the point, a random prefix of it (maybe nothing) and the cut. */
  async send(conn: CutConn, label: string, data: string | Uint8Array): Promise<void> {
    if (label !== this.point) return await conn.write(data);
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    // A quarter of the cuts land in the last few bytes (the end of a line, of DATA).
    const n = this.rng.chance(0.25)
      ? Math.max(0, bytes.length - this.rng.int(1, 5))
      : this.rng.int(0, bytes.length - 1);
    if (n > 0) await conn.write(bytes.subarray(0, n));
    if (this.rng.chance(0.3)) await pause(this.rng.int(0, 200));
    conn.cut(this.cycle.style);
    throw new CutError();
  }

  /** The client side of a TLS handshake; at the point, cut at a random raw byte of it. */
  async tls(conn: CutConn, label: string): Promise<void> {
    if (label === this.point) {
      // The ClientHello is about 300 bytes, the server's first flight about 1.5 KB.
      const out = this.rng.chance(0.5);
      conn.armCut(out ? "out" : "in", this.rng.int(0, out ? 400 : 1800), this.cycle.style);
    }
    await conn.startTls(this.cycle.target.caPem);
  }

  /** A Message-ID that names the cycle, and the message carrying it. */
  message(from: string, to: string): { id: string; bytes: Uint8Array } {
    const id = `c${this.cycle.index}-${this.rng.int(0, 1e9).toString(36)}@chaos.test`;
    const size = this.rng.weighted({ small: 7, medium: 2, large: 1 });
    const text = pgpMime(from, to, this.cycle.target.payloads[size])
      .replace(/^Message-ID: <[^>]+>/m, `Message-ID: <${id}>`);
    const bytes = enc.encode(text);
    this.notes.push(`${size} message of ${bytes.length} bytes`);
    return { id, bytes };
  }
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- SMTP --------------------------------------------------------------------------------------

async function smtpReply(conn: CutConn, what: string): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  while (true) {
    const line = await conn.readLine(what);
    lines.push(line);
    if (line[3] !== "-") return { code: Number(line.slice(0, 3)), text: lines.join("\n") };
  }
}

async function expectCode(conn: CutConn, code: number, what: string): Promise<void> {
  const r = await smtpReply(conn, what);
  if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${r.text}`);
}

function smtpScenario(
  name: string,
  port: Port,
  mode: { implicitTls?: boolean; starttls?: boolean; auth?: boolean },
): Scenario {
  const points = [
    ...(mode.implicitTls ? ["tls"] : []),
    "greeting",
    "ehlo",
    ...(mode.starttls ? ["starttls", "tls", "ehlo-tls"] : []),
    ...(mode.auth ? ["auth"] : []),
    "mail",
    "rcpt",
    "data",
    "pipelined",
    "body",
    "body",
    "body",
    "unread",
    "reply",
    "quit",
    "end",
  ];
  return {
    name,
    points,
    async run(cx) {
      const { target, ledger } = cx.cycle;
      const conn = await cx.connect(port);
      try {
        if (mode.implicitTls) await cx.tls(conn, "tls");
        cx.at(conn, "greeting");
        await expectCode(conn, 220, "greeting");
        await cx.send(conn, "ehlo", "EHLO chaos.test\r\n");
        await expectCode(conn, 250, "EHLO");
        if (mode.starttls) {
          await cx.send(conn, "starttls", "STARTTLS\r\n");
          await expectCode(conn, 220, "STARTTLS");
          await cx.tls(conn, "tls");
          await cx.send(conn, "ehlo-tls", "EHLO chaos.test\r\n");
          await expectCode(conn, 250, "EHLO after STARTTLS");
        }
        const sender = mode.auth ? cx.rng.pick(target.senders) : null;
        if (sender) {
          const token = btoa(`\0${sender.address}\0${sender.password}`);
          await cx.send(conn, "auth", `AUTH PLAIN ${token}\r\n`);
          await expectCode(conn, 235, "AUTH");
        }
        const from = sender?.address ?? REMOTE_SENDER;
        const sink = cx.rng.pick(target.sinks).address;
        const msg = cx.message(from, sink);
        ledger.set(msg.id, sink, "absent", `${name} cut at ${cx.point}`);
        const envelope: [string, string, number][] = [
          ["mail", `MAIL FROM:<${from}>\r\n`, 250],
          ["rcpt", `RCPT TO:<${sink}>\r\n`, 250],
          ["data", "DATA\r\n", 354],
        ];
        // RFC 2920: the three may go out together; cut somewhere in them.
        if (cx.point === "pipelined") {
          await cx.send(conn, "pipelined", envelope.map(([, line]) => line).join(""));
        }
        for (const [label, line, code] of envelope) {
          await cx.send(conn, label, line);
          const r = await smtpReply(conn, label.toUpperCase());
          if (label === "mail" && r.code === 530 && !conn.isTls) {
            // A relay may want STARTTLS on 25 before any mail (as the reference's Postfix
            // does): a plain session then ends here, politely.
            ledger.set(msg.id, sink, "absent", `${name}: MAIL refused before TLS`);
            await cx.send(conn, "quit", "QUIT\r\n");
            await expectCode(conn, 221, "QUIT");
            return;
          }
          if (r.code !== code) {
            throw new Error(`${label.toUpperCase()}: expected ${code}, got ${r.text}`);
          }
        }
        const body = concat(dotStuff(msg.bytes), enc.encode(".\r\n"));
        await cx.send(conn, "body", body);
        ledger.set(msg.id, sink, "unknown", `${name}: DATA complete, reply not read`);
        cx.at(conn, "unread");
        const r = await smtpReply(conn, "DATA end");
        if (r.code !== 250) {
          ledger.set(msg.id, sink, "absent", `${name}: refused ${r.text}`);
          throw new Error(`${name}: DATA refused: ${r.text}`);
        }
        ledger.set(msg.id, sink, "accepted", `${name}: 250`);
        cx.at(conn, "reply");
        await cx.send(conn, "quit", "QUIT\r\n");
        await expectCode(conn, 221, "QUIT");
      } finally {
        conn.close();
      }
    },
  };
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- IMAP --------------------------------------------------------------------------------------

/** One response line with small literals inlined (big ones skipped, noted as {n}). */
export async function imapLine(conn: CutConn, what: string): Promise<string> {
  let text = await conn.readLine(what);
  while (true) {
    const m = /~?\{(\d+)\+?\}$/.exec(text);
    if (!m) return text;
    const n = Number(m[1]);
    if (n <= 65536) text += "\r\n" + new TextDecoder().decode(await conn.readExact(n, what));
    else await conn.skip(n, what);
    text += await conn.readLine(what);
  }
}

/** Reads up to the tagged status of `tag`; fails unless it is OK. */
export async function imapTagged(conn: CutConn, tag: string, what: string): Promise<string[]> {
  const untagged: string[] = [];
  while (true) {
    const line = await imapLine(conn, what);
    if (line.startsWith(`${tag} `)) {
      if (!line.startsWith(`${tag} OK`)) throw new Error(`${what}: ${line}`);
      untagged.push(line);
      return untagged;
    }
    untagged.push(line);
  }
}

/** A continuation request ("+ ..."), passing over untagged data before it. */
async function imapContinuation(conn: CutConn, what: string): Promise<void> {
  while (true) {
    const line = await imapLine(conn, what);
    if (line.startsWith("+")) return;
    if (!line.startsWith("* ")) throw new Error(`${what}: expected a continuation, got ${line}`);
  }
}

type ImapKind = "preauth" | "append" | "fetch" | "idle";

function imapScenario(
  name: string,
  port: Port,
  mode: { implicitTls?: boolean; starttls?: boolean; compress?: boolean; kind: ImapKind },
): Scenario {
  const tlsPoints = mode.implicitTls ? ["tls"] : mode.starttls ? ["starttls", "tls"] : [];
  const plain = !mode.implicitTls && !mode.starttls;
  const loginPoints = plain
    ? ["login", "logout"]
    : mode.kind === "preauth"
    ? ["login", "login-user", "login-password", "logout"]
    : ["login", ...(mode.compress ? ["compress", "compressed"] : [])];
  const kindPoints: Record<ImapKind, string[]> = {
    preauth: [],
    append: ["append", "literal", "literal", "literal", "literal-end", "unread", "reply"],
    fetch: ["select", "fetch", "stall", "stall", "mid", "mid", "mid", "mid", "after"],
    idle: ["select", "idle", "idling", "idling", "idling", "done"],
  };
  return {
    name,
    // "end": no cut, the session ends with LOGOUT.
    points: [
      ...tlsPoints,
      "greeting",
      "capability",
      ...loginPoints,
      ...kindPoints[mode.kind],
      "end",
    ],
    async run(cx) {
      const { target, ledger } = cx.cycle;
      const conn = await cx.connect(port);
      try {
        if (mode.implicitTls) await cx.tls(conn, "tls");
        cx.at(conn, "greeting");
        const greeting = await imapLine(conn, "greeting");
        if (!greeting.startsWith("* OK")) throw new Error(`greeting: ${greeting}`);
        await cx.send(conn, "capability", "a1 CAPABILITY\r\n");
        await imapTagged(conn, "a1", "CAPABILITY");
        if (mode.starttls) {
          await cx.send(conn, "starttls", "a2 STARTTLS\r\n");
          await imapTagged(conn, "a2", "STARTTLS");
          await cx.tls(conn, "tls");
        }
        if (!conn.isTls) {
          // Plain 143 before STARTTLS: LOGIN is refused (LOGINDISABLED); cut it or see it refused.
          await cx.send(conn, "login", "a3 LOGIN nobody00 password\r\n");
          const line = await imapLine(conn, "LOGIN without TLS");
          if (!/^a3 (NO|BAD) /.test(line)) throw new Error(`LOGIN without TLS: ${line}`);
          await cx.send(conn, "logout", "a9 LOGOUT\r\n");
          await imapTagged(conn, "a9", "LOGOUT");
          return;
        }
        const user = mode.kind === "fetch"
          ? target.big
          : mode.kind === "append" || mode.kind === "idle"
          ? cx.rng.pick(target.sinks)
          : cx.rng.pick(target.senders);
        if (mode.kind === "preauth") {
          // LOGIN with both strings as synchronizing literals (RFC 9051 §4.3).
          await cx.send(conn, "login", `a3 LOGIN {${user.address.length}}\r\n`);
          await imapContinuation(conn, "LOGIN literal");
          await cx.send(conn, "login-user", `${user.address} {${user.password.length}}\r\n`);
          await imapContinuation(conn, "LOGIN second literal");
          await cx.send(conn, "login-password", `${user.password}\r\n`);
          await imapTagged(conn, "a3", "LOGIN");
          await cx.send(conn, "logout", "a9 LOGOUT\r\n");
          await imapTagged(conn, "a9", "LOGOUT");
          return;
        }
        await cx.send(conn, "login", `a3 LOGIN "${user.address}" "${user.password}"\r\n`);
        await imapTagged(conn, "a3", "LOGIN");
        if (mode.compress) {
          await cx.send(conn, "compress", "a4 COMPRESS DEFLATE\r\n");
          await imapTagged(conn, "a4", "COMPRESS");
          conn.startCompression();
          cx.at(conn, "compressed");
        }
        if (mode.kind === "append") await append(cx, conn, user, ledger);
        else if (mode.kind === "fetch") await fetchBig(cx, conn);
        else await idle(cx, conn);
        await conn.write("a9 LOGOUT\r\n");
        await imapTagged(conn, "a9", "LOGOUT");
      } finally {
        conn.close();
      }
    },
  };
}

async function append(cx: Cx, conn: CutConn, user: Cred, ledger: Ledger): Promise<void> {
  const msg = cx.message(REMOTE_SENDER, user.address);
  ledger.set(msg.id, user.address, "absent", `APPEND cut at ${cx.point}`);
  // LITERAL+ (RFC 7888) half of the time: the literal follows without waiting.
  const plus = cx.rng.chance(0.5);
  await cx.send(
    conn,
    "append",
    `a5 APPEND INBOX (\\Seen) {${msg.bytes.length}${plus ? "+" : ""}}\r\n`,
  );
  if (!plus) await imapContinuation(conn, "APPEND literal");
  await cx.send(conn, "literal", msg.bytes);
  // The literal is whole; the command ends with its CRLF. Stored or not is the server's call.
  ledger.set(msg.id, user.address, "unknown", `APPEND: literal sent, cut at ${cx.point}`);
  await cx.send(conn, "literal-end", "\r\n");
  cx.at(conn, "unread");
  await imapTagged(conn, "a5", "APPEND");
  ledger.set(msg.id, user.address, "accepted", "APPEND: OK");
  cx.at(conn, "reply");
}

async function fetchBig(cx: Cx, conn: CutConn): Promise<void> {
  const { big } = cx.cycle.target;
  await cx.send(conn, "select", "a5 SELECT INBOX\r\n");
  await imapTagged(conn, "a5", "SELECT");
  await cx.send(conn, "fetch", `a6 UID FETCH ${big.uid} BODY.PEEK[]\r\n`);
  if (cx.point === "stall") {
    // Stop reading: the server's writes back up; then vanish.
    conn.stall();
    await pause(cx.rng.int(0, 1000));
    cx.at(conn, "stall");
  }
  const head = await conn.readLine("FETCH");
  const m = /\{(\d+)\}$/.exec(head);
  if (!m || Number(m[1]) !== big.size) throw new Error(`FETCH: ${head}`);
  if (cx.point === "mid") {
    await conn.skip(cx.rng.int(0, big.size), "FETCH literal");
    if (cx.rng.chance(0.3)) {
      conn.stall();
      await pause(cx.rng.int(0, 300));
    }
    cx.at(conn, "mid");
  }
  await conn.skip(big.size, "FETCH literal");
  await imapTagged(conn, "a6", "FETCH");
  cx.at(conn, "after");
}

async function idle(cx: Cx, conn: CutConn): Promise<void> {
  await cx.send(conn, "select", "a5 SELECT INBOX\r\n");
  await imapTagged(conn, "a5", "SELECT");
  await cx.send(conn, "idle", "a6 IDLE\r\n");
  await imapContinuation(conn, "IDLE");
  if (cx.point === "idling") {
    // Inside IDLE while other cycles deliver: take what comes for a while, then vanish.
    await pause(cx.rng.int(0, 500));
    cx.at(conn, "idling");
  }
  await cx.send(conn, "done", "DONE\r\n");
  await imapTagged(conn, "a6", "IDLE");
}

// ---- HTTPS -------------------------------------------------------------------------------------

async function httpStatus(conn: CutConn, what: string): Promise<number> {
  const line = await conn.readLine(what);
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(line);
  if (!m) throw new Error(`${what}: ${line}`);
  return Number(m[1]);
}

function httpsNewScenario(): Scenario {
  return {
    name: "https /new",
    points: ["tls", "request", "request", "unread", "reply", "end"],
    async run(cx) {
      const conn = await cx.connect("https");
      try {
        await cx.tls(conn, "tls");
        await cx.send(
          conn,
          "request",
          "POST /new HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        );
        cx.at(conn, "unread");
        const status = await httpStatus(conn, "POST /new");
        // 429 is the rate limit per address, a correct answer too.
        if (status !== 200 && status !== 429) throw new Error(`POST /new: ${status}`);
        cx.at(conn, "reply");
      } finally {
        conn.close();
      }
    },
  };
}

function mxdelivScenario(): Scenario {
  return {
    name: "https /mxdeliv",
    points: ["tls", "headers", "body", "body", "body", "unread", "reply", "end"],
    async run(cx) {
      const { target, ledger } = cx.cycle;
      const conn = await cx.connect("https");
      try {
        await cx.tls(conn, "tls");
        const sink = cx.rng.pick(target.sinks).address;
        const msg = cx.message(REMOTE_SENDER, sink);
        ledger.set(msg.id, sink, "absent", `/mxdeliv cut at ${cx.point}`);
        await cx.send(
          conn,
          "headers",
          "POST /mxdeliv HTTP/1.1\r\nHost: localhost\r\n" +
            `X-Mail-From: ${REMOTE_SENDER}\r\nX-Mail-To: ${sink}\r\n` +
            `Content-Type: message/rfc822\r\nContent-Length: ${msg.bytes.length}\r\n\r\n`,
        );
        await cx.send(conn, "body", msg.bytes);
        ledger.set(msg.id, sink, "unknown", "/mxdeliv: body sent, answer not read");
        cx.at(conn, "unread");
        const status = await httpStatus(conn, "POST /mxdeliv");
        if (status !== 200) {
          ledger.set(msg.id, sink, "absent", `/mxdeliv: ${status}`);
          throw new Error(`POST /mxdeliv: ${status}`);
        }
        ledger.set(msg.id, sink, "accepted", "/mxdeliv: 200");
        cx.at(conn, "reply");
      } finally {
        conn.close();
      }
    },
  };
}

// ---- the catalogue -----------------------------------------------------------------------------

/** Every listener and session kind, with its share of the cycles. */
export const SCENARIOS: { scenario: Scenario; weight: number }[] = [
  { scenario: smtpScenario("25 inbound", "smtp", {}), weight: 3 },
  { scenario: smtpScenario("25 inbound STARTTLS", "smtp", { starttls: true }), weight: 3 },
  {
    scenario: smtpScenario("587 submission", "submission", { starttls: true, auth: true }),
    weight: 3,
  },
  {
    scenario: smtpScenario("465 submission", "submissions", { implicitTls: true, auth: true }),
    weight: 3,
  },
  { scenario: imapScenario("143 plain", "imap", { kind: "preauth" }), weight: 1 },
  {
    scenario: imapScenario("143 STARTTLS login", "imap", { starttls: true, kind: "preauth" }),
    weight: 1,
  },
  {
    scenario: imapScenario("143 STARTTLS append", "imap", { starttls: true, kind: "append" }),
    weight: 1,
  },
  {
    scenario: imapScenario("143 STARTTLS idle", "imap", { starttls: true, kind: "idle" }),
    weight: 1,
  },
  {
    scenario: imapScenario("993 login", "imaps", { implicitTls: true, kind: "preauth" }),
    weight: 1,
  },
  {
    scenario: imapScenario("993 append", "imaps", { implicitTls: true, kind: "append" }),
    weight: 2,
  },
  {
    scenario: imapScenario("993 fetch 20 MB", "imaps", { implicitTls: true, kind: "fetch" }),
    weight: 1,
  },
  { scenario: imapScenario("993 idle", "imaps", { implicitTls: true, kind: "idle" }), weight: 2 },
  {
    scenario: imapScenario("993 COMPRESS append", "imaps", {
      implicitTls: true,
      compress: true,
      kind: "append",
    }),
    weight: 2,
  },
  {
    scenario: imapScenario("993 COMPRESS fetch 20 MB", "imaps", {
      implicitTls: true,
      compress: true,
      kind: "fetch",
    }),
    weight: 1,
  },
  {
    scenario: imapScenario("993 COMPRESS idle", "imaps", {
      implicitTls: true,
      compress: true,
      kind: "idle",
    }),
    weight: 2,
  },
  { scenario: httpsNewScenario(), weight: 2 },
  { scenario: mxdelivScenario(), weight: 3 },
];
