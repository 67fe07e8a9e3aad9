import assert from "node:assert/strict";
import net from "node:net";
import zlib from "node:zlib";
import { randomBytes } from "node:crypto";
import {
  ConnectionClosedError,
  DeadlineError,
  IdleTimeoutError,
  LineTooLongError,
  movedDeadline,
  SocketConnection,
} from "./connection.ts";
import { DeflateWriter } from "./compression.ts";
import { activityCount } from "./activity.ts";
import { socketPair } from "../../tests/support/loopback_session.ts";

/** A SocketConnection on the server side of a loopback pair, and the client socket. */
async function pair(): Promise<
  { conn: SocketConnection; client: net.Socket; done(): Promise<void> }
> {
  const { accepted, client, server } = await socketPair();
  const conn = new SocketConnection(accepted);
  return {
    conn,
    client,
    async done() {
      conn.destroy();
      client.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) % 251;
  return out;
}

Deno.test("a connection keeps its addresses, not node:net's cached copies of them", async () => {
  const { accepted: socket, client, server } = await socketPair();
  const conn = new SocketConnection(socket);
  try {
    assert.equal(conn.remoteAddress, "127.0.0.1");
    assert.equal(conn.localPort, (server.address() as net.AddressInfo).port);
    // Two objects and their strings that would stay for the connection's life.
    const cached = socket as unknown as { _peername?: unknown; _sockname?: unknown };
    assert.equal(cached._peername, undefined);
    assert.equal(cached._sockname, undefined);
    // Asked again, node:net still answers.
    assert.equal(socket.remoteAddress, "127.0.0.1");
  } finally {
    conn.destroy();
    client.destroy();
    await new Promise((r) => server.close(r));
  }
});

Deno.test("connections share their sockets' listeners: no closures of their own", async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const sockets: net.Socket[] = [], clients: net.Socket[] = [], conns: SocketConnection[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
      const client = net.connect(port, "127.0.0.1");
      client.on("error", () => {});
      clients.push(client);
      const socket = await accepted;
      sockets.push(socket);
      conns.push(new SocketConnection(socket));
    }
    for (const event of ["data", "end", "error", "close"]) {
      const [a, b] = sockets.map((s) => s.listeners(event));
      assert.ok(a.length > 0, event);
      assert.ok(a.every((f, i) => f === b[i]), `the same ${event} listeners on both sockets`);
    }
    // And each still reads its own socket's bytes.
    clients[1].write("second\r\n");
    clients[0].write("first\r\n");
    assert.equal(new TextDecoder().decode((await conns[0].readLine(100))!), "first");
    assert.equal(new TextDecoder().decode((await conns[1].readLine(100))!), "second");
  } finally {
    for (const c of conns) c.destroy();
    for (const c of clients) c.destroy();
    await new Promise((r) => server.close(r));
  }
});

Deno.test("a write to a connection the peer reset rejects with ConnectionClosedError", async () => {
  const { conn, client, done } = await pair();
  try {
    const gone = new Promise((r) => client.once("close", r));
    client.resetAndDestroy();
    await gone;
    const chunk = new Uint8Array(64 * 1024);
    let error: unknown = null;
    for (let i = 0; i < 1000 && !error; i++) {
      await conn.write(chunk).catch((e) => (error = e));
    }
    assert.ok(error instanceof ConnectionClosedError, String(error));
    // And every later write, at once.
    await assert.rejects(conn.write("x"), ConnectionClosedError);
  } finally {
    await done();
  }
});

Deno.test("readExact takes more than the read-ahead (an APPEND literal over 1 MiB)", async () => {
  const { conn, client, done } = await pair();
  try {
    const data = pattern(3 << 20);
    client.write(data);
    const got = await conn.readExact(data.length);
    assert.ok(got && got.length === data.length && got.every((b, i) => b === data[i]));
  } finally {
    await done();
  }
});

Deno.test("readExact(0) with nothing buffered gives an empty piece (an empty literal, {0})", async () => {
  const { conn, client, done } = await pair();
  try {
    client.write("a SELECT {0}\r\n");
    const line = new TextDecoder().decode((await conn.readLine(1000))!);
    assert.equal(line.trimEnd(), "a SELECT {0}");
    const got = await conn.readExact(0);
    assert.ok(got && got.length === 0);
    client.write("\r\n");
    assert.equal(new TextDecoder().decode((await conn.readLine(1000))!).trimEnd(), "");
  } finally {
    await done();
  }
});

