// One destination (recipient domain) of the outbound queue in memory: the jobs loaded and due,
// how many deliveries run, its concurrency window and whether its peer is answering. Only a
// bounded part of the destination's mail is in memory; the store holds the rest.

import type { QueueRecipientRecord } from "../store/types.ts";
import { backoffMs, type BackoffPolicy } from "./backoff.ts";
import { ConcurrencyWindow } from "./concurrency_window.ts";

/** One message to one destination: its recipients there, delivered in one transaction. */
export interface Job {
  queueId: number;
  domain: string;
  recipients: QueueRecipientRecord[];
  /** Never attempted yet: may probe a destination that is backing off. */
  fresh: boolean;
  /** Immediate retries after a transport failure (not stored). */
  retries: number;
}

/** "open": deliveries run within the window; "backoff": the peer did not answer, wait. */
export type DestinationState = "open" | "backoff";

export interface DestinationLimits {
  initialConcurrency: number;
  maxConcurrency: number;
  /** Jobs kept in memory per destination. */
  readyMax: number;
  backoff: BackoffPolicy;
  random?: () => number;
}

export class DestinationQueue {
  readonly ready: Job[] = [];
  /** Recipient ids in `ready` or in flight: never loaded twice. */
  readonly known = new Set<number>();
  readonly window: ConcurrencyWindow;
  active = 0;
  state: DestinationState = "open";
  /** Consecutive failures to reach the peer while backing off (the backoff exponent). */
  failures = 0;
  /** Backing off: when the next probe may start. */
  retryAt = 0;
  /** A probe (one delivery while backing off) is running. */
  probing = false;
  /** The store may hold due recipients for it that are not loaded. */
  moreInStore = false;
  refilling = false;
  /** The earliest attempt the store holds for it in the future (a timer wakes it then). */
  nextDueAt: number | null = null;
  lastError: string | null = null;
  lastSuccessAt = 0;
  lastFailureAt = 0;
  /** When deferred mail was last released because the peer answered again. */
  releasedAt = 0;

  constructor(readonly domain: string, readonly limits: DestinationLimits) {
    this.window = new ConcurrencyWindow(limits.initialConcurrency, limits.maxConcurrency);
  }

  /** The peer failed more recently than it answered: deferred mail waits for it. */
  get down(): boolean {
    return this.state === "backoff" ||
      this.lastFailureAt > Math.max(this.lastSuccessAt, this.releasedAt);
  }

  get full(): boolean {
    return this.ready.length >= this.limits.readyMax;
  }

  /** Queues a job (unless its recipients are known already); false when memory is full. */
  add(job: Job, front = false): boolean {
    if (!front && this.full) return false;
    const fresh = job.recipients.filter((r) => !this.known.has(r.id));
    if (fresh.length === 0) return true;
    for (const r of fresh) this.known.add(r.id);
    const j = { ...job, recipients: fresh };
    if (front) this.ready.unshift(j);
    else this.ready.push(j);
    return true;
  }

  /** Whether a delivery may start now. */
  startable(now: number): boolean {
    if (this.ready.length === 0) return false;
    if (this.state === "open") return this.active < this.window.limit;
    // Backing off: one probe at a time, when the wait is over or with fresh mail.
    return !this.probing && (now >= this.retryAt || this.ready.some((j) => j.fresh));
  }

  /** Takes the next job to start (startable() must be true). */
  take(now: number): Job {
    let i = 0;
    if (this.state === "backoff") {
      this.probing = true;
      if (now < this.retryAt) i = this.ready.findIndex((j) => j.fresh);
    }
    const [job] = this.ready.splice(i, 1);
    this.active++;
    return job;
  }

  /** A delivery's talk with the peer ended: its slot is free for the next one. */
  release(wasProbe: boolean): void {
    this.active--;
    if (wasProbe) this.probing = false;
  }

  /** The job's outcome is stored: its recipients may be loaded again (when still pending). */
  forget(job: Job): void {
    for (const r of job.recipients) this.known.delete(r.id);
  }

  /** The peer answered (delivered or refused). True when it had been down before. */
  answered(now: number): boolean {
    const wasDown = this.down;
    this.lastSuccessAt = now;
    if (this.state === "backoff") {
      this.state = "open";
      this.window.restart();
    }
    this.failures = 0;
    this.window.success();
    return wasDown;
  }

  /**
   * The peer could not be talked to. A delivery that started before the backoff and fails now
   * (not the probe) does not lengthen the wait again.
   */
  unreachable(now: number, error: string, probe: boolean): "shrunk" | "backoff" {
    this.lastFailureAt = now;
    this.lastError = error;
    if (this.state === "open" && this.window.failure() === "shrunk") return "shrunk";
    if (this.state === "backoff" && !probe) return "backoff";
    this.state = "backoff";
    this.failures++;
    this.retryAt = now + backoffMs(this.failures, this.limits.backoff, this.limits.random);
    return "backoff";
  }

  /**
   * Something showed the peer is back (it sent us mail, or an operator asked): deliveries start
   * again at once, one at a time first. True when there was anything to wake.
   */
  wake(now: number): boolean {
    // After a restart nothing is known about the peer: mail waiting for it may be waiting
    // because it was down, so the first sign of life releases it once.
    const unknown = this.lastSuccessAt === 0 && this.lastFailureAt === 0 && this.releasedAt === 0;
    if (!this.down && !(unknown && this.nextDueAt !== null)) return false;
    this.state = "open";
    this.failures = 0;
    this.retryAt = 0;
    this.releasedAt = now;
    this.window.restart();
    return true;
  }

  /**
   * Nothing loaded, running or waiting: it can be dropped from memory (a peer that was down and
   * has no mail waiting is simply tried afresh when mail for it comes).
   */
  get idle(): boolean {
    // known: recipients loaded whose outcome is not stored yet (a reload would send them twice).
    return this.ready.length === 0 && this.active === 0 && this.known.size === 0 &&
      !this.moreInStore && this.nextDueAt === null && !this.refilling;
  }
}
