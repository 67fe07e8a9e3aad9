// `tern migrate-store`: copies an SQLite relay (tern.db and its body files) into a PostgreSQL
// store, keeping every id (accounts, mailboxes, UIDs, UIDVALIDITY, modseqs, bodies, queue), so
// clients carry on as if nothing happened. The SQLite side is only read (the relay must be
// stopped). Rows go in slices of one transaction each, with the slice's last key recorded in the
// same transaction (`tern_import`), so an interrupted copy resumes where it stopped. Counters
// (quota, mailbox counts) are not copied but rebuilt by the PostgreSQL triggers as messages
// arrive, which makes comparing them with SQLite's a check of the copy. Body files become blobs
// (the same id as the file's row). After the copy: row counts per table, every account's and
// mailbox's counters, and a SHA-256 of every body's bytes on both sides are compared.

import { DatabaseSync } from "node:sqlite";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type postgres from "postgres";
import type { PostgresStore } from "./mod.ts";
import { CHUNK } from "./bodies.ts";
import { toBase64 } from "./connection.ts";
import { MIGRATIONS } from "../sqlite/mod.ts";

/** A table to copy: its name and the columns that order it (its key). */
interface TableSpec {
  name: string;
  key: string[];
}

/** In an order where every row's references are already there. */
const TABLES: TableSpec[] = [
  { name: "settings", key: ["rowid"] },
  { name: "accounts", key: ["id"] },
  { name: "mailboxes", key: ["id"] },
  { name: "subscriptions", key: ["account_id", "name"] },
  { name: "mailbox_keywords", key: ["id"] },
  { name: "body_files", key: ["id"] },
  { name: "bodies", key: ["id"] },
  { name: "messages", key: ["id"] },
  { name: "expunged", key: ["rowid"] },
  { name: "metadata", key: ["rowid"] },
  { name: "registration_tokens", key: ["rowid"] },
  { name: "blocklist", key: ["rowid"] },
  { name: "queue", key: ["id"] },
  { name: "queue_recipients", key: ["id"] },
  { name: "federation_stats", key: ["rowid"] },
  { name: "push_tokens", key: ["rowid"] },
  { name: "push_jobs", key: ["id"] },
];

/** Kept by triggers in PostgreSQL: rebuilt by the copy, then compared. */
const COUNTERS: Record<string, string[]> = {
  accounts: ["used_bytes"],
  mailboxes: ["message_count", "unseen_count", "recent_count", "size_bytes"],
};

/** Tables whose identity sequence must move past the copied ids. */
const IDENTITY = ["accounts", "mailboxes", "blobs", "bodies", "messages", "queue"].concat([
  "mailbox_keywords",
  "queue_recipients",
  "push_tokens",
  "push_jobs",
]);

export interface ImportProgress {
  phase: "copy" | "verify";
  /** The table being copied ("bodies" while verifying). */
  table: string;
  /** Items done and in all (rows over every table while copying, bodies while verifying). */
  done: number;
  total: number;
}

export interface ImportReport {
  /** Rows per table in both databases (equal, or the import throws). */
  rows: Record<string, number>;
  /** Bodies whose bytes were compared (SHA-256). */
  bodiesVerified: number;
  /** True when an earlier, interrupted run had copied part of it. */
  resumed: boolean;
}

export class ImportError extends Error {}

type Row = Record<string, unknown>;

