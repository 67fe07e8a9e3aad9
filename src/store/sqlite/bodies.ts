// Shared message bodies: stored once, freed when no message or queue entry refers to them.

import type { Db } from "./db.ts";

export function insertBody(db: Db, data: Uint8Array, now: number): number {
  return db.run(
    "INSERT INTO bodies (size, data, created_at) VALUES (?, ?, ?)",
    data.length,
    data,
    now,
  )
    .lastInsertRowid;
}

/** Deletes those of the given bodies that nothing references any more. */
export function freeBodies(db: Db, ids: Iterable<number>): number {
  let freed = 0;
  for (const id of new Set(ids)) {
    freed += db.run(
      `DELETE FROM bodies WHERE id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = ?)
       AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = ?)`,
      id,
      id,
      id,
    ).changes;
  }
  return freed;
}
