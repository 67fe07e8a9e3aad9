// The SMTP session's deadlines over a real socket (net's SocketConnection, its clocks): DATA
// trickled a byte at a time ends at DATA's deadline though every byte restarts the idle clock,
// and an AUTH verified after the login deadline logs in for good.

import assert from "node:assert/strict";
import { loopbackPair } from "../../tests/support/loopback_session.ts";
import { concatBytes } from "../mime/bytes.ts";
import type { SmtpBackend, SmtpDataTransaction } from "./backend.ts";
import { SmtpSession, type SmtpSessionOptions } from "./session.ts";

/** A backend that records messages; authenticate() waits until the test settles it. */
function backend() {
  let settle!: (ok: boolean) => void;
  let asked!: () => void;
  const state = {
    wasAsked: new Promise<void>((r) => (asked = r)),
    settle: (ok: boolean) => settle(ok),
    stored: [] as string[],
    aborted: 0,
  };
  const b: SmtpBackend = {
    authenticate: (user) =>
      new Promise((resolve) => {
        settle = (ok) =>
          resolve(
            ok ? { address: user } : {
              reply: { code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" },
            },
          );
        asked();
      }),
    checkSender: () => Promise.resolve(null),
    checkRecipient: () => Promise.resolve(null),
    beginData(): SmtpDataTransaction {
      const parts: Uint8Array[] = [];
      return {
        write: (chunk) => {
          parts.push(chunk.slice());
          return Promise.resolve();
        },
        end: () => {
          state.stored.push(new TextDecoder().decode(concatBytes(parts)));
          return Promise.resolve({ code: 250, enhanced: "2.0.0", text: "OK" });
        },
        abort: () => {
          state.aborted++;
          return Promise.resolve();
        },
      };
    },
  };
  return { backend: b, state };
}

async function session(b: SmtpBackend, options: Partial<SmtpSessionOptions>) {
  const pair = await loopbackPair();
  const done = new SmtpSession(pair.conn, {
    mode: "submission",
    hostname: "mx.example.org",
    maxMessageBytes: 1 << 20,
    maxRecipients: 10,
    startTlsAvailable: false,
    ...options,
  }, b).run();
  const { client, line } = pair;
  return {
    done,
    client,
    line,
    /** Sends a command and returns the last line of its reply. */
    async cmd(s: string): Promise<string> {
      client.write(s + "\r\n");
      for (;;) {
        const l = await line();
        if (l === null) throw new Error("connection closed");
        if (/^\d{3} /.test(l)) return l;
      }
    },
    close: () => pair.close(done),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const plain = (user: string, pw: string) => btoa(`\0${user}\0${pw}`);

Deno.test("SMTP: DATA trickled a byte at a time ends at DATA's deadline with 421 4.4.2, nothing kept; the idle limit alone never ended it", async () => {
  for (const mode of ["inbound", "submission"] as const) {
    const { backend: b, state } = backend();
    // The data timeout (the idle limit between bytes) is 1.5 s; a byte comes every 20 ms.
    const s = await session(b, { mode, dataTimeoutMs: 1500 });
    let timer: ReturnType<typeof setInterval> | undefined;
    try {
      assert.match((await s.line())!, /^220 /);
      assert.match(await s.cmd("EHLO client.example"), /^250 /);
      if (mode === "submission") {
        const auth = s.cmd(`AUTH PLAIN ${plain("alice@example.org", "pw")}`);
        await state.wasAsked;
        state.settle(true);
        assert.match(await auth, /^235 /);
      }
      assert.match(await s.cmd("MAIL FROM:<alice@example.org>"), /^250 /);
      assert.match(await s.cmd("RCPT TO:<bob@example.org>"), /^250 /);
      assert.match(await s.cmd("DATA"), /^354 /);
      // A good start (100 KB at once), then a byte every 20 ms (50 B/s, a tenth of 500 B/s).
      s.client.write(`Subject: slow\r\n\r\n${"x".repeat(100) + "\r\n"}`.repeat(1000));
      timer = setInterval(() => s.client.write("y"), 20);
      assert.equal(await s.line(), "421 4.4.2 mx.example.org Error: timeout exceeded");
      assert.equal(await s.line(), null);
      assert.equal(await s.done, "idle");
      assert.deepEqual(state.stored, []);
      assert.equal(state.aborted, 1);
    } finally {
      clearInterval(timer);
      await s.close();
    }
  }
});

Deno.test("SMTP: an AUTH that arrived before the login deadline and is verified after it logs in for good", async () => {
  const { backend: b, state } = backend();
  const s = await session(b, { loginDeadlineMs: 200 });
  try {
    assert.match((await s.line())!, /^220 /);
    assert.match(await s.cmd("EHLO client.example"), /^250 /);
    const auth = s.cmd(`AUTH PLAIN ${plain("alice@example.org", "pw")}`);
    await state.wasAsked;
    // The password is still being verified when the deadline passes.
    await sleep(400);
    state.settle(true);
    assert.equal(await auth, "235 2.7.0 Authentication successful");
    assert.match(await s.cmd("MAIL FROM:<alice@example.org>"), /^250 /);
    assert.match(await s.cmd("RCPT TO:<bob@example.org>"), /^250 /);
    assert.match(await s.cmd("DATA"), /^354 /);
    assert.match(await s.cmd("Subject: hi\r\n\r\nhello\r\n."), /^250 /);
    assert.match(await s.cmd("QUIT"), /^221 /);
    assert.equal(await s.done, "quit");
    assert.deepEqual(state.stored, ["Subject: hi\r\n\r\nhello\r\n"]);
  } finally {
    await s.close();
  }

  // Refused after the deadline: answered, then the deadline ends the session.
  const refused = backend();
  const r = await session(refused.backend, { loginDeadlineMs: 200 });
  try {
    assert.match((await r.line())!, /^220 /);
    assert.match(await r.cmd("EHLO client.example"), /^250 /);
    const auth = r.cmd(`AUTH PLAIN ${plain("alice@example.org", "wrong")}`);
    await refused.state.wasAsked;
    await sleep(400);
    refused.state.settle(false);
    assert.equal(await auth, "535 5.7.8 Authentication credentials invalid");
    assert.equal(await r.line(), "421 4.4.2 mx.example.org Error: timeout exceeded");
    assert.equal(await r.line(), null);
    assert.equal(await r.done, "idle");
  } finally {
    await r.close();
  }
});
