// The relay over real sockets, behind the HTTP listener (startHttpServer with the relay as its
// takeover): forwarding by key in both upgrade forms, handshake checks, limits, keep-alive,
// PeerGone, Restarting, and the listener passing other HTTP traffic to the app.

import assert from "node:assert/strict";
import { Hono } from "hono";
import { startHttpServer } from "../http/server.ts";
import { relayUpgradeHook } from "./upgrade_hook.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import { IrohRelay } from "./iroh_relay.ts";
import type { IrohRelayOptions } from "./iroh_relay.ts";
import { maskedMessage, newKeys, RelayTestClient } from "./test_client.ts";
import { CloseCode, Opcode } from "./websocket.ts";
import type { TestClientOptions } from "./test_client.ts";
import { clientInfoFrame } from "./client_info.ts";
import { clientFrame, encodeRelayFrames, FrameType } from "./frames.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Harness {
  relay: IrohRelay;
  metrics: RelayMetrics;
  port: number;
  enabled: { value: boolean };
  connect(o?: Partial<TestClientOptions>): Promise<RelayTestClient>;
}

async function withIroh(
  options: Partial<IrohRelayOptions>,
  fn: (h: Harness) => Promise<void>,
  address = "127.0.0.1:0",
): Promise<void> {
  const metrics = createRelayMetrics();
  const enabled = { value: true };
  const relay = new IrohRelay({ enabled: () => enabled.value, metrics, ...options });
  const app = new Hono();
  app.get("/", (c) => c.text("hello"));
  app.get("/addr", (c) => c.json((c.env as { remoteAddr: Deno.NetAddr }).remoteAddr));
  app.post("/echo", async (c) => c.body(new Uint8Array(await c.req.arrayBuffer())));
  const stopping = new AbortController();
  const server = await startHttpServer({
    address,
    app: app,
    takeover: relayUpgradeHook(relay, { signal: stopping.signal }),
  });
  const clients: RelayTestClient[] = [];
  try {
    await fn({
      relay,
      metrics,
      port: server.port,
      enabled,
      async connect(o = {}) {
        const c = await RelayTestClient.connect({ hostname: "127.0.0.1", port: server.port, ...o });
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const c of clients) await c.close();
    stopping.abort();
    relay.close();
    await server.close();
  }
}

/** Waits until `check` holds, polling (the relay works asynchronously to the test client). */
async function until(check: () => boolean, what: string, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A connected client is registered once the relay has read its ClientInfo. */
async function registered(h: Harness, n: number) {
  await until(() => h.relay.clientCount === n, `${n} registered clients`);
}

function outcome(h: Harness, name: string): number {
  return h.metrics.irohSessions.values().find((v) => v.labels.outcome === name)?.value ?? 0;
}

async function exchange(a: RelayTestClient, b: RelayTestClient, text: string) {
  await b.ready(); // registered: the packet cannot miss it
  await a.send(b.publicKey, enc.encode(text));
  const got = await b.receive();
  assert.equal(dec.decode(got.packet), text);
  assert.deepEqual(got.src, a.publicKey);
}

Deno.test("IrohRelay forwards packets by key between both upgrade forms", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect();
    const b = await h.connect({ protocol: "websocket" });
    const c = await h.connect({ path: "/derp" });
    await registered(h, 3);
    assert.match(b.response, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
    await exchange(a, b, "a to b");
    await exchange(b, a, "b to a");
    await exchange(c, b, "legacy path to b");
    const big = new Uint8Array(64 * 1024).fill(9);
    await b.send(a.publicKey, big);
    assert.deepEqual((await a.receive()).packet, big);
    await a.send((await newKeys()).publicKey, enc.encode("nobody"));
    await until(() => h.metrics.irohDropped.get({ reason: "no_peer" }) === 1, "a no_peer drop");
    assert.equal(h.metrics.irohRelayedPackets.get(), 4);
    assert.equal(h.metrics.irohRelayedBytes.get(), 6 + 6 + 16 + big.length);
    assert.equal(h.metrics.irohClients.get({ protocol: "relay" }), 2);
    assert.equal(h.metrics.irohClients.get({ protocol: "websocket" }), 1);
  });
});

Deno.test("IrohRelay reads frames sent right behind the upgrade request", async () => {
  await withIroh({}, async (h) => {
    const b = await h.connect();
    await b.ready();
    const keys = await newKeys();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
    const head = enc.encode("GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: iroh derp http\r\n\r\n");
    const frames = encodeRelayFrames([
      await clientInfoFrame(keys),
      clientFrame(FrameType.SendPacket, b.publicKey, enc.encode("early")),
    ]);
    await conn.write(new Uint8Array([...head, ...frames]));
    const got = await b.receive();
    assert.equal(dec.decode(got.packet), "early");
    assert.deepEqual(got.src, keys.publicKey);
    conn.close();
  });
});

Deno.test("IrohRelay refuses bad handshakes and keeps serving the others", async () => {
  await withIroh({ handshakeTimeoutMs: 300 }, async (h) => {
    const a = await h.connect();
    const b = await h.connect({ protocol: "websocket" });
    await registered(h, 2);
    const keys = await newKeys();
    const other = await newKeys();
    const good = await clientInfoFrame(keys);
    const forged = { ...good, parts: [good.parts[0], other.publicKey, ...good.parts.slice(2)] };
    const weak = new Uint8Array(32);
    weak[0] = 1;
    const weakInfo = { ...good, parts: [good.parts[0], weak, ...good.parts.slice(2)] };
    const tooLong = clientFrame(FrameType.ClientInfo, new Uint8Array(70_000));
    const cases: [string, (c: RelayTestClient) => Promise<void>][] = [
      ["bad_signature", (c) => c.sendFrame(forged)],
      ["weak_key", (c) => c.sendFrame(weakInfo)],
      ["bad_version", async (c) => c.sendFrame(await clientInfoFrame(keys, 2))],
      ["bad_frame", (c) => c.sendFrame(clientFrame(FrameType.Ping, new Uint8Array(8)))],
      ["bad_frame", (c) => c.sendFrame(tooLong)],
      ["handshake_timeout", () => Promise.resolve()],
    ];
    for (const [reason, send] of cases) {
      for (const protocol of ["relay", "websocket"] as const) {
        const before = outcome(h, reason);
        const c = await h.connect({ protocol, skipHandshake: true });
        await send(c);
        const seen = await c.untilClosed();
        if (reason !== "bad_frame" && reason !== "handshake_timeout") {
          assert.equal(seen[0]?.type, FrameType.Health, `${reason}: Health before closing`);
        }
        await c.close();
        await until(() => outcome(h, reason) === before + 1, `${reason} counted`);
      }
    }
    assert.equal(h.relay.clientCount, 2);
    await exchange(a, b, "still here");
  });
});

Deno.test("IrohRelay closes only the connection that sends a bad frame", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect();
    const b = await h.connect({ protocol: "websocket" });
    const bad: [string, "relay" | "websocket", (c: RelayTestClient) => Promise<void>][] = [
      ["oversized", "relay", (c) => c.sendRaw(Uint8Array.of(4, 0, 0x10, 0, 0))],
      ["unknown type", "relay", (c) => c.sendFrame(clientFrame(99))],
      ["short ping", "relay", (c) => c.sendFrame(clientFrame(FrameType.Ping, Uint8Array.of(1)))],
      ["client health", "relay", (c) => c.sendFrame(clientFrame(FrameType.Health))],
      ["oversized", "websocket", (c) => c.sendFrame(clientFrame(4, new Uint8Array(70_000)))],
      ["text", "websocket", (c) => c.sendRaw(Uint8Array.of(0x81, 0x80, 0, 0, 0, 0))],
      ["empty", "websocket", (c) => c.sendRaw(Uint8Array.of(0x82, 0x80, 0, 0, 0, 0))],
    ];
    for (const [what, protocol, send] of bad) {
      const c = await h.connect({ protocol });
      await registered(h, 3);
      await send(c);
      await c.untilClosed();
      await c.close();
      await registered(h, 2);
      await exchange(a, b, `after ${what} over ${protocol}`);
    }
    // Frames a client has no business sending but that are well-formed are ignored.
    await a.sendFrame(clientFrame(FrameType.NotePreferred, Uint8Array.of(1)));
    await a.sendFrame(clientFrame(FrameType.KeepAlive));
    await a.sendFrame(clientFrame(FrameType.PeerGone, new Uint8Array(32)));
    await exchange(a, b, "after ignored frames");
  });
});

