// The outbound queue worker. New mail and due retries are loaded from the store into a queue per
// destination (recipient domain); the scheduler starts deliveries in turn over destinations,
// each within its own slow-start window, so no peer can hold up mail for another. A peer that
// does not answer is backed off (with jitter) and probed one message at a time; its deferred
// mail is released as soon as it answers again: a delivery to it works, or it sends us mail.
// Entries expire on a timer, with a bounce to the sender.
//
// Several instances on one store run one worker at a time (app/outbound_leader.ts), but a worker
// that lost its turn may still be sending when the next one loads the queue. So a worker claims
// the recipients it sends in the store, for a lease it renews during long transfers; it skips
// recipients another worker holds until that lease ends, and the store keeps only the claim
// owner's outcome. A worker that died leaves its claims to end, and its mail is sent again then.

import type {
  BodyReader,
  QueueEntry,
  QueueRecipientRecord,
  RecipientUpdate,
  Store,
} from "../store/types.ts";
import type { Logger } from "../log/mod.ts";
import type { RelayMetrics } from "../metrics/mod.ts";
import { type DnsResolver } from "./resolver.ts";
import { type Destination, isIpLiteral, permittedDestinations, route } from "./router.ts";
import { addressPolicy } from "../net/mod.ts";
import { buildBounce, type FailedRecipient } from "./bounce.ts";
import { type MtaSts, mxMatches } from "./mta_sts.ts";
import { backoffMs, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.ts";
import { type Deadlines, DEFAULT_DEADLINES } from "./deadlines.ts";
import { HttpsPool } from "./https_client.ts";
import { SmtpPool } from "./smtp_pool.ts";
import { type Outcome, type PeerPorts, Transport } from "./transport.ts";
import { Scheduler } from "./scheduler.ts";
import type { DestinationQueue, Job } from "./destination_queue.ts";
import { trustedCas } from "./trust.ts";
import { type OutgoingMessage, readPrefix, storedMessage } from "./outgoing_message.ts";

export interface OutboundOptions {
  store: Store;
  dns: DnsResolver;
  domain: string;
  hostname: string;
  /**
   * The header field(s) to put before a message for sending (a DKIM-Signature), read from the
   * message in pieces; empty bytes for none.
   */
  sign(message: OutgoingMessage): Promise<Uint8Array>;
  /** Stores a bounce in a local sender's INBOX. */
  deliverBounce(sender: string, message: Uint8Array): Promise<void>;
  /** Whether a remote domain may receive mail (federation policy). */
  allowed(domain: string): Promise<boolean>;
  /**
   * Why an address of a destination is not connected to ("loopback"), or null when it may be;
   * default: public addresses only (net/public_address.ts).
   */
  refuseAddress?: (address: string) => string | null;
  lifetimeMs: number;
  log?: Logger;
  now?: () => number;
  /** Ports of peers, or ports per peer address; tests point these at unprivileged listeners. */
  ports?: PeerPorts | ((address: string) => PeerPorts);
  /** CAs to trust besides Deno's store (and DENO_CERT), for SMTP and /mxdeliv alike. */
  caCerts?: string[];
  deadlines?: Partial<Deadlines>;
  /** MTA-STS policies of destination domains (RFC 8461). */
  mtaSts?: MtaSts;
  /** Deliveries at once per destination (Postfix: default_destination_concurrency_limit 20). */
  maxConcurrency?: number;
  initialConcurrency?: number;
  /** Deliveries at once over all destinations. */
  maxActive?: number;
  backoff?: BackoffPolicy;
  metrics?: RelayMetrics;
  /** Connection reuse: how long idle sessions wait for more mail. */
  smtpIdleMs?: number;
  httpsIdleMs?: number;
  /**
   * How long a claim on recipients being sent holds without renewal (default 5 min); a running
   * delivery renews it every third of that. A worker that dies holds its mail this long.
   */
  claimLeaseMs?: number;
}

/** What the admin view shows per destination. */
export interface DestinationStatus {
  domain: string;
  pending: number;
  deferred: number;
  oldestAt: number | null;
  nextAttemptAt: number | null;
  lastError: string | null;
  state: "open" | "backoff";
  /** Deliveries allowed at once now (the slow-start window). */
  concurrency: number;
  active: number;
  retryAt: number | null;
}

const READY_MAX = 100;
const REFILL_BELOW = 25;
const PAGE = 500;
/** Recipients of one domain per transaction (Postfix: default_destination_recipient_limit). */
const RECIPIENTS_PER_JOB = 50;
/** Bytes of the original read for a bounce: its header block is all it quotes. */
const BOUNCE_HEADER_MAX = 256 * 1024;
/** Immediate retries on a fresh connection after a transport failure, while the peer works. */
const QUICK_RETRIES = 1;
const ROUTE_TTL_MS = 60_000;
/** Refused addresses named in a bounce and the log line. */
const REFUSED_NAMED = 5;
/** A safety tick: timers are armed precisely, this only catches a clock that jumped. */
const TICK_MS = 30_000;
/** After an expiry the store could not write (a full disk), the next try. */
const EXPIRY_RETRY_MS = 60_000;
/** How often the queue gauges are refreshed. */
const METRICS_MS = 10_000;
/** Destinations with a gauge of their own (the busiest ones). */
const METRICS_DESTINATIONS = 50;
const CLAIM_LEASE_MS = 5 * 60_000;

export class OutboundService {
  #o: OutboundOptions;
  #now: () => number;
  #sched: Scheduler;
  #transport: Transport;
  #https: HttpsPool;
  #smtp: SmtpPool;
  #routes = new Map<string, { until: number; hosts: Destination[] }>();
  #refuseAddress: (address: string) => string | null;
  /** Recipient ids whose outcome was stored, with the sequence number of that moment. */
  #done = new Map<number, number>();
  #seq = 0;
  #loaders = 0;
  /** Highest recipient id seen by the new-mail cursor. */
  #cursor = 0;
  #pulling: Promise<void> | null = null;
  #pullAgain = false;
  #running = new Set<Promise<void>>();
  /** Recipients whose delivery was started (runOnce reports the difference). */
  #attempted = 0;
  /** Refills and releases in progress. */
  #chores = new Set<Promise<void>>();
  #inFlight = new Set<number>();
  /** This worker's claims (store/types.ts RecipientClaim): its id, and the recipients it holds. */
  #owner = crypto.randomUUID();
  #claims = new Set<number>();
  #leaseMs: number;
  #renewer: ReturnType<typeof setInterval> | null = null;
  #renewing: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #tick: ReturnType<typeof setInterval> | null = null;
  #gauges: ReturnType<typeof setInterval> | null = null;
  #started = false;
  #stopping = false;
  #nextExpiryAt: number | null = null;
  #expiring: Promise<void> | null = null;

  #trusted: { count: number; ca: string[] | undefined } | null = null;
  #abort = new AbortController();

  /** The CAs for outbound TLS (tests add theirs once the peers run: the list may grow). */
  #trust(): string[] | undefined {
    const given = this.#o.caCerts ?? [];
    if (this.#trusted?.count !== given.length) {
      this.#trusted = { count: given.length, ca: trustedCas(given) };
    }
    return this.#trusted.ca;
  }

  constructor(options: OutboundOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#refuseAddress = options.refuseAddress ?? addressPolicy();
    this.#leaseMs = options.claimLeaseMs ?? CLAIM_LEASE_MS;
    const deadlines = { ...DEFAULT_DEADLINES, ...options.deadlines };
    const maxConcurrency = options.maxConcurrency ?? 20;
    this.#sched = new Scheduler({
      maxActive: options.maxActive ?? 100,
      initialConcurrency: Math.min(options.initialConcurrency ?? 2, maxConcurrency),
      maxConcurrency,
      readyMax: READY_MAX,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
    });
    this.#https = new HttpsPool({ idleMs: options.httpsIdleMs, maxIdlePerPeer: maxConcurrency });
    this.#smtp = new SmtpPool({ idleMs: options.smtpIdleMs, maxIdlePerPeer: maxConcurrency });
    const ports = options.ports;
    this.#transport = new Transport({
      heloName: options.hostname,
      ports: typeof ports === "function" ? ports : () => ports ?? { smtp: 25, https: 443 },
      ca: () => this.#trust(),
      deadlines,
      https: this.#https,
      smtp: this.#smtp,
      now: this.#now,
      signal: this.#abort.signal,
    });
  }

  /** Loads the queue and starts delivering; later mail arrives through kick(). */
  start(): void {
    this.#started = true;
    this.#tick = setInterval(() => this.#wakeUp(), TICK_MS);
    if (this.#o.metrics) {
      this.#gauges = setInterval(() => {
        this.refreshMetrics().catch((err) =>
          this.#o.log?.error("queue metrics failed", { error: String(err) })
        );
      }, METRICS_MS);
    }
    this.kick();
    this.#refreshExpiry();
  }

  /** Stops starting deliveries, cuts the ones running (they are retried later) and waits. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#tick) clearInterval(this.#tick);
    if (this.#gauges) clearInterval(this.#gauges);
    this.#timer = this.#tick = this.#gauges = null;
    this.#abort.abort();
    this.#https.close();
    const smtpClosed = this.#smtp.close();
    await this.#pulling?.catch(() => {});
    await this.#expiring?.catch(() => {});
    while (this.#running.size || this.#chores.size) {
      await Promise.allSettled([...this.#running, ...this.#chores]);
    }
    if (this.#renewer) clearInterval(this.#renewer);
    this.#renewer = null;
    await this.#renewing;
    // Jobs put back for a quick retry that will not run here: the next worker may send them now
    // (or when the lease ends, if the store cannot be told).
    await this.#letGo([...this.#claims]).catch((err) =>
      this.#o.log?.error("outbound claim release failed", { error: String(err) })
    );
    await smtpClosed;
    this.#https.close();
  }

  /** New mail was queued: look for it now. */
  kick(): void {
    if (this.#stopping) return;
    if (this.#pulling) {
      this.#pullAgain = true;
      return;
    }
    this.#pulling = this.#pullNew().catch((err) => {
      this.#o.log?.error("outbound queue load failed", { error: String(err) });
    }).finally(() => {
      this.#pulling = null;
      if (this.#pullAgain) {
        this.#pullAgain = false;
        this.kick();
      } else this.#pump();
    });
  }

  /**
   * The peer of `domain` showed it is up (it sent us mail): if its mail was waiting because it
   * did not answer, that mail goes now.
   */
  peerAnswered(domain: string): void {
    const d = this.#sched.destinations.get(domain.toLowerCase());
    if (!d || this.#stopping) return;
    if (d.wake(this.#now())) {
      this.#background(this.#release(d, "the peer sent mail"), "release failed");
    }
  }

  /** Makes an entry's unfinished recipients due now and their destinations try at once. */
  async retryEntry(id: number): Promise<boolean> {
    const entry = await this.#o.store.getQueueEntry(id);
    if (!entry || !(await this.#o.store.retryQueueEntry(id, this.#now()))) return false;
    for (const domain of new Set(entry.recipients.map((r) => r.domain))) {
      const d = this.#sched.get(domain);
      d.wake(this.#now());
      d.moreInStore = true;
      d.nextDueAt = null;
    }
    this.#pump();
    return true;
  }

  /** Runs store work off the delivery path; the queue moves on when it is done. */
  #background(p: Promise<unknown>, what: string): void {
    const run: Promise<void> = p.then(() => {}, (err) => {
      this.#o.log?.error(what, { error: String(err) });
    }).finally(() => {
      this.#chores.delete(run);
      this.#pump();
    });
    this.#chores.add(run);
  }

  /**
   * Delivers what is due and waits until nothing more can start now (tests drive the queue with
   * it); returns how many recipients were attempted.
   */
  async runOnce(): Promise<number> {
    const before = this.#attempted;
    this.kick();
    while (this.#pulling) await this.#pulling;
    this.#markDue(this.#now());
    await this.#expire();
    for (;;) {
      this.#pump();
      if (this.#running.size === 0 && this.#chores.size === 0 && !this.#pumpable()) break;
      // The timer goes when something else won the race: one left behind per turn would still
      // be pending when a test (or a short-lived command) ends.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<void>((r) => (timer = setTimeout(r, 0)));
      await Promise.race([...this.#running, ...this.#chores, tick]);
      clearTimeout(timer);
    }
    return this.#attempted - before;
  }

  #pumpable(): boolean {
    const now = this.#now();
    for (const d of this.#sched.destinations.values()) {
      if (d.startable(now) || (d.moreInStore && !d.refilling && this.#wantsRefill(d, now))) {
        return true;
      }
    }
    return false;
  }

  /** Whether /mxdeliv is skipped for an MX host now (it failed where SMTP worked). */
  mxdelivSkipped(host: string): boolean {
    return this.#transport.mxdelivSkipped(host);
  }

  /** Per destination: what is queued and how it is being delivered. */
  async destinations(limit = 100): Promise<DestinationStatus[]> {
    const summary = await this.#o.store.queueDestinations(limit);
    const seen = new Set<string>();
    const out: DestinationStatus[] = summary.map((s) => {
      seen.add(s.domain);
      const d = this.#sched.destinations.get(s.domain);
      return {
        domain: s.domain,
        pending: s.pending,
        deferred: s.deferred,
        oldestAt: s.oldestAt,
        nextAttemptAt: s.nextAttemptAt,
        lastError: d?.lastError ?? s.lastError,
        state: d?.state ?? "open",
        concurrency: d?.window.limit ?? this.#sched.limits.initialConcurrency,
        active: d?.active ?? 0,
        retryAt: d?.state === "backoff" ? d.retryAt : null,
      };
    });
    // Destinations with nothing queued but something to say (down, or still delivering).
    for (const d of this.#sched.destinations.values()) {
      if (seen.has(d.domain) || (!d.down && d.active === 0)) continue;
      out.push({
        domain: d.domain,
        pending: 0,
        deferred: 0,
        oldestAt: null,
        nextAttemptAt: null,
        lastError: d.lastError,
        state: d.state,
        concurrency: d.window.limit,
        active: d.active,
        retryAt: d.state === "backoff" ? d.retryAt : null,
      });
    }
    return out;
  }

  /** Sets the queue gauges: the length, and per destination for the busiest ones. */
  async refreshMetrics(): Promise<void> {
    const m = this.#o.metrics;
    if (!m) return;
    const [total, dests] = await Promise.all([
      this.#o.store.countQueued(),
      this.destinations(METRICS_DESTINATIONS),
    ]);
    const now = this.#now();
    const f = m.federation;
    m.queueLength.set(total);
    for (const g of [f.queued, f.oldestSeconds, f.concurrency, f.active, f.backoff]) g.reset();
    for (const d of dests) {
      const l = { destination: d.domain };
      f.queued.set(d.pending, l);
      f.oldestSeconds.set(d.oldestAt === null ? 0 : Math.max(0, (now - d.oldestAt) / 1000), l);
      f.concurrency.set(d.concurrency, l);
      f.active.set(d.active, l);
      f.backoff.set(d.state === "backoff" ? 1 : 0, l);
    }
  }

  // ---- loading -------------------------------------------------------------------------------

  /** Reads recipients queued since the last look (all pending ones on start), page by page. */
  async #pullNew(): Promise<void> {
    for (;;) {
      const page = await this.#load(() => this.#o.store.pendingRecipientsAfter(this.#cursor, PAGE));
      this.#cursor = Math.max(this.#cursor, page.lastId);
      const now = this.#now();
      for (const job of jobsOf(page.rows)) {
        const d = this.#sched.get(job.domain);
        const at = job.recipients[0].nextAttemptAt;
        if (at > now) {
          d.nextDueAt = Math.min(d.nextDueAt ?? Infinity, at);
          continue;
        }
        // Mail waiting in the store goes first (FIFO); only a peer that is backing off takes
        // one fresh message past it, as its probe.
        if (!d.moreInStore && d.add(job)) continue;
        if (d.state === "backoff" && job.fresh && !d.ready.some((j) => j.fresh)) d.add(job, true);
        d.moreInStore = true;
      }
      if (page.count > 0 && this.#nextExpiryAt === null) this.#refreshExpiry();
      if (page.count < PAGE) return;
    }
  }

  /** A store read of pending recipients, without any whose outcome was stored meanwhile. */
  async #load(
    query: () => Promise<QueueRecipientRecord[]>,
  ): Promise<{ rows: QueueRecipientRecord[]; count: number; lastId: number }> {
    const since = this.#seq;
    this.#loaders++;
    try {
      const rows = await query();
      return {
        rows: rows.filter((r) => (this.#done.get(r.id) ?? 0) <= since),
        count: rows.length,
        lastId: rows.at(-1)?.id ?? 0,
      };
    } finally {
      if (--this.#loaders === 0) this.#done.clear();
    }
  }

  #wantsRefill(d: DestinationQueue, now: number): boolean {
    if (d.ready.length >= REFILL_BELOW) return false;
    return d.state === "open" || (now >= d.retryAt && d.ready.length === 0);
  }

  async #refill(d: DestinationQueue): Promise<void> {
    d.refilling = true;
    try {
      const now = this.#now();
      const want = READY_MAX - d.ready.length;
      const limit = want + d.known.size;
      const r = await this.#load(() => this.#o.store.dueRecipientsFor(d.domain, now, limit));
      d.moreInStore = r.count >= limit;
      for (const job of jobsOf(r.rows)) d.add(job);
      if (!d.moreInStore) {
        d.nextDueAt = await this.#o.store.nextAttemptFor(d.domain, now);
      }
    } catch (err) {
      // The store is asked again after a backoff: at once, a failing read loops without end.
      d.moreInStore = false;
      const at = this.#now() + backoffMs(1, this.#o.backoff ?? DEFAULT_BACKOFF);
      d.nextDueAt = Math.min(d.nextDueAt ?? Infinity, at);
      throw err;
    } finally {
      d.refilling = false;
    }
  }

  // ---- running -------------------------------------------------------------------------------

  /** Starts what may start, refills what runs low, arms the timer. Returns deliveries started. */
  #pump(): number {
    if (this.#stopping) return 0;
    const now = this.#now();
    let started = 0;
    for (let p = this.#sched.pick(now); p; p = this.#sched.pick(now)) {
      const { dest, job, probe } = p;
      started += job.recipients.length;
      this.#attempted += job.recipients.length;
      for (const r of job.recipients) this.#inFlight.add(r.id);
      // The slot is given back as soon as the peer answered (or did not): storing the outcome
      // is no load on the peer, and a busy event loop must not hold the window closed.
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.#sched.release(dest, probe);
        this.#pump();
      };
      const run: Promise<void> = this.#attempt(dest, job, probe, release).catch((err) => {
        this.#o.log?.error("outbound delivery failed", { domain: dest.domain, error: String(err) });
        // The store failed (reading the entry, or storing the outcome): the recipients are
        // still pending there but gone from memory. The destination looks for them again after
        // a backoff, instead of leaving them until a restart or their expiry.
        const at = this.#now() + backoffMs(1, this.#o.backoff ?? DEFAULT_BACKOFF);
        dest.nextDueAt = Math.min(dest.nextDueAt ?? Infinity, at);
        return null;
      }).then((again) => {
        release();
        // Claimed, but no outcome stored (the store failed): the claims end now, so that a
        // refill here (or another worker) finds these recipients without waiting for the lease.
        const kept = new Set(again?.recipients.map((r) => r.id));
        const loose = job.recipients.filter((r) => this.#claims.has(r.id) && !kept.has(r.id));
        if (loose.length) {
          this.#background(this.#letGo(loose.map((r) => r.id)), "outbound claim release failed");
        }
        // Known until the outcome is stored, so that no refill loads these recipients again.
        for (const r of job.recipients) this.#inFlight.delete(r.id);
        dest.forget(job);
        if (again) dest.add(again, true);
      }).finally(() => {
        this.#running.delete(run);
        this.#pump();
      });
      this.#running.add(run);
    }
    for (const d of this.#sched.destinations.values()) {
      if (d.moreInStore && !d.refilling && this.#wantsRefill(d, now)) {
        this.#background(this.#refill(d), "outbound queue load failed");
      }
    }
    this.#sched.sweep();
    this.#arm();
    return started;
  }

  /** One timer for the earliest backoff end, due retry or expiry. */
  #arm(): void {
    if (!this.#started || this.#stopping) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const candidates = [this.#sched.nextWake(), this.#nextExpiryAt].filter((t) => t !== null);
    if (!candidates.length) return;
    const at = Math.min(...(candidates as number[]));
    const delay = Math.max(0, Math.min(at - this.#now(), 2 ** 31 - 1));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#wakeUp();
    }, delay);
  }

  /** Destinations whose deferred mail or backoff is due look into the store again. */
  #markDue(now: number): void {
    for (const d of this.#sched.destinations.values()) {
      if (d.nextDueAt !== null && d.nextDueAt <= now) {
        d.nextDueAt = null;
        d.moreInStore = true;
      }
      if (d.state === "backoff" && now >= d.retryAt) d.moreInStore = true;
    }
  }

  #wakeUp(): void {
    if (this.#stopping) return;
    const now = this.#now();
    this.#markDue(now);
    if (this.#nextExpiryAt !== null && now >= this.#nextExpiryAt) {
      this.#expiring ??= this.#expire().catch((err) => {
        this.#o.log?.error("queue expiry failed", { error: String(err) });
        // Again in a while: the timer for a time already past would fire again at once.
        this.#nextExpiryAt = this.#now() + EXPIRY_RETRY_MS;
      }).finally(() => {
        this.#expiring = null;
        this.#pump();
      });
    }
    this.#pump();
  }

  /** The stored message of a queue entry, read in ranges (close it), or null when lost. */
  async #openMessage(
    entry: QueueEntry,
  ): Promise<{ reader: BodyReader; message: OutgoingMessage; close(): Promise<void> } | null> {
    const reader = await this.#o.store.openBody(entry.bodyId);
    if (!reader) return null;
    return {
      reader,
      message: storedMessage(new Uint8Array(0), reader),
      close: () => reader.close(),
    };
  }

  /** The top of a queued message for a bounce (its header block; never the whole body). */
  async #bounceOriginal(entry: QueueEntry): Promise<Uint8Array | null> {
    try {
      const opened = await this.#openMessage(entry);
      if (!opened) return null;
      try {
        return await readPrefix(opened.message, BOUNCE_HEADER_MAX);
      } finally {
        await opened.close();
      }
    } catch (err) {
      // A body that cannot be read (a damaged body file, the store away): the sender still
      // learns of the failure, from a bounce without the original's header.
      this.#o.log?.error("bounce: the queued message cannot be read", {
        queueId: entry.id,
        error: String(err),
      });
      return null;
    }
  }

  async #hosts(
    domain: string,
  ): Promise<
    | { ok: true; hosts: Destination[] }
    | { ok: false; permanent: boolean; reason: string; status?: string }
  > {
    const cached = this.#routes.get(domain);
    if (cached && cached.until > this.#now()) return { ok: true, hosts: cached.hosts };
    const r = await route(domain, this.#o.dns);
    if (!r.ok) return r;
    // Only addresses the relay may reach (SSRF): of a mixed answer, the public ones.
    const permitted = permittedDestinations(r.destinations, this.#refuseAddress);
    if (!permitted.destinations.length) {
      // A few are named: a hostile DNS answer may hold hundreds.
      const named = permitted.refused.slice(0, REFUSED_NAMED);
      const more = permitted.refused.length - named.length;
      const refused = named.map((x) => `${x.address} (${x.reason})`).join(", ") +
        (more > 0 ? ` and ${more} more` : "");
      this.#o.log?.info("outbound destination refused: no public address", { domain, refused });
      return {
        ok: false,
        permanent: true,
        status: "5.4.4",
        reason: `Destination address is not public: ${domain} is at ${refused}`,
      };
    }
    let hosts = permitted.destinations;
    if (this.#o.mtaSts && !isIpLiteral(domain)) {
      const policy = await this.#o.mtaSts.policy(domain, this.#abort.signal).catch(() => null);
      if (policy?.mode === "enforce") {
        hosts = hosts.filter((d) => mxMatches(d.host, policy.mx));
        if (!hosts.length) {
          return {
            ok: false,
            permanent: false,
            reason: `MTA-STS policy of ${domain} allows ${policy.mx.join(", ")}, ` +
              `not ${r.destinations.map((d) => d.host).join(", ")}`,
          };
        }
      }
    }
    this.#routes.set(domain, { until: this.#now() + ROUTE_TTL_MS, hosts });
    return { ok: true, hosts };
  }

  // ---- claims --------------------------------------------------------------------------------

  /**
   * Claims a job's pending recipients; returns those this worker may send. The others are being
   * sent by another worker: the destination looks for them again when that worker's lease ends.
   */
  async #claim(
    dest: DestinationQueue,
    queueId: number,
    rows: QueueRecipientRecord[],
  ): Promise<QueueRecipientRecord[]> {
    const { claimed, busyUntil } = await this.#o.store.claimRecipients(queueId, {
      owner: this.#owner,
      ids: rows.map((r) => r.id),
      now: this.#now(),
      leaseMs: this.#leaseMs,
    });
    if (busyUntil !== null) {
      dest.nextDueAt = Math.min(dest.nextDueAt ?? Infinity, busyUntil);
      this.#o.log?.info("outbound: recipients are being sent by another worker", {
        domain: dest.domain,
        queueId,
        recipients: rows.length - claimed.length,
        until: busyUntil,
      });
    }
    const held = new Set(claimed);
    for (const id of claimed) this.#claims.add(id);
    if (claimed.length && !this.#renewer && !this.#stopping) {
      this.#renewer = setInterval(() => {
        this.#renewing ??= this.#renew().finally(() => (this.#renewing = null));
      }, Math.max(1, Math.floor(this.#leaseMs / 3)));
    }
    return rows.filter((r) => held.has(r.id));
  }

  /** Extends the claims of the deliveries running (a long transfer keeps its recipients). */
  async #renew(): Promise<void> {
    const ids = [...this.#claims];
    if (!ids.length) return;
    try {
      const held = new Set(
        await this.#o.store.renewClaims({
          owner: this.#owner,
          ids,
          now: this.#now(),
          leaseMs: this.#leaseMs,
        }),
      );
      const lost = ids.filter((id) => !held.has(id) && this.#claims.has(id));
      if (lost.length) {
        // This worker's lease ended and another took the recipients (or they were dropped):
        // a delivery still running here is theirs now, and its outcome is not stored.
        this.#o.log?.warn("outbound: claims lost", { recipients: lost.length });
        this.#dropClaims(lost);
      }
    } catch (err) {
      // Tried again at the next renewal, well within the lease.
      this.#o.log?.error("outbound claim renewal failed", { error: String(err) });
    }
  }

  /** Forgets claims whose outcome is stored (or that are lost); no renewals while none is held. */
  #dropClaims(ids: number[]): void {
    for (const id of ids) this.#claims.delete(id);
    if (this.#claims.size === 0 && this.#renewer) {
      clearInterval(this.#renewer);
      this.#renewer = null;
    }
  }

  /** Ends this worker's claims on recipients it will not send now (they are due for anyone). */
  async #letGo(ids: number[]): Promise<void> {
    this.#dropClaims(ids);
    if (!ids.length) return;
    await this.#o.store.renewClaims({ owner: this.#owner, ids, now: this.#now(), leaseMs: 0 });
  }

  /** One job; resolves with the job to put back at once (a quick retry), or null. */
  async #attempt(
    dest: DestinationQueue,
    job: Job,
    probe: boolean,
    release: () => void,
  ): Promise<Job | null> {
    const { store } = this.#o;
    const entry = await store.getQueueEntry(job.queueId);
    // Dropped by the operator meanwhile, or finished by an expiry.
    if (!entry) return null;
    const pendingIds = new Set(
      entry.recipients.filter((r) => r.status === "queued" || r.status === "deferred").map((r) =>
        r.id
      ),
    );
    const pending = job.recipients.filter((r) => pendingIds.has(r.id));
    if (!pending.length) return null;
    const rows = await this.#claim(dest, entry.id, pending);
    if (!rows.length) return null;
    const recipients = rows.map((r) => r.recipient);
    let outcomes: Outcome[];
    let answered: boolean | null = null;
    const all = (o: Omit<Outcome, "recipient">) => recipients.map((r) => ({ recipient: r, ...o }));
    // The message is read from the store in pieces while it is signed and sent, never whole.
    const opened = await this.#openMessage(entry);
    try {
      if (!opened) {
        outcomes = all({ kind: "failed", detail: "Message body lost", status: "5.3.0" });
      } else if (!(await this.#o.allowed(dest.domain))) {
        outcomes = all({
          kind: "failed",
          detail: `Delivery to ${dest.domain} is not allowed by this relay's federation policy`,
          status: "5.7.1",
        });
      } else {
        const r = await this.#hosts(dest.domain);
        if (!r.ok) {
          outcomes = all(
            r.permanent
              ? { kind: "failed", detail: r.reason, status: r.status ?? "5.1.2" }
              : { kind: "deferred", detail: r.reason },
          );
          if (!r.permanent) answered = false;
        } else {
          // A failure here is ours (the store could not be read, a message we cannot sign),
          // not the peer's: the recipients wait their backoff and the peer's window is kept.
          const t = await this.#o.sign(opened.message).then((signature) =>
            this.#transport.deliver(
              r.hosts,
              entry.sender,
              recipients,
              signature.length ? storedMessage(signature, opened.reader) : opened.message,
            )
          ).catch((err) => err as Error);
          if (t instanceof Error) {
            this.#o.log?.error("outbound delivery failed here", {
              domain: dest.domain,
              error: String(t),
            });
            outcomes = all({ kind: "deferred", detail: `Local failure: ${t.message}` });
          } else {
            outcomes = t.outcomes;
            answered = t.answered;
            if (!t.answered) this.#routes.delete(dest.domain);
          }
        }
      }
    } finally {
      await opened?.close();
    }
    const now = this.#now();
    // The peer's health steers the destination: slow start, backoff, release of waiting mail.
    // The window is updated before the slot is given back, so the next start sees it.
    let requeue = false;
    if (answered === true) {
      if (dest.answered(now)) {
        this.#background(this.#release(dest, "a delivery worked"), "release failed");
      }
    } else if (answered === false) {
      const detail = outcomes[0]?.detail ?? "";
      const state = dest.unreachable(now, detail, probe);
      requeue = state === "shrunk" && job.retries < QUICK_RETRIES && !this.#stopping;
    }
    if (requeue) {
      // The peer works for others: once more at once (a new connection), not in minutes.
      return { ...job, recipients: rows, fresh: false, retries: job.retries + 1 };
    }
    release();
    await this.#record(dest, entry, rows, outcomes, now);
    return null;
  }

  /**
   * Bounces what failed, then stores the outcomes and counts. The bounce is stored first: a crash
   * between the two writes sends it again after a restart, it never loses it. A bounce the store
   * could not take leaves its failure not final: the recipient is deferred and tried again.
   */
  async #record(
    dest: DestinationQueue,
    entry: QueueEntry,
    rows: QueueRecipientRecord[],
    outcomes: Outcome[],
    now: number,
  ): Promise<void> {
    const expired = now - entry.createdAt >= this.#o.lifetimeMs;
    const updates: RecipientUpdate[] = [];
    const failed: FailedRecipient[] = [];
    const m = this.#o.metrics;
    const backoff = this.#o.backoff ?? DEFAULT_BACKOFF;
    const defer = (id: number, attempts: number, next: number, lastError: string) => {
      updates.push({ id, status: "deferred", attempts, nextAttemptAt: next, lastError });
      dest.nextDueAt = Math.min(dest.nextDueAt ?? Infinity, next);
      m?.deliveries.inc({ target: "remote", outcome: "deferred" });
    };
    const finals: { id: number; attempts: number; reason: string }[] = [];
    for (const r of rows) {
      const o = outcomes.find((x) => x.recipient === r.recipient) ??
        { recipient: r.recipient, kind: "deferred", detail: "no result" } as Outcome;
      const attempts = r.attempts + 1;
      if (o.kind === "delivered") {
        updates.push({ id: r.id, status: "delivered", attempts, lastError: null });
        m?.deliveries.inc({ target: "remote", outcome: "delivered" });
        m?.deliveryLatency.observe(Math.max(0, now - entry.createdAt) / 1000, { target: "remote" });
      } else if (o.kind === "failed" || expired) {
        const reason = o.kind === "failed"
          ? o.detail
          : `Gave up after ${attempts} attempts: ${o.detail}`;
        finals.push({ id: r.id, attempts, reason });
        failed.push({ recipient: r.recipient, status: o.status ?? "4.4.7", reason });
      } else {
        // A peer that did not answer is tried again when its backoff ends (or when it answers);
        // a recipient it deferred waits its own backoff.
        const next = dest.state === "backoff"
          ? Math.max(dest.retryAt, now + 1)
          : now + backoffMs(attempts, backoff);
        defer(r.id, attempts, next, o.detail);
      }
      this.#o.log?.info("outbound delivery", { domain: dest.domain, outcome: o.kind, attempts });
    }
    const bounced = !failed.length || await this.#bounce(entry, failed, now);
    for (const f of finals) {
      if (bounced) {
        updates.push({ id: f.id, status: "failed", attempts: f.attempts, lastError: f.reason });
        m?.deliveries.inc({ target: "remote", outcome: "failed" });
      } else {
        // The sender would never learn of it: tried again later, and bounced then.
        defer(f.id, f.attempts, now + backoffMs(f.attempts, backoff), f.reason);
      }
    }
    // The store groups concurrent writes into one commit (group commit).
    const { recorded } = await this.#o.store.recordAttempt({
      queueId: entry.id,
      domain: dest.domain,
      now,
      owner: this.#owner,
      updates,
    });
    this.#dropClaims(rows.map((r) => r.id));
    if (recorded < updates.length) {
      this.#o.log?.warn(
        "outbound outcome not stored: the recipients were dropped or claimed " +
          "by another worker after this one's lease ended",
        {
          domain: dest.domain,
          queueId: entry.id,
          recipients: updates.length - recorded,
        },
      );
    }
    const seq = ++this.#seq;
    if (this.#loaders > 0) { for (const u of updates) this.#done.set(u.id, seq); }
  }

  /** Stores a bounce for the failed recipients; false when the store could not take it. */
  async #bounce(entry: QueueEntry, failed: FailedRecipient[], now: number): Promise<boolean> {
    if (!entry.sender) return true;
    const original = (await this.#bounceOriginal(entry)) ?? new TextEncoder().encode("\r\n");
    const bounce = buildBounce({
      domain: this.#o.domain,
      hostname: this.#o.hostname,
      sender: entry.sender,
      original,
      failed,
      now,
      arrivedAt: entry.createdAt,
    });
    try {
      await this.#o.deliverBounce(entry.sender, bounce);
      return true;
    } catch (err) {
      this.#o.log?.error("bounce delivery failed; the failure is kept pending to bounce later", {
        queueId: entry.id,
        error: String(err),
      });
      return false;
    }
  }

  /** The destination's deferred mail is due now: its peer answers again. */
  async #release(d: DestinationQueue, why: string): Promise<void> {
    const n = await this.#o.store.releaseDestination(d.domain, this.#now());
    if (n > 0) {
      this.#o.log?.info("deferred mail released", { domain: d.domain, recipients: n, why });
    }
    d.nextDueAt = null;
    d.moreInStore = true;
    this.#pump();
  }

  // ---- expiry --------------------------------------------------------------------------------

  #refreshExpiry(): void {
    this.#o.store.oldestQueueEntryAt().then((t) => {
      this.#nextExpiryAt = t === null ? null : t + this.#o.lifetimeMs;
      this.#arm();
    }).catch((err) => this.#o.log?.error("queue expiry check failed", { error: String(err) }));
  }

  /**
   * Fails and bounces every recipient of entries older than the lifetime (not in flight). The
   * bounce is stored before the failure, as in #record; an entry whose bounce the store could not
   * take stays queued and expires again later.
   */
  async #expire(): Promise<void> {
    const { store } = this.#o;
    const now = this.#now();
    let waitingForFlight = false;
    /** Entries whose bounce could not be stored in this round: not asked again until later. */
    const unbounced = new Set<number>();
    for (;;) {
      const ids = await store.queueEntriesBefore(now - this.#o.lifetimeMs, 100);
      let progressed = false;
      for (const id of ids) {
        if (unbounced.has(id)) continue;
        const entry = await store.getQueueEntry(id);
        if (!entry) continue;
        const pending = entry.recipients.filter((r) =>
          r.status === "queued" || r.status === "deferred"
        );
        const idle = pending.filter((r) => !this.#inFlight.has(r.id));
        if (!idle.length) {
          if (pending.length) waitingForFlight = true;
          continue;
        }
        // Recipients another worker is sending (after a takeover) wait for its outcome, or for
        // its lease to end: they are looked at again in a while, as those in flight here.
        const { claimed } = await store.claimRecipients(id, {
          owner: this.#owner,
          ids: idle.map((r) => r.id),
          now,
          leaseMs: this.#leaseMs,
        });
        const held = new Set(claimed);
        // A delivery here may have started during the claim (this worker's claims are its own).
        const due = idle.filter((r) => held.has(r.id) && !this.#inFlight.has(r.id));
        if (due.length < pending.length) waitingForFlight = true;
        if (!due.length) continue;
        const failed: FailedRecipient[] = [];
        const byDomain = new Map<string, RecipientUpdate[]>();
        // Out of the ready queues now, and known until their failure is stored: no delivery of
        // them starts while the bounce is written.
        const known: { d: DestinationQueue; id: number }[] = [];
        for (const r of due) {
          const reason = `Gave up after ${r.attempts} attempt${r.attempts === 1 ? "" : "s"}: ${
            r.lastError ?? "not delivered in time"
          }`;
          failed.push({ recipient: r.recipient, status: "4.4.7", reason });
          const list = byDomain.get(r.domain) ?? [];
          list.push({ id: r.id, status: "failed", attempts: r.attempts, lastError: reason });
          byDomain.set(r.domain, list);
          const d = this.#sched.destinations.get(r.domain);
          if (d) {
            for (const j of d.ready) j.recipients = j.recipients.filter((x) => x.id !== r.id);
            d.ready.splice(0, d.ready.length, ...d.ready.filter((j) => j.recipients.length));
            d.known.add(r.id);
            known.push({ d, id: r.id });
          }
        }
        try {
          if (!(await this.#bounce(entry, failed, now))) {
            // Still queued in the store: expired again in a while.
            unbounced.add(id);
            continue;
          }
          for (const [domain, updates] of byDomain) {
            await store.recordAttempt({ queueId: id, domain, now, owner: this.#owner, updates });
            const seq = ++this.#seq;
            if (this.#loaders > 0) { for (const u of updates) this.#done.set(u.id, seq); }
          }
        } finally {
          for (const k of known) k.d.known.delete(k.id);
        }
        this.#o.metrics?.deliveries.inc({ target: "remote", outcome: "failed" }, due.length);
        this.#o.log?.info("outbound expired", { recipients: due.length });
        progressed = true;
      }
      if (ids.length < 100 || !progressed) break;
    }
    const oldest = await store.oldestQueueEntryAt();
    this.#nextExpiryAt = oldest === null ? null : Math.max(
      oldest + this.#o.lifetimeMs,
      waitingForFlight ? now + 5_000 : 0,
      unbounced.size ? now + EXPIRY_RETRY_MS : 0,
    );
    this.#arm();
  }
}

/** Rows in order → one job per entry and domain (consecutive rows), at most 50 recipients. */
function jobsOf(rows: QueueRecipientRecord[]): Job[] {
  const byKey = new Map<string, Job>();
  const jobs: Job[] = [];
  for (const r of rows) {
    const key = `${r.queueId} ${r.domain}`;
    let j = byKey.get(key);
    if (!j || j.recipients.length >= RECIPIENTS_PER_JOB) {
      j = { queueId: r.queueId, domain: r.domain, recipients: [], fresh: true, retries: 0 };
      byKey.set(key, j);
      jobs.push(j);
    }
    j.recipients.push(r);
    if (r.attempts > 0) j.fresh = false;
  }
  return jobs;
}
