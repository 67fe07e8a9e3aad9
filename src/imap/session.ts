// One IMAP session (RFC 9051/3501 plus extensions): reads commands, checks the state once,
// dispatches to the command handlers, and reports changes committed anywhere as untagged
// responses after each command and at once while IDLE.

import {
  type Connection,
  ConnectionClosedError,
  DeadlineError,
  delayQueue,
  type EndReason,
  IdleTimeoutError,
  LineTooLongError,
  loopTurn,
} from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import { isRelayError, isStorageBusy, isStorageFull } from "../errors.ts";
import type { AppendUpload, ImapBackend, ImapServerConfig, ImapUser } from "./backend.ts";
import type { Command } from "./types.ts";
import {
  type AppendSink,
  CommandLineTooLongError,
  LiteralTooLargeError,
  readCommand,
} from "./command_reader.ts";
import { BinaryToBase64 } from "./binary_append.ts";
import { ImapSyntaxError, parseCommand } from "./parser.ts";
import { SelectedMailbox } from "./selected.ts";
import { bad, ImapNo, type Piece } from "./responses.ts";
import { mailboxCommands } from "./mailbox_commands.ts";
import { messageCommands } from "./message_commands.ts";
import { serverCommands } from "./server_commands.ts";

export type State = "notauth" | "auth" | "selected";

export interface SessionContext {
  readonly conn: Connection;
  readonly backend: ImapBackend;
  readonly config: ImapServerConfig;
  readonly log?: Logger;
  state: State;
  user: ImapUser | null;
  selected: SelectedMailbox | null;
  readonly enabled: Enabled;
  /** Queues an untagged response (or a piece of one). */
  out(piece: Piece): void;
  /** Writes what is queued; resolves when the socket took it (back-pressure). */
  flush(): Promise<void>;
  /**
   * Between the steps of a long command: sends queued output once it is large (waiting until
   * the socket takes it) and lets other sessions run when this one has had the event loop for
   * a slice. Commands whose work grows with the mailbox call it after every bounded step.
   */
  breathe(): Promise<void>;
  /** flush() once enough is queued to be worth a write; loops producing output await it. */
  maybeFlush(): Promise<void>;
  login(user: ImapUser): void;
  /** Untagged updates for the selected mailbox (EXISTS, EXPUNGE/VANISHED, FETCH FLAGS). */
  sync(allowExpunge: boolean): Promise<void>;
  capabilities(): string;
  condstore(): boolean;
  /**
   * Calls `wake` once at the next change of the account (at once, in a microtask, when one is
   * waiting to be reported); a later call replaces it, null forgets it. A callback rather than a
   * promise: IDLE waits here for hours on thousands of connections.
   */
  whenChanged(wake: ((why: "change") => void) | null): void;
  readonly changeSignal: { dirty: boolean };
}

/**
 * The extensions turned on (RFC 5161 ENABLE, or implicitly by a CONDSTORE command): the only
 * two there are, as two flags (a Set per session cost 140 bytes of heap for most sessions).
 */
export class Enabled {
  #condstore = false;
  #qresync = false;

  has(name: string): boolean {
    return name === "CONDSTORE" ? this.#condstore : name === "QRESYNC" && this.#qresync;
  }

  add(name: "CONDSTORE" | "QRESYNC"): void {
    if (name === "CONDSTORE") this.#condstore = true;
    else this.#qresync = true;
  }
}

export type Handler = (ctx: SessionContext, cmd: Command) => Promise<string | void>;

/** name → allowed states and handler; the handler returns the tagged OK text. */
export type CommandTable = Partial<
  Record<Command["name"], { states: State[]; run: Handler }>
>;

const TABLE: CommandTable = { ...serverCommands, ...mailboxCommands, ...messageCommands };

/** After login: command lines and literals (APPEND's message has its own limit). */
const MAX_LINE = 64 * 1024;
const MAX_LITERAL = 64 * 1024;
/**
 * After login: one command's lines and literals together, but for APPEND's streamed message
 * (Dovecot's imap_max_line_length counts literals too). Without it a SEARCH or SETMETADATA of
 * many literals was held up to the message limit plus 64 lines (34 MiB). Delta Chat's longest
 * are UID sets on one line and a device token of a few hundred bytes.
 */
