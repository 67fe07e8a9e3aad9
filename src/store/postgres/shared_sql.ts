// Small statements several op files use.

import type { Q } from "./connection.ts";
import { lockKey } from "./write_batch.ts";

/**
 * A new UIDVALIDITY: the time in seconds, or one more than the last one given when that is
 * later (mailboxes re-created within a second still differ). The caller holds the
 * "uidvalidity" lock key.
 */
export async function nextUidValidity(q: Q, now: number): Promise<number> {
  const [r] = await q<{ v: number }[]>`
    INSERT INTO settings (key, value) VALUES ('internal.uidvalidity', ${Math.floor(now / 1000)})
    ON CONFLICT (key) DO UPDATE SET value = GREATEST(${Math.floor(now / 1000)}::bigint,
      settings.value::bigint + 1)::text
    RETURNING value::bigint AS v`;
  return r.v;
}

/** Takes advisory locks on `names` in the one global order (operations that run alone). */
export async function lockKeys(q: Q, names: Iterable<string>): Promise<void> {
  const keys = [...new Set([...names].map(lockKey))].sort((a, b) => a - b);
  if (keys.length) await q`SELECT pg_advisory_xact_lock(k) FROM unnest(${keys}::bigint[]) AS k`;
}
