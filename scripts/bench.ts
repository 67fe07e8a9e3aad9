// Benchmark: the same load against tern and the reference stack (Postfix + Dovecot,
// scripts/refstack) in one run; prints both side by side with the ratio, then issue 21's goals
// (figure, both values, ratio, goal, met?) and draws the chart.
//
//   scripts/deno task bench                  # default run (about 15 min; medians of 3 rounds)
//   scripts/deno task bench --quick          # short durations, one round, 500 idle connections
//   scripts/deno task bench --idle-conns 2000    # fewer idle connections than the default 10 000
//   scripts/deno task bench --save-baseline  # also write scripts/bench_baseline.{json,svg}
//   scripts/deno task bench --no-refstack    # tern alone
//   scripts/deno task bench --cpu-prof DIR   # tern runs with --cpu-prof; profiles land in DIR
//   scripts/deno task bench --only scale     # big mailboxes (1 000 / 10 000 / 50 000 messages)
//   scripts/deno task bench --only federation  # tern → tern beside Postfix → Postfix
//
// Results go to scripts/bench_results.json and scripts/bench_chart.svg; tern figures more than 20%
// worse than scripts/bench_baseline.json are listed at the end. Needs root for the reference
// stack; without it (or when it cannot start) tern is measured alone. Every process and
// directory the run creates is removed at the end, also on Ctrl-C.
//
// Scenarios are rows of SCENARIOS below (name, whether it needs the servers, the function): add
// one there.

import { parseArgs } from "node:util";
import { parseMessage } from "../src/mime/mod.ts";
import { deltachatLatency, type DeltaChatResult } from "./bench/deltachat.ts";
import { type SignupResult, signupStorm } from "./bench/signup.ts";
import { irohBench, type IrohResult } from "./bench/iroh.ts";
import { MEMORY_PARTS, memoryBench, type MemoryPart } from "./bench/memory.ts";
import { type GateCase, gateTable } from "./bench/gate.ts";
import { messageTemplate } from "./bench/messages.ts";
import type { MessageTemplate } from "./bench/messages.ts";
import { startRefStack } from "./bench/refstack.ts";
import type { RefStack } from "./bench/refstack.ts";
import { METRICS, regressions, scaleLabels, table } from "./bench/report.ts";
import type { Values } from "./bench/report.ts";
import { evaluateGoals, goalSummary, goalTable } from "./bench/goals.ts";
import { chartSvg } from "./bench/chart.ts";
import { summarizeProfiles } from "./bench/profile.ts";
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
import { jitUsers, startTernBench, waitImapsGreeting } from "./bench/tern.ts";
import { type ScaleResult, scaleRun } from "./bench/scale.ts";
import {
  type FederationResult,
  federationRun,
  type FedSide,
  sendTo,
  silentHost,
} from "./bench/federation.ts";
import type { TernBench } from "./bench/tern.ts";
import {
  hostInfo,
  loadavg,
  mainThreadCpuMs,
  median,
  raiseNofile,
  sleep,
  treeCpuMs,
  treeMem,
  treeSyscalls,
  userName,
  versionOf,
} from "./bench/util.ts";

const HERE = new URL(".", import.meta.url).pathname;
const RESULTS = `${HERE}bench_results.json`;
const CHART = `${HERE}bench_chart.svg`;
const BASELINE = `${HERE}bench_baseline.json`;
const BASELINE_CHART = `${HERE}bench_baseline.svg`;

// ---- the scenarios ---------------------------------------------------------------------------

/** What a scenario gets: the run's options, both servers (when it needs them) and the tables. */
interface Bench {
  opts: typeof opts;
  quick: boolean;
  notes: string[];
  /** Figures by metric id (report.ts METRICS), tern's and the reference's. */
  tv: Values;
  rv: Values;
  raw: { tern: Raw; ref: Raw };
  /** Labels that depend on the run's options (shown instead of METRICS' labels). */
  labels: Record<string, string>;
  /** The running servers (scenarios with `servers: false` run before they start: null). */
  tern: TernBench | null;
  ref: RefStack | null;
  /** The reference's figures were measured by a scenario with servers of its own. */
  refFigures?: boolean;
  /** tern first, then the reference stack when it runs. */
  targets: Targets;
  /** A PGP/MIME message template of about `bytes` (made once per size). */
  template(bytes: number): Promise<MessageTemplate>;
}

interface Scenario {
  name: string;
  /** False: runs before the servers start (in this process or one of its own). */
  servers: boolean;
  run(b: Bench): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  { name: "gate", servers: false, run: gateRuns },
  { name: "start", servers: false, run: coldStart },
  { name: "parse", servers: false, run: parseSpeed },
  { name: "submit", servers: true, run: submissionRuns },
  { name: "latency", servers: true, run: latencyRuns },
  { name: "signup", servers: true, run: signupRuns },
  { name: "idle", servers: true, run: idleRuns },
  { name: "prelogin", servers: true, run: preloginRuns },
  { name: "fetch", servers: true, run: fetchRuns },
  { name: "deltachat", servers: true, run: deltachatRuns },
  { name: "iroh", servers: true, run: irohRuns },
  // memory bounds under large transfers and hanging DATA; the gate's worst cases at the limit
  { name: "memory", servers: true, run: memoryRuns },
  // big mailboxes (only when named in --only: 50 000 messages per server)
  { name: "scale", servers: true, run: scaleRuns },
  // tern → tern and Postfix → Postfix, each with servers of its own (only when named)
  { name: "federation", servers: false, run: federationScenario },
];
/** Scenarios a run without --only leaves out: they take long and start servers of their own. */
const ON_REQUEST = new Set(["scale", "federation"]);
const NAMES = SCENARIOS.map((s) => s.name);

