// SQLite connection: pragmas, cached prepared statements, synchronous transactions (one write
// transaction, savepoints inside it, or a read snapshot) and versioned migrations with checksums
// (an edited, already-applied migration stops start-up).

import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { createHash } from "node:crypto";
import type { Migration } from "./migrations.ts";

export type SqlValue = string | number | bigint | null | Uint8Array;

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MigrationError";
  }
}

/** Page cache per connection (negative: KiB): bounded whatever the database size. */
const CACHE_KIB = 8192;
/**
 * Size the WAL file is truncated to after a checkpoint (journal_size_limit). The writer's own
 * checkpoint threshold keeps a WAL in steady use below it (checkpointer.ts).
 */
const WAL_LIMIT_BYTES = 8 * 1024 * 1024;
/** Each WAL frame is one page after a header of this many bytes (sqlite.org/fileformat.html). */
const WAL_FRAME_HEADER_BYTES = 24;

/** How long a write waits for a lock another process holds (an operator's sqlite3 shell). */
export const BUSY_TIMEOUT_MS = 10_000;

export class Db {
  readonly raw: DatabaseSync;
  readonly path: string;
  readonly readOnly: boolean;
  #stmts = new Map<string, StatementSync>();
  #inTx = false;

  /**
   * COMMIT writes the WAL without waiting for the disk (synchronous = NORMAL); the caller makes
   * it durable by syncing the WAL file before telling anyone (Engine.syncWal, the writer thread).
   * Only when asked and the database really is in WAL mode (not ":memory:", not a file system
   * that refused WAL): in a rollback journal NORMAL would lose the last commit to a power cut.
   */
  readonly deferSync: boolean = false;
  /** The database's page size: fixed when the file was created (WAL mode cannot change it). */
  readonly pageSize: number;

