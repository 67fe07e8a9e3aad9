// Data steps of an upgrade that may touch much of the database: done in bounded, committed
// slices after the schema migrations, so they show progress, can be interrupted anywhere and
// leave a usable database (unfinished rows are simply still in their old, readable form).
//  1. Bodies stored inline by older versions but larger than the inline limit move to files.
//  2. A database created before auto_vacuum=INCREMENTAL is rebuilt once (VACUUM) in that mode.

import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import type { OpEnv } from "./env.ts";
import { INLINE_LIMIT } from "./bodies.ts";
import { newBodyFileName } from "./body_files.ts";

const PENDING = "internal.legacy_bodies";

export interface DataStepOps {
  /** Whether the upgrade left large inline bodies to move (set by 0003, cleared when done). */
  legacyBodiesPending(): boolean;
  /** Bodies still to move to files (counted once, for progress). */
  countLegacyBodies(): { bodies: number; bytes: number };
  /** Moves legacy bodies with id > afterId to files, up to about `maxBytes`; next id or null. */
  moveLegacyBodies(
    afterId: number,
    maxBytes: number,
  ): { moved: number; bytes: number; next: number | null };
  /** 0 none, 1 full, 2 incremental. */
  autoVacuumMode(): number;
  /** Rebuilds the file with auto_vacuum=INCREMENTAL (runs outside any transaction). */
  convertToIncremental(): void;
}

export function dataStepOps(env: OpEnv): DataStepOps {
  const { db, files } = env;
  return {
    legacyBodiesPending: () =>
      db.get("SELECT 1 AS x FROM settings WHERE key = ?", PENDING) !== undefined,
    countLegacyBodies() {
      const r = db.get<{ n: number; bytes: number }>(
        "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM bodies WHERE file_id IS NULL AND size > ?",
        INLINE_LIMIT,
      )!;
      return { bodies: r.n, bytes: r.bytes };
    },
    moveLegacyBodies(afterId, maxBytes) {
      if (!files) return { moved: 0, bytes: 0, next: null };
      return db.tx(() => {
        let moved = 0;
        let bytes = 0;
        let last = afterId;
        while (bytes < maxBytes) {
          const r = db.get<{ id: number; data: Uint8Array }>(
            "SELECT id, data FROM bodies WHERE id > ? AND file_id IS NULL AND size > ? ORDER BY id LIMIT 1",
            last,
            INLINE_LIMIT,
          );
          if (!r) {
            db.run("DELETE FROM settings WHERE key = ?", PENDING);
            return { moved, bytes, next: null };
          }
          last = r.id;
          const name = newBodyFileName();
          writeDurably(files.spoolPath(name), r.data);
          files.adopt(name);
          const { lastInsertRowid: fileId } = db.run(
            "INSERT INTO body_files (name, size, created_at) VALUES (?, ?, ?)",
            name,
            r.data.length,
            env.now(),
          );
          db.run(
            "UPDATE bodies SET data = x'', file_id = ?, file_offset = 0 WHERE id = ?",
            fileId,
            r.id,
          );
          // The spool-like temporary name is not needed once linked.
          files.dropSpool(name);
          moved++;
          bytes += r.data.length;
        }
        return { moved, bytes, next: last };
      });
    },
    autoVacuumMode: () => db.get<{ auto_vacuum: number }>("PRAGMA auto_vacuum")!.auto_vacuum,
    convertToIncremental() {
      db.raw.exec("PRAGMA auto_vacuum = INCREMENTAL");
      db.raw.exec("VACUUM");
      db.shrinkMemory();
    },
  };
}

function writeDurably(path: string, data: Uint8Array): void {
  const fd = openSync(path, "wx", 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