Deno.test("IrohRelay drops, and counts, packets for a receiver that does not read", async () => {
  await withIroh({
    queueLimits: {
      control: { frames: 8, bytes: 1024 },
      disco: { frames: 8, bytes: 64 * 1024 },
      data: { frames: 16, bytes: 256 * 1024 },
    },
    timings: { writeTimeoutMs: 500 },
    clientBytesPerSecond: 0,
  }, async (h) => {
    const sender = await h.connect();
    const sleeper = await h.connect({ answerPings: false });
    const watcher = await h.connect();
    await registered(h, 3);
    const packet = new Uint8Array(60 * 1024);
    // Until the kernel buffers towards the sleeper are full and the relay's writer stalls: it
    // then gives up on the sleeper. Meanwhile its queue overflows and drops are counted.
    const deadline = Date.now() + 20_000;
    while (outcome(h, "write_timeout") === 0) {
      assert.ok(Date.now() < deadline, "the sleeper's write timeout");
      for (let i = 0; i < 50; i++) await sender.send(sleeper.publicKey, packet);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(h.metrics.irohDropped.get({ reason: "queue_full" }) > 0, "queue_full drops");
    await exchange(sender, watcher, "unaffected");
  });
});

Deno.test("IrohRelay bounds what all slow receivers together hold in its queues", async () => {
  await withIroh({ maxQueuedBytes: 200_000, clientBytesPerSecond: 0 }, async (h) => {
    const sender = await h.connect();
    const sleepers = [await h.connect({ answerPings: false }), await h.connect()];
    await registered(h, 3);
    const packet = new Uint8Array(30_000);
    let peak = 0;
    // Until the kernel buffers towards both are full and packets queue up, then overflow.
    const deadline = Date.now() + 20_000;
    while (h.metrics.irohDropped.get({ reason: "queue_full" }) === 0) {
      assert.ok(Date.now() < deadline, "drops once the budget is spent");
      for (const s of sleepers) await sender.send(s.publicKey, packet);
      peak = Math.max(peak, h.relay.queuedBytes);
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.ok(peak <= 200_000, `peak ${peak}`);
    for (const s of sleepers) await s.close();
    await registered(h, 1);
    await until(() => h.relay.queuedBytes === 0, "the budget given back");
  });
});

Deno.test("IrohRelay slows a client down to its rate instead of dropping its packets", async () => {
  await withIroh({ clientBytesPerSecond: 200_000, clientBurstBytes: 70_000 }, async (h) => {
    const a = await h.connect();
    const b = await h.connect();
    await registered(h, 2);
    const n = 10;
    for (let i = 0; i < n; i++) await a.send(b.publicKey, new Uint8Array(40_000).fill(i));
    for (let i = 0; i < n; i++) assert.equal((await b.receive()).packet[0], i);
    assert.ok(h.metrics.irohRateLimited.get() > 0, "some frames waited for the rate limit");
    assert.equal(h.metrics.irohDropped.total(), 0);
  });
});

Deno.test("IrohRelay pings a quiet client and drops it when no pong comes", async () => {
  const timings = { pingIntervalMs: 100, pingJitterMs: 0, pongTimeoutMs: 200 };
  await withIroh({ timings }, async (h) => {
    const mute = await h.connect({ answerPings: false });
    const chatty = await h.connect();
    await registered(h, 2);
    // The answering client reads (and answers pings) meanwhile: it outlives many ping rounds.
    const quiet = chatty.next(1500).catch(() => "quiet");
    const ping = await mute.next();
    assert.equal(ping?.type, FrameType.Ping);
    assert.deepEqual(await mute.untilClosed(), []);
    await mute.close();
    await until(() => outcome(h, "pong_timeout") === 1, "pong_timeout");
    assert.equal(await quiet, "quiet");
    assert.equal(h.relay.clientCount, 1);
    await chatty.sendFrame(clientFrame(FrameType.Ping, new Uint8Array(8).fill(3)));
    const pong = await chatty.next();
    assert.deepEqual(pong, { type: FrameType.Pong, body: new Uint8Array(8).fill(3) });
  });
});

Deno.test("IrohRelay tells a receiver when a client that sent to it leaves", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect();
    const b = await h.connect();
    await registered(h, 2);
    await exchange(a, b, "hi");
    await a.close();
    const gone = await b.next();
    assert.deepEqual(gone, { type: FrameType.PeerGone, body: a.publicKey });
  });
});