/** Copies the SQLite relay at `sqlitePath` (body files under `bodiesDir`) into `store`. */
export async function importSqlite(options: {
  sqlitePath: string;
  bodiesDir: string;
  store: PostgresStore;
  /** Rows per transaction (tests use small slices to interrupt in the middle). */
  slice?: number;
  onProgress?: (p: ImportProgress) => void;
  /** Stops between slices; what was copied stays and the next run resumes. */
  signal?: AbortSignal;
}): Promise<ImportReport> {
  const { store } = options;
  const sql = store.sql;
  const slice = options.slice ?? 500;
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(options.sqlitePath, { readOnly: true });
  } catch (err) {
    throw new ImportError(`Cannot open ${options.sqlitePath}: ${(err as Error).message}`);
  }
  try {
    // One read transaction for the whole run: what it copies and what it verifies is one
    // snapshot, even if something wrote meanwhile (the relay should be stopped: such writes are
    // not copied).
    db.exec("BEGIN");
    checkSource(db);
    await sql`CREATE TABLE IF NOT EXISTS tern_import (
      tbl text PRIMARY KEY, last_key text, rows bigint NOT NULL DEFAULT 0)`;
    const started = await sql<{ n: number }[]>`SELECT count(*) AS n FROM tern_import`;
    const resumed = started[0].n > 0;
    if (!resumed) {
      const [a] = await sql<{ n: number }[]>`SELECT count(*) AS n FROM accounts`;
      if (a.n > 0) {
        throw new ImportError(
          `${store.where} already holds ${a.n} account(s) not copied by migrate-store; copy into an empty database`,
        );
      }
    }
    const totals = Object.fromEntries(
      TABLES.map((t) => [t.name, count(db, t.name)]),
    ) as Record<string, number>;
    const total = Object.values(totals).reduce((a, b) => a + b, 0);
    let done = 0;
    for (const t of TABLES) {
      const [state] = await sql<{ last_key: string | null; rows: number }[]>`
        SELECT last_key, rows FROM tern_import WHERE tbl = ${t.name}`;
      let last: unknown[] | null = state?.last_key ? JSON.parse(state.last_key) : null;
      let copied = state?.rows ?? 0;
      done += copied;
      const columns = await targetColumns(store, t.name);
      while (true) {
        options.signal?.throwIfAborted();
        const rows = page(db, t, last, slice);
        if (rows.length === 0) break;
        const lastRow = rows[rows.length - 1];
        last = t.key.map((k) => lastRow[k === "rowid" ? "_rowid" : k]);
        await sql.begin(async (tx) => {
          if (t.name === "body_files") {
            for (const r of rows) await copyFile(tx, options.bodiesDir, r);
          } else {
            await insertRows(tx, t.name, columns, rows);
          }
          await tx`INSERT INTO tern_import (tbl, last_key, rows)
            VALUES (${t.name}, ${JSON.stringify(last)}, ${copied + rows.length})
            ON CONFLICT (tbl) DO UPDATE SET last_key = excluded.last_key, rows = excluded.rows`;
        });
        copied += rows.length;
        done += rows.length;
        options.onProgress?.({ phase: "copy", table: t.name, done, total });
      }
    }
    for (const t of IDENTITY) {
      await sql`SELECT setval(pg_get_serial_sequence(${t}, 'id'),
        GREATEST((SELECT max(id) FROM ${sql(t)}), 1))`;
    }
    const verified = await verify(db, options, totals);
    await sql`DROP TABLE tern_import`;
    return { rows: totals, bodiesVerified: verified, resumed };
  } finally {
    db.exec("ROLLBACK");
    db.close();
  }
}

/** The source must be a current, fully upgraded tern database. */
function checkSource(db: DatabaseSync) {
  let applied: number;
  try {
    applied = Number(
      (db.prepare("SELECT count(*) AS n FROM schema_migrations").get() as { n: number }).n,
    );
  } catch {
    throw new ImportError("Not a tern database (no schema_migrations table)");
  }
  if (applied !== MIGRATIONS.length) {
    throw new ImportError(
      `The SQLite database has ${applied} of ${MIGRATIONS.length} migrations: run \`tern migrate\` with this version first`,
    );
  }
  const legacy = db.prepare("SELECT value FROM settings WHERE key = 'internal.legacy_bodies'")
    .get() as { value: string } | undefined;
  if (legacy && legacy.value !== "done") {
    throw new ImportError(
      "Large bodies of an older version are still in the database: run `tern migrate` first",
    );
  }
}

function count(db: DatabaseSync, table: string): number {
  return Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
}

/** The next `limit` rows after key `last`, in key order. */
function page(db: DatabaseSync, t: TableSpec, last: unknown[] | null, limit: number): Row[] {
  const keyCols = t.key.join(", ");
  const where = last ? `WHERE (${keyCols}) > (${t.key.map(() => "?").join(", ")})` : "";
  const select = t.key[0] === "rowid" ? "rowid AS _rowid, *" : "*";
  return db.prepare(`SELECT ${select} FROM ${t.name} ${where} ORDER BY ${keyCols} LIMIT ?`)
    .all(...((last ?? []) as never[]), limit) as Row[];
}

async function targetColumns(
  store: PostgresStore,
  table: string,
): Promise<Map<string, string>> {
  if (table === "body_files") return new Map();
  const cols = await store.sql<{ column_name: string; data_type: string }[]>`
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ${table}`;
  const skip = new Set(COUNTERS[table] ?? []);
  return new Map(
    cols.filter((c) => !skip.has(c.column_name)).map((c) => [c.column_name, c.data_type]),
  );
}

type Tx = postgres.TransactionSql;

async function insertRows(tx: Tx, table: string, columns: Map<string, string>, rows: Row[]) {
  const names = Object.keys(rows[0]).filter((c) => columns.has(c));
  const out = rows.map((r) => {
    const o: Row = {};
    for (const c of names) {
      let v = r[c];
      const type = columns.get(c);
      if (type === "boolean" && v !== null) v = Number(v) !== 0;
      else if (typeof v === "bigint") v = Number(v);
      o[c] = v;
    }
    if (table === "bodies") {
      // A file-backed body keeps its head here; the rest is the blob made from its file.
      o.data = r.data ?? new Uint8Array(0);
      o.blob_id = r.file_id ?? null;
      o.blob_offset = r.file_offset ?? 0;
    }
    return o;
  });
  const cols = Object.keys(out[0]);
  // Identity columns are BY DEFAULT: the copied ids are kept.
  await tx`INSERT INTO ${tx(table)} ${tx(out as never, cols)}`;
}

