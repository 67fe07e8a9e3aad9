// Connections served by tern's own TLS 1.3 engine (src/net/tls13) under the listeners: which
// clients it takes and which go to node:tls, STARTTLS, COMPRESS over it, deadlines, garbage,
// back-pressure under a slow reader, close_notify, idle limits and write failures.

import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { listen, type ListenOptions } from "./listen.ts";
import { generateSelfSigned, serverTls } from "./tls.ts";
import {
  type Connection,
  ConnectionClosedError,
  IdleTimeoutError,
  SocketConnection,
  type TlsEngine,
} from "./connection.ts";
import { WireClient } from "../../tests/support/wire_client.ts";

const material = await generateSelfSigned(["localhost", "127.0.0.1"]);
const serverCert = serverTls(material);
const ca = material.caPem!;
const dec = new TextDecoder();
const enc = new TextEncoder();

const engineOf = (conn: Connection) => (conn as SocketConnection).tlsEngine;

/**
 * A line protocol: the greeting names the TLS engine; "STARTTLS" upgrades, "COMPRESS" deflates,
 * "BIG n" answers n letters and a line end, "QUIT" ends, anything else is echoed.
 */
async function session(conn: Connection) {
  const state = () => `tls=${conn.isTls} engine=${engineOf(conn)}`;
  await conn.write(`* ready ${state()}\r\n`);
  while (true) {
    const line = await conn.readLine(1000);
    if (line === null) return;
    const text = dec.decode(line);
    if (text === "STARTTLS") {
      await conn.startTls("OK go\r\n");
      await conn.write(`* ${state()}\r\n`);
    } else if (text === "COMPRESS") {
      await conn.startCompression("OK deflate\r\n");
    } else if (text.startsWith("BIG ")) {
      const n = Number(text.slice(4));
      for (let off = 0; off < n; off += 65536) await conn.write(letters(Math.min(65536, n - off)));
      await conn.write("\r\n");
    } else if (text === "QUIT") {
      await conn.write("BYE\r\n");
      return;
    } else await conn.write(`ECHO ${text}\r\n`);
  }
}

/** n letters a..z in a pattern (no line end). */
function letters(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 97 + ((i * 7 + seed) % 26);
  return out;
}

type Ends = [string, TlsEngine | null][];

/** A listener on a free loopback port with tern's engine; `ends` collects (reason, engine). */
async function listenWith(options: Partial<ListenOptions> = {}) {
  const ends: Ends = [];
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "tls",
    tls: () => serverCert,
    tlsEngine: "tern",
    onConnection: session,
    onEnd: (reason, engine) => ends.push([reason, engine]),
    ...options,
  });
  const drained = async () => {
    while (l.connectionCount > 0) await new Promise((r) => setTimeout(r, 20));
  };
  return { l, ends, drained };
}

async function readUntil(c: Deno.Conn, needle: string): Promise<string> {
  let got = "";
  const buf = new Uint8Array(4096);
  while (!got.includes(needle)) {
    const n = await c.read(buf);
    if (n === null) break;
    got += dec.decode(buf.subarray(0, n));
  }
  return got;
}

/** `p`, or a failure after ms (a bound against hanging, not a timing assertion). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms / 1000} s`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every byte the peer sends until it closes; `fin` false when it was reset. */
async function readToEnd(c: Deno.Conn): Promise<{ bytes: Uint8Array; fin: boolean }> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  let fin = true;
  while (true) {
    let n: number | null;
    try {
      n = await c.read(buf);
    } catch {
      fin = false;
      break;
    }
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return { bytes: out, fin };
}

/** The ClientHello a TLS 1.3 client (node:tls here) sends first, as one record. */
async function captureClientHello(): Promise<Uint8Array> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const hello = new Promise<Uint8Array>((resolve) => {
      server.once("connection", (s: net.Socket) => {
        let got = new Uint8Array(0);
        s.on("data", (c: Uint8Array) => {
          const more = new Uint8Array(got.length + c.length);
          more.set(got);
          more.set(c, got.length);
          got = more;
          if (got.length >= 5 && got.length >= 5 + ((got[3] << 8) | got[4])) {
            s.destroy();
            resolve(got.subarray(0, 5 + ((got[3] << 8) | got[4])));
          }
        });
        s.on("error", () => {});
      });
    });
    const client = tls.connect({
      host: "127.0.0.1",
      port: (server.address() as net.AddressInfo).port,
      servername: "localhost",
      ca,
    });
    client.on("error", () => {});
    const out = await hello;
    client.destroy();
    return out;
  } finally {
    await new Promise((r) => server.close(r));
  }
}

