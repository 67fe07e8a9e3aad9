// The login deadline against a LOGIN still being verified when it passes, over a real socket: the
// deadline bounds the client's input, not the server's work, so a LOGIN that arrived in time
// either logs in for good or, refused, ends the session as the deadline says.

import assert from "node:assert/strict";
import net from "node:net";
import { SocketConnection } from "../net/connection.ts";
import type { ImapAuthResult, ImapBackend, ImapServerConfig } from "./backend.ts";
import { ImapSession } from "./session.ts";

/** The server's side of a loopback pair, taken for TLS (LOGIN needs it; TLS is not the point). */
class TlsLikeConnection extends SocketConnection {
  override get isTls(): boolean {
    return true;
  }
}

/** A backend whose authenticate() waits until the test settles it; nothing else is used. */
function gatedBackend() {
  let settle!: (r: ImapAuthResult) => void;
  let asked!: () => void;
  const wasAsked = new Promise<void>((r) => (asked = r));
  const backend = {
    authenticate: () =>
      new Promise<ImapAuthResult>((resolve) => {
        settle = resolve;
        asked();
      }),
    watch: () => () => {},
    mailboxes: {},
    metadata: {},
  } as unknown as ImapBackend;
  return { backend, wasAsked, settle: (r: ImapAuthResult) => settle(r) };
}

async function session(backend: ImapBackend, config: Partial<ImapServerConfig>) {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => {});
  const conn = new TlsLikeConnection(await accepted);
  const done = new ImapSession(conn, backend, {
    hostname: "imap.example.org",
    maxMessageBytes: 1 << 20,
    startTlsAvailable: false,
    ...config,
  }).run();
  let text = "";
  let wake: (() => void) | null = null;
  let ended = false;
  client.on("data", (b: Uint8Array) => {
    text += new TextDecoder().decode(b);
    wake?.();
  });
  client.on("close", () => {
    ended = true;
    wake?.();
  });
  return {
    done,
    send: (s: string) => client.write(s),
    /** The next line from the server (null once it closed the connection). */
    async line(): Promise<string | null> {
      while (!text.includes("\r\n")) {
        if (ended) return null;
        await waitFor(() => new Promise<void>((r) => (wake = r)));
      }
      const i = text.indexOf("\r\n");
      const l = text.slice(0, i);
      text = text.slice(i + 2);
      return l;
    },
    async close() {
      client.destroy();
      await done.catch(() => {});
      await new Promise((r) => server.close(r));
    },
  };
}

/** The server's next output or close, failing after 30 s (a bound, not a measurement). */
async function waitFor(next: () => Promise<void>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      next(),
      new Promise((_, reject) =>
        timer = setTimeout(() => reject(new Error("nothing from the server in 30 s")), 30_000)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("IMAP: a LOGIN that arrived before the login deadline and is verified after it logs in for good", async () => {
  const { backend, wasAsked, settle } = gatedBackend();
  const s = await session(backend, { loginDeadlineMs: 200 });
  try {
    assert.match((await s.line())!, /^\* OK /);
    s.send("a1 LOGIN alice@example.org secret-password\r\n");
    await wasAsked;
    // The password is still being verified when the deadline passes.
    await sleep(400);
    settle({ user: { accountId: 1, address: "alice@example.org" } });
    assert.match((await s.line())!, /^a1 OK \[CAPABILITY .*\] Logged in$/);
    // Logged in: the deadline is over, the session goes on (no BYE after an OK LOGIN).
    s.send("a2 NOOP\r\n");
    assert.equal(await s.line(), "a2 OK NOOP completed");
    s.send("a3 LOGOUT\r\n");
    assert.match((await s.line())!, /^\* BYE /);
    assert.match((await s.line())!, /^a3 OK /);
    assert.equal(await s.done, "quit");
  } finally {
    await s.close();
  }
});

Deno.test("IMAP: a LOGIN refused after the login deadline is answered, then the deadline ends the session", async () => {
  const { backend, wasAsked, settle } = gatedBackend();
  const s = await session(backend, { loginDeadlineMs: 200 });
  try {
    assert.match((await s.line())!, /^\* OK /);
    s.send("a1 LOGIN alice@example.org wrong-password\r\n");
    await wasAsked;
    await sleep(400);
    settle({ error: "auth_failed", message: "Authentication failed" });
    assert.equal(await s.line(), "a1 NO [AUTHENTICATIONFAILED] Authentication failed");
    assert.equal(await s.line(), "* BYE Disconnected for inactivity.");
    assert.equal(await s.line(), null);
    assert.equal(await s.done, "idle");
  } finally {
    await s.close();
  }
});
