// Soak test: does a busy tern keep its memory flat and deliver every message? Not part of the test
// suite; it runs for minutes.
//
//   scripts/deno run -A scripts/soak.ts [--minutes 10] [--rate 50]
//
// What it does
//   Starts a real tern process (scripts/bench/tern.ts: fresh temp data dir, logging off, send and
//   connection limits raised), creates 50 accounts (JIT, by logging in once), then for --minutes
//   runs a mixed load at the same time:
//   - submission: about --rate encrypted (PGP/MIME) messages per second over implicit-TLS
//     submission, each from a random one of the 50 accounts to a random watched account (one of
//     the 20 below). Every sender keeps its SMTP session and reconnects after 100 messages.
//   - 20 watchers: one IMAP session per watched account that IDLEs; on each EXISTS it leaves IDLE,
//     UID FETCHes the new messages (ENVELOPE and the whole body), STOREs \Seen on them and IDLEs
//     again. Every message carries its own Message-ID, so each one is matched to its submission.
//   - janitor: every 30 s a separate IMAP session per watched account deletes every message older
//     than 1 minute (UID SEARCH OLDER 60, STORE \Deleted, UID EXPUNGE), so mailboxes stay small.
//   - churn: one new IMAP connection per second, LOGIN as a random account, LOGOUT.
//   Every 10 s it samples tern's resident memory (VmRSS in /proc/<pid>/status; the pid is the one
//   in tern's ready line) and the counters below. When the time is up, sending stops, the watchers
//   get up to 30 s to see the last messages, everything is shut down and the report printed.
//
// How to read the report
//   The table has one row per sample: t (s since the load began), rss_mb (tern's VmRSS),
//   submitted / accepted (SMTP 250) / delivered (seen by a watcher after its EXISTS) / errors,
//   all cumulative; pending = accepted but not yet seen; expunged and logins (churn) cumulative;
//   msg/s = messages accepted in the interval per second; p50/p99 ms = submission start until a
//   watcher fetched the message, for the messages seen in the interval.
//   The verdict fits a least-squares line through the samples of the second half of the run
//   (the first half is warm-up: caches, JIT, heap sizing) and gives its slope in MB per minute:
//   below 1 MB/min is "flat", otherwise "GROWING". "lost" counts messages that were accepted but
//   never seen by a watcher; it must be 0. The exit status is 0 only when memory is flat, nothing
//   was lost and no error occurred (SMTP rejections, broken sessions, duplicate or misdelivered
//   messages all count as errors); the first few errors are listed.
//
// Steady state: mailboxes only stop growing once the janitor deletes for the first time (about
// 90 s into the load), and RSS settles some minutes later, so runs shorter than about 5 minutes
// judge the warm-up and usually report GROWING; use them only to check that the script works.
//
// Duration: setup takes a few seconds (message template, tern start, 50 logins), then --minutes of
// load, then usually well under a second of drain (at most 30 s) and shutdown; the default run
// takes a little over 10 minutes. Ctrl-C stops the load early, still prints what was sampled and removes the
// tern process and its temp dir (a second Ctrl-C quits at once, still cleaning up).

import { parseArgs } from "node:util";
import { Imap, Smtp } from "./bench/clients.ts";
import { messageTemplate } from "./bench/messages.ts";
import type { MessageTemplate } from "./bench/messages.ts";
import { startTernBench } from "./bench/tern.ts";
import type { TernBench } from "./bench/tern.ts";
import { now, percentile, pool, procMem, userName } from "./bench/util.ts";

// ---- options -------------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "50" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log(
    "usage: scripts/deno run -A scripts/soak.ts [--minutes 10] [--rate 50]\n" +
      "Mixed SMTP/IMAP load against a fresh tern; samples tern's RSS every 10 s and fails when\n" +
      "memory grows (> 1 MB/min over the second half), messages are lost or errors occur.",
  );
  Deno.exit(0);
}
const MINUTES = Number(flags.minutes);
const RATE = Number(flags.rate);
if (!(MINUTES > 0) || !(RATE > 0)) {
  console.error("--minutes and --rate must be positive numbers");
  Deno.exit(2);
}

