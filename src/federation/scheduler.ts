// Which delivery starts next: the destinations in a ring, served in turn (one job each per round,
// as Postfix's queue manager rotates over destinations), each within its own concurrency window
// and all within a global limit. A slow or dead destination only ever holds its own slots, so
// new mail for a healthy one starts at once whatever else is queued.

import { type DestinationLimits, DestinationQueue, type Job } from "./destination_queue.ts";

export interface SchedulerLimits extends DestinationLimits {
  /** Deliveries running at once over all destinations. */
  maxActive: number;
}

export class Scheduler {
  readonly destinations = new Map<string, DestinationQueue>();
  #ring: DestinationQueue[] = [];
  #next = 0;
  active = 0;

  constructor(readonly limits: SchedulerLimits) {}

  /** The destination's queue, created on first use. */
  get(domain: string): DestinationQueue {
    let d = this.destinations.get(domain);
    if (!d) {
      d = new DestinationQueue(domain, this.limits);
      this.destinations.set(domain, d);
      this.#ring.push(d);
    }
    return d;
  }

  /** The next job to start, taking turns over destinations; null when none may start now. */
  pick(now: number): { dest: DestinationQueue; job: Job; probe: boolean } | null {
    if (this.active >= this.limits.maxActive) return null;
    const n = this.#ring.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      const dest = this.#ring[i];
      if (!dest.startable(now)) continue;
      const probe = dest.state === "backoff";
      const job = dest.take(now);
      this.active++;
      this.#next = (i + 1) % n;
      return { dest, job, probe };
    }
    return null;
  }

  /** The delivery no longer talks to the peer: its slot (global and per destination) is free. */
  release(dest: DestinationQueue, probe: boolean): void {
    this.active--;
    dest.release(probe);
  }

  /** Release and forget at once (a job whose outcome needs no storing). */
  finished(dest: DestinationQueue, job: Job, probe: boolean): void {
    this.release(dest, probe);
    dest.forget(job);
  }

  /** Forgets destinations with nothing loaded, running, waiting or remembered. */
  sweep(): void {
    const keep = this.#ring.filter((d) => !d.idle);
    if (keep.length === this.#ring.length) return;
    for (const d of this.#ring) if (d.idle) this.destinations.delete(d.domain);
    this.#ring = keep;
    this.#next = 0;
  }

  /** The earliest time something waits for: a backoff ending or deferred mail becoming due. */
  nextWake(): number | null {
    let t: number | null = null;
    const at = (x: number) => (t = t === null ? x : Math.min(t, x));
    for (const d of this.#ring) {
      // A running probe ends with a release, which looks again; until then the backoff's end
      // (already past) must not arm a timer that fires at once, over and over.
      const waiting = d.ready.length || d.moreInStore || d.nextDueAt !== null;
      if (d.state === "backoff" && !d.probing && waiting) at(d.retryAt);
      if (d.nextDueAt !== null) at(d.nextDueAt);
    }
    return t;
  }
}