// ---- options ----------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    "save-baseline": { type: "boolean", default: false },
    "no-refstack": { type: "boolean", default: false },
    "idle-conns": { type: "string" },
    duration: { type: "string" },
    "idle-wait": { type: "string" },
    rounds: { type: "string" },
    sizes: { type: "string" },
    "memory-parts": { type: "string" },
    only: { type: "string" },
    "scale-sizes": { type: "string" },
    "raise-inotify": { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(
    "usage: deno task bench [--quick] [--save-baseline] [--no-refstack] [--idle-conns N]\n" +
      "                       [--duration SECONDS] [--idle-wait SECONDS] [--rounds N]\n" +
      "                       [--sizes 2k,100k] [--memory-parts data,worst,transfer]\n" +
      "                       [--raise-inotify] [--cpu-prof DIR] [--only a,b,…]\n" +
      "                       [--scale-sizes 1000,10000,50000]\n" +
      `scenarios: ${NAMES.join(", ")}\n` +
      "scale (big mailboxes) and federation (two servers each side, 2 000 messages across,\n" +
      "without, with and again without a silent peer) run only when --only names them.\n" +
      "--rounds: submission and sign-up rounds (default 3, --quick 1); figures are medians.\n" +
      "--sizes: the submission sizes to run (default both; one is handy with --cpu-prof).\n" +
      `--memory-parts: the memory scenario's parts to run (default ${MEMORY_PARTS.join(",")}).\n` +
      "--raise-inotify lifts fs.inotify.max_user_instances for the run (restored afterwards):\n" +
      "with the default 128, Dovecot sessions beyond the 128th fall back to polling and are not\n" +
      "hibernated.\n" +
      "--cpu-prof DIR: tern (main thread and store threads) writes V8 CPU profiles into DIR when\n" +
      "it stops; the run prints where the time went.",
  );
  Deno.exit(0);
}

const quick = flags.quick!;
const only = new Set(
  flags.only ? flags.only.split(",").map((x) => x.trim()) : NAMES.filter((n) => !ON_REQUEST.has(n)),
);
for (const o of only) {
  if (!NAMES.includes(o)) {
    console.error(`--only: unknown scenario "${o}" (known: ${NAMES.join(", ")})`);
    Deno.exit(2);
  }
}
function memoryParts(): MemoryPart[] {
  const parts = (flags["memory-parts"] ?? MEMORY_PARTS.join(",")).split(",").map((x) => x.trim());
  for (const p of parts) {
    if (!(MEMORY_PARTS as readonly string[]).includes(p)) {
      console.error(`--memory-parts: unknown part "${p}" (known: ${MEMORY_PARTS.join(", ")})`);
      Deno.exit(2);
    }
  }
  return parts as MemoryPart[];
}
const opts = {
  quick,
  sessions: 8,
  durationMs: Number(flags.duration ?? (quick ? 3 : 10)) * 1000,
  drainTimeoutMs: quick ? 15_000 : 30_000,
  /** Submission and sign-up rounds; their figures are medians over the rounds. */
  rounds: Number(flags.rounds ?? (quick ? 1 : 3)),
  latencyRecipients: 50,
  // Issue 21's sign-up storm: 1000 new clients, 50 in flight.
  signupClients: quick ? 300 : 1000,
  signupInFlight: 50,
  // Issue 21's figure: 10 000 idle TLS IMAP connections.
  idleConns: Number(flags["idle-conns"] ?? (quick ? 500 : 10_000)),
  idlePerUser: 8,
  preloginConns: 200,
  preloginBytes: 1 << 20,
  // Dovecot moves IDLE sessions to its imap-hibernate process after 30 s idle.
  idleWaitMs: Number(flags["idle-wait"] ?? (quick ? 0 : 35)) * 1000,
  fetch2kMessages: quick ? 500 : 2000,
  fetch100kMessages: quick ? 100 : 500,
  fetchRuns: 5,
  restarts: quick ? 1 : 3,
  scaleSizes: (flags["scale-sizes"] ?? (quick ? "500,2000,5000" : "1000,10000,50000"))
    .split(",").map(Number),
  federationMessages: quick ? 500 : 2000,
  /** Idle memory is read this long after the server greeted. */
  idleMemAfterMs: 2000,
  deltachatMessages: quick ? 4 : 10,
  irohRoundTrips: quick ? 500 : 2000,
  memory: {
    appenders: quick ? 10 : 50,
    fetchers: quick ? 10 : 50,
    fetchersPerUser: 5,
    messageBytes: quick ? 10_000_000 : 30_000_000,
    dataConnections: 20,
    dataBytes: 5 * 1024 * 1024,
    worstBytes: quick ? 10_000_000 : 30_000_000,
    parts: memoryParts(),
  },
  only: NAMES.filter((x) => only.has(x)),
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
  return {
    key: "tern",
    label: "tern",
    smtpPort: t.port("submissions"),
    imapPort: t.port("imaps"),
    caPem: t.caPem,
    addr: (u) => `${u}@[127.0.0.1]`,
    // accounts are created on first login (JIT); later logins hit tern's verified-password cache
    ensureUsers: jitUsers(t.port("imaps"), t.caPem),
    imapMem: () => treeMem([t.pid]),
    totalMem: () => treeMem([t.pid]),
    cpuMs: () => treeCpuMs([t.pid]),
    mainThreadCpuMs: () => mainThreadCpuMs(t.pid),
    syscalls: () => treeSyscalls([t.pid]),
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
    syscalls: () => treeSyscalls([r.dovecotPid() ?? -1, r.postfixPid() ?? -1]),
    // The user's Maildir (gzip-compressed messages, as chatmail stores them) with its indexes.
    storageBytes: (user) => dirBytes(`${r.dir}/mail/${user}@${r.domain}`),
  };
}