const MAX_COMMAND = 64 * 1024;
/**
 * Before login a command needs a few short arguments: lines, literals and whole commands are
 * held to a few KiB (Dovecot's imap-login: 8 KiB lines, about 2 KiB of arguments), and less is
 * read ahead, so hundreds of connections that never log in hold little memory.
 */
const PREAUTH_LIMITS = {
  maxLineBytes: 8 * 1024,
  maxLiteralBytes: 4 * 1024,
  maxCommandBytes: 16 * 1024,
};
const PREAUTH_READ_AHEAD = 16 * 1024;
const MAX_UNAUTH_ERRORS = 10;
/**
 * From connect to login, as Dovecot's login processes (MASTER_LOGIN_TIMEOUT_SECS, 3 min):
 * a client trickling a byte now and then keeps the idle clock going, not this one. Delta Chat
 * logs in right after the greeting.
 */
const LOGIN_DEADLINE_MS = 3 * 60_000;
/**
 * After login, one command must arrive within this long from its first byte (its line, its
 * literals, APPEND's message): the idle limit (31 min) restarts at every byte, so a client
 * trickling a command a byte at a time held the session, its buffers and an APPEND's spool
 * for as long as it liked (and a shutdown waited for that command until its grace). The
 * limit moves on with the bytes that arrive (MIN_INPUT_RATE), so a phone uploading a large
 * APPEND slowly goes on. The wait for a command and IDLE, where a client rightly sends
 * nothing for half an hour, are not bounded by it (the clock starts with the command's input).
 * 5 min as Postfix's smtpd_timeout; one command line of Delta Chat takes milliseconds.
 */
const COMMAND_DEADLINE_MS = 5 * 60_000;
/**
 * The average rate a command's input must keep up once it is longer than the deadline allows
 * (bytes per second, as Postfix's smtpd_min_data_rate): a 30 MiB APPEND may take 17 h.
 */
const MIN_INPUT_RATE = 500;
/** Queued output written in one go (one TLS record stream, one system call). */
const FLUSH_BYTES = 256 * 1024;
const INPUT_FULL = "* BYE Input buffer full, aborting\r\n";
/** IDLE's DONE line (a longer one ends the IDLE as a bad line). */
const IDLE_LINE_BYTES = 1024;
/** #active's answer for a session that went to sleep in IDLE. */
const HIBERNATE = "hibernate";
/** What wakes a hibernating IDLE. */
type IdleWake = "change" | "line" | "quiet";
const enc = new TextEncoder();
const dec = new TextDecoder();

export class ImapSession implements SessionContext {
  readonly conn: Connection;
  readonly backend: ImapBackend;
  readonly config: ImapServerConfig;
  readonly log?: Logger;
  state: State = "notauth";
  user: ImapUser | null = null;
  selected: SelectedMailbox | null = null;
  readonly enabled = new Enabled();
  readonly changeSignal = { dirty: false };
  #pieces: Piece[] = [];
  #pending = 0;
  /** What was written last ended inside a line (a response still being written). */
  #midLine = false;
  #wake: ((why: "change") => void) | null = null;
  /** Ends the subscription to the account's changes (made at login). */
  #unwatch: (() => void) | null = null;
  #gone = false;
  #errors = 0;
  /** Shutdown asked; the session ends after the command in progress. */
  #stopping = false;
  /** Between commands or in IDLE: a shutdown may end the session at once. */
  #interruptible = true;

  constructor(conn: Connection, backend: ImapBackend, config: ImapServerConfig, log?: Logger) {
    this.conn = conn;
    this.backend = backend;
    this.config = config;
    this.log = log;
  }

  out(piece: Piece) {
    this.#pieces.push(piece);
    this.#pending += piece.length;
  }

  maybeFlush(): Promise<void> {
    return this.#pending >= FLUSH_BYTES ? this.flush() : Promise.resolve();
  }

