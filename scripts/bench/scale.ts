// The scale scenario (issue 22): one INBOX filled by APPEND to each size in turn (1 000, 10 000,
// 50 000 by default), the same messages on both servers. At each size: the APPEND rate there,
// SELECT, UID SEARCH UNSEEN, SEARCH TEXT (no match: every message is read), a resync after 10
// flag changes (UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)), UID FETCH 1:* (FLAGS); at the largest
// size a mass STORE + EXPUNGE of 90% of the mailbox. Another user's session, on a thread of its
// own, sends a NOOP every 5 ms during every heavy command: its p99 and worst latency say whether
// one user stalls others.
// Storage per live message is taken before and after the mass expunge.

import { Imap } from "./clients.ts";
import { appendMessage } from "./messages.ts";
import type { MessageTemplate } from "./messages.ts";
import { type NoopProbeTarget, startNoopProbe } from "./noop_probe.ts";
import { PASS, type Target } from "./scenarios.ts";
import { median, now, percentile } from "./util.ts";

export interface NoopStats {
  command: string;
  ms: number;
  noops: number;
  p99Ms: number;
  worstMs: number;
}

export interface ScaleStage {
  size: number;
  /** APPEND msgs/s over the last `rateWindow` messages before reaching `size`. */
  appendPerSec: number;
  selectMs: number;
  searchUnseenMs: number;
  searchTextMs: number;
  changedSinceMs: number;
  fetchFlagsMs: number;
  noop: NoopStats[];
}

export interface ScaleResult {
  /** APPEND msgs/s for the first messages into the empty mailbox. */
  appendEmptyPerSec: number;
  stages: ScaleStage[];
  storageBeforeBytes: number;
  storageAfterBytes: number;
  liveBefore: number;
  liveAfter: number;
  expunge: NoopStats[];
  rssAfterMb: number;
  firstError?: string;
}

export interface ScaleOptions {
  sizes: number[];
  /** Messages whose APPEND rate is measured at each size (and at the start). */
  rateWindow: number;
  /** Repetitions of each timed read, the median reported. */
  repeats: number;
  bigUser: string;
  bystander: string;
  /** Bytes the target stores for `user` (database or maildir). */
  storageBytes(user: string): number;
  /** The server's own periodic maintenance, run before storage is measured after the expunge. */
  maintain?(): Promise<void>;
  log: (msg: string) => void;
}

