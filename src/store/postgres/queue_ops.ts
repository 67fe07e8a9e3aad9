// The outbound queue in PostgreSQL: one entry per submission (shared body), one row per
// recipient with its own status, attempts and next attempt time.

import type { MessageInput, QueueEntry, QueueRecipientRecord } from "../types.ts";
import { messageSize } from "../sqlite/bodies.ts";
import type { Q } from "./connection.ts";
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

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
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
  claimRecipients: write(
    async (q, _e, now: number, limit: number, leaseMs: number) =>
      (await q<RcptRow[]>`
        WITH due AS (
          SELECT id FROM queue_recipients
          WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ${now}
          ORDER BY next_attempt_at, id LIMIT ${limit}
          FOR UPDATE SKIP LOCKED)
        UPDATE queue_recipients r SET next_attempt_at = ${now + leaseMs} FROM due
        WHERE r.id = due.id RETURNING r.*`).map(toRcpt).sort((a, b) => a.id - b.id),
    () => [],
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
};