const ACCOUNTS = 50;
const WATCHED = 20;
const PASS = "soakpass1234";
const MESSAGE_BYTES = 2048;
const SAMPLE_MS = 10_000;
const JANITOR_MS = 30_000;
const MAX_AGE_S = 60;
const CHURN_MS = 1_000;
const SMTP_MESSAGES_PER_SESSION = 100;
const DRAIN_MS = 30_000;
const FLAT_MB_PER_MIN = 1;
/** Submissions in flight beyond this are skipped (counted as "behind"), not queued up. */
const MAX_IN_FLIGHT = Math.max(100, Math.ceil(RATE * 2));

const RUN = Date.now().toString(36);
const enc = new TextEncoder();
const log = (msg: string) =>
  console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ---- shared state --------------------------------------------------------------------------------

interface Account {
  user: string;
  addr: string;
}

interface Sent {
  /** Index of the recipient among the watched accounts. */
  to: number;
  /** performance.now() when the submission started. */
  t: number;
  /** true: 250; false: refused or the session broke (outcome unknown); null: still sending. */
  accepted: boolean | null;
  seen: boolean;
}

const counts = {
  submitted: 0,
  accepted: 0,
  delivered: 0,
  errors: 0,
  expunged: 0,
  logins: 0,
  smtpSessions: 0,
  behind: 0,
};
/** Message-ID → what happened to that message. */
const sent = new Map<string, Sent>();
/** Submission-to-seen latencies since the last sample, ms. */
let latencies: number[] = [];
const errorLog = new Map<string, number>();