Deno.test("IrohRelay: a second connection with the same key replaces the first", async () => {
  await withIroh({}, async (h) => {
    const keys = await newKeys();
    const first = await h.connect({ keys });
    const b = await h.connect();
    await registered(h, 2);
    const second = await h.connect({ keys });
    assert.deepEqual(await first.untilClosed(), []);
    await until(() => outcome(h, "replaced") === 1, "replaced");
    await exchange(b, second, "to the new one");
  });
});

Deno.test("IrohRelay caps its clients: the next upgrade gets 503", async () => {
  await withIroh({ maxClients: 2 }, async (h) => {
    const a = await h.connect();
    const b = await h.connect();
    await registered(h, 2);
    await assert.rejects(h.connect(), /503 Service Unavailable/);
    await a.close();
    await registered(h, 1);
    const c = await h.connect();
    await exchange(b, c, "room again");
  });
});

Deno.test("IrohRelay switched off: upgrades reach HTTP, clients are told and closed", async () => {
  const timings = { pingIntervalMs: 50, pingJitterMs: 0 };
  await withIroh({ timings }, async (h) => {
    const a = await h.connect();
    await registered(h, 1);
    h.enabled.value = false;
    const frames = await a.untilClosed();
    assert.equal(frames.at(-1)?.type, FrameType.Health);
    assert.equal(dec.decode(frames.at(-1)!.body), "relay disabled");
    await assert.rejects(h.connect(), /404 Not Found/);
    h.enabled.value = true;
    await h.connect();
  });
});

