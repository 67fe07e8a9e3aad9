// Benchmark of the SQLite store alone (no SMTP, no parsing): N sessions each spool a message and
// deliver it to an INBOX, one after the other, for a while, on the threaded store the server
// uses. It prints deliveries per second, the deliver() latency (from the call to the durable
// answer) and the process's CPU per message. The main thread does little here, so the figures
// show the store's own cost and the writer's round trip, which `deno task bench` mixes with the
// main thread's parsing on a shared machine.
//
//   scripts/deno run -A scripts/bench_store.ts [--size 100k] [--sessions 8] [--seconds 8]
//
// The database lives in a temporary directory under the working directory's file system (not
// /tmp, which may be tmpfs: the fsyncs are the point).

import process from "node:process";
import { parseArgs } from "node:util";
import { startSqliteStore } from "../src/store/sqlite/mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "100k" },
    sessions: { type: "string", default: "8" },
    seconds: { type: "string", default: "8" },
  },
});
const size = Number(args.values.size.replace(/k$/i, "")) *
  (/k$/i.test(args.values.size) ? 1024 : 1);
const sessions = Number(args.values.sessions);
const seconds = Number(args.values.seconds);
if (!(size > 0 && sessions > 0 && seconds > 0)) {
  console.error("usage: bench_store.ts [--size 100k] [--sessions 8] [--seconds 8]");
  Deno.exit(2);
}

const enc = new TextEncoder();
/** Base64-like lines, as an encrypted message's body is. */
function message(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const line = enc.encode("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n");
  for (let o = 0; o < n; o += line.length) out.set(line.subarray(0, n - o), o);
  return out;
}

const dir = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".bench-store-" });
try {
  const store = await startSqliteStore(`${dir}/t.db`);
  const accounts: number[] = [];
  for (let i = 0; i < sessions; i++) {
    const { account } = await store.createAccount({
      address: `u${i}@bench.test`,
      passwordHash: "x",
      now: Date.now(),
    });
    accounts.push(account.id);
  }
  const body = message(size);
  const head = enc.encode("Received: from client by relay\r\nFrom: <u0@bench.test>\r\n\r\n");
  const structure = new Uint8Array(120);
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(accounts.map(async (accountId) => {
    while (performance.now() < until) {
      const spool = store.createSpool();
      for (let o = 0; o < size; o += 16384) await spool.write(body.subarray(o, o + 16384));
      const spooled = await spool.finish();
      const t = performance.now();
      const [o] = await store.deliver({
        head,
        skip: 0,
        body: spooled,
        structure,
        internalDate: Date.now(),
        targets: [{ accountId, mailboxName: "INBOX" }],
        defaultQuotaBytes: 1e15,
      });
      latencies.push(performance.now() - t);
      await spool.discard();
      if (!o.ok) throw new Error(`delivery failed: ${o.code}`);
    }
  }));
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.floor(latencies.length * p)].toFixed(1);
  const n = latencies.length;
  console.log(
    `${n} delivered in ${(wall / 1000).toFixed(1)} s (${Math.round(n / wall * 1000)}/s), ` +
      `${size} bytes, ${sessions} sessions: deliver p50 ${q(0.5)} ms p90 ${q(0.9)} ms ` +
      `p99 ${q(0.99)} ms, CPU ${((used.user + used.system) / 1000 / n).toFixed(2)} ms/msg, ` +
      `${(store.writeStats.ops / store.writeStats.batches).toFixed(1)} writes per commit, ` +
      `${store.checkpointStats?.rounds ?? 0} checkpoint rounds`,
  );
  await store.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
