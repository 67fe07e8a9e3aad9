// The fault-injecting proxy of the bad-network tests does what it says: bytes arrive whole and in
// order through latency, stalls and a bandwidth cap; resets cut at the drawn byte offset; the same
// seed draws the same faults. (Delays are checked only from below: a fault cannot make it faster.)

import assert from "node:assert/strict";
import * as net from "node:net";
import { FaultyProxy } from "./support/faulty_proxy.ts";

/** An echo server on an ephemeral port. */
async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends `data` through the proxy, collecting what comes back until `want` bytes or the end. */
function roundTrip(
  port: number,
  data: Uint8Array,
  want = data.length,
): Promise<{ got: Uint8Array; error: string | null; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Uint8Array[] = [];
    let n = 0;
    let error: string | null = null;
    const s = net.connect({ host: "127.0.0.1", port });
    const done = () => {
      const got = new Uint8Array(n);
      let at = 0;
      for (const c of chunks) {
        got.set(c, at);
        at += c.length;
      }
      resolve({ got, error, ms: performance.now() - t0 });
    };
    s.on("connect", () => s.write(data));
    s.on("data", (c: Uint8Array) => {
      chunks.push(c);
      n += c.length;
      if (n >= want) s.destroy();
    });
    s.on("error", (e: Error & { code?: string }) => (error = e.code ?? e.message));
    s.on("close", done);
  });
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, off + 65536));
  return b;
}

Deno.test("faulty proxy: latency, stalls and a bandwidth cap keep every byte in order", async () => {
  const echo = await echoServer();
  const proxy = await FaultyProxy.start({
    target: { port: echo.port },
    seed: 7,
    faults: {
      up: { latencyMs: [5, 40], stallChance: 0.05, stallMs: [20, 60], bytesPerSecond: 4 << 20 },
      down: { latencyMs: [5, 40], stallChance: 0.05, stallMs: [20, 60] },
    },
  });
  try {
    const data = randomBytes(2 << 20);
    const r = await roundTrip(proxy.port, data);
    assert.equal(r.error, null);
    assert.equal(r.got.length, data.length);
    assert.deepEqual(r.got, data, "the bytes came back unchanged and in order");
    // 2 MiB at 4 MiB/s needs half a second on the way up, whatever the machine.
    assert.ok(r.ms >= 450, `took ${r.ms} ms`);
    assert.ok(proxy.stats.stalls > 0, "stalls happened");
    assert.equal(proxy.stats.bytesUp, data.length);
    assert.equal(proxy.resetCount, 0);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("faulty proxy: split writes arrive whole and in order", async () => {
  const echo = await echoServer();
  const proxy = await FaultyProxy.start({
    target: { port: echo.port },
    seed: 11,
    faults: {
      up: { splitChance: 0.3, splitMs: [1, 20] },
      down: { splitChance: 0.3, splitMs: [1, 20] },
    },
  });
  try {
    const data = randomBytes(1 << 20);
    const r = await roundTrip(proxy.port, data);
    assert.equal(r.error, null);
    assert.deepEqual(r.got, data, "the bytes came back unchanged and in order");
    assert.ok(proxy.stats.splits > 0, "some writes were split");
    assert.equal(proxy.resetCount, 0);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("faulty proxy: a reset cuts the connection at the drawn byte offset", async () => {
  const echo = await echoServer();
  const proxy = await FaultyProxy.start({
    target: { port: echo.port },
    seed: 1,
    faults: { up: {}, down: { resets: [{ chance: 1, atBytes: [100_000, 100_000] }] } },
  });
  try {
    const r = await roundTrip(proxy.port, randomBytes(300_000));
    assert.equal(r.error, "ECONNRESET");
    assert.ok(r.got.length <= 100_000, `got ${r.got.length} bytes`);
    assert.deepEqual(proxy.stats.resets, [{ dir: "down", atByte: 100_000 }]);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("faulty proxy: the same seed draws the same resets", async () => {
  const echo = await echoServer();
  const offsets = async (seed: number) => {
    const proxy = await FaultyProxy.start({
      target: { port: echo.port },
      seed,
      faults: { up: { resets: [{ chance: 0.5, atBytes: [1000, 50_000] }] }, down: {} },
    });
    try {
      const out: string[] = [];
      for (let i = 0; i < 8; i++) {
        const before = proxy.stats.resets.length;
        await roundTrip(proxy.port, randomBytes(60_000));
        const r = proxy.stats.resets[before];
        out.push(r ? `${r.dir}@${r.atByte}` : "none");
      }
      return out;
    } finally {
      await proxy.close();
    }
  };
  try {
    const a = await offsets(42);
    assert.deepEqual(await offsets(42), a);
    assert.ok(a.some((x) => x !== "none") && a.some((x) => x === "none"), a.join(" "));
  } finally {
    await echo.close();
  }
});

Deno.test("faulty proxy: a reset rule stops after its budget", async () => {
  const echo = await echoServer();
  const proxy = await FaultyProxy.start({
    target: { port: echo.port },
    seed: 3,
    faults: {
      up: { resets: [{ chance: 1, atBytes: [10_000, 20_000], spread: "uniform", budget: 2 }] },
      down: {},
    },
  });
  try {
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await roundTrip(proxy.port, randomBytes(50_000)));
    assert.deepEqual(results.map((r) => r.error), ["ECONNRESET", "ECONNRESET", null, null]);
    assert.equal(proxy.resetCount, 2);
    for (const r of proxy.stats.resets) assert.ok(r.atByte >= 10_000 && r.atByte <= 20_000);
  } finally {
    await proxy.close();
    await echo.close();
  }
});
