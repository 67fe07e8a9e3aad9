// The SMTP session state machine against an in-memory connection and a recording backend: every
// command, sequence error and limit, with no sockets, TLS or relay behind it.

import { createLogger } from "../log/mod.ts";
import assert from "node:assert/strict";
import {
  type Connection,
  ConnectionClosedError,
  DeadlineError,
  type DeadlineOptions,
  type EndReason,
  IdleTimeoutError,
  LineTooLongError,
} from "../net/mod.ts";
import type { SmtpBackend, SmtpDataTransaction, SmtpEnvelope, SmtpReply } from "./backend.ts";
import { SmtpSession, type SmtpSessionOptions } from "./session.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connection whose other end is the test: it feeds bytes in and reads the replies out. */
class MemoryConnection implements Connection {
  readonly id = "t1";
  readonly remoteAddress = "192.0.2.7";
  readonly localPort = 587;
  isTls: boolean;
  readonly isCompressed = false;
  closed = false;
  idleMs = 0;
  #in = new Uint8Array(0);
  #ended = false;
  #failure: Error | null = null;
  #inWaiter: (() => void) | null = null;
  #out = "";
  #outWaiter: (() => void) | null = null;

  constructor(tls: boolean) {
    this.isTls = tls;
  }

  // --- the test's side ---
  feed(text: string | Uint8Array) {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    const next = new Uint8Array(this.#in.length + bytes.length);
    next.set(this.#in);
    next.set(bytes, this.#in.length);
    this.#in = next;
    this.#wakeIn();
  }
  /** The client goes away. */
  end() {
    this.#ended = true;
    this.#wakeIn();
  }
  /** The inactivity limit (or, given, the deadline) passes: the pending read fails. */
  idle(failure: IdleTimeoutError = new IdleTimeoutError()) {
    this.#failure = failure;
    this.#wakeIn();
  }
  /** Everything the session wrote and the test has not read yet. */
  get pending() {
    return this.#out;
  }
  /** The next complete reply (all its lines), waiting for it. */
  async reply(): Promise<string> {
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.#out);
      if (m) {
        this.#out = this.#out.slice(m[0].length);
        return m[0].replace(/\r\n$/, "");
      }
      if (this.closed) throw new Error(`closed; unread: ${JSON.stringify(this.#out)}`);
      await new Promise<void>((r) => (this.#outWaiter = r));
    }
  }

  #wakeIn() {
    const w = this.#inWaiter;
    this.#inWaiter = null;
    w?.();
  }
  async #waitIn() {
    if (this.#failure) {
      const f = this.#failure;
      this.#failure = null;
      throw f;
    }
    await new Promise<void>((r) => (this.#inWaiter = r));
    if (this.#failure) {
      const f = this.#failure;
      this.#failure = null;
      throw f;
    }
  }

  // --- the session's side (the Connection interface) ---
  async readLine(maxBytes: number): Promise<Uint8Array | null> {
    for (;;) {
      const lf = this.#in.indexOf(10);
      if (lf >= 0) {
        const line = this.#in.slice(0, lf > 0 && this.#in[lf - 1] === 13 ? lf - 1 : lf);
        this.#in = this.#in.slice(lf + 1);
        if (line.length > maxBytes) throw new LineTooLongError(maxBytes);
        return line;
      }
      if (this.#ended) return null;
      await this.#waitIn();
    }
  }
  async readExact(n: number): Promise<Uint8Array | null> {
    while (this.#in.length < n) {
      if (this.#ended) return null;
      await this.#waitIn();
    }
    const out = this.#in.slice(0, n);
    this.#in = this.#in.slice(n);
    return out;
  }
  async readExactChunks(
    n: number,
    onChunk: (chunk: Uint8Array) => void | Promise<void>,
  ): Promise<boolean> {
    const all = await this.readExact(n);
    if (all === null) return false;
    await onChunk(all);
    return true;
  }
  async readChunk(): Promise<Uint8Array | null> {
    while (this.#in.length === 0) {
      if (this.#ended) return null;
      await this.#waitIn();
    }
    const out = this.#in;
    this.#in = new Uint8Array(0);
    return out;
  }
  whenLine(): void {
    throw new Error("SMTP does not wait for lines this way");
  }
  unread(bytes: Uint8Array): void {
    const next = new Uint8Array(bytes.length + this.#in.length);
    next.set(bytes);
    next.set(this.#in, bytes.length);
    this.#in = next;
  }
  bufferedBytes(): number {
    return this.#in.length;
  }
  /** Calls of write() (a pipelined group's replies should come in one). */
  writes = 0;
  write(data: string | Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    this.writes++;
    this.#out += typeof data === "string" ? data : dec.decode(data);
    const w = this.#outWaiter;
    this.#outWaiter = null;
    w?.();
    return Promise.resolve();
  }
  async startTls(goAhead: string): Promise<void> {
    await this.write(goAhead);
    this.isTls = true;
  }
  startCompression(): Promise<void> {
    return Promise.reject(new Error("not in SMTP"));
  }
  setIdleTimeout(ms: number): void {
    this.idleMs = ms;
  }
  /** Every setDeadline() call, in order (0: cleared), and the options of the last. */
  deadlines: number[] = [];
  deadlineOptions: DeadlineOptions | undefined;
  get deadlineMs(): number {
    return this.deadlines.at(-1) ?? 0;
  }
  setDeadline(ms: number, options?: DeadlineOptions): void {
    this.deadlines.push(ms);
    this.deadlineOptions = options;
  }
  readAhead = 0;
  setReadAhead(bytes = 1 << 20): void {
    this.readAhead = bytes;
  }
  abort(): void {
    void this.close();
  }
  close(): Promise<void> {
    this.closed = true;
    this.#ended = true;
    this.#wakeIn();
    this.#outWaiter?.();
    return Promise.resolve();
  }
}

const reply = (code: number, enhanced: string, text: string): SmtpReply => ({
  code,
  enhanced,
  text,
});

/** A backend that records every call and answers from settable rules. */
class RecordingBackend implements SmtpBackend {
  calls: string[] = [];
  submitted: { login: string; envelope: SmtpEnvelope; message: string }[] = [];
  received: { envelope: SmtpEnvelope; message: string }[] = [];
  passwords: Record<string, string> = { "alice@example.org": "secret-pw" };
  refuseSender: SmtpReply | null = null;
  refuseRecipients = new Map<string, SmtpReply>();
  answer: SmtpReply = reply(250, "2.0.0", "Queued");
  fail = false;

  authenticate(user: string, password: string, ip: string) {
    this.calls.push(`auth ${user} ${ip}`);
    return Promise.resolve(
      this.passwords[user] === password
        ? { address: user }
        : { reply: reply(535, "5.7.8", "Authentication credentials invalid") },
    );
  }
  checkSender(login: string, mailFrom: string) {
    this.calls.push(`sender ${login} ${mailFrom}`);
    return this.refuseSender;
  }
  checkRecipient(address: string, mode: "inbound" | "submission") {
    this.calls.push(`rcpt ${address} ${mode}`);
    return Promise.resolve(this.refuseRecipients.get(address) ?? null);
  }
  /** Transactions given up (too large, malformed, cut off): nothing of them may be kept. */
  aborted = 0;
  beginData(envelope: SmtpEnvelope, login: string | null): SmtpDataTransaction {
    const chunks: string[] = [];
    const text = new TextDecoder();
    return {
      write: (chunk) => {
        chunks.push(text.decode(chunk, { stream: true }));
        return Promise.resolve();
      },
      end: () => {
        if (this.fail) return Promise.reject(new Error("store is gone"));
        const message = chunks.join("") + text.decode();
        if (login) this.submitted.push({ login, envelope, message });
        else this.received.push({ envelope, message });
        return Promise.resolve(this.answer);
      },
      abort: () => {
        this.aborted++;
        return Promise.resolve();
      },
    };
  }
}

interface Harness {
  conn: MemoryConnection;
  backend: RecordingBackend;
  /** Sends one line and returns the reply to it. */
  cmd(line: string): Promise<string>;
  replies: { stage: string; code: number }[];
  results: { kind: string; code: number; bytes: number }[];
  /** The session's run(): resolves when the session ended. */
  done: Promise<EndReason>;
  abort: AbortController;
}

function session(
  options: Partial<SmtpSessionOptions> & { tls?: boolean } = {},
): Harness {
  const conn = new MemoryConnection(options.tls ?? true);
  const backend = new RecordingBackend();
  const replies: Harness["replies"] = [];
  const results: Harness["results"] = [];
  const abort = new AbortController();
  const s = new SmtpSession(conn, {
    mode: "submission",
    hostname: "mx.example.org",
    maxMessageBytes: 1000,
    maxRecipients: 3,
    startTlsAvailable: !(options.tls ?? true),
    maxErrors: 10,
    hooks: {
      onReply: (stage, r) => replies.push({ stage, code: r.code }),
      onResult: (kind, code, bytes) => results.push({ kind, code, bytes }),
    },
    ...options,
  }, backend);
  const done = s.run(abort.signal);
  return {
    conn,
    backend,
    replies,
    results,
    done,
    abort,
    async cmd(line) {
      conn.feed(line + "\r\n");
      return await conn.reply();
    },
  };
}

/** After the session's pending microtasks: it has gone on to wait for the next command. */
const settled = () => new Promise((r) => setTimeout(r, 0));

const plain = (user: string, pw: string) => btoa(`\0${user}\0${pw}`);
const b64 = (s: string) => btoa(s);

/** Greeting, EHLO and AUTH PLAIN as alice: a session ready for MAIL. */
async function loggedIn(options: Parameters<typeof session>[0] = {}) {
  const h = session(options);
  assert.equal(await h.conn.reply(), "220 mx.example.org ESMTP");
  assert.match(await h.cmd("EHLO client.example"), /^250 /m);
  assert.equal(
    await h.cmd(`AUTH PLAIN ${plain("alice@example.org", "secret-pw")}`),
    "235 2.7.0 Authentication successful",
  );
  return h;
}

async function quit(h: Harness) {
  assert.equal(await h.cmd("QUIT"), "221 2.0.0 Bye");
  await h.done;
  assert.equal(h.conn.closed, true);
}

Deno.test("greeting and EHLO: extensions by listener and TLS state; HELO; EHLO needs a name", async () => {
  const clear = session({ tls: false });
  assert.equal(await clear.conn.reply(), "220 mx.example.org ESMTP");
  assert.equal(await clear.cmd("EHLO"), "501 5.5.4 Syntax: EHLO hostname");
  assert.equal(
    await clear.cmd("EHLO client.example"),
    [
      "250-mx.example.org",
      "250-PIPELINING",
      "250-SIZE 1000",
      "250-8BITMIME",
      "250-ENHANCEDSTATUSCODES",
      "250-SMTPUTF8",
      "250 STARTTLS",
    ].join("\r\n"),
  );
  // Before TLS: no AUTH offered, and asking for it is refused.
  assert.equal(
    await clear.cmd(`AUTH PLAIN ${plain("alice@example.org", "secret-pw")}`),
    "530 5.7.0 Must issue a STARTTLS command first",
  );
  assert.equal(
    await clear.cmd("MAIL FROM:<alice@example.org>"),
    "530 5.7.0 Must issue a STARTTLS command first",
  );
  await quit(clear);

  const tls = session({ tls: true });
  await tls.conn.reply();
  const ehlo = await tls.cmd("EHLO client.example");
  assert.match(ehlo, /^250 AUTH PLAIN LOGIN$/m);
  assert.doesNotMatch(ehlo, /STARTTLS/);
  assert.equal(await tls.cmd("HELO client.example"), "250 mx.example.org");
  await quit(tls);

  const inbound = session({ mode: "inbound", tls: true });
  await inbound.conn.reply();
  assert.doesNotMatch(await inbound.cmd("EHLO relay.example"), /AUTH/);
  assert.equal(await inbound.cmd("AUTH PLAIN AGFAYg=="), "502 5.5.1 AUTH not available here");
  await quit(inbound);
  assert.deepEqual(inbound.backend.calls, []);
});

Deno.test("STARTTLS: go-ahead, then everything learned before is forgotten; pipelined data refused", async () => {
  const h = session({ tls: false });
  await h.conn.reply();
  await h.cmd("EHLO client.example");
  assert.equal(await h.cmd("STARTTLS now"), "501 5.5.4 Syntax: STARTTLS");
  assert.equal(await h.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS");
  assert.equal(h.conn.isTls, true);
  // RFC 3207 §4.2: EHLO again before anything else.
  assert.equal(await h.cmd("AUTH PLAIN AGFAYg=="), "503 5.5.1 Send EHLO first");
  assert.match(await h.cmd("EHLO client.example"), /^250 AUTH PLAIN LOGIN$/m);
  assert.equal(await h.cmd("STARTTLS"), "503 5.5.1 TLS already active or not available");
  await quit(h);

  // A command sent in the same packet as STARTTLS could have been injected before TLS.
  const injected = session({ tls: false });
  await injected.conn.reply();
  await injected.cmd("EHLO client.example");
  injected.conn.feed("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
  assert.equal(
    await injected.conn.reply(),
    "501 5.5.4 Data after STARTTLS refused, closing connection",
  );
  await injected.done;
  assert.equal(injected.conn.closed, true);
  assert.equal(injected.conn.isTls, false);
});

Deno.test("AUTH PLAIN: initial response, continuation, cancel, malformed, wrong, twice", async () => {
  const h = session();
  await h.conn.reply();
  assert.equal(await h.cmd("AUTH PLAIN"), "503 5.5.1 Send EHLO first");
  await h.cmd("EHLO client.example");
  // Continuation: an empty 334, then the response; "*" cancels.
  assert.equal(await h.cmd("AUTH PLAIN"), "334 ");
  assert.equal(await h.cmd("*"), "501 5.0.0 Authentication cancelled");
  assert.equal(await h.cmd("AUTH PLAIN !!!notbase64"), "501 5.5.2 Malformed AUTH PLAIN response");
  assert.equal(
    await h.cmd(`AUTH PLAIN ${b64("no separators")}`),
    "501 5.5.2 Malformed AUTH PLAIN response",
  );
  assert.equal(await h.cmd("AUTH CRAM-MD5"), "504 5.5.4 Unrecognized authentication mechanism");
  assert.equal(
    await h.cmd(`AUTH PLAIN ${plain("alice@example.org", "wrong")}`),
    "535 5.7.8 Authentication credentials invalid",
  );
  assert.equal(await h.cmd("AUTH PLAIN"), "334 ");
  assert.equal(
    await h.cmd(plain("alice@example.org", "secret-pw")),
    "235 2.7.0 Authentication successful",
  );
  assert.equal(await h.cmd("AUTH PLAIN AGFAYg=="), "503 5.5.1 Already authenticated");
  await quit(h);
  // The backend saw both attempts with the client's address; the metrics hook both answers.
  assert.deepEqual(h.backend.calls, [
    "auth alice@example.org 192.0.2.7",
    "auth alice@example.org 192.0.2.7",
  ]);
  assert.deepEqual(h.replies, [{ stage: "auth", code: 535 }, { stage: "auth", code: 235 }]);
});

Deno.test("AUTH LOGIN: username and password challenges, cancel and bad base64 at each step", async () => {
  const h = session();
  await h.conn.reply();
  await h.cmd("EHLO client.example");
  assert.equal(await h.cmd("AUTH LOGIN"), `334 ${b64("Username:")}`);
  assert.equal(await h.cmd("*"), "501 5.0.0 Authentication cancelled");
  assert.equal(await h.cmd("AUTH LOGIN"), `334 ${b64("Username:")}`);
  assert.equal(await h.cmd("%%%"), "501 5.5.2 Malformed base64");
  assert.equal(await h.cmd(`AUTH LOGIN ${b64("alice@example.org")}`), `334 ${b64("Password:")}`);
  assert.equal(await h.cmd("%%%"), "501 5.5.2 Malformed base64");
  assert.equal(await h.cmd(`AUTH LOGIN ${b64("alice@example.org")}`), `334 ${b64("Password:")}`);
  assert.equal(await h.cmd("*"), "501 5.0.0 Authentication cancelled");
  assert.equal(await h.cmd("AUTH LOGIN"), `334 ${b64("Username:")}`);
  assert.equal(await h.cmd(b64("alice@example.org")), `334 ${b64("Password:")}`);
  assert.equal(await h.cmd(b64("secret-pw")), "235 2.7.0 Authentication successful");
  await quit(h);
  assert.deepEqual(h.backend.calls, ["auth alice@example.org 192.0.2.7"]);
});

Deno.test("a client that vanishes inside an AUTH exchange ends the session quietly", async () => {
  const h = session();
  await h.conn.reply();
  await h.cmd("EHLO client.example");
  assert.equal(await h.cmd("AUTH LOGIN"), `334 ${b64("Username:")}`);
  h.conn.end();
  await h.done;
  assert.equal(h.conn.pending, "");
  assert.deepEqual(h.backend.calls, []);
});

Deno.test("MAIL and RCPT: sequence, syntax, parameters, size, sender and recipient checks", async () => {
  const h = session({ maxErrors: 50 });
  await h.conn.reply();
  assert.equal(await h.cmd("MAIL FROM:<alice@example.org>"), "503 5.5.1 Send EHLO first");
  await h.cmd("EHLO client.example");
  assert.equal(
    await h.cmd("MAIL FROM:<alice@example.org>"),
    "530 5.7.0 Authentication required",
  );
  await h.cmd(`AUTH PLAIN ${plain("alice@example.org", "secret-pw")}`);
  assert.equal(await h.cmd("RCPT TO:<bob@example.org>"), "503 5.5.1 Need MAIL before RCPT");
  assert.equal(await h.cmd("MAIL alice@example.org"), "501 5.5.4 Syntax: MAIL FROM:<address>");
  assert.equal(await h.cmd("MAIL FROM:<not an address>"), "501 5.5.4 Syntax: MAIL FROM:<address>");
  assert.equal(
    await h.cmd("MAIL FROM:<alice@example.org> FOO=BAR"),
    "555 5.5.4 Unsupported MAIL parameter",
  );
  assert.equal(
    await h.cmd("MAIL FROM:<alice@example.org> SIZE=1001"),
    "552 5.3.4 Message size exceeds fixed maximum message size",
  );
  // The sender check answers each RCPT (as the reference's Postfix delays it), once per
  // transaction; MAIL itself is accepted.
  h.backend.refuseSender = reply(553, "5.7.1", "Sender address not owned");
  assert.equal(await h.cmd("MAIL FROM:<eve@example.org>"), "250 2.0.0 OK");
  assert.equal(await h.cmd("RCPT TO:<a@example.org>"), "553 5.7.1 Sender address not owned");
  assert.equal(await h.cmd("RCPT TO:<b@example.org>"), "553 5.7.1 Sender address not owned");
  assert.equal(
    h.backend.calls.filter((c) => c === "sender alice@example.org eve@example.org").length,
    1,
    "one sender check per transaction",
  );
  assert.equal(await h.cmd("RSET"), "250 2.0.0 OK");
  h.backend.refuseSender = null;
  assert.equal(
    await h.cmd("MAIL FROM:<alice@example.org> SIZE=999 BODY=8BITMIME"),
    "250 2.0.0 OK",
  );
  assert.equal(await h.cmd("MAIL FROM:<alice@example.org>"), "503 5.5.1 Sender already specified");
  assert.equal(await h.cmd("RCPT bob@example.org"), "501 5.5.4 Syntax: RCPT TO:<address>");
  assert.equal(await h.cmd("RCPT TO:<>"), "501 5.5.4 Syntax: RCPT TO:<address>");
  h.backend.refuseRecipients.set("nobody@example.org", reply(550, "5.1.1", "No such user"));
  assert.equal(await h.cmd("RCPT TO:<nobody@example.org>"), "550 5.1.1 No such user");
  for (const r of ["a@example.org", "b@example.org", "c@example.org"]) {
    assert.equal(await h.cmd(`RCPT TO:<${r}>`), "250 2.0.0 OK");
  }
  assert.equal(await h.cmd("RCPT TO:<d@example.org>"), "452 4.5.3 Too many recipients");
  // A sender check that passes (it takes one from the send rate) is made once as well: a
  // message to more recipients than the burst went over the rate at its eleventh RCPT.
  assert.equal(
    h.backend.calls.filter((c) => c === "sender alice@example.org alice@example.org").length,
    1,
    "one sender check per transaction when it passes",
  );
  // RSET ends the transaction: RCPT needs a new MAIL.
  assert.equal(await h.cmd("RSET"), "250 2.0.0 OK");
  assert.equal(await h.cmd("RCPT TO:<a@example.org>"), "503 5.5.1 Need MAIL before RCPT");
  await quit(h);
  assert.deepEqual(h.replies, [
    { stage: "auth", code: 235 },
    { stage: "rcpt", code: 553 },
    { stage: "rcpt", code: 553 },
    { stage: "rcpt", code: 550 },
  ]);
  assert.ok(h.backend.calls.includes("rcpt a@example.org submission"));
});

Deno.test("control characters in an envelope address are a syntax error, never echoed", async () => {
  const h = session({ maxErrors: 50 });
  await h.conn.reply();
  await h.cmd("EHLO client.example");
  await h.cmd(`AUTH PLAIN ${plain("alice@example.org", "secret-pw")}`);
  for (const c of ["\x00", "\x1b[31m", "\x7f", "\x01"]) {
    assert.equal(
      await h.cmd(`MAIL FROM:<alice@example.org${c}>`),
      "501 5.5.4 Syntax: MAIL FROM:<address>",
    );
  }
  assert.equal(await h.cmd("MAIL FROM:<alice@example.org>"), "250 2.0.0 OK");
  for (const c of ["\x00", "\x1b[31m", "\x7f", "\x01"]) {
    assert.equal(
      await h.cmd(`RCPT TO:<a${c}b@example.org>`),
      "501 5.5.4 Syntax: RCPT TO:<address>",
    );
  }
  // deno-lint-ignore no-control-regex
  assert.ok(!h.backend.calls.some((c) => /[\x00-\x1f\x7f]/.test(c)), "nothing reached the backend");
  await quit(h);
});

Deno.test("DATA: sequence, dot-unstuffing, the envelope to the backend, then a fresh transaction", async () => {
  const h = await loggedIn();
  assert.equal(await h.cmd("DATA"), "503 5.5.1 Need MAIL command");
  await h.cmd("MAIL FROM:<alice@example.org>");
  assert.equal(await h.cmd("DATA"), "554 5.5.1 No valid recipients");
  await h.cmd("RCPT TO:<bob@example.org>");
  assert.equal(await h.cmd("DATA now"), "501 5.5.4 Syntax: DATA");
  assert.equal(await h.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
  h.conn.feed("Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n");
  assert.equal(await h.conn.reply(), "250 2.0.0 Queued");
  assert.deepEqual(h.backend.submitted, [{
    login: "alice@example.org",
    envelope: { mailFrom: "alice@example.org", recipients: ["bob@example.org"] },
    message: "Subject: x\r\n\r\n.leading dot\r\nbody\r\n",
  }]);
  assert.equal(await h.cmd("RCPT TO:<bob@example.org>"), "503 5.5.1 Need MAIL before RCPT");
  // The backend's refusal is the client's answer.
  h.backend.answer = reply(523, "", "Encryption Needed: Invalid Unencrypted Mail");
  await h.cmd("MAIL FROM:<alice@example.org>");
  await h.cmd("RCPT TO:<bob@example.org>");
  await h.cmd("DATA");
  h.conn.feed("hello\r\n.\r\n");
  assert.equal(await h.conn.reply(), "523 Encryption Needed: Invalid Unencrypted Mail");
  await quit(h);
  assert.deepEqual(h.results, [
    { kind: "submission", code: 250, bytes: 34 },
    { kind: "submission", code: 523, bytes: 7 },
  ]);
});

Deno.test("inbound: no AUTH, the null sender, receive() instead of submit()", async () => {
  const h = session({ mode: "inbound", tls: false, startTlsAvailable: true });
  await h.conn.reply();
  await h.cmd("EHLO relay.example");
  assert.equal(await h.cmd("MAIL FROM:<>"), "250 2.0.0 OK");
  assert.equal(await h.cmd("RCPT TO:<bob@example.org>"), "250 2.0.0 OK");
  await h.cmd("DATA");
  h.conn.feed("bounce\r\n.\r\n");
  assert.equal(await h.conn.reply(), "250 2.0.0 Queued");
  await quit(h);
  assert.deepEqual(h.backend.received, [{
    envelope: { mailFrom: "", recipients: ["bob@example.org"] },
    message: "bounce\r\n",
  }]);
  assert.deepEqual(h.backend.submitted, []);
  assert.deepEqual(h.backend.calls, ["rcpt bob@example.org inbound"]);
});

Deno.test("pipelining: a whole transaction in one write is answered in order", async () => {
  const h = await loggedIn();
  const writes0 = h.conn.writes;
  h.conn.feed(
    "MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<nobody@example.org>\r\n" +
      "RCPT TO:<b@example.org>\r\nDATA\r\n",
  );
  h.backend.refuseRecipients.set("nobody@example.org", reply(550, "5.1.1", "No such user"));
  const replies = [];
  for (let i = 0; i < 5; i++) replies.push(await h.conn.reply());
  assert.deepEqual(replies, [
    "250 2.0.0 OK",
    "250 2.0.0 OK",
    "550 5.1.1 No such user",
    "250 2.0.0 OK",
    "354 End data with <CR><LF>.<CR><LF>",
  ]);
  // Held while more commands were buffered; a refusal goes out at once, with what was held.
  assert.equal(h.conn.writes - writes0, 2, "250 250 550 in one write, then 250 354");
  h.conn.feed("x\r\n.\r\nNOOP\r\n");
  assert.equal(await h.conn.reply(), "250 2.0.0 Queued");
  assert.equal(await h.conn.reply(), "250 2.0.0 OK");
  assert.equal(h.conn.writes - writes0, 3, "the message's 250 waited for the NOOP's");
  // Not pipelined: each reply at once.
  h.conn.feed("MAIL FROM:<alice@example.org>\r\n");
  assert.equal(await h.conn.reply(), "250 2.0.0 OK");
  assert.equal(h.conn.writes - writes0, 4);
  h.conn.feed("RSET\r\n");
  assert.equal(await h.conn.reply(), "250 2.0.0 OK");
  assert.deepEqual(h.backend.submitted[0].envelope.recipients, ["a@example.org", "b@example.org"]);
  await quit(h);
});

Deno.test("limits: long command lines, long or bare-LF DATA lines, oversized messages", async () => {
  const h = await loggedIn({ maxMessageBytes: 20_000 });
  assert.equal(await h.cmd(`NOOP ${"x".repeat(5000)}`), "500 5.5.2 Line too long");
  assert.equal(await h.cmd("NOOP"), "250 2.0.0 OK");
  const data = async (body: string) => {
    await h.cmd("MAIL FROM:<alice@example.org>");
    await h.cmd("RCPT TO:<bob@example.org>");
    assert.equal(await h.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    h.conn.feed(body);
    return await h.conn.reply();
  };
  assert.equal(
    await data(`${"y".repeat(9000)}\r\n.\r\n`),
    "500 5.5.6 Invalid DATA: line longer than 8192 bytes",
  );
  assert.equal(
    await data("a bare LF\nthen more\r\n.\r\n"),
    "500 5.6.11 Invalid DATA: bare CR or LF in message",
  );
  const line = `${"z".repeat(7998)}\r\n`;
  assert.equal(await data(`${line.repeat(3)}.\r\n`), "552 5.3.4 Message exceeds maximum size");
  // None of them reached the backend (each was aborted); the session still works.
  assert.deepEqual(h.backend.submitted, []);
  assert.equal(h.backend.aborted, 3);
  assert.equal(await data("fine\r\n.\r\n"), "250 2.0.0 Queued");
  await quit(h);
});

Deno.test("RSET, NOOP, VRFY, HELP, unknown and unimplemented commands", async () => {
  const h = session();
  await h.conn.reply();
  assert.equal(await h.cmd("noop"), "250 2.0.0 OK");
  assert.equal(await h.cmd("RSET"), "250 2.0.0 OK");
  assert.equal(
    await h.cmd("VRFY bob@example.org"),
    "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
  );
  assert.equal(await h.cmd("HELP"), "214 2.0.0 See RFC 5321");
  assert.equal(await h.cmd("BDAT 10 LAST"), "502 5.5.1 BDAT not implemented");
  assert.equal(await h.cmd("EXPN staff"), "502 5.5.1 EXPN not implemented");
  assert.equal(await h.cmd("XYZZY"), "500 5.5.1 Command unrecognized");
  assert.equal(await h.cmd(""), "500 5.5.1 Command unrecognized");
  await quit(h);
});

Deno.test("too many errors close the session with 421", async () => {
  const h = session({ maxErrors: 3 });
  await h.conn.reply();
  for (let i = 0; i < 3; i++) assert.equal(await h.cmd("BAD"), "500 5.5.1 Command unrecognized");
  // As Postfix: the error that reaches the limit is answered, then the session ends at once.
  assert.equal(
    await h.conn.reply(),
    "421 4.7.0 mx.example.org Too many errors, closing connection",
  );
  await h.done;
  assert.equal(h.conn.closed, true);
});

Deno.test("error limit as Postfix's defaults: 20 errors, forgiven by a message taken in; too many recipients is no error", async () => {
  // maxErrors unset: the session's own default, the reference relay's smtpd_hard_error_limit.
  const h = session({ mode: "inbound", maxErrors: undefined, maxRecipients: 3 });
  await h.conn.reply();
  await h.cmd("EHLO peer.example");
  // A group message from another relay to 15 deleted accounts and one live one: the refusals
  // must not end the session before the live recipient gets the message.
  const gone = Array.from({ length: 15 }, (_, i) => `gone${i}@example.org`);
  for (const a of gone) h.backend.refuseRecipients.set(a, reply(550, "5.1.1", "User unknown"));
  assert.equal(await h.cmd("MAIL FROM:<carol@peer.example>"), "250 2.0.0 OK");
  for (const a of gone) assert.equal(await h.cmd(`RCPT TO:<${a}>`), "550 5.1.1 User unknown");
  for (const a of ["a@example.org", "b@example.org", "c@example.org"]) {
    assert.equal(await h.cmd(`RCPT TO:<${a}>`), "250 2.0.0 OK");
  }
  // Over the recipient limit: 452, which the client answers by sending the rest in another
  // transaction; these are not errors (Postfix's smtpd_recipient_overshoot_limit).
  for (let i = 0; i < 25; i++) {
    assert.equal(await h.cmd(`RCPT TO:<d${i}@example.org>`), "452 4.5.3 Too many recipients");
  }
  assert.equal(await h.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
  assert.equal(await h.cmd("Subject: hi\r\n\r\nhello\r\n."), "250 2.0.0 Queued");
  assert.equal(h.backend.received.length, 1);
  // The message taken in forgave the 15 errors: 20 more are answered, then 421.
  assert.equal(await h.cmd("MAIL FROM:<carol@peer.example>"), "250 2.0.0 OK");
  for (let i = 0; i < 19; i++) {
    assert.equal(await h.cmd(`RCPT TO:<${gone[0]}>`), "550 5.1.1 User unknown");
  }
  assert.equal(await h.cmd(`RCPT TO:<${gone[0]}>`), "550 5.1.1 User unknown");
  assert.equal(
    await h.conn.reply(),
    "421 4.7.0 mx.example.org Too many errors, closing connection",
  );
  assert.equal(await h.done, "protocol");
});

Deno.test("idle clients get 421 4.4.2; DATA has its own, longer limit", async () => {
  const h = await loggedIn({ commandTimeoutMs: 1000, dataTimeoutMs: 5000 });
  assert.equal(h.conn.idleMs, 1000);
  await h.cmd("MAIL FROM:<alice@example.org>");
  await h.cmd("RCPT TO:<bob@example.org>");
  await h.cmd("DATA");
  assert.equal(h.conn.idleMs, 5000);
  h.conn.feed("x\r\n.\r\n");
  await h.conn.reply();
  assert.equal(h.conn.idleMs, 1000);
  h.conn.idle();
  assert.equal(await h.conn.reply(), "421 4.4.2 mx.example.org Timeout, closing connection");
  await h.done;
  assert.equal(h.conn.closed, true);
});

Deno.test("submission: AUTH within the login deadline, which input does not restart; then each command line has its own", async () => {
  const h = session({ loginDeadlineMs: 4000, commandTimeoutMs: 1000 });
  assert.equal(await h.conn.reply(), "220 mx.example.org ESMTP");
  assert.deepEqual(h.conn.deadlines, [4000]);
  assert.match(await h.cmd("EHLO client.example"), /^250 /m);
  assert.match(await h.cmd("NOOP"), /^250 /);
  // The commands before AUTH did not move it.
  assert.deepEqual(h.conn.deadlines, [4000]);
  assert.equal(
    await h.cmd(`AUTH PLAIN ${plain("alice@example.org", "secret-pw")}`),
    "235 2.7.0 Authentication successful",
  );
  // Logged in: waiting for the next command line, with the command timeout as its deadline.
  await settled();
  assert.deepEqual(h.conn.deadlines, [4000, 0, 1000]);
  await quit(h);

  // A client that trickles and never authenticates: the deadline passes, 421, the end.
  const late = session({ loginDeadlineMs: 4000 });
  assert.equal(await late.conn.reply(), "220 mx.example.org ESMTP");
  late.conn.feed("EHL");
  late.conn.idle();
  assert.equal(await late.conn.reply(), "421 4.4.2 mx.example.org Timeout, closing connection");
  assert.equal(await late.done, "idle");
});

Deno.test("inbound: a command line must be whole within the command timeout, set before each and cleared after", async () => {
  const h = session({ mode: "inbound", commandTimeoutMs: 1000 });
  assert.equal(await h.conn.reply(), "220 mx.example.org ESMTP");
  await settled();
  assert.deepEqual(h.conn.deadlines, [1000]);
  assert.match(await h.cmd("EHLO peer.example"), /^250 /m);
  assert.match(await h.cmd("MAIL FROM:<carol@peer.example>"), /^250 /);
  assert.match(await h.cmd("RCPT TO:<bob@example.org>"), /^250 /);
  await settled();
  assert.deepEqual(h.conn.deadlines, [1000, 0, 1000, 0, 1000, 0, 1000]);
  // DATA's lines are not command lines: the message has DATA's deadline (the data timeout).
  assert.match(await h.cmd("DATA"), /^354 /);
  assert.equal(h.conn.deadlineMs, 600_000);
  assert.equal(await h.cmd("Subject: hi\r\n\r\nhello\r\n."), "250 2.0.0 Queued");
  await settled();
  assert.equal(h.conn.deadlineMs, 1000);
  h.conn.feed("NO");
  h.conn.idle();
  assert.equal(await h.conn.reply(), "421 4.4.2 mx.example.org Timeout, closing connection");
  assert.equal(await h.done, "idle");
});

Deno.test("DATA must arrive at 500 B/s on average: a deadline from 354 that bytes move on, cleared after; when it passes, 421 4.4.2 and nothing is kept", async () => {
  for (const mode of ["inbound", "submission"] as const) {
    const h = mode === "inbound"
      ? session({ mode, commandTimeoutMs: 1000, dataTimeoutMs: 5000 })
      : await loggedIn({ commandTimeoutMs: 1000, dataTimeoutMs: 5000 });
    if (mode === "inbound") {
      await h.conn.reply();
      await h.cmd("EHLO peer.example");
    }
    await h.cmd(`MAIL FROM:<${mode === "inbound" ? "carol@peer.example" : "alice@example.org"}>`);
    await h.cmd("RCPT TO:<bob@example.org>");
    assert.match(await h.cmd("DATA"), /^354 /);
    // The data timeout is the idle limit between bytes, and the deadline's grace.
    assert.equal(h.conn.idleMs, 5000);
    assert.equal(h.conn.deadlineMs, 5000);
    assert.deepEqual(h.conn.deadlineOptions, { minBytesPerSecond: 500 });
    assert.match(await h.cmd("Subject: one\r\n\r\nfast enough\r\n."), /^250 /);
    await settled();
    // Cleared with the message in (then the next command line's own, on port 25).
    assert.ok(h.conn.deadlines.slice(-2).includes(0), String(h.conn.deadlines));
    assert.equal(h.conn.deadlineOptions, undefined);

    // A second message, trickled: the deadline passes in the middle of it.
    await h.cmd(`MAIL FROM:<${mode === "inbound" ? "carol@peer.example" : "alice@example.org"}>`);
    await h.cmd("RCPT TO:<bob@example.org>");
    assert.match(await h.cmd("DATA"), /^354 /);
    h.conn.feed("Subject: two\r\n\r\na byte now and th");
    await settled();
    h.conn.idle(new DeadlineError());
    assert.equal(await h.conn.reply(), "421 4.4.2 mx.example.org Error: timeout exceeded");
    assert.equal(await h.done, "idle");
    assert.equal(h.conn.closed, true);
    const kept = mode === "inbound" ? h.backend.received : h.backend.submitted;
    assert.deepEqual(kept.map((m) => m.message), ["Subject: one\r\n\r\nfast enough\r\n"]);
    assert.equal(h.backend.aborted, 1);
  }
});

Deno.test("inbound: past 100 commands that move no mail each counts as an error; a message taken in starts over", async () => {
  const h = session({ mode: "inbound" });
  assert.equal(await h.conn.reply(), "220 mx.example.org ESMTP");
  assert.match(await h.cmd("EHLO peer.example"), /^250 /m);
  for (let i = 0; i < 99; i++) assert.equal(await h.cmd("NOOP"), "250 2.0.0 OK");
  // A message taken in: the count starts again.
  assert.match(await h.cmd("MAIL FROM:<carol@peer.example>"), /^250 /);
  assert.match(await h.cmd("RCPT TO:<bob@example.org>"), /^250 /);
  assert.match(await h.cmd("DATA"), /^354 /);
  assert.equal(await h.cmd("Subject: hi\r\n\r\nhello\r\n."), "250 2.0.0 Queued");
  for (let i = 0; i < 100; i++) assert.equal(await h.cmd("RSET"), "250 2.0.0 OK");
  // Over the limit: still answered, and counted; the tenth error (this harness's limit) ends it.
  for (let i = 0; i < 9; i++) assert.equal(await h.cmd("NOOP"), "250 2.0.0 OK");
  assert.equal(await h.cmd("NOOP"), "250 2.0.0 OK");
  assert.equal(
    await h.conn.reply(),
    "421 4.7.0 mx.example.org Too many errors, closing connection",
  );
  assert.equal(await h.done, "protocol");

  // Submission is not held to it: an authenticated client checks its connection with NOOP.
  const sub = await loggedIn();
  for (let i = 0; i < 150; i++) assert.equal(await sub.cmd("NOOP"), "250 2.0.0 OK");
  await quit(sub);
});

Deno.test("a client cut off inside DATA stores nothing", async () => {
  const h = await loggedIn();
  await h.cmd("MAIL FROM:<alice@example.org>");
  await h.cmd("RCPT TO:<bob@example.org>");
  await h.cmd("DATA");
  h.conn.feed("Subject: half\r\n\r\nthe first half of a mess");
  h.conn.end();
  await h.done;
  assert.deepEqual(h.backend.submitted, []);
  assert.equal(h.backend.aborted, 1);
  assert.deepEqual(h.results, []);
  assert.equal(h.conn.pending, "");
});

Deno.test("shutdown says 421 4.3.2; a failing backend says 421 4.3.0; both close", async () => {
  const h = await loggedIn();
  h.abort.abort();
  assert.equal(await h.conn.reply(), "421 4.3.2 mx.example.org Service shutting down");
  assert.equal(await h.done, "shutdown");
  assert.equal(h.conn.closed, true);

  const f = await loggedIn();
  f.backend.fail = true;
  await f.cmd("MAIL FROM:<alice@example.org>");
  await f.cmd("RCPT TO:<bob@example.org>");
  await f.cmd("DATA");
  f.conn.feed("x\r\n.\r\n");
  assert.equal(await f.conn.reply(), "421 4.3.0 mx.example.org Internal error");
  await f.done;
  assert.equal(f.conn.closed, true);
});

Deno.test("shutdown during DATA: the message is stored and answered 250, then 421", async () => {
  const h = await loggedIn();
  await h.cmd("MAIL FROM:<alice@example.org>");
  await h.cmd("RCPT TO:<bob@example.org>");
  assert.match(await h.cmd("DATA"), /^354 /);
  h.conn.feed("Subject: x\r\n\r\nhalf of it");
  // The relay stops while the message is on its way: nothing is said yet.
  h.abort.abort();
  assert.equal(h.conn.pending, "");
  h.conn.feed(" and the rest\r\n.\r\n");
  assert.match(await h.conn.reply(), /^250 /);
  assert.equal(await h.conn.reply(), "421 4.3.2 mx.example.org Service shutting down");
  assert.equal(await h.done, "shutdown");
  assert.equal(h.backend.submitted.length, 1);
});

Deno.test("on port 25 (requireTls), MAIL before STARTTLS is refused with 530 5.7.0", async () => {
  const h = session({ tls: false, mode: "inbound", requireTls: true });
  await h.conn.reply();
  assert.match(await h.cmd("EHLO mx.example.net"), /STARTTLS/);
  assert.equal(
    await h.cmd("MAIL FROM:<a@example.net>"),
    "530 5.7.0 Must issue a STARTTLS command first",
  );
  assert.match(await h.cmd("STARTTLS"), /^220 /);
  await h.cmd("EHLO mx.example.net");
  assert.match(await h.cmd("MAIL FROM:<a@example.net>"), /^250 /);
  h.conn.end();
  assert.equal(await h.done, "gone");
});

Deno.test("a 452 too-many-recipients reply leaves the same debug line as other refusals", async () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", { write: (l) => lines.push(JSON.parse(l)) });
  const h = await loggedIn({ log });
  assert.equal(await h.cmd("MAIL FROM:<alice@example.org>"), "250 2.0.0 OK");
  for (const r of ["a@example.org", "b@example.org", "c@example.org"]) {
    assert.equal(await h.cmd(`RCPT TO:<${r}>`), "250 2.0.0 OK");
  }
  assert.equal(await h.cmd("RCPT TO:<d@example.org>"), "452 4.5.3 Too many recipients");
  const refused = lines.filter((l) => l.msg === "smtp rcpt refused");
  assert.equal(refused.length, 1, JSON.stringify(lines));
  assert.equal(refused[0].code, 452);
  assert.equal(refused[0].from, "alice@example.org");
  h.abort.abort();
  await h.done;
});
