import assert from "node:assert/strict";
import { HttpsPool } from "./https_client.ts";
import { AttemptBudget, type Deadlines } from "./deadlines.ts";
import { TransportError } from "./conn.ts";
import { postMxdeliv } from "./mxdeliv_client.ts";
import {
  drippingPeer,
  httpAnswer,
  httpsPeer,
  silentPeer,
  testCertificate,
} from "./testdata/fake_peers.ts";

const cert = await testCertificate();

async function waitFor(what: string, ok: () => boolean, ms = 5000) {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const FAST: Deadlines = { connectMs: 2000, tlsMs: 300, commandMs: 400, attemptMs: 5000 };
const SLOW: Deadlines = { connectMs: 30_000, tlsMs: 30_000, commandMs: 30_000, attemptMs: 60_000 };
const enc = new TextEncoder();

function target(port: number) {
  return { address: "127.0.0.1", port, host: "peer.test", insecure: false, ca: [cert.caPem!] };
}

Deno.test("HttpsPool keeps the connection alive and reuses it", async () => {
  const peer = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "250 OK") }) });
  const pool = new HttpsPool();
  try {
    for (let i = 0; i < 3; i++) {
      const r = await pool.post(
        target(peer.port),
        "/mxdeliv",
        [],
        enc.encode("x"),
        new AttemptBudget(FAST),
      );
      assert.deepEqual(r, { status: 200, text: "250 OK" });
    }
    assert.equal(peer.connections, 1);
    assert.equal(pool.opened, 1);
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool opens a new connection when the server closed its side", async () => {
  const peer = await httpsPeer({
    tls: cert,
    script: () => ({ raw: httpAnswer(200, "250 OK", ["connection: close"]), close: true }),
  });
  const pool = new HttpsPool();
  try {
    for (let i = 0; i < 2; i++) {
      await pool.post(target(peer.port), "/mxdeliv", [], enc.encode("x"), new AttemptBudget(FAST));
    }
    assert.equal(peer.connections, 2);
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool retries once on a fresh connection when a kept one was dropped unanswered", async () => {
  // The first connection answers once, then drops the second request without a byte: a
  // keep-alive connection the server closed. The request is repeated on a new connection.
  const peer = await httpsPeer({
    tls: cert,
    script: (_req, conn) =>
      conn.index === 0 && conn.requests === 2 ? "drop" : { raw: httpAnswer(200, "250 OK") },
  });
  const pool = new HttpsPool();
  try {
    for (let i = 0; i < 2; i++) {
      const r = await pool.post(
        target(peer.port),
        "/mxdeliv",
        [],
        enc.encode("x"),
        new AttemptBudget(FAST),
      );
      assert.equal(r.status, 200);
    }
    assert.equal(peer.connections, 2);
    assert.equal(peer.requests.length, 3);
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool reads chunked answers and skips 100 Continue", async () => {
  const peer = await httpsPeer({
    tls: cert,
    script: () => ({
      raw:
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n" +
        "4\r\n550 \r\n12;ext=1\r\n5.1.1 User unknown\r\n0\r\n\r\n",
    }),
  });
  const pool = new HttpsPool();
  try {
    const r = await pool.post(
      target(peer.port),
      "/mxdeliv",
      [],
      enc.encode("x"),
      new AttemptBudget(FAST),
    );
    assert.deepEqual(r, { status: 400, text: "550 5.1.1 User unknown" });
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool refuses an answer head over 64 KiB (fields or interim answers without end)", async () => {
  const field = (i: number) => `x-filler-${i}: ${"a".repeat(1000)}\r\n`;
  for (
    const raw of [
      "HTTP/1.1 200 OK\r\n" + Array.from({ length: 5000 }, (_, i) => field(i)).join("") +
      "content-length: 6\r\n\r\n250 OK",
      "HTTP/1.1 100 Continue\r\n\r\n".repeat(5000) + httpAnswer(200, "250 OK"),
    ]
  ) {
    const peer = await httpsPeer({ tls: cert, script: () => ({ raw }) });
    const pool = new HttpsPool();
    try {
      await assert.rejects(
        // Deadlines far beyond the 5 MB head's time to arrive on a loaded machine: the size
        // cap must be what ends it (with FAST, the 400 ms answer deadline sometimes came first).
        pool.post(target(peer.port), "/mxdeliv", [], enc.encode("x"), new AttemptBudget(SLOW)),
        (e) => e instanceof TransportError && /sent a head over 65536 bytes/.test(e.message),
      );
    } finally {
      pool.close();
      await peer.close();
    }
  }
});

Deno.test("HttpsPool gives up on a silent peer at the TLS deadline", async () => {
  const peer = await silentPeer();
  const pool = new HttpsPool();
  try {
    const t0 = performance.now();
    await assert.rejects(
      pool.post(target(peer.port), "/mxdeliv", [], enc.encode("x"), new AttemptBudget(FAST)),
      (e: TransportError) => e.kind === "timeout" && /TLS handshake .* timed out/.test(e.message),
    );
    // The deadline is the configured one, not twice it (node:https in Deno doubled it).
    assert.ok(performance.now() - t0 < 2 * FAST.tlsMs, `${performance.now() - t0} ms`);
    await waitFor("the connection to close", () => peer.open === 0);
  } finally {
    await peer.close();
  }
});

Deno.test("HttpsPool ends a dripping answer at the command deadline, not an idle timer", async () => {
  const peer = await httpsPeer({
    tls: cert,
    script: () => ({ raw: httpAnswer(200, "250 OK"), dripMs: 20 }),
  });
  const pool = new HttpsPool();
  try {
    await assert.rejects(
      pool.post(target(peer.port), "/mxdeliv", [], enc.encode("x"), new AttemptBudget(FAST)),
      (e: TransportError) => e.kind === "timeout" && /no HTTP response/.test(e.message),
    );
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool refuses a certificate it does not trust", async () => {
  const peer = await httpsPeer({ tls: cert, script: () => ({ raw: httpAnswer(200, "") }) });
  const pool = new HttpsPool();
  try {
    await assert.rejects(
      pool.post(
        { ...target(peer.port), ca: undefined },
        "/mxdeliv",
        [],
        enc.encode("x"),
        new AttemptBudget(FAST),
      ),
      (e: TransportError) => e.kind === "tls",
    );
    await assert.rejects(
      pool.post(
        { ...target(peer.port), host: "other.test" },
        "/mxdeliv",
        [],
        enc.encode("x"),
        new AttemptBudget(FAST),
      ),
      (e: TransportError) => e.kind === "tls",
    );
    assert.equal(peer.requests.length, 0);
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool stops at the attempt's budget even when each step would allow more", async () => {
  const peer = await drippingPeer("x", 50);
  const pool = new HttpsPool();
  try {
    const t0 = performance.now();
    await assert.rejects(
      pool.post(
        target(peer.port),
        "/mxdeliv",
        [],
        enc.encode("x"),
        new AttemptBudget({
          ...FAST,
          tlsMs: 5000,
          attemptMs: 200,
        }),
      ),
      TransportError,
    );
    assert.ok(performance.now() - t0 < 1000);
  } finally {
    await peer.close();
  }
});

Deno.test("postMxdeliv sends the envelope as headers and tells verdicts from missing endpoints", async () => {
  const answers = [
    httpAnswer(200, "250 OK"),
    httpAnswer(400, "550 5.1.1 <x@peer.test>: User unknown"),
    httpAnswer(413, "552 Message exceeds maximum size"),
    httpAnswer(404, "<html>Not Found</html>"),
  ];
  let n = 0;
  const peer = await httpsPeer({ tls: cert, script: () => ({ raw: answers[n++] }) });
  const pool = new HttpsPool();
  const attempt = {
    host: "peer.test",
    address: "127.0.0.1",
    port: peer.port,
    insecureTls: false,
    ca: [cert.caPem!],
    sender: "alice@a.test",
    recipients: ["bob@peer.test", "carol@peer.test"],
    data: enc.encode("Subject: x\r\n\r\nbody\r\n"),
  };
  try {
    const results = [];
    for (let i = 0; i < answers.length; i++) {
      results.push(await postMxdeliv(pool, attempt, new AttemptBudget(FAST)));
    }
    assert.deepEqual(results.map((r) => [r.kind, "code" in r ? r.code : r.status]), [
      ["accepted", 200],
      ["refused", 550],
      ["refused", 552],
      ["unsupported", 404],
    ]);
    const req = peer.requests[0];
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/mxdeliv");
    assert.deepEqual(req.headers.filter(([k]) => k.startsWith("x-mail")), [
      ["x-mail-from", "alice@a.test"],
      ["x-mail-to", "bob@peer.test"],
      ["x-mail-to", "carol@peer.test"],
    ]);
    assert.ok(req.headers.some(([k, v]) => k === "host" && v === `peer.test:${peer.port}`));
    assert.equal(req.body, "Subject: x\r\n\r\nbody\r\n");
    // A bounce has the null sender: no X-Mail-From at all.
    await postMxdeliv(pool, { ...attempt, sender: "" }, new AttemptBudget(FAST)).catch(() => {});
    assert.ok(!peer.requests[4].headers.some(([k]) => k === "x-mail-from"));
  } finally {
    pool.close();
    await peer.close();
  }
});

Deno.test("HttpsPool refuses header values that would start another header", async () => {
  const pool = new HttpsPool();
  await assert.rejects(
    pool.post(
      target(1),
      "/mxdeliv",
      [["X-Mail-To", "a@b\r\nX-Evil: 1"]],
      enc.encode(""),
      new AttemptBudget(FAST),
    ),
    (e: TransportError) => e.kind === "protocol",
  );
});
