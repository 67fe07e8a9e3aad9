// The outbound queue in PostgreSQL: one entry per submission (shared body), one row per
// recipient with its own status, attempts and next attempt time.

import type {
  AttemptRecord,
  MessageInput,
  QueueDestinationSummary,
  QueueEntry,
  QueueRecipientRecord,
  RecipientClaim,
} from "../types.ts";
import { messageSize } from "../sqlite/bodies.ts";
import type { Q } from "./connection.ts";
import { onDb } from "./write_batch.ts";
import { freeBodies, insertBody } from "./bodies.ts";
import { key, read, write } from "./op.ts";

interface RcptRow {
  id: number;
  queue_id: number;
  recipient: string;
  domain: string;
  status: QueueRecipientRecord["status"];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  updated_at: number;
}

const toRcpt = (r: RcptRow): QueueRecipientRecord => ({
  id: r.id,
  queueId: r.queue_id,
  recipient: r.recipient,
  domain: r.domain,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  updatedAt: r.updated_at,
});

// Claim leases are timed on the database's clock, the one all instances share (onDb); times
// given back (busyUntil, a claim's end in nextAttemptFor) are put back on the caller's clock.
// One offset for the reads of one look at the queue, so they agree on which claims have ended.

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

/**
 * One attempt's outcome inside the batch's transaction, for the recipients its owner holds;
 * `finished` when the entry is done.
 */
async function applyAttempt(
  q: Q,
  { queueId, domain, now, owner, updates }: AttemptRecord,
): Promise<{ finished: boolean; recorded: number }> {
  let sent = 0;
  let failures = 0;
  let lastError: string | null = null;
  for (const u of updates) {
    const r = await q`UPDATE queue_recipients SET status = ${u.status}, attempts = ${u.attempts},
        next_attempt_at = COALESCE(${u.nextAttemptAt ?? null}::bigint, next_attempt_at),
        last_error = ${u.lastError}, updated_at = ${now}, claim_owner = NULL, claim_until = NULL
      WHERE id = ${u.id} AND queue_id = ${queueId} AND claim_owner = ${owner}`;
    // A recipient the operator dropped meanwhile, or one whose claim another worker took after
    // this one's lease ended (its outcome is that worker's to store), counts for nothing.
    if (r.count === 0) continue;
    if (u.status === "delivered") sent++;
    else {
      failures++;
      lastError = u.lastError ?? lastError;
    }
  }
  if (sent + failures > 0) {
    await q`INSERT INTO federation_stats (domain, sent, failures, last_error, last_at)
      VALUES (${domain.toLowerCase()}, ${sent}, ${failures}, ${lastError}, ${now})
      ON CONFLICT (domain) DO UPDATE SET sent = federation_stats.sent + excluded.sent,
        failures = federation_stats.failures + excluded.failures,
        last_error = COALESCE(excluded.last_error, federation_stats.last_error),
        last_at = excluded.last_at`;
  }
  const [left] = await q<{ n: number }[]>`
    SELECT count(*) AS n FROM queue_recipients
    WHERE queue_id = ${queueId} AND status IN ('queued', 'deferred')`;
  const recorded = sent + failures;
  if (left.n > 0) return { finished: false, recorded };
  const [e] = await q<{ body_id: number }[]>`
    DELETE FROM queue WHERE id = ${queueId} RETURNING body_id`;
  if (e) await freeBodies(q, [e.body_id], now);
  return { finished: true, recorded };
}

async function entries(q: Q, ids: number[]): Promise<QueueEntry[]> {
  if (ids.length === 0) return [];
  const heads = await q<
    { id: number; sender: string; body_id: number; size: number; created_at: number }[]
  >`SELECT * FROM queue WHERE id = ANY(${ids}::bigint[])`;
  const rcpts = await q<RcptRow[]>`
    SELECT * FROM queue_recipients WHERE queue_id = ANY(${ids}::bigint[]) ORDER BY id`;
  const byId = new Map(heads.map((h) => [h.id, h]));
  return ids.flatMap((id) => {
    const h = byId.get(id);
    return h
      ? [{
        id: h.id,
        sender: h.sender,
        bodyId: h.body_id,
        size: h.size,
        createdAt: h.created_at,
        recipients: rcpts.filter((r) => r.queue_id === id).map(toRcpt),
      }]
      : [];
  });
}

type EnqueueInput = MessageInput & { sender: string; recipients: string[]; now: number };

