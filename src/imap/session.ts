// One IMAP session (RFC 9051/3501 plus extensions): reads commands, checks the state once,
// dispatches to the command handlers, and reports changes committed anywhere as untagged
// responses after each command and at once while IDLE.

import {
  type Connection,
  ConnectionClosedError,
  IdleTimeoutError,
  LineTooLongError,
} from "../net/mod.ts";
import type { Logger } from "../log/mod.ts";
import { isRelayError } from "../errors.ts";
import type { ImapBackend, ImapServerConfig, ImapUser } from "./backend.ts";
import type { Command } from "./types.ts";
import { LiteralTooLargeError, readCommand } from "./command_reader.ts";
import { ImapSyntaxError, parseCommand } from "./parser.ts";
import { SelectedMailbox } from "./selected.ts";
import { ImapNo, type Piece } from "./responses.ts";
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
  enabled: Set<string>;
  /** Queues an untagged response (or a piece of one). */
  out(piece: Piece): void;
  flush(): Promise<void>;
  /**
   * Between the steps of a long command: sends queued output once it is large (waiting until
   * the socket takes it) and lets other sessions run when this one has had the event loop for
   * a slice. Commands whose work grows with the mailbox call it after every bounded step.
   */
  breathe(): Promise<void>;
  login(user: ImapUser): void;
  /** Untagged updates for the selected mailbox (EXISTS, EXPUNGE/VANISHED, FETCH FLAGS). */
  sync(allowExpunge: boolean): Promise<void>;
  capabilities(): string;
  condstore(): boolean;
  /** Waits for the next change of the account, or the abort. */
  changed(): Promise<void>;
  readonly changeSignal: { dirty: boolean };
}

export type Handler = (ctx: SessionContext, cmd: Command) => Promise<string | void>;

/** name → allowed states and handler; the handler returns the tagged OK text. */
export type CommandTable = Partial<
  Record<Command["name"], { states: State[]; run: Handler }>
>;

const TABLE: CommandTable = { ...serverCommands, ...mailboxCommands, ...messageCommands };

const MAX_LINE = 64 * 1024;
const MAX_LITERAL = 64 * 1024;
const MAX_UNAUTH_ERRORS = 10;
/** Queued output beyond this is written out (and waited for) at the next breathe(). */
const FLUSH_AT = 64 * 1024;
/** Longest stretch a command keeps the event loop before breathe() yields it. */
const SLICE_MS = 8;
const enc = new TextEncoder();