Deno.test("readExactChunks hands a large literal out in order without holding it whole", async () => {
  const { conn, client, done } = await pair();
  try {
    const data = pattern(6 << 20, 3);
    client.write(data);
    let at = 0;
    let largestBuffer = 0;
    const whole = await conn.readExactChunks(data.length, async (c) => {
      for (let i = 0; i < c.length; i++) assert.equal(c[i], data[at + i]);
      at += c.length;
      largestBuffer = Math.max(largestBuffer, conn.bufferedBytes());
      // A slow consumer (a disk): the socket is paused rather than buffered without end.
      await new Promise((r) => setTimeout(r, 0));
    });
    assert.equal(whole, true);
    assert.equal(at, data.length);
    assert.ok(largestBuffer <= (1 << 20) + 256 * 1024, `buffered at most ${largestBuffer}`);
    // The stream ends before the count: false.
    client.end(new Uint8Array(10));
    assert.equal(await conn.readExactChunks(11, () => {}), false);
  } finally {
    await done();
  }
});

Deno.test("an overlong line is dropped to its line feed, and one that never ends is fatal", async () => {
  const { conn, client, done } = await pair();
  try {
    client.write("x".repeat(200_000) + "\r\nnext\r\n");
    await assert.rejects(conn.readLine(1000), (e) => e instanceof LineTooLongError && !e.fatal);
    assert.equal(new TextDecoder().decode((await conn.readLine(1000))!), "next");
    client.write(new Uint8Array(3 << 20).fill(120));
    await assert.rejects(conn.readLine(1000), (e) => e instanceof LineTooLongError && e.fatal);
  } finally {
    await done();
  }
});

Deno.test("a line the stream ends in the middle of is no line: the read fails as a lost connection", async () => {
  const { conn, client, done } = await pair();
  try {
    // A phone's network goes away inside "L LOGIN user password": what did arrive must not be
    // taken for the whole command (a JIT login would create the account with half a password).
    client.write("a NOOP\r\nL LOGIN someone longpass");
    client.end();
    assert.equal(new TextDecoder().decode((await conn.readLine(1000))!), "a NOOP");
    await assert.rejects(conn.readLine(1000), ConnectionClosedError);
  } finally {
    await done();
  }
});

