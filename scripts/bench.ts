// Benchmark: the same load against tern and the reference stack (Postfix + Dovecot,
// scripts/refstack) in one run; prints both side by side and the ratio.
//
//   scripts/deno task bench                  # default run (< 6 min)
//   scripts/deno task bench --quick          # short durations, 500 idle connections (< 2 min)
//   scripts/deno task bench --idle-conns 10000   # the full IDLE figure
//   scripts/deno task bench --save-baseline  # also write scripts/bench_baseline.json
//   scripts/deno task bench --no-refstack    # tern alone
//   scripts/deno task bench --only scale     # big mailboxes (1 000 / 10 000 / 50 000 messages)
//
// Results go to scripts/bench_results.json; tern figures more than 20% worse than
// scripts/bench_baseline.json are listed at the end. Needs root for the reference stack; without it
// (or when it cannot start) tern is measured alone. Every process and directory the run creates is
// removed at the end, also on Ctrl-C.

import { parseArgs } from "node:util";
import { parseMessage } from "../src/mime/mod.ts";
import { deltachatLatency, type DeltaChatResult } from "./bench/deltachat.ts";
import { type SignupResult, signupStorm } from "./bench/signup.ts";
import { irohBench, type IrohResult } from "./bench/iroh.ts";
import { Imap } from "./bench/clients.ts";
import { memoryBench } from "./bench/memory.ts";
import { type GateCase, gateTable } from "./bench/gate.ts";
import { messageTemplate } from "./bench/messages.ts";
import type { MessageTemplate } from "./bench/messages.ts";
import { startRefStack } from "./bench/refstack.ts";
import type { RefStack } from "./bench/refstack.ts";
import { METRICS, regressions, scaleLabels, table } from "./bench/report.ts";
import type { Values } from "./bench/report.ts";
import {
  deliveryLatency,
  fetchThroughput,
  idleScale,
  PASS,
  preloginFlood,
  submission,
} from "./bench/scenarios.ts";
import type {
  FetchResult,
  IdleResult,
  LatencyResult,
  SubmissionResult,
  Target,
} from "./bench/scenarios.ts";
import { startTernBench, waitImapsGreeting } from "./bench/tern.ts";
import { type ScaleResult, scaleRun } from "./bench/scale.ts";
import type { TernBench } from "./bench/tern.ts";
import { median, pool, raiseNofile, sleep, treeCpuMs, treeMem } from "./bench/util.ts";

const HERE = new URL(".", import.meta.url).pathname;
const RESULTS = `${HERE}bench_results.json`;
const BASELINE = `${HERE}bench_baseline.json`;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    "save-baseline": { type: "boolean", default: false },
    "no-refstack": { type: "boolean", default: false },
    "idle-conns": { type: "string" },
    duration: { type: "string" },
    "idle-wait": { type: "string" },
    only: { type: "string" },
    "scale-sizes": { type: "string" },
    "raise-inotify": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(
    "usage: deno task bench [--quick] [--save-baseline] [--no-refstack] [--idle-conns N]\n" +
      "                       [--duration SECONDS] [--idle-wait SECONDS] [--raise-inotify]\n" +
      "                       [--only start,parse,submit,latency,signup,idle,prelogin,fetch,\n" +
      "                               deltachat,gate,iroh,memory,scale]\n" +
      "                       [--scale-sizes 1000,10000,50000]\n" +
      "scale (big mailboxes) runs only when named in --only.\n" +
      "--raise-inotify lifts fs.inotify.max_user_instances for the run (restored afterwards):\n" +
      "with the default 128, Dovecot sessions beyond the 128th fall back to polling and are not\n" +
      "hibernated.",
  );
  Deno.exit(0);
}