Deno.test("tern's TLS engine serves TLS 1.3 clients on implicit TLS (Deno and node:tls clients)", async () => {
  const { l, ends, drained } = await listenWith();
  try {
    const d = await Deno.connectTls({ hostname: "localhost", port: l.port, caCerts: [ca] });
    assert.equal(await readUntil(d, "\r\n"), "* ready tls=true engine=tern\r\n");
    await d.write(enc.encode("hello\r\n"));
    assert.equal(await readUntil(d, "\r\n"), "ECHO hello\r\n");
    await d.write(enc.encode("QUIT\r\n"));
    assert.equal(await readUntil(d, "BYE\r\n"), "BYE\r\n");
    d.close();

    const w = await WireClient.connect(l.port, { tlsCa: ca, minVersion: "TLSv1.3" });
    assert.equal(await w.line(), "* ready tls=true engine=tern");
    // Two commands in one record: both are read.
    await w.write("one\r\ntwo\r\n");
    assert.equal(await w.line(), "ECHO one");
    assert.equal(await w.line(), "ECHO two");
    w.close();
    await drained();
    // The session ends at the end of the stream: "quit" both times.
    assert.deepEqual(ends, [["quit", "tern"], ["quit", "tern"]]);
  } finally {
    await l.close();
  }
});

Deno.test("a TLS 1.2 client is handed to node:tls and served; a TLS 1.3-only listener refuses it", async () => {
  const { l, ends, drained } = await listenWith();
  try {
    const w = await WireClient.connect(l.port, { tlsCa: ca, maxVersion: "TLSv1.2" });
    assert.equal(await w.line(), "* ready tls=true engine=node");
    await w.write("hello\r\n");
    assert.equal(await w.line(), "ECHO hello");
    await w.write("QUIT\r\n");
    assert.equal(await w.line(), "BYE");
    w.close();
    await drained();
    assert.deepEqual(ends, [["quit", "node"]]);
  } finally {
    await l.close();
  }
  // The listener's minimum version still holds for the clients node:tls gets.
  const strict = await listenWith({ minTlsVersion: "TLSv1.3" });
  try {
    await assert.rejects(WireClient.connect(strict.l.port, { tlsCa: ca, maxVersion: "TLSv1.2" }));
    const w = await WireClient.connect(strict.l.port, { tlsCa: ca });
    assert.equal(await w.line(), "* ready tls=true engine=tern");
    w.close();
  } finally {
    await strict.l.close();
  }
});

Deno.test("STARTTLS goes to tern's TLS engine", async () => {
  const { l, ends, drained } = await listenWith({ mode: "plain" });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.equal(await readUntil(c, "\r\n"), "* ready tls=false engine=null\r\n");
    await c.write(enc.encode("STARTTLS\r\n"));
    assert.equal(await readUntil(c, "\r\n"), "OK go\r\n");
    const t = await Deno.startTls(c, { hostname: "localhost", caCerts: [ca] });
    assert.equal(await readUntil(t, "\r\n"), "* tls=true engine=tern\r\n");
    await t.write(enc.encode("QUIT\r\n"));
    assert.equal(await readUntil(t, "BYE\r\n"), "BYE\r\n");
    t.close();
    // And a TLS 1.2 client after STARTTLS: node:tls.
    const w = await WireClient.connect(l.port);
    assert.equal(await w.line(), "* ready tls=false engine=null");
    await w.write("STARTTLS\r\n");
    assert.equal(await w.line(), "OK go");
    await w.startTls(ca, { maxVersion: "TLSv1.2" });
    assert.equal(await w.line(), "* tls=true engine=node");
    w.close();
    await drained();
    assert.deepEqual(ends, [["quit", "tern"], ["quit", "node"]]);
  } finally {
    await l.close();
  }
});

