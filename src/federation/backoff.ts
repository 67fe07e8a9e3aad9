// Retry delays: exponential with a cap, and "equal jitter" (half the delay fixed, half random) so
// that mail deferred together does not come back together. Used for a destination that stopped
// answering and for a recipient its peer deferred.

export interface BackoffPolicy {
  /** The delay after the first failure. */
  baseMs: number;
  /** No delay is longer. */
  capMs: number;
}

/** Postfix waits 300 s to 4000 s; tern retries sooner because it also follows the peer. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 30_000, capMs: 30 * 60_000 };

/** The delay after the n-th consecutive failure (n ≥ 1): base·2^(n-1), capped, jittered. */
export function backoffMs(
  n: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exp = Math.min(Math.max(n, 1) - 1, 40);
  const full = Math.min(policy.capMs, policy.baseMs * 2 ** exp);
  return Math.round(full / 2 + random() * (full / 2));
}