Deno.test("COMPRESS output waits for the socket: one piece in flight, in order, inflatable", async () => {
  const sent: Uint8Array[] = [];
  const waiting: (() => void)[] = [];
  const writer = new DeflateWriter((bytes) => {
    sent.push(bytes);
    return new Promise((r) => waiting.push(r));
  });
  // 1 MiB of random bytes deflates in four 256 KiB pieces; then a short line.
  const data = new Uint8Array(randomBytes(1 << 20));
  let finished = 0;
  const writes = [
    writer.write(data).then(() => finished++),
    writer.write(new TextEncoder().encode("tail\r\n")).then(() => finished++),
  ];
  for (let piece = 0; piece < 5; piece++) {
    while (waiting.length === 0) await new Promise((r) => setTimeout(r, 0));
    // However much is queued, the next piece is made only when the sink took the last one.
    assert.equal(waiting.length, 1, `piece ${piece}`);
    assert.equal(finished, piece < 4 ? 0 : 1, `piece ${piece}`);
    waiting.shift()!();
  }
  await Promise.all(writes);
  const total = new Uint8Array(sent.reduce((n, s) => n + s.length, 0));
  let off = 0;
  for (const s of sent) {
    total.set(s, off);
    off += s.length;
  }
  const plain = zlib.inflateRawSync(total, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.equal(plain.length, data.length + 6);
  assert.ok(plain.subarray(0, data.length).every((b: number, i: number) => b === data[i]));
  writer.destroy();
});

Deno.test("input keeps a connection alive past its idle limit; silence ends it with IdleTimeoutError", async () => {
  const { conn, client, done } = await pair();
  try {
    conn.setIdleTimeout(1000);
    // Input for three times the limit, a piece each 100 ms: every piece starts the clock again.
    const t0 = performance.now();
    for (let i = 0; i < 24; i++) {
      client.write("x");
      const got = await conn.readChunk();
      assert.equal(got?.length, 1);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(performance.now() - t0 > 2400);
    // Then nothing: the read ends with the idle error.
    await assert.rejects(conn.readChunk(), IdleTimeoutError);
  } finally {
    await done();
  }
});

Deno.test("a deadline is not restarted by input: a client trickling a line ends at it; a cleared one never fires", async () => {
  const { conn, client, done } = await pair();
  const timer = setInterval(() => client.write("x"), 50);
  try {
    // The idle clock restarts at every byte (well inside its limit); the deadline does not.
    conn.setIdleTimeout(30_000);
    conn.setDeadline(300);
    await assert.rejects(conn.readLine(1024), IdleTimeoutError);
  } finally {
    clearInterval(timer);
    await done();
  }
  const second = await pair();
  try {
    second.conn.setIdleTimeout(30_000);
    second.conn.setDeadline(200);
    second.conn.setDeadline(0);
    // Past where the cleared deadline would have been.
    await new Promise((r) => setTimeout(r, 400));
    second.client.write("a line\r\n");
    assert.equal(new TextDecoder().decode((await second.conn.readLine(1024))!), "a line");
  } finally {
    await second.done();
  }
});

Deno.test("movedDeadline: input at the minimum rate or above keeps moving it; a trickle, or a trickle after a burst, lets it pass within twice the grace", () => {
  const ms = 10_000;
  const rate = 500;
  /**
   * A deadline looked at whenever it falls, with input at `bytesPerSecond(t)`: when it passed
   * (null: still running at `until`).
   */
  const run = (bytesPerSecond: (t: number) => number, until: number): number | null => {
    let at = ms;
    let bytes = 0;
    let t = 0;
    while (t < until) {
      // One step of 100 ms: the input of the step, then the deadline when it is due.
      bytes += bytesPerSecond(t) / 10;
      t += 100;
      if (t < at) continue;
      at = movedDeadline(at, bytes, rate, ms, t);
      bytes = 0;
      if (at <= t) return t;
    }
    return null;
  };
  // A steady sender at the rate, or at ten times it: never passes (an hour of it).
  assert.equal(run(() => rate, 3_600_000), null);
  assert.equal(run(() => 10 * rate, 3_600_000), null);
  // A byte every 10 s: passes at the grace, give or take a step.
  const trickle = run((t) => (t % 10_000 === 0 ? 10 : 0), 3_600_000);
  assert.ok(trickle !== null && trickle <= ms + 200, String(trickle));
  // Half the rate: more than the grace, bounded (ms / (1 - 1/2) at most).
  const half = run(() => rate / 2, 3_600_000);
  assert.ok(half !== null && half > ms && half <= 2 * ms + 200, String(half));
  // 10 MB in the first second, then a trickle: the burst's credit is not banked.
  const burst = run((t) => (t < 1000 ? 10_000_000 : t % 10_000 === 0 ? 10 : 0), 3_600_000);
  assert.ok(burst !== null && burst <= 2 * ms + 200, String(burst));
});

Deno.test("a deadline with a minimum rate: a trickle slower than it ends at the deadline, though each byte restarts the idle clock", async () => {
  const { conn, client, done } = await pair();
  const timer = setInterval(() => client.write("x"), 20);
  try {
    conn.setIdleTimeout(30_000);
    // 1 byte per 20 ms is 50 B/s, far under 10 kB/s: each byte moves the deadline 0.1 ms on.
    conn.setDeadline(300, { minBytesPerSecond: 10_000 });
    await assert.rejects(conn.readExactChunks(1_000_000, () => {}), DeadlineError);
  } finally {
    clearInterval(timer);
    await done();
  }
});

Deno.test("a deadline with a minimum rate: input above the rate goes on well past the grace", async () => {
  const { conn, client, done } = await pair();
  // 2 KB each 50 ms (40 kB/s) for 4 s, twice the grace, against a minimum of 1 kB/s: each
  // piece moves the deadline 2 s on, so only a stall of the test's process of about 2 s
  // (the grace) could end it.
  const piece = new Uint8Array(2048).fill(120);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < 80) client.write(piece);
    sent++;
  }, 50);
  try {
    conn.setIdleTimeout(30_000);
    conn.setDeadline(2000, { minBytesPerSecond: 1000 });
    let got = 0;
    assert.equal(await conn.readExactChunks(80 * 2048, (c) => void (got += c.length)), true);
    assert.equal(got, 80 * 2048);
    conn.setDeadline(0);
  } finally {
    clearInterval(timer);
    await done();
  }
});

Deno.test("a deadline from input: no clock while nothing comes; it starts with the first byte", async () => {
  const { conn, client, done } = await pair();
  const dec = new TextDecoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    conn.setIdleTimeout(30_000);
    conn.setDeadline(200, { fromInput: true });
    // Twice the deadline with nothing sent (IDLE, or a client thinking): still reading.
    const read = conn.readLine(1024);
    await new Promise((r) => setTimeout(r, 400));
    client.write("a1 NOOP\r\n");
    assert.equal(dec.decode((await read)!), "a1 NOOP");
    // The next command, trickled: its first byte starts the clock.
    conn.setDeadline(200, { fromInput: true });
    timer = setInterval(() => client.write("x"), 20);
    await assert.rejects(conn.readLine(1024), DeadlineError);
  } finally {
    clearInterval(timer);
    await done();
  }
});