Deno.test("COMPRESS=DEFLATE over tern's TLS engine: lines in, 3 MiB out, in order", async () => {
  const { l } = await listenWith();
  try {
    const w = await WireClient.connect(l.port, { tlsCa: ca, minVersion: "TLSv1.3" });
    assert.equal(await w.line(), "* ready tls=true engine=tern");
    await w.write("COMPRESS\r\n");
    assert.equal(await w.line(), "OK deflate");
    w.startCompression();
    await w.write("hello\r\n");
    assert.equal(await w.line(), "ECHO hello");
    const n = 3 << 20;
    await w.write(`BIG ${n}\r\n`);
    const got = await w.bytes(n);
    const want = new Uint8Array(n);
    for (let off = 0; off < n; off += 65536) want.set(letters(Math.min(65536, n - off)), off);
    assert.ok(got.every((b, i) => b === want[i]), "the deflated output inflates to what was sent");
    assert.equal(await w.line(), "");
    await w.write("QUIT\r\n");
    assert.equal(await w.line(), "BYE");
    w.close();
  } finally {
    await l.close();
  }
});

Deno.test("tern's TLS engine: a client stopping inside its ClientHello or its handshake is dropped at the deadline", async () => {
  const hello = await captureClientHello();
  const { l, ends, drained } = await listenWith({ handshakeTimeoutMs: 300 });
  try {
    // Half a ClientHello, then nothing: the engine is not chosen yet.
    const half = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await half.write(hello.subarray(0, hello.length >> 1));
    assert.equal((await within(readToEnd(half), 30_000, "half a ClientHello")).bytes.length, 0);
    half.close();
    await drained();
    // The whole ClientHello (the engine answers), then nothing: no Finished.
    const stalled = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await stalled.write(hello);
    const flight = (await within(readToEnd(stalled), 30_000, "a stalled handshake")).bytes;
    assert.ok(flight.length > 0 && flight[0] === 22, "the server's flight came first");
    stalled.close();
    await drained();
    assert.deepEqual(ends, [["tls", null], ["tls", "tern"]]);
  } finally {
    await l.close();
  }
});

Deno.test("tern's TLS engine: a ClientHello trickled in a byte at a time is gathered and served", async () => {
  const hello = await captureClientHello();
  const { l, ends, drained } = await listenWith({ handshakeTimeoutMs: 300 });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    c.setNoDelay(true);
    for (let i = 0; i < hello.length; i++) await c.write(hello.subarray(i, i + 1));
    // The engine answers the whole hello with its flight (then no Finished comes).
    const flight = (await within(readToEnd(c), 30_000, "a trickled ClientHello")).bytes;
    assert.ok(flight.length > 0 && flight[0] === 22, "the server's flight came");
    c.close();
    await drained();
    assert.deepEqual(ends, [["tls", "tern"]]);
  } finally {
    await l.close();
  }
});

Deno.test("tern's TLS engine: garbage is closed (node:tls's answer); a bad record mid-handshake gets an alert and FIN", async () => {
  const hello = await captureClientHello();
  // The deadline far beyond the test's bound: a close comes from the error, not from it.
  const { l, ends, drained } = await listenWith({ handshakeTimeoutMs: 120_000 });
  try {
    const junk = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await junk.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await within(readToEnd(junk), 30_000, "garbage");
    junk.close();
    await drained();
    assert.deepEqual(ends, [["tls", "node"]]);

    const bad = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await bad.write(hello);
    // Application data before the handshake is done, that decrypts under no key.
    const record = new Uint8Array(5 + 40);
    record.set([23, 3, 3, 0, 40]);
    await bad.write(record);
    const { bytes: got, fin } = await within(readToEnd(bad), 30_000, "a bad record");
    bad.close();
    assert.ok(fin, "the server closed with FIN, not a reset");
    const records: [number, number][] = [];
    for (let at = 0; at + 5 <= got.length;) {
      const len = (got[at + 3] << 8) | got[at + 4];
      records.push([got[at], len]);
      at += 5 + len;
    }
    // The last record: the alert, under the handshake keys (2 bytes, its type, 16 of tag).
    const [type, len] = records[records.length - 1];
    assert.ok(
      (type === 23 && len >= 19 && len < 19 + 256) || (type === 21 && len === 2),
      `last record ${type}/${len}`,
    );
    await drained();
    assert.deepEqual(ends, [["tls", "node"], ["tls", "tern"]]);
  } finally {
    await l.close();
  }
});

