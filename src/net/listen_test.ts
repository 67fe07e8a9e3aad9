import assert from "node:assert/strict";
import { listen, type ListenOptions } from "./listen.ts";
import { generateSelfSigned, serverTls } from "./tls.ts";
import { ConnectionClosedError, LineTooLongError } from "./connection.ts";
import type { Connection } from "./connection.ts";
import { requireTool } from "../../tests/support/tools.ts";
import { writeHeapSnapshot } from "node:v8";

const material = await generateSelfSigned(["localhost", "127.0.0.1"]);
const tls = serverTls(material);
const dec = new TextDecoder();
const enc = new TextEncoder();

/** A tiny line protocol: "STARTTLS" upgrades, "LONG" reads with a 10-byte limit, else echo. */
async function session(conn: Connection) {
  await conn.write("* ready\r\n");
  while (true) {
    let line: Uint8Array | null;
    try {
      line = await conn.readLine(100);
    } catch (err) {
      if (err instanceof LineTooLongError) {
        await conn.write("ERR too long\r\n");
        continue;
      }
      throw err;
    }
    if (line === null) return;
    const text = dec.decode(line);
    if (text === "STARTTLS") {
      if (conn.bufferedBytes() > 0) {
        await conn.write("ERR pipelined\r\n");
        return;
      }
      await conn.startTls("OK go\r\n");
      await conn.write(`* tls=${conn.isTls}\r\n`);
    } else if (text === "QUIT") {
      await conn.write("BYE\r\n");
      return;
    } else await conn.write(`ECHO ${text}\r\n`);
  }
}

/** An implicit-TLS listener on a free loopback port with the test certificate. */
function listenTls(options: Partial<ListenOptions> = {}) {
  return listen({
    address: "127.0.0.1:0",
    mode: "tls",
    tls: () => tls,
    onConnection: session,
    ...options,
  });
}

/** A TLS client of `port` trusting `ca` (the test CA unless given). */
function connectTls(port: number, ca = material.caPem!) {
  return Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
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

Deno.test("listen() serves plain lines and upgrades with STARTTLS (Deno client)", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    tls: () => tls,
    onConnection: session,
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.match(await readUntil(c, "ready\r\n"), /ready/);
    await c.write(enc.encode("hello\r\n"));
    assert.equal(await readUntil(c, "\r\n"), "ECHO hello\r\n");
    await c.write(enc.encode("STARTTLS\r\n"));
    assert.equal(await readUntil(c, "\r\n"), "OK go\r\n");
    const t = await Deno.startTls(c, { hostname: "localhost", caCerts: [material.caPem!] });
    assert.equal(await readUntil(t, "\r\n"), "* tls=true\r\n");
    await t.write(enc.encode("QUIT\r\n"));
    assert.equal(await readUntil(t, "BYE\r\n"), "BYE\r\n");
    t.close();
  } finally {
    await l.close();
  }
});

Deno.test("listen() refuses bytes pipelined after STARTTLS", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    tls: () => tls,
    onConnection: session,
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await readUntil(c, "ready\r\n");
    await c.write(enc.encode("STARTTLS\r\nECHO injected\r\n"));
    assert.match(await readUntil(c, "\r\n"), /ERR pipelined/);
    c.close();
  } finally {
    await l.close();
  }
});

Deno.test("listen() limits connections per client address", async () => {
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    maxConnectionsPerIp: 2,
    overLimitReply: "421 too many\r\n",
    onConnection: session,
  });
  try {
    const a = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    const b = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    await readUntil(a, "ready");
    await readUntil(b, "ready");
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.equal(await readUntil(c, "\r\n"), "421 too many\r\n");
    for (const x of [a, b, c]) x.close();
  } finally {
    await l.close();
  }
});