async function session(t: Target, user: string, buf = 256 * 1024): Promise<Imap> {
  const c = await Imap.connect(t.imapPort, t.caPem, buf);
  try {
    await c.login(t.addr(user), PASS);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

async function ok(c: Imap, command: string): Promise<string[]> {
  const r = await c.cmd(command, true);
  if (!r.ok) throw new Error(`${command}: ${r.status}`);
  return r.untagged;
}

/** Pipelined APPENDs (32 in flight), every third message unseen. Returns msgs/s. */
async function appendMany(c: Imap, t: Target, tpl: MessageTemplate, from: number, count: number) {
  const enc = new TextEncoder();
  const addr = t.addr("scale");
  const t0 = now();
  const window = 32;
  for (let start = 0; start < count; start += window) {
    const tags: string[] = [];
    for (let i = start; i < Math.min(count, start + window); i++) {
      const n = from + i;
      const msg = appendMessage(tpl, addr, addr);
      const tag = c.nextTag();
      tags.push(tag);
      const flags = n % 3 === 0 ? "" : "(\\Seen) ";
      await c.wire.write(enc.encode(`${tag} APPEND INBOX ${flags}{${msg.length}+}\r\n`));
      await c.wire.write(msg);
      await c.wire.write("\r\n");
    }
    for (const tag of tags) {
      const r = await c.collect(tag, false);
      if (!r.ok) throw new Error(`APPEND: ${r.status}`);
    }
  }
  return count / ((now() - t0) / 1000);
}

/**
 * Runs `fn` while another user sends NOOPs from a thread of its own (noop_probe.ts): a bystander
 * on this loop would also wait while this process reads the heavy command's answer (50 000 FETCH
 * lines), and report the client's delay as the server's.
 */
async function bystanding(by: NoopProbeTarget, command: string, fn: () => Promise<unknown>) {
  const probe = await startNoopProbe(by);
  const t0 = now();
  let ms = NaN;
  let lat: number[] = [];
  try {
    await fn();
    ms = now() - t0;
  } finally {
    lat = await probe.stop();
  }
  return {
    command,
    ms,
    noops: lat.length,
    p99Ms: percentile(lat, 99),
    worstMs: lat.length ? lat.reduce((m, x) => Math.max(m, x), 0) : NaN,
  };
}

/** Median time of `runs` calls. */
async function timed(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    await fn();
    ms.push(now() - t0);
  }
  return median(ms);
}

export async function scaleRun(
  t: Target,
  tpl: MessageTemplate,
  opts: ScaleOptions,
): Promise<ScaleResult> {
  await t.ensureUsers([opts.bigUser, opts.bystander]);
  const filler = await session(t, opts.bigUser);
  // The measuring sessions are opened again after each fill: filling 40 000 messages takes
  // longer than a server lets a session sit idle (Dovecot logs it out after 30 minutes).
  let reader: Imap | null = null;
  let writer: Imap | null = null;
  const by: NoopProbeTarget = {
    imapPort: t.imapPort,
    caPem: t.caPem,
    address: t.addr(opts.bystander),
    password: PASS,
  };
  const close = async (c: Imap | null) => {
    if (!c) return;
    try {
      await c.cmd("LOGOUT");
    } catch {
      // closed
    }
    c.close();
  };
  const reopen = async () => {
    for (const c of [reader, writer]) await close(c);
    reader = await session(t, opts.bigUser);
    writer = await session(t, opts.bigUser);
    await ok(writer, "SELECT INBOX");
    return { reader, writer };
  };
  const result: ScaleResult = {
    appendEmptyPerSec: NaN,
    stages: [],
    storageBeforeBytes: NaN,
    storageAfterBytes: NaN,
    liveBefore: 0,
    liveAfter: 0,
    expunge: [],
    rssAfterMb: NaN,
  };
  try {
    let have = 0;
    let sessions = { reader: filler, writer: filler };
    for (const size of opts.sizes) {
      if (have === 0) {
        have = Math.min(opts.rateWindow, size);
        result.appendEmptyPerSec = await appendMany(filler, t, tpl, 0, have);
        opts.log(
          `${t.label}: APPEND into the empty mailbox ${result.appendEmptyPerSec.toFixed(0)}/s`,
        );
      }
      const rateFrom = Math.max(have, size - opts.rateWindow);
      if (rateFrom > have) {
        opts.log(`${t.label}: APPEND ${rateFrom - have} messages (to ${rateFrom})`);
        await appendMany(filler, t, tpl, have, rateFrom - have);
        have = rateFrom;
      }
      const rate = size > have
        ? await appendMany(filler, t, tpl, have, size - have)
        : result.appendEmptyPerSec;
      have = size;
      opts.log(`${t.label}: ${size} messages, APPEND ${rate.toFixed(0)}/s at that size`);
      sessions = await reopen();
      const { reader, writer } = sessions;

      const stage: ScaleStage = {
        size,
        appendPerSec: rate,
        selectMs: NaN,
        searchUnseenMs: NaN,
        searchTextMs: NaN,
        changedSinceMs: NaN,
        fetchFlagsMs: NaN,
        noop: [],
      };
      stage.selectMs = await timed(opts.repeats, () => ok(reader, "SELECT INBOX"));
      await ok(reader, "SELECT INBOX (CONDSTORE)");
      stage.searchUnseenMs = await timed(opts.repeats, () => ok(reader, "UID SEARCH UNSEEN"));
      stage.searchTextMs = await timed(
        Math.min(opts.repeats, 3),
        () => ok(reader, "SEARCH TEXT zqxjvwkpfm"),
      );
      // A device coming back after 10 flag changes made elsewhere.
      const resync: number[] = [];
      for (let i = 0; i < opts.repeats; i++) {
        const modseq = Number(
          /HIGHESTMODSEQ (\d+)/.exec((await ok(reader, "SELECT INBOX (CONDSTORE)")).join(" "))
            ?.[1],
        );
        const lo = 1 + ((i * 10) % Math.max(1, size - 10));
        await ok(writer, `STORE ${lo}:${lo + 9} +FLAGS.SILENT ($Resync${size}x${i})`);
        const t0 = now();
        const got = await ok(reader, `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq})`);
        resync.push(now() - t0);
        const n = got.filter((l) => l.includes(" FETCH ")).length;
        if (n !== 10) throw new Error(`CHANGEDSINCE returned ${n} messages, not 10`);
      }
      stage.changedSinceMs = median(resync);
      stage.fetchFlagsMs = await timed(
        Math.min(opts.repeats, 3),
        () => reader.cmd("UID FETCH 1:* (FLAGS)", false),
      );
      // The same heavy commands again, with another user's NOOPs running meanwhile.
      stage.noop.push(await bystanding(by, "SELECT", () => ok(reader, "SELECT INBOX")));
      stage.noop.push(
        await bystanding(by, "SEARCH TEXT", () => ok(reader, "SEARCH TEXT zqxjvwkpfm")),
      );
      stage.noop.push(
        await bystanding(
          by,
          "UID FETCH 1:* (FLAGS)",
          () => reader.cmd("UID FETCH 1:* (FLAGS)", false),
        ),
      );
      result.stages.push(stage);
      opts.log(
        `  SELECT ${stage.selectMs.toFixed(1)} ms, UID SEARCH UNSEEN ${
          stage.searchUnseenMs.toFixed(1)
        } ms, SEARCH TEXT ${stage.searchTextMs.toFixed(0)} ms, CHANGEDSINCE (10) ${
          stage.changedSinceMs.toFixed(1)
        } ms, FETCH 1:* (FLAGS) ${stage.fetchFlagsMs.toFixed(0)} ms; bystander worst ${
          Math.max(...stage.noop.map((s) => s.worstMs)).toFixed(1)
        } ms`,
      );
    }
    // Mass STORE + EXPUNGE of 90% of the mailbox, then storage per live message.
    const { writer } = sessions;
    result.liveBefore = have;
    result.storageBeforeBytes = opts.storageBytes(opts.bigUser);
    const cut = Math.floor(have * 0.9);
    await ok(writer, "NOOP");
    result.expunge.push(
      await bystanding(
        by,
        `STORE 1:${cut} +FLAGS.SILENT (\\Deleted)`,
        () => writer.cmd(`STORE 1:${cut} +FLAGS.SILENT (\\Deleted)`, false),
      ),
    );
    result.expunge.push(await bystanding(by, "EXPUNGE", () => writer.cmd("EXPUNGE", false)));
    result.liveAfter = have - cut;
    // Let the server settle (checkpoints, vacuum steps, freed memory) before measuring.
    await ok(writer, "NOOP");
    await opts.maintain?.();
    await new Promise((r) => setTimeout(r, 2000));
    result.storageAfterBytes = opts.storageBytes(opts.bigUser);
    result.rssAfterMb = t.imapMem().rssKb / 1024;
    opts.log(
      `  mass STORE+EXPUNGE of ${cut}: ${
        result.expunge.map((e) =>
          `${e.command} ${e.ms.toFixed(0)} ms (bystander worst ${e.worstMs.toFixed(1)} ms)`
        ).join(", ")
      }; storage ${(result.storageBeforeBytes / 1e6).toFixed(1)} → ${
        (result.storageAfterBytes / 1e6).toFixed(1)
      } MB`,
    );
  } catch (err) {
    result.firstError = (err as Error).message;
    opts.log(`${t.label}: scale run failed: ${result.firstError}`);
  } finally {
    for (const c of [filler, reader, writer]) await close(c);
  }
  return result;
}