Deno.test("a deadline that passes while no read waits fails the next read, unless it is cleared first", async () => {
  const dec = new TextDecoder();
  const first = await pair();
  try {
    first.conn.setIdleTimeout(30_000);
    first.conn.setDeadline(100);
    // The session is at work (a password being verified) past the deadline, then moves on:
    // the next read waits for input as usual.
    await new Promise((r) => setTimeout(r, 300));
    first.conn.setDeadline(0);
    const read = first.conn.readLine(1024);
    await new Promise((r) => setTimeout(r, 50));
    first.client.write("a2 NOOP\r\n");
    assert.equal(dec.decode((await read)!), "a2 NOOP");
  } finally {
    await first.done();
  }
  const second = await pair();
  try {
    second.conn.setIdleTimeout(30_000);
    second.conn.setDeadline(100);
    await new Promise((r) => setTimeout(r, 300));
    // Not cleared: the next read fails, even with a whole line waiting.
    second.client.write("a2 NOOP\r\n");
    while (second.conn.bufferedBytes() === 0) await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(second.conn.readLine(1024), DeadlineError);
  } finally {
    await second.done();
  }
});

Deno.test("a peer that stops reading (no FIN, no RST) fails the blocked write at the idle limit", async () => {
  const { conn, client, done } = await pair();
  /** `p`'s outcome, or `fallback` after `ms` (the timer cleared either way). */
  const within = async <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    conn.setIdleTimeout(500);
    // The peer's application reads nothing more: both socket buffers fill, the write waits.
    client.pause();
    const chunk = new Uint8Array(64 * 1024);
    let blocked: Promise<void> | null = null;
    for (let i = 0; i < 2000 && !blocked; i++) {
      const w = conn.write(chunk);
      if (!(await within(w.then(() => true), 50, false))) blocked = w;
    }
    assert.ok(blocked, "a write waits for the socket to drain");
    const t0 = performance.now();
    const error = await within(blocked.then(() => "drained", (e) => e), 5000, "still waiting");
    assert.ok(error instanceof IdleTimeoutError, String(error));
    assert.ok(performance.now() - t0 < 3000);
    assert.ok(conn.closed, "the connection is dropped");
  } finally {
    await done();
  }
});

Deno.test("whenLine calls back once a whole line is buffered, not for a part of one, and readLine then takes it at once", async () => {
  const { conn, client, done } = await pair();
  try {
    let calls = 0;
    let ready!: () => void;
    const called = new Promise<void>((r) => (ready = r));
    conn.whenLine(1024, () => {
      calls++;
      ready();
    });
    client.write("DO");
    // The part is buffered (each chunk read looks at the callback): still no call.
    while (conn.bufferedBytes() < 2) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(calls, 0);
    client.write("NE\r\nNOOP\r\n");
    await called;
    assert.equal(calls, 1);
    assert.equal(new TextDecoder().decode((await conn.readLine(1024))!), "DONE");
    assert.equal(new TextDecoder().decode((await conn.readLine(1024))!), "NOOP");
    // Forgotten: no call when it is cleared before input comes.
    conn.whenLine(1024, () => calls++);
    conn.whenLine(1024, null);
    client.write("X\r\n");
    assert.equal(new TextDecoder().decode((await conn.readLine(1024))!), "X");
    assert.equal(calls, 1);
  } finally {
    await done();
  }
});

Deno.test("whenLine calls back at the idle limit, and readLine then fails with IdleTimeoutError, not as a closed connection", async () => {
  const { conn, done } = await pair();
  try {
    conn.setIdleTimeout(300);
    await new Promise<void>((r) => conn.whenLine(1024, r));
    await assert.rejects(conn.readLine(1024), IdleTimeoutError);
  } finally {
    await done();
  }
});

Deno.test("whenLine at the idle limit with part of a line buffered (a trickled DONE): readLine fails with IdleTimeoutError, not as a lost connection", async () => {
  const { conn, client, done } = await pair();
  try {
    conn.setIdleTimeout(300);
    client.write("DO");
    while (conn.bufferedBytes() < 2) await new Promise((r) => setTimeout(r, 10));
    await new Promise<void>((r) => conn.whenLine(1024, r));
    await assert.rejects(conn.readLine(1024), IdleTimeoutError);
  } finally {
    await done();
  }
});

Deno.test("whenLine calls back when the peer goes away; readLine then says end of stream", async () => {
  const { conn, client, done } = await pair();
  try {
    const called = new Promise<void>((r) => conn.whenLine(1024, r));
    client.end();
    await called;
    assert.equal(await conn.readLine(1024), null);
  } finally {
    await done();
  }
});

Deno.test("a connection and each chunk it receives count as client activity", async () => {
  const before = activityCount();
  const { conn, client, done } = await pair();
  try {
    const connected = activityCount();
    assert.ok(connected > before, "the connection itself counts");
    client.write("a NOOP\r\n");
    assert.equal(new TextDecoder().decode((await conn.readLine(1000))!), "a NOOP");
    assert.ok(activityCount() > connected, "what it received counts");
  } finally {
    await done();
  }
});
