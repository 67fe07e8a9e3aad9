import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { Hono } from "hono";
import { generateSelfSigned } from "../net/mod.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import { clientAddress } from "./client_address.ts";
import { createMetricsApp } from "./app.ts";
import { MAX_REQUESTS_IN_FLIGHT, startHttpServer } from "./server.ts";

function echoApp() {
  const app = new Hono();
  app.get("/who", (c) => c.text(clientAddress(c)));
  app.post("/echo", async (c) => c.text(`${(await c.req.arrayBuffer()).byteLength}`));
  app.post("/small", async (c) => {
    // Reads at most 1000 bytes, then answers without reading the rest (as /mxdeliv does).
    let size = 0;
    const reader = c.req.raw.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return c.text("ok");
      size += value.length;
      if (size > 1000) {
        await reader.cancel();
        return c.text("too large", 413);
      }
    }
  });
  app.get("/cookies", (c) => {
    c.header("set-cookie", "a=1", { append: true });
    c.header("set-cookie", "b=2", { append: true });
    return c.text("two cookies");
  });
  app.get("/url", (c) => c.text(c.req.url));
  return app;
}

/** Connects from `localAddress`; resolves with everything received once the server closes. */
function rawExchange(
  port: number,
  send: string,
  options: { localAddress?: string; endAfterMs?: number } = {},
): { socket: net.Socket; received: Promise<string> } {
  const socket = net.connect({
    host: "127.0.0.1",
    port,
    localAddress: options.localAddress ?? "127.0.0.1",
  });
  let buf = "";
  socket.on("data", (d: Uint8Array) => (buf += new TextDecoder().decode(d)));
  const received = new Promise<string>((resolve) => {
    socket.on("close", () => resolve(buf));
    socket.on("error", () => {});
  });
  if (send) socket.write(send);
  return { socket, received };
}