/** The tern process the scenarios measure, with --cpu-prof when asked. */
function startTern(): Promise<TernBench> {
  const prof = flags["cpu-prof"];
  return startTernBench({ runtimeArgs: prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [] });
}

// ---- the run ---------------------------------------------------------------------------------------
interface Raw {
  submission2k?: SubmissionResult[];
  submission100k?: SubmissionResult[];
  latency?: LatencyResult;
  signup?: SignupResult[];
  idle?: IdleResult;
  fetch2k?: FetchResult;
  fetch100k?: FetchResult;
  deltachat?: DeltaChatResult;
  scale?: ScaleResult;
  iroh?: IrohResult;
  [k: string]: unknown;
}

type Targets = [Target, Values, Raw][];

async function main() {
  const started = Date.now();
  const notes: string[] = [];
  const nofile = await raiseNofile(Math.max(65536, opts.idleConns * 2 + 4096));
  if (nofile < opts.idleConns + 1024) {
    notes.push(`open-file limit ${nofile}: idle connections capped`);
    opts.idleConns = Math.max(100, nofile - 1024);
  }
  if (flags["cpu-prof"]) await Deno.mkdir(flags["cpu-prof"], { recursive: true });
  const host = hostInfo();
  const loadAtStart = loadavg();
  log(
    `${quick ? "quick" : "default"} run: ${opts.durationMs / 1000} s per submission size, ` +
      `${opts.rounds} round(s), ${opts.idleConns} idle connections; ${host.cpus} CPUs ` +
      `(${host.cpuModel}), ${host.memGb} GB, load ${loadAtStart}`,
  );

  const templates = new Map<number, Promise<MessageTemplate>>();
  const b: Bench = {
    opts,
    quick,
    notes,
    tv: {},
    rv: {},
    raw: { tern: {}, ref: {} },
    labels: {},
    tern: null,
    ref: null,
    targets: [],
    template(bytes) {
      let t = templates.get(bytes);
      if (!t) templates.set(bytes, t = messageTemplate(bytes));
      return t;
    },
  };

  // Scenarios that run alone come first (cold start before anything else loads the machine).
  for (const s of SCENARIOS) if (!s.servers && only.has(s.name)) await s.run(b);

  let refError = "";
  const withServers = SCENARIOS.filter((s) => s.servers && only.has(s.name));
  if (withServers.length) {
    log("starting tern");
    const tern = b.tern = await startTern();
    cleanups.push(() => tern.stop());
    if (flags["no-refstack"]) refError = "--no-refstack given";
    else {
      if (flags["raise-inotify"]) await raiseInotify(opts.idleConns * 2 + 1024, notes);
      log("starting the reference stack (Postfix + Dovecot)");
      try {
        const ref = b.ref = await startRefStack();
        cleanups.push(() => ref.stop());
        if (only.has("start")) {
          b.rv.start_fresh_ms = ref.startMs;
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
    b.targets.push([ternTarget(tern), b.tv, b.raw.tern]);
    if (b.ref) b.targets.push([refTarget(b.ref), b.rv, b.raw.ref]);

    await sleep(opts.idleMemAfterMs);
    for (const [t, v] of b.targets) {
      const m = t.totalMem();
      // tern's idle figure comes from the cold-start runs (median of the restarts) when they ran
      v.idle_rss_mb ??= mb(m.rssKb);
      v.idle_pss_mb ??= mb(m.pssKb);
    }
    for (const s of withServers) await s.run(b);
    for (const [t, v] of b.targets) v.final_rss_mb = mb(t.totalMem().rssKb);
  }

  const ref = b.ref;
  const { tv, rv } = b;
  /** The reference's figures, when any scenario measured them. */
  const refValues = ref || b.refFigures ? rv : null;
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
    ...b.labels,
  };
  const goals = evaluateGoals(tv, refValues, opts);
  const loadAtEnd = loadavg();
  const refVersions = ref
    ? `Postfix ${(await versionOf("postconf", ["-d", "mail_version"])).replace(/^.*= /, "")}, ` +
      `Dovecot ${(await versionOf("dovecot", ["--version"])).split(" ")[0]}`
    : null;
  const results = {
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    mode: quick ? "quick" : "default",
    options: opts,
    host: {
      ...host,
      loadavgAtStart: loadAtStart,
      loadavgAtEnd: loadAtEnd,
      deno: Deno.version.deno,
    },
    refstack: ref ? `postfix+dovecot (scripts/refstack; ${refVersions})` : null,
    refError: refError || undefined,
    notes,
    metrics: METRICS.map((m) => ({ id: m.id, label: labels[m.id] ?? m.label, better: m.better })),
    goals,
    tern: tv,
    ref: refValues,
    raw: b.raw,
  };
  await Deno.writeTextFile(RESULTS, JSON.stringify(results, null, 2) + "\n");
  const svg = chartSvg({
    tern: tv,
    ref: refValues,
    goals,
    labels: { idle_rss_after_mb: `RSS with ${opts.idleConns} idle IMAP connections (MB)` },
    footer: [
      `${results.date.slice(0, 16).replace("T", " ")} UTC · ${host.cpus} × ${host.cpuModel}, ` +
      `${host.memGb} GB RAM, Linux ${host.kernel} · load average ${loadAtStart} at the start, ` +
      `${loadAtEnd} at the end (other work was running on the machine)`,
      `tern on Deno ${Deno.version.deno}` + (refVersions ? ` · ${refVersions}` : "") +
      ` · ${results.mode} run: ${opts.rounds} round(s) of ${opts.durationMs / 1000} s per ` +
      `submission size (medians), ${opts.signupClients} sign-ups, ${opts.idleConns} idle ` +
      "connections · scripts/deno task bench",
    ],
  });
  await Deno.writeTextFile(CHART, svg);

  if (!withServers.length && only.has("gate") && only.size === 1) {
    console.log(`results: ${RESULTS}`);
    return;
  }
  console.log("");
  console.log(table(tv, refValues, labels));
  console.log("");
  console.log(goalTable(goals));
  console.log(goalSummary(goals));
  console.log("");
  if (!ref) console.log(`reference stack not measured: ${refError.split("\n")[0]}`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`results: ${RESULTS}, chart: ${CHART} (${results.seconds} s)`);

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
      { tern: tv, ref: refValues, options: results.options },
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
    await Deno.writeTextFile(BASELINE_CHART, svg);
    console.log(`baseline written: ${BASELINE}, ${BASELINE_CHART}`);
  }
}

/** The gate bench runs in its own process (with --expose-gc, for clean heap figures). */
async function gateRuns(b: Bench) {
  log("gate: worst-case messages at the size limit, pushed in 64 KiB pieces");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", `${HERE}bench/gate.ts`, "--json"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("gate bench failed");
  const rows: GateCase[] = JSON.parse(new TextDecoder().decode(out.stdout));
  console.log(gateTable(rows));
  b.raw.tern.gate = rows;
}

/** Median of five parses of a 25 MiB base64 single part (after one warm-up). */
function parseSpeed(b: Bench): Promise<void> {
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
  b.tv.parse_25mib_ms = median(times);
  return Promise.resolve();
}

/**
 * Cold start into a fresh data directory, then restarts on it. Each time: ms until the IMAP
 * greeting, and the process's memory `idleMemAfterMs` later (the idle figure: median of the
 * restarts, which are what a running relay goes through). Twice: `deno run main.ts` (the sources,
 * what the tests run) and the release artefact CI can build here, dist/tern.js from
 * `scripts/compile.ts --bundle-only` (built afresh into a directory of the run's), run as the
 * README says (`deno run -A --no-config tern.js serve`). That file is what `deno compile` embeds
 * in the shipped binary (scripts/compile.ts), so the goal's figure, idle_rss_mb, is the bundle's;
 * the binary itself runs it on Deno's smaller runtime base (denort), which cannot be downloaded
 * here, so it is not measured. The bundle's first start compiles the whole file without V8's code
 * cache (a new build), so its figure is kept apart (idle_rss_bundle_first_mb).
 */
async function coldStart(b: Bench) {
  log("tern cold start");
  const startOnce = async (dir: string, bundle?: string) => {
    const s = await startTernBench({ dir, bundle });
    try {
      const greet = await waitImapsGreeting(s.port("imaps"), s.caPem);
      await sleep(opts.idleMemAfterMs);
      const m = treeMem([s.pid]);
      return {
        ready: s.readyMs,
        greeting: greet - s.spawnedAt,
        rssMb: mb(m.rssKb),
        pssMb: mb(m.pssKb),
      };
    } finally {
      await s.stop();
    }
  };
  const series = async (bundle?: string) => {
    const dir = await Deno.makeTempDir({ prefix: "tern-bench-cold-" });
    cleanups.push(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    const fresh = await startOnce(dir, bundle);
    const restarts = [];
    for (let i = 0; i < opts.restarts; i++) restarts.push(await startOnce(dir, bundle));
    return { fresh, restarts };
  };
  const src = await series();
  b.tv.start_fresh_ms = src.fresh.greeting;
  b.tv.start_restart_ms = median(src.restarts.map((r) => r.greeting));
  b.tv.idle_rss_src_mb = median(src.restarts.map((r) => r.rssMb));
  b.tv.idle_pss_src_mb = median(src.restarts.map((r) => r.pssMb));
  b.tv.idle_rss_fresh_mb = src.fresh.rssMb;
  b.raw.tern.coldStart = src;
  const restartsText = (rs: { rssMb: number }[]) => rs.map((r) => r.rssMb.toFixed(1)).join(", ");
  log(
    `  sources (deno run main.ts serve): greeting after ${src.fresh.greeting.toFixed(0)} ms ` +
      `(fresh), ${b.tv.start_restart_ms.toFixed(0)} ms (restart); idle RSS ` +
      `${src.fresh.rssMb.toFixed(1)} MB (fresh), ${b.tv.idle_rss_src_mb.toFixed(1)} MB ` +
      `(restarts: ${restartsText(src.restarts)})`,
  );
  const bundleDir = await Deno.makeTempDir({ prefix: "tern-bench-bundle-" });
  cleanups.push(() => Deno.remove(bundleDir, { recursive: true }).catch(() => {}));
  const bundle = `${bundleDir}/tern.js`;
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/compile.ts", "--bundle-only", `--out=${bundle}`],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!build.success) {
    b.notes.push(`release bundle not measured: ${new TextDecoder().decode(build.stderr).trim()}`);
    b.tv.idle_rss_mb = b.tv.idle_rss_src_mb;
    b.tv.idle_pss_mb = b.tv.idle_pss_src_mb;
    return;
  }
  const rel = await series(bundle);
  b.tv.idle_rss_mb = median(rel.restarts.map((r) => r.rssMb));
  b.tv.idle_pss_mb = median(rel.restarts.map((r) => r.pssMb));
  b.tv.idle_rss_bundle_first_mb = rel.fresh.rssMb;
  b.raw.tern.coldStartBundle = rel;
  log(
    `  release bundle (deno run --no-config dist/tern.js serve, what deno compile embeds): ` +
      `idle RSS ${rel.fresh.rssMb.toFixed(1)} MB (first start, no code cache yet), ` +
      `${b.tv.idle_rss_mb.toFixed(1)} MB (restarts: ${restartsText(rel.restarts)})`,
  );
  b.notes.push(
    `idle RSS right after start = dist/tern.js (the file deno compile embeds) run by deno run, ` +
      `median of restarts: ${b.tv.idle_rss_mb.toFixed(1)} MB; from the sources (deno run ` +
      `main.ts): ${b.tv.idle_rss_src_mb.toFixed(1)} MB; the compiled binary (denort) is not ` +
      `measured here`,
  );
}

/** Median of each field over the rounds. */
function medianOf<T>(rounds: T[], key: keyof T): number {
  return median(rounds.map((r) => r[key] as number).filter((x) => !Number.isNaN(x)));
}

/** Pre-login connections that send oversized commands (memory held before login). */
async function preloginRuns(b: Bench) {
  for (const [t, v, r] of b.targets) {
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

async function memoryRuns(b: Bench) {
  Object.assign(b.labels, memoryLabels());
  for (const [t, v, r] of b.targets) {
    const m = await memoryBench(t, opts.memory, log);
    r.memory = m;
    const af = m.appendFetch, ud = m.unterminated, wc = m.worstCase;
    if (af) {
      v.mem_af_growth_mb = af.growthMb;
      v.mem_af_pss_growth_mb = af.pssGrowthMb;
      v.mem_af_seconds = af.seconds;
      v.mem_af_noop_p99_ms = af.noopP99Ms;
      log(
        `  APPEND+FETCH: RSS ${af.baseRssMb} MB → ${af.connectedRssMb} connected → peak ` +
          `${af.peakRssMb} (+${af.growthMb}, PSS +${af.pssGrowthMb}) → ${af.afterRssMb} after; ` +
          `${af.appended} appended, ${(af.fetchedBytes / 1e6).toFixed(0)} MB fetched in ` +
          `${af.seconds.toFixed(1)} s; NOOP p99 ${af.noopP99Ms.toFixed(1)} ms max ` +
          `${af.noopMaxMs.toFixed(1)} ms (${af.noops})` +
          (af.errors.length ? `; errors: ${af.errors.join("; ")}` : ""),
      );
    }
    if (ud) {
      v.mem_data_growth_mb = ud.heldGrowthMb;
      v.mem_data_pss_growth_mb = ud.heldPssGrowthMb;
      v.mem_data_second_growth_mb = ud.secondGrowthMb;
      log(
        `  unterminated DATA: RSS ${ud.baseRssMb} MB → peak ${ud.peakRssMb} → held ` +
          `${ud.heldRssMb} (+${ud.heldGrowthMb}, PSS +${ud.heldPssGrowthMb}); the same again: ` +
          `+${ud.secondGrowthMb}; ${ud.afterRssMb} after they left` +
          (ud.errors.length ? `; errors: ${ud.errors.join("; ")}` : ""),
      );
    }
    if (wc) {
      v.mem_worst_noop_max_ms = wc.noopMaxMs;
      v.mem_worst_noop_p99_ms = wc.noopP99Ms;
      for (const c of wc.cases) {
        log(`  ${c.name} (${c.bytes} B): ${c.seconds.toFixed(1)} s, ${c.reply}`);
      }
      log(
        `  NOOP during those: p50 ${wc.noopP50Ms.toFixed(1)} ms, p99 ${
          wc.noopP99Ms.toFixed(1)
        } ms, max ${wc.noopMaxMs.toFixed(1)} ms (${wc.noops})`,
      );
    }
  }
}

/**
 * Submission throughput, `rounds` times; each round runs every size on tern then on the
 * reference, so both see the same machine load. Figures are medians over the rounds.
 */
async function submissionRuns(b: Bench) {
  const wanted = new Set((flags.sizes ?? "2k,100k").split(",").map((x) => x.trim()));
  const sizes = ([["2k", 2048, "ra"], ["100k", 100 * 1024, "rb"]] as const).filter(([s]) =>
    wanted.has(s)
  );
  for (let round = 1; round <= opts.rounds; round++) {
    for (const [size, bytes, prefix] of sizes) {
      const tpl = await b.template(bytes);
      for (const [t, , r] of b.targets) {
        log(
          `${t.label}: submission ${size}, ${opts.sessions} sessions × ${
            opts.durationMs / 1000
          } s` +
            (opts.rounds > 1 ? ` (round ${round}/${opts.rounds})` : ""),
        );
        const s = await submission(t, tpl, {
          sessions: opts.sessions,
          durationMs: opts.durationMs,
          drainTimeoutMs: opts.drainTimeoutMs,
          rcptPrefix: prefix,
        });
        ((r[`submission${size}`] ??= []) as SubmissionResult[]).push(s);
        if (s.clientCpuPct > 85) {
          b.notes.push(
            `${t.label} ${size} round ${round}: the benchmark client used ${
              s.clientCpuPct.toFixed(0)
            }% of a core while sending and may have limited the rate`,
          );
        }
        log(
          `  ${s.accepted} accepted (${s.acceptedPerSec.toFixed(0)}/s), ${s.rejected} rejected, ` +
            `${s.delivered} delivered (${s.deliveredPerSec.toFixed(0)}/s), p50 ${
              s.p50Ms.toFixed(1)
            } ms p99 ${s.p99Ms.toFixed(1)} ms, server CPU ${s.serverCpuMsPerMsg.toFixed(2)} ms/msg${
              Number.isNaN(s.mainThreadCpuMsPerMsg)
                ? ""
                : ` (main thread ${s.mainThreadCpuMsPerMsg.toFixed(2)})`
            }, syscalls/msg ${s.serverReadsPerMsg.toFixed(1)} read ${
              s.serverWritesPerMsg.toFixed(1)
            } write, ` +
            `NOOP p99 ${s.noopP99Ms.toFixed(1)} ms max ${
              s.noopMaxMs.toFixed(1)
            } ms (${s.noops}), ` +
            `client CPU ${s.clientCpuPct.toFixed(0)}%${
              s.firstError ? `; error: ${s.firstError}` : ""
            }`,
        );
        if (s.delivered < s.accepted) {
          b.notes.push(
            `${t.label} ${size} round ${round}: only ${s.delivered} of ${s.accepted} accepted delivered`,
          );
        }
        if (s.firstError) b.notes.push(`${t.label} ${size}: ${s.firstError}`);
      }
    }
  }
  for (const [size] of sizes) {
    for (const [, v, r] of b.targets) {
      const rounds = r[`submission${size}`] as SubmissionResult[];
      v[`sub${size}_accepted_s`] = medianOf(rounds, "acceptedPerSec");
      v[`sub${size}_p50_ms`] = medianOf(rounds, "p50Ms");
      v[`sub${size}_p99_ms`] = medianOf(rounds, "p99Ms");
      v[`sub${size}_delivered_s`] = medianOf(rounds, "deliveredPerSec");
      v[`sub${size}_drain_s`] = medianOf(rounds, "drainSeconds");
      v[`sub${size}_cpu_ms`] = medianOf(rounds, "serverCpuMsPerMsg");
      v[`sub${size}_noop_p99_ms`] = medianOf(rounds, "noopP99Ms");
    }
  }
}

async function latencyRuns(b: Bench) {
  const tpl2k = await b.template(2048);
  for (const [t, v, r] of b.targets) {
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
    if (l.firstError) b.notes.push(`${t.label} latency: ${l.firstError}`);
  }
}

/** The sign-up storm, `rounds` times with new users each round; figures are medians. */
async function signupRuns(b: Bench) {
  for (let round = 1; round <= opts.rounds; round++) {
    for (const [t, , r] of b.targets) {
      log(
        `${t.label}: sign-up storm, ${opts.signupClients} new clients, ${opts.signupInFlight} in flight` +
          (opts.rounds > 1 ? ` (round ${round}/${opts.rounds})` : "") +
          (t.key === "ref" ? " (accounts created beforehand: Dovecot has no JIT)" : ""),
      );
      const s = await signupStorm(t, {
        clients: opts.signupClients,
        inFlight: opts.signupInFlight,
        // new accounts each round: "s" + a letter per round (user names are 9 characters)
        prefix: `s${String.fromCharCode(0x60 + round)}`,
        log: (m) => log(`  ${m}`),
      });
      ((r.signup ??= []) as SignupResult[]).push(s);
      if (s.failed) {
        b.notes.push(
          `${t.label} sign-up round ${round}: ${s.failed} clients failed: ${s.firstError}`,
        );
      }
    }
  }
  for (const [, v, r] of b.targets) {
    const rounds = r.signup as SignupResult[];
    v.signup_s = medianOf(rounds, "seconds");
    v.signup_again_s = medianOf(rounds, "againSeconds");
    v.signup_probe_p99_ms = median(rounds.map((s) => s.probe.p99Ms));
    v.signup_probe_max_ms = median(rounds.map((s) => s.probe.maxMs));
    v.signup_cpu_ms = median(rounds.map((s) => s.cpuMs / s.clients));
  }
}

async function idleRuns(b: Bench) {
  const tpl2k = await b.template(2048);
  for (const [t, v, r] of b.targets) {
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
    if (i.failed) b.notes.push(`${t.label} idle: ${i.failed} connections failed: ${i.firstError}`);
    if (i.afterWait) {
      log(
        `  after ${opts.idleWaitMs / 1000} s more: RSS ${mb(i.afterWait.rssKb).toFixed(1)} MB ` +
          `(${i.afterWait.processes} processes)`,
      );
    }
    if (t.key === "ref" && b.ref) {
      const warnings = b.ref.dovecotWarnings();
      for (const w of warnings.slice(0, 5)) b.notes.push(`dovecot.log: ${w}`);
      if (warnings.some((w) => w.includes("Inotify instance limit"))) {
        b.notes.push(
          "Dovecot ran out of inotify instances (one per imap process; fs.inotify." +
            "max_user_instances is per user): those sessions poll for changes every 30 s instead " +
            "of being told at once, and are not hibernated; --raise-inotify lifts the limit for a run",
        );
      }
    }
    if (i.woken < i.wakeTargets) {
      b.notes.push(
        `${t.label} idle: only ${i.woken}/${i.wakeTargets} connections of the woken user saw ` +
          "EXISTS within 10 s",
      );
    }
  }
}

async function fetchRuns(b: Bench) {
  for (
    const [size, bytes, n, user] of [
      ["2k", 2048, opts.fetch2kMessages, "fa0000000"],
      ["100k", 100 * 1024, opts.fetch100kMessages, "fb0000000"],
    ] as const
  ) {
    const tpl = await b.template(bytes);
    for (const [t, v, r] of b.targets) {
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

async function deltachatRuns(b: Bench) {
  for (const [t, v, r] of b.targets) {
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
    if (d.firstError) b.notes.push(`${t.label} deltachat: ${d.firstError}`);
  }
}

async function irohRuns(b: Bench) {
  log("tern: iroh relay, two clients: throughput (HTTP, HTTPS) and round trips");
  const res = await irohBench(b.tern!, {
    durationMs: opts.durationMs,
    roundTrips: opts.irohRoundTrips,
    log: (m) => log(`  ${m}`),
  });
  const v = b.tv;
  b.raw.tern.iroh = res;
  v.iroh_http_mb_s = res.http.mbPerSec;
  v.iroh_https_mb_s = res.https.mbPerSec;
  v.iroh_http_cpu_ms_mb = res.http.cpuMsPerMb;
  v.iroh_https_cpu_ms_mb = res.https.cpuMsPerMb;
  v.iroh_rtt_p50_ms = res.rttP50Ms;
  v.iroh_rtt_p99_ms = res.rttP99Ms;
  v.iroh_added_ms = res.addedLatencyMs;
  b.notes.push(
    "iroh relay: tern only (the reference stack runs no iroh relay here); 1200-byte packets, " +
      "a 512-packet window acknowledged through the relay; the clients run in the benchmark process",
  );
}

/** Raises fs.inotify.max_user_instances to at least `want` for this run; restored at the end. */
async function scaleRuns(b: Bench) {
  const tpl2k = await b.template(2048);
  Object.assign(b.labels, scaleLabels(opts.scaleSizes));
  for (const [t, v, r] of b.targets) {
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
    if (s.firstError) b.notes.push(`${t.label} scale: ${s.firstError}`);
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

function ternSide(t: TernBench, ip: string): FedSide {
  return {
    label: `tern ${ip}`,
    host: ip,
    submissionsPort: t.port("submissions"),
    imapsPort: t.port("imaps"),
    caPem: t.caPem,
    pass: PASS,
    cpuMs: () => treeCpuMs([t.pid]),
    addr: (u) => `${u}@[${ip}]`,
    ensureUsers: jitUsers(t.port("imaps"), t.caPem, ip),
  };
}

function refSide(r: RefStack): FedSide {
  const known = new Set<string>();
  return {
    label: `postfix ${r.domain}`,
    host: "127.0.0.1",
    submissionsPort: r.submissionsPort,
    imapsPort: r.imapsPort,
    caPem: r.caPem,
    pass: PASS,
    cpuMs: () => treeCpuMs([r.dovecotPid() ?? -1, r.postfixPid() ?? -1]),
    addr: (u) => `${u}@${r.domain}`,
    async ensureUsers(users) {
      const todo = [...new Set(users)].filter((u) => !known.has(u));
      await r.addUsers(todo.map((u) => ({ user: `${u}@${r.domain}`, pass: PASS })));
      for (const u of todo) known.add(u);
    },
  };
}

function fedValues(v: Values, prefix: string, f: FederationResult) {
  v[`${prefix}_accepted_s`] = f.acceptedPerSec;
  v[`${prefix}_landed_s`] = f.landedPerSec;
  v[`${prefix}_drain_s`] = f.drainSeconds;
  v[`${prefix}_p50_ms`] = f.p50Ms;
  v[`${prefix}_p99_ms`] = f.p99Ms;
  v[`${prefix}_lost`] = f.lost;
  v[`${prefix}_cpu_ms`] = f.cpuMsPerMsgFrom + f.cpuMsPerMsgTo;
}

/**
 * 2 000 messages from one server to another on loopback, then again while a silent peer (a host
 * that accepts connections and never answers, 127.0.0.4 ports 25 and 443) holds 20 messages of
 * the sending side. tern → tern (IP-literal relays on 127.0.0.2 and 127.0.0.3, /mxdeliv on 443)
 * and Postfix → Postfix (two stacks, the first routing the second's domain to its port 25).
 */
async function federationRuns(
  tpl: MessageTemplate,
  tv: Values,
  rv: Values,
  raw: { tern: Raw; ref: Raw },
  notes: string[],
): Promise<{ refMeasured: boolean; refError: string }> {
  const run = {
    messages: opts.federationMessages,
    sessions: 8,
    recipients: 50,
    timeoutMs: 120_000,
  };
  const sides: {
    label: string;
    v: Values;
    r: Raw;
    start(): Promise<[FedSide, FedSide, string]>;
  }[] = [
    {
      label: "tern → tern",
      v: tv,
      r: raw.tern,
      async start() {
        // B takes the standard ports on its own address, as a relay on the internet does. Both
        // deliver to loopback addresses, which outbound delivery refuses unless allowed.
        const extraToml = "outbound_allow_private = true";
        const b = await startTernBench({
          ip: "127.0.0.3",
          listen: { smtp: "127.0.0.3:25", https: "127.0.0.3:443" },
          extraToml,
        });
        cleanups.push(() => b.stop());
        const a = await startTernBench({ ip: "127.0.0.2", extraToml });
        cleanups.push(() => a.stop());
        return [ternSide(a, "127.0.0.2"), ternSide(b, "127.0.0.3"), "x@[127.0.0.4]"];
      },
    },
  ];
  let refError = "";
  if (flags["no-refstack"]) refError = "--no-refstack given";
  else {
    sides.push({
      label: "postfix → postfix",
      v: rv,
      r: raw.ref,
      async start() {
        const b = await startRefStack({ domain: "refb.test" });
        cleanups.push(() => b.stop());
        const a = await startRefStack({
          domain: "refa.test",
          transports: {
            "refb.test": `smtp:[127.0.0.1]:${b.smtpPort}`,
            "silent.test": "smtp:[127.0.0.4]:25",
          },
        });
        cleanups.push(() => a.stop());
        return [refSide(a), refSide(b), "x@silent.test"];
      },
    });
  }
  let refMeasured = false;
  for (const side of sides) {
    let pair: [FedSide, FedSide, string];
    log(`${side.label}: starting both servers`);
    try {
      pair = await side.start();
    } catch (err) {
      const why = (err as Error).message.split("\n")[0];
      if (side.v === rv) refError = why;
      notes.push(`${side.label}: not measured: ${why}`);
      continue;
    }
    const [a, b, silentAddress] = pair;
    // Warm-up (not measured): first logins, TLS sessions, JIT of the server code.
    await federationRun(a, b, tpl, { ...run, messages: 200, tag: "w" });
    log(
      `${side.label}: ${run.messages} messages, ${run.sessions} sessions, ${run.recipients} recipients`,
    );
    const plain = await federationRun(a, b, tpl, { ...run, tag: "p" });
    side.r.federation = plain;
    fedValues(side.v, "fed", plain);
    log(
      `  accepted ${plain.acceptedPerSec.toFixed(0)}/s, landed ${
        plain.landedPerSec.toFixed(0)
      }/s, ` +
        `250→EXISTS p50 ${plain.p50Ms.toFixed(0)} ms p99 ${
          plain.p99Ms.toFixed(0)
        } ms, lost ${plain.lost}`,
    );
    const silent = await silentHost("127.0.0.4", [25, 443]);
    try {
      const held = await sendTo(a, tpl, userName("fzs", 0), silentAddress, 20);
      await sleep(1000);
      const hanging = silent.open;
      log(
        `${side.label}: again with a silent peer holding ${held} messages (${hanging} connections open)`,
      );
      const withSilent = await federationRun(a, b, tpl, { ...run, tag: "q" });
      side.r.federationSilent = {
        ...withSilent,
        silentConnections: hanging,
        silentAtEnd: silent.open,
      };
      fedValues(side.v, "fedsilent", withSilent);
      log(
        `  accepted ${withSilent.acceptedPerSec.toFixed(0)}/s, landed ${
          withSilent.landedPerSec.toFixed(0)
        }/s, p50 ${withSilent.p50Ms.toFixed(0)} ms p99 ${
          withSilent.p99Ms.toFixed(0)
        } ms, lost ${withSilent.lost}; silent peer connections now ${silent.open}`,
      );
      if (hanging === 0) notes.push(`${side.label}: the silent peer held no connection (check it)`);
    } finally {
      await silent.close();
    }
    // A control: the plain run once more after the silent peer left. Runs later in a session
    // are slower on a loaded machine (and the servers hold more mail); this tells that apart
    // from what the silent peer did.
    log(`${side.label}: again without the silent peer (control)`);
    const control = await federationRun(a, b, tpl, { ...run, tag: "c" });
    side.r.federationControl = control;
    log(
      `  accepted ${control.acceptedPerSec.toFixed(0)}/s, landed ${
        control.landedPerSec.toFixed(0)
      }/s, p50 ${control.p50Ms.toFixed(0)} ms p99 ${
        control.p99Ms.toFixed(0)
      } ms, lost ${control.lost}`,
    );
    notes.push(
      `${side.label} federation control (no silent peer, after it): accepted ${
        control.acceptedPerSec.toFixed(0)
      }/s, p50 ${control.p50Ms.toFixed(0)} ms, p99 ${
        control.p99Ms.toFixed(0)
      } ms, lost ${control.lost}`,
    );
    for (const f of [plain, side.r.federationSilent as FederationResult, control]) {
      if (f.firstError) notes.push(`${side.label} federation: ${f.firstError}`);
    }
    if (side.v === rv) refMeasured = true;
  }
  return { refMeasured, refError };
}

/** Raises fs.inotify.max_user_instances to at least `want` for this run; restored at the end. */
/** The federation scenario: servers of its own on each side. */
async function federationScenario(b: Bench) {
  const f = await federationRuns(await b.template(2048), b.tv, b.rv, b.raw, b.notes);
  if (f.refMeasured) b.refFigures = true;
  else if (f.refError) b.notes.push(`federation: reference not measured: ${f.refError}`);
}

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
  if (flags["cpu-prof"] && !interrupted) {
    try {
      console.log(await summarizeProfiles(flags["cpu-prof"]));
    } catch (err) {
      console.error(`cpu profiles: ${(err as Error).message}`);
    }
  }
}
Deno.exit(code);
