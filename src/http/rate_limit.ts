// Per-key token buckets (like nginx limit_req with burst and nodelay): a request passes while the
// key's bucket holds a token; tokens refill at a steady rate. Memory is bounded.

export interface TokenBucketOptions {
  perSecond: number;
  burst: number;
  now?: () => number;
  /** Most keys tracked at once; full buckets are dropped first. */
  maxKeys?: number;
}

export class TokenBuckets {
  #perMs: number;
  #burst: number;
  #now: () => number;
  #maxKeys: number;
  #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: TokenBucketOptions) {
    if (!(options.perSecond > 0) || !(options.burst >= 1)) {
      throw new Error(
        `Cannot create rate limit: need perSecond > 0 and burst >= 1, got ${options.perSecond}/${options.burst}`,
      );
    }
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst;
    this.#now = options.now ?? Date.now;
    this.#maxKeys = options.maxKeys ?? 100_000;
  }

  /** Takes a token for `key`; false when the key is over its rate. */
  take(key: string): boolean {
    const now = this.#now();
    const b = this.#buckets.get(key);
    const tokens = b ? Math.min(this.#burst, b.tokens + (now - b.at) * this.#perMs) : this.#burst;
    if (tokens < 1) {
      b!.tokens = tokens;
      b!.at = now;
      return false;
    }
    if (!b && this.#buckets.size >= this.#maxKeys) this.#prune(now);
    this.#buckets.set(key, { tokens: tokens - 1, at: now });
    return true;
  }

  /** Seconds until `key` has a token again (0 when it has one now). */
  retryAfterSeconds(key: string): number {
    const b = this.#buckets.get(key);
    if (!b) return 0;
    const tokens = b.tokens + (this.#now() - b.at) * this.#perMs;
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.#perMs / 1000);
  }

  #prune(now: number) {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(k);
    }
    // Everyone is active: forget the oldest half rather than grow without bound.
    if (this.#buckets.size >= this.#maxKeys) {
      let n = Math.ceil(this.#buckets.size / 2);
      for (const k of this.#buckets.keys()) {
        if (n-- <= 0) break;
        this.#buckets.delete(k);
      }
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
