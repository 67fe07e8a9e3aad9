// The login deadline against a LOGIN still being verified when it passes, over a real socket: the
// deadline bounds the client's input, not the server's work, so a LOGIN that arrived in time
// either logs in for good or, refused, ends the session as the deadline says.

import assert from "node:assert/strict";
import { loopbackPair } from "../../tests/support/loopback_session.ts";
import type { ImapAuthResult, ImapBackend, ImapServerConfig } from "./backend.ts";
import { ImapSession } from "./session.ts";

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
  const pair = await loopbackPair();
  const done = new ImapSession(pair.conn, backend, {
    hostname: "imap.example.org",
    maxMessageBytes: 1 << 20,
    startTlsAvailable: false,
    ...config,
  }).run();
  return {
    done,
    send: (s: string) => pair.client.write(s),
    line: pair.line,
    close: () => pair.close(done),
  };
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

/** A backend that logs anyone in at once (IDLE, in the authenticated state, needs no more). */
const openBackend = {
  authenticate: () => Promise.resolve({ user: { accountId: 1, address: "alice@example.org" } }),
  watch: () => () => {},
  mailboxes: {},
  metadata: {},
} as unknown as ImapBackend;

/** Logged in and idling, with a command deadline of `ms`. */
async function idling(ms: number) {
  const s = await session(openBackend, { commandDeadlineMs: ms });
  assert.match((await s.line())!, /^\* OK /);
  s.send("a1 LOGIN alice@example.org secret-password\r\n");
  assert.match((await s.line())!, /^a1 OK /);
  s.send("i1 IDLE\r\n");
  assert.equal(await s.line(), "+ idling");
  return s;
}

Deno.test("IMAP: an IDLE's DONE line cut short ends at the command deadline, not at the idle limit", async () => {
  const s = await idling(200);
  try {
    // "DO" and nothing more: before, the session waited for the rest until the idle limit
    // (31 min, restarted by each byte of a trickle).
    s.send("DO");
    assert.equal(await s.line(), "* BYE Disconnected: command not received in time");
    assert.equal(await s.line(), null);
    assert.equal(await s.done, "idle");
  } finally {
    await s.close();
  }
});

Deno.test("IMAP: garbage without a line end trickled during IDLE ends at the command deadline", async () => {
  const s = await idling(200);
  // A byte every 20 ms: each restarts the idle clock; the line never ends nor reaches its limit
  // (1 KiB) before the deadline.
  const timer = setInterval(() => s.send("x"), 20);
  try {
    assert.equal(await s.line(), "* BYE Disconnected: command not received in time");
    assert.equal(await s.line(), null);
    assert.equal(await s.done, "idle");
  } finally {
    clearInterval(timer);
    await s.close();
  }
});

Deno.test("IMAP: IDLE silent past the command deadline goes on; a bad or overlong line ends it with BAD", async () => {
  const s = await idling(200);
  try {
    // The deadline starts with the line's first byte: the wait for it is not bounded.
    await sleep(500);
    s.send("DONE\r\n");
    assert.equal(await s.line(), "i1 OK IDLE terminated");
    s.send("i2 IDLE\r\n");
    assert.equal(await s.line(), "+ idling");
    s.send("NOPE\r\n");
    assert.equal(await s.line(), "i2 BAD Expected DONE");
    s.send("i3 IDLE\r\n");
    assert.equal(await s.line(), "+ idling");
    s.send(`${"x".repeat(2000)}\r\n`);
    assert.equal(await s.line(), "i3 BAD [TOOBIG] Line too long");
    // The session goes on, and the IDLE's deadline is not left over for the next command.
    await sleep(500);
    s.send("a2 NOOP\r\n");
    assert.equal(await s.line(), "a2 OK NOOP completed");
  } finally {
    await s.close();
  }
});
