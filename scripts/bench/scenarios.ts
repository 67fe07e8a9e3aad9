// The measurements, each run the same way against any Target (tern or the reference stack).

import { startNoopProbe } from "./noop_probe.ts";
import { Imap, Smtp } from "./clients.ts";
import { appendMessage, headFor } from "./messages.ts";
import type { MessageTemplate } from "./messages.ts";
import { now, percentile, pool, selfCpuMs, sleep, userName } from "./util.ts";
import type { Mem } from "./util.ts";

export const PASS = "benchpass1234";

export interface Target {
  key: "tern" | "ref";
  label: string;
  /** Implicit-TLS submission port. */
  smtpPort: number;
  /** Implicit-TLS IMAP port. */
  imapPort: number;
  caPem: string;
  /** The address of a local user name. */
  addr(user: string): string;
  /** Makes sure the accounts exist (not timed by the scenarios that use them). */
  ensureUsers(users: string[]): Promise<void>;
  /** Memory of the processes that serve IMAP. */
  imapMem(): Mem;
  /** Memory of every server process. */
  totalMem(): Mem;
  /** CPU time (ms) all server processes used so far. */
  cpuMs(): number;
  /**
   * CPU time (ms) of the server's main thread alone, where it has one that bounds it (tern: the
   * sessions, TLS and the gate run there). Unlike a wall-clock profile's busy time it does not
   * count the time the thread waited for a core on a loaded machine.
   */
  mainThreadCpuMs?(): number;
  /** System calls of the server processes so far (treeSyscalls). */
  syscalls(): { reads: number; writes: number };
  /** Bytes stored for a user's mail (tern: its whole data directory). */
  storageBytes?(user: string): number;
  /**
   * Runs the maintenance an operator's server runs on its own schedule (tern: the hourly
   * free-bodies and reclaim-space tasks), so storage is measured as it settles.
   */
  maintain?(): Promise<void>;
}

