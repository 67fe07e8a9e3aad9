// Space: giving free pages back in bounded steps, forgetting old expunge tombstones (with the
// horizon QRESYNC needs), the paged scan for unreferenced bodies, and the backup pin that keeps
// freed body files until a running backup has copied them.

import type { OpEnv } from "./env.ts";
import { freeUnreferencedPage } from "./bodies.ts";

const PIN_KEY = "internal.backup_pin";

export interface SpaceOps {
  reclaimSpace(maxPages: number): { freed: number; remaining: number };
  purgeTombstones(before: number, limit: number): number;
  freeUnreferencedBodiesPage(
    afterId: number,
    limit: number,
  ): { freed: number; next: number | null };
  /** Sets (until `until`) or clears (null) the pin; see pinActive. */
  setBackupPin(until: number | null): void;
}

/** While a backup copies body files, freed files stay (the sweep removes them later). */
export function pinActive(env: OpEnv): boolean {
  const v = env.db.get<{ value: string }>("SELECT value FROM settings WHERE key = ?", PIN_KEY);
  return v !== undefined && Number(v.value) > env.now();
}

export function spaceStore(env: OpEnv): SpaceOps {
  const { db, files } = env;
  const freePages = () =>
    db.get<{ freelist_count: number }>("PRAGMA freelist_count")!.freelist_count;
  return {
    reclaimSpace(maxPages) {
      const before = freePages();
      const mode = db.get<{ auto_vacuum: number }>("PRAGMA auto_vacuum")!.auto_vacuum;
      // 2 = INCREMENTAL; older files are converted by `tern migrate` (data_steps.ts).
      if (mode === 2 && before > 0) {
        // Stepped to the end: the pragma frees one page per step, and exec() stops after the
        // first (measured on Deno 2.9's node:sqlite: one page per call whatever the argument).
        db.raw.prepare(`PRAGMA incremental_vacuum(${Math.max(1, Math.floor(maxPages))})`).all();
      }
      const remaining = freePages();
      return { freed: before - remaining, remaining: mode === 2 ? remaining : 0 };
    },
    purgeTombstones(before, limit) {
      return db.tx(() => {
        const rows = db.all<{ mailbox_id: number; uid: number; modseq: number }>(
          "SELECT mailbox_id, uid, modseq FROM expunged WHERE expunged_at < ? ORDER BY expunged_at LIMIT ?",
          before,
          limit,
        );
        const horizon = new Map<number, number>();
        for (const r of rows) {
          db.run("DELETE FROM expunged WHERE mailbox_id = ? AND uid = ?", r.mailbox_id, r.uid);
          horizon.set(r.mailbox_id, Math.max(horizon.get(r.mailbox_id) ?? 0, r.modseq));
        }
        for (const [id, modSeq] of horizon) {
          db.run(
            "UPDATE mailboxes SET expunge_horizon = MAX(expunge_horizon, ?) WHERE id = ?",
            modSeq,
            id,
          );
        }
        return rows.length;
      });
    },
    freeUnreferencedBodiesPage: (afterId, limit) =>
      db.tx(() => freeUnreferencedPage(db, files, afterId, limit)),
    setBackupPin(until) {
      if (until === null) db.run("DELETE FROM settings WHERE key = ?", PIN_KEY);
      else {
        db.run(
          "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
          PIN_KEY,
          String(until),
        );
      }
    },
  };
}