const openssl = requireTool("openssl");
Deno.test(openssl.title("STARTTLS works with openssl s_client"), {
  ignore: openssl.ignore,
}, async () => {
  const smtpLike = async (conn: Connection) => {
    await conn.write("220 test ESMTP\r\n");
    while (true) {
      const line = await conn.readLine(512);
      if (line === null) return;
      const cmd = dec.decode(line).toUpperCase();
      if (cmd.startsWith("EHLO")) await conn.write("250-test\r\n250 STARTTLS\r\n");
      else if (cmd === "STARTTLS") await conn.startTls("220 2.0.0 Ready to start TLS\r\n");
      else if (cmd === "QUIT") return void await conn.write("221 bye\r\n");
      else await conn.write("250 ok\r\n");
    }
  };
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    tls: () => tls,
    onConnection: smtpLike,
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, material.caPem!);
    for (let i = 0; i < 5; i++) {
      const p = new Deno.Command("openssl", {
        args: [
          "s_client",
          "-connect",
          `127.0.0.1:${l.port}`,
          "-starttls",
          "smtp",
          "-CAfile",
          `${dir}/ca.pem`,
          "-verify_return_error",
          "-servername",
          "localhost",
          "-quiet",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = p.stdin.getWriter();
      await w.write(enc.encode("NOOP\r\nQUIT\r\n"));
      await w.close();
      const out = await p.output();
      assert.match(dec.decode(out.stdout), /250 ok[\s\S]*221 bye/, dec.decode(out.stderr));
    }
  } finally {
    await l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("implicit TLS: limits per address answer over TLS; a silent client blocks no one", async () => {
  const l = await listenTls({
    maxConnectionsPerIp: 2,
    overLimitReply: "421 too many\r\n",
  });
  try {
    // A TCP client that never starts its handshake holds one slot and nothing else.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    const a = await connectTls(l.port);
    assert.match(await readUntil(a, "ready\r\n"), /ready/);
    const b = await connectTls(l.port);
    assert.equal(await readUntil(b, "\r\n"), "421 too many\r\n");
    silent.close();
    b.close();
    await a.write(enc.encode("QUIT\r\n"));
    assert.equal(await readUntil(a, "BYE\r\n"), "BYE\r\n");
    a.close();
  } finally {
    await l.close();
  }
});

/** TCP_NODELAY of this process's established sockets whose local port is `port`. */
function acceptedNoDelay(port: number): number[] {
  const libc = Deno.dlopen("libc.so.6", {
    getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  });
  try {
    const inodes = new Set<string>();
    for (const line of Deno.readTextFileSync("/proc/self/net/tcp").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 10 && f[3] === "01" && parseInt(f[1].split(":")[1], 16) === port) {
        inodes.add(f[9]);
      }
    }
    const values: number[] = [];
    for (const e of Deno.readDirSync("/proc/self/fd")) {
      let link = "";
      try {
        link = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      } catch {
        continue; // the directory listing's own descriptor
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(m[1])) continue;
      const value = new Int32Array(1), len = new Uint32Array([4]);
      const rc = libc.symbols.getsockopt(
        Number(e.name),
        6,
        1,
        new Uint8Array(value.buffer),
        new Uint8Array(len.buffer),
      );
      if (rc === 0) values.push(value[0]);
    }
    return values;
  } finally {
    libc.close();
  }
}

Deno.test("implicit TLS: a client that never completes its handshake is dropped", async () => {
  const ends: string[] = [];
  const l = await listenTls({ handshakeTimeoutMs: 200, onEnd: (r) => ends.push(r) });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    // The server closes it at the deadline: the read ends.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      silent.read(new Uint8Array(16)).catch(() => null),
      new Promise((r) => (timer = setTimeout(() => r("still open after 5 s"), 5000))),
    ]);
    clearTimeout(timer);
    assert.equal(n, null);
    silent.close();
    while (l.connectionCount > 0) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ends, ["tls"]);
  } finally {
    await l.close();
  }
});

Deno.test("STARTTLS: a client that stalls in its handshake (half a ClientHello) is dropped at the deadline", async () => {
  const ends: string[] = [];
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    tls: () => tls,
    handshakeTimeoutMs: 200,
    onConnection: session,
    onEnd: (r) => ends.push(r),
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
    assert.match(await readUntil(c, "\r\n"), /^\* ready/);
    await c.write(enc.encode("STARTTLS\r\n"));
    assert.match(await readUntil(c, "\r\n"), /^OK go/);
    // A TLS record header promising 512 bytes, and 6 of them: then nothing.
    await c.write(
      new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      c.read(new Uint8Array(16)).catch(() => null),
      new Promise((r) => (timer = setTimeout(() => r("still open after 10 s"), 10_000))),
    ]);
    clearTimeout(timer);
    assert.equal(n, null, "the server closed the stalled connection");
    c.close();
    while (l.connectionCount > 0) await new Promise((r) => setTimeout(r, 20));
    assert.equal(ends.length, 1);
  } finally {
    await l.close();
  }
});

Deno.test(`implicit TLS: serves lines and rejects over-long ones`, async () => {
  const l = await listenTls({});
  try {
    const c = await connectTls(l.port);
    await readUntil(c, "ready\r\n");
    await c.write(enc.encode("x".repeat(5000) + "\r\nshort\r\n"));
    const got = await readUntil(c, "ECHO short\r\n");
    assert.equal(got, "ERR too long\r\nECHO short\r\n");
    c.close();
  } finally {
    await l.close();
  }
});

