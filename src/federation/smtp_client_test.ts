import assert from "node:assert/strict";
import { dotStuff, sendSmtp, SmtpReplyError, SmtpSession } from "./smtp_client.ts";
import { AttemptBudget, type Deadlines } from "./deadlines.ts";
import { TransportError } from "./conn.ts";
import { drippingPeer, silentPeer, smtpPeer, testCertificate } from "./testdata/fake_peers.ts";

const cert = await testCertificate();
const FAST: Deadlines = { connectMs: 2000, tlsMs: 2000, commandMs: 400, attemptMs: 5000 };
const enc = new TextEncoder();
const dec = new TextDecoder();

function target(port: number, servername = "peer.test") {
  return {
    address: "127.0.0.1",
    port,
    servername,
    insecure: false,
    ca: [cert.caPem!],
    heloName: "a.test",
  };
}

const message = (n: number) => ({
  sender: "alice@a.test",
  recipients: ["bob@peer.test", "nobody@peer.test", "carol@peer.test"],
  data: enc.encode(`Subject: ${n}\r\n\r\n.leading dot\r\nbody ${n}\r\n`),
});

for (const pipelining of [true, false]) {
  Deno.test(`SmtpSession sends several messages on one session (PIPELINING ${pipelining ? "on" : "off"})`, async () => {
    const peer = await smtpPeer({
      tls: cert,
      pipelining,
      rcpt: (a) =>
        a.startsWith("nobody") ? "550 5.1.1 <nobody@peer.test>: User unknown" : "250 2.1.5 OK",
    });
    try {
      const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
      assert.equal(session.pipelining, pipelining);
      for (const n of [1, 2]) {
        const results = await session.send(message(n), new AttemptBudget(FAST));
        assert.deepEqual(results.map((r) => [r.recipient, r.code]), [
          ["bob@peer.test", 250],
          ["nobody@peer.test", 550],
          ["carol@peer.test", 250],
        ]);
        assert.match(results[1].text, /User unknown/);
      }
      await session.quit();
      assert.equal(peer.sessions.length, 1, "one connection for both messages");
      const verbs = peer.sessions[0].map((l) => l.split(/[ :]/)[0]);
      assert.deepEqual(verbs, [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "MAIL",
        "RCPT",
        "RCPT",
        "RCPT",
        "DATA",
        "<data",
        "RSET",
        "MAIL",
        "RCPT",
        "RCPT",
        "RCPT",
        "DATA",
        "<data",
        "QUIT",
      ]);
      assert.deepEqual(peer.mails.map((m) => m.to), [
        ["bob@peer.test", "carol@peer.test"],
        ["bob@peer.test", "carol@peer.test"],
      ]);
      assert.equal(peer.mails[1].data, "Subject: 2\r\n\r\n.leading dot\r\nbody 2");
      // With PIPELINING the transaction's commands travel together; without, one per write.
      if (pipelining) assert.ok(peer.groupedWrites >= 2, `${peer.groupedWrites}`);
      else assert.equal(peer.groupedWrites, 0);
      assert.match(peer.sessions[0][3], /^MAIL FROM:<alice@a\.test> SIZE=\d+ BODY=8BITMIME$/);
    } finally {
      await peer.close();
    }
  });
}

Deno.test("SmtpSession: a refused MAIL FROM is every recipient's result and the session goes on", async () => {
  let refuse = true;
  const peer = await smtpPeer({
    tls: cert,
    mail: () => refuse ? "451 4.3.0 Try later" : "250 2.1.0 OK",
  });
  try {
    const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
    const first = await session.send(message(1), new AttemptBudget(FAST));
    assert.deepEqual(first.map((r) => r.code), [451, 451, 451]);
    assert.ok(session.usable);
    refuse = false;
    const second = await session.send(message(2), new AttemptBudget(FAST));
    assert.deepEqual(second.map((r) => r.code), [250, 250, 250]);
    assert.equal(peer.mails.length, 1);
    await session.quit();
  } finally {
    await peer.close();
  }
});

Deno.test("SmtpSession: no data is sent when every recipient is refused", async () => {
  const peer = await smtpPeer({ tls: cert, pipelining: false, rcpt: () => "550 5.1.1 unknown" });
  try {
    const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
    const r = await session.send(message(1), new AttemptBudget(FAST));
    assert.deepEqual(r.map((x) => x.code), [550, 550, 550]);
    assert.equal(peer.mails.length, 0);
    assert.ok(!peer.sessions[0].includes("DATA"));
    await session.quit();
  } finally {
    await peer.close();
  }
});

for (const pipelining of [true, false]) {
  Deno.test(`SmtpSession: a DATA answered 250 instead of 354 is not a delivery (PIPELINING ${pipelining ? "on" : "off"})`, async () => {
    // A broken peer: it never asked for the message, so nothing was delivered.
    const peer = await smtpPeer({ tls: cert, pipelining, dataCommand: () => "250 2.0.0 OK" });
    try {
      const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
      const r = await session.send(message(1), new AttemptBudget(FAST));
      assert.equal(peer.mails.length, 0);
      assert.deepEqual(r.map((x) => x.code), [451, 451, 451]);
      assert.match(r[0].text, /DATA was answered with: 250 2\.0\.0 OK/);
      assert.equal(session.usable, false, "a session in an unknown state is not reused");
      session.destroy();
    } finally {
      await peer.close();
    }
  });
}

