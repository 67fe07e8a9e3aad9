// Memory bounds (issue 16) and the gate's cost bound (issue 15), on any Target:
// 1. 20 submission sessions each send 5 MiB of DATA and never end it: what the server holds
//    while they hang (settled RSS and PSS over the RSS before), and after they vanish;
// 2. worst-case messages for the MIME reader (the gate's) at the size limit submitted while
//    another user's session sends NOOPs: how long does a NOOP wait?
// 3. 50 clients APPEND a 30 MB message while 50 others FETCH one: growth of the server's RSS
//    (sampled every 100 ms) over its RSS with the same sessions connected and idle.

import { Imap, Smtp } from "./clients.ts";
import type { Target } from "./scenarios.ts";
import { PASS } from "./scenarios.ts";
import { worstCases } from "./gate.ts";
import { now, percentile, pool, sleep, userName } from "./util.ts";

const enc = new TextEncoder();
const MiB = 1024 * 1024;

export interface MemoryOptions {
  appenders: number;
  fetchers: number;
  /** Fetch sessions per account (Dovecot allows 10 per user and address). */
  fetchersPerUser: number;
  messageBytes: number;
  dataConnections: number;
  dataBytes: number;
  /** Size of the gate's worst-case messages. */
  worstBytes: number;
}

export interface MemoryResult {
  appendFetch: {
    appenders: number;
    fetchers: number;
    messageBytes: number;
    seconds: number;
    /** RSS before the sessions connected, MB. */
    baseRssMb: number;
    /** RSS with every session logged in and idle, MB. */
    connectedRssMb: number;
    peakRssMb: number;
    /** Peak over connected: what the transfers themselves cost. */
    growthMb: number;
    /** The same in PSS (shared pages split among processes: fair to many-process servers). */
    pssGrowthMb: number;
    /** After the sessions closed and a 3 s pause. */
    afterRssMb: number;
    appended: number;
    fetchedBytes: number;
    errors: string[];
    noops: number;
    noopP99Ms: number;
    noopMaxMs: number;
  };
  unterminated: {
    connections: number;
    bytesEach: number;
    baseRssMb: number;
    /** Peak while the data came in. */
    peakRssMb: number;
    /** Settled while the unfinished transactions hang (what they hold). */
    heldRssMb: number;
    heldGrowthMb: number;
    heldPssGrowthMb: number;
    /**
     * The same burst again, over the RSS after the first one ended: what stays per transaction.
     * (The first burst also raises the allocator's high-water mark with the garbage of its
     * buffers, which a runtime does not give back to the system at once.)
     */
    secondGrowthMb: number;
    afterRssMb: number;
    errors: string[];
  };
  worstCase: {
    cases: { name: string; bytes: number; reply: string; seconds: number }[];
    noops: number;
    noopP50Ms: number;
    noopP99Ms: number;
    noopMaxMs: number;
  };
}

/** `size` bytes of mail: a header, then base64 lines (ASCII, CRLF, no leading dots). */
function bulkMessage(size: number): Uint8Array {
  const head = enc.encode("From: <bench@bench.localhost>\r\nSubject: [...]\r\n\r\n");
  const out = new Uint8Array(size);
  out.set(head);
  const line = new Uint8Array(57);
  let o = head.length;
  while (o < size) {
    crypto.getRandomValues(line);
    const text = enc.encode(line.toBase64() + "\r\n");
    out.set(text.subarray(0, size - o), o);
    o += text.length;
  }
  return out;
}

const mbOf = (kb: number) => Math.round(kb / 102.4) / 10;

/** Samples the server's memory until stopped; returns the peaks, KiB. */
function sampler(t: Target) {
  const m0 = t.totalMem();
  let rss = m0.rssKb, pss = m0.pssKb;
  let running = true;
  const sample = () => {
    const m = t.totalMem();
    rss = Math.max(rss, m.rssKb);
    pss = Math.max(pss, m.pssKb);
  };
  const done = (async () => {
    while (running) {
      sample();
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      sample();
      return { rssKb: rss, pssKb: pss };
    },
  };
}

/** The settled memory: the smallest of a few samples a little apart, KiB. */
async function settled(t: Target): Promise<{ rssKb: number; pssKb: number }> {
  let rss = Infinity, pss = Infinity;
  for (let i = 0; i < 5; i++) {
    const m = t.totalMem();
    rss = Math.min(rss, m.rssKb);
    pss = Math.min(pss, m.pssKb);
    await sleep(300);
  }
  return { rssKb: rss, pssKb: pss };
}

async function login(t: Target, user: string): Promise<Imap> {
  const c = await Imap.connect(t.imapPort, t.caPem, 256 * 1024);
  await c.login(t.addr(user), PASS);
  return c;
}

/** APPEND with a synchronizing literal. */
async function append(c: Imap, message: Uint8Array): Promise<string> {
  const tag = c.nextTag();
  await c.wire.write(`${tag} APPEND INBOX {${message.length}}\r\n`);
  const go = await c.response();
  if (!go.text.startsWith("+")) return go.text;
  for (let i = 0; i < message.length; i += MiB) await c.wire.write(message.subarray(i, i + MiB));
  await c.wire.write("\r\n");
  const r = await c.collect(tag, false);
  return r.ok ? "" : r.status;
}

/** A bystander's NOOP round trips until `stop()`. */
function noopProbe(c: Imap) {
  const times: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const t0 = now();
      await c.cmd("NOOP", false);
      times.push(now() - t0);
      await sleep(5);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return times;
    },
  };
}

