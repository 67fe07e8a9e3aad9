import assert from "node:assert/strict";
import { SmtpPool } from "./smtp_pool.ts";
import { AttemptBudget, type Deadlines } from "./deadlines.ts";
import { smtpPeer, testCertificate } from "./testdata/fake_peers.ts";

const cert = await testCertificate();
const FAST: Deadlines = { connectMs: 2000, tlsMs: 2000, commandMs: 1000, attemptMs: 5000 };
const enc = new TextEncoder();
const msg = (to: string) => ({
  sender: "a@a.test",
  recipients: [to],
  data: enc.encode("Subject: x\r\n\r\ny\r\n"),
});

async function waitFor(what: string, ok: () => boolean, ms = 5000) {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("SmtpPool reuses a session for the next message and says QUIT once idle", async () => {
  const peer = await smtpPeer({ tls: cert });
  const pool = new SmtpPool({ idleMs: 100 });
  const t = {
    address: "127.0.0.1",
    port: peer.port,
    servername: "peer.test",
    insecure: false,
    ca: [cert.caPem!],
    heloName: "a.test",
  };
  try {
    for (let i = 0; i < 3; i++) {
      const { session, reused } = await pool.acquire(t, new AttemptBudget(FAST));
      assert.equal(reused, i > 0);
      await session.send(msg(`u${i}@peer.test`), new AttemptBudget(FAST));
      pool.release(t, session);
    }
    assert.equal(pool.opened, 1);
    assert.equal(peer.sessions.length, 1);
    assert.ok(!peer.sessions[0].includes("QUIT"), "no QUIT while mail may follow");
    await waitFor("QUIT after the idle time", () => peer.sessions[0].includes("QUIT"));
    assert.equal(peer.mails.length, 3);
    // The peer saw QUIT; the session leaves the pool once its goodbye is read.
    await waitFor("the session to leave the pool", () => pool.size === 0);
  } finally {
    await pool.close();
    await peer.close();
  }
});

Deno.test("SmtpPool opens a second session for a second message in parallel and ends worn ones", async () => {
  const peer = await smtpPeer({ tls: cert });
  const pool = new SmtpPool({ idleMs: 5000, maxMessages: 2 });
  const t = {
    address: "127.0.0.1",
    port: peer.port,
    servername: "peer.test",
    insecure: false,
    ca: [cert.caPem!],
    heloName: "a.test",
  };
  try {
    const a = await pool.acquire(t, new AttemptBudget(FAST));
    const b = await pool.acquire(t, new AttemptBudget(FAST));
    assert.equal(pool.opened, 2);
    await Promise.all([
      a.session.send(msg("x@peer.test"), new AttemptBudget(FAST)),
      b.session.send(msg("y@peer.test"), new AttemptBudget(FAST)),
    ]);
    pool.release(t, a.session);
    pool.release(t, b.session);
    const c = await pool.acquire(t, new AttemptBudget(FAST));
    assert.ok(c.reused);
    await c.session.send(msg("z@peer.test"), new AttemptBudget(FAST));
    pool.release(t, c.session);
    // Two messages on that session: it is ended rather than kept.
    await waitFor(
      "QUIT of the worn session",
      () => peer.sessions.filter((s) => s.includes("QUIT")).length === 1,
    );
    await pool.close();
    await waitFor("QUIT of the other", () => peer.sessions.every((s) => s.includes("QUIT")));
  } finally {
    await pool.close();
    await peer.close();
  }
});
