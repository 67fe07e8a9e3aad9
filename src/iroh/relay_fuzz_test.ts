// Generated hostile input against the relay: the frame and WebSocket parsers on their own, then
// whole connections (bad keys and signatures, truncated, oversized and unknown frames, floods)
// against a running relay whose two honest clients must keep being served after every one.

import assert from "node:assert/strict";
import fc from "fast-check";
import { Hono } from "hono";
import { startHttpServer } from "../http/server.ts";
import { relayUpgradeHook } from "./upgrade_hook.ts";
import { createRelayMetrics } from "../metrics/mod.ts";
import { IrohRelay } from "./iroh_relay.ts";
import { clientInfoFrame } from "./client_info.ts";
import {
  clientFrame,
  decodeClientFrame,
  encodeRelayFrames,
  FrameError,
  FrameType,
  MAX_CLIENT_FRAME_BYTES,
} from "./frames.ts";
import type { OutFrame } from "./frames.ts";
import { frameTransport } from "./frame_transport.ts";
import { WebSocketError, WebSocketReader } from "./websocket.ts";
import { maskedMessage, newKeys, RelayTestClient } from "./test_client.ts";

const RUNS = Number(Deno.env.get("TERN_FUZZ_RUNS") ?? 20_000);
const SOCKET_RUNS = Math.max(20, Math.floor(RUNS / 200));
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connection over a fixed buffer, delivering it in chunks of the given sizes (cycled). */
function source(bytes: Uint8Array, chunkSizes: number[] = [4096]) {
  let off = 0;
  let i = 0;
  return {
    remoteAddress: "test",
    readExact(n: number) {
      if (off + n > bytes.length) return Promise.resolve(null);
      const out = bytes.slice(off, off + n);
      off += n;
      return Promise.resolve(out);
    },
    readChunk() {
      if (off >= bytes.length) return Promise.resolve(null);
      const n = Math.max(1, chunkSizes[i++ % chunkSizes.length]);
      const out = bytes.slice(off, off + n);
      off += out.length;
      return Promise.resolve(out);
    },
    write: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

const chunking = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 });

const typeByte = fc.oneof(
  fc.constantFrom(2, 4, 5, 6, 7, 8, 12, 13, 14, 15),
  fc.integer({ min: 0, max: 255 }),
);