Deno.test(`implicit TLS: a new certificate is served at the next handshake; open connections go on`, async () => {
  const second = await generateSelfSigned(["localhost", "127.0.0.1"]);
  let current = tls;
  const l = await listenTls({
    tls: () => current,
  });
  try {
    const before = await connectTls(l.port);
    await readUntil(before, "ready\r\n");
    current = serverTls(second);
    const after = await connectTls(l.port, second.caPem!);
    assert.match(await readUntil(after, "ready\r\n"), /ready/);
    await assert.rejects(async () => {
      const old = await connectTls(l.port);
      try {
        await old.handshake();
      } finally {
        old.close();
      }
    }, /certificate|UnknownIssuer|invalid peer/i);
    await before.write(enc.encode("still here\r\n"));
    assert.equal(await readUntil(before, "\r\n"), "ECHO still here\r\n");
    before.close();
    after.close();
  } finally {
    await l.close();
  }
});

Deno.test(`implicit TLS: large uploads arrive whole, in order, with output interleaved`, async () => {
  const sizes: number[] = [];
  const l = await listenTls({
    async onConnection(conn) {
      for (let i = 0; i < 3; i++) {
        const body = await conn.readExact(300_000);
        if (!body) return;
        sizes.push(body.length);
        assert.ok(body.every((b, j) => b === (j + i) % 251), `upload ${i} intact`);
        await conn.write(`got ${i}\r\n`);
      }
    },
  });
  try {
    const c = await connectTls(l.port);
    for (let i = 0; i < 3; i++) {
      const body = new Uint8Array(300_000).map((_, j) => (j + i) % 251);
      let off = 0;
      while (off < body.length) off += await c.write(body.subarray(off));
      assert.equal(await readUntil(c, "\r\n"), `got ${i}\r\n`);
    }
    c.close();
    assert.deepEqual(sizes, [300_000, 300_000, 300_000]);
  } finally {
    await l.close();
  }
});

Deno.test({
  name: `implicit TLS: accepted connections have TCP_NODELAY (no 40 ms Nagle stalls)`,
  ignore: Deno.build.os !== "linux",
  async fn() {
    const l = await listenTls({});
    try {
      const c = await connectTls(l.port);
      await readUntil(c, "ready\r\n");
      const values = acceptedNoDelay(l.port);
      assert.equal(values.length, 1, "one accepted socket");
      assert.notEqual(values[0], 0, "TCP_NODELAY is set");
      c.close();
    } finally {
      await l.close();
    }
  },
});

Deno.test(`implicit TLS: thousands of small writes arrive complete and in order`, async () => {
  const l = await listenTls({
    async onConnection(conn) {
      // Not awaited one by one: they queue behind the write in flight and leave together.
      const writes = [];
      for (let i = 0; i < 5000; i++) writes.push(conn.write(`* ${i} EXISTS\r\n`));
      writes.push(conn.write("a OK done\r\n"));
      await Promise.all(writes);
    },
  });
  try {
    const c = await connectTls(l.port);
    const got = await readUntil(c, "a OK done\r\n");
    const lines = got.split("\r\n").filter(Boolean);
    assert.equal(lines.length, 5001);
    lines.slice(0, 5000).forEach((line, i) => assert.equal(line, `* ${i} EXISTS`));
    c.close();
  } finally {
    await l.close();
  }
});

Deno.test({
  name: "listen() over IPv6 counts per-address limits there too",
  ignore: (() => {
    try {
      Deno.listen({ hostname: "::1", port: 0 }).close();
      return false;
    } catch {
      return true; // no IPv6 loopback on this host
    }
  })(),
  async fn() {
    const l = await listen({
      address: "[::1]:0",
      mode: "plain",
      maxConnectionsPerIp: 2,
      overLimitReply: "421 too many\r\n",
      onConnection: session,
    });
    try {
      assert.equal(l.address, `[::1]:${l.port}`);
      const a = await Deno.connect({ hostname: "::1", port: l.port });
      const b = await Deno.connect({ hostname: "::1", port: l.port });
      await readUntil(a, "ready");
      await readUntil(b, "ready");
      const c = await Deno.connect({ hostname: "::1", port: l.port });
      assert.equal(await readUntil(c, "\r\n"), "421 too many\r\n");
      for (const x of [a, b, c]) x.close();
    } finally {
      await l.close();
    }
  },
});

