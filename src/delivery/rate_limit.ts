// Per-sender send rate (filtermail's GCRA, governor crate semantics): `burst` messages may go
// back-to-back, then one more every 60/perMinute seconds. State is in memory, like the reference.

export interface RateDecision {
  allowed: boolean;
  /** When refused: milliseconds until one more message is allowed. */
  retryAfterMs: number;
}

/**
 * Where the send rate is kept: this process's memory (SendRateLimiter), or a store several
 * instances share (answering asynchronously).
 */
export interface SendRate {
  /** Counts one message for `key` when allowed. */
  take(key: string): RateDecision | Promise<RateDecision>;
}

export class SendRateLimiter implements SendRate {
  #intervalMs: number;
  #toleranceMs: number;
  #now: () => number;
  /** Theoretical arrival time per key; keys whose TAT is in the past carry no state. */
  #tat = new Map<string, number>();

  constructor(options: { perMinute: number; burst: number; now?: () => number }) {
    this.#intervalMs = 60_000 / Math.max(1, options.perMinute);
    this.#toleranceMs = this.#intervalMs * Math.max(0, options.burst - 1);
    this.#now = options.now ?? (() => performance.now());
  }

  /** Counts one message for `key` when allowed. */
  take(key: string): RateDecision {
    const now = this.#now();
    const tat = Math.max(this.#tat.get(key) ?? now, now);
    const earliest = tat - this.#toleranceMs;
    if (now < earliest) return { allowed: false, retryAfterMs: Math.ceil(earliest - now) };
    this.#tat.set(key, tat + this.#intervalMs);
    if (this.#tat.size > 10_000) this.#sweep(now);
    return { allowed: true, retryAfterMs: 0 };
  }

  #sweep(now: number) {
    for (const [k, t] of this.#tat) if (t <= now) this.#tat.delete(k);
  }
}