function error(where: string, err: unknown) {
  counts.errors++;
  const msg = `${where}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200);
  if (errorLog.size < 20 || errorLog.has(msg)) errorLog.set(msg, (errorLog.get(msg) ?? 0) + 1);
  if (counts.errors <= 5) log(`error: ${msg}`);
}

/** Set when the run winds down (load over, or interrupted): background loops end. */
let stopping = false;
/** Set by Ctrl-C / SIGTERM: the load and the drain end early. */
let interrupted = false;
/** Aborted at either of the two, to cut every pending sleep short. */
const wake = new AbortController();
/** Every connection open right now, so that shutdown can cut them all. */
const openConns = new Set<{ close(): void }>();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (wake.signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      wake.signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    wake.signal.addEventListener("abort", done);
  });
}

/** A compact IMAP sequence set ("3:7,9") of ascending numbers. */
function seqSet(nums: number[]): string {
  const s = [...nums].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    parts.push(j > i ? `${s[i]}:${s[j]}` : `${s[i]}`);
    i = j + 1;
  }
  return parts.join(",");
}

let tern: TernBench | null = null;
let ternStarting: Promise<TernBench> | null = null;

async function imapLogin(account: Account): Promise<Imap> {
  const c = await Imap.connect(tern!.port("imaps"), tern!.caPem);
  openConns.add(c);
  try {
    await c.login(account.addr, PASS);
  } catch (err) {
    closeImap(c);
    throw err;
  }
  return c;
}

function closeImap(c: Imap) {
  c.close();
  openConns.delete(c);
}

// ---- submission ----------------------------------------------------------------------------------

interface Sender extends Account {
  smtp: Smtp | null;
  messages: number;
  queue: Promise<void>;
}

let inFlight = 0;
let seq = 0;

async function submit(tpl: MessageTemplate, s: Sender, watched: Account[], to: number) {
  const rcpt = watched[to];
  const id = `s${++seq}.${RUN}@soak.localhost`;
  const entry: Sent = { to, t: now(), accepted: null, seen: false };
  sent.set(id, entry);
  counts.submitted++;
  try {
    if (!s.smtp) {
      const c = await Smtp.connect(tern!.port("submissions"), tern!.caPem);
      try {
        await c.login(s.addr, PASS);
      } catch (err) {
        c.wire.close();
        throw err;
      }
      s.smtp = c;
      openConns.add(c.wire);
      counts.smtpSessions++;
    }
    const head = enc.encode(
      tpl.head.replace("FROMADDR", s.addr).replace("TOADDR", rcpt.addr).replace("MSGID", id),
    );
    const r = await s.smtp.send(s.addr, rcpt.addr, head, tpl.smtpBody);
    if (r.code === 250) {
      entry.accepted = true;
      counts.accepted++;
    } else {
      entry.accepted = false;
      error("SMTP refused", r.text.replace(/\n/g, " "));
    }
    if (++s.messages % SMTP_MESSAGES_PER_SESSION === 0) {
      const c = s.smtp;
      s.smtp = null;
      openConns.delete(c.wire);
      await c.quit();
    }
  } catch (err) {
    entry.accepted ??= false;
    if (!stopping) error(`SMTP ${s.user}`, err);
    if (s.smtp) {
      s.smtp.wire.close();
      openConns.delete(s.smtp.wire);
      s.smtp = null;
    }
  }
}

// ---- watchers: IDLE, fetch on EXISTS, \Seen ------------------------------------------------------

interface Watcher {
  index: number;
  account: Account;
  /** Highest UID fetched so far. */
  lastUid: number;
  done: Promise<void>;
}

const EXISTS = /^\* (\d+) EXISTS/;

/** Fetches everything above lastUid; returns whether another EXISTS arrived meanwhile. */
async function fetchNew(c: Imap, w: Watcher): Promise<boolean> {
  const r = await c.cmd(`UID FETCH ${w.lastUid + 1}:* (UID ENVELOPE BODY.PEEK[])`);
  if (!r.ok) throw new Error(`UID FETCH: ${r.status}`);
  let more = r.untagged.some((l) => EXISTS.test(l));
  const uids: number[] = [];
  for (const line of r.untagged) {
    const u = /^\* \d+ FETCH \(.*\bUID (\d+)/.exec(line);
    const m = /ENVELOPE \(.*<(s\d+\.[0-9a-z]+@soak\.localhost)>/.exec(line);
    if (!u || !m) continue; // e.g. flag updates caused by the janitor
    const uid = Number(u[1]);
    if (uid <= w.lastUid) continue; // "n:*" also names the last message when nothing is newer
    uids.push(uid);
    const e = sent.get(m[1]);
    if (!e) error(`watcher ${w.account.user}`, `unknown message ${m[1]}`);
    else if (e.seen) error(`watcher ${w.account.user}`, `duplicate message ${m[1]}`);
    else {
      e.seen = true;
      counts.delivered++;
      latencies.push(now() - e.t);
      if (e.to !== w.index) error(`watcher ${w.account.user}`, `misdelivered ${m[1]}`);
      if (e.accepted === false) error(`watcher ${w.account.user}`, `delivered but refused ${m[1]}`);
    }
  }
  if (uids.length) {
    w.lastUid = Math.max(w.lastUid, ...uids);
    const s = await c.cmd(`UID STORE ${seqSet(uids)} +FLAGS.SILENT (\\Seen)`);
    if (!s.ok) throw new Error(`UID STORE \\Seen: ${s.status}`);
    more ||= s.untagged.some((l) => EXISTS.test(l));
  }
  return more;
}

async function watch(w: Watcher) {
  while (!stopping && !interrupted) {
    let c: Imap | null = null;
    try {
      c = await imapLogin(w.account);
      let more = (await c.select()) > 0; // after a reconnect: catch up on what came meanwhile
      while (!stopping && !interrupted) {
        while (more) more = await fetchNew(c, w);
        const tag = await c.idle();
        while (true) {
          const r = await c.response();
          if (EXISTS.test(r.text)) break;
          if (r.text.startsWith(`${tag} `) || r.text.startsWith("* BYE")) {
            throw new Error(`IDLE ended: ${r.text}`);
          }
        }
        await c.wire.write("DONE\r\n");
        const d = await c.collect(tag);
        if (!d.ok) throw new Error(`IDLE: ${d.status}`);
        more = true;
      }
    } catch (err) {
      if (stopping) break;
      error(`watcher ${w.account.user}`, err);
      await sleep(1000);
    } finally {
      if (c) closeImap(c);
    }
  }
}

// ---- janitor: delete what is older than a minute -------------------------------------------------

async function janitorRound(watched: Account[]) {
  for (const a of watched) {
    if (stopping || interrupted) return;
    let c: Imap | null = null;
    try {
      c = await imapLogin(a);
      await c.select();
      const s = await c.cmd(`UID SEARCH OLDER ${MAX_AGE_S}`);
      if (!s.ok) throw new Error(`UID SEARCH OLDER: ${s.status}`);
      const line = s.untagged.find((l) => l.startsWith("* SEARCH"));
      const uids = (line ?? "").slice("* SEARCH".length).trim().split(/\s+/).filter(Boolean)
        .map(Number);
      if (uids.length) {
        const set = seqSet(uids);
        const st = await c.cmd(`UID STORE ${set} +FLAGS.SILENT (\\Deleted)`);
        if (!st.ok) throw new Error(`UID STORE \\Deleted: ${st.status}`);
        const ex = await c.cmd(`UID EXPUNGE ${set}`);
        if (!ex.ok) throw new Error(`UID EXPUNGE: ${ex.status}`);
        counts.expunged += ex.untagged.filter((l) => /^\* \d+ EXPUNGE/.test(l)).length;
      }
      await c.cmd("LOGOUT");
    } catch (err) {
      if (!stopping) error(`janitor ${a.user}`, err);
    } finally {
      if (c) closeImap(c);
    }
  }
}

async function janitor(watched: Account[]) {
  while (!stopping && !interrupted) {
    await sleep(JANITOR_MS);
    if (!stopping && !interrupted) await janitorRound(watched);
  }
}

// ---- churn: a fresh login every second ------------------------------------------------------------

async function churn(accounts: Account[]) {
  while (!stopping && !interrupted) {
    const t = now();
    const a = accounts[Math.floor(Math.random() * accounts.length)];
    let c: Imap | null = null;
    try {
      c = await imapLogin(a);
      const r = await c.cmd("LOGOUT");
      if (!r.ok) throw new Error(`LOGOUT: ${r.status}`);
      counts.logins++;
    } catch (err) {
      if (!stopping) error(`churn ${a.user}`, err);
    } finally {
      if (c) closeImap(c);
    }
    await sleep(Math.max(0, CHURN_MS - (now() - t)));
  }
}

// ---- samples and the verdict ----------------------------------------------------------------------

interface Sample {
  t: number;
  rssMb: number;
  submitted: number;
  accepted: number;
  delivered: number;
  pending: number;
  errors: number;
  expunged: number;
  logins: number;
  perSec: number;
  p50: number;
  p99: number;
}

const samples: Sample[] = [];

function pendingCount(): number {
  let n = 0;
  for (const e of sent.values()) if (e.accepted === true && !e.seen) n++;
  return n;
}

const HEADER = ["t s", "rss_mb", "submitted", "accepted", "delivered", "pending", "errors"]
  .concat(["expunged", "logins", "msg/s", "p50 ms", "p99 ms"]);

function row(s: Sample): string[] {
  const ms = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(0);
  return [
    s.t.toFixed(0),
    s.rssMb.toFixed(1),
    ...[s.submitted, s.accepted, s.delivered, s.pending, s.errors, s.expunged, s.logins]
      .map(String),
    s.perSec.toFixed(1),
    ms(s.p50),
    ms(s.p99),
  ];
}

function formatTable(rows: string[][]): string {
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [line(HEADER), ...rows.map(line)].join("\n");
}

let lastSampleAccepted = 0;
let lastSampleT = 0;

/** Takes a sample; null when the tern process is gone. */
function sample(t: number): Sample | null {
  const mem = procMem(tern!.pid);
  if (!mem) return null;
  const lat = latencies;
  latencies = [];
  const dt = t - lastSampleT;
  const s: Sample = {
    t,
    rssMb: mem.rssKb / 1024,
    submitted: counts.submitted,
    accepted: counts.accepted,
    delivered: counts.delivered,
    pending: pendingCount(),
    errors: counts.errors,
    expunged: counts.expunged,
    logins: counts.logins,
    perSec: dt > 0 ? (counts.accepted - lastSampleAccepted) / dt : 0,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
  };
  lastSampleAccepted = counts.accepted;
  lastSampleT = t;
  samples.push(s);
  log(row(s).map((c, i) => `${HEADER[i]} ${c}`).join(", "));
  return s;
}

/** Least-squares slope of rss_mb over time, MB per minute. */
function slopeMbPerMin(points: Sample[]): number {
  if (points.length < 2) return NaN;
  const xs = points.map((p) => p.t / 60), ys = points.map((p) => p.rssMb);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0, den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den > 0 ? num / den : NaN;
}

// ---- cleanup, also on Ctrl-C ----------------------------------------------------------------------

let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    stopBackground();
    openConns.clear();
    const t = tern ?? await ternStarting?.catch(() => null);
    await t?.stop();
  })();
  return cleaning;
}

function stopBackground() {
  stopping = true;
  wake.abort();
  for (const c of openConns) c.close();
  openConns.clear();
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    if (!interrupted) {
      interrupted = true;
      log(`${sig}: stopping the load (again to quit at once)`);
      wake.abort();
      const force = setTimeout(() => cleanup().finally(() => Deno.exit(130)), 20_000);
      Deno.unrefTimer(force);
    } else {
      log(`${sig}: quitting`);
      cleanup().finally(() => Deno.exit(130));
    }
  });
}

// ---- the run -------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = now();
  log(`soak: ${MINUTES} min at ${RATE} msg/s, ${ACCOUNTS} accounts, ${WATCHED} IDLE watchers`);
  const tpl = await messageTemplate(MESSAGE_BYTES);
  if (interrupted) return 130;
  ternStarting = startTernBench();
  tern = await ternStarting;
  log(`tern pid ${tern.pid} ready in ${(tern.readyMs / 1000).toFixed(1)} s, data in ${tern.dir}`);

  const accounts: Account[] = Array.from({ length: ACCOUNTS }, (_, i) => {
    const user = userName("soak", i);
    return { user, addr: `${user}@[127.0.0.1]` };
  });
  // accounts are created on their first login (JIT)
  await pool(accounts, 8, async (a) => {
    const c = await imapLogin(a);
    try {
      await c.cmd("LOGOUT");
    } finally {
      closeImap(c);
    }
  });
  const watched = accounts.slice(0, WATCHED);
  const senders: Sender[] = accounts.map((a) => ({
    ...a,
    smtp: null,
    messages: 0,
    queue: Promise.resolve(),
  }));
  log(`${ACCOUNTS} accounts created`);

  const watchers: Watcher[] = watched.map((account, index) => ({
    index,
    account,
    lastUid: 0,
    done: Promise.resolve(),
  }));
  for (const w of watchers) w.done = watch(w);
  const background = [janitor(watched), churn(accounts)];
  await sleep(1000); // let the watchers reach IDLE

  // load: a pacing loop that also takes the samples
  const durationMs = MINUTES * 60_000;
  const t0 = now();
  let scheduled = 0;
  let nextSample = 0;
  let ternGone = false;
  log(`load for ${MINUTES} min`);
  while (!interrupted) {
    const elapsed = now() - t0;
    if (elapsed >= nextSample) {
      if (!sample(Math.round(nextSample / 1000))) {
        ternGone = true;
        error("tern", "process is gone");
        break;
      }
      nextSample += SAMPLE_MS;
    }
    if (elapsed >= durationMs) break;
    const due = Math.floor((elapsed / 1000) * RATE);
    while (scheduled < due) {
      scheduled++;
      if (inFlight >= MAX_IN_FLIGHT) {
        counts.behind++;
        continue;
      }
      const s = senders[Math.floor(Math.random() * senders.length)];
      let to = Math.floor(Math.random() * WATCHED);
      if (watched[to].user === s.user) to = (to + 1) % WATCHED;
      inFlight++;
      s.queue = s.queue.then(() => submit(tpl, s, watched, to)).finally(() => inFlight--);
    }
    await sleep(Math.min(20, Math.max(1, nextSample - (now() - t0))));
  }
  const loadSeconds = (now() - t0) / 1000;

  // drain: finish the submissions in flight, give the watchers time to see the last messages
  log(`load ended after ${loadSeconds.toFixed(0)} s; draining`);
  await Promise.all(senders.map((s) => s.queue));
  const drainStart = now();
  while (!ternGone && !interrupted && pendingCount() > 0) {
    if (now() - drainStart > DRAIN_MS) break;
    await sleep(100);
  }
  const drainSeconds = (now() - drainStart) / 1000;

  stopBackground();
  await Promise.all([...watchers.map((w) => w.done), ...background]);
  const ternErr = tern.stderr();
  await cleanup();

  // ---- report ----
  const lost = [...sent.entries()].filter(([, e]) => e.accepted === true && !e.seen);
  const second = samples.filter((s) => s.t >= Math.round(loadSeconds) / 2);
  const slope = slopeMbPerMin(second);
  const flat = Number.isFinite(slope) && slope < FLAT_MB_PER_MIN;
  const first = samples[0], last = samples[samples.length - 1];

  console.log("");
  console.log(formatTable(samples.map(row)));
  console.log("");
  console.log(
    `load ${loadSeconds.toFixed(0)} s, drain ${drainSeconds.toFixed(1)} s, total ` +
      `${((now() - started) / 1000).toFixed(0)} s; ${counts.smtpSessions} SMTP sessions; ` +
      `${counts.behind} submissions skipped because ${MAX_IN_FLIGHT} were in flight`,
  );
  if (first && last) {
    console.log(
      `rss: ${first.rssMb.toFixed(1)} MB at t=${first.t} s, ${last.rssMb.toFixed(1)} MB at ` +
        `t=${last.t} s, max ${Math.max(...samples.map((s) => s.rssMb)).toFixed(1)} MB`,
    );
  }
  console.log(
    `memory: slope ${Number.isFinite(slope) ? slope.toFixed(2) : "n/a"} MB/min over the second ` +
      `half (${second.length} samples from t=${second[0]?.t ?? "-"} s) -> ` +
      `${flat ? "flat" : Number.isFinite(slope) ? "GROWING" : "UNKNOWN (too few samples)"}`,
  );
  console.log(
    `messages: ${counts.submitted} submitted, ${counts.accepted} accepted, ${counts.delivered} ` +
      `seen via IDLE, lost ${lost.length}`,
  );
  for (const [id, e] of lost.slice(0, 5)) {
    console.log(`  lost ${id} to ${watched[e.to].user}`);
  }
  console.log(`errors: ${counts.errors}`);
  for (const [msg, n] of errorLog) console.log(`  ${n} x ${msg}`);
  if (MINUTES < 5) {
    console.log(
      `note: ${MINUTES} min is too short for a memory verdict (steady state needs about 5 min)`,
    );
  }
  if (ternErr.trim()) console.log(`tern stderr (tail):\n${ternErr.slice(-2000)}`);

  const ok = flat && lost.length === 0 && counts.errors === 0 && !interrupted;
  console.log(
    ok ? "PASS" : `FAIL${interrupted ? " (interrupted)" : ""}: ${
      [
        !flat && (Number.isFinite(slope) ? "memory grows" : "memory slope unknown"),
        lost.length > 0 && "lost messages",
        counts.errors > 0 && "errors",
      ].filter(Boolean).join(", ") || "incomplete run"
    }`,
  );
  return interrupted ? 130 : ok ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`soak: ${err instanceof Error ? err.stack : err}`);
  code = 1;
} finally {
  await cleanup();
}
Deno.exit(code);
