import assert from "node:assert/strict";
import { Transport } from "./transport.ts";
import { HttpsPool } from "./https_client.ts";
import { SmtpPool } from "./smtp_pool.ts";
import { bytesMessage } from "./outgoing_message.ts";
import type { Deadlines } from "./deadlines.ts";
import {
  httpAnswer,
  type HttpScript,
  httpsPeer,
  silentPeer,
  smtpPeer,
  testCertificate,
} from "./testdata/fake_peers.ts";

const cert = await testCertificate();
const FAST: Deadlines = { connectMs: 1000, tlsMs: 300, commandMs: 300, attemptMs: 3000 };
const data = bytesMessage(new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n"));
const host = [{ host: "peer.test", addresses: ["127.0.0.1"], insecureTls: false }];

async function withTransport(
  peers: { https: number; smtp: number },
  fn: (t: Transport, clock: { now: number }) => Promise<void>,
) {
  const https = new HttpsPool();
  const smtp = new SmtpPool({ idleMs: 50 });
  const clock = { now: 1_000_000 };
  const t = new Transport({
    heloName: "a.test",
    ports: () => peers,
    ca: () => [cert.caPem!],
    deadlines: FAST,
    https,
    smtp,
    now: () => clock.now,
  });
  try {
    await fn(t, clock);
  } finally {
    https.close();
    await smtp.close();
  }
}

/** /mxdeliv refusing nobody@ (whole request when it is among the recipients). */
const refusesNobody: HttpScript = (req) => {
  const to = req.headers.filter(([k]) => k === "x-mail-to").map(([, v]) => v);
  return {
    raw: to.some((a) => a.startsWith("nobody"))
      ? httpAnswer(400, "550 5.1.1 <nobody@peer.test>: User unknown")
      : httpAnswer(200, "250 OK"),
  };
};

Deno.test("Transport: /mxdeliv first; SMTP is never touched when it works", async () => {
  const web = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  const mail = await smtpPeer({ tls: cert });
  try {
    await withTransport({ https: web.port, smtp: mail.port }, async (t) => {
      const r = await t.deliver(host, "a@a.test", ["b@peer.test"], data);
      assert.equal(r.via, "https");
      assert.equal(r.answered, true);
      assert.deepEqual(r.outcomes.map((o) => o.kind), ["delivered"]);
      assert.equal(mail.sessions.length, 0);
    });
  } finally {
    await web.close();
    await mail.close();
  }
});

Deno.test("Transport: a 550 for one of two recipients over /mxdeliv stays that recipient's", async () => {
  const web = await httpsPeer({ tls: cert, script: refusesNobody });
  const mail = await smtpPeer({ tls: cert });
  try {
    await withTransport({ https: web.port, smtp: mail.port }, async (t) => {
      const r = await t.deliver(host, "a@a.test", ["bob@peer.test", "nobody@peer.test"], data);
      assert.equal(r.via, "https");
      assert.deepEqual(r.outcomes.map((o) => [o.recipient, o.kind, o.status]), [
        ["bob@peer.test", "delivered", undefined],
        ["nobody@peer.test", "failed", "5.1.1"],
      ]);
      // One request for both, then one per recipient.
      assert.equal(web.requests.length, 3);
      // The peer keeps /mxdeliv: the next message goes there again, not to SMTP.
      assert.equal(t.mxdelivSkipped("peer.test"), false);
      const again = await t.deliver(host, "a@a.test", ["carol@peer.test"], data);
      assert.equal(again.via, "https");
      assert.equal(mail.sessions.length, 0);
    });
  } finally {
    await web.close();
    await mail.close();
  }
});

Deno.test("Transport: a temporary refusal over /mxdeliv defers, and is an answer", async () => {
  const web = await httpsPeer({
    tls: cert,
    script: () => ({ raw: httpAnswer(400, "451 4.3.0 Try again later") }),
  });
  try {
    await withTransport({ https: web.port, smtp: 1 }, async (t) => {
      const r = await t.deliver(host, "a@a.test", ["b@peer.test", "c@peer.test"], data);
      assert.equal(r.answered, true);
      assert.deepEqual(r.outcomes.map((o) => o.kind), ["deferred", "deferred"]);
      assert.equal(web.requests.length, 1);
    });
  } finally {
    await web.close();
  }
});

Deno.test("Transport: without /mxdeliv the host gets SMTP, then SMTP only for a while", async () => {
  const web = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(404, "Not Found") }) });
  const mail = await smtpPeer({
    tls: cert,
    rcpt: (a) => a.startsWith("nobody") ? "550 5.1.1 User unknown" : "250 2.1.5 OK",
  });
  try {
    await withTransport({ https: web.port, smtp: mail.port }, async (t, clock) => {
      const r = await t.deliver(host, "a@a.test", ["bob@peer.test", "nobody@peer.test"], data);
      assert.equal(r.via, "smtp");
      assert.deepEqual(r.outcomes.map((o) => [o.kind, o.status]), [
        ["delivered", undefined],
        ["failed", "5.1.1"],
      ]);
      assert.match(r.outcomes[1].detail, /User unknown \(from peer\.test\)/);
      assert.equal(t.mxdelivSkipped("peer.test"), true);
      await t.deliver(host, "a@a.test", ["carol@peer.test"], data);
      assert.equal(web.requests.length, 1, "no second HTTPS request");
      assert.equal(mail.sessions.length, 1, "the SMTP session was reused");
      clock.now += 31 * 60_000;
      assert.equal(t.mxdelivSkipped("peer.test"), false);
    });
  } finally {
    await web.close();
    await mail.close();
  }
});

