// One SMTP session (RFC 5321) on an accepted connection: submission (465/587, AUTH required) or
// inbound (25, no AUTH). Commands are read one line at a time, so pipelined commands are answered
// in order (RFC 2920); the message streams to the backend as DATA arrives (bounded memory).

import {
  type Connection,
  ConnectionClosedError,
  DeadlineError,
  type EndReason,
  IdleTimeoutError,
  LineTooLongError,
} from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { SmtpBackend, SmtpReply, SmtpSessionHooks } from "./backend.ts";
import { readData } from "./data_reader.ts";
import { encodeBase64Text, parsePlain } from "./sasl.ts";
import { decodeBase64Text } from "./sasl.ts";
import { parseMailParams, parsePath } from "./syntax.ts";

export interface SmtpSessionOptions {
  mode: "submission" | "inbound";
  hostname: string;
  /**
   * The mail domain: `RCPT TO:<postmaster>` (no domain; RFC 5321 §4.1.1.3 and §4.5.1) means
   * postmaster at it, as Postfix appends $myorigin. Without it, that RCPT is a syntax error.
   */
  mailDomain?: string;
  maxMessageBytes: number;
  maxRecipients: number;
  /** STARTTLS can be offered (a certificate is configured and the connection is not TLS yet). */
  startTlsAvailable: boolean;
  /**
   * MAIL is refused until STARTTLS (inbound port 25, as the reference relay's Postfix with
   * smtpd_tls_security_level=encrypt). Submission always requires TLS before AUTH.
   */
  requireTls?: boolean;
  /**
   * How long the client may take to send a whole command line (default 5 min, RFC 5321
   * §4.5.3.2): also the idle limit between commands.
   */
  commandTimeoutMs?: number;
  /**
   * DATA: the idle limit between bytes of the message (default 10 min, RFC 5321 §4.5.3.2), and
   * the grace of its deadline (see MIN_DATA_RATE).
   */
  dataTimeoutMs?: number;
  /** Submission: how long after connecting AUTH must have succeeded (default 3 min). */
  loginDeadlineMs?: number;
  maxErrors?: number;
  log?: Logger;
  hooks?: SmtpSessionHooks;
}

/** Command lines before login (and on port 25): Postfix's line_length_limit. */
const MAX_COMMAND_LINE = 2048;
/** After login (submission). */
const MAX_AUTHED_COMMAND_LINE = 4096;
const MAX_DATA_LINE = 8192;
/**
 * Submission: from connect to a successful AUTH, whatever the client sends meanwhile, as
 * Dovecot's submission-login (3 min). Delta Chat authenticates right after EHLO.
 */
const LOGIN_DEADLINE_MS = 3 * 60_000;
/**
 * DATA must keep coming at this many bytes per second on average (Postfix's smtpd_min_data_rate,
 * 500): after 354 the whole message must arrive within the data timeout (10 min), a deadline
 * that each byte moves on by 2 ms, never beyond the data timeout ahead (Connection.setDeadline).
 * The idle limit alone restarts at every byte: a client sending one every few minutes held the
 * session, its spooled body and its store resources for as long as it liked. A message of the
 * largest size (30 MiB by default) may take 17 h at this rate; a phone on a bad network sends
 * some KB/s, and stalls shorter than the data timeout cost it nothing it has sent before.
 */
const MIN_DATA_RATE = 500;
/** Read ahead of the session while it is not authenticated and not in DATA. */
const PREAUTH_READ_AHEAD = 16 * 1024;
/** Held replies to a pipelined group beyond this go out at once (a group of 1000 RCPTs). */
const MAX_HELD = 4096;
/**
 * Errors a client may make without delivering mail, as the reference relay's Postfix
 * (smtpd_hard_error_limit, 20): the last one is answered, then 421 ends the session. A refused
 * RCPT (a deleted account) is an error; a message taken in forgives the errors before it.
 */
const MAX_ERRORS = 20;
/**
 * Inbound: commands that move no mail (NOOP, RSET, VRFY, HELP, EHLO/HELO) a peer may send
 * before each counts as an error, as Postfix's smtpd_junk_command_limit (100); a message
 * taken in starts the count again. Without it a peer sending NOOP every few minutes would
 * hold a session for ever, each command well inside its deadline.
 */