export type Log = (msg: string) => void;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function imapSession(t: Target, user: string, bufSize?: number): Promise<Imap> {
  const c = await Imap.connect(t.imapPort, t.caPem, bufSize);
  try {
    await c.login(t.addr(user), PASS);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

async function smtpSession(t: Target, user: string): Promise<Smtp> {
  const c = await Smtp.connect(t.smtpPort, t.caPem);
  try {
    await c.login(t.addr(user), PASS);
  } catch (err) {
    c.wire.close();
    throw err;
  }
  return c;
}

/** Waits for `p` at most `ms`; NaN on timeout. The timer never outlives the wait. */
async function within(p: Promise<number>, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<number>((r) => timer = setTimeout(() => r(NaN), ms));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- 1. submission throughput ----------------------------------------------------------------

export interface SubmissionResult {
  sessions: number;
  messageBytes: number;
  pipelining: boolean;
  sendSeconds: number;
  accepted: number;
  rejected: number;
  firstError: string;
  acceptedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  delivered: number;
  /** Seconds from the first MAIL until every accepted message was in an INBOX (or the drain ended). */
  deliverSeconds: number;
  deliveredPerSec: number;
  /** Seconds the last deliveries trailed the end of sending. */
  drainSeconds: number;
  /** Server CPU time per delivered message, from the first MAIL until all were delivered. */
  serverCpuMsPerMsg: number;
  /** The main thread's share of it (NaN when the target has no such figure). */
  mainThreadCpuMsPerMsg: number;
  /** The server's read and write system calls per delivered message (live processes only). */
  serverReadsPerMsg: number;
  serverWritesPerMsg: number;
  /** CPU the benchmark client itself used while sending, % of one core. */
  clientCpuPct: number;
  /** NOOP round trips of a bystander IMAP session while the others submit (ms). */
  noops: number;
  noopP50Ms: number;
  noopP99Ms: number;
  noopMaxMs: number;
}

export async function submission(
  t: Target,
  tpl: MessageTemplate,
  opts: { sessions: number; durationMs: number; drainTimeoutMs: number; rcptPrefix: string },
): Promise<SubmissionResult> {
  const senders = range(opts.sessions).map((i) => userName("sd", i));
  const rcpts = range(opts.sessions).map((i) => userName(opts.rcptPrefix, i));
  const bystanderUser = userName("nb", 0);
  await t.ensureUsers([...senders, ...rcpts, bystanderUser]);
  const pollers = await Promise.all(rcpts.map((r) => imapSession(t, r)));
  const sessions = await Promise.all(senders.map((s) => smtpSession(t, s)));
  // Another user's session while everyone submits: how long does a NOOP wait? (Its own thread.)
  const bystander = await startNoopProbe({
    imapPort: t.imapPort,
    caPem: t.caPem,
    address: t.addr(bystanderUser),
    password: PASS,
  });
  try {
    const base = sum(await Promise.all(pollers.map((p) => p.messages())));
    const lat: number[] = [];
    let accepted = 0, rejected = 0, firstError = "";
    let sendDone = false, tSendEnd = 0, clientCpuEnd = 0;
    const cpu0 = t.cpuMs(), sys0 = t.syscalls(), clientCpu0 = selfCpuMs();
    const main0 = t.mainThreadCpuMs?.() ?? NaN;
    const t0 = now();
    const tEnd = t0 + opts.durationMs;
    const sending = Promise.all(sessions.map(async (c, i) => {
      const from = t.addr(senders[i]), to = t.addr(rcpts[i]);
      try {
        while (now() < tEnd) {
          const head = headFor(tpl, from, to);
          const ts = now();
          const r = await c.send(from, to, head, tpl.smtpBody);
          if (r.code === 250) {
            accepted++;
            lat.push(now() - ts);
          } else {
            rejected++;
            firstError ||= r.text;
            if (rejected > 1000) break;
          }
        }
      } catch (err) {
        firstError ||= `session ${i}: ${(err as Error).message}`;
      }
    })).then(() => {
      sendDone = true;
      tSendEnd = now();
      clientCpuEnd = selfCpuMs();
    });
    const noops = sending.then(() => bystander.stop());
    let delivered = 0, tDelivered = NaN, tLastPoll = t0;
    while (true) {
      const counts = await Promise.all(pollers.map((p) => p.messages()));
      tLastPoll = now();
      delivered = sum(counts) - base;
      if (sendDone && delivered >= accepted) {
        tDelivered = tLastPoll;
        break;
      }
      if (sendDone && tLastPoll - tSendEnd > opts.drainTimeoutMs) break;
      await sleep(sendDone ? 50 : 200);
    }
    const serverCpu = t.cpuMs() - cpu0;
    const mainCpu = (t.mainThreadCpuMs?.() ?? NaN) - main0;
    const sys1 = t.syscalls();
    await sending;
    const noop = await noops;
    const sendSeconds = (tSendEnd - t0) / 1000;
    const deliverSeconds = ((Number.isNaN(tDelivered) ? tLastPoll : tDelivered) - t0) / 1000;
    return {
      sessions: opts.sessions,
      messageBytes: tpl.size,
      pipelining: sessions.every((s) => s.pipelining),
      sendSeconds,
      accepted,
      rejected,
      firstError,
      acceptedPerSec: accepted / sendSeconds,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
      delivered,
      deliverSeconds,
      deliveredPerSec: delivered / deliverSeconds,
      drainSeconds: Math.max(0, deliverSeconds - sendSeconds),
      serverCpuMsPerMsg: serverCpu / delivered,
      mainThreadCpuMsPerMsg: mainCpu / delivered,
      serverReadsPerMsg: (sys1.reads - sys0.reads) / delivered,
      serverWritesPerMsg: (sys1.writes - sys0.writes) / delivered,
      clientCpuPct: ((clientCpuEnd - clientCpu0) / (tSendEnd - t0)) * 100,
      noops: noop.length,
      noopP50Ms: percentile(noop, 50),
      noopP99Ms: percentile(noop, 99),
      noopMaxMs: percentile(noop, 100),
    };
  } finally {
    await Promise.all(sessions.map((s) => s.quit()));
    for (const p of pollers) p.close();
    await bystander.stop().catch(() => {}); // stopped already, or the result is not wanted
  }
}

// ---- 2. delivery latency (250 after DATA → EXISTS on the recipient's IDLE) --------------------

export interface LatencyResult {
  recipients: number;
  sent: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** From the written end of data (instead of the 250) to EXISTS. */
  dotP50Ms: number;
  lost: number;
  firstError: string;
}

export async function deliveryLatency(
  t: Target,
  tpl: MessageTemplate,
  opts: { recipients: number; timeoutMs: number },
): Promise<LatencyResult> {
  const rcpts = range(opts.recipients).map((i) => userName("dl", i));
  const sender = userName("dx", 0);
  await t.ensureUsers([sender, ...rcpts]);
  const idlers = await pool(rcpts, 16, async (r) => {
    const c = await imapSession(t, r);
    await c.select();
    await c.idle();
    return c;
  });
  const arrived: number[] = rcpts.map(() => NaN);
  const waits = idlers.map((c, i) => c.nextExists().then((tm) => arrived[i] = tm, () => NaN));
  const smtp = await smtpSession(t, sender);
  const t250: number[] = [], tDot: number[] = [];
  let firstError = "", sent = 0;
  try {
    for (let i = 0; i < rcpts.length; i++) {
      const from = t.addr(sender), to = t.addr(rcpts[i]);
      const r = await smtp.send(from, to, headFor(tpl, from, to), tpl.smtpBody);
      t250[i] = now();
      tDot[i] = r.tDot;
      if (r.code === 250) sent++;
      else firstError ||= r.text;
    }
    await within(Promise.all(waits).then(() => 0), opts.timeoutMs);
  } finally {
    await smtp.quit();
    for (const c of idlers) c.close();
  }
  const lat: number[] = [], dot: number[] = [];
  let lost = 0;
  for (let i = 0; i < rcpts.length; i++) {
    if (Number.isNaN(arrived[i])) {
      lost++;
      continue;
    }
    lat.push(arrived[i] - t250[i]);
    dot.push(arrived[i] - tDot[i]);
  }
  return {
    recipients: rcpts.length,
    sent,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    maxMs: percentile(lat, 100),
    dotP50Ms: percentile(dot, 50),
    lost,
    firstError,
  };
}

// ---- 3. many idle IMAP connections ---------------------------------------------------------------

export interface IdleResult {
  wanted: number;
  established: number;
  failed: number;
  firstError: string;
  users: number;
  prepareSeconds: number;
  establishSeconds: number;
  before: Mem;
  after: Mem;
  /** After the extra wait (Dovecot hibernates IDLE sessions after 30 s); null when not waited. */
  afterWait: Mem | null;
  waitSeconds: number;
  /** Per connection, KiB of PSS (RSS for one process is nearly the same). */
  perConnKb: number;
  perConnKbAfterWait: number | null;
  /** 250 → first EXISTS among the woken user's connections. */
  wakeMs: number;
  woken: number;
  wakeTargets: number;
}

export async function idleScale(
  t: Target,
  tpl: MessageTemplate,
  opts: { conns: number; perUser: number; waitMs: number; log: Log },
): Promise<IdleResult> {
  const nUsers = Math.ceil(opts.conns / opts.perUser);
  const users = range(nUsers).map((i) => userName("id", i));
  const sender = userName("dx", 1);
  const tp = now();
  await t.ensureUsers([sender, ...users]);
  const prepareSeconds = (now() - tp) / 1000;
  await sleep(1000);
  const before = t.imapMem();
  let failed = 0, firstError = "";
  const t0 = now();
  const conns = await pool(range(opts.conns), 64, async (i) => {
    try {
      const c = await imapSession(t, users[i % nUsers], 1024);
      await c.select();
      await c.idle();
      return c;
    } catch (err) {
      failed++;
      firstError ||= (err as Error).message;
      return null;
    }
  });
  const establishSeconds = (now() - t0) / 1000;
  const established = conns.filter(Boolean).length;
  opts.log(`${established} idle connections in ${establishSeconds.toFixed(1)} s`);
  try {
    await sleep(1000);
    const after = t.imapMem();
    let afterWait: Mem | null = null;
    if (opts.waitMs > 0) {
      opts.log(`waiting ${opts.waitMs / 1000} s with the connections idle`);
      await sleep(opts.waitMs);
      afterWait = t.imapMem();
    }
    // a delivery to user 0 must still wake its idle connections at once
    const targets = conns.filter((c, i) => c && i % nUsers === 0) as Imap[];
    const arrivals = targets.map((c) => c.nextExists().catch(() => NaN));
    const smtp = await smtpSession(t, sender);
    let t250 = NaN;
    try {
      const from = t.addr(sender), to = t.addr(users[0]);
      const r = await smtp.send(from, to, headFor(tpl, from, to), tpl.smtpBody);
      t250 = now();
      if (r.code !== 250) firstError ||= `wake message: ${r.text}`;
    } finally {
      await smtp.quit();
    }
    const times = await Promise.all(arrivals.map((a) => within(a, 10_000)));
    const got = times.filter((x) => !Number.isNaN(x));
    const perConn = (m: Mem) => established ? (m.pssKb - before.pssKb) / established : NaN;
    return {
      wanted: opts.conns,
      established,
      failed,
      firstError,
      users: nUsers,
      prepareSeconds,
      establishSeconds,
      before,
      after,
      afterWait,
      waitSeconds: opts.waitMs / 1000,
      perConnKb: perConn(after),
      perConnKbAfterWait: afterWait ? perConn(afterWait) : null,
      wakeMs: got.length ? Math.min(...got) - t250 : NaN,
      woken: got.length,
      wakeTargets: targets.length,
    };
  } finally {
    for (const c of conns) c?.close();
    await sleep(1000);
  }
}

// ---- 3b. connections that never log in and send oversized commands ------------------------------

export interface PreloginResult {
  conns: number;
  /** Bytes each connection tried to send before (or instead of) being cut off. */
  bytesPerConn: number;
  before: Mem;
  /** Highest IMAP memory sampled while the commands were arriving. */
  peak: Mem;
  after: Mem;
  /** Connections the server closed before all their bytes were sent. */
  cutOff: number;
}

/**
 * `conns` TLS connections to the IMAP port, each sending a 1 MB LOGIN (a literal far over any
 * pre-login limit, then the line goes on), all at once; memory is sampled every 50 ms. A server
 * that holds what arrives before login grows by conns × 1 MB.
 */
export async function preloginFlood(
  t: Target,
  opts: { conns: number; bytes: number; log: Log },
): Promise<PreloginResult> {
  const before = t.imapMem();
  const wires = await pool(range(opts.conns), 32, async () => {
    const c = await Imap.connect(t.imapPort, t.caPem, 4096);
    return c;
  });
  let peak = t.imapMem();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = t.imapMem();
      if (m.rssKb > peak.rssKb) peak = m;
      await sleep(50);
    }
  })();
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  let cutOff = 0;
  await Promise.all(wires.map(async (c) => {
    try {
      await c.wire.write(`a LOGIN {${opts.bytes}+}\r\n`);
      for (let sent = 0; sent < opts.bytes; sent += chunk.length) await c.wire.write(chunk);
      await c.wire.write(" x\r\n");
    } catch {
      cutOff++;
    } finally {
      c.close();
    }
  }));
  await sleep(1000);
  sampling = false;
  await sampler;
  const after = t.imapMem();
  opts.log(
    `${opts.conns} pre-login connections × ${opts.bytes} bytes: RSS ${mb(before.rssKb)} → peak ` +
      `${mb(peak.rssKb)} → ${mb(after.rssKb)} MB; ${cutOff} cut off`,
  );
  return { conns: opts.conns, bytesPerConn: opts.bytes, before, peak, after, cutOff };
}