Deno.test("Transport: a silent peer is not an answer, and the attempt ends on time", async () => {
  const silent = await silentPeer();
  try {
    await withTransport({ https: silent.port, smtp: silent.port }, async (t) => {
      const t0 = performance.now();
      const r = await t.deliver(host, "a@a.test", ["b@peer.test"], data);
      assert.equal(r.answered, false);
      assert.equal(r.outcomes[0].kind, "deferred");
      assert.match(
        r.outcomes[0].detail,
        /^https:\/\/peer\.test:\d+\/mxdeliv: TLS handshake .* timed out .*; 127\.0\.0\.1:\d+: no reply to the greeting in time$/,
      );
      assert.ok(performance.now() - t0 < FAST.attemptMs);
      assert.equal(t.mxdelivSkipped("peer.test"), false, "a dead host keeps HTTPS first");
    });
  } finally {
    await silent.close();
  }
});

Deno.test("Transport: the next MX host is tried when the first does not answer", async () => {
  const web = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  try {
    await withTransport({ https: web.port, smtp: 1 }, async (t) => {
      const hosts = [
        { host: "peer.test", addresses: ["127.0.0.9"], insecureTls: false },
        ...host,
      ];
      // 127.0.0.9 refuses connections (nothing listens there on these ports).
      const r = await t.deliver(hosts, "a@a.test", ["b@peer.test"], data);
      assert.equal(r.via, "https");
      assert.equal(r.outcomes[0].kind, "delivered");
    });
  } finally {
    await web.close();
  }
});

Deno.test("Transport: /mxdeliv goes to the host's next address when one cannot be reached", async () => {
  const web = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  try {
    await withTransport({ https: web.port, smtp: 1 }, async (t) => {
      // An IPv6 address without a route, say: 127.0.0.9 refuses connections. The second works.
      const hosts = [{
        host: "peer.test",
        addresses: ["127.0.0.9", "127.0.0.1"],
        insecureTls: false,
      }];
      const r = await t.deliver(hosts, "a@a.test", ["b@peer.test"], data);
      assert.equal(r.via, "https", JSON.stringify(r));
      assert.equal(r.outcomes[0].kind, "delivered");
      assert.equal(web.requests.length, 1);
    });
  } finally {
    await web.close();
  }
});

Deno.test("Transport: a web server's own error page is no verdict on the mail: SMTP is tried", async () => {
  // Go's net/http answers "404 page not found", many servers "500 Internal Server Error" in
  // plain text: they look like SMTP replies, but a refusal comes as 400 or 413 (filtermail).
  for (const page of [[404, "404 page not found"], [500, "500 Internal Server Error"]] as const) {
    const web = await httpsPeer({
      tls: cert,
      script: () => ({ raw: httpAnswer(page[0], page[1]) }),
    });
    const mail = await smtpPeer({ tls: cert });
    try {
      await withTransport({ https: web.port, smtp: mail.port }, async (t) => {
        const r = await t.deliver(host, "a@a.test", ["b@peer.test"], data);
        assert.equal(r.via, "smtp", `${page[0]}: ${JSON.stringify(r)}`);
        assert.deepEqual(r.outcomes.map((o) => o.kind), ["delivered"]);
        assert.equal(mail.mails.length, 1);
      });
    } finally {
      await web.close();
      await mail.close();
    }
  }
});

Deno.test("Transport: a large message over a slow link gets the time its size needs, beyond the attempt's base budget", async () => {
  // 6 MB at 2.5 MB/s: over two seconds, though far faster than the 64 KB/s a transfer may take.
  const web = await httpsPeer({
    tls: cert,
    readRate: 500_000,
    script: () => ({ raw: httpAnswer(200, "250 OK") }),
  });
  const https = new HttpsPool();
  const smtp = new SmtpPool();
  const t = new Transport({
    heloName: "a.test",
    ports: () => ({ https: web.port, smtp: 1 }),
    ca: () => [cert.caPem!],
    deadlines: { connectMs: 1000, tlsMs: 1000, commandMs: 30_000, attemptMs: 1500 },
    https,
    smtp,
    now: () => 0,
  });
  try {
    const big = bytesMessage(new Uint8Array(6_000_000).fill(0x61));
    const t0 = performance.now();
    const r = await t.deliver(host, "a@a.test", ["b@peer.test"], big);
    const took = performance.now() - t0;
    assert.ok(
      took > 1500,
      `the transfer took ${took} ms: longer than the base budget ${JSON.stringify(r)}`,
    );
    assert.equal(r.via, "https", JSON.stringify(r));
    assert.equal(r.outcomes[0].kind, "delivered");
  } finally {
    https.close();
    await smtp.close();
    await web.close();
  }
});

Deno.test("Transport: the /mxdeliv body is the DATA as SMTP carries it (dot-stuffed, CRLF at the end), as the reference sends it", async () => {
  const web = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  const mail = await smtpPeer({ tls: cert });
  try {
    await withTransport({ https: web.port, smtp: mail.port }, async (t) => {
      const message =
        "Subject: x\r\n\r\n.leading dot\r\n.\r\n..two\r\nmid.dle\r\nno CRLF at the end";
      const stuffed =
        "Subject: x\r\n\r\n..leading dot\r\n..\r\n...two\r\nmid.dle\r\nno CRLF at the end\r\n";
      const r = await t.deliver(
        host,
        "a@a.test",
        ["b@peer.test"],
        bytesMessage(new TextEncoder().encode(message)),
      );
      assert.equal(r.via, "https");
      const [req] = web.requests;
      assert.equal(req.body, stuffed);
      const length = req.headers.find(([k]) => k === "content-length")?.[1];
      assert.equal(Number(length), stuffed.length);
    });
  } finally {
    await web.close();
    await mail.close();
  }
});
