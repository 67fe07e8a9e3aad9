// The synchronous store over one connection: every store function by name, and the batch runner
// the writer uses for group commit. A batch is one write transaction (BEGIN IMMEDIATE … one
// COMMIT, so one fsync for all); each operation runs inside its own SAVEPOINT, so one that fails
// is rolled back alone and the others still commit. A failed COMMIT fails them all.

import { BUSY_TIMEOUT_MS, Db } from "./db.ts";
import { isStorageBusy } from "../../errors.ts";
import type { Migration } from "./migrations.ts";
import { TxFiles } from "./body_files.ts";
import type { OpEnv } from "./env.ts";
import { accountStore } from "./account_store.ts";
import { mailStore } from "./mail_store.ts";
import { mailQueries } from "./mail_queries.ts";
import { miscStore } from "./misc_store.ts";
import { queueStore } from "./queue_store.ts";
import { pinActive, spaceStore } from "./space_store.ts";
import { dataStepOps } from "./data_steps.ts";
import { bodyData, bodyRow, smallBodies } from "./bodies.ts";
import { toWire, type WireError } from "./wire_error.ts";
import { snapshotInto } from "./backup.ts";
import { ADDING, isFullError, lowSpaceError, SpaceGuard } from "./space_guard.ts";

/** The busy timeout of batches after one found the write lock held (runBatch). */
const BUSY_AGAIN_MS = 500;

export interface EngineOptions {
  /** Directory of body files (data_dir/bodies); null keeps every body inline. */
  bodiesDir: string | null;
  readOnly?: boolean;
  migrations?: readonly Migration[];
  /** Size of the space reserve (space_guard.ts); default by file system size, 0 for none. */
  reserveBytes?: number;
  /**
   * COMMIT does not wait for the disk; the caller calls syncWal() before it reports any result
   * (the writer thread, so that the next batch runs while the disk syncs the last one).
   */
  deferSync?: boolean;
  /**
   * The WAL size (bytes of frames) at which a commit checkpoints (checkpointer.ts); SQLite's
   * default (1000 frames) if unset.
   */
  walAutocheckpointBytes?: number;
}

export interface OpCall {
  name: string;
  args: unknown[];
  /** The caller's clock at the call. */
  now: number;
}

export type OpResult = { ok: true; value: unknown } | { ok: false; error: WireError };

/** A batch's results, and whether the store is in low-space mode after it (space_guard.ts). */
export interface BatchOutcome {
  results: OpResult[];
  lowSpace: boolean;
}

type OpFn = (...args: unknown[]) => unknown;

/** Rows changed by one batch past which memory is given back. */
const BIG_CHANGE = 10_000;

function buildOps(env: OpEnv, bodiesDir: string | null) {
  const { db } = env;
  return {
    ...accountStore(env),
    ...mailStore(env),
    ...mailQueries(env),
    ...miscStore(env),
    ...queueStore(env),
    ...spaceStore(env),
    ...dataStepOps(env),
    bodyRow: (id: number, maxData: number) => bodyRow(db, id, maxData),
    bodyData: (id: number) => bodyData(db, id),
    smallBodies: (ids: number[], budget: number) => smallBodies(db, ids, budget, bodiesDir),
    /** Which of these body file names rows still reference. */
    knownBodyFiles: (names: string[]) => {
      const known: string[] = [];
      for (const n of names) {
        if (db.get("SELECT 1 AS x FROM body_files WHERE name = ?", n)) known.push(n);
      }
      return known;
    },
    backupPinned: () => pinActive(env),
    /**
     * One compaction step of the body segments (segments.ts) created before `createdBefore`;
     * null when none needs it (or this store keeps no body files).
     */
    compactBodySegment: (createdBefore: number) =>
      env.files
        ? db.tx(() => env.files!.segments.compactOne(db, env.files!, createdBefore, env.now()))
        : null,
    /** VACUUM INTO `path` plus the body files (runs outside any transaction). */
    snapshotInto: (path: string, bodiesDir: string | null) => snapshotInto(db.raw, path, bodiesDir),
    schemaVersions: () =>
      db.all<{ name: string }>("SELECT name FROM schema_migrations ORDER BY version").map((r) =>
        r.name
      ),
    shrinkMemory: () => db.shrinkMemory(),
    /** One PASSIVE checkpoint: copies what no reader still needs, never waits (checkpointer.ts). */
    walCheckpoint: () => ({
      ...db.get<{ busy: number; log: number; checkpointed: number }>(
        "PRAGMA wal_checkpoint(PASSIVE)",
      )!,
      pageSize: db.pageSize,
    }),
  };
}

export type EngineOps = ReturnType<typeof buildOps>;
export type OpName = keyof EngineOps;

export class Engine {
  readonly db: Db;
  readonly files: TxFiles | null;
  readonly guard: SpaceGuard | null;
  readonly ops: EngineOps;
  /** Commits wait for syncWal() (see EngineOptions.deferSync). */
  readonly deferSync: boolean;
  #now = 0;
  #wal: Deno.FsFile | null = null;
  /** The last batch found the write lock held by another process (runBatch). */
  #busy = false;