Deno.test("decodeClientFrame(): any type and body give a frame or a FrameError", () => {
  fc.assert(
    fc.property(typeByte, fc.uint8Array({ maxLength: 300 }), (type, body) => {
      try {
        decodeClientFrame(type, body);
      } catch (err) {
        assert.ok(err instanceof FrameError, String(err));
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("relay framing: any byte stream gives frames, an end, or a FrameError", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), chunking, async (bytes, sizes) => {
      const t = frameTransport("relay", source(bytes, sizes));
      try {
        while (await t.read());
      } catch (err) {
        assert.ok(err instanceof FrameError, String(err));
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("relay framing: frames come out as they went in, however the stream is cut", async () => {
  const frame = fc.tuple(typeByte, fc.uint8Array({ maxLength: 700 }));
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { maxLength: 12 }), chunking, async (frames, sizes) => {
      const bytes = encodeRelayFrames(frames.map(([type, body]) => clientFrame(type, body)));
      const t = frameTransport("relay", source(bytes, sizes));
      for (const [type, body] of frames) {
        const got = await t.read();
        assert.equal(got?.type, type);
        assert.deepEqual(got?.body, body);
        assert.equal(got?.wireBytes, 5 + body.length);
      }
      assert.equal(await t.read(), null);
    }),
    { numRuns: RUNS / 4 },
  );
});

Deno.test("relay framing: an oversized length is refused from the header alone", async () => {
  const head = new Uint8Array(5);
  head[0] = FrameType.SendPacket;
  new DataView(head.buffer).setUint32(1, MAX_CLIENT_FRAME_BYTES + 1);
  await assert.rejects(frameTransport("relay", source(head)).read(), FrameError);
});

Deno.test("WebSocket reader: any byte stream gives events, an end, or a WebSocketError", async () => {
  const frames = fc.array(
    fc.record({
      opcode: fc.integer({ min: 0, max: 15 }),
      payload: fc.uint8Array({ maxLength: 200 }),
      fin: fc.boolean(),
    }).map(({ opcode, payload, fin }) => maskedMessage(opcode, payload, fin)),
    { maxLength: 6 },
  );
  const stream = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    frames.map((fs) => new Uint8Array(fs.flatMap((f) => [...f]))),
  );
  await fc.assert(
    fc.asyncProperty(stream, fc.nat({ max: 300 }), async (bytes, cut) => {
      const r = new WebSocketReader(source(bytes.subarray(0, cut || bytes.length)), 150);
      try {
        let e;
        do {
          e = await r.next();
          if (e?.kind === "binary") assert.ok(e.data.length <= 150);
        } while (e && e.kind !== "close");
      } catch (err) {
        assert.ok(err instanceof WebSocketError, String(err));
      }
    }),
    { numRuns: RUNS },
  );
});

/** One step of a hostile connection, as wire bytes for its protocol. */
type Step = (encode: (f: OutFrame) => Uint8Array, keys: Keys) => Promise<Uint8Array>;
type Keys = { publicKey: Uint8Array; privateKey: CryptoKey; victim: Uint8Array };

const steps: fc.Arbitrary<Step> = fc.oneof(
  // A valid ClientInfo, or one with a foreign key, a weak key, another version or a bad signature.
  fc.constantFrom<Step>(
    async (e, k) => e(await clientInfoFrame(k)),
    async (e, k) => {
      const f = await clientInfoFrame(k);
      return e({ ...f, parts: [f.parts[0], k.victim, ...f.parts.slice(2)] });
    },
    async (e, k) => {
      const f = await clientInfoFrame(k);
      const weak = new Uint8Array(32);
      weak[0] = 1;
      return e({ ...f, parts: [f.parts[0], weak, ...f.parts.slice(2)] });
    },
    async (e, k) => e(await clientInfoFrame(k, 2)),
    async (e, k) => {
      const f = await clientInfoFrame(k);
      const sig = f.parts[2].slice();
      sig[0] ^= 0xff;
      return e({ ...f, parts: [f.parts[0], f.parts[1], sig, f.parts[3]] });
    },
  ),
  // Well-formed frames, also to the honest clients.
  fc.tuple(fc.uint8Array({ maxLength: 2000 }), fc.boolean()).map(([p, toVictim]): Step => (e, k) =>
    Promise.resolve(e(clientFrame(FrameType.SendPacket, toVictim ? k.victim : k.publicKey, p)))
  ),
  fc.constant<Step>((e) => Promise.resolve(e(clientFrame(FrameType.Ping, new Uint8Array(8))))),
  // Floods: many pings or packets in one write.
  fc.integer({ min: 10, max: 300 }).map((n): Step => (e, k) => {
    const one = e(clientFrame(FrameType.SendPacket, k.victim, new Uint8Array(100)));
    const out = new Uint8Array(one.length * n);
    for (let i = 0; i < n; i++) out.set(one, i * one.length);
    return Promise.resolve(out);
  }),
  // Unknown types and bodies of the wrong size.
  fc.tuple(typeByte, fc.uint8Array({ maxLength: 100 })).map(([t, b]): Step => (e) =>
    Promise.resolve(e(clientFrame(t, b)))
  ),
  // Oversized and truncated frames, raw garbage.
  fc.integer({ min: MAX_CLIENT_FRAME_BYTES + 1, max: 0xffffffff }).map((n): Step => () => {
    const head = new Uint8Array(5);
    head[0] = FrameType.SendPacket;
    new DataView(head.buffer).setUint32(1, n);
    return Promise.resolve(head);
  }),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat()).map(
    ([b, cut]): Step => (e) => {
      const whole = e(clientFrame(FrameType.SendPacket, new Uint8Array(32), b));
      return Promise.resolve(whole.subarray(0, cut % whole.length));
    },
  ),
  fc.uint8Array({ maxLength: 200 }).map((b): Step => () => Promise.resolve(b)),
);

async function expectPacket(c: RelayTestClient, text: string) {
  while (true) {
    const got = await c.receive(10_000);
    if (dec.decode(got.packet) === text) return;
  }
}

Deno.test("the relay survives generated hostile connections and keeps serving others", async () => {
  const metrics = createRelayMetrics();
  const relay = new IrohRelay({
    enabled: () => true,
    metrics,
    handshakeTimeoutMs: 200,
    // The honest clients only read when checked: no keep-alive pings during the run.
    timings: { pingIntervalMs: 600_000 },
  });
  const stopping = new AbortController();
  const server = await startHttpServer({
    address: "127.0.0.1:0",
    app: new Hono(),
    takeover: relayUpgradeHook(relay, { signal: stopping.signal }),
  });
  const connect = (protocol: "relay" | "websocket", skipHandshake = false) =>
    RelayTestClient.connect({ hostname: "127.0.0.1", port: server.port, protocol, skipHandshake });
  const a = await connect("relay");
  const b = await connect("websocket");
  await a.ready();
  await b.ready();
  let round = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<"relay" | "websocket">("relay", "websocket"),
        fc.boolean(),
        fc.array(steps, { minLength: 1, maxLength: 8 }),
        async (protocol, authenticated, plan) => {
          const hostile = await connect(protocol, true);
          const keys = { ...(await newKeys()), victim: b.publicKey };
          const encode = (f: OutFrame) =>
            protocol === "relay" ? encodeRelayFrames([f]) : hostile.encode(f);
          const valid: Step = async (e, k) => e(await clientInfoFrame(k));
          for (const step of authenticated ? [valid, ...plan] : plan) {
            // The relay may close the connection at any point; writing on is allowed to fail.
            if (!(await hostile.sendRaw(await step(encode, keys)).then(() => true, () => false))) {
              break;
            }
          }
          await hostile.close();
          const text = `round ${round++}`;
          await a.send(b.publicKey, enc.encode(text));
          await expectPacket(b, text);
          await b.send(a.publicKey, enc.encode(text));
          await expectPacket(a, text);
        },
      ),
      { numRuns: SOCKET_RUNS },
    );
    // Every hostile connection is gone again; the honest ones are still registered.
    const deadline = Date.now() + 10_000;
    while (relay.clientCount !== 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(relay.clientCount, 2);
    // The plans got past the handshake often enough to exercise the steady state.
    assert.ok(
      metrics.irohRelayedPackets.get() > 2 * SOCKET_RUNS,
      "hostile clients relayed packets",
    );
  } finally {
    await a.close();
    await b.close();
    stopping.abort();
    relay.close();
    await server.close();
  }
});