Deno.test("SmtpSession: a message over the peer's SIZE is refused without sending it", async () => {
  const peer = await smtpPeer({ tls: cert, size: 10 });
  try {
    const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
    const r = await session.send(message(1), new AttemptBudget(FAST));
    assert.deepEqual(r.map((x) => x.code), [552, 552, 552]);
    assert.match(r[0].text, /^552 5\.3\.4 /);
    assert.ok(!peer.sessions[0].some((l) => l.startsWith("MAIL")));
    await session.quit();
  } finally {
    await peer.close();
  }
});

Deno.test("SmtpSession: 421 at end of data closes the session", async () => {
  const peer = await smtpPeer({ tls: cert, data: () => "421 4.3.2 Shutting down" });
  try {
    const session = await SmtpSession.open(target(peer.port), new AttemptBudget(FAST));
    const r = await session.send(message(1), new AttemptBudget(FAST));
    assert.deepEqual(r.map((x) => x.code), [421, 421, 421]);
    assert.equal(session.usable, false);
    session.destroy();
  } finally {
    await peer.close();
  }
});

Deno.test("SmtpSession.open() requires STARTTLS and a certificate for the name", async () => {
  const plain = await smtpPeer({ tls: cert, starttls: false });
  const good = await smtpPeer({ tls: cert });
  try {
    await assert.rejects(
      SmtpSession.open(target(plain.port), new AttemptBudget(FAST)),
      (e: TransportError) => e.kind === "tls" && /does not offer STARTTLS/.test(e.message),
    );
    assert.ok(!plain.sessions[0].some((l) => l.startsWith("MAIL")));
    await assert.rejects(
      SmtpSession.open(target(good.port, "elsewhere.test"), new AttemptBudget(FAST)),
      (e: TransportError) => e.kind === "tls",
    );
    await assert.rejects(
      SmtpSession.open({ ...target(good.port), ca: undefined }, new AttemptBudget(FAST)),
      (e: TransportError) => e.kind === "tls",
    );
    // IP literal and "_" destinations accept any certificate, as the reference relay.
    const s = await SmtpSession.open(
      { ...target(good.port, "127.0.0.1"), ca: undefined, insecure: true },
      new AttemptBudget(FAST),
    );
    await s.quit();
  } finally {
    await plain.close();
    await good.close();
  }
});

Deno.test("SmtpSession.open() ends at the greeting deadline with a silent or dripping peer", async () => {
  const silent = await silentPeer();
  const drip = await drippingPeer("220 slow.test ESMTP a very slow greeting\r\n", 20);
  try {
    for (const port of [silent.port, drip.port]) {
      const t0 = performance.now();
      await assert.rejects(
        SmtpSession.open(target(port), new AttemptBudget(FAST)),
        (e: TransportError) => e.kind === "timeout" && /no reply to the greeting/.test(e.message),
      );
      const took = performance.now() - t0;
      assert.ok(took < 3 * FAST.commandMs, `${took} ms`);
    }
  } finally {
    await silent.close();
    await drip.close();
  }
});

Deno.test("SmtpSession.open() reports a refusing greeting as the server's reply", async () => {
  const peer = await drippingPeer("554 5.7.1 No service for you\r\n", 0);
  try {
    await assert.rejects(
      SmtpSession.open(target(peer.port), new AttemptBudget(FAST)),
      (e: SmtpReplyError) => e instanceof SmtpReplyError && e.code === 554,
    );
  } finally {
    await peer.close();
  }
});

Deno.test("sendSmtp() delivers one message and says QUIT", async () => {
  const peer = await smtpPeer({ tls: cert });
  try {
    const r = await sendSmtp({
      ...target(peer.port),
      insecureTls: false,
      caCerts: [cert.caPem!],
      sender: "",
      recipients: ["bob@peer.test"],
      data: enc.encode("Subject: x\r\n\r\ny\r\n"),
      timeoutMs: 2000,
    });
    assert.deepEqual(r.map((x) => x.code), [250]);
    assert.equal(peer.sessions[0].at(-1), "QUIT");
    assert.equal(peer.mails[0].from, "");
  } finally {
    await peer.close();
  }
});

Deno.test("dotStuff() doubles leading dots and ends with CRLF.CRLF", () => {
  assert.equal(dec.decode(dotStuff(enc.encode(".a\r\nb\r\n..c\r\n"))), "..a\r\nb\r\n...c\r\n.\r\n");
  assert.equal(dec.decode(dotStuff(enc.encode("no newline"))), "no newline\r\n.\r\n");
  assert.equal(dec.decode(dotStuff(enc.encode(""))), "\r\n.\r\n");
  assert.equal(dec.decode(dotStuff(enc.encode("x.\r\n.\r\n"))), "x.\r\n..\r\n.\r\n");
});
