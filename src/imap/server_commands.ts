// Commands about the connection and the account rather than one mailbox: CAPABILITY, NOOP,
// LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, NAMESPACE, COMPRESS, IDLE, QUOTA and
// METADATA (RFC 9051, 2971, 5161, 2342, 4978, 2177, 9208, 5464).

import { ConnectionClosedError } from "../net/mod.ts";
import type { CommandTable, SessionContext } from "./session.ts";
import type { Command, CommandOf } from "./types.ts";
import { bad, ImapNo, str } from "./responses.ts";
import { literal, mailboxPiece } from "./encode.ts";

const ANY = ["notauth", "auth", "selected"] as const;
const AUTHED = ["auth", "selected"] as const;
const QUOTA_ROOT = "User quota";
/**
 * Entries one GETMETADATA or SETMETADATA may name (Delta Chat names at most six). A command may
 * be megabytes long: 60 000 entries of "/shared" with DEPTH infinity were answered with 40
 * MB, built in memory while the relay served no one else, and as many SETs would be as many
 * writes.
 */
export const MAX_METADATA_ENTRIES = 100;

function checkEntryCount(count: number): void {
  if (count > MAX_METADATA_ENTRIES) {
    throw new ImapNo(`Too many entries in one command (at most ${MAX_METADATA_ENTRIES})`, "LIMIT");
  }
}
const dec = new TextDecoder();

type Of<N extends Command["name"]> = CommandOf<N>;

async function login(
  ctx: SessionContext,
  user: string,
  password: string,
  authzid?: string,
): Promise<string> {
  if (!ctx.conn.isTls) throw new ImapNo("Log in over TLS", "PRIVACYREQUIRED");
  const r = await ctx.backend.authenticate(user, password, ctx.conn.remoteAddress, authzid);
  if ("error" in r) {
    throw new ImapNo(
      r.error === "auth_failed" ? "Authentication failed" : r.message,
      r.error === "auth_failed" ? "AUTHENTICATIONFAILED" : "UNAVAILABLE",
    );
  }
  ctx.login(r.user);
  return `[CAPABILITY ${ctx.capabilities()}] Logged in`;
}

/** "authzid\0authcid\0password"; a non-empty authzid is the login's to judge. */
function decodePlain(b64: string): { user: string; password: string; authzid: string } | null {
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const [authzid, user, password, ...rest] = dec.decode(bytes).split("\0");
    if (rest.length || !user || password === undefined) return null;
    return { user, password, authzid };
  } catch {
    return null;
  }
}

async function metadataMailbox(ctx: SessionContext, mailbox: string): Promise<void> {
  if (mailbox === "" || mailbox === "INBOX") return;
  if (!(await ctx.backend.mailboxes.getMailbox(ctx.user!.accountId, mailbox))) {
    throw new ImapNo("No such mailbox", "NONEXISTENT");
  }
}

