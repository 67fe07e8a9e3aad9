// Benchmark of the PostgreSQL store and of several instances (README "Growing beyond one
// machine"): delivered messages per second for one instance on SQLite, one on PostgreSQL and two
// on PostgreSQL (the load split between them), and the cross-instance latency from the 250 on
// instance A to the EXISTS an IDLE session on instance B receives.
//
//   scripts/deno run -A scripts/bench_postgres.ts [--duration SECONDS] [--sessions N]
//
// PostgreSQL is Debian's, started here in a temporary directory on a loopback port with fsync
// and synchronous commit on (as in production; the tests turn them off). Everything runs on this
// machine: the database shares the CPU with the instances and the load generator, so the figures
// compare the configurations with each other, not with a separate database host.

import { parseArgs } from "node:util";
import { startPostgres } from "../tests/support/postgres.ts";
import { deliveryLatency, submission } from "./bench/scenarios.ts";
import type { LatencyResult, SubmissionResult, Target } from "./bench/scenarios.ts";
import { messageTemplate } from "./bench/messages.ts";
import { jitUsers, startTernBench, type TernBench } from "./bench/tern.ts";
import { treeCpuMs, treeMem, treeSyscalls } from "./bench/util.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "10" },
    sessions: { type: "string", default: "8" },
    latency: { type: "string", default: "200" },
  },
});
const durationMs = Number(flags.duration) * 1000;
const sessions = Number(flags.sessions);

/** A target that submits on `smtp` and reads on `imap` (two instances of one relay, or one). */
function target(label: string, smtp: TernBench, imap: TernBench): Target {
  const pids = [...new Set([smtp.pid, imap.pid])];
  return {
    key: "tern",
    label,
    smtpPort: smtp.port("submissions"),
    imapPort: imap.port("imaps"),
    caPem: imap.caPem,
    addr: (u) => `${u}@[127.0.0.1]`,
    ensureUsers: jitUsers(imap.port("imaps"), imap.caPem),
    imapMem: () => treeMem([imap.pid]),
    totalMem: () => treeMem(pids),
    cpuMs: () => treeCpuMs(pids),
    syscalls: () => treeSyscalls(pids),
  };
}

const tpl = await messageTemplate(4096);
const load = (t: Target, prefix: string, n = sessions) =>
  submission(t, tpl, { sessions: n, durationMs, drainTimeoutMs: 20_000, rcptPrefix: prefix });
const rows: string[] = [];
const show = (name: string, r: SubmissionResult[]) => {
  const delivered = r.reduce((n, x) => n + x.deliveredPerSec, 0);
  const accepted = r.reduce((n, x) => n + x.acceptedPerSec, 0);
  const p50 = Math.max(...r.map((x) => x.p50Ms));
  const p99 = Math.max(...r.map((x) => x.p99Ms));
  const lost = r.reduce((n, x) => n + (x.accepted - x.delivered), 0);
  const line = `${name.padEnd(28)} ${delivered.toFixed(0).padStart(6)} delivered/s  ${
    accepted.toFixed(0).padStart(6)
  } accepted/s  250 p50 ${p50.toFixed(1)} ms p99 ${p99.toFixed(1)} ms  not delivered ${lost}`;
  rows.push(line);
  console.log(line);
};

const pg = await startPostgres({ durable: true });
const started: TernBench[] = [];
try {
  // One instance on SQLite.
  const sqlite = await startTernBench();
  started.push(sqlite);
  show("1 instance, SQLite", [await load(target("sqlite", sqlite, sqlite), "rs")]);
  await sqlite.stop();

  // One instance on PostgreSQL.
  const url1 = await pg.createDatabase("bench_one");
  const one = await startTernBench({ extraToml: `store = "postgres"\ndatabase_url = "${url1}"` });
  started.push(one);
  show("1 instance, PostgreSQL", [await load(target("pg1", one, one), "rp")]);
  await one.stop();

  // Two instances on one PostgreSQL, sharing A's certificate; each takes half the sessions.
  const url2 = await pg.createDatabase("bench_two");
  const a = await startTernBench({ extraToml: `store = "postgres"\ndatabase_url = "${url2}"` });
  started.push(a);
  const tls = `${a.dataDir}/tls`;
  const b = await startTernBench({
    extraToml: [
      `store = "postgres"`,
      `database_url = "${url2}"`,
      `tls_cert = "${tls}/selfsigned-cert.pem"`,
      `tls_key = "${tls}/selfsigned-key.pem"`,
    ].join("\n"),
  });
  started.push(b);
  const bOnA: TernBench = { ...b, caPem: a.caPem };
  show(
    "2 instances, PostgreSQL",
    await Promise.all([
      load(target("pgA", a, a), "ra", Math.ceil(sessions / 2)),
      load(target("pgB", bOnA, bOnA), "rb", Math.floor(sessions / 2)),
    ]),
  );
  // Cross-instance: submitted on A, IDLE on B.
  const lat: LatencyResult = await deliveryLatency(target("A->B", a, bOnA), tpl, {
    recipients: Number(flags.latency),
    timeoutMs: 30_000,
  });
  const line = `${"250 on A -> EXISTS on B".padEnd(28)} p50 ${lat.p50Ms.toFixed(1)} ms  p99 ${
    lat.p99Ms.toFixed(1)
  } ms  max ${lat.maxMs.toFixed(1)} ms  (${lat.sent} messages, ${lat.lost} lost${
    lat.firstError ? `, ${lat.firstError}` : ""
  })`;
  rows.push(line);
  console.log(line);
  // The same on one instance, for comparison.
  const same = await deliveryLatency(target("A->A", a, a), tpl, {
    recipients: Number(flags.latency),
    timeoutMs: 30_000,
  });
  const line2 = `${"250 on A -> EXISTS on A".padEnd(28)} p50 ${same.p50Ms.toFixed(1)} ms  p99 ${
    same.p99Ms.toFixed(1)
  } ms  max ${same.maxMs.toFixed(1)} ms  (${same.sent} messages, ${same.lost} lost)`;
  rows.push(line2);
  console.log(line2);
  console.log(
    `\n${sessions} submission sessions (split over the instances) for ${
      durationMs / 1000
    } s, 4 KiB messages, ${navigator.hardwareConcurrency} cores, one machine`,
  );
} finally {
  for (const t of started) await t.stop();
  await pg.stop();
}