Deno.test("IrohRelay.close() sends Restarting before closing its clients", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect({ protocol: "websocket" });
    await registered(h, 1);
    h.relay.close();
    const frames = await a.untilClosed();
    assert.equal(frames[0]?.type, FrameType.Restarting);
    await assert.rejects(h.connect(), /404 Not Found/);
  });
});

Deno.test("IrohRelay answers malformed upgrades with 400", async () => {
  await withIroh({}, async (h) => {
    for (
      const head of [
        "GET /relay HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET /relay HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ]
    ) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
      await conn.write(enc.encode(head));
      const buf = new Uint8Array(1024);
      const n = await conn.read(buf);
      assert.match(
        dec.decode(buf.subarray(0, n ?? 0)),
        /^HTTP\/1\.1 400 .*Sec-WebSocket-Version: 13/s,
      );
      conn.close();
    }
  });
});

Deno.test("the HTTP listener passes other traffic on to the app", async () => {
  await withIroh({}, async (h) => {
    const base = `http://127.0.0.1:${h.port}`;
    assert.equal(await (await fetch(`${base}/`)).text(), "hello");
    const addr = await (await fetch(`${base}/addr`)).json();
    assert.equal(addr.hostname, "127.0.0.1");
    const body = crypto.getRandomValues(new Uint8Array(65536));
    const big = new Uint8Array(5 * 1024 * 1024);
    for (let off = 0; off < big.length; off += body.length) big.set(body, off);
    const echoed = new Uint8Array(
      await (await fetch(`${base}/echo`, { method: "POST", body: big })).arrayBuffer(),
    );
    assert.deepEqual(echoed, big);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => fetch(`${base}/`).then((r) => r.text())),
    );
    assert.deepEqual(new Set(results), new Set(["hello"]));
    // A relay path without an upgrade is an ordinary request (here: not found).
    const plain = await fetch(`${base}/relay`);
    assert.equal(plain.status, 404);
    await plain.body?.cancel();
  });
});