export const serverCommands: CommandTable = {
  CAPABILITY: {
    states: [...ANY],
    run(ctx) {
      ctx.out(`* CAPABILITY ${ctx.capabilities()}\r\n`);
      return Promise.resolve();
    },
  },
  NOOP: { states: [...ANY], run: () => Promise.resolve() },
  CHECK: { states: ["selected"], run: () => Promise.resolve() },
  LOGOUT: {
    states: [...ANY],
    run(ctx) {
      ctx.out("* BYE Logging out\r\n");
      return Promise.resolve();
    },
  },
  ID: {
    states: [...ANY],
    run(ctx) {
      // Nothing identifying the software is revealed.
      ctx.out("* ID NIL\r\n");
      return Promise.resolve();
    },
  },
  STARTTLS: {
    states: ["notauth"],
    async run(ctx, cmd) {
      if (ctx.conn.isTls || !ctx.config.startTlsAvailable) throw bad("TLS is already active");
      if (ctx.conn.bufferedBytes() > 0) {
        // RFC 9051 §6.2.1: nothing may follow STARTTLS before the handshake.
        await ctx.conn.write(`${cmd.tag} BAD Data after STARTTLS refused\r\n`);
        throw new ConnectionClosedError("pipelined STARTTLS");
      }
      await ctx.flush();
      await ctx.conn.startTls(`${cmd.tag} OK Begin TLS negotiation now\r\n`);
    },
  },
  LOGIN: {
    states: ["notauth"],
    run(ctx, cmd) {
      const c = cmd as Of<"LOGIN">;
      return login(ctx, c.user, c.password);
    },
  },
  AUTHENTICATE: {
    states: ["notauth"],
    async run(ctx, cmd) {
      const c = cmd as Of<"AUTHENTICATE">;
      if (c.mechanism.toUpperCase() !== "PLAIN") {
        throw new ImapNo("Unsupported mechanism", "CANNOT");
      }
      if (!ctx.conn.isTls) throw new ImapNo("Log in over TLS", "PRIVACYREQUIRED");
      let response = c.initial;
      if (response === undefined) {
        await ctx.flush();
        await ctx.conn.write("+ \r\n");
        const line = await ctx.conn.readLine(16 * 1024);
        if (line === null) throw new ConnectionClosedError();
        response = dec.decode(line).trim();
        if (response === "*") throw bad("Authentication cancelled");
      }
      const creds = decodePlain(response === "=" ? "" : response);
      if (!creds) throw bad("Malformed SASL PLAIN response");
      return await login(ctx, creds.user, creds.password, creds.authzid || undefined);
    },
  },
  ENABLE: {
    states: [...AUTHED],
    run(ctx, cmd) {
      const c = cmd as Of<"ENABLE">;
      const newly: string[] = [];
      for (const cap of c.capabilities.map((x) => x.toUpperCase())) {
        if ((cap === "CONDSTORE" || cap === "QRESYNC") && !ctx.enabled.has(cap)) {
          ctx.enabled.add(cap);
          newly.push(cap);
        }
      }
      if (newly.includes("QRESYNC")) ctx.enabled.add("CONDSTORE");
      ctx.out(`* ENABLED${newly.map((n) => " " + n).join("")}\r\n`);
      return Promise.resolve();
    },
  },
  NAMESPACE: {
    states: [...AUTHED],
    run(ctx) {
      ctx.out('* NAMESPACE (("" ".")) NIL NIL\r\n');
      return Promise.resolve();
    },
  },
  COMPRESS: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"COMPRESS">;
      if (c.mechanism.toUpperCase() !== "DEFLATE") throw bad("Unknown compression mechanism");
      if (ctx.conn.isCompressed) {
        throw new ImapNo("Compression is already active", "COMPRESSIONACTIVE");
      }
      await ctx.flush();
      await ctx.conn.startCompression(`${cmd.tag} OK DEFLATE active\r\n`);
    },
  },
  IDLE: {
    states: [...AUTHED],
    async run(ctx) {
      // The continuation goes first: clients (Delta Chat's async-imap among them) may drop
      // untagged data that arrives before it. Changes made before IDLE (even between SELECT
      // and IDLE) follow at once. Then the session hibernates until DONE (session.ts): it
      // waits for the client's line, the account's changes and the quiet interval with no
      // suspended frame, and answers DONE itself.
      ctx.out("+ idling\r\n");
      await ctx.sync(true);
      await ctx.flush();
    },
  },
  GETQUOTAROOT: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"GETQUOTAROOT">;
      if (!(await ctx.backend.mailboxes.getMailbox(ctx.user!.accountId, c.mailbox))) {
        throw new ImapNo("No such mailbox", "NONEXISTENT");
      }
      const q = await ctx.backend.mailboxes.quota(ctx.user!.accountId);
      ctx.out(`* QUOTAROOT ${str(c.mailbox)} ${str(QUOTA_ROOT)}\r\n`);
      ctx.out(`* QUOTA ${str(QUOTA_ROOT)} (STORAGE ${kib(q.usedBytes)} ${kib(q.limitBytes)})\r\n`);
    },
  },
  GETQUOTA: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"GETQUOTA">;
      if (c.root !== QUOTA_ROOT) throw new ImapNo("No such quota root", "NONEXISTENT");
      const q = await ctx.backend.mailboxes.quota(ctx.user!.accountId);
      ctx.out(`* QUOTA ${str(QUOTA_ROOT)} (STORAGE ${kib(q.usedBytes)} ${kib(q.limitBytes)})\r\n`);
    },
  },
  GETMETADATA: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"GETMETADATA">;
      // An entry named twice is answered once.
      const entries = [...new Set(c.entries)];
      checkEntryCount(entries.length);
      await metadataMailbox(ctx, c.mailbox);
      const accountId = ctx.user!.accountId;
      const values: { entry: string; value: string | null }[] = [];
      for (const entry of entries) {
        values.push({ entry, value: await ctx.backend.metadata.get(accountId, c.mailbox, entry) });
        if (c.depth !== "0") {
          const below = await ctx.backend.metadata.list(accountId, c.mailbox, entry);
          for (const b of below) {
            if (
              c.depth === "infinity" || b.entry.split("/").length === entry.split("/").length + 1
            ) {
              values.push(b);
            }
          }
        }
      }
      let longest = 0;
      const shown = values.filter((v) => {
        const n = v.value === null ? 0 : new TextEncoder().encode(v.value).length;
        if (c.maxSize !== undefined && n > c.maxSize) {
          longest = Math.max(longest, n);
          return false;
        }
        return true;
      });
      if (shown.length > 0) {
        // As Dovecot: INBOX bare, every value a literal (NIL when unset).
        ctx.out(`* METADATA `);
        ctx.out(mailboxPiece(c.mailbox));
        ctx.out(" (");
        shown.forEach((v, i) => {
          ctx.out(`${i ? " " : ""}${v.entry} `);
          ctx.out(v.value === null ? "NIL" : literal(v.value));
        });
        ctx.out(")\r\n");
      }
      if (longest > 0) return `[METADATA LONGENTRIES ${longest}] Getmetadata completed.`;
      return "Getmetadata completed.";
    },
  },
  SETMETADATA: {
    states: [...AUTHED],
    async run(ctx, cmd) {
      const c = cmd as Of<"SETMETADATA">;
      checkEntryCount(c.entries.length);
      await metadataMailbox(ctx, c.mailbox);
      const refuse = (entry: string, problem: string): never => {
        if (problem === "MAXSIZE") throw new ImapNo("Value too long", "METADATA MAXSIZE 4096");
        if (problem === "BADVALUE") {
          throw new ImapNo(`${entry} must not contain control characters (such as NUL)`);
        }
        throw new ImapNo(`Cannot set ${entry}`, problem);
      };
      // Every entry is checked before the first is set: a refused one leaves nothing half set.
      for (const e of c.entries) {
        const problem = ctx.backend.metadata.check(c.mailbox, e.entry, e.value);
        if (problem) refuse(e.entry, problem);
      }
      for (const e of c.entries) {
        const problem = await ctx.backend.metadata.set(
          ctx.user!.accountId,
          c.mailbox,
          e.entry,
          e.value,
        );
        if (problem) refuse(e.entry, problem);
      }
      return "Setmetadata completed.";
    },
  },
};

function kib(bytes: number): number {
  return Math.ceil(bytes / 1024);
}