const mb = (kb: number) => (kb / 1024).toFixed(1);

// ---- 4. FETCH throughput --------------------------------------------------------------------------

export interface FetchResult {
  messages: number;
  messageBytes: number;
  appendSeconds: number;
  appendPerSec: number;
  literalPlus: boolean;
  /** Best of the FETCH runs (all in `runs`). */
  fetchSeconds: number;
  fetchedBytes: number;
  mbPerSec: number;
  msgsPerSec: number;
  runs: number[];
}

export async function fetchThroughput(
  t: Target,
  tpl: MessageTemplate,
  opts: { messages: number; user: string; runs: number },
): Promise<FetchResult> {
  await t.ensureUsers([opts.user]);
  const c = await imapSession(t, opts.user, 256 * 1024);
  try {
    const caps = (await c.cmd("CAPABILITY")).untagged.join(" ");
    const literalPlus = /LITERAL\+/i.test(caps);
    const addr = t.addr(opts.user);
    const enc = new TextEncoder();
    const t0 = now();
    const window = 32;
    for (let start = 0; start < opts.messages; start += window) {
      const tags: string[] = [];
      for (let i = start; i < Math.min(opts.messages, start + window); i++) {
        const msg = appendMessage(tpl, addr, addr);
        const tag = c.nextTag();
        tags.push(tag);
        if (literalPlus) {
          await c.wire.write(enc.encode(`${tag} APPEND INBOX {${msg.length}+}\r\n`));
          await c.wire.write(msg);
          await c.wire.write("\r\n");
        } else {
          await c.wire.write(enc.encode(`${tag} APPEND INBOX {${msg.length}}\r\n`));
          const cont = await c.response();
          if (!cont.text.startsWith("+")) throw new Error(`APPEND: ${cont.text}`);
          await c.wire.write(msg);
          await c.wire.write("\r\n");
          const r = await c.collect(tag, false);
          if (!r.ok) throw new Error(`APPEND: ${r.status}`);
          tags.pop();
        }
      }
      for (const tag of tags) {
        const r = await c.collect(tag, false);
        if (!r.ok) throw new Error(`APPEND: ${r.status}`);
      }
    }
    const appendSeconds = (now() - t0) / 1000;
    const exists = await c.select();
    if (exists < opts.messages) throw new Error(`only ${exists} messages after APPEND`);
    const runs: number[] = [];
    let fetchedBytes = 0;
    for (let i = 0; i < opts.runs; i++) {
      const ts = now();
      const r = await c.cmd("FETCH 1:* (BODY.PEEK[])", false);
      runs.push((now() - ts) / 1000);
      if (!r.ok) throw new Error(`FETCH: ${r.status}`);
      fetchedBytes = r.literalBytes;
    }
    const best = Math.min(...runs);
    return {
      messages: exists,
      messageBytes: tpl.size,
      appendSeconds,
      appendPerSec: opts.messages / appendSeconds,
      literalPlus,
      fetchSeconds: best,
      fetchedBytes,
      mbPerSec: fetchedBytes / 1e6 / best,
      msgsPerSec: exists / best,
      runs,
    };
  } finally {
    try {
      await c.cmd("LOGOUT");
    } catch {
      // closed
    }
    c.close();
  }
}
