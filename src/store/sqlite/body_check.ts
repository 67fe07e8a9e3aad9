// A read-only look at the body files a database points into (tern doctor): every file a row
// names must exist and reach as far as its bodies do. Safe beside a running relay (a read-only
// connection in WAL mode).

import { DatabaseSync } from "node:sqlite";
import { statSync } from "node:fs";
import { join } from "node:path";

export interface BodyFileProblem {
  name: string;
  /** Messages whose body lies in this file. */
  messages: number;
  problem: "missing" | "short";
  /** The bytes the rows need, and the bytes the file has (short files). */
  needBytes: number;
  haveBytes: number;
}

export interface BodyFileReport {
  files: number;
  problems: BodyFileProblem[];
}

/** Checks the body files of the database at `path` (bodies under `bodiesDir`). */
export function checkBodyFiles(path: string, bodiesDir: string): BodyFileReport {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare(
      `SELECT f.name, count(m.id) AS messages,
         max(b.file_offset + b.size - length(b.data)) AS need
       FROM body_files f JOIN bodies b ON b.file_id = f.id
       LEFT JOIN messages m ON m.body_id = b.id
       GROUP BY f.id ORDER BY f.id`,
    ).all() as { name: string; messages: number; need: number }[];
    const problems: BodyFileProblem[] = [];
    // A file freed by the running relay after the rows were read is not missing: its row went
    // in the commit before the unlink, so it is looked up again (in a newer snapshot).
    const named = db.prepare("SELECT 1 FROM body_files WHERE name = ?");
    for (const r of rows) {
      let have: number;
      try {
        have = statSync(join(bodiesDir, r.name)).size;
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
        if (!named.get(r.name)) continue;
        problems.push({
          name: r.name,
          messages: r.messages,
          problem: "missing",
          needBytes: r.need,
          haveBytes: 0,
        });
        continue;
      }
      if (have < r.need) {
        problems.push({
          name: r.name,
          messages: r.messages,
          problem: "short",
          needBytes: r.need,
          haveBytes: have,
        });
      }
    }
    return { files: rows.length, problems };
  } finally {
    db.close();
  }
}
