// The real Delta Chat core (deltachat-rpc-server 2.57, JSON-RPC over stdio) for end-to-end
// tests: one rpc server process per device, with helpers that wait for events with timeouts.

import { type ChildProcess, spawn } from "node:child_process";
import type { StdioDeltaChat, T } from "@deltachat/jsonrpc-client";
import { type Core, CORES } from "./deltachat_cores.ts";

export interface Server {
  imapPort: number;
  smtpPort: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** One Delta Chat device: an rpc server process holding one account. */
export class Device {
  readonly name: string;
  readonly dc: StdioDeltaChat;
  readonly accountId: number;
  address = "";
  #proc: ChildProcess;
  #dir: string;
  #log: string[] = [];
  #warnings: string[] = [];

  private constructor(
    name: string,
    proc: ChildProcess,
    dc: StdioDeltaChat,
    acc: number,
    dir: string,
  ) {
    this.name = name;
    this.#proc = proc;
    this.dc = dc;
    this.accountId = acc;
    this.#dir = dir;
    dc.getContextEvents(acc).on("ALL", (e) => {
      if (e.kind === "Warning" || e.kind === "Error") {
        this.#warnings.push(`${e.kind}: ${e.msg}`);
        if (this.#warnings.length > 50) this.#warnings.shift();
      }
      if (e.kind === "Warning" || e.kind === "Error" || e.kind === "Info") {
        this.#log.push(`${e.kind}: ${e.msg}`);
        if (this.#log.length > 400) this.#log.shift();
      }
    });
  }

  /**
   * Starts a device on the given core generation (default: 2.57); `netns` runs the core inside
   * that network namespace (`ip netns exec`, needs root).
   */
  static async start(
    name: string,
    options: { core?: Core; netns?: string } = {},
  ): Promise<Device> {
    const core = options.core ?? CORES["2.57"];
    const dir = await Deno.makeTempDir({ prefix: `dc-${name}-` });
    const Client = await core.client();
    const [cmd, args] = options.netns
      ? ["ip", ["netns", "exec", options.netns, core.binary]]
      : [core.binary, [] as string[]];
    const proc = spawn(cmd, args, {
      env: { ...Deno.env.toObject(), DC_ACCOUNTS_PATH: `${dir}/accounts`, RUST_LOG: "warn" },
      stdio: ["pipe", "pipe", "ignore"],
    });
    const dc = new Client(proc.stdin, proc.stdout, true);
    const acc = await dc.rpc.addAccount();
    return new Device(name, proc, dc, acc, dir);
  }

  get rpc() {
    return this.dc.rpc;
  }

  /** Recent Info/Warning/Error events, for failure messages. */
  log(): string {
    return [...this.#warnings, "--- recent ---", ...this.#log.slice(-40)].join("\n");
  }

  /** Configures the account from explicit login parameters (TLS on both, any certificate). */
  async configure(server: Server, address: string, password: string): Promise<void> {
    await this.rpc.batchSetConfig(this.accountId, { bcc_self: "1", displayname: this.name });
    await this.rpc.addOrUpdateTransport(this.accountId, {
      addr: address,
      password,
      imapServer: server.host ?? "127.0.0.1",
      imapPort: server.imapPort,
      imapSecurity: "ssl",
      imapUser: null,
      imapFolder: null,
      smtpServer: server.host ?? "127.0.0.1",
      smtpPort: server.smtpPort,
      smtpSecurity: "ssl",
      smtpUser: null,
      smtpPassword: null,
      certificateChecks: "acceptInvalidCertificates",
    });
    this.address = address;
    await this.startIo();
  }

  /**
   * Starts IO and waits until the inbox is idle. Delta Chat skips what is already in the inbox
   * when it first selects it, so nothing may be sent to a device before this.
   */
  async startIo(): Promise<void> {
    const idle = this.waitFor("ImapInboxIdle", () => true, 30_000, "the inbox to be idle");
    await this.rpc.startIo(this.accountId);
    await idle;
  }

  async configureFromQr(qr: string): Promise<void> {
    await this.rpc.batchSetConfig(this.accountId, { bcc_self: "1", displayname: this.name });
    await this.rpc.addTransportFromQr(this.accountId, qr);
    this.address = (await this.rpc.getConfig(this.accountId, "addr")) ?? "";
    await this.startIo();
  }

  /** Resolves with the first event of `kind` that satisfies `match`. */
  waitFor<K extends T.EventType["kind"]>(
    kind: K,
    match: (e: Extract<T.EventType, { kind: K }>) => boolean,
    timeoutMs: number,
    what?: string,
  ): Promise<Extract<T.EventType, { kind: K }>> {
    const emitter = this.dc.getContextEvents(this.accountId);
    return new Promise((resolve, reject) => {
      const handler = (e: Extract<T.EventType, { kind: K }>) => {
        if (!match(e)) return;
        clearTimeout(timer);
        emitter.off(kind, handler as never);
        resolve(e);
      };
      const timer = setTimeout(() => {
        emitter.off(kind, handler as never);
        reject(new Error(`${this.name}: timed out waiting for ${what ?? kind}\n${this.log()}`));
      }, timeoutMs);
      emitter.on(kind, handler as never);
    });
  }

  /** Waits until a message with `text` arrives (IncomingMsg), returning it. */
  async waitForText(text: string, timeoutMs: number): Promise<T.Message> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const found = await this.findText(text);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no message "${text}"\n${this.log()}`);
      await Promise.race([
        this.waitFor("IncomingMsg", () => true, left).catch(() => {}),
        this.waitFor("MsgsChanged", () => true, left).catch(() => {}),
        new Promise((r) => setTimeout(r, 500)),
      ]);
    }
  }

  /** A message with exactly this text in any chat (the last 200 of each), or null; no waiting. */
  async findText(text: string): Promise<T.Message | null> {
    const chats = await this.rpc.getChatlistEntries(this.accountId, null, null, null);
    for (const chatId of chats) {
      const ids = await this.rpc.getMessageIds(this.accountId, chatId, false, false);
      for (const id of ids.slice(-200)) {
        const m = await this.rpc.getMessage(this.accountId, id);
        if (m.text === text) return m;
      }
    }
    return null;
  }

  async stop(): Promise<void> {
    try {
      await this.rpc.stopIo(this.accountId);
    } catch {
      // the process may already be gone
    }
    this.dc.close();
    this.#proc.kill("SIGTERM");
    await new Promise<void>((resolve) => {
      if (this.#proc.exitCode !== null) return resolve();
      const t = setTimeout(() => {
        this.#proc.kill("SIGKILL");
        resolve();
      }, 5000);
      this.#proc.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
    });
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** Secure-Join: `joiner` scans `inviter`'s QR code; resolves with both 1:1 chat ids. */
export async function secureJoin(
  inviter: Device,
  joiner: Device,
  timeoutMs: number,
): Promise<{ inviterChat: number; joinerChat: number }> {
  const qr = await inviter.rpc.getChatSecurejoinQrCode(inviter.accountId, null);
  const inviterDone = inviter.waitFor(
    "SecurejoinInviterProgress",
    (e) => e.progress === 1000,
    timeoutMs,
    "Secure-Join inviter progress 1000",
  );
  const joinerDone = joiner.waitFor(
    "SecurejoinJoinerProgress",
    (e) => e.progress === 1000,
    timeoutMs,
    "Secure-Join joiner progress 1000",
  );
  const joinerChat = await joiner.rpc.secureJoin(joiner.accountId, qr);
  const inv = await inviterDone;
  await joinerDone;
  const inviterChat = await inviter.rpc.createChatByContactId(inviter.accountId, inv.contactId);
  return { inviterChat, joinerChat };
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