  constructor(path: string, options: EngineOptions, migrate?: (db: Db) => void) {
    this.db = new Db(path, {
      readOnly: options.readOnly,
      deferSync: options.deferSync,
      walAutocheckpointBytes: options.walAutocheckpointBytes,
    });
    this.deferSync = this.db.deferSync;
    try {
      migrate?.(this.db);
      this.files = options.bodiesDir && !options.readOnly ? new TxFiles(options.bodiesDir) : null;
      this.guard = this.files && options.reserveBytes !== 0
        ? new SpaceGuard(options.bodiesDir!, options.reserveBytes)
        : null;
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.ops = buildOps(
      { db: this.db, files: this.files, now: () => this.#now },
      options.bodiesDir,
    );
  }

  #fn(name: string): OpFn {
    const fn = (this.ops as unknown as Record<string, OpFn>)[name];
    if (typeof fn !== "function") throw new Error(`Unknown store operation "${name}"`);
    return fn;
  }

  /** Runs one operation as is (reads; and writes that manage their own transaction). */
  call(op: OpCall): unknown {
    this.#now = op.now;
    return this.#fn(op.name)(...op.args);
  }

  /**
   * Runs the operations as one write transaction (see the file comment). A batch that failed
   * whole for lack of space runs once more in the space the reserve gave back, without the
   * writes that add data (space_guard.ts).
   */
  runBatch(ops: OpCall[]): BatchOutcome {
    const guard = this.guard;
    guard?.recover();
    // While another process holds the write lock, each batch would wait the whole busy timeout
    // in turn and the writes queued behind it longer still: after one batch found the lock
    // held, the next ones wait only briefly, until one gets the lock again.
    let run = this.#runBatch(ops);
    if (guard && run.full) {
      const freed = guard.onFull();
      if (freed && run.whole) run = this.#runBatch(ops);
    }
    if (run.busy !== this.#busy) {
      this.#busy = run.busy;
      this.db.setBusyTimeout(run.busy ? BUSY_AGAIN_MS : BUSY_TIMEOUT_MS);
    }
    return { results: run.results, lowSpace: guard?.low ?? false };
  }

  #runBatch(
    ops: OpCall[],
  ): { results: OpResult[]; full: boolean; whole: boolean; busy: boolean } {
    const { db, files } = this;
    const low = this.guard?.low ?? false;
    let full = false;
    const failAll = (err: unknown) => {
      full ||= isFullError(err);
      return {
        results: ops.map((): OpResult => ({ ok: false, error: toWire(err) })),
        full,
        whole: true,
        busy: false,
      };
    };
    const changesBefore = this.#totalChanges();
    try {
      db.begin();
    } catch (err) {
      db.rollback();
      return { ...failAll(err), busy: isStorageBusy(err) };
    }
    const results: OpResult[] = [];
    for (const op of ops) {
      if (low && ADDING.has(op.name)) {
        results.push({ ok: false, error: toWire(lowSpaceError()) });
        continue;
      }
      const mark = files?.mark();
      db.control("SAVEPOINT op");
      try {
        this.#now = op.now;
        const value = this.#fn(op.name)(...op.args);
        db.control("RELEASE op");
        results.push({ ok: true, value });
      } catch (err) {
        if (!db.raw.isTransaction) {
          // SQLite gave up the whole transaction (a full disk, I/O error): nothing committed.
          db.rollback();
          files?.afterRollback();
          return failAll(err);
        }
        db.control("ROLLBACK TO op");
        db.control("RELEASE op");
        if (mark) files!.undoTo(mark);
        full ||= isFullError(err);
        results.push({ ok: false, error: toWire(err) });
      }
    }
    let keep = false;
    try {
      if (files) {
        keep = pinActive({ db, files, now: () => Date.now() });
        files.beforeCommit();
      }
      db.commit();
    } catch (err) {
      db.rollback();
      files?.afterRollback();
      return failAll(err);
    }
    // A freed body file goes only once the commit that frees it is durable: a power cut
    // before the WAL sync would bring back rows that point at it. When that sync fails the
    // files stay (the unreferenced-file sweep finds them later).
    if (this.deferSync && files?.dooming && !keep) keep = !this.#syncWalNow();
    files?.afterCommit(keep);
    // After a big change (a mass expunge, an account deleted) SQLite's spare memory goes back.
    if (this.#totalChanges() - changesBefore > BIG_CHANGE) db.shrinkMemory();
    return { results, full, whole: false, busy: false };
  }

  /**
   * Makes every commit so far durable (deferSync): one fdatasync of the WAL, on a blocking-pool
   * thread, so this thread may run the next batch meanwhile. SQLite never syncs less than this
   * for a checkpoint, and a WAL that is not there holds nothing to sync.
   */
  async syncWal(): Promise<void> {
    if (!this.deferSync) return;
    await this.#walFile()?.syncData();
  }

  /** syncWal() on this thread; false when it failed. */
  #syncWalNow(): boolean {
    try {
      this.#walFile()?.syncDataSync();
      return true;
    } catch {
      return false; // the caller keeps the files; the batch's own sync reports the error
    }
  }

  /**
   * The WAL, opened once (an open per sync cost more than the sync's own call). It stays the
   * same file while this connection is open: SQLite deletes it only when the last connection
   * closes, and in WAL mode every open connection holds a shared lock on the database file that
   * tells the closing one it is not the last; a checkpoint restarts or truncates it in place.
   * Until the first commit of this run there may be none: null then.
   */
  #walFile(): Deno.FsFile | null {
    if (this.#wal) return this.#wal;
    try {
      this.#wal = Deno.openSync(`${this.db.path}-wal`, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    return this.#wal;
  }

  #totalChanges(): number {
    return this.db.get<{ n: number }>("SELECT total_changes() AS n")!.n;
  }

  close(): void {
    this.#wal?.close();
    this.#wal = null;
    this.files?.close();
    this.db.close();
  }
}