Deno.test("close() stops accepting at once, lets a busy session finish, drops the rest after the grace", async () => {
  let finishBusy: () => void = () => {};
  const busyDone = new Promise<void>((r) => (finishBusy = r));
  const ends: string[] = [];
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    onEnd: (r) => ends.push(r),
    async onConnection(conn, signal) {
      await conn.write("* ready\r\n");
      const line = await conn.readLine(100);
      if (line && dec.decode(line) === "BUSY") {
        // A command in progress: it finishes (and is answered) although shutdown began.
        await busyDone;
        await conn.write(signal.aborted ? "done after shutdown\r\n" : "done\r\n");
        return "quit";
      }
      // A session that ignores the signal and waits for its client: the grace ends it.
      while (await conn.readLine(100) !== null) { /* waiting */ }
      return "gone";
    },
  });
  const busy = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
  await readUntil(busy, "ready\r\n");
  await readUntil(stuck, "ready\r\n");
  await busy.write(enc.encode("BUSY\r\n"));
  await stuck.write(enc.encode("WAIT\r\n"));
  const closing = l.close(300);
  // New connections are refused at once.
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: l.port }));
  finishBusy();
  assert.equal(await readUntil(busy, "\r\n"), "done after shutdown\r\n");
  await closing;
  assert.equal(await stuck.read(new Uint8Array(8)).catch(() => null), null);
  assert.deepEqual(ends.sort(), ["gone", "quit"]);
  busy.close();
  stuck.close();
});

Deno.test("every session ends once with its reason: returned, none (quit), thrown at once or later (error), the client gone", async () => {
  const ends: string[] = [];
  const errors: string[] = [];
  let allEnded: () => void = () => {};
  const done = new Promise<void>((r) => (allEnded = r));
  const l = await listen({
    address: "127.0.0.1:0",
    mode: "plain",
    onEnd: (r) => {
      ends.push(r);
      if (ends.length === 5) allEnded();
    },
    onError: (err) => {
      errors.push((err as Error).message);
      // A failing logger changes nothing.
      throw new Error("logger failed");
    },
    onConnection(conn) {
      // Which end each client gets: the order they connect in.
      const n = ++accepted;
      if (n === 1) throw new Error("at once");
      return (async () => {
        await conn.write("* ready\r\n");
        const line = await conn.readLine(100);
        if (n === 2) return "idle";
        if (n === 3) return;
        if (n === 4) throw new Error("later");
        if (line !== null) throw new Error("expected the client gone");
        throw new ConnectionClosedError();
      })();
    },
  });
  let accepted = 0;
  try {
    for (let n = 1; n <= 5; n++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
      if (n > 1) {
        await readUntil(c, "ready\r\n");
        if (n < 5) await c.write(enc.encode("x\r\n"));
      }
      // The session ends, and closes the connection (the fifth client goes first).
      if (n < 5) assert.equal(await c.read(new Uint8Array(8)).catch(() => null), null);
      c.close();
    }
    await done;
    // In the order the connections were closed, which the test does not decide.
    assert.deepEqual(ends.sort(), ["error", "error", "gone", "idle", "quit"]);
    assert.deepEqual(errors, ["at once", "later"]);
    assert.equal(l.connectionCount, 0);
  } finally {
    await l.close();
  }
});

/** Objects of the constructor `name` in a heap snapshot of this process (after V8's GC). */
function heapObjects(name: string): number {
  const dir = Deno.makeTempDirSync({ prefix: "tern-listen-heap-" });
  try {
    const snap = JSON.parse(Deno.readTextFileSync(writeHeapSnapshot(`${dir}/l.heapsnapshot`)));
    const meta = snap.snapshot.meta;
    const nf = meta.node_fields.length;
    const nType = meta.node_fields.indexOf("type"), nName = meta.node_fields.indexOf("name");
    const types: string[] = meta.node_types[0];
    let count = 0;
    for (let i = 0; i < snap.nodes.length; i += nf) {
      if (
        types[snap.nodes[i + nType]] === "object" && snap.strings[snap.nodes[i + nName]] === name
      ) {
        count++;
      }
    }
    return count;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("implicit TLS: a waiting session costs the listener one promise on the session's own, not a chain", async () => {
  const ends: ((reason: "quit") => void)[] = [];
  let greeted = 0;
  const l = await listenTls({
    onConnection: async (conn) => {
      await conn.write("* ready\r\n");
      greeted++;
      // The session's own promise, pending as an IDLE is for hours.
      return await new Promise<"quit">((resolve) => ends.push(resolve));
    },
  });
  const clients: Deno.TlsConn[] = [];
  const N = 20;
  try {
    for (let i = 0; i < 2; i++) {
      const c = await connectTls(l.port);
      await readUntil(c, "ready\r\n");
      clients.push(c);
    }
    const before = heapObjects("Promise");
    for (let i = 0; i < N; i++) {
      const c = await connectTls(l.port);
      await readUntil(c, "ready\r\n");
      clients.push(c);
    }
    assert.equal(greeted, N + 2);
    const perSession = (heapObjects("Promise") - before) / N;
    // The async onConnection's promise and its suspended frame's, and one the listener waits
    // with; a chain (then() after then(), a promise resolved with another) held two or three more.
    assert.ok(perSession <= 3, `${perSession} promises per waiting session`);
  } finally {
    for (const end of ends) end("quit");
    for (const c of clients) c.close();
    await l.close();
  }
});