/** Sends an upgrade request on a raw connection; the whole answer, read until the relay closes. */
async function rawUpgrade(hostname: string, port: number): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await conn.write(
      enc.encode("GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: iroh derp http\r\n\r\n"),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return text;
      text += dec.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

Deno.test("IrohRelay caps connections per client address: 429 in JSON, other addresses served", async () => {
  // Listening on both families: 127.0.0.1 and ::1 are two client addresses.
  await withIroh({ maxClientsPerIp: 2 }, async (h) => {
    const a = await h.connect();
    const b = await h.connect({ protocol: "websocket" });
    await registered(h, 2);
    const refused = await rawUpgrade("127.0.0.1", h.port);
    assert.match(refused, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    assert.match(refused, /\r\ncontent-type: application\/json\r\n/i);
    assert.deepEqual(JSON.parse(refused.slice(refused.indexOf("\r\n\r\n") + 4)), {
      error: "too many relay connections from your address",
    });
    await assert.rejects(h.connect({ protocol: "websocket" }), /429 Too Many Requests/);
    assert.equal(outcome(h, "ip_limit"), 2);
    // Refused connections hold nothing: still two clients, and another address gets in.
    assert.equal(h.relay.clientCount, 2);
    const c = await h.connect({ hostname: "::1" });
    await exchange(a, c, "from another address");
    // A slot of the first address freed is taken again.
    await b.close();
    await registered(h, 2);
    const d = await h.connect();
    await exchange(d, a, "room again");
  }, "[::]:0");
});

Deno.test("IrohRelay caps upgraded connections still without ClientInfo per client address", async () => {
  await withIroh({ maxHandshakesPerIp: 2 }, async (h) => {
    const keys = await newKeys();
    const slow = await h.connect({ keys, skipHandshake: true });
    await h.connect({ protocol: "websocket", skipHandshake: true });
    await assert.rejects(h.connect(), /429 Too Many Requests/);
    assert.equal(h.relay.clientCount, 0);
    // One of them finishes its handshake: room for one more.
    await slow.sendFrame(await clientInfoFrame(keys));
    await registered(h, 1);
    const b = await h.connect();
    await exchange(b, slow, "handshake done");
  });
});

Deno.test("IrohRelay closes a WebSocket client that floods pings with 1008", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect({ protocol: "websocket" });
    const b = await h.connect({ protocol: "websocket" });
    await a.ready();
    // Each ping would be answered with a pong: no more than a few per second are.
    const ping = maskedMessage(Opcode.Ping, new Uint8Array(0));
    const flood = new Uint8Array(ping.length * 200);
    for (let i = 0; i < 200; i++) flood.set(ping, i * ping.length);
    await a.sendRaw(flood);
    await a.untilClosed();
    assert.equal(a.closeCode, CloseCode.PolicyViolation);
    // Before the handshake too.
    const early = await h.connect({ protocol: "websocket", skipHandshake: true });
    await early.sendRaw(flood);
    await early.untilClosed();
    assert.equal(early.closeCode, CloseCode.PolicyViolation);
    // The others are served on.
    const c = await h.connect({ protocol: "websocket" });
    await exchange(c, b, "still here");
  });
});

Deno.test("IrohRelay closes a client that floods relay Ping frames, in both upgrade forms", async () => {
  await withIroh({}, async (h) => {
    const a = await h.connect({ protocol: "websocket" });
    const b = await h.connect();
    await registered(h, 2);
    // 200 Pings in one write: each would be answered with a Pong; no more than the burst is.
    const ping = clientFrame(FrameType.Ping, new Uint8Array(8));
    for (const protocol of ["relay", "websocket"] as const) {
      const c = await h.connect({ protocol });
      await registered(h, 3);
      const before = outcome(h, "bad_frame");
      const one = c.encode(ping);
      const flood = new Uint8Array(one.length * 200);
      for (let i = 0; i < 200; i++) flood.set(one, i * one.length);
      await c.sendRaw(flood);
      const seen = await c.untilClosed();
      const pongs = seen.filter((f) => f.type === FrameType.Pong).length;
      assert.ok(pongs <= 20, `${protocol}: ${pongs} pongs`);
      if (protocol === "websocket") assert.equal(c.closeCode, CloseCode.PolicyViolation);
      await c.close();
      await registered(h, 2);
      assert.equal(outcome(h, "bad_frame"), before + 1);
      await exchange(a, b, `after a Ping flood over ${protocol}`);
    }
    // A client pinging within the cap is answered every time.
    for (let i = 0; i < 5; i++) await a.sendFrame(ping);
    for (let i = 0; i < 5; i++) assert.equal((await a.next())?.type, FrameType.Pong);
  });
});

Deno.test("IrohRelay counts WebSocket pings and their pongs against the client's read rate", async () => {
  // A stopped clock: the 3000-byte burst is all the client gets. 15 pings of 125 bytes and their
  // pongs take 3870 bytes; the frame after them is charged with them and waits.
  const options = { clientBytesPerSecond: 1, clientBurstBytes: 3000, now: () => 0 };
  await withIroh(options, async (h) => {
    const a = await h.connect({ protocol: "websocket" });
    const ping = maskedMessage(Opcode.Ping, new Uint8Array(125));
    const pings = new Uint8Array(ping.length * 15);
    for (let i = 0; i < 15; i++) pings.set(ping, i * ping.length);
    await a.sendRaw(pings);
    await a.ready();
    assert.equal(h.metrics.irohRateLimited.get(), 1);
  });
});