const JUNK_LIMIT = 100;
const JUNK = new Set(["NOOP", "RSET", "VRFY", "HELP", "EHLO", "HELO"]);
/** "Too many recipients" replies that are not errors (Postfix's smtpd_recipient_overshoot_limit). */
const RCPT_OVERSHOOT = 1000;
const dec = new TextDecoder("utf-8", { fatal: false });

const line = (r: SmtpReply) =>
  r.enhanced ? `${r.code} ${r.enhanced} ${r.text}` : `${r.code} ${r.text}`;
const r = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

const OK = r(250, "2.0.0", "OK");
const BAD_SEQUENCE = (text: string) => r(503, "5.5.1", text);

class CloseSession extends Error {}

export class SmtpSession {
  #conn: Connection;
  #opts: SmtpSessionOptions;
  #backend: SmtpBackend;
  #greeted = false;
  #login: string | null = null;
  #mailFrom: string | null = null;
  #recipients: string[] = [];
  /** The submission sender check of this transaction (undefined until its first RCPT). */
  #senderVerdict: SmtpReply | null | undefined = undefined;
  #errors = 0;
  /** Inbound: junk commands since the last message taken in (see JUNK_LIMIT). */
  #junk = 0;
  /** "Too many recipients" replies so far (see RCPT_OVERSHOOT). */
  #overshoot = 0;
  /** Shutdown asked: the session ends after the command in progress, with 421. */
  #stopping = false;
  /** Waiting for a command with nothing buffered: a shutdown may answer 421 at once. */
  #idle = false;
  /** Why #command ended the session, when not by QUIT. */
  #end: EndReason | null = null;

  constructor(conn: Connection, options: SmtpSessionOptions, backend: SmtpBackend) {
    this.#conn = conn;
    this.#opts = options;
    this.#backend = backend;
  }

