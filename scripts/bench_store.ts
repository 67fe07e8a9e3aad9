// Benchmark of the SQLite store alone (no SMTP, no parsing): N sessions each spool a message and
// deliver it to an INBOX, one after the other, for a while, on the threaded store the server
// uses. It prints deliveries per second, the deliver() latency (from the call to the durable
// answer), the process's CPU per message and the writer and checkpoint threads' share of it, the
// system calls and bytes written per message (/proc/self/io) and the database's size per message.
// It then reads every message back (pages of listMessages, then each body whole, as a FETCH
// BODY[] does) and prints the time per message. The main thread does little here, so the
// figures show the store's own cost and the writer's round trip, which `deno task bench` mixes
// with the main thread's parsing on a shared machine.
//
//   scripts/deno run -A scripts/bench_store.ts [--size 100k] [--sessions 8] [--seconds 8]
//                                              [--page-size 4096]
//
// --page-size creates the database with that page size instead of the store's default (to
// compare page sizes; the line names the page size the database got).
//
// The database lives in a temporary directory under the working directory's file system (not
// /tmp, which may be tmpfs: the fsyncs are the point).

import process from "node:process";
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { startSqliteStore } from "../src/store/sqlite/mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "100k" },
    sessions: { type: "string", default: "8" },
    seconds: { type: "string", default: "8" },
    "page-size": { type: "string" },
  },
});
const size = Number(args.values.size.replace(/k$/i, "")) *
  (/k$/i.test(args.values.size) ? 1024 : 1);
const sessions = Number(args.values.sessions);
const seconds = Number(args.values.seconds);
const pageSize = args.values["page-size"] === undefined ? null : Number(args.values["page-size"]);
if (
  !(size > 0 && sessions > 0 && seconds > 0) ||
  (pageSize !== null &&
    !(pageSize >= 512 && pageSize <= 65536 && (pageSize & (pageSize - 1)) === 0))
) {
  console.error(
    "usage: bench_store.ts [--size 100k] [--sessions 8] [--seconds 8] [--page-size 4096]",
  );
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

/** /proc/self/io: system calls and bytes of this process (all its threads). */
function io(): { syscr: number; syscw: number; wchar: number; writeBytes: number } {
  const text = Deno.readTextFileSync("/proc/self/io");
  const f = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  return { syscr: f("syscr"), syscw: f("syscw"), wchar: f("wchar"), writeBytes: f("write_bytes") };
}

/** CPU time (ms) of each worker thread by name (the store's threads are "worker-N"). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of Deno.readDirSync("/proc/self/task")) {
    try {
      const name = Deno.readTextFileSync(`/proc/self/task/${e.name}/comm`).trim();
      if (!name.startsWith("worker-")) continue;
      const ns = Number(Deno.readTextFileSync(`/proc/self/task/${e.name}/schedstat`).split(" ")[0]);
      out.set(name, (out.get(name) ?? 0) + ns / 1e6);
    } catch {
      // The thread ended between the listing and the read: it has nothing more to count.
    }
  }
  return out;
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0; // no WAL file (yet)
  }
}

const dir = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".bench-store-" });
try {
  if (pageSize !== null) {
    // A page size only takes while the file is empty: set it, then create the file in WAL mode.
    const pre = new DatabaseSync(`${dir}/t.db`);
    pre.exec(`PRAGMA page_size = ${pageSize}`);
    pre.exec("PRAGMA auto_vacuum = INCREMENTAL");
    pre.exec("PRAGMA journal_mode = WAL");
    pre.close();
  }
  const store = await startSqliteStore(`${dir}/t.db`);
  const gotPageSize = store.db.get<{ page_size: number }>("PRAGMA page_size")!.page_size;
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
  const threads0 = threadCpu();
  const io0 = io();
  const db0 = fileSize(`${dir}/t.db`) + fileSize(`${dir}/t.db-wal`);
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
  const io1 = io();
  const threads1 = threadCpu();
  const db1 = fileSize(`${dir}/t.db`) + fileSize(`${dir}/t.db-wal`);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.floor(latencies.length * p)].toFixed(1);
  const n = latencies.length;
  const threadMs = [...threads1].map(([name, ms]) =>
    `${name} ${((ms - (threads0.get(name) ?? 0)) / n).toFixed(3)}`
  ).join(" ");

  // Read back: every message's record (pages of 200), then its whole body, per account.
  const readStarted = performance.now();
  let read = 0;
  for (let i = 0; i < sessions; i++) {
    const inbox = (await store.getMailbox(accounts[i], "INBOX"))!;
    for (let after = 0;;) {
      const page = await store.listMessages(inbox.id, { afterUid: after, limit: 200 });
      if (page.length === 0) break;
      after = page[page.length - 1].uid;
      for (const m of page) {
        const r = (await store.openBody(m.bodyId))!;
        for (let o = 0; o < r.size; o += 65536) await r.read(o, 65536);
        await r.close();
        read++;
      }
    }
  }
  const readMs = performance.now() - readStarted;
  console.log(
    `page ${gotPageSize}: ${n} delivered in ${(wall / 1000).toFixed(1)} s (${
      Math.round(n / wall * 1000)
    }/s), ` +
      `${size} bytes, ${sessions} sessions: deliver p50 ${q(0.5)} ms p90 ${q(0.9)} ms ` +
      `p99 ${q(0.99)} ms, CPU ${((used.user + used.system) / 1000 / n).toFixed(3)} ms/msg ` +
      `(threads ms/msg: ${threadMs}), ` +
      `${(store.writeStats.ops / store.writeStats.batches).toFixed(1)} writes per commit, ` +
      `${store.checkpointStats?.rounds ?? 0} checkpoint rounds, per msg: syscalls ${
        ((io1.syscr - io0.syscr) / n).toFixed(1)
      } read ${((io1.syscw - io0.syscw) / n).toFixed(1)} write, written ${
        Math.round((io1.wchar - io0.wchar) / n)
      } B (to disk ${Math.round((io1.writeBytes - io0.writeBytes) / n)} B), db+wal ${
        Math.round((db1 - db0) / n)
      } B; read back ${read} in ${Math.round(readMs)} ms (${
        (readMs / read * 1000).toFixed(0)
      } µs/msg)`,
  );
  await store.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