const quick = flags.quick!;
const SCENARIOS = [
  "start",
  "parse",
  "submit",
  "latency",
  "signup",
  "idle",
  "prelogin",
  "fetch",
  "deltachat",
  "gate",
  "iroh",
  "memory",
  "scale",
];
// The scale scenario fills 50 000 messages per server: only when asked for.
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== "scale");
const only = new Set(flags.only ? flags.only.split(",").map((x) => x.trim()) : DEFAULT_SCENARIOS);
for (const o of only) {
  if (!SCENARIOS.includes(o)) {
    console.error(`--only: unknown scenario "${o}" (known: ${SCENARIOS.join(", ")})`);
    Deno.exit(2);
  }
}
const opts = {
  quick,
  sessions: 8,
  durationMs: Number(flags.duration ?? (quick ? 3 : 10)) * 1000,
  drainTimeoutMs: quick ? 15_000 : 30_000,
  latencyRecipients: 50,
  // Issue 21's sign-up storm: 1000 new clients, 50 in flight.
  signupClients: quick ? 300 : 1000,
  signupInFlight: 50,
  idleConns: Number(flags["idle-conns"] ?? (quick ? 500 : 2000)),
  idlePerUser: 8,
  preloginConns: 200,
  preloginBytes: 1 << 20,
  // Dovecot moves IDLE sessions to its imap-hibernate process after 30 s idle.
  idleWaitMs: Number(flags["idle-wait"] ?? (quick ? 0 : 35)) * 1000,
  fetch2kMessages: quick ? 500 : 2000,
  fetch100kMessages: quick ? 100 : 500,
  fetchRuns: 5,
  restarts: quick ? 1 : 3,
  deltachatMessages: quick ? 4 : 10,
  scaleSizes: (flags["scale-sizes"] ?? (quick ? "500,2000,5000" : "1000,10000,50000"))
    .split(",").map(Number),
  irohRoundTrips: quick ? 500 : 2000,
  memory: {
    appenders: quick ? 10 : 50,
    fetchers: quick ? 10 : 50,
    fetchersPerUser: 5,
    messageBytes: quick ? 10_000_000 : 30_000_000,
    dataConnections: 20,
    dataBytes: 5 * 1024 * 1024,
    worstBytes: quick ? 10_000_000 : 30_000_000,
  },
  only: SCENARIOS.filter((x) => only.has(x)),
};