/** A body file becomes the blob of the same id, in the store's chunk size. */
async function copyFile(tx: Tx, dir: string, r: Row) {
  const id = Number(r.id);
  const size = Number(r.size);
  await tx`INSERT INTO blobs (id, size, created_at, committed) VALUES (${id}, ${size}, ${
    Number(r.created_at)
  }, true)`;
  using file = await Deno.open(join(dir, String(r.name)), { read: true });
  const buf = new Uint8Array(CHUNK);
  let seq = 0;
  let total = 0;
  // A segment (several bodies in one file) may go on past its recorded size with bytes that no
  // body points at (a write that was rolled back): only the recorded size is copied.
  while (total < size) {
    let n = 0;
    const want = Math.min(CHUNK, size - total);
    while (n < want) {
      const got = await file.read(buf.subarray(n, want));
      if (got === null) break;
      n += got;
    }
    if (n === 0) break;
    await tx`INSERT INTO blob_chunks (blob_id, seq, data)
      VALUES (${id}, ${seq++}, decode(${toBase64(buf.subarray(0, n))}, 'base64'))`;
    total += n;
    if (n < want) break;
  }
  if (total !== size) {
    throw new ImportError(`Body file ${r.name} holds ${total} bytes, the database says ${size}`);
  }
}

/** Row counts, counters and every body's SHA-256 on both sides. */
async function verify(
  db: DatabaseSync,
  options: Parameters<typeof importSqlite>[0],
  totals: Record<string, number>,
): Promise<number> {
  const sql = options.store.sql;
  const problems: string[] = [];
  for (const t of TABLES) {
    const target = t.name === "body_files" ? "blobs" : t.name;
    const [r] = await sql<{ n: number }[]>`SELECT count(*) AS n FROM ${sql(target)}`;
    if (r.n !== totals[t.name]) {
      problems.push(`${t.name}: ${totals[t.name]} rows in SQLite, ${r.n} in PostgreSQL`);
    }
  }
  const accounts = db.prepare("SELECT id, used_bytes FROM accounts ORDER BY id").all() as Row[];
  const pgAccounts = new Map(
    (await sql<{ id: number; used_bytes: number }[]>`SELECT id, used_bytes FROM accounts`)
      .map((r) => [r.id, r.used_bytes]),
  );
  for (const a of accounts) {
    if (pgAccounts.get(Number(a.id)) !== Number(a.used_bytes)) {
      problems.push(`account ${a.id}: used bytes differ`);
    }
  }
  const boxes = db.prepare(
    "SELECT id, message_count, unseen_count, recent_count, size_bytes, uid_next, highest_modseq FROM mailboxes",
  ).all() as Row[];
  const pgBoxes = new Map(
    (await sql<Row[]>`SELECT id, message_count, unseen_count, recent_count, size_bytes, uid_next,
      highest_modseq FROM mailboxes`).map((r) => [Number(r.id), r]),
  );
  for (const b of boxes) {
    const p = pgBoxes.get(Number(b.id));
    for (const k of Object.keys(b)) {
      if (!p || Number(p[k]) !== Number(b[k])) problems.push(`mailbox ${b.id}: ${k} differs`);
    }
  }
  if (problems.length) {
    throw new ImportError(`The copy does not match:\n  ${problems.slice(0, 20).join("\n  ")}`);
  }
  // Every body, byte for byte (as a digest), read the way each store serves it.
  const ids = db.prepare("SELECT id FROM bodies ORDER BY id").all() as Row[];
  const body = db.prepare(
    "SELECT b.data, b.size, b.file_offset, f.name FROM bodies b LEFT JOIN body_files f ON f.id = b.file_id WHERE b.id = ?",
  );
  let done = 0;
  for (const { id } of ids) {
    options.signal?.throwIfAborted();
    const r = body.get(Number(id)) as {
      data: Uint8Array;
      size: number;
      file_offset: number;
      name: string;
    };
    const mine = createHash("sha256").update(r.data);
    if (r.name) {
      const bytes = await Deno.readFile(join(options.bodiesDir, r.name));
      const from = Number(r.file_offset);
      mine.update(bytes.subarray(from, from + Number(r.size) - r.data.length));
    }
    const theirs = await options.store.readBody(Number(id));
    if (!theirs || createHash("sha256").update(theirs).digest("hex") !== mine.digest("hex")) {
      throw new ImportError(`Body ${id} differs after the copy`);
    }
    done++;
    if (done % 200 === 0 || done === ids.length) {
      options.onProgress?.({ phase: "verify", table: "bodies", done, total: ids.length });
    }
  }
  return done;
}
