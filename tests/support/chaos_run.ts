// One disconnect-chaos run against a running relay, for the chaos test (which asserts on the
// report) and the benchmark (which prints it): accounts and a 20 MB message, a warm-up, the
// baseline, the cycles beside a bystander, the settle, and what the relay kept and printed.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { TernProcess } from "./tern_process.ts";
import { SmtpTestClient } from "./smtp_client.ts";
import { ImapTestClient } from "./imap_client.ts";
import { armoredPayload, pgpMime } from "./messages.ts";
import { type ChaosResult, runChaos } from "./chaos.ts";
import { type ChaosTarget, type Cred, Ledger } from "./chaos_scenarios.ts";
import { Bystander, type BystanderReport, countMessageIds } from "./bystander.ts";
import { fdCount, isAlive, mib, rssBytes, tcpSocketCount, tcpSockets } from "./proc_status.ts";

export const CHAOS_TOML = [
  "turn_port = 0",
  'max_message_size = "32M"',
  'max_mailbox_size = "4G"',
  "max_user_send_per_minute = 1000000",
  "max_user_send_burst_size = 1000000",
  "jit_max_per_ip_per_hour = 0",
].join("\n");

/** Base64 text of random bytes: incompressible (COMPRESS gains nothing), valid in any body. */
function randomText(bytes: number): string {
  const raw = new Uint8Array(Math.ceil(bytes * 3 / 4));
  for (let off = 0; off < raw.length; off += 65536) {
    crypto.getRandomValues(raw.subarray(off, Math.min(raw.length, off + 65536)));
  }
  let bin = "";
  for (let i = 0; i < raw.length; i += 8192) {
    bin += String.fromCharCode(...raw.subarray(i, i + 8192));
  }
  return btoa(bin).replace(/.{76}/g, "$&\n").slice(0, bytes);
}

const user = (local: string): Cred => ({
  address: `${local}@[127.0.0.1]`,
  password: "password-123456",
});

/** Accounts (created just in time by a first login), the 20 MB message and the payloads. */
export async function prepareChaos(tern: TernProcess): Promise<ChaosTarget> {
  const senders = [user("sendr0001"), user("sendr0002")];
  const sinks = [user("sinkx0001"), user("sinkx0002"), user("sinkx0003"), user("sinkx0004")];
  const bigUser = user("bigfetch1");
  const imapAddr = { hostname: "127.0.0.1", port: tern.port("imaps") };
  for (const u of [...senders, ...sinks, bigUser, user("bystand01")]) {
    const { client } = await ImapTestClient.connect(imapAddr, { tls: true, caPem: tern.caPem });
    assert.ok((await client.login(u.address, u.password)).ok, `first login of ${u.address}`);
    client.close();
  }
  const [small, medium, large, huge] = await Promise.all([
    armoredPayload("chaos"),
    armoredPayload(randomText(450_000)),
    armoredPayload(randomText(1_200_000)),
    armoredPayload(randomText(15_000_000)),
  ]);
  const smtp = await SmtpTestClient.connect(
    { hostname: "127.0.0.1", port: tern.port("submissions") },
    { tls: true, caPem: tern.caPem },
  );
  await smtp.reply();
  await smtp.cmd("EHLO chaos.test");
  assert.equal((await smtp.login(bigUser.address, bigUser.password)).code, 235);
  const bigMessage = pgpMime(bigUser.address, bigUser.address, huge);
  const sent = await smtp.sendMail(bigUser.address, [bigUser.address], bigMessage);
  assert.equal(sent.code, 250, sent.text);
  smtp.close();
  const { client } = await ImapTestClient.connect(imapAddr, { tls: true, caPem: tern.caPem });
  assert.ok((await client.login(bigUser.address, bigUser.password)).ok);
  await client.cmd("SELECT INBOX");
  const f = await client.cmd("FETCH 1 (UID RFC822.SIZE)");
  client.close();
  const m = /UID (\d+) RFC822\.SIZE (\d+)/.exec(f.untagged.join("\n"));
  assert.ok(m, f.untagged.join("\n"));
  const size = Number(m[2]);
  assert.ok(size > 20_000_000, `the big message has ${size} bytes`);
  return {
    ports: {
      smtp: tern.port("smtp"),
      submission: tern.port("submission"),
      submissions: tern.port("submissions"),
      imap: tern.port("imap"),
      imaps: tern.port("imaps"),
      https: tern.port("https"),
    },
    caPem: tern.caPem,
    senders,
    sinks,
    big: { ...bigUser, uid: Number(m[1]), size },
    payloads: { small, medium, large },
  };
}

/** Waits until the process holds no more TCP sockets than `target` (deadline), returns the count. */
export async function settleSockets(pid: number, target: number, ms = 30_000): Promise<number> {
  const deadline = Date.now() + ms;
  let n = tcpSocketCount(pid);
  while (n > target && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    n = tcpSocketCount(pid);
  }
  return n;
}