async function appendFetch(
  t: Target,
  o: MemoryOptions,
  log: (m: string) => void,
): Promise<MemoryResult["appendFetch"]> {
  const appenders = Array.from({ length: o.appenders }, (_, i) => userName("ma", i));
  const owners = Array.from(
    { length: Math.ceil(o.fetchers / o.fetchersPerUser) },
    (_, i) => userName("mf", i),
  );
  const bystander = userName("mn", 0);
  await t.ensureUsers([...appenders, ...owners, bystander]);
  const message = bulkMessage(o.messageBytes);
  log(`  seeding ${owners.length} mailboxes with a ${o.messageBytes}-byte message`);
  await pool(owners, 4, async (u) => {
    const c = await login(t, u);
    try {
      const err = await append(c, message);
      if (err) throw new Error(`seeding ${u}: ${err}`);
    } finally {
      c.close();
    }
  });
  await sleep(2000);
  const base = await settled(t);
  const errors: string[] = [];
  const aSessions = await pool(appenders, 16, (u) => login(t, u));
  const fSessions = await pool(
    Array.from({ length: o.fetchers }, (_, i) => owners[i % owners.length]),
    16,
    async (u) => {
      const c = await login(t, u);
      await c.select();
      return c;
    },
  );
  const by = await login(t, bystander);
  await by.select();
  const connected = await settled(t);
  log(`  ${o.appenders} APPEND and ${o.fetchers} FETCH of ${o.messageBytes} bytes at once`);
  const s = sampler(t);
  const probe = noopProbe(by);
  let appended = 0, fetchedBytes = 0;
  const t0 = now();
  await Promise.all([
    ...aSessions.map(async (c, i) => {
      try {
        const err = await append(c, message);
        if (err) errors.push(`append ${i}: ${err}`);
        else appended++;
      } catch (err) {
        errors.push(`append ${i}: ${(err as Error).message}`);
      }
    }),
    ...fSessions.map(async (c, i) => {
      try {
        const r = await c.cmd("FETCH 1 BODY.PEEK[]", false);
        if (!r.ok) errors.push(`fetch ${i}: ${r.status}`);
        fetchedBytes += r.literalBytes;
      } catch (err) {
        errors.push(`fetch ${i}: ${(err as Error).message}`);
      }
    }),
  ]);
  const seconds = (now() - t0) / 1000;
  const noops = await probe.stop();
  const peak = await s.stop();
  for (const c of [...aSessions, ...fSessions, by]) c.close();
  await sleep(3000);
  const after = await settled(t);
  return {
    appenders: o.appenders,
    fetchers: o.fetchers,
    messageBytes: o.messageBytes,
    seconds,
    baseRssMb: mbOf(base.rssKb),
    connectedRssMb: mbOf(connected.rssKb),
    peakRssMb: mbOf(peak.rssKb),
    growthMb: mbOf(peak.rssKb - connected.rssKb),
    pssGrowthMb: mbOf(peak.pssKb - connected.pssKb),
    afterRssMb: mbOf(after.rssKb),
    appended,
    fetchedBytes,
    errors: errors.slice(0, 5),
    noops: noops.length,
    noopP99Ms: percentile(noops, 99),
    noopMaxMs: percentile(noops, 100),
  };
}