Deno.test("tern's TLS engine: a new certificate (SIGHUP, ACME renewal) is served at the next handshake; open connections go on", async () => {
  const second = await generateSelfSigned(["localhost", "127.0.0.1"]);
  let current = serverCert;
  const { l } = await listenWith({ tls: () => current });
  try {
    const before = await Deno.connectTls({ hostname: "localhost", port: l.port, caCerts: [ca] });
    assert.equal(await readUntil(before, "\r\n"), "* ready tls=true engine=tern\r\n");
    current = serverTls(second);
    const after = await Deno.connectTls({
      hostname: "localhost",
      port: l.port,
      caCerts: [second.caPem!],
    });
    assert.equal(await readUntil(after, "\r\n"), "* ready tls=true engine=tern\r\n");
    // The old certificate is not served any more.
    await assert.rejects(async () => {
      const old = await Deno.connectTls({ hostname: "localhost", port: l.port, caCerts: [ca] });
      try {
        await old.handshake();
      } finally {
        old.close();
      }
    }, /certificate|UnknownIssuer|invalid peer/i);
    await before.write(enc.encode("still here\r\n"));
    assert.equal(await readUntil(before, "\r\n"), "ECHO still here\r\n");
    // Credentials are made once per certificate, not per connection.
    assert.equal(current.tls13(), current.tls13());
    before.close();
    after.close();
  } finally {
    await l.close();
  }
});

/** A SocketConnection on implicit TLS with tern's engine, its raw socket, and the port. */
async function ownTlsServer() {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const accepted = new Promise<{ conn: SocketConnection; raw: net.Socket }>((resolve) =>
    server.once("connection", (raw: net.Socket) => {
      const conn = new SocketConnection(raw, {
        secureContext: () => serverCert.context("TLSv1.2"),
        tls13: () => serverCert.tls13(),
        implicitTls: true,
      });
      resolve({ conn, raw });
    })
  );
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted,
    close: () => new Promise((r) => server.close(r)),
  };
}

Deno.test("tern's TLS engine: a large response to a slow reader waits for it (back-pressure), whole and in order", async () => {
  const s = await ownTlsServer();
  const client = await Deno.connectTls({ hostname: "localhost", port: s.port, caCerts: [ca] });
  const { conn, raw } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), client.handshake()]);
    assert.equal(conn.tlsEngine, "tern");
    const n = 24 << 20;
    let mostQueued = 0;
    const writing = (async () => {
      for (let off = 0; off < n; off += 65536) {
        await conn.write(letters(65536, off));
        mostQueued = Math.max(mostQueued, raw.writableLength);
      }
    })();
    // The reader takes 16 KiB at a time, yielding between reads.
    const buf = new Uint8Array(16384);
    let at = 0;
    let ok = true;
    while (at < n) {
      const k = await client.read(buf);
      assert.ok(k !== null, "the stream ended early");
      for (let i = 0; i < k; i++) {
        const off = at + i;
        if (buf[i] !== 97 + ((off % 65536 * 7 + (off - off % 65536)) % 26)) ok = false;
      }
      at += k;
      await new Promise((r) => setTimeout(r, 0));
    }
    await writing;
    assert.ok(ok, "every byte as written");
    // Without back-pressure the writes would queue most of the 24 MiB in the socket.
    assert.ok(mostQueued <= 1 << 20, `at most ${mostQueued} bytes queued`);
  } finally {
    client.close();
    conn.destroy();
    await s.close();
  }
});

Deno.test("tern's TLS engine: a large upload to a slow consumer is held back (the raw socket pauses), whole and in order", async () => {
  const s = await ownTlsServer();
  const client = await Deno.connectTls({ hostname: "localhost", port: s.port, caCerts: [ca] });
  const { conn } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), client.handshake()]);
    assert.equal(conn.tlsEngine, "tern");
    const n = 12 << 20;
    const data = letters(n, 5);
    const sending = (async () => {
      for (let off = 0; off < n;) off += await client.write(data.subarray(off, off + 65536));
    })();
    let at = 0;
    let largestBuffer = 0;
    let ok = true;
    const whole = await conn.readExactChunks(n, async (c) => {
      for (let i = 0; i < c.length; i++) if (c[i] !== data[at + i]) ok = false;
      at += c.length;
      largestBuffer = Math.max(largestBuffer, conn.bufferedBytes());
      // A slow consumer (a disk): the raw socket is paused rather than buffered without end.
      await new Promise((r) => setTimeout(r, 0));
    });
    await sending;
    assert.ok(whole && ok && at === n, "every byte as sent");
    assert.ok(largestBuffer <= (1 << 20) + 256 * 1024, `buffered at most ${largestBuffer}`);
  } finally {
    client.close();
    conn.destroy();
    await s.close();
  }
});