  get #submission() {
    return this.#opts.mode === "submission";
  }

  /**
   * Sends a reply. `hold`: the reply to a command that may be pipelined (MAIL, RCPT, the end of
   * DATA) waits while more commands are already buffered, and goes out with the next reply that
   * is not held (at the latest DATA's 354, or the reply to the last command buffered): one
   * TLS record and one write for a MAIL, RCPT, DATA group instead of three (RFC 2920 §3.2 lets
   * the server send a group's replies together; their order is kept).
   */
  async #send(reply: SmtpReply | string, hold = false) {
    const text = (typeof reply === "string" ? reply : line(reply)) + "\r\n";
    if (hold && this.#conn.bufferedBytes() > 0 && this.#held.length < MAX_HELD) {
      this.#held += text;
      return;
    }
    const out = this.#held + text;
    this.#held = "";
    await this.#conn.write(out);
  }

  /** Replies held for a pipelined group (see #send); they go out before anything else. */
  #held = "";

  async #error(reply: SmtpReply) {
    this.#errors++;
    await this.#send(reply);
    await this.#closeIfTooManyErrors();
  }

  async #closeIfTooManyErrors() {
    if (this.#errors >= (this.#opts.maxErrors ?? MAX_ERRORS)) {
      await this.#send(
        r(421, "4.7.0", `${this.#opts.hostname} Too many errors, closing connection`),
      );
      throw new CloseSession();
    }
  }

  /** A refused MAIL or RCPT: one debug line (the operator's trail), then the reply. */
  async #refuse(stage: "mail" | "rcpt", reply: SmtpReply) {
    this.#logRefusal(stage, reply);
    await this.#error(reply);
  }

  #logRefusal(stage: "mail" | "rcpt", reply: SmtpReply) {
    this.#opts.log?.debug(`smtp ${stage} refused`, {
      conn: this.#conn.id,
      from: this.#mailFrom ?? "",
      code: reply.code,
      text: reply.text,
    });
  }

  #reset() {
    this.#mailFrom = null;
    this.#recipients = [];
    this.#senderVerdict = undefined;
  }

  /**
   * Runs the session to its end and says why it ended. A client that goes away is a normal end:
   * nothing is logged and nothing more is written to it.
   */
  async run(signal?: AbortSignal): Promise<EndReason> {
    const conn = this.#conn;
    const shuttingDown = `421 4.3.2 ${this.#opts.hostname} Service shutting down\r\n`;
    // Shutdown: a session waiting for a command is told at once; one inside a command (DATA being
    // stored) finishes it and answers it first, so mail that is stored is always answered 250.
    const onAbort = () => {
      this.#stopping = true;
      if (this.#idle) {
        this.#last(shuttingDown).catch((e) =>
          this.#opts.log?.debug("smtp shutdown notice not sent", { error: String(e) })
        );
      }
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    conn.setIdleTimeout(this.#opts.commandTimeoutMs ?? 300_000);
    if (this.#submission) conn.setDeadline(this.#opts.loginDeadlineMs ?? LOGIN_DEADLINE_MS);
    conn.setReadAhead(PREAUTH_READ_AHEAD);
    try {
      await this.#send(`220 ${this.#opts.hostname} ESMTP`);
      while (!conn.closed) {
        if (this.#stopping) {
          await this.#last(shuttingDown);
          return "shutdown";
        }
        let raw: Uint8Array | null;
        this.#idle = conn.bufferedBytes() === 0;
        // A whole command line within the command timeout (Postfix's smtpd_per_request_deadline):
        // the idle clock restarts at every byte, so a client trickling one now and then would
        // hold the session for ever. Before AUTH on submission, the login deadline runs instead.
        const perCommand = !this.#submission || this.#login !== null;
        if (perCommand) conn.setDeadline(this.#opts.commandTimeoutMs ?? 300_000);
        try {
          raw = await conn.readLine(this.#login ? MAX_AUTHED_COMMAND_LINE : MAX_COMMAND_LINE);
          if (perCommand) conn.setDeadline(0);
        } catch (e) {
          if (e instanceof LineTooLongError) {
            this.#idle = false;
            if (e.fatal) {
              await this.#last(
                `500 5.5.2 ${this.#opts.hostname} Line too long, closing connection\r\n`,
              );
              return "protocol";
            }
            await this.#error(r(500, "5.5.2", "Line too long"));
            continue;
          }
          throw e;
        } finally {
          this.#idle = false;
        }
        if (raw === null) return this.#stopping ? "shutdown" : "gone";
        if (!(await this.#command(dec.decode(raw)))) return this.#end ?? "quit";
      }
      return this.#stopping ? "shutdown" : "gone";
    } catch (e) {
      if (this.#stopping) return "shutdown";
      if (e instanceof DeadlineError) {
        // As Postfix at its per-request deadline (a command, AUTH, or DATA too slow to arrive).
        await this.#last(`421 4.4.2 ${this.#opts.hostname} Error: timeout exceeded\r\n`);
        return "idle";
      }
      if (e instanceof IdleTimeoutError) {
        await this.#last(`421 4.4.2 ${this.#opts.hostname} Timeout, closing connection\r\n`);
        return "idle";
      }
      if (e instanceof CloseSession) return "protocol";
      if (e instanceof ConnectionClosedError || conn.closed) return "gone";
      this.#opts.log?.error("smtp session failed", { error: String(e) });
      await this.#last(`421 4.3.0 ${this.#opts.hostname} Internal error\r\n`);
      return "error";
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await conn.close();
    }
  }

  /** A last reply, when the client is still there to read it, then the end. */
  async #last(text: string) {
    if (this.#conn.closed) return;
    const out = this.#held + text;
    this.#held = "";
    try {
      await this.#conn.write(out);
    } catch (e) {
      if (!(e instanceof ConnectionClosedError)) throw e;
    }
    await this.#conn.close();
  }

  /** Handles one command line; false ends the session. */
  async #command(text: string): Promise<boolean> {
    const sp = text.indexOf(" ");
    const verb = (sp < 0 ? text : text.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? "" : text.slice(sp + 1).trim();
    const junk = !this.#submission && JUNK.has(verb) && ++this.#junk > JUNK_LIMIT;
    const goOn = await this.#dispatch(verb, arg);
    if (junk && goOn) {
      // Answered as usual, then counted (Postfix does the same).
      this.#errors++;
      await this.#closeIfTooManyErrors();
    }
    return goOn;
  }

  async #dispatch(verb: string, arg: string): Promise<boolean> {
    switch (verb) {
      case "EHLO":
      case "HELO":
        return await this.#hello(verb, arg);
      case "STARTTLS":
        return await this.#startTls(arg);
      case "AUTH":
        await this.#auth(arg);
        return true;
      case "MAIL":
        await this.#mail(arg);
        return true;
      case "RCPT":
        await this.#rcpt(arg);
        return true;
      case "DATA":
        await this.#data(arg);
        return true;
      case "RSET":
        this.#reset();
        await this.#send(OK);
        return true;
      case "NOOP":
        await this.#send(OK);
        return true;
      case "VRFY":
        // Never confirm or deny an address (no enumeration), as the reference relay.
        await this.#send(
          r(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"),
        );
        return true;
      case "HELP":
        await this.#send(r(214, "2.0.0", "See RFC 5321"));
        return true;
      case "QUIT":
        await this.#send(r(221, "2.0.0", "Bye"));
        return false;
      case "BDAT":
      case "EXPN":
      case "TURN":
      case "ETRN":
        await this.#error(r(502, "5.5.1", `${verb} not implemented`));
        return true;
      default:
        await this.#error(r(500, "5.5.1", "Command unrecognized"));
        return true;
    }
  }

  async #hello(verb: string, arg: string): Promise<boolean> {
    if (!arg) {
      await this.#error(r(501, "5.5.4", `Syntax: ${verb} hostname`));
      return true;
    }
    this.#reset();
    this.#greeted = true;
    if (verb === "HELO") {
      await this.#send(`250 ${this.#opts.hostname}`);
      return true;
    }
    const tls = this.#conn.isTls;
    const lines = [
      this.#opts.hostname,
      "PIPELINING",
      `SIZE ${this.#opts.maxMessageBytes}`,
      "8BITMIME",
      "ENHANCEDSTATUSCODES",
      "SMTPUTF8",
    ];
    if (!tls && this.#opts.startTlsAvailable) lines.push("STARTTLS");
    if (tls && this.#submission) lines.push("AUTH PLAIN LOGIN");
    await this.#send(
      lines.map((l, i) => `250${i === lines.length - 1 ? " " : "-"}${l}`).join("\r\n"),
    );
    return true;
  }

  async #startTls(arg: string): Promise<boolean> {
    if (arg) {
      await this.#error(r(501, "5.5.4", "Syntax: STARTTLS"));
      return true;
    }
    if (this.#conn.isTls || !this.#opts.startTlsAvailable) {
      await this.#error(r(503, "5.5.1", "TLS already active or not available"));
      return true;
    }
    if (this.#conn.bufferedBytes() > 0) {
      // RFC 3207 §4.2: anything pipelined after STARTTLS is an injection attempt.
      await this.#send(r(501, "5.5.4", "Data after STARTTLS refused, closing connection"));
      this.#end = "protocol";
      return false;
    }
    try {
      await this.#conn.startTls("220 2.0.0 Ready to start TLS\r\n");
    } catch (e) {
      this.#opts.log?.debug("smtp starttls failed", { error: String(e) });
      this.#end = "tls";
      return false;
    }
    // RFC 3207 §4.2: forget everything learned before TLS.
    this.#greeted = false;
    this.#login = null;
    this.#reset();
    return true;
  }

  async #auth(arg: string) {
    if (!this.#submission) return await this.#error(r(502, "5.5.1", "AUTH not available here"));
    if (!this.#conn.isTls) {
      return await this.#error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
    }
    if (!this.#greeted) return await this.#error(BAD_SEQUENCE("Send EHLO first"));
    if (this.#login) return await this.#error(BAD_SEQUENCE("Already authenticated"));
    if (this.#mailFrom !== null) {
      return await this.#error(BAD_SEQUENCE("AUTH not allowed during a mail transaction"));
    }
    const [mechRaw, initial] = arg.split(/\s+/, 2);
    const mech = (mechRaw ?? "").toUpperCase();
    let user: string;
    let password: string;
    let authzid: string | undefined;
    if (mech === "PLAIN") {
      const response = initial === undefined
        ? await this.#challenge("")
        : initial === "="
        ? ""
        : initial;
      if (response === null) return;
      const creds = parsePlain(response);
      if (!creds) return await this.#error(r(501, "5.5.2", "Malformed AUTH PLAIN response"));
      ({ user, password, authzid } = creds);
    } else if (mech === "LOGIN") {
      const u = initial ?? await this.#challenge(encodeBase64Text("Username:"));
      if (u === null) return;
      const du = decodeBase64Text(u);
      if (du === null) return await this.#error(r(501, "5.5.2", "Malformed base64"));
      const p = await this.#challenge(encodeBase64Text("Password:"));
      if (p === null) return;
      const dp = decodeBase64Text(p);
      if (dp === null) return await this.#error(r(501, "5.5.2", "Malformed base64"));
      user = du;
      password = dp;
    } else {
      return await this.#error(r(504, "5.5.4", "Unrecognized authentication mechanism"));
    }
    const result = await this.#backend.authenticate(
      user,
      password,
      this.#conn.remoteAddress,
      authzid,
    );
    if ("reply" in result) {
      this.#opts.hooks?.onReply?.("auth", result.reply);
      return await this.#error(result.reply);
    }
    this.#login = result.address;
    this.#conn.setDeadline(0);
    this.#conn.setReadAhead();
    const ok = r(235, "2.7.0", "Authentication successful");
    this.#opts.hooks?.onReply?.("auth", ok);
    await this.#send(ok);
  }

  /** Sends a 334 challenge; null (after replying) when the client cancels with "*". */
  async #challenge(text: string): Promise<string | null> {
    await this.#send(`334 ${text}`);
    let raw: Uint8Array | null;
    try {
      raw = await this.#conn.readLine(MAX_COMMAND_LINE);
    } catch (e) {
      if (!(e instanceof LineTooLongError)) throw e;
      await this.#error(r(500, "5.5.2", "Line too long"));
      if (e.fatal) throw new CloseSession();
      return null;
    }
    if (raw === null) throw new ConnectionClosedError();
    const answer = dec.decode(raw).trim();
    if (answer === "*") {
      await this.#error(r(501, "5.0.0", "Authentication cancelled"));
      return null;
    }
    return answer;
  }

  async #mail(arg: string) {
    if (!this.#greeted) return await this.#refuse("mail", BAD_SEQUENCE("Send EHLO first"));
    if ((this.#submission || this.#opts.requireTls) && !this.#conn.isTls) {
      return await this.#refuse("mail", r(530, "5.7.0", "Must issue a STARTTLS command first"));
    }
    if (this.#submission && !this.#login) {
      return await this.#refuse("mail", r(530, "5.7.0", "Authentication required"));
    }
    if (this.#mailFrom !== null) {
      return await this.#refuse("mail", BAD_SEQUENCE("Sender already specified"));
    }
    const m = /^FROM:\s*(<[^>]*>|\S+)(.*)$/i.exec(arg);
    const path = m ? parsePath(m[1]) : null;
    if (!m || path === null) {
      return await this.#refuse("mail", r(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
    }
    const params = parseMailParams(m[2]);
    if (!params) return await this.#refuse("mail", r(555, "5.5.4", "Unsupported MAIL parameter"));
    if (params.size !== undefined && params.size > this.#opts.maxMessageBytes) {
      return await this.#refuse(
        "mail",
        r(552, "5.3.4", "Message size exceeds fixed maximum message size"),
      );
    }
    // The sender's ownership and send rate are judged at RCPT, as the reference relay's Postfix
    // delays these refusals (smtpd_delay_reject): clients read the per-recipient result.
    this.#mailFrom = path;
    this.#senderVerdict = undefined;
    this.#opts.log?.debug("smtp mail", { conn: this.#conn.id, from: path });
    await this.#send(OK, true);
  }

  /** Submission: the sender check, once per transaction, at its first RCPT. */
  async #checkSender(): Promise<SmtpReply | null> {
    if (!this.#login || this.#mailFrom === null) return null;
    // Null is a verdict too (the sender passed, and took one send from its rate): `??=` would
    // ask again at every RCPT.
    if (this.#senderVerdict === undefined) {
      this.#senderVerdict = await this.#backend.checkSender(this.#login, this.#mailFrom);
    }
    return this.#senderVerdict;
  }

  async #rcpt(arg: string) {
    if (this.#mailFrom === null) {
      return await this.#refuse("rcpt", BAD_SEQUENCE("Need MAIL before RCPT"));
    }
    const m = /^TO:\s*(<[^>]*>|\S+)\s*$/i.exec(arg);
    const domain = this.#opts.mailDomain;
    const path = !m
      ? null
      : domain && /^(?:<\s*postmaster\s*>|postmaster)$/i.test(m[1])
      ? `postmaster@${domain}`
      : parsePath(m[1]);
    if (!m || !path) {
      return await this.#refuse("rcpt", r(501, "5.5.4", "Syntax: RCPT TO:<address>"));
    }
    if (this.#recipients.length >= this.#opts.maxRecipients) {
      const tooMany = r(452, "4.5.3", "Too many recipients");
      if (this.#overshoot++ >= RCPT_OVERSHOOT) return await this.#refuse("rcpt", tooMany);
      // Not an error (the client sends the rest in another transaction), but still a refusal.
      this.#logRefusal("rcpt", tooMany);
      return await this.#send(tooMany);
    }
    const senderRefused = await this.#checkSender();
    if (senderRefused) {
      this.#opts.hooks?.onReply?.("rcpt", senderRefused);
      return await this.#refuse("rcpt", senderRefused);
    }
    const refused = await this.#backend.checkRecipient(path, this.#opts.mode);
    if (refused) {
      this.#opts.hooks?.onReply?.("rcpt", refused);
      return await this.#refuse("rcpt", refused);
    }
    this.#recipients.push(path);
    await this.#send(OK, true);
  }

  async #data(arg: string) {
    if (arg) return await this.#error(r(501, "5.5.4", "Syntax: DATA"));
    if (this.#mailFrom === null) return await this.#error(BAD_SEQUENCE("Need MAIL command"));
    if (this.#recipients.length === 0) {
      return await this.#error(r(554, "5.5.1", "No valid recipients"));
    }
    await this.#send("354 End data with <CR><LF>.<CR><LF>");
    const envelope = { mailFrom: this.#mailFrom, recipients: this.#recipients };
    this.#reset();
    // The message streams into the backend as it arrives; a message that goes over the size
    // limit, is malformed or is cut off is aborted, so nothing of it stays.
    const tx = this.#backend.beginData(envelope, this.#login);
    let aborted = false;
    const abort = async () => {
      if (aborted) return;
      aborted = true;
      await tx.abort();
    };
    const dataTimeoutMs = this.#opts.dataTimeoutMs ?? 600_000;
    this.#conn.setIdleTimeout(dataTimeoutMs);
    this.#conn.setDeadline(dataTimeoutMs, { minBytesPerSecond: MIN_DATA_RATE });
    this.#conn.setReadAhead();
    let data;
    try {
      data = await readData(this.#conn, {
        maxBytes: this.#opts.maxMessageBytes,
        maxLineBytes: MAX_DATA_LINE,
      }, { write: (chunk, text) => tx.write(chunk, text), overflow: abort });
    } catch (e) {
      // Cut off, idle or too slow: the partial message is freed, nothing of it is kept.
      await abort();
      throw e;
    } finally {
      this.#conn.setDeadline(0);
    }
    if (!this.#login) this.#conn.setReadAhead(PREAUTH_READ_AHEAD);
    this.#conn.setIdleTimeout(this.#opts.commandTimeoutMs ?? 300_000);
    if (data === null) {
      await abort();
      throw new ConnectionClosedError();
    }
    let reply: SmtpReply;
    if (data.tooLarge) {
      reply = r(552, "5.3.4", "Message exceeds maximum size");
    } else if (data.badLineEnding) {
      reply = r(500, "5.6.11", "Invalid DATA: bare CR or LF in message");
    } else if (data.longLine) {
      reply = r(500, "5.5.6", `Invalid DATA: line longer than ${MAX_DATA_LINE} bytes`);
    } else {
      aborted = true;
      reply = await tx.end();
    }
    await abort();
    if (reply.code < 300) this.#errors = this.#junk = 0;
    this.#opts.hooks?.onResult?.(this.#opts.mode, reply.code, data.size);
    this.#opts.hooks?.onReply?.("data", reply);
    this.#opts.log?.debug("smtp data", {
      conn: this.#conn.id,
      from: envelope.mailFrom,
      rcpts: envelope.recipients.length,
      code: reply.code,
      bytes: data.size,
    });
    await this.#send(reply, true);
  }
}
