// One-file backups: a consistent snapshot of the database (VACUUM INTO) that also carries the
// body files, copied into a table of the backup (1 MiB rows); restore writes them back out. A pin
// (space_store.ts) keeps files freed during the copy until it is done: the snapshot may still
// name them.

import { DatabaseSync } from "node:sqlite";
import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ensureBodyDirs, fsyncDir, isBodyFileName, tmpDirOf } from "./body_files.ts";

const CHUNK = 1 << 20;
const TABLE = "backup_body_files";

/** Writes the snapshot of `db` (any connection, read-only is enough) into the empty file `path`. */
export function snapshotInto(db: DatabaseSync, path: string, bodiesDir: string | null): number {
  db.exec(`VACUUM INTO '${path.replaceAll("'", "''")}'`);
  const out = new DatabaseSync(path);
  try {
    // The pin of this very backup is not part of what a restore should find.
    out.exec("DELETE FROM settings WHERE key = 'internal.backup_pin'");
    out.exec(`CREATE TABLE ${TABLE} (name TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
      PRIMARY KEY (name, seq)) WITHOUT ROWID`);
    if (!bodiesDir) return 0;
    const names =
      (out.prepare("SELECT name FROM body_files ORDER BY id").all() as { name: string }[])
        .map((r) => r.name);
    const insert = out.prepare(`INSERT INTO ${TABLE} (name, seq, data) VALUES (?, ?, ?)`);
    const buf = new Uint8Array(CHUNK);
    out.exec("BEGIN");
    for (const name of names) {
      if (!isBodyFileName(name)) throw new Error(`Bad body file name in the database: ${name}`);
      const fd = openSync(join(bodiesDir, name), "r");
      try {
        for (let seq = 0;; seq++) {
          let n = 0;
          while (n < CHUNK) {
            const r = readSync(fd, buf, n, CHUNK - n, null);
            if (r === 0) break;
            n += r;
          }
          if (n === 0 && seq > 0) break;
          insert.run(name, seq, buf.subarray(0, n));
          if (n < CHUNK) break;
        }
      } finally {
        closeSync(fd);
      }
    }
    out.exec("COMMIT");
    return names.length;
  } finally {
    out.close();
  }
}

/** Restores the body files a backup carries into `bodiesDir`, then drops them from the database. */
export function restoreBodyFiles(path: string, bodiesDir: string): number {
  const db = new DatabaseSync(path);
  try {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(
      TABLE,
    );
    if (!has) return 0;
    ensureBodyDirs(bodiesDir);
    const names = (db.prepare(`SELECT DISTINCT name FROM ${TABLE}`).all() as { name: string }[])
      .map((r) => r.name);
    const chunks = db.prepare(`SELECT data FROM ${TABLE} WHERE name = ? ORDER BY seq`);
    for (const name of names) {
      if (!isBodyFileName(name)) throw new Error(`Bad body file name in the backup: ${name}`);
      const tmp = join(tmpDirOf(bodiesDir), name);
      const fd = openSync(tmp, "w", 0o600);
      try {
        for (const { data } of chunks.iterate(name) as Iterable<{ data: Uint8Array }>) {
          let off = 0;
          while (off < data.length) off += writeSync(fd, data, off, data.length - off);
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(bodiesDir, name));
    }
    fsyncDir(bodiesDir);
    db.exec(`DROP TABLE ${TABLE}`);
    db.exec("VACUUM");
    return names.length;
  } finally {
    db.close();
  }
}
