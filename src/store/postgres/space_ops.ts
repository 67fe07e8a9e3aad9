// Space in PostgreSQL: forgetting old expunge tombstones (with the horizon QRESYNC needs), the
// paged scan for unreferenced bodies, and the sweep of blobs nothing uses. Free pages are given
// back by PostgreSQL's autovacuum, not by tern. Each step runs alone in its own transaction and
// takes the account locks of what it changes in the global order (write_batch.ts).

import { alone } from "./op.ts";
import { freeBodies, READER_GRACE_MS } from "./bodies.ts";
import { lockKeys } from "./shared_sql.ts";

export const spaceOps = {
  /** Autovacuum returns space in PostgreSQL: nothing for tern to do, nothing left over. */
  reclaimSpace: alone((_q, _e, _maxPages: number) => Promise.resolve({ freed: 0, remaining: 0 })),
  purgeTombstones: alone(async (q, _e, before: number, limit: number) => {
    const pick = await q<{ mailbox_id: number; uid: number; account_id: number }[]>`
      SELECT x.mailbox_id, x.uid, m.account_id FROM expunged x
      JOIN mailboxes m ON m.id = x.mailbox_id
      WHERE x.expunged_at < ${before} ORDER BY x.expunged_at LIMIT ${limit}`;
    if (pick.length === 0) return 0;
    await lockKeys(q, pick.map((p) => `a:${p.account_id}`));
    const rows = await q<{ mailbox_id: number; modseq: number }[]>`
      DELETE FROM expunged x USING unnest(${pick.map((p) => p.mailbox_id)}::bigint[],
        ${pick.map((p) => p.uid)}::bigint[]) AS u(mailbox_id, uid)
      WHERE x.mailbox_id = u.mailbox_id AND x.uid = u.uid AND x.expunged_at < ${before}
      RETURNING x.mailbox_id, x.modseq`;
    await q`
      UPDATE mailboxes m SET expunge_horizon = GREATEST(m.expunge_horizon, h.modseq)
      FROM (SELECT mailbox_id, max(modseq) AS modseq
        FROM unnest(${rows.map((r) => r.mailbox_id)}::bigint[],
          ${rows.map((r) => r.modseq)}::bigint[]) AS u(mailbox_id, modseq)
        GROUP BY mailbox_id) h
      WHERE m.id = h.mailbox_id`;
    return rows.length;
  }),
  /** One page of the unreferenced-body scan (ids after `afterId`); where the next starts. */
  freeUnreferencedBodiesPage: alone(async (q, env, afterId: number, limit: number) => {
    const ids = (await q<{ id: number }[]>`
      SELECT id FROM bodies WHERE id > ${afterId} ORDER BY id LIMIT ${limit}`).map((r) => r.id);
    return {
      freed: await freeBodies(q, ids, env.now()),
      next: ids.length < limit ? null : ids[ids.length - 1],
    };
  }),
  /**
   * Deletes blobs no commit adopted that were made before `before`, and freed blobs past the
   * readers' grace (freed before `before` and at least READER_GRACE_MS ago). At most `limit`.
   */
  sweepBlobs: alone(async (q, env, before: number, limit: number) => {
    const freedBefore = Math.min(before, env.now() - READER_GRACE_MS);
    const r = await q`
      DELETE FROM blobs WHERE id IN (
        SELECT id FROM blobs WHERE NOT committed AND created_at < ${before}
        UNION ALL
        SELECT id FROM blobs WHERE freed_at < ${freedBefore}
        LIMIT ${limit})
      AND NOT EXISTS (SELECT 1 FROM bodies WHERE bodies.blob_id = blobs.id)`;
    return r.count;
  }),
};