const log = (msg: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const mb = (kb: number) => kb / 1024;

// ---- cleanup, also on Ctrl-C -----------------------------------------------------------------
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;
let interrupted = false;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log(`cleanup: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    interrupted = true;
    log(`${sig}: cleaning up`);
    cleanup().finally(() => Deno.exit(130));
  });
}

// ---- targets -------------------------------------------------------------------------------------
function ternTarget(t: TernBench): Target {
  const known = new Set<string>();
  return {
    key: "tern",
    label: "tern",
    smtpPort: t.port("submissions"),
    imapPort: t.port("imaps"),
    caPem: t.caPem,
    addr: (u) => `${u}@[127.0.0.1]`,
    async ensureUsers(users) {
      // accounts are created on first login (JIT); later logins hit tern's verified-password cache
      const todo = [...new Set(users)].filter((u) => !known.has(u));
      await pool(todo, 8, async (u) => {
        const c = await Imap.connect(t.port("imaps"), t.caPem);
        try {
          await c.login(`${u}@[127.0.0.1]`, PASS);
          await c.cmd("LOGOUT");
        } finally {
          c.close();
        }
        known.add(u);
      });
    },
    imapMem: () => treeMem([t.pid]),
    totalMem: () => treeMem([t.pid]),
    cpuMs: () => treeCpuMs([t.pid]),
    // Everything in the data directory: the database (with WAL) and any body files.
    storageBytes: () => dirBytes(t.dataDir),
    async maintain() {
      // As the hourly schedule would, from a second process beside the running server.
      for (const task of ["free-bodies", "reclaim-space"]) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "main.ts", "tasks", "run", task, "--config", `${t.dir}/tern.toml`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout).trim();
        if (!out.success) {
          throw new Error(`tern tasks run ${task}: ${new TextDecoder().decode(out.stderr)}`);
        }
        log(`  tern: ${text}`);
      }
    },
  };
}

/** Bytes of the files under `path`, recursively (0 when it does not exist). */
function dirBytes(path: string): number {
  let total = 0;
  try {
    for (const e of Deno.readDirSync(path)) {
      const p = `${path}/${e.name}`;
      if (e.isDirectory) total += dirBytes(p);
      else if (e.isFile) total += Deno.statSync(p).size;
    }
  } catch {
    // gone or unreadable
  }
  return total;
}

function refTarget(r: RefStack): Target {
  const known = new Set<string>();
  return {
    key: "ref",
    label: "postfix+dovecot",
    smtpPort: r.submissionsPort,
    imapPort: r.imapsPort,
    caPem: r.caPem,
    addr: (u) => `${u}@${r.domain}`,
    async ensureUsers(users) {
      const todo = [...new Set(users)].filter((u) => !known.has(u));
      await r.addUsers(todo.map((u) => ({ user: `${u}@${r.domain}`, pass: PASS })));
      for (const u of todo) known.add(u);
    },
    imapMem: () => r.dovecotMem(),
    totalMem: () => r.totalMem(),
    cpuMs: () => treeCpuMs([r.dovecotPid() ?? -1, r.postfixPid() ?? -1]),
    // The user's Maildir (gzip-compressed messages, as chatmail stores them) with its indexes.
    storageBytes: (user) => dirBytes(`${r.dir}/mail/${user}@${r.domain}`),
  };
}

// ---- the run ---------------------------------------------------------------------------------------
interface Raw {
  submission2k?: SubmissionResult;
  submission100k?: SubmissionResult;
  latency?: LatencyResult;
  signup?: SignupResult;
  idle?: IdleResult;
  fetch2k?: FetchResult;
  fetch100k?: FetchResult;
  deltachat?: DeltaChatResult;
  scale?: ScaleResult;
  iroh?: IrohResult;
  [k: string]: unknown;
}

async function main() {
  const started = Date.now();
  const notes: string[] = [];
  const nofile = await raiseNofile(Math.max(65536, opts.idleConns * 2 + 4096));
  if (nofile < opts.idleConns + 1024) {
    notes.push(`open-file limit ${nofile}: idle connections capped`);
    opts.idleConns = Math.max(100, nofile - 1024);
  }
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  log(
    `${quick ? "quick" : "default"} run: ${opts.durationMs / 1000} s per submission size, ` +
      `${opts.idleConns} idle connections; ${navigator.hardwareConcurrency} CPUs, load ${load}`,
  );

  const tv: Values = {}, rv: Values = {};
  const raw: { tern: Raw; ref: Raw } = { tern: {}, ref: {} };

  // 7. the gate's cost on worst-case messages (in-process, no server needed)
  if (only.has("gate")) {
    raw.tern.gate = await gateRuns();
    if (only.size === 1) {
      await Deno.writeTextFile(
        RESULTS,
        JSON.stringify({ date: new Date().toISOString(), gate: raw.tern.gate }, null, 2) + "\n",
      );
      console.log(`results: ${RESULTS}`);
      return;
    }
  }

  // 5. cold start (before anything else runs)
  if (only.has("start")) await coldStart(tv, raw.tern);
  // MIME parsing speed (tern only; moved here from a time limit in parse_message_test.ts)
  if (only.has("parse")) parseSpeed(tv);

  // templates
  const tpl2k = await messageTemplate(2048);
  const tpl100k = await messageTemplate(100 * 1024);
  log(`messages: ${tpl2k.size} and ${tpl100k.size} bytes (PGP/MIME)`);

  // servers
  log("starting tern");
  const tern = await startTernBench();
  cleanups.push(() => tern.stop());
  let ref: RefStack | null = null;
  let refError = "";
  if (flags["no-refstack"]) refError = "--no-refstack given";
  else {
    if (flags["raise-inotify"]) await raiseInotify(opts.idleConns * 2 + 1024, notes);
    log("starting the reference stack (Postfix + Dovecot)");
    try {
      ref = await startRefStack();
      cleanups.push(() => ref!.stop());
      if (only.has("start")) {
        rv.start_fresh_ms = ref.startMs;
        notes.push(
          "refstack start = Postfix and Dovecot started until all five listeners greeted " +
            "(over TLS on the implicit-TLS ports)",
        );
      }
    } catch (err) {
      refError = (err as Error).message;
      log(`reference stack unavailable, measuring tern alone: ${refError.split("\n")[0]}`);
    }
  }
  const targets: [Target, Values, Raw][] = [[ternTarget(tern), tv, raw.tern]];
  if (ref) targets.push([refTarget(ref), rv, raw.ref]);

  await sleep(2000);
  for (const [t, v] of targets) {
    const m = t.totalMem();
    v.idle_rss_mb = mb(m.rssKb);
    v.idle_pss_mb = mb(m.pssKb);
  }

  // 1. submission throughput
  if (only.has("submit")) await submissionRuns(targets, tpl2k, tpl100k, notes);
  // 2. delivery latency
  if (only.has("latency")) await latencyRuns(targets, tpl2k, notes);
  // 2b. sign-up storm
  if (only.has("signup")) await signupRuns(targets, notes);
  // 3. idle scale
  if (only.has("idle")) await idleRuns(targets, tpl2k, ref, notes);
  // 3b. pre-login connections with oversized commands
  if (only.has("prelogin")) {
    for (const [t, v, r] of targets) {
      log(`${t.label}: ${opts.preloginConns} pre-login connections with oversized commands`);
      const p = await preloginFlood(t, {
        conns: opts.preloginConns,
        bytes: opts.preloginBytes,
        log,
      });
      r.prelogin = p;
      v.prelogin_rss_growth_mb = mb(p.peak.rssKb - p.before.rssKb);
      v.prelogin_rss_after_mb = mb(p.after.rssKb);
    }
  }
  // 4. FETCH throughput
  if (only.has("fetch")) await fetchRuns(targets, tpl2k, tpl100k);
  // 6. the real Delta Chat core
  if (only.has("deltachat")) await deltachatRuns(targets, notes);
  // 7. the embedded iroh relay (tern only)
  if (only.has("iroh")) await irohRuns(tern, tv, raw.tern, notes);
  // 8. memory bounds under large transfers and hanging DATA; the gate's worst cases
  if (only.has("memory")) await memoryRuns(targets);
  // 9. big mailboxes
  if (only.has("scale")) await scaleRuns(targets, tpl2k, notes);

  for (const [t, v] of targets) v.final_rss_mb = mb(t.totalMem().rssKb);
  const labels: Record<string, string> = {
    signup_s:
      `sign-up storm: ${opts.signupClients} new clients LOGIN+SELECT+IDLE, ${opts.signupInFlight} in flight (s)`,
    signup_again_s: `sign-up storm: the same ${opts.signupClients} again, accounts existing (s)`,
    idle_rss_after_mb: `IDLE: IMAP RSS with ${opts.idleConns} idle (MB)`,
    idle_pss_after_mb: `IDLE: IMAP PSS with ${opts.idleConns} idle (MB)`,
    idle_rss_wait_mb: `IDLE: IMAP RSS after ${opts.idleWaitMs / 1000} s more idle (MB)`,
    idle_kb_per_conn_wait: `IDLE: PSS/conn after ${opts.idleWaitMs / 1000} s more (KiB)`,
    fetch2k_mb_s: `FETCH ${opts.fetch2kMessages} × 2 KB (MB/s)`,
    fetch2k_msgs_s: `FETCH ${opts.fetch2kMessages} × 2 KB (msgs/s)`,
    fetch100k_mb_s: `FETCH ${opts.fetch100kMessages} × 100 KB (MB/s)`,
    ...scaleLabels(opts.scaleSizes),
    ...memoryLabels(),
  };
  const results = {
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    mode: quick ? "quick" : "default",
    options: opts,
    host: {
      cpus: navigator.hardwareConcurrency,
      loadavgAtStart: load,
      loadavgAtEnd: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
      deno: Deno.version.deno,
    },
    refstack: ref ? "postfix+dovecot (scripts/refstack)" : null,
    refError: refError || undefined,
    notes,
    metrics: METRICS.map((m) => ({ id: m.id, label: labels[m.id] ?? m.label, better: m.better })),
    tern: tv,
    ref: ref ? rv : null,
    raw,
  };
  await Deno.writeTextFile(RESULTS, JSON.stringify(results, null, 2) + "\n");

  console.log("");
  console.log(table(tv, ref ? rv : null, labels));
  console.log("");
  if (!ref) console.log(`reference stack not measured: ${refError.split("\n")[0]}`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`results: ${RESULTS} (${results.seconds} s)`);

  let baseline: { tern: Values; ref?: Values | null; mode?: string } | null = null;
  try {
    baseline = JSON.parse(await Deno.readTextFile(BASELINE));
  } catch {
    // none yet
  }
  if (baseline) {
    if (baseline.mode && baseline.mode !== results.mode) {
      console.log(
        `baseline is a ${baseline.mode} run, this is a ${results.mode} run: compared anyway`,
      );
    }
    const reg = regressions(
      { tern: tv, ref: ref ? rv : null, options: results.options },
      baseline as Parameters<typeof regressions>[1],
    );
    if (reg.skipped.length) {
      console.log(
        `not compared with the baseline (it ran with other options): ${reg.skipped.join(", ")}`,
      );
    }
    if (reg.lines.length) {
      console.log(`regressions > 20% against ${BASELINE}:`);
      for (const l of reg.lines) console.log(`  ${l}`);
    } else console.log(`no tern figure more than 20% worse than ${BASELINE}`);
  }
  if (flags["save-baseline"]) {
    await Deno.writeTextFile(BASELINE, JSON.stringify(results, null, 2) + "\n");
    console.log(`baseline written: ${BASELINE}`);
  }
}

/** The gate bench runs in its own process (with --expose-gc, for clean heap figures). */
async function gateRuns(): Promise<GateCase[]> {
  log("gate: worst-case messages at the size limit, pushed in 64 KiB pieces");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", `${HERE}bench/gate.ts`, "--json"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("gate bench failed");
  const rows: GateCase[] = JSON.parse(new TextDecoder().decode(out.stdout));
  console.log(gateTable(rows));
  return rows;
}

/** Median of five parses of a 25 MiB base64 single part (after one warm-up). */
function parseSpeed(tv: Values) {
  log("MIME parse of a 25 MiB message");
  const line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
  const body = line.repeat(Math.ceil((25 * 1024 * 1024) / line.length));
  const bytes = new TextEncoder().encode(
    `Subject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}`,
  );
  parseMessage(bytes);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    parseMessage(bytes);
    times.push(performance.now() - t0);
  }
  tv.parse_25mib_ms = median(times);
}

async function coldStart(tv: Values, raw: Raw) {
  log("tern cold start");
  const coldDir = await Deno.makeTempDir({ prefix: "tern-bench-cold-" });
  cleanups.push(() => Deno.remove(coldDir, { recursive: true }).catch(() => {}));
  const startOnce = async () => {
    const s = await startTernBench({ dir: coldDir });
    try {
      const greet = await waitImapsGreeting(s.port("imaps"), s.caPem);
      return { ready: s.readyMs, greeting: greet - s.spawnedAt };
    } finally {
      await s.stop();
    }
  };
  const fresh = await startOnce();
  const restarts = [];
  for (let i = 0; i < opts.restarts; i++) restarts.push(await startOnce());
  tv.start_fresh_ms = fresh.greeting;
  tv.start_restart_ms = median(restarts.map((r) => r.greeting));
  raw.coldStart = { fresh, restarts };
}

type Targets = [Target, Values, Raw][];

/** The memory metrics' labels with the sizes of this run (smaller with --quick). */
function memoryLabels(): Record<string, string> {
  const m = opts.memory;
  const load = `${m.appenders} APPEND + ${m.fetchers} FETCH of ${m.messageBytes / 1e6} MB`;
  return {
    mem_af_growth_mb: `memory: RSS growth, ${load} (MB, goal ≤ 300 at 50+50 × 30 MB)`,
    mem_af_pss_growth_mb: `memory: PSS growth, ${load} (MB)`,
    mem_af_seconds: `memory: ${load}, time (s)`,
  };
}

async function memoryRuns(targets: Targets) {
  for (const [t, v, r] of targets) {
    const m = await memoryBench(t, opts.memory, log);
    r.memory = m;
    const af = m.appendFetch, ud = m.unterminated, wc = m.worstCase;
    v.mem_af_growth_mb = af.growthMb;
    v.mem_af_pss_growth_mb = af.pssGrowthMb;
    v.mem_af_seconds = af.seconds;
    v.mem_af_noop_p99_ms = af.noopP99Ms;
    v.mem_data_growth_mb = ud.heldGrowthMb;
    v.mem_data_pss_growth_mb = ud.heldPssGrowthMb;
    v.mem_data_second_growth_mb = ud.secondGrowthMb;
    v.mem_worst_noop_max_ms = wc.noopMaxMs;
    v.mem_worst_noop_p99_ms = wc.noopP99Ms;
    log(
      `  APPEND+FETCH: RSS ${af.baseRssMb} MB → ${af.connectedRssMb} connected → peak ` +
        `${af.peakRssMb} (+${af.growthMb}, PSS +${af.pssGrowthMb}) → ${af.afterRssMb} after; ` +
        `${af.appended} appended, ${(af.fetchedBytes / 1e6).toFixed(0)} MB fetched in ` +
        `${af.seconds.toFixed(1)} s; NOOP p99 ${af.noopP99Ms.toFixed(1)} ms max ` +
        `${af.noopMaxMs.toFixed(1)} ms (${af.noops})` +
        (af.errors.length ? `; errors: ${af.errors.join("; ")}` : ""),
    );
    log(
      `  unterminated DATA: RSS ${ud.baseRssMb} MB → peak ${ud.peakRssMb} → held ${ud.heldRssMb} ` +
        `(+${ud.heldGrowthMb}, PSS +${ud.heldPssGrowthMb}); the same again: +${ud.secondGrowthMb}; ` +
        `${ud.afterRssMb} after they left` +
        (ud.errors.length ? `; errors: ${ud.errors.join("; ")}` : ""),
    );
    for (const c of wc.cases) {
      log(`  ${c.name} (${c.bytes} B): ${c.seconds.toFixed(1)} s, ${c.reply}`);
    }
    log(
      `  NOOP during those: p50 ${wc.noopP50Ms.toFixed(1)} ms, p99 ${
        wc.noopP99Ms.toFixed(1)
      } ms, ` +
        `max ${wc.noopMaxMs.toFixed(1)} ms (${wc.noops})`,
    );
  }
}

async function submissionRuns(
  targets: Targets,
  tpl2k: MessageTemplate,
  tpl100k: MessageTemplate,
  notes: string[],
) {
  for (const [size, tpl, prefix] of [["2k", tpl2k, "ra"], ["100k", tpl100k, "rb"]] as const) {
    for (const [t, v, r] of targets) {
      log(
        `${t.label}: submission ${size}, ${opts.sessions} sessions × ${opts.durationMs / 1000} s`,
      );
      const s = await submission(t, tpl, {
        sessions: opts.sessions,
        durationMs: opts.durationMs,
        drainTimeoutMs: opts.drainTimeoutMs,
        rcptPrefix: prefix,
      });
      r[`submission${size}`] = s;
      v[`sub${size}_accepted_s`] = s.acceptedPerSec;
      v[`sub${size}_p50_ms`] = s.p50Ms;
      v[`sub${size}_p99_ms`] = s.p99Ms;
      v[`sub${size}_delivered_s`] = s.deliveredPerSec;
      v[`sub${size}_drain_s`] = s.drainSeconds;
      v[`sub${size}_cpu_ms`] = s.serverCpuMsPerMsg;
      v[`sub${size}_noop_p99_ms`] = s.noopP99Ms;
      if (s.clientCpuPct > 85) {
        notes.push(
          `${t.label} ${size}: the benchmark client used ${s.clientCpuPct.toFixed(0)}% of a core ` +
            "while sending and may have limited the rate",
        );
      }
      log(
        `  ${s.accepted} accepted (${s.acceptedPerSec.toFixed(0)}/s), ${s.rejected} rejected, ` +
          `${s.delivered} delivered (${s.deliveredPerSec.toFixed(0)}/s), p50 ${
            s.p50Ms.toFixed(1)
          } ms p99 ${s.p99Ms.toFixed(1)} ms, server CPU ${
            s.serverCpuMsPerMsg.toFixed(2)
          } ms/msg, ` +
          `NOOP p99 ${s.noopP99Ms.toFixed(1)} ms max ${s.noopMaxMs.toFixed(1)} ms (${s.noops}), ` +
          `client CPU ${s.clientCpuPct.toFixed(0)}%${
            s.firstError ? `; error: ${s.firstError}` : ""
          }`,
      );
      if (s.delivered < s.accepted) {
        notes.push(`${t.label} ${size}: only ${s.delivered} of ${s.accepted} accepted delivered`);
      }
      if (s.firstError) notes.push(`${t.label} ${size}: ${s.firstError}`);
    }
  }
}

async function latencyRuns(targets: Targets, tpl2k: MessageTemplate, notes: string[]) {
  for (const [t, v, r] of targets) {
    log(`${t.label}: delivery latency to ${opts.latencyRecipients} IDLE sessions`);
    const l = await deliveryLatency(t, tpl2k, {
      recipients: opts.latencyRecipients,
      timeoutMs: 10_000,
    });
    r.latency = l;
    v.deliv_p50_ms = l.p50Ms;
    v.deliv_p99_ms = l.p99Ms;
    v.deliv_lost = l.lost;
    v.deliv_dot_p50_ms = l.dotP50Ms;
    log(`  p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, lost ${l.lost}`);
    if (l.firstError) notes.push(`${t.label} latency: ${l.firstError}`);
  }
}

async function signupRuns(targets: Targets, notes: string[]) {
  for (const [t, v, r] of targets) {
    log(
      `${t.label}: sign-up storm, ${opts.signupClients} new clients, ${opts.signupInFlight} in flight` +
        (t.key === "ref" ? " (accounts created beforehand: Dovecot has no JIT)" : ""),
    );
    const s = await signupStorm(t, {
      clients: opts.signupClients,
      inFlight: opts.signupInFlight,
      prefix: "su",
      log: (m) => log(`  ${m}`),
    });
    r.signup = s;
    v.signup_s = s.seconds;
    v.signup_again_s = s.againSeconds;
    v.signup_probe_p99_ms = s.probe.p99Ms;
    v.signup_probe_max_ms = s.probe.maxMs;
    v.signup_cpu_ms = s.cpuMs / s.clients;
    if (s.failed) notes.push(`${t.label} sign-up: ${s.failed} clients failed: ${s.firstError}`);
  }
}

async function idleRuns(
  targets: Targets,
  tpl2k: MessageTemplate,
  ref: RefStack | null,
  notes: string[],
) {
  for (const [t, v, r] of targets) {
    log(`${t.label}: ${opts.idleConns} idle IMAP connections`);
    const i = await idleScale(t, tpl2k, {
      conns: opts.idleConns,
      perUser: opts.idlePerUser,
      waitMs: opts.idleWaitMs,
      log: (m) => log(`  ${m}`),
    });
    r.idle = i;
    v.idle_conns = i.established;
    v.idle_establish_s = i.establishSeconds;
    v.idle_rss_before_mb = mb(i.before.rssKb);
    v.idle_rss_after_mb = mb(i.after.rssKb);
    v.idle_pss_after_mb = mb(i.after.pssKb);
    v.idle_kb_per_conn = i.perConnKb;
    v.idle_rss_wait_mb = i.afterWait ? mb(i.afterWait.rssKb) : null;
    v.idle_kb_per_conn_wait = i.perConnKbAfterWait;
    v.idle_wake_ms = i.wakeMs;
    v.idle_woken = i.woken;
    log(
      `  RSS ${mb(i.before.rssKb).toFixed(1)} → ${mb(i.after.rssKb).toFixed(1)} MB ` +
        `(${i.after.processes} processes), ${i.perConnKb.toFixed(1)} KiB PSS/conn; wake ${
          i.wakeMs.toFixed(1)
        } ms (${i.woken}/${i.wakeTargets} woken)`,
    );
    if (i.failed) notes.push(`${t.label} idle: ${i.failed} connections failed: ${i.firstError}`);
    if (i.afterWait) {
      log(
        `  after ${opts.idleWaitMs / 1000} s more: RSS ${mb(i.afterWait.rssKb).toFixed(1)} MB ` +
          `(${i.afterWait.processes} processes)`,
      );
    }
    if (t.key === "ref" && ref) {
      const warnings = ref.dovecotWarnings();
      for (const w of warnings.slice(0, 5)) notes.push(`dovecot.log: ${w}`);
      if (warnings.some((w) => w.includes("Inotify instance limit"))) {
        notes.push(
          "Dovecot ran out of inotify instances (one per imap process; fs.inotify." +
            "max_user_instances is per user): those sessions poll for changes every 30 s instead " +
            "of being told at once, and are not hibernated; --raise-inotify lifts the limit for a run",
        );
      }
    }
    if (i.woken < i.wakeTargets) {
      notes.push(
        `${t.label} idle: only ${i.woken}/${i.wakeTargets} connections of the woken user saw ` +
          "EXISTS within 10 s",
      );
    }
  }
}

async function fetchRuns(targets: Targets, tpl2k: MessageTemplate, tpl100k: MessageTemplate) {
  for (
    const [size, tpl, n, user] of [
      ["2k", tpl2k, opts.fetch2kMessages, "fa0000000"],
      ["100k", tpl100k, opts.fetch100kMessages, "fb0000000"],
    ] as const
  ) {
    for (const [t, v, r] of targets) {
      log(`${t.label}: APPEND ${n} × ${size} then FETCH 1:* (BODY.PEEK[])`);
      const f = await fetchThroughput(t, tpl, { messages: n, user, runs: opts.fetchRuns });
      r[`fetch${size}`] = f;
      v[`fetch${size}_mb_s`] = f.mbPerSec;
      if (size === "2k") v.fetch2k_msgs_s = f.msgsPerSec;
      v[`append${size}_msgs_s`] = f.appendPerSec;
      log(
        `  APPEND ${f.appendPerSec.toFixed(0)}/s; FETCH ${
          (f.fetchedBytes / 1e6).toFixed(1)
        } MB in ${f.fetchSeconds.toFixed(3)} s = ${f.mbPerSec.toFixed(1)} MB/s`,
      );
    }
  }
}

async function deltachatRuns(targets: Targets, notes: string[]) {
  for (const [t, v, r] of targets) {
    log(`${t.label}: Delta Chat core, Secure-Join then ${opts.deltachatMessages} messages A → B`);
    const d = await deltachatLatency(t, {
      messages: opts.deltachatMessages,
      log: (m) => log(`  ${m}`),
    });
    r.deltachat = d;
    v.dc_securejoin_ms = d.secureJoinMs;
    v.dc_p50_ms = d.p50Ms;
    v.dc_p90_ms = d.p90Ms;
    log(`  send → receive p50 ${d.p50Ms.toFixed(0)} ms, p90 ${d.p90Ms.toFixed(0)} ms`);
    if (d.firstError) notes.push(`${t.label} deltachat: ${d.firstError}`);
  }
}

async function scaleRuns(targets: Targets, tpl2k: MessageTemplate, notes: string[]) {
  for (const [t, v, r] of targets) {
    log(`${t.label}: big mailbox, ${opts.scaleSizes.join(" / ")} messages`);
    const s = await scaleRun(t, tpl2k, {
      sizes: opts.scaleSizes,
      rateWindow: Math.min(1000, opts.scaleSizes[0]),
      repeats: quick ? 3 : 5,
      bigUser: "scale0001",
      bystander: "scaleby01",
      storageBytes: (user) => t.storageBytes?.(user) ?? NaN,
      maintain: t.maintain && (() => t.maintain!()),
      log: (m) => log(`  ${m}`),
    });
    r.scale = s;
    if (s.firstError) notes.push(`${t.label} scale: ${s.firstError}`);
    v.scale_append_empty_s = s.appendEmptyPerSec;
    s.stages.forEach((st, i) => {
      const k = i + 1;
      v[`scale_append_${k}_s`] = st.appendPerSec;
      v[`scale_select_${k}_ms`] = st.selectMs;
      v[`scale_unseen_${k}_ms`] = st.searchUnseenMs;
      v[`scale_text_${k}_ms`] = st.searchTextMs;
      v[`scale_resync_${k}_ms`] = st.changedSinceMs;
      v[`scale_fetchflags_${k}_ms`] = st.fetchFlagsMs;
      v[`scale_noop_p99_${k}_ms`] = Math.max(...st.noop.map((n) => n.p99Ms));
      v[`scale_noop_worst_${k}_ms`] = Math.max(...st.noop.map((n) => n.worstMs));
    });
    v.scale_expunge_noop_worst_ms = s.expunge.length
      ? Math.max(...s.expunge.map((e) => e.worstMs))
      : NaN;
    v.scale_expunge_s = s.expunge.length ? s.expunge.reduce((a, e) => a + e.ms, 0) / 1000 : NaN;
    v.scale_bytes_per_msg_before = s.storageBeforeBytes / s.liveBefore;
    v.scale_bytes_per_msg_after = s.storageAfterBytes / Math.max(1, s.liveAfter);
    v.scale_storage_before_mb = s.storageBeforeBytes / 1e6;
    v.scale_storage_after_mb = s.storageAfterBytes / 1e6;
    v.scale_rss_after_mb = s.rssAfterMb;
  }
}

async function irohRuns(tern: TernBench, v: Values, r: Raw, notes: string[]) {
  log("tern: iroh relay, two clients: throughput (HTTP, HTTPS) and round trips");
  const res = await irohBench(tern, {
    durationMs: opts.durationMs,
    roundTrips: opts.irohRoundTrips,
    log: (m) => log(`  ${m}`),
  });
  r.iroh = res;
  v.iroh_http_mb_s = res.http.mbPerSec;
  v.iroh_https_mb_s = res.https.mbPerSec;
  v.iroh_http_cpu_ms_mb = res.http.cpuMsPerMb;
  v.iroh_https_cpu_ms_mb = res.https.cpuMsPerMb;
  v.iroh_rtt_p50_ms = res.rttP50Ms;
  v.iroh_rtt_p99_ms = res.rttP99Ms;
  v.iroh_added_ms = res.addedLatencyMs;
  notes.push(
    "iroh relay: tern only (the reference stack runs no iroh relay here); 1200-byte packets, " +
      "a 512-packet window acknowledged through the relay; the clients run in the benchmark process",
  );
}

/** Raises fs.inotify.max_user_instances to at least `want` for this run; restored at the end. */
async function raiseInotify(want: number, notes: string[]) {
  const file = "/proc/sys/fs/inotify/max_user_instances";
  try {
    const was = Number((await Deno.readTextFile(file)).trim());
    if (was >= want) return;
    await Deno.writeTextFile(file, `${want}\n`);
    cleanups.push(() => Deno.writeTextFile(file, `${was}\n`));
    notes.push(`fs.inotify.max_user_instances raised from ${was} to ${want} for this run`);
  } catch (err) {
    notes.push(`could not raise fs.inotify.max_user_instances: ${(err as Error).message}`);
  }
}

let code = 0;
try {
  await main();
} catch (err) {
  // after Ctrl-C the servers go away under the running scenario: that error is expected
  if (!interrupted) console.error(err);
  code = 1;
} finally {
  log("cleaning up");
  await cleanup();
}
Deno.exit(code);