  async flush(): Promise<void> {
    if (this.#pieces.length === 0) return;
    const last = this.#pieces[this.#pieces.length - 1];
    this.#midLine = typeof last === "string"
      ? last.length > 0 && !last.endsWith("\n")
      : last.length > 0 && last[last.length - 1] !== 10;
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#pending = 0;
    const size = pieces.reduce((n, p) => n + (typeof p === "string" ? p.length * 3 : p.length), 0);
    const buf = new Uint8Array(size);
    let at = 0;
    for (const p of pieces) {
      if (typeof p === "string") at += enc.encodeInto(p, buf.subarray(at)).written;
      else {
        buf.set(p, at);
        at += p.length;
      }
    }
    await this.conn.write(buf.subarray(0, at));
  }

  async breathe(): Promise<void> {
    if (this.#pending >= FLUSH_BYTES) await this.flush();
    // The event loop's budget is shared by every session and job (net's loopTurn): a command
    // yields once the loop has gone BUSY_MS without looking at its sockets, whoever used them,
    // so several heavy commands at once still leave other users' NOOPs a turn every few ms.
    await loopTurn();
  }

  login(user: ImapUser) {
    this.user = user;
    this.state = "auth";
    this.#unwatch = this.backend.watch(user.accountId, (c) => {
      if (c.kind === "gone") this.#gone = true;
      if (c.kind === "list" || c.kind === "gone" || c.kind === "mailbox") {
        if (c.kind !== "mailbox" || this.selected?.mailbox.id === c.mailboxId) {
          this.changeSignal.dirty = true;
        }
      }
      const w = this.#wake;
      this.#wake = null;
      w?.("change");
    });
    this.conn.setIdleTimeout(this.config.idleTimeoutMs ?? 31 * 60_000);
    this.conn.setDeadline(0);
    this.conn.setReadAhead();
  }

