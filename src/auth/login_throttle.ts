// Slows down password guessing: failures per client address within a window add a growing delay.

export interface LoginThrottleOptions {
  /** Failures allowed without delay. */
  freeFailures?: number;
  windowMs?: number;
  maxDelayMs?: number;
  now?: () => number;
}

export class LoginThrottle {
  #failures = new Map<string, { count: number; since: number }>();
  #free: number;
  #windowMs: number;
  #maxDelayMs: number;
  #now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    this.#free = options.freeFailures ?? 5;
    this.#windowMs = options.windowMs ?? 10 * 60_000;
    this.#maxDelayMs = options.maxDelayMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** Delay to apply before answering a failed attempt from this address. */
  recordFailure(ip: string): number {
    const now = this.#now();
    let f = this.#failures.get(ip);
    if (!f || now - f.since > this.#windowMs) f = { count: 0, since: now };
    f.count++;
    this.#failures.set(ip, f);
    if (this.#failures.size > 100_000) this.#prune(now);
    const over = f.count - this.#free;
    return over <= 0 ? 0 : Math.min(this.#maxDelayMs, 250 * 2 ** Math.min(over - 1, 10));
  }

  recordSuccess(ip: string): void {
    this.#failures.delete(ip);
  }

  #prune(now: number) {
    for (const [ip, f] of this.#failures) {
      if (now - f.since > this.#windowMs) this.#failures.delete(ip);
    }
    // Still full (many addresses within one window): forget the oldest half, so memory and
    // the sweep's cost stay bounded whatever address range an attacker has.
    let drop = this.#failures.size > 100_000 ? this.#failures.size / 2 : 0;
    for (const ip of this.#failures.keys()) {
      if (drop-- <= 0) break;
      this.#failures.delete(ip);
    }
  }
}