/**
 * The smallest RSS and JavaScript heap in use (from /metrics; null without a metrics listener)
 * over a few samples a second apart: what stays, not a passing peak.
 */
async function settledMemory(
  tern: TernProcess,
  samples = 5,
): Promise<{ rss: number; heap: number | null }> {
  const at = tern.listen.metrics;
  let rss = Infinity;
  let heap = Infinity;
  for (let i = 0; i < samples; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss = Math.min(rss, rssBytes(tern.pid));
    if (!at) continue;
    const text = await (await fetch(`http://${at}/metrics`)).text();
    const m = /^tern_js_heap_used_bytes (\d+(?:\.\d+)?(?:e\+?\d+)?)$/m.exec(text);
    if (m) heap = Math.min(heap, Number(m[1]));
  }
  return { rss, heap: Number.isFinite(heap) ? heap : null };
}

/** Every accepted message once, none cut before its end, none twice. */
export async function checkLedger(tern: TernProcess, target: ChaosTarget, ledger: Ledger) {
  const accounts = new Map<string, Cred>(
    [...target.sinks, user("bystand01")].map((c) => [c.address, c]),
  );
  const stored = new Map<string, Map<string, number>>();
  for (const [address, cred] of accounts) {
    stored.set(
      address,
      await countMessageIds({ port: tern.port("imaps"), caPem: tern.caPem, user: cred }),
    );
  }
  const problems: string[] = [];
  let present = 0;
  for (const [id, e] of ledger.entries) {
    const n = stored.get(e.account)?.get(id) ?? 0;
    present += n ? 1 : 0;
    const ok = e.fate === "accepted" ? n === 1 : e.fate === "absent" ? n === 0 : n <= 1;
    if (!ok) problems.push(`${id} (${e.fate}: ${e.how}) stored ${n} times`);
  }
  for (const [address, ids] of stored) {
    for (const [id, n] of ids) {
      if (!ledger.entries.has(id)) problems.push(`${id} in ${address} was never offered (${n}×)`);
    }
  }
  return { problems, present };
}