Deno.test("tern's TLS engine: close() sends close_notify before FIN", async () => {
  const s = await ownTlsServer();
  const client = await Deno.connectTls({ hostname: "localhost", port: s.port, caCerts: [ca] });
  const { conn } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), client.handshake()]);
    assert.equal(conn.tlsEngine, "tern");
    await conn.write("* bye\r\n");
    const closing = conn.close();
    // Deno's TLS client reads the end as null only after a close_notify (else it throws).
    assert.equal(await readUntil(client, "\r\n"), "* bye\r\n");
    assert.equal(await client.read(new Uint8Array(16)), null);
    client.close();
    await closing;
    assert.ok(conn.closed);
  } finally {
    conn.destroy();
    await s.close();
  }
});

Deno.test("tern's TLS engine: abort() sends what was written, close_notify and FIN, and drops the socket", async () => {
  const s = await ownTlsServer();
  const client = await Deno.connectTls({ hostname: "localhost", port: s.port, caCerts: [ca] });
  const { conn } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), client.handshake()]);
    assert.equal(conn.tlsEngine, "tern");
    await conn.write("* BYE flooding\r\n");
    conn.abort();
    assert.equal(await readUntil(client, "\r\n"), "* BYE flooding\r\n");
    assert.equal(await client.read(new Uint8Array(16)), null, "close_notify, then the end");
    client.close();
    while (!conn.closed) await new Promise((r) => setTimeout(r, 10));
  } finally {
    conn.destroy();
    await s.close();
  }
});

Deno.test("tern's TLS engine: the idle limit ends a silent connection; writes to a reset peer fail as closed", async () => {
  const s = await ownTlsServer();
  const client = await Deno.connectTls({ hostname: "localhost", port: s.port, caCerts: [ca] });
  const { conn } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), client.handshake()]);
    assert.equal(conn.tlsEngine, "tern");
    conn.setIdleTimeout(300);
    await client.write(enc.encode("x\r\n"));
    assert.equal(dec.decode((await conn.readLine(100))!), "x");
    await assert.rejects(conn.readLine(100), IdleTimeoutError);
  } finally {
    client.close();
    conn.destroy();
    await s.close();
  }
  const s2 = await ownTlsServer();
  const peer = tls.connect({ host: "127.0.0.1", port: s2.port, servername: "localhost", ca });
  peer.on("error", () => {});
  const { conn: c2 } = await s2.accepted;
  try {
    await Promise.all([c2.acceptTls(), new Promise((r) => peer.once("secureConnect", r))]);
    assert.equal(c2.tlsEngine, "tern");
    const gone = new Promise((r) => peer.once("close", r));
    peer.destroy();
    await gone;
    let error: unknown = null;
    for (let i = 0; i < 1000 && !error; i++) {
      await c2.write(new Uint8Array(64 * 1024)).catch((e) => (error = e));
    }
    assert.ok(error instanceof ConnectionClosedError, String(error));
    await assert.rejects(c2.write("x"), ConnectionClosedError);
  } finally {
    c2.destroy();
    await s2.close();
  }
});

Deno.test("tern's TLS engine: a forged record after the handshake gets an alert and FIN; the session's read ends", async () => {
  const s = await ownTlsServer();
  const raw = net.connect(s.port, "127.0.0.1");
  raw.on("error", () => {});
  const client = tls.connect({ socket: raw, servername: "localhost", ca });
  const clientError = new Promise<Error>((r) => client.once("error", r));
  const { conn } = await s.accepted;
  try {
    await Promise.all([conn.acceptTls(), new Promise((r) => client.once("secureConnect", r))]);
    assert.equal(conn.tlsEngine, "tern");
    client.write("a line\r\n");
    assert.equal(dec.decode((await conn.readLine(100))!), "a line");
    const ended = new Promise((r) => raw.once("close", r));
    // Application data that no key made, straight onto the TCP socket under the TLS client.
    const forged = new Uint8Array(5 + 40);
    forged.set([23, 3, 3, 0, 40]);
    raw.write(forged);
    await assert.rejects(
      (async () => {
        if ((await conn.readLine(100)) === null) throw new ConnectionClosedError();
      })(),
      ConnectionClosedError,
    );
    assert.match(String(await within(clientError, 30_000, "the client's alert")), /alert|mac/i);
    await within(ended, 30_000, "the server's FIN");
    await assert.rejects(conn.write("x"), ConnectionClosedError);
  } finally {
    client.destroy();
    conn.destroy();
    await s.close();
  }
});
