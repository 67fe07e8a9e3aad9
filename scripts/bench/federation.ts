// Federation: messages submitted on one server for users on another, measured from each 250 of
// the sending server to the EXISTS the recipient's IDLE connection on the other server sees. Run
// the same way for tern → tern and Postfix → Postfix, with and without a silent peer (a host that
// accepts connections and never answers) holding mail on the sending side at the same time.

import * as net from "node:net";
import { Imap, Smtp } from "./clients.ts";
import { headFor, type MessageTemplate } from "./messages.ts";
import { now, percentile, pool, sleep, userName } from "./util.ts";

export interface FedSide {
  label: string;
  host: string;
  submissionsPort: number;
  imapsPort: number;
  caPem: string;
  addr(user: string): string;
  ensureUsers(users: string[]): Promise<void>;
  pass: string;
  /** CPU time (ms) of this side's server processes so far. */
  cpuMs(): number;
}

export interface FederationResult {
  messages: number;
  sessions: number;
  recipients: number;
  accepted: number;
  /** First MAIL to the last 250. */
  acceptSeconds: number;
  acceptedPerSec: number;
  landed: number;
  /** First MAIL to the last EXISTS on the other server. */
  landSeconds: number;
  landedPerSec: number;
  /** How long the last arrival trailed the last 250. */
  drainSeconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  lost: number;
  firstError: string;
  /** Server CPU per message from the first MAIL to the last arrival (ms): sending side, receiving side. */
  cpuMsPerMsgFrom: number;
  cpuMsPerMsgTo: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** An IDLE connection that records when each new message (by EXISTS count) showed. */
class Watcher {
  arrivals: number[] = [];
  #base = 0;
  #done: Promise<void>;
  #closed = false;

  private constructor(readonly imap: Imap) {
    this.#done = Promise.resolve();
  }

  static async open(side: FedSide, user: string): Promise<Watcher> {
    const imap = await Imap.connect(side.imapsPort, side.caPem, 4096, side.host);
    await imap.login(side.addr(user), side.pass);
    const w = new Watcher(imap);
    w.#base = await imap.select();
    await imap.idle();
    w.#done = w.#loop();
    return w;
  }

  async #loop() {
    try {
      while (!this.#closed) {
        const r = await this.imap.response();
        const m = /^\* (\d+) EXISTS/.exec(r.text);
        if (!m) continue;
        const t = now();
        // Several messages may show in one EXISTS: each gets this time.
        while (this.#base + this.arrivals.length < Number(m[1])) this.arrivals.push(t);
      }
    } catch {
      // closed
    }
  }

  async close() {
    this.#closed = true;
    this.imap.close();
    await this.#done;
  }
}

/**
 * `messages` messages from `sessions` senders on `from` to `recipients` users on `to`, as fast as
 * the sending server accepts them. Latency pairs the k-th 250 for a recipient with the k-th
 * arrival in its INBOX (messages to one recipient are sent one after another by one session).
 */
export async function federationRun(
  from: FedSide,
  to: FedSide,
  tpl: MessageTemplate,
  opts: { messages: number; sessions: number; recipients: number; timeoutMs: number; tag: string },
): Promise<FederationResult> {
  const senders = range(opts.sessions).map((i) => userName(`f${opts.tag}s`, i));
  const rcpts = range(opts.recipients).map((i) => userName(`f${opts.tag}r`, i));
  await from.ensureUsers(senders);
  await to.ensureUsers(rcpts);
  const watchers = await pool(rcpts, 16, (r) => Watcher.open(to, r));
  const smtp = await Promise.all(senders.map(async (s) => {
    const c = await Smtp.connect(from.submissionsPort, from.caPem, from.host);
    await c.login(from.addr(s), from.pass);
    return c;
  }));
  // Recipient r is served by session r % sessions, so its messages leave in order.
  const sent: number[][] = rcpts.map(() => []);
  let cpuFrom = NaN, cpuTo = NaN;
  let accepted = 0, firstError = "";
  const cpuFrom0 = from.cpuMs(), cpuTo0 = to.cpuMs();
  const t0 = now();
  let tLast250 = t0;
  try {
    await Promise.all(smtp.map(async (c, si) => {
      const f = from.addr(senders[si]);
      const own = range(opts.messages).filter((i) => (i % opts.recipients) % opts.sessions === si);
      for (const i of own) {
        const r = i % opts.recipients;
        const toAddr = to.addr(rcpts[r]);
        try {
          const res = await c.send(f, toAddr, headFor(tpl, f, toAddr), tpl.smtpBody);
          if (res.code === 250) {
            accepted++;
            tLast250 = now();
            sent[r].push(tLast250);
          } else firstError ||= res.text;
        } catch (err) {
          firstError ||= (err as Error).message;
          return;
        }
      }
    }));
    const deadline = now() + opts.timeoutMs;
    const landedCount = () => watchers.reduce((a, w) => a + w.arrivals.length, 0);
    while (landedCount() < accepted && now() < deadline) await sleep(20);
    cpuFrom = from.cpuMs() - cpuFrom0;
    cpuTo = to.cpuMs() - cpuTo0;
  } finally {
    await Promise.all(smtp.map((c) => c.quit()));
    await Promise.all(watchers.map((w) => w.close()));
  }
  const lat: number[] = [];
  let landed = 0, lost = 0, tLastArrival = t0;
  for (let r = 0; r < rcpts.length; r++) {
    const a = watchers[r].arrivals;
    landed += Math.min(a.length, sent[r].length);
    for (let k = 0; k < sent[r].length; k++) {
      if (k >= a.length) {
        lost++;
        continue;
      }
      lat.push(a[k] - sent[r][k]);
      tLastArrival = Math.max(tLastArrival, a[k]);
    }
  }
  const acceptSeconds = (tLast250 - t0) / 1000;
  const landSeconds = (tLastArrival - t0) / 1000;
  return {
    messages: opts.messages,
    sessions: opts.sessions,
    recipients: opts.recipients,
    accepted,
    acceptSeconds,
    acceptedPerSec: accepted / acceptSeconds,
    landed,
    landSeconds,
    landedPerSec: landed / landSeconds,
    drainSeconds: Math.max(0, (tLastArrival - tLast250) / 1000),
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    maxMs: percentile(lat, 100),
    lost,
    firstError,
    cpuMsPerMsgFrom: cpuFrom / Math.max(1, landed),
    cpuMsPerMsgTo: cpuTo / Math.max(1, landed),
  };
}

/** A host that accepts TCP connections on `ports` and never answers. */
export async function silentHost(host: string, ports: number[]) {
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  for (const port of ports) {
    const s = net.createServer((c) => {
      sockets.add(c);
      c.on("close", () => sockets.delete(c));
      c.on("error", () => c.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, host, () => resolve());
    });
    servers.push(s);
  }
  return {
    /** Connections held open right now. */
    get open() {
      return sockets.size;
    },
    async close() {
      for (const c of sockets) c.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

/** Submits `n` messages to `address` (the silent peer's mail), one session. */
export async function sendTo(
  from: FedSide,
  tpl: MessageTemplate,
  sender: string,
  address: string,
  n: number,
): Promise<number> {
  await from.ensureUsers([sender]);
  const c = await Smtp.connect(from.submissionsPort, from.caPem, from.host);
  let ok = 0;
  try {
    await c.login(from.addr(sender), from.pass);
    for (let i = 0; i < n; i++) {
      const f = from.addr(sender);
      const r = await c.send(f, address, headFor(tpl, f, address), tpl.smtpBody);
      if (r.code === 250) ok++;
    }
  } finally {
    await c.quit();
  }
  return ok;
}