/** Spool files and body files no row names, after the process stopped. */
export async function leftoverFiles(dataDir: string): Promise<string[]> {
  const left: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (/(^|\/)tmp\//.test(path.slice(dataDir.length)) || /\.tmp$/.test(e.name)) {
        left.push(path);
      }
    }
  };
  await walk(dataDir);
  // A store with body files beside the database names each of them in body_files.
  const bodies = `${dataDir}/bodies`;
  const db = new DatabaseSync(`${dataDir}/tern.db`, { readOnly: true });
  try {
    const hasTable = db.prepare(
      "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'body_files'",
    ).get();
    if (hasTable) {
      const named = new Set(
        (db.prepare("SELECT name FROM body_files").all() as { name: string }[]).map((r) => r.name),
      );
      try {
        for await (const e of Deno.readDir(bodies)) {
          // Body files have 32 hex digits as names (other files there, like the space
          // reserve, are the store's own).
          if (e.isFile && /^[0-9a-f]{32}$/.test(e.name) && !named.has(e.name)) {
            left.push(`${bodies}/${e.name}`);
          }
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  } finally {
    db.close();
  }
  return left;
}

export interface ChaosRunReport {
  seed: number;
  warmup: ChaosResult;
  result: ChaosResult;
  bystander: BystanderReport;
  /** The process was gone at some point (the first sample that saw it). */
  died: boolean;
  rss: { base: number; peak: number; after: number };
  /** The JavaScript heap in use (from /metrics; null without a metrics listener). */
  heap: { base: number; after: number } | null;
  fds: { base: number; after: number };
  sockets: { base: number; after: number };
  /** Sockets still open after the settle that were not there before, with their cycles. */
  leftover: string[];
  ledger: {
    accepted: number;
    unknown: number;
    absent: number;
    present: number;
    problems: string[];
  };
  /** What the relay printed to stderr from the warm-up's end to the check's end. */
  printed: string;
}

/**
 * Runs warm-up cycles, takes the baseline, runs `cycles` beside a bystander, lets the relay
 * settle and checks what it stored. Stops early (died: true) if the process is gone.
 */
export async function chaosRun(
  tern: TernProcess,
  options: { seed: number; cycles: number; concurrency: number; warmup: number; only?: string[] },
): Promise<ChaosRunReport> {
  const { seed, concurrency } = options;
  const pid = tern.pid;
  const target = await prepareChaos(tern);
  const ledger = new Ledger();
  const warmup = await runChaos(target, ledger, {
    seed,
    cycles: options.warmup,
    concurrency,
    only: options.only,
    firstCycle: 1_000_000,
  });
  const report: ChaosRunReport = {
    seed,
    warmup,
    result: warmup,
    bystander: { imapCommands: 0, submissions: 0, latencies: [], error: null },
    died: !isAlive(pid),
    rss: { base: 0, peak: 0, after: 0 },
    heap: null,
    fds: { base: 0, after: 0 },
    sockets: { base: 0, after: 0 },
    leftover: [],
    ledger: { accepted: 0, unknown: 0, absent: 0, present: 0, problems: [] },
    printed: "",
  };
  if (report.died) return report;
  report.sockets.base = await settleSockets(pid, Object.keys(tern.listen).length);
  const before = new Set(tcpSockets(pid).map((s) => `${s.local} ${s.remote}`));
  const memBefore = await settledMemory(tern, 3);
  report.rss.base = memBefore.rss;
  report.fds.base = fdCount(pid);
  const stderrBefore = tern.stderr().length;

  const bystander = await Bystander.start({
    ports: { imaps: tern.port("imaps"), submissions: tern.port("submissions") },
    caPem: tern.caPem,
    user: user("bystand01"),
    ledger,
    localAddress: "127.0.0.2",
    payload: target.payloads.small,
  });
  const sampler = setInterval(() => {
    if (!isAlive(pid)) report.died = true;
    else report.rss.peak = Math.max(report.rss.peak, rssBytes(pid));
  }, 250);
  try {
    report.result = await runChaos(target, ledger, {
      seed,
      cycles: options.cycles,
      concurrency,
      only: options.only,
    });
  } finally {
    clearInterval(sampler);
  }
  report.bystander = await bystander.stop();
  report.died ||= !isAlive(pid);
  if (report.died) return report;

  report.sockets.after = await settleSockets(pid, report.sockets.base);
  for (const s of tcpSockets(pid)) {
    if (before.has(`${s.local} ${s.remote}`)) continue;
    const ip = s.remote.slice(0, s.remote.lastIndexOf(":"));
    const cycles = report.result.byAddress.get(ip) ?? report.warmup.byAddress.get(ip) ?? [];
    report.leftover.push(`${s.state} ${s.local} <- ${s.remote}: ${cycles.join("; ") || "?"}`);
  }
  const after = await settledMemory(tern);
  report.rss.after = after.rss;
  if (memBefore.heap !== null && after.heap !== null) {
    report.heap = { base: memBefore.heap, after: after.heap };
  }
  report.fds.after = fdCount(pid);
  const { problems, present } = await checkLedger(tern, target, ledger);
  report.ledger = {
    accepted: ledger.count("accepted"),
    unknown: ledger.count("unknown"),
    absent: ledger.count("absent"),
    present,
    problems,
  };
  report.printed = tern.stderr().slice(stderrBefore);
  return report;
}

/** The figures of a run, for the test's output and the benchmark. */
export function summary(r: ChaosRunReport): string {
  const by = r.bystander;
  const lat = [...by.latencies].sort((a, b) => a - b);
  const pct = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.ceil(p / 100 * lat.length) - 1)] : 0;
  return [
    `chaos: seed ${r.seed}; ${describe(r.result)}`,
    `chaos bystander: ${by.imapCommands} IMAP commands, ${by.submissions} submissions, latency ` +
    `p50 ${pct(50).toFixed(0)} ms, p99 ${pct(99).toFixed(0)} ms, worst ${pct(100).toFixed(0)} ms`,
    `chaos memory: RSS baseline ${mib(r.rss.base)} MiB, peak ${mib(r.rss.peak)} MiB, after ${
      mib(r.rss.after)
    } MiB (growth ${mib(r.rss.after - r.rss.base)} MiB); fds ${r.fds.base} -> ${r.fds.after}, ` +
    `TCP sockets ${r.sockets.base} -> ${r.sockets.after}` +
    (r.heap ? `; JS heap in use ${mib(r.heap.base)} -> ${mib(r.heap.after)} MiB` : ""),
    `chaos ledger: ${r.ledger.accepted} accepted, ${r.ledger.unknown} unknown, ${r.ledger.absent} ` +
    `cut before their end; ${r.ledger.present} stored`,
  ].join("\n");
}

export function describe(r: ChaosResult): string {
  const rows = [...r.byScenario].map(([name, s]) =>
    `  ${name.padEnd(26)} ${String(s.runs).padStart(5)} runs, ${String(s.cut).padStart(5)} cut, ${
      String(s.completed).padStart(4)
    } completed`
  );
  return [
    `${r.cycles} cycles in ${(r.ms / 1000).toFixed(1)} s (${
      (r.cycles / (r.ms / 1000)).toFixed(1)
    }/s); cuts: ${r.byStyle.fin} FIN, ${r.byStyle.close} close, ${r.byStyle.rst} RST`,
    ...rows,
  ].join("\n");
}