  whenChanged(wake: ((why: "change") => void) | null): void {
    if (wake && (this.changeSignal.dirty || this.#gone)) {
      this.#wake = null;
      queueMicrotask(() => wake("change"));
      return;
    }
    this.#wake = wake;
  }

  condstore(): boolean {
    return this.enabled.has("CONDSTORE") || this.enabled.has("QRESYNC");
  }

  async sync(allowExpunge: boolean): Promise<void> {
    if (this.#gone) {
      this.out("* BYE Account removed\r\n");
      await this.flush();
      throw new ConnectionClosedError("account removed");
    }
    const sel = this.selected;
    if (!sel || !this.changeSignal.dirty) return;
    this.changeSignal.dirty = false;
    const lines = await sel.sync(this.backend.mailboxes, this, {
      allowExpunge,
      qresync: this.enabled.has("QRESYNC"),
      condstore: this.condstore(),
    });
    if (lines === null) {
      // Another session deleted the selected mailbox: as Dovecot, the session ends (its view
      // of messages that are gone cannot be brought up to date, and IDLE would wait forever).
      this.out("* BYE Selected mailbox was deleted, have to disconnect.\r\n");
      await this.flush();
      throw new ConnectionClosedError("selected mailbox deleted");
    }
    // Expunges kept for later must be looked at again.
    if (!allowExpunge) this.changeSignal.dirty = true;
    if (lines) {
      this.log?.debug("imap updates", {
        conn: this.conn.id,
        user: this.user?.address ?? "",
        lines,
      });
    }
  }

  capabilities(): string {
    const caps = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"];
    if (this.state === "notauth") {
      if (!this.conn.isTls && this.config.startTlsAvailable) caps.push("STARTTLS");
      if (!this.conn.isTls) caps.push("LOGINDISABLED");
      else caps.push("AUTH=PLAIN");
    } else {
      caps.push(
        "NAMESPACE",
        "UIDPLUS",
        "MOVE",
        "UNSELECT",
        "CHILDREN",
        "CONDSTORE",
        "QRESYNC",
        "ESEARCH",
        "SEARCHRES",
        "SPECIAL-USE",
        "CREATE-SPECIAL-USE",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "STATUS=SIZE",
        "BINARY",
        "QUOTA",
        "QUOTA=RES-STORAGE",
        "METADATA",
        `APPENDLIMIT=${this.config.maxMessageBytes}`,
      );
      if (!this.conn.isCompressed) caps.push("COMPRESS=DEFLATE");
    }
    caps.push("XCHATMAIL", "XDELTAPUSH");
    return caps.join(" ");
  }

  /**
   * Runs the session to its end and says why it ended. A client that goes away is a normal end:
   * nothing is logged and nothing more is written to it.
   *
   * Not an async function: an IDLE session hibernates (#hibernate) with no suspended frame of
   * its own, of the command loop or of a read. Only a small callback waits on the account's
   * changes, the quiet interval and the socket's next line; each wake-up runs #active again,
   * which answers it and goes back to sleep or, after DONE, carries on with the commands.
   * `done` is called once the session has ended, before its promise settles (where a
   * finally() would add a promise and its reaction to every idle session).
   */
  run(signal?: AbortSignal, done?: () => void): Promise<EndReason> {
    // Shutdown: between commands (or in IDLE) the session ends at once; a command in progress
    // (an APPEND being stored) finishes and is answered first.
    if (signal) ImapSession.#watchShutdown(signal, this);
    this.conn.setIdleTimeout(this.config.loginTimeoutMs ?? 120_000);
    this.conn.setDeadline(this.config.loginDeadlineMs ?? LOGIN_DEADLINE_MS);
    this.conn.setReadAhead(PREAUTH_READ_AHEAD);
    return new Promise<EndReason>((resolve, reject) => {
      const end = (reason: EndReason) => {
        if (signal) ImapSession.#shutdownWatch.get(signal)?.delete(this);
        this.#unwatch?.();
        this.#unwatch = null;
        this.conn.close().then(() => {
          ended(done);
          resolve(reason);
        }, (e) => {
          ended(done);
          reject(e);
        });
      };
      const step = (p: Promise<EndReason | typeof HIBERNATE>) =>
        p.then((r) => r === HIBERNATE ? this.#hibernate(wake) : end(r), (e) => {
          // #active answers every failure itself; this is only a last guard.
          this.#unwatch?.();
          this.#unwatch = null;
          if (signal) ImapSession.#shutdownWatch.get(signal)?.delete(this);
          const fail = () => {
            ended(done);
            reject(e);
          };
          this.conn.close().then(fail, fail);
        });
      const wake = (why: IdleWake) => step(this.#active(why));
      step(this.#active("start"));
    });
  }

  /**
   * The sessions to tell of a shutdown, per signal: one listener on the signal for all of them.
   * A listener per session cost each idle session a listener record, its options and a closure
   * with its context (about 200 bytes of heap).
   */
  static #shutdownWatch = new WeakMap<AbortSignal, Set<ImapSession>>();

  static #watchShutdown(signal: AbortSignal, session: ImapSession) {
    let sessions = ImapSession.#shutdownWatch.get(signal);
    if (!sessions) {
      const all = sessions = new Set();
      ImapSession.#shutdownWatch.set(signal, all);
      // In the order the sessions started, as their own listeners were called.
      signal.addEventListener("abort", () => {
        for (const s of [...all]) s.#shutdown();
      }, { once: true });
    }
    sessions.add(session);
  }

  /** Shutdown asked: between commands (or in IDLE) the session ends at once. */
  #shutdown() {
    this.#stopping = true;
    if (this.#interruptible) {
      this.#bye("* BYE Server shutting down\r\n").catch((e) =>
        this.log?.debug("imap shutdown notice not sent", { error: String(e) })
      );
    }
  }

  /**
   * In IDLE, asleep: calls `wake` once at whichever comes first, a change of the account, the
   * quiet interval ("* OK Still here") or the client's line (DONE, or its end).
   */
  #hibernate(wake: (why: IdleWake) => void) {
    const quiet = delayQueue(this.config.idleNotifyMs ?? 120_000);
    const woke = (why?: "change" | "line") => {
      quiet.cancel(woke);
      this.whenChanged(null);
      this.conn.whenLine(IDLE_LINE_BYTES, null);
      wake(why ?? "quiet");
    };
    this.whenChanged(woke);
    quiet.schedule(woke);
    this.conn.whenLine(IDLE_LINE_BYTES, () => woke("line"));
  }

  /**
   * Runs commands until the session ends or hibernates in IDLE; `why`: the greeting first, or
   * what woke the IDLE the session is in.
   */
  async #active(why: IdleWake | "start"): Promise<EndReason | typeof HIBERNATE> {
    try {
      if (why === "start") {
        await this.conn.write(
          `* OK [CAPABILITY ${this.capabilities()}] ${this.config.hostname} ready\r\n`,
        );
      } else {
        const r = await this.#idleWoke(why);
        if (r !== null) return r;
      }
      while (!this.conn.closed && !this.#stopping) {
        // (One async frame less than a method around #command.)
        let end: EndReason | typeof HIBERNATE | null;
        try {
          end = await this.#command();
        } finally {
          const upload = this.#upload;
          this.#upload = null;
          await upload?.discard();
        }
        if (end) return end;
      }
      if (this.#stopping) {
        await this.#bye("* BYE Server shutting down\r\n");
        return "shutdown";
      }
      return "gone";
    } catch (e) {
      if (this.#idleTag !== null) this.#leaveIdle();
      if (this.#stopping) return "shutdown";
      if (e instanceof IdleTimeoutError) {
        await this.#bye(
          this.state === "notauth"
            ? "* BYE Disconnected for inactivity.\r\n"
            : e instanceof DeadlineError
            ? "* BYE Disconnected: command not received in time\r\n"
            : "* BYE Autologout; idle for too long\r\n",
        );
        return "idle";
      }
      if (e instanceof ConnectionClosedError || this.conn.closed) return "gone";
      this.log?.error("imap session failed", { error: String(e) });
      await this.#bye("* BYE Internal error\r\n");
      return "error";
    }
  }

  /** The tag of the IDLE the session is in (null when not in IDLE). */
  #idleTag: string | null = null;

  #leaveIdle() {
    this.#idleTag = null;
    this.config.onIdle?.(-1);
  }

  /**
   * Answers what woke a hibernating IDLE: HIBERNATE to sleep again, null once IDLE has ended
   * (DONE answered, or a bad line refused) and the next command is to be read.
   */
  async #idleWoke(why: IdleWake): Promise<EndReason | typeof HIBERNATE | null> {
    const tag = this.#idleTag!;
    let tagged: string;
    try {
      if (why === "quiet") {
        this.out("* OK Still here\r\n");
        await this.flush();
        return HIBERNATE;
      }
      if (why === "change") {
        await this.sync(true);
        await this.flush();
        return HIBERNATE;
      }
      const line = await this.conn.readLine(IDLE_LINE_BYTES);
      this.conn.setDeadline(0);
      if (line === null) throw new ConnectionClosedError();
      this.#leaveIdle();
      if (dec.decode(line).trim().toUpperCase() !== "DONE") throw bad("Expected DONE");
      await this.sync(true);
      tagged = `${tag} OK IDLE terminated\r\n`;
    } catch (e) {
      if (this.#idleTag !== null) this.#leaveIdle();
      const t = await this.#refusal(tag, "IDLE", e);
      if (t === null) return "protocol";
      tagged = t;
    }
    this.out(tagged);
    await this.flush();
    return null;
  }

  /**
   * A last untagged BYE, when the client is still there to read it, then the end. `abort`: the
   * client is flooding us; nothing more is read from it, not even while the BYE goes out.
   */
  async #bye(text: string, abort = false) {
    if (this.conn.closed) return;
    try {
      await this.flush();
      await this.conn.write(text);
    } catch (e) {
      if (!(e instanceof ConnectionClosedError)) throw e;
    }
    if (abort) this.conn.abort();
    else await this.conn.close();
  }

  #limits() {
    if (this.state === "notauth") {
      return {
        ...PREAUTH_LIMITS,
        maxAppendLiteralBytes: PREAUTH_LIMITS.maxLiteralBytes,
        skipRefused: false,
      };
    }
    return {
      maxLineBytes: MAX_LINE,
      maxLiteralBytes: MAX_LITERAL,
      maxCommandBytes: MAX_COMMAND,
      maxAppendLiteralBytes: this.config.maxMessageBytes,
    };
  }

  /**
   * APPEND's message streams into an upload as its literal arrives (once logged in); whatever
   * happens to the command, run() frees the upload at its end (append() keeps what it stored).
   * One function for the session's life, not a closure per command.
   */
  #offer: AppendSink = (size, binary) => {
    // An empty literal has nothing to stream: APPEND refuses it (read as any other).
    if (this.#upload || size === 0) return undefined;
    const u = this.backend.mailboxes.startAppend();
    return this.#upload = binary ? new BinaryToBase64(u) : u;
  };
  #upload: AppendUpload | null = null;
  #started = () => {
    this.#interruptible = false;
  };

  /** A command's input (or IDLE's DONE line) must arrive in time from its first byte. */
  #commandDeadline() {
    this.conn.setDeadline(this.config.commandDeadlineMs ?? COMMAND_DEADLINE_MS, {
      minBytesPerSecond: MIN_INPUT_RATE,
      fromInput: true,
    });
  }

  /** Reads and runs one command; an end reason ends the session. */
  async #command(): Promise<EndReason | typeof HIBERNATE | null> {
    let cmd: Command;
    this.#interruptible = true;
    // Before login the login deadline runs, from connect; after, each command has its own.
    const loggedIn = this.state !== "notauth";
    if (loggedIn) this.#commandDeadline();
    try {
      const offer = loggedIn ? this.#offer : undefined;
      let raw;
      try {
        raw = await readCommand(this.conn, this.#limits(), offer, this.#started);
      } finally {
        // Running the command is the server's time, not the client's.
        if (loggedIn) this.conn.setDeadline(0);
      }
      if (raw === null) return "gone";
      cmd = parseCommand(raw);
      const streamed = this.#upload;
      if (streamed && cmd.name === "APPEND") cmd.upload = streamed;
    } catch (e) {
      if (
        this.state === "notauth" &&
        (e instanceof LiteralTooLargeError || e instanceof LineTooLongError)
      ) {
        // Before login nothing is drained: the client is cut off, as Dovecot's imap-login does.
        await this.#bye(INPUT_FULL, true);
        return "protocol";
      }
      if (e instanceof LineTooLongError && e.fatal) {
        await this.#bye("* BYE [TOOBIG] Command line too long\r\n");
        return "protocol";
      }
      if (e instanceof LiteralTooLargeError) {
        if (e.fatal) {
          await this.#bye(`* BYE [TOOBIG] Literal too large\r\n`);
          return "protocol";
        }
        await this.conn.write(`${e.tag ?? "*"} NO [TOOBIG] Literal too large\r\n`);
        return await this.#countError();
      }
      if (e instanceof LineTooLongError) {
        // Tagged when the line showed its tag (as Dovecot): the client is waiting for it.
        const tag = e instanceof CommandLineTooLongError ? e.tag : null;
        await this.conn.write(`${tag ?? "*"} BAD [TOOBIG] Command line too long\r\n`);
        return await this.#countError();
      }
      if (e instanceof ImapSyntaxError) {
        await this.conn.write(`${e.tag ?? "*"} BAD ${e.message}\r\n`);
        return await this.#countError();
      }
      throw e;
    }
    this.#interruptible = cmd.name === "IDLE";
    this.log?.debug("imap command", {
      conn: this.conn.id,
      user: this.user?.address ?? "",
      command: cmd.name,
      uid: "uid" in cmd && cmd.uid ? 1 : 0,
    });
    const entry = TABLE[cmd.name];
    if (!entry) {
      await this.conn.write(`${cmd.tag} BAD Command not supported\r\n`);
      return null;
    }
    if (!entry.states.includes(this.state)) {
      const why = this.state === "notauth"
        ? "Log in first"
        : this.state === "auth"
        ? "Select a mailbox first"
        : "Not allowed now";
      await this.conn.write(`${cmd.tag} BAD ${why}\r\n`);
      return null;
    }
    let tagged: string;
    try {
      const text = await entry.run(this, cmd);
      if (cmd.name === "LOGOUT") {
        this.out(`${cmd.tag} OK ${text ?? "Logout completed"}\r\n`);
        await this.flush();
        return "quit";
      }
      if (cmd.name === "COMPRESS" || cmd.name === "STARTTLS") return null;
      if (cmd.name === "IDLE") {
        // "+ idling" and what changed before are out: the session sleeps (see run()).
        this.#idleTag = cmd.tag;
        this.config.onIdle?.(1);
        // DONE is a line of input as a command's: bounded from its first byte (a trickle, or
        // garbage with no line end, was bounded only by the idle limit, which each byte restarts).
        this.#commandDeadline();
        return HIBERNATE;
      }
      const unilateral = cmd.name === "FETCH" || cmd.name === "STORE" || cmd.name === "SEARCH";
      await this.sync(!(unilateral && !("uid" in cmd && cmd.uid)));
      tagged = `${cmd.tag} OK ${text ?? `${cmd.name} completed`}\r\n`;
    } catch (e) {
      const t = await this.#refusal(cmd.tag, cmd.name, e);
      if (t === null) return "protocol";
      tagged = t;
    }
    this.out(tagged);
    await this.flush();
    return null;
  }

  /**
   * The tagged answer to a command that failed with `e` (null: the session was ended, a
   * protocol violation); the end of the connection and the idle limit are thrown on.
   */
  async #refusal(tag: string, name: string, e: unknown): Promise<string | null> {
    let tagged: string;
    if (e instanceof ImapNo) {
      tagged = `${tag} ${e.bad ? "BAD" : "NO"} ${e.code ? `[${e.code}] ` : ""}${e.message}\r\n`;
    } else if (isRelayError(e)) {
      tagged = `${tag} NO ${relayCode(e.code)}${e.message}\r\n`;
    } else if (e instanceof LineTooLongError) {
      // A continuation line (AUTHENTICATE's response) over its limit.
      if (this.state === "notauth" || e.fatal) {
        await this.#bye(INPUT_FULL, true);
        return null;
      }
      tagged = `${tag} BAD [TOOBIG] Line too long\r\n`;
    } else if (
      e instanceof ConnectionClosedError || e instanceof IdleTimeoutError || this.conn.closed
    ) {
      throw e;
    } else if (isStorageFull(e)) {
      // As Dovecot on ENOSPC (a temporary server failure, not the account's quota): the
      // client keeps the message and tries again; reading and deleting go on meanwhile.
      this.log?.error("storage full or read-only", { command: name, error: String(e) });
      tagged = `${tag} NO [SERVERBUG] Not enough disk space on the server, try again later\r\n`;
    } else if (isStorageBusy(e)) {
      // As Dovecot on a lock timeout: someone else holds the store; nothing was changed.
      this.log?.error("storage busy", { command: name, error: String(e) });
      tagged = `${tag} NO [INUSE] The mail store is busy, try again later\r\n`;
    } else {
      this.log?.error("imap command failed", { command: name, error: String(e) });
      tagged = `${tag} NO [SERVERBUG] Internal error\r\n`;
    }
    // A command that failed while writing a response ("* SEARCH 1 2…") leaves it unended:
    // the tagged reply must start a line of its own, or the client never sees it.
    await this.flush();
    if (this.#midLine) this.out("\r\n");
    return tagged;
  }

  async #countError(): Promise<EndReason | null> {
    this.#errors++;
    if (this.state === "notauth" && this.#errors > MAX_UNAUTH_ERRORS) {
      await this.#bye("* BYE Too many errors\r\n");
      return "protocol";
    }
    return null;
  }
}

function relayCode(code: string): string {
  switch (code) {
    case "mailbox_not_found":
      return "[NONEXISTENT] ";
    case "mailbox_exists":
      return "[ALREADYEXISTS] ";
    case "quota_exceeded":
      return "[OVERQUOTA] ";
    case "message_too_large":
      return "[TOOBIG] ";
    case "mailbox_invalid":
    case "invalid_argument":
      return "[CANNOT] ";
    default:
      return "";
  }
}

/** Calls run()'s `done`: its failure (a metrics hook) must not keep the session's end unsettled. */
function ended(done: (() => void) | undefined): void {
  try {
    done?.();
  } catch {
    // Nothing to do: the session has ended either way.
  }
}
