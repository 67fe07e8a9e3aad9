// A token bucket over bytes: a steady rate with a burst allowance, as iroh limits what it reads
// from each client. take() never refuses: it answers how long the caller must wait before it
// reads on, so an over-eager client is slowed down by TCP back-pressure, not disconnected.

export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #at: number;
  #now: () => number;

  /** bytesPerSecond 0 or less: unlimited. */
  constructor(options: { bytesPerSecond: number; burstBytes: number; now?: () => number }) {
    this.#rate = options.bytesPerSecond;
    this.#burst = Math.max(1, options.burstBytes);
    this.#tokens = this.#burst;
    this.#now = options.now ?? Date.now;
    this.#at = this.#now();
  }

  /** Spends n bytes; returns the milliseconds to wait before the next read (0: go on). */
  take(n: number): number {
    if (this.#rate <= 0) return 0;
    const t = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#at) / 1000) * this.#rate);
    this.#at = t;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#rate) * 1000);
  }
}
