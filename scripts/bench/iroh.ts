// Scenario 7: tern's embedded iroh relay (tern alone: the reference stack runs no relay here).
// Two relay clients on loopback: throughput A → B with 1200-byte packets (QUIC datagram size)
// under a window (B acknowledges through the relay, as QUIC's flow control would, so nothing is
// dropped), over plain HTTP and over HTTPS; server CPU per relayed MB; and the round trip of a
// small packet A → B → A through the relay against the same round trip over a direct loopback
// TCP connection, whose difference is the latency the relay adds.

import { RelayTestClient } from "../../src/iroh/test_client.ts";
import { clientFrame, encodeRelayFrames, FrameType } from "../../src/iroh/frames.ts";
import { percentile, treeCpuMs } from "./util.ts";

export interface IrohResult {
  http: Throughput;
  https: Throughput;
  rttP50Ms: number;
  rttP99Ms: number;
  directRttP50Ms: number;
  /** (relay RTT − direct RTT) / 2 at p50: what the relay adds to one packet's way. */
  addedLatencyMs: number;
  roundTrips: number;
}

export interface Throughput {
  mbPerSec: number;
  packets: number;
  seconds: number;
  /** tern's CPU time per MB relayed. */
  cpuMsPerMb: number;
}

const PACKET = 1200;
const WINDOW = 512;
const ACK_EVERY = 64;
const BATCH = 32;

export async function irohBench(
  t: { listen: Record<string, string>; caPem: string; pid: number },
  opts: { durationMs: number; roundTrips: number; log: (m: string) => void },
): Promise<IrohResult> {
  const hostPort = (name: string) => {
    const a = t.listen[name];
    return {
      hostname: a.slice(0, a.lastIndexOf(":")),
      port: Number(a.slice(a.lastIndexOf(":") + 1)),
    };
  };
  const http = await throughput({ ...hostPort("http") }, t.pid, opts.durationMs);
  opts.log(`http: ${http.mbPerSec.toFixed(1)} MB/s, ${http.cpuMsPerMb.toFixed(1)} ms CPU per MB`);
  const https = await throughput(
    { ...hostPort("https"), caCerts: [t.caPem] },
    t.pid,
    opts.durationMs,
  );
  opts.log(
    `https: ${https.mbPerSec.toFixed(1)} MB/s, ${https.cpuMsPerMb.toFixed(1)} ms CPU per MB`,
  );
  const rtt = await relayRoundTrips(hostPort("http"), opts.roundTrips);
  const direct = await directRoundTrips(opts.roundTrips);
  const result = {
    http,
    https,
    rttP50Ms: percentile(rtt, 50),
    rttP99Ms: percentile(rtt, 99),
    directRttP50Ms: percentile(direct, 50),
    addedLatencyMs: (percentile(rtt, 50) - percentile(direct, 50)) / 2,
    roundTrips: rtt.length,
  };
  opts.log(
    `round trip p50 ${result.rttP50Ms.toFixed(3)} ms (direct ${
      result.directRttP50Ms.toFixed(3)
    } ms), p99 ${result.rttP99Ms.toFixed(3)} ms`,
  );
  return result;
}

async function pair(o: { hostname: string; port: number; caCerts?: string[] }) {
  const a = await RelayTestClient.connect(o);
  const b = await RelayTestClient.connect(o);
  await a.ready();
  await b.ready();
  return [a, b];
}

async function throughput(
  o: { hostname: string; port: number; caCerts?: string[] },
  pid: number,
  durationMs: number,
): Promise<Throughput> {
  const [a, b] = await pair(o);
  const payload = new Uint8Array(PACKET).fill(7);
  const batch = encodeRelayFrames(
    Array.from({ length: BATCH }, () => clientFrame(FrameType.SendPacket, b.publicKey, payload)),
  );
  const ack = encodeRelayFrames([
    clientFrame(FrameType.SendPacket, a.publicKey, new Uint8Array(8)),
  ]);
  let sent = 0, acked = 0, received = 0;
  let stop = false;
  const window: { wake: (() => void) | null } = { wake: null };
  const receiver = (async () => {
    while (!stop) {
      const got = await b.receive(5000).catch(() => null);
      if (!got) break;
      received++;
      if (received % ACK_EVERY === 0) await b.sendRaw(ack);
    }
  })();
  const acks = (async () => {
    while (!stop) {
      const got = await a.receive(5000).catch(() => null);
      if (!got) break;
      acked += ACK_EVERY;
      const w = window.wake;
      window.wake = null;
      w?.();
    }
  })();
  const cpu0 = treeCpuMs([pid]);
  const t0 = performance.now();
  const r0 = received;
  while (performance.now() - t0 < durationMs) {
    if (sent - acked >= WINDOW) {
      await new Promise<void>((r) => {
        window.wake = r;
        setTimeout(r, 100);
      });
      continue;
    }
    await a.sendRaw(batch);
    sent += BATCH;
  }
  const seconds = (performance.now() - t0) / 1000;
  const packets = received - r0;
  const cpuMs = treeCpuMs([pid]) - cpu0;
  stop = true;
  await a.close();
  await b.close();
  await Promise.allSettled([receiver, acks]);
  const mb = (packets * PACKET) / 1e6;
  return { mbPerSec: mb / seconds, packets, seconds, cpuMsPerMb: cpuMs / mb };
}

async function relayRoundTrips(o: { hostname: string; port: number }, n: number) {
  const [a, b] = await pair(o);
  const echo = (async () => {
    for (let i = 0; i < n + 10; i++) {
      const got = await b.receive(5000).catch(() => null);
      if (!got) return;
      await b.send(a.publicKey, got.packet);
    }
  })();
  const samples: number[] = [];
  const payload = new Uint8Array(64);
  for (let i = 0; i < n + 10; i++) {
    const t0 = performance.now();
    await a.send(b.publicKey, payload);
    await a.receive(5000);
    if (i >= 10) samples.push(performance.now() - t0); // the first ones warm up
  }
  await echo;
  await a.close();
  await b.close();
  return samples;
}

/** The same ping-pong over one direct loopback TCP connection (no relay). */
async function directRoundTrips(n: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(64);
    while (true) {
      const got = await conn.read(buf).catch(() => null);
      if (!got) break;
      await conn.write(buf.subarray(0, got));
    }
    conn.close();
  })();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const samples: number[] = [];
  const buf = new Uint8Array(64);
  for (let i = 0; i < n + 10; i++) {
    const t0 = performance.now();
    await client.write(buf);
    let got = 0;
    while (got < 64) got += (await client.read(buf.subarray(got))) ?? 64;
    if (i >= 10) samples.push(performance.now() - t0);
  }
  client.close();
  await server;
  listener.close();
  return samples;
}