  constructor(
    path: string,
    options: { readOnly?: boolean; deferSync?: boolean; walAutocheckpointBytes?: number } = {},
  ) {
    this.path = path;
    this.readOnly = options.readOnly ?? false;
    this.raw = new DatabaseSync(path, { readOnly: this.readOnly });
    this.raw.exec(`PRAGMA cache_size = -${CACHE_KIB}`);
    this.setBusyTimeout(BUSY_TIMEOUT_MS);
    // Pages stay SQLite's default 4 KiB. Larger pages for new databases were measured (issue 21;
    // scripts/bench_store.ts, 9 alternating runs, and `deno task bench --only submit`, 6 pairs;
    // medians): 16 KiB cut the system calls per 100 KB delivery from ~90 to ~50 but not the
    // writer thread's CPU (0.60 vs 0.56 ms/msg) nor end-to-end throughput (accepted/s x1.00,
    // server CPU x1.03), and 2 KB deliveries lost (writer CPU 0.29 vs 0.20 ms/msg; end to end
    // accepted/s x0.83, server CPU x1.23; 8 KiB: x0.83, x1.20). Each commit rewrites a few
    // B-tree leaves per message (per-mailbox index entries), which grow with the page, and a
    // savepoint's journal then passes SQLite's 64 KiB in-memory limit and goes to a temporary
    // file: 30 KB reach the disk per 2 KB message at 4 KiB, 67 KB at 16 KiB.
    if (this.readOnly) {
      this.pageSize = this.#pageSize();
      return;
    }
    // Only takes effect for a database without tables (new ones); older files are converted
    // once by a VACUUM (see data_steps.ts).
    this.raw.exec("PRAGMA auto_vacuum = INCREMENTAL");
    const mode = this.raw.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string };
    this.deferSync = (options.deferSync ?? false) && mode.journal_mode.toLowerCase() === "wal" &&
      !path.startsWith("file:"); // a URI's WAL is not simply the path + "-wal"
    this.pageSize = this.#pageSize(); // a new database's file exists now: its size is final
    // The WAL file grows to the largest transaction (a mass EXPUNGE); once checkpointed it is cut
    // back to this, so the space is given back to the file system (issue 22).
    this.raw.exec(`PRAGMA journal_size_limit = ${WAL_LIMIT_BYTES}`);
    // A connection whose WAL another one checkpoints (checkpointer.ts) checkpoints itself later.
    // SQLite counts the threshold in frames, whose size follows the page size.
    if (options.walAutocheckpointBytes !== undefined) {
      const frames = Math.max(
        1,
        Math.floor(options.walAutocheckpointBytes / (this.pageSize + WAL_FRAME_HEADER_BYTES)),
      );
      this.raw.exec(`PRAGMA wal_autocheckpoint = ${frames}`);
    }
    // FULL: a commit survives power loss, not only a process crash; SMTP says 250 after it.
    // NORMAL when the caller syncs the WAL itself after COMMIT: on Linux (powersafe overwrite,
    // SQLite's default) FULL is exactly NORMAL plus one sync of the WAL after the commit frame,
    // so a commit followed by syncWal() is as durable as a FULL commit.
    this.raw.exec(`PRAGMA synchronous = ${this.deferSync ? "NORMAL" : "FULL"}`);
    this.raw.exec("PRAGMA foreign_keys = ON");
  }

  #pageSize(): number {
    return (this.raw.prepare("PRAGMA page_size").get() as { page_size: number }).page_size;
  }

  stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, ...params: SqlValue[]): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  get<T>(sql: string, ...params: SqlValue[]): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  run(sql: string, ...params: SqlValue[]): { changes: number; lastInsertRowid: number } {
    const r = this.stmt(sql).run(...params);
    return { changes: Number(r.changes), lastInsertRowid: Number(r.lastInsertRowid) };
  }

  get inTransaction(): boolean {
    return this.#inTx;
  }

  /**
   * Runs fn in one write transaction, or inside the enclosing one (a batch). Never await inside:
   * node:sqlite is synchronous.
   */
  tx<T>(fn: () => T): T {
    if (this.#inTx) return fn();
    this.begin();
    try {
      const r = fn();
      this.commit();
      return r;
    } catch (err) {
      this.rollback();
      throw err;
    }
  }

  /** Runs fn in one read snapshot (several statements see the same commit). */
  snapshot<T>(fn: () => T): T {
    if (this.#inTx) return fn();
    this.raw.exec("BEGIN");
    this.#inTx = true;
    try {
      return fn();
    } finally {
      this.#inTx = false;
      if (this.raw.isTransaction) this.raw.exec("COMMIT");
    }
  }

  /** How long a statement waits for another connection's lock before SQLITE_BUSY. */
  setBusyTimeout(ms: number): void {
    this.raw.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(ms))}`);
  }

  begin(): void {
    this.stmt("BEGIN IMMEDIATE").run();
    this.#inTx = true;
  }

  commit(): void {
    try {
      this.stmt("COMMIT").run();
    } finally {
      this.#inTx = this.raw.isTransaction;
    }
  }

  /**
   * Transaction control that runs per operation (savepoints) or per batch, as prepared
   * statements: exec() would parse the SQL text every time.
   */
  control(sql: "SAVEPOINT op" | "RELEASE op" | "ROLLBACK TO op"): void {
    this.stmt(sql).run();
  }

  /** Rolls back what is still open; SQLite may already have (a full disk, I/O errors). */
  rollback(): void {
    this.#inTx = false;
    if (this.raw.isTransaction) this.raw.exec("ROLLBACK");
  }

  migrate(migrations: readonly Migration[], now = Date.now()): number[] {
    this.raw.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    const applied = this.all<{ version: number; name: string; sha256: string }>(
      "SELECT version, name, sha256 FROM schema_migrations ORDER BY version",
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const a of applied) {
      const m = known.get(a.version);
      if (!m) {
        throw new MigrationError(
          `Cannot open database "${this.path}": it has migration ${a.name}, which this version of tern does not know (a newer tern wrote it)`,
        );
      }
      const sum = sha256(m.sql);
      if (sum !== a.sha256) {
        throw new MigrationError(
          `Cannot open database "${this.path}": migration ${m.name} was changed after it was applied (applied sha256 ${a.sha256}, now ${sum})`,
        );
      }
    }
    const done = new Set(applied.map((a) => a.version));
    const ran: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      this.tx(() => {
        this.raw.exec(m.sql);
        this.run(
          "INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES (?, ?, ?, ?)",
          m.version,
          m.name,
          sha256(m.sql),
          now,
        );
      });
      ran.push(m.version);
    }
    return ran;
  }

  /** Gives SQLite's spare memory back (after big operations). */
  shrinkMemory(): void {
    this.raw.exec("PRAGMA shrink_memory");
  }

  close(): void {
    this.#stmts.clear();
    if (this.raw.isOpen) this.raw.close();
  }
}

export function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}
