// Slows password guessing down per client address and per account name at once.
//
// Every failed login counts against both keys for a window. Past a few free failures a key's
// attempts are spaced out: each one waits for the slot after the previous one, the gap doubling
// with every further failure up to maxDelayMs, so guessing in parallel over many connections is
// no faster than guessing one at a time; an attempt that would wait longer than maxWaitMs is
// refused at once (the client should try again later). A successful login never clears the
// failures of its address (another account's success must not hand a guesser fresh attempts)
// nor of its account; instead the (address, account) pair becomes trusted: the holder of the
// password keeps logging in without waiting from where they logged in before, even while
// someone else is failing on their account or behind their address (carrier-grade NAT).

export interface LoginThrottleOptions {
  /** Failures per key within the window that cost no waiting. Default 5. */
  freeFailures?: number;
  /** How long failures count; the count restarts after it. Default 10 minutes. */
  windowMs?: number;
  /** The gap after the first failure past the free ones; it doubles with each further one. Default 250 ms. */
  baseDelayMs?: number;
  /** Largest gap between two attempts of one key. Default 5 s. */
  maxDelayMs?: number;
  /** An attempt that would wait longer than this is refused instead. Default 30 s. */
  maxWaitMs?: number;
  /** How long a successful (address, account) pair skips the waiting. Default 30 days. */
  trustMs?: number;
  /** Most keys (and trusted pairs) remembered; beyond it the oldest are forgotten. */
  maxKeys?: number;
  now?: () => number;
}

export type Admission = { wait: number } | { refused: true; retryAfterMs: number };

/**
 * The throttle as the login paths use it. LoginThrottle keeps its state in this process's
 * memory; instances sharing a PostgreSQL store keep it there (answers then come as promises).
 */
export interface LoginGate {
  /**
   * Call before checking a password: how long to wait first, or that the attempt is refused.
   * An admitted attempt takes its slot; report its outcome with recordFailure/recordSuccess.
   */
  admit(ip: string, account: string): Admission | Promise<Admission>;
  recordFailure(ip: string, account: string): void | Promise<void>;
  recordSuccess(ip: string, account: string): void | Promise<void>;
}

/** The rules' parameters with their defaults filled in (shared by every implementation). */
export interface ThrottleParams {
  freeFailures: number;
  windowMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxWaitMs: number;
  trustMs: number;
}

export function throttleParams(options: LoginThrottleOptions = {}): ThrottleParams {
  return {
    freeFailures: options.freeFailures ?? 5,
    windowMs: options.windowMs ?? 10 * 60_000,
    baseDelayMs: options.baseDelayMs ?? BASE_DELAY_MS,
    maxDelayMs: options.maxDelayMs ?? 5000,
    maxWaitMs: options.maxWaitMs ?? 30_000,
    trustMs: options.trustMs ?? 30 * 24 * 3600_000,
  };
}

interface KeyState {
  failures: number;
  since: number;
  /** Earliest start of the next attempt. */
  nextAt: number;
}

const BASE_DELAY_MS = 250;

export class LoginThrottle implements LoginGate {
  #keys = new Map<string, KeyState>();
  #trusted = new Map<string, number>();
  #free: number;
  #windowMs: number;
  #baseDelayMs: number;
  #maxDelayMs: number;
  #maxWaitMs: number;
  #trustMs: number;
  #maxKeys: number;
  #now: () => number;

  constructor(options: LoginThrottleOptions = {}) {
    const p = throttleParams(options);
    this.#free = p.freeFailures;
    this.#windowMs = p.windowMs;
    this.#baseDelayMs = p.baseDelayMs;
    this.#maxDelayMs = p.maxDelayMs;
    this.#maxWaitMs = p.maxWaitMs;
    this.#trustMs = p.trustMs;
    this.#maxKeys = options.maxKeys ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  admit(ip: string, account: string): Admission {
    const now = this.#now();
    if (this.#isTrusted(ip, account, now)) return { wait: 0 };
    const states = [this.#state(`ip ${ip}`, now), this.#state(`acct ${account}`, now)];
    let start = now;
    for (const s of states) {
      if (s && this.#delay(s) > 0) start = Math.max(start, s.nextAt);
    }
    const wait = start - now;
    if (wait > this.#maxWaitMs) return { refused: true, retryAfterMs: wait };
    for (const s of states) if (s) s.nextAt = start + this.#delay(s);
    return { wait };
  }

  recordFailure(ip: string, account: string): void {
    const now = this.#now();
    this.#trusted.delete(pairKey(ip, account));
    for (const key of [`ip ${ip}`, `acct ${account}`]) {
      let s = this.#state(key, now);
      if (!s) {
        if (this.#keys.size >= this.#maxKeys) this.#prune(now);
        s = { failures: 0, since: now, nextAt: now };
        this.#keys.set(key, s);
      }
      s.failures++;
      s.nextAt = Math.max(s.nextAt, now + this.#delay(s));
    }
  }

  recordSuccess(ip: string, account: string): void {
    const now = this.#now();
    const key = pairKey(ip, account);
    // Re-inserting keeps the map in order of last success, so pruning drops the stalest.
    this.#trusted.delete(key);
    if (this.#trusted.size >= this.#maxKeys) this.#dropOldest(this.#trusted);
    this.#trusted.set(key, now + this.#trustMs);
  }

  /** Failures counted for a key now (for tests and metrics). */
  failures(kind: "ip" | "acct", key: string): number {
    return this.#state(`${kind} ${key}`, this.#now())?.failures ?? 0;
  }

  #isTrusted(ip: string, account: string, now: number): boolean {
    const until = this.#trusted.get(pairKey(ip, account));
    if (until === undefined) return false;
    if (until > now) return true;
    this.#trusted.delete(pairKey(ip, account));
    return false;
  }

  /** The key's live state; an expired window is forgotten. */
  #state(key: string, now: number): KeyState | undefined {
    const s = this.#keys.get(key);
    if (s && now - s.since > this.#windowMs) {
      this.#keys.delete(key);
      return undefined;
    }
    return s;
  }

  #delay(s: KeyState): number {
    const over = s.failures - this.#free;
    return over < 0 ? 0 : Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.min(over, 16));
  }

  #prune(now: number) {
    for (const [k, s] of this.#keys) {
      if (now - s.since > this.#windowMs) this.#keys.delete(k);
    }
    // Still full (many keys inside one window): forget the oldest half, so memory and the
    // sweep's cost stay bounded whatever address range an attacker has.
    if (this.#keys.size >= this.#maxKeys) this.#dropOldest(this.#keys);
  }

  #dropOldest(map: Map<string, unknown>) {
    let drop = Math.ceil(map.size / 2);
    for (const k of map.keys()) {
      if (drop-- <= 0) break;
      map.delete(k);
    }
  }
}

function pairKey(ip: string, account: string): string {
  return `${ip}\n${account}`;
}
