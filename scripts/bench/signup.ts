// The sign-up storm (issue 21): N new clients connect, LOGIN (tern creates each account on that
// first login; the reference stack has them created beforehand, as Dovecot cannot), SELECT INBOX
// and IDLE, a fixed number in flight, as when a QR code on a poster or a relay restart brings many
// devices at once. Meanwhile one logged-in session sends NOOP after NOOP: its answer times show
// whether the storm stalls everybody else. Then the same clients come again (accounts existing).

import { Imap } from "./clients.ts";
import { PASS } from "./scenarios.ts";
import type { Log, Target } from "./scenarios.ts";
import { now, percentile, pool, sleep, userName } from "./util.ts";

export interface SignupResult {
  clients: number;
  inFlight: number;
  established: number;
  failed: number;
  firstError: string;
  /** From the first connect to the last client idling. */
  seconds: number;
  /** The same clients again, accounts existing. */
  againSeconds: number;
  /** Server CPU for the first storm (ms). */
  cpuMs: number;
  /** NOOP round trips of the other session during the first storm. */
  probe: { count: number; p50Ms: number; p99Ms: number; maxMs: number };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Connects every client (LOGIN, SELECT, IDLE) with `inFlight` at a time; all stay open. */
async function storm(
  t: Target,
  users: string[],
  inFlight: number,
  fail: (err: unknown) => void,
): Promise<{ seconds: number; conns: (Imap | null)[] }> {
  const t0 = now();
  const conns = await pool(users, inFlight, async (u) => {
    let c: Imap | null = null;
    try {
      c = await Imap.connect(t.imapPort, t.caPem, 1024);
      await c.login(t.addr(u), PASS);
      await c.select();
      await c.idle();
      return c;
    } catch (err) {
      c?.close();
      fail(err);
      return null;
    }
  });
  return { seconds: (now() - t0) / 1000, conns };
}

export async function signupStorm(
  t: Target,
  opts: { clients: number; inFlight: number; prefix: string; log: Log },
): Promise<SignupResult> {
  const users = range(opts.clients).map((i) => userName(opts.prefix, i));
  const probeUser = userName("sp", 0);
  // The reference has no JIT accounts: they exist before its storm (not timed).
  await t.ensureUsers(t.key === "ref" ? [probeUser, ...users] : [probeUser]);
  await sleep(1000);
  let failed = 0, firstError = "";
  const fail = (err: unknown) => {
    failed++;
    firstError ||= (err as Error).message;
  };

  const probe = await Imap.connect(t.imapPort, t.caPem);
  await probe.login(t.addr(probeUser), PASS);
  await probe.select();
  const rtts: number[] = [];
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const t0 = now();
      const r = await probe.cmd("NOOP", false);
      if (!r.ok) throw new Error(`probe NOOP: ${r.status}`);
      rtts.push(now() - t0);
      await sleep(20);
    }
  })();

  const cpu0 = t.cpuMs();
  let first: Awaited<ReturnType<typeof storm>>;
  try {
    first = await storm(t, users, opts.inFlight, fail);
  } finally {
    probing = false;
    await probeLoop;
    probe.close();
  }
  const cpuMs = t.cpuMs() - cpu0;
  const established = first.conns.filter(Boolean).length;
  opts.log(
    `${established}/${opts.clients} new clients idling in ${first.seconds.toFixed(2)} s; other ` +
      `session's NOOP p99 ${percentile(rtts, 99).toFixed(1)} ms, max ${
        Math.max(0, ...rtts).toFixed(1)
      } ms`,
  );
  for (const c of first.conns) c?.close();
  await sleep(1000);

  const again = await storm(t, users, opts.inFlight, fail);
  opts.log(`the same clients again: ${again.seconds.toFixed(2)} s`);
  for (const c of again.conns) c?.close();
  await sleep(1000);

  return {
    clients: opts.clients,
    inFlight: opts.inFlight,
    established,
    failed,
    firstError,
    seconds: first.seconds,
    againSeconds: again.seconds,
    cpuMs,
    probe: {
      count: rtts.length,
      p50Ms: percentile(rtts, 50),
      p99Ms: percentile(rtts, 99),
      maxMs: rtts.length ? rtts.reduce((a, b) => Math.max(a, b)) : NaN,
    },
  };
}