/** Resolves with `p`'s value, or rejects when it takes longer than `ms` (a hang, not a timing). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

Deno.test("startHttpServer() serves plain HTTP on a free port and passes the peer address", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  assert.ok(server.port > 0);
  const res = await fetch(`http://127.0.0.1:${server.port}/who`);
  assert.equal(await res.text(), "127.0.0.1");
});

Deno.test("startHttpServer() serves HTTPS and takes up a new certificate on reload()", async () => {
  const first = await generateSelfSigned(["localhost", "127.0.0.1"]);
  const second = await generateSelfSigned(["localhost", "127.0.0.1"]);
  let current = first;
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    tls: () => current,
  });
  {
    using client = Deno.createHttpClient({ caCerts: [first.caPem!] });
    const res = await fetch(`https://localhost:${server.port}/who`, { client });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "127.0.0.1");
  }
  current = second;
  await server.reload();
  {
    using client = Deno.createHttpClient({ caCerts: [second.caPem!] });
    const res = await fetch(`https://localhost:${server.port}/who`, { client });
    assert.equal(await res.text(), "127.0.0.1");
  }
  using stale = Deno.createHttpClient({ caCerts: [first.caPem!] });
  await assert.rejects(fetch(`https://localhost:${server.port}/who`, { client: stale }));
});

Deno.test("startHttpServer() reports a busy port", async () => {
  await using first = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  await assert.rejects(
    startHttpServer({ address: `127.0.0.1:${first.port}`, app: echoApp() }),
    /Cannot listen on 127\.0\.0\.1:\d+/,
  );
});

Deno.test("startHttpServer(): request bodies stream in; a refused body ends the connection", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  const big = new Uint8Array(3 * 1024 * 1024).fill(65);
  const res = await fetch(`http://127.0.0.1:${server.port}/echo`, { method: "POST", body: big });
  assert.equal(await res.text(), String(big.length));
  // The app stops reading after 1000 bytes: the client gets the answer, then the connection ends.
  const { received } = rawExchange(
    server.port,
    "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(5000),
  );
  const text = await within(10_000, "413 and close", received);
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /\r\nconnection: close\r\n/i);
});

Deno.test("startHttpServer(): several Set-Cookie fields, HEAD without a body, keep-alive", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  const res = await fetch(`http://127.0.0.1:${server.port}/cookies`);
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  await res.body?.cancel();
  const { socket, received } = rawExchange(
    server.port,
    "HEAD /who HTTP/1.1\r\nHost: x\r\n\r\nGET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const text = await within(10_000, "two answers", received);
  socket.destroy();
  const answers = text.split(/(?=HTTP\/1\.1 )/);
  assert.equal(answers.length, 2, text);
  assert.match(answers[0], /^HTTP\/1\.1 200 [^]*\r\n\r\n$/, "HEAD has no body");
  assert.match(answers[1], /\r\n\r\n(?:[0-9a-f]+\r\n)?127\.0\.0\.1/);
});

Deno.test("startHttpServer(): malformed requests get 400 or 431 and the connection ends", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  for (
    const [what, raw, status] of [
      ["absolute-form target", "GET http://evil.example/who HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      [
        "CL and TE",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" +
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
      ],
      [
        "two CL",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
      ],
      ["huge header", `GET /who HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(20_000)}\r\n\r\n`, 431],
      ["bad host", "GET /url HTTP/1.1\r\nHost: a b\r\n\r\n", 200],
    ] as const
  ) {
    const { socket, received } = rawExchange(server.port, raw);
    if (status === 200) setTimeout(() => socket.end(), 200);
    const text = await within(10_000, what, received);
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${what}: ${text.slice(0, 80)}`);
    if (what === "bad host") assert.match(text, /http:\/\/127\.0\.0\.1:\d+\/url/);
  }
});

Deno.test("startHttpServer(): TRACE, CONNECT, unknown methods and unusable requests are answered in JSON", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  for (
    const [raw, status] of [
      ["TRACE /who HTTP/1.1\r\nHost: x\r\n\r\n", 405],
      // Methods the parser does not know are refused by it: 400.
      ["TRACK /who HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n", 405],
      ["FOO /who HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["GET http://evil.example/who HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400],
      [`GET /who HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(20_000)}\r\n\r\n`, 431],
    ] as const
  ) {
    const what = raw.slice(0, raw.indexOf("\r"));
    const { received } = rawExchange(server.port, raw);
    const text = await within(10_000, what, received);
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${what}: ${text.slice(0, 80)}`);
    const [head, body] = [text.slice(0, text.indexOf("\r\n\r\n")), text.split("\r\n\r\n")[1]];
    assert.match(head, /\r\ncontent-type: application\/json/i, what);
    assert.match(head, /\r\nconnection: close/i, what);
    assert.equal(typeof JSON.parse(body).error, "string", what);
    if (status === 405) assert.match(head, /\r\nallow: GET, HEAD, POST, PUT, DELETE\r\n/i, what);
  }
});

Deno.test("startHttpServer(): a chunk line with megabytes of extensions is refused early, over HTTP and HTTPS", async () => {
  const cert = await generateSelfSigned(["localhost", "127.0.0.1"]);
  for (const secure of [false, true]) {
    await using server = await startHttpServer({
      address: "127.0.0.1:0",
      app: echoApp(),
      tls: secure ? cert : undefined,
    });
    const socket = secure
      ? tls.connect({ host: "127.0.0.1", port: server.port, rejectUnauthorized: false })
      : net.connect({ host: "127.0.0.1", port: server.port });
    let answer = "";
    let over = false;
    socket.on("data", (d: Uint8Array) => (answer += new TextDecoder().decode(d)));
    socket.on("error", () => {});
    // The server's answer ends with its end of the connection (or the connection just ends).
    const ended = new Promise<void>((r) => {
      socket.on("end", () => r(void (over = true)));
      socket.on("close", () => r(void (over = true)));
    });
    await new Promise((r) => socket.once(secure ? "secureConnect" : "connect", r));
    socket.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    // A 10 MB chunk extension, sent until the server has answered (a write the server does not
    // read on waits for ever: the answer ends the wait).
    const total = 10 * 1024 * 1024;
    const piece = "a".repeat(64 * 1024);
    let written = 0;
    while (written < total && !over) {
      await Promise.race([new Promise<void>((r) => socket.write(piece, () => r())), ended]);
      if (!over) written += piece.length;
    }
    const what = secure ? "HTTPS" : "HTTP";
    await within(30_000, `${what}: answer after the refusal`, ended);
    socket.destroy();
    assert.match(answer, /^HTTP\/1\.1 400 /, `${what}: ${answer.slice(0, 80)}`);
    assert.match(answer, /\r\nconnection: close\r\n/i, what);
    assert.match(answer, /"error":"request framing too large"/, what);
    // Refused while the extension was still coming: the client could not send all of it.
    assert.ok(written < total, `${what}: the server took all ${written} bytes before refusing`);
  }
});

Deno.test("startHttpServer(): chunked bodies in small chunks are not framing abuse", async () => {
  await using server = await startHttpServer({ address: "127.0.0.1:0", app: echoApp() });
  // 40 000 one-byte chunks: 200 000 bytes of framing for 40 000 of body.
  const body = "1\r\nx\r\n".repeat(40_000) + "0\r\n\r\n";
  const { received } = rawExchange(
    server.port,
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
      body,
  );
  const text = await within(30_000, "answer", received);
  assert.match(text, /^HTTP\/1\.1 200 /, text.slice(0, 80));
  assert.match(text, /\r\n\r\n40000$/);
});

Deno.test("startHttpServer(): a flood of pipelined requests closes the connection; a few are answered in order", async () => {
  const app = echoApp();
  let held = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  app.get("/hold", async (c) => {
    held++;
    await gate;
    return c.text("held");
  });
  await using server = await startHttpServer({ address: "127.0.0.1:0", app });
  // Thousands of requests in one write, none of the answers read.
  const flood = rawExchange(server.port, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5000));
  await within(10_000, "flooding connection closed", flood.received);
  assert.ok(held <= MAX_REQUESTS_IN_FLIGHT, `${held} requests handled at once`);
  const res = await fetch(`http://127.0.0.1:${server.port}/who`);
  assert.equal(await res.text(), "127.0.0.1", "other clients are served meanwhile");
  release();

  const few = rawExchange(
    server.port,
    "GET /who HTTP/1.1\r\nHost: x\r\n\r\n".repeat(MAX_REQUESTS_IN_FLIGHT - 1) +
      "GET /url HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const text = await within(10_000, "pipelined requests", few.received);
  assert.equal(text.match(/HTTP\/1\.1 200 /g)?.length, MAX_REQUESTS_IN_FLIGHT, text);
  assert.match(text, /127\.0\.0\.1HTTP[^]*http:\/\/x\/url$/, "in order");
});

Deno.test("startHttpServer(): HTTPS does not read a body ahead of the app (a waiting request holds its sender back)", async () => {
  const cert = await generateSelfSigned(["localhost", "127.0.0.1"]);
  // Alone, and behind a pipelined request whose answer ends while the body waits.
  for (const before of ["", "GET /who HTTP/1.1\r\nHost: x\r\n\r\n"]) {
    const app = echoApp();
    let entered!: () => void;
    const inApp = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    app.post("/wait", async (c) => {
      entered();
      await gate; // as the admin API waits out its login throttle before reading the body
      return c.text(`${(await c.req.arrayBuffer()).byteLength}`);
    });
    await using server = await startHttpServer({ address: "127.0.0.1:0", app, tls: cert });
    const total = 64 * 1024 * 1024;
    const socket = tls.connect({
      host: "127.0.0.1",
      port: server.port,
      rejectUnauthorized: false,
    });
    socket.on("error", () => {});
    let answer = "";
    let answered!: () => void;
    const first = new Promise<void>((r) => (answered = r));
    socket.on("data", (d: Uint8Array) => {
      answer += new TextDecoder().decode(d);
      if (answer.includes("127.0.0.1")) answered();
    });
    const closed = new Promise((r) => socket.on("close", r));
    await new Promise((r) => socket.once("secureConnect", r));
    socket.write(
      before +
        `POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`,
    );
    let flushed = 0;
    let reached!: () => void;
    const half = new Promise<void>((r) => (reached = r));
    const piece = new Uint8Array(1024 * 1024);
    const pump = () => {
      while (flushed < total) {
        flushed += piece.length;
        if (flushed >= total / 2) reached();
        if (!socket.write(piece)) return void socket.once("drain", pump);
      }
    };
    pump();
    await inApp;
    if (before) await within(10_000, "the pipelined answer", first);
    // Nothing reads the body now: the sender must stall after what the kernel and TLS buffer.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([half, new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
    assert.ok(flushed < total / 2, `${before ? "pipelined: " : ""}${flushed} bytes taken in`);
    release();
    await within(30_000, "the body after the app reads it", closed);
    assert.match(answer, new RegExp(`^HTTP/1\\.1 200 [^]*\r\n\r\n${total}$`));
  }
});

Deno.test("startHttpServer(): half-sent request heads and idle kept-alive connections are dropped", async () => {
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    headerTimeoutMs: 300,
  });
  const half = Array.from(
    { length: 20 },
    () => rawExchange(server.port, "GET /who HTTP/1.1\r\nHost: x\r\nX-Slow: "),
  );
  const silent = rawExchange(server.port, "");
  // A whole request is answered meanwhile.
  const res = await fetch(`http://127.0.0.1:${server.port}/who`);
  assert.equal(await res.text(), "127.0.0.1");
  for (const h of half) assert.equal(await within(10_000, "half-sent head", h.received), "");
  assert.equal(await within(10_000, "silent connection", silent.received), "");
  // After an answer the connection may wait for the next head only as long.
  const kept = rawExchange(server.port, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n");
  const text = await within(10_000, "kept-alive then dropped", kept.received);
  assert.match(text, /^HTTP\/1\.1 200 [^]*127\.0\.0\.1$/);
  assert.equal(server.connectionCount, 0);
});

Deno.test("startHttpServer(): connections per address are capped; other addresses are served", async () => {
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    maxConnectionsPerIp: 5,
  });
  const held = Array.from(
    { length: 5 },
    () =>
      rawExchange(server.port, "GET /who HTTP/1.1\r\nHost: x\r\n", { localAddress: "127.0.0.2" }),
  );
  // Let the server accept the five before the sixth.
  for (let i = 0; i < 200 && server.connectionCount < 5; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(server.connectionCount, 5);
  const over = rawExchange(server.port, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n", {
    localAddress: "127.0.0.2",
  });
  assert.match(await within(10_000, "over the cap", over.received), /^HTTP\/1\.1 503 /);
  const other = rawExchange(
    server.port,
    "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    { localAddress: "127.0.0.3" },
  );
  assert.match(await within(10_000, "another address", other.received), /127\.0\.0\.3$/);
  for (const h of held) h.socket.destroy();
  await Promise.all(held.map((h) => h.received));
});

Deno.test("startHttpServer(): the TLS handshake counts against the head deadline", async () => {
  const pems = await generateSelfSigned(["localhost"]);
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    tls: pems,
    headerTimeoutMs: 300,
  });
  // A TLS client that completes the handshake and then says nothing.
  const socket = tls.connect({
    host: "127.0.0.1",
    port: server.port,
    ca: pems.caPem!,
    servername: "localhost",
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((r) => socket.on("close", () => r()));
  await within(10_000, "dropped after the handshake", closed);
  // One that never starts the handshake.
  const raw = rawExchange(server.port, "");
  assert.equal(await within(10_000, "dropped before the handshake", raw.received), "");
});

Deno.test("startHttpServer(): close() lets a running request finish", async () => {
  let release!: () => void, entered!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const inside = new Promise<void>((r) => (entered = r));
  const app = new Hono();
  app.get("/slow", async (c) => {
    entered();
    await gate;
    return c.text("done");
  });
  const server = await startHttpServer({ address: "127.0.0.1:0", app });
  const { received } = rawExchange(server.port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  await within(10_000, "request running", inside);
  const closing = server.close();
  // Closed to new connections at once.
  const late = rawExchange(server.port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.doesNotMatch(await within(10_000, "late connection", late.received), /200/);
  release();
  await closing;
  assert.match(await received, /^HTTP\/1\.1 200 [^]*done/);
});

Deno.test("startHttpServer(): a takeover gets a connection by its first request head", async () => {
  await using server = await startHttpServer({
    address: "127.0.0.1:0",
    app: echoApp(),
    // As iroh's relay upgrade: an Upgrade field without Connection: Upgrade, data right behind.
    takeover(head, socket, rest) {
      if (head.path !== "/x" || head.headers.get("upgrade") !== "test-proto") return false;
      socket.end(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test-proto\r\n\r\n" +
          new TextDecoder().decode(rest),
      );
      return true;
    },
  });
  const ok = rawExchange(
    server.port,
    "GET /x?q=1 HTTP/1.1\r\nHost: x\r\nUpgrade: test-proto\r\n\r\nhello",
  );
  assert.match(await within(10_000, "takeover", ok.received), /^HTTP\/1\.1 101 [^]*hello$/);
  // Not claimed: the HTTP server answers, also a second request on the same connection.
  const plain = rawExchange(
    server.port,
    "GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: other\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  const answer = await within(10_000, "plain requests", plain.received);
  assert.equal(answer.match(/HTTP\/1\.1 \d{3} /g)?.length, 2, answer);
  // Lines ended by a bare LF: refused at once, as without a takeover (not held to the deadline).
  const bare = rawExchange(server.port, "GET /who HTTP/1.1\nHost: x\n\n");
  assert.match(await within(5_000, "bare LF head", bare.received), /^HTTP\/1\.1 400 /);
});

Deno.test("createMetricsApp() serves the registry as Prometheus text", async () => {
  const metrics = createRelayMetrics();
  metrics.pushSent.inc();
  const app = createMetricsApp({ metricsText: () => metrics.render() });
  await using server = await startHttpServer({ address: "127.0.0.1:0", app });
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.match(await res.text(), /^tern_push_sent_total 1$/m);
  const other = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.equal(other.status, 404);
  await other.body?.cancel();
});