/**
 * Lets timers and I/O of other sessions run. setTimeout, not setImmediate or a resolved
 * promise: measured on Deno 2.9, only a timer turn lets the event loop poll sockets.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class ImapSession implements SessionContext {
  readonly conn: Connection;
  readonly backend: ImapBackend;
  readonly config: ImapServerConfig;
  readonly log?: Logger;
  state: State = "notauth";
  user: ImapUser | null = null;
  selected: SelectedMailbox | null = null;
  enabled = new Set<string>();
  readonly changeSignal = { dirty: false };
  #pieces: Piece[] = [];
  #pending = 0;
  #wake: (() => void) | null = null;
  #watch = new AbortController();
  #gone = false;
  #errors = 0;
  #sliceStart = performance.now();

  constructor(conn: Connection, backend: ImapBackend, config: ImapServerConfig, log?: Logger) {
    this.conn = conn;
    this.backend = backend;
    this.config = config;
    this.log = log;
  }

  out(piece: Piece) {
    this.#pieces.push(piece);
    this.#pending += piece.length;
    if (this.#pending > 256 * 1024) void this.flush();
  }

  async flush(): Promise<void> {
    if (this.#pieces.length === 0) return;
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
    if (this.#pending >= FLUSH_AT) await this.flush();
    if (performance.now() - this.#sliceStart >= SLICE_MS) {
      await yieldToEventLoop();
      this.#sliceStart = performance.now();
    }
  }

  login(user: ImapUser) {
    this.user = user;
    this.state = "auth";
    this.backend.watch(user.accountId, (c) => {
      if (c.kind === "gone") this.#gone = true;
      if (c.kind === "list" || c.kind === "gone" || c.kind === "mailbox") {
        if (c.kind !== "mailbox" || this.selected?.mailbox.id === c.mailboxId) {
          this.changeSignal.dirty = true;
        }
      }
      const w = this.#wake;
      this.#wake = null;
      w?.();
    }, this.#watch.signal);
    this.conn.setIdleTimeout(this.config.idleTimeoutMs ?? 31 * 60_000);
  }

  changed(): Promise<void> {
    if (this.changeSignal.dirty || this.#gone) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
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

  async run(signal?: AbortSignal): Promise<void> {
    const onAbort = () => {
      this.conn.write("* BYE Server shutting down\r\n").catch(() => {}).finally(() =>
        this.conn.close().catch(() => {})
      );
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.conn.setIdleTimeout(this.config.loginTimeoutMs ?? 120_000);
    try {
      await this.conn.write(
        `* OK [CAPABILITY ${this.capabilities()}] ${this.config.hostname} ready\r\n`,
      );
      while (!this.conn.closed) {
        if (!(await this.#next())) break;
      }
    } catch (e) {
      if (e instanceof IdleTimeoutError) {
        await this.conn.write("* BYE Autologout; idle for too long\r\n").catch(() => {});
      } else if (!(e instanceof ConnectionClosedError) && !this.conn.closed) {
        this.log?.error("imap session failed", { error: String(e) });
        await this.conn.write("* BYE Internal error\r\n").catch(() => {});
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#watch.abort();
      await this.conn.close().catch(() => {});
    }
  }

  /** Reads and runs one command; false ends the session. */
  async #next(): Promise<boolean> {
    let cmd: Command;
    try {
      const raw = await readCommand(this.conn, {
        maxLineBytes: MAX_LINE,
        maxLiteralBytes: MAX_LITERAL,
        maxAppendLiteralBytes: this.config.maxMessageBytes,
      });
      if (raw === null) return false;
      cmd = parseCommand(raw);
      this.#sliceStart = performance.now();
    } catch (e) {
      if (e instanceof LiteralTooLargeError) {
        await this.conn.write(`${e.tag ?? "*"} NO [TOOBIG] Literal too large\r\n`);
        return await this.#countError();
      }
      if (e instanceof LineTooLongError) {
        await this.conn.write("* BAD [TOOBIG] Command line too long\r\n");
        return await this.#countError();
      }
      if (e instanceof ImapSyntaxError) {
        await this.conn.write(`${e.tag ?? "*"} BAD ${e.message}\r\n`);
        return await this.#countError();
      }
      throw e;
    }
    this.log?.debug("imap command", {
      conn: this.conn.id,
      user: this.user?.address ?? "",
      command: cmd.name,
      uid: "uid" in cmd && cmd.uid ? 1 : 0,
    });
    const entry = TABLE[cmd.name];
    if (!entry) {
      await this.conn.write(`${cmd.tag} BAD Command not supported\r\n`);
      return true;
    }
    if (!entry.states.includes(this.state)) {
      const why = this.state === "notauth"
        ? "Log in first"
        : this.state === "auth"
        ? "Select a mailbox first"
        : "Not allowed now";
      await this.conn.write(`${cmd.tag} BAD ${why}\r\n`);
      return true;
    }
    let tagged: string;
    try {
      const text = await entry.run(this, cmd);
      if (cmd.name === "LOGOUT") {
        this.out(`${cmd.tag} OK ${text ?? "Logout completed"}\r\n`);
        await this.flush();
        return false;
      }
      if (cmd.name === "COMPRESS" || cmd.name === "STARTTLS") return true;
      const unilateral = cmd.name === "FETCH" || cmd.name === "STORE" || cmd.name === "SEARCH";
      await this.sync(!(unilateral && !("uid" in cmd && cmd.uid)));
      tagged = `${cmd.tag} OK ${text ?? `${cmd.name} completed`}\r\n`;
    } catch (e) {
      if (e instanceof ImapNo) {
        tagged = `${cmd.tag} ${e.bad ? "BAD" : "NO"} ${
          e.code ? `[${e.code}] ` : ""
        }${e.message}\r\n`;
      } else if (isRelayError(e)) {
        tagged = `${cmd.tag} NO ${relayCode(e.code)}${e.message}\r\n`;
      } else if (e instanceof ConnectionClosedError || e instanceof IdleTimeoutError) {
        throw e;
      } else {
        this.log?.error("imap command failed", { command: cmd.name, error: String(e) });
        tagged = `${cmd.tag} NO [SERVERBUG] Internal error\r\n`;
      }
    }
    this.out(tagged);
    await this.flush();
    return true;
  }

  async #countError(): Promise<boolean> {
    this.#errors++;
    if (this.state === "notauth" && this.#errors > MAX_UNAUTH_ERRORS) {
      await this.conn.write("* BYE Too many errors\r\n");
      return false;
    }
    return true;
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