async function unterminated(
  t: Target,
  o: MemoryOptions,
  log: (m: string) => void,
): Promise<MemoryResult["unterminated"]> {
  const senders = Array.from({ length: o.dataConnections }, (_, i) => userName("mu", i));
  const rcpt = userName("mr", 0);
  await t.ensureUsers([...senders, rcpt]);
  await sleep(1000);
  const errors: string[] = [];
  const filler = enc.encode(("z".repeat(76) + "\r\n").repeat(14_000)); // ~1.1 MB
  /** One burst: every session sends its DATA and hangs; memory settled while they hang. */
  const burst = async () => {
    const sessions = await Promise.all(senders.map(async (u, i) => {
      const c = await Smtp.connect(t.smtpPort, t.caPem);
      try {
        await c.login(t.addr(u), PASS);
        for (const line of [`MAIL FROM:<${t.addr(u)}>`, `RCPT TO:<${t.addr(rcpt)}>`, "DATA"]) {
          const r = await c.cmd(line);
          if (r.code >= 400) throw new Error(`${line}: ${r.text}`);
        }
        await c.wire.write(`From: <${t.addr(u)}>\r\nTo: <${t.addr(rcpt)}>\r\n\r\n`);
        for (let sent = 0; sent < o.dataBytes; sent += filler.length) {
          await c.wire.write(filler.subarray(0, Math.min(filler.length, o.dataBytes - sent)));
        }
      } catch (err) {
        errors.push(`session ${i}: ${(err as Error).message}`);
      }
      return c;
    }));
    // Everything sent; the transactions hang. Let the server take in what is in flight.
    await sleep(3000);
    const held = await settled(t);
    for (const c of sessions) c.wire.close();
    await sleep(3000);
    return { held, after: await settled(t) };
  };
  const base = await settled(t);
  log(`  ${o.dataConnections} sessions send ${o.dataBytes} bytes of DATA and never end it (twice)`);
  const s = sampler(t);
  const first = await burst();
  const second = await burst();
  const peak = await s.stop();
  return {
    connections: o.dataConnections,
    bytesEach: o.dataBytes,
    baseRssMb: mbOf(base.rssKb),
    peakRssMb: mbOf(peak.rssKb),
    heldRssMb: mbOf(first.held.rssKb),
    heldGrowthMb: mbOf(first.held.rssKb - base.rssKb),
    heldPssGrowthMb: mbOf(first.held.pssKb - base.pssKb),
    secondGrowthMb: mbOf(second.held.rssKb - first.after.rssKb),
    afterRssMb: mbOf(second.after.rssKb),
    errors: errors.slice(0, 5),
  };
}

async function worstCase(
  t: Target,
  o: MemoryOptions,
  log: (m: string) => void,
): Promise<MemoryResult["worstCase"]> {
  const sender = userName("mw", 0), rcpt = userName("mw", 1), bystander = userName("mn", 1);
  await t.ensureUsers([sender, rcpt, bystander]);
  const by = await login(t, bystander);
  await by.select();
  const smtp = await Smtp.connect(t.smtpPort, t.caPem);
  await smtp.login(t.addr(sender), PASS);
  const cases: MemoryResult["worstCase"]["cases"] = [];
  const probe = noopProbe(by);
  const NAMES = ["empty parts", "nested multiparts", "boundary-prefix lines"];
  try {
    for (const c of worstCases(o.worstBytes).filter((c) => NAMES.includes(c.name))) {
      // Written with CRLF only, ending in CRLF, no line starting with "." (nothing to stuff).
      const body = c.build();
      const data = new Uint8Array(body.length + 3);
      data.set(body);
      data.set(enc.encode(".\r\n"), body.length);
      log(`  ${c.name}: ${body.length} bytes through submission`);
      const t0 = now();
      const r = await smtp.send(t.addr(sender), t.addr(rcpt), new Uint8Array(0), data);
      cases.push({ name: c.name, bytes: body.length, reply: r.text, seconds: (now() - t0) / 1000 });
    }
  } finally {
    await smtp.quit();
  }
  const noops = await probe.stop();
  by.close();
  return {
    cases,
    noops: noops.length,
    noopP50Ms: percentile(noops, 50),
    noopP99Ms: percentile(noops, 99),
    noopMaxMs: percentile(noops, 100),
  };
}

export async function memoryBench(
  t: Target,
  o: MemoryOptions,
  log: (m: string) => void,
): Promise<MemoryResult> {
  // Hanging DATA first, on a process that has not grown yet: what it holds is then not hidden
  // by memory the allocator is still giving back after the large transfers.
  log(`${t.label}: unterminated DATA`);
  const ud = await unterminated(t, o, log);
  log(`${t.label}: the MIME reader's worst cases, another user's NOOP meanwhile`);
  const wc = await worstCase(t, o, log);
  log(`${t.label}: memory while ${o.appenders} APPEND and ${o.fetchers} FETCH`);
  const af = await appendFetch(t, o, log);
  return { appendFetch: af, unterminated: ud, worstCase: wc };
}