export const queueOps = {
  enqueue: write(
    async (q, _e, input: EnqueueInput) => {
      messageSize(input);
      const bodyId = await insertBody(q, input, input.now);
      const [e] = await q<{ id: number }[]>`
      WITH e AS (INSERT INTO queue (sender, body_id, size, created_at)
        VALUES (${input.sender}, ${bodyId}, ${messageSize(input)}, ${input.now}) RETURNING id),
      r AS (INSERT INTO queue_recipients
          (queue_id, recipient, domain, status, next_attempt_at, updated_at)
        SELECT e.id, u.rcpt, u.domain, 'queued', ${input.now}, ${input.now}
        FROM e, unnest(${input.recipients}::text[], ${
        input.recipients.map(domainOf)
      }::text[]) WITH ORDINALITY AS u(rcpt, domain, ord) ORDER BY u.ord)
      SELECT id FROM e`;
      return e.id;
    },
    () => [],
  ),
  dueRecipients: read(async (q, _e, now: number, limit: number) =>
    (await q<RcptRow[]>`
      SELECT * FROM queue_recipients
      WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ${now}
      ORDER BY next_attempt_at, id LIMIT ${limit}`).map(toRcpt)
  ),
  getQueueEntry: read(async (q, _e, id: number) => (await entries(q, [id]))[0] ?? null),
  listQueue: read(
    async (q, _e, query: { offset?: number; limit?: number; status?: string }) => {
      const status = query.status ?? null;
      const ids = (await q<{ id: number }[]>`
        SELECT id FROM queue WHERE (${status}::text IS NULL OR id IN (
          SELECT queue_id FROM queue_recipients WHERE status = ${status}::text))
        ORDER BY id DESC LIMIT ${query.limit ?? 50} OFFSET ${query.offset ?? 0}`)
        .map((r) => r.id);
      const [t] = await q<{ n: number }[]>`
        SELECT count(*) AS n FROM queue WHERE (${status}::text IS NULL OR id IN (
          SELECT queue_id FROM queue_recipients WHERE status = ${status}::text))`;
      return { items: await entries(q, ids), total: t.n };
    },
  ),
  updateRecipient: write(
    async (
      q,
      _e,
      id: number,
      u: {
        status: QueueRecipientRecord["status"];
        attempts?: number;
        nextAttemptAt?: number;
        lastError?: string | null;
        now: number;
      },
    ) => {
      await q`UPDATE queue_recipients SET status = ${u.status},
        attempts = COALESCE(${u.attempts ?? null}::bigint, attempts),
        next_attempt_at = COALESCE(${u.nextAttemptAt ?? null}::bigint, next_attempt_at),
        last_error = ${u.lastError ?? null}, updated_at = ${u.now} WHERE id = ${id}`;
    },
    (_c, [id]) => [key.recipient(id)],
  ),
  retryQueueEntry: write(
    async (q, _e, id: number, now: number) => {
      const r = await q`UPDATE queue_recipients SET status = 'queued', next_attempt_at = ${now},
        updated_at = ${now} WHERE queue_id = ${id} AND status IN ('queued', 'deferred', 'failed')`;
      return r.count > 0;
    },
    (_c, [id]) => [key.queue(id)],
  ),
  deleteQueueEntry: write(
    async (q, env, id: number) => {
      const [e] = await q<
        { body_id: number }[]
      >`DELETE FROM queue WHERE id = ${id} RETURNING body_id`;
      if (!e) return false;
      await freeBodies(q, [e.body_id], env.now());
      return true;
    },
    (_c, [id]) => [key.queue(id)],
  ),
  countQueued: read(async (q) => {
    const [r] = await q<{ n: number }[]>`
      SELECT count(*) AS n FROM queue_recipients WHERE status IN ('queued', 'deferred')`;
    return r.n;
  }),
  pendingRecipientsAfter: read(async (q, _e, afterId: number, limit: number) =>
    (await q<RcptRow[]>`
      SELECT * FROM queue_recipients
      WHERE id > ${afterId} AND status IN ('queued', 'deferred')
      ORDER BY id LIMIT ${limit}`).map(toRcpt)
  ),
  dueRecipientsFor: read(async (q, e, domain: string, now: number, limit: number) =>
    (await q<RcptRow[]>`
      SELECT * FROM queue_recipients
      WHERE domain = ${domain} AND next_attempt_at <= ${now} AND status IN ('queued', 'deferred')
        AND (claim_until IS NULL OR claim_until <= ${onDb(e, now)})
      ORDER BY next_attempt_at, id LIMIT ${limit}`).map(toRcpt)
  ),
  nextAttemptFor: read(async (q, e, domain: string, after: number) => {
    // The next attempt, or the end of a claim (the claimed recipient is due for others then).
    const [r] = await q<{ t: number | null }[]>`
      SELECT min(t) AS t FROM (
        (SELECT next_attempt_at AS t FROM queue_recipients
          WHERE domain = ${domain} AND next_attempt_at > ${after}
            AND status IN ('queued', 'deferred')
          ORDER BY next_attempt_at LIMIT 1)
        UNION ALL
        (SELECT claim_until - ${e.clockOffset()} FROM queue_recipients
          WHERE domain = ${domain} AND claim_until > ${onDb(e, after)}
            AND status IN ('queued', 'deferred')
          ORDER BY claim_until LIMIT 1)) AS due`;
    return r?.t ?? null;
  }),
  claimRecipients: write(
    async (q, e, queueId: number, { owner, ids, now, leaseMs }: RecipientClaim) => {
      const at = onDb(e, now);
      // One statement: a recipient another instance claims at the same moment is taken by one
      // of the two (the second UPDATE waits for the first's row lock, then sees its claim).
      const claimed = (await q<{ id: number }[]>`
        UPDATE queue_recipients SET claim_owner = ${owner}, claim_until = ${at + leaseMs}
        WHERE id = ANY(${ids}::bigint[]) AND queue_id = ${queueId}
          AND status IN ('queued', 'deferred')
          AND (claim_owner IS NULL OR claim_owner = ${owner} OR claim_until <= ${at})
        RETURNING id`).map((r) => r.id).sort((a, b) => a - b);
      const [busy] = await q<{ t: number | null }[]>`
        SELECT min(claim_until) - ${e.clockOffset()} AS t FROM queue_recipients
        WHERE id = ANY(${ids}::bigint[]) AND queue_id = ${queueId}
          AND status IN ('queued', 'deferred') AND claim_owner <> ${owner}
          AND claim_until > ${at}`;
      return { claimed, busyUntil: busy?.t ?? null };
    },
    (_c, [queueId]) => [key.queue(queueId)],
  ),
  renewClaims: write(
    async (q, e, { owner, ids, now, leaseMs }: RecipientClaim) =>
      (await q<{ id: number }[]>`
        UPDATE queue_recipients SET claim_until = ${onDb(e, now) + leaseMs}
        WHERE id = ANY(${ids}::bigint[]) AND claim_owner = ${owner}
          AND status IN ('queued', 'deferred')
        RETURNING id`).map((r) => r.id).sort((a, b) => a - b),
    // Only the owner's rows: another instance changes them once the lease ended, and a
    // conflict then is retried by the batch (write_batch.ts).
    () => [],
  ),
  releaseDestination: write(
    async (q, _e, domain: string, now: number) =>
      (await q`UPDATE queue_recipients SET next_attempt_at = ${now}, updated_at = ${now}
        WHERE domain = ${domain} AND status = 'deferred' AND next_attempt_at > ${now}`).count,
    (_c, [domain]) => [key.destination(domain)],
  ),
  queueDestinations: read(async (q, _e, limit: number) =>
    (await q<
      {
        domain: string;
        pending: number;
        deferred: number;
        oldest_at: number;
        next_attempt_at: number;
        last_error: string | null;
      }[]
    >`
      SELECT r.domain, count(*) AS pending, count(*) FILTER (WHERE r.status = 'deferred') AS deferred,
        min(q.created_at) AS oldest_at, min(r.next_attempt_at) AS next_attempt_at,
        (SELECT last_error FROM queue_recipients e WHERE e.domain = r.domain
          AND e.status = 'deferred' ORDER BY e.updated_at DESC, e.id DESC LIMIT 1) AS last_error
      FROM queue_recipients r JOIN queue q ON q.id = r.queue_id
      WHERE r.status IN ('queued', 'deferred')
      GROUP BY r.domain ORDER BY pending DESC, r.domain LIMIT ${limit}`).map((
      r,
    ): QueueDestinationSummary => ({
      domain: r.domain,
      pending: r.pending,
      deferred: r.deferred,
      oldestAt: r.oldest_at,
      nextAttemptAt: r.next_attempt_at,
      lastError: r.last_error,
    }))
  ),
  oldestQueueEntryAt: read(async (q) => {
    const [r] = await q<{ t: number | null }[]>`SELECT min(created_at) AS t FROM queue`;
    return r?.t ?? null;
  }),
  queueEntriesBefore: read(async (q, _e, before: number, limit: number) =>
    (await q<{ id: number }[]>`
      SELECT id FROM queue WHERE created_at <= ${before}
      ORDER BY created_at, id LIMIT ${limit}`).map((r) => r.id)
  ),
  recordAttempt: write(
    async (q, _e, input: AttemptRecord) => await applyAttempt(q, input),
    (_c, [input]) => [
      key.queue(input.queueId),
      key.destination(input.domain),
      key.federation(input.domain),
    ],
  ),
  countFederationReceived: write(
    async (q, _e, counts: { domain: string; count: number }[], now: number) => {
      if (counts.length === 0) return;
      await q`INSERT INTO federation_stats (domain, received, last_at)
        SELECT d, sum(n), ${now} FROM unnest(
          ${counts.map((c) => c.domain.toLowerCase())}::text[],
          ${counts.map((c) => c.count)}::bigint[]) AS u(d, n)
        GROUP BY d
        ON CONFLICT (domain) DO UPDATE SET received = federation_stats.received + excluded.received,
          last_at = excluded.last_at`;
    },
    (_c, [counts]) => counts.map((c) => key.federation(c.domain)),
  ),
};
