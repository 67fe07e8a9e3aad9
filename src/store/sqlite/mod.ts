// SQLite implementation of the store (node:sqlite, WAL). The only module that knows SQL.
//
// Two modes with the same store functions (op_kinds.ts says where each runs):
//  - threaded (startSqliteStore, the server): writes go to a writer thread with group commit
//    (write_queue.ts), started at the first write and stopped when idle (writes with nothing to
//    do are answered here: op_kinds.ts NOOPS); bounded reads run here on a read-only connection;
//    heavy reads in a reader thread started on demand and stopped when idle (both, and the
//    checkpoint thread, are on_demand_thread.ts);
//  - in-process (openSqliteStore: ":memory:", tests, short CLI commands): one connection here,
//    each write its own transaction, run through the same batch code.

import { dirname, join } from "node:path";
import { existsSync, statSync } from "node:fs";
import type { BodyReader, SmallBody, Store } from "../types.ts";
import { Db, MigrationError } from "./db.ts";
import { MIGRATIONS } from "./migrations.ts";
import type { Migration } from "./migrations.ts";
import { Engine, type OpCall, type OpName } from "./engine.ts";
import { NOOPS, OP_KINDS, ROUTES } from "./op_kinds.ts";
import { type BatchRunner, WriteQueue } from "./write_queue.ts";
import { StoreThread } from "./store_thread.ts";
import { Checkpointer, WRITER_CHECKPOINT_BYTES } from "./checkpointer.ts";
import { OnDemandThread } from "./on_demand_thread.ts";
import { leaseBody, SqliteSpool } from "./spool.ts";
import { endAllClaims } from "./queue_store.ts";
import { SlabPool } from "./slab_pool.ts";
import { FileBodyReader, MemoryBodyReader } from "./body_reader.ts";
import { isBodyFileName, tmpDirOf } from "./body_files.ts";
import { COMPACT_MIN_AGE_MS } from "./segments.ts";
import type { BodyRow } from "./bodies.ts";
import { INLINE_LIMIT, readSegmentBody } from "./bodies.ts";
import { restoreBodyFiles } from "./backup.ts";

export { Db, INLINE_LIMIT, MigrationError, MIGRATIONS, restoreBodyFiles };
export type { Migration };

export interface SqliteStoreOptions {
  migrations?: readonly Migration[];
  now?: () => number;
  /** Body files directory; default `bodies` beside the database, none for ":memory:". */
  bodiesDir?: string | null;
  /** Space kept in reserve for deletions on a full disk (space_guard.ts); 0 for none. */
  reserveBytes?: number;
  /**
   * Threaded: a database up to this size is read here even by heavy reads (a full scan of it is
   * quick); default 4 MiB. Tests set 0 to use the reader thread.
   */
  tinyBytes?: number;
  /** Threaded: the writer thread stops after this long without writes (WRITER_IDLE_MS). */
  writerIdleMs?: number;
  /**
   * Threaded: this process is the only one that sends the database's outbound mail (`tern serve`
   * holds data_dir's lock), so claims on queued recipients left in it are those of a process that
   * ended (kill -9, a crash): they end at open, and that mail goes again at once instead of when
   * its lease runs out (outbound_claim_lease, 5 minutes by default).
   */
  soleSender?: boolean;
}

export interface DataProgress {
  step: "bodies" | "vacuum";
  done: number;
  total: number;
}

export interface SqliteStore extends Store {
  /** This thread's connection (read-only in threaded mode). */
  readonly db: Db;
  readonly bodiesDir: string | null;
  readonly threaded: boolean;
  /** Threaded: which store threads run now (in-process: both false). */
  readonly threads: { writer: boolean; reader: boolean };
  /** Writes and the batches that carried them (group commit). */
  readonly writeStats: { batches: number; ops: number };
  /** Checkpoint rounds off the writer's path (threaded only; checkpointer.ts). */
  readonly checkpointStats: { rounds: number; failures: number; lastError: string | null } | null;
  /**
   * The upgrade's data steps (data_steps.ts) in committed slices. vacuum: rebuild a file made
   * before incremental vacuum "always", only when it is under 256 MiB ("small"), or "never".
   */
  migrateData(options?: {
    onProgress?: (p: DataProgress) => void;
    vacuum?: "always" | "small" | "never";
    /** Stops between slices (what is done stays done; the next start resumes). */
    signal?: AbortSignal;
  }): Promise<{ bodiesMoved: number; vacuumed: boolean; vacuumPending: boolean }>;
}

/** Rows per main-thread read of bodies (smallBodies), in bytes. */
const SMALL_BODIES_BUDGET = 1 << 20;
/** Inline data read here at most; bigger legacy rows are read in the reader thread. */
const MAIN_DATA = 1 << 20;
/** The reader thread stops after this long without work (idle memory stays low). */
const READER_IDLE_MS = 30_000;
/** Segments compacted per sweep (each one write of at most half a segment's bytes). */
const COMPACT_STEPS = 64;
/**
 * The writer thread stops after this long without writes. Starting it again costs the first
 * write after the pause a new isolate and connection: 30–40 ms on a quiet machine, a few hundred
 * under load (measured: the benchmark's "wake one user" after 35 s idle went from 6 to 36 ms with
 * a 30 s pause). A relay with users writes every few minutes (logins, deliveries, push jobs), so
 * it keeps its writer; one left alone gives the ~15 MB back.
 */
const WRITER_IDLE_MS = 5 * 60_000;
const SMALL_DB_BYTES = 256 * 1024 * 1024;
/** Below this size even a full scan stays within the main thread's budget: no reader thread. */
const TINY_DB_BYTES = 4 * 1024 * 1024;

interface Exec {
  threads?(): { writer: boolean; reader: boolean };
  read(op: OpCall): unknown;
  write: WriteQueue;
  heavy(op: OpCall): Promise<unknown>;
  close(): Promise<void>;
}

function bodiesDirFor(path: string, options: SqliteStoreOptions): string | null {
  if (options.bodiesDir !== undefined) return options.bodiesDir;
  return path === ":memory:" || path.startsWith("file::memory:")
    ? null
    : join(dirname(path), "bodies");
}

/** In-process store: one connection on this thread. Migrates on open. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  const bodiesDir = bodiesDirFor(path, options);
  const engine = new Engine(
    path,
    { bodiesDir, reserveBytes: options.reserveBytes },
    (db) => db.migrate(options.migrations ?? MIGRATIONS, options.now?.()),
  );
  const runner: BatchRunner = {
    runBatch: (ops) => Promise.resolve(engine.runBatch(ops)),
    runAlone: (op) => {
      try {
        return Promise.resolve(engine.call(op));
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
  const exec: Exec = {
    read: (op) => engine.call(op),
    write: new WriteQueue(runner),
    heavy: (op) => runner.runAlone(op),
    close: () => Promise.resolve(engine.close()),
  };
  return buildStore(engine, exec, bodiesDir, options.now ?? Date.now, false, 0);
}

/**
 * Threaded store: this thread migrates on a connection it closes at once, then reads read-only;
 * the writer thread starts at the first write and stops when idle.
 */
export function startSqliteStore(
  path: string,
  options: SqliteStoreOptions = {},
): Promise<SqliteStore> {
  try {
    return Promise.resolve(threadedStore(path, options));
  } catch (err) {
    return Promise.reject(err);
  }
}

function threadedStore(path: string, options: SqliteStoreOptions): SqliteStore {
  const bodiesDir = bodiesDirFor(path, options);
  const now = options.now ?? Date.now;
  const open = {
    path,
    bodiesDir,
    migrations: options.migrations,
    reserveBytes: options.reserveBytes,
  };
  /** Each thread's open. */
  const openFor = (role: "writer" | "reader" | "checkpoint") => {
    const base = { ...open, readOnly: role === "reader", now: now() };
    if (role === "writer") return { ...base, walAutocheckpointBytes: WRITER_CHECKPOINT_BYTES };
    if (role === "checkpoint") return { ...base, checkpoint: true };
    return base;
  };
  // Migrations and the writer's start-up work (body directory, space reserve) run here, before
  // anything is served, on a connection closed at once. Not on a thread started for them: a
  // Worker's isolate left about 11 MB in the process after it ended (idle RSS right after start
  // 77.6-78.4 -> 66.4-66.8 MB, three restarts each), and the relay serves nothing meanwhile.
  new Engine(
    path,
    { bodiesDir, reserveBytes: options.reserveBytes },
    (db) => {
      db.migrate(options.migrations ?? MIGRATIONS, now());
      if (options.soleSender) endAllClaims(db);
    },
  ).close();
  const start = (role: "writer" | "reader") => () => StoreThread.start(role, openFor(role));
  // Started on demand, and again after it died (the database is intact). Writes made while it
  // starts wait in the write queue; a new writer opens only once the old one has closed (one
  // writer connection at a time).
  const writer = new OnDemandThread("writer", start("writer"), {
    idleMs: options.writerIdleMs ?? WRITER_IDLE_MS,
    oneAtATime: true,
  });
  // Heavy reads (op_kinds.ts); readers may overlap, so a new one need not wait for a retired one.
  const reader = new OnDemandThread("reader", start("reader"), { idleMs: READER_IDLE_MS });
  const checkpointer = new Checkpointer(() =>
    StoreThread.start("checkpoint", openFor("checkpoint"))
  );
  /** One request to the writer; what it committed is the checkpointer's to copy. */
  const onWriter = (send: (t: StoreThread) => Promise<unknown>) =>
    writer.use(async (t) => {
      const value = await send(t);
      checkpointer.poke();
      return value;
    });
  const runner: BatchRunner = {
    runBatch: (ops) =>
      onWriter((t) => t.request({ t: "batch", ops })) as Promise<ReturnType<Engine["runBatch"]>>,
    runAlone: (op) => onWriter((t) => t.request({ t: "call", op })),
  };
  const engine = new Engine(path, { bodiesDir, readOnly: true });
  const exec: Exec = {
    threads: () => ({ writer: writer.running, reader: reader.running }),
    read: (op) => engine.call(op),
    write: new WriteQueue(runner),
    heavy: (op) => reader.use((t) => t.request({ t: "call", op })),
    async close() {
      // As before OnDemandThread: the checkpointer's round ends first, then the other two stop.
      await checkpointer.close();
      await Promise.all([writer.close(), reader.close()]);
      engine.close();
    },
  };
  return buildStore(
    engine,
    exec,
    bodiesDir,
    now,
    true,
    options.tinyBytes ?? TINY_DB_BYTES,
    checkpointer.stats,
  );
}

function buildStore(
  engine: Engine,
  exec: Exec,
  bodiesDir: string | null,
  now: () => number,
  threaded: boolean,
  tinyBytes: number,
  checkpointStats: SqliteStore["checkpointStats"] = null,
): SqliteStore {
  const op = (name: string, args: unknown[]): OpCall => ({ name, args, now: now() });
  const read = <T>(name: OpName, args: unknown[]): T => exec.read(op(name, args)) as T;
  // Writes of this process not yet settled (NOOPS may only answer when there are none).
  let pendingWrites = 0;
  const pending = async <T>(run: () => Promise<T>): Promise<T> => {
    pendingWrites++;
    try {
      return await run();
    } finally {
      pendingWrites--;
    }
  };
  const write = async <T>(name: OpName, args: unknown[]): Promise<T> => {
    if (pendingWrites === 0) {
      const noop = (NOOPS[name] as ((a: unknown[], e: Engine) => unknown) | undefined)?.(
        args,
        engine,
      );
      if (noop !== undefined) return noop as T;
    }
    // A body in a slab stays out of reuse until the call that reads it settled (spool.ts).
    const release = leaseBody(args);
    try {
      return await pending(() => exec.write.write(op(name, args)) as Promise<T>);
    } finally {
      release?.();
    }
  };
  const heavy = <T>(name: OpName, args: unknown[]) => exec.heavy(op(name, args)) as Promise<T>;
  const tiny = () =>
    engine.db.get<{ n: number }>(
      "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )!.n <= tinyBytes;
  const store: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(OP_KINDS)) {
    const route = ROUTES[name as OpName] as ((a: unknown[], e: Engine) => boolean) | undefined;
    store[name] = (...args: unknown[]) => {
      try {
        if (kind === "write") return write(name as OpName, args);
        if (
          (kind === "heavy" || (kind === "route" && !route!(args, engine))) && !(threaded && tiny())
        ) {
          return heavy(name as OpName, args);
        }
        return Promise.resolve(read(name as OpName, args));
      } catch (err) {
        return Promise.reject(err);
      }
    };
  }

  // Shared in the threaded store: the writer thread reads a body's slab where it is.
  const slabs = new SlabPool(threaded, INLINE_LIMIT);
  let closing: Promise<void> | null = null;
  const special: Omit<SqliteStore, keyof typeof OP_KINDS> = {
    db: engine.db,
    bodiesDir,
    threaded,
    get threads() {
      return exec.threads?.() ?? { writer: false, reader: false };
    },
    get writeStats() {
      return exec.write.stats;
    },
    checkpointStats,
    createSpool: () => new SqliteSpool(bodiesDir, slabs, () => exec.write.lowSpace),

    async openBody(bodyId: number): Promise<BodyReader | null> {
      let lastFile: string | null = null;
      while (true) {
        const row = read<BodyRow | null>("bodyRow", [bodyId, MAIN_DATA]);
        if (!row) return null;
        const data = row.data ?? await heavy<Uint8Array | null>("bodyData", [bodyId]);
        if (!data) return null;
        if (row.file === null) return new MemoryBodyReader(data, row.structure);
        if (!bodiesDir) throw new Error("A body file without a bodies directory");
        // The row read again still names the file found missing: not a free racing this read
        // (a freed body's row goes in the commit before its file is unlinked) but a lost file.
        if (row.file === lastFile) {
          throw new Error(`Cannot read body ${bodyId}: its file ${row.file} is missing`);
        }
        if (row.size <= INLINE_LIMIT) {
          // A segment body is read whole at once, as an inline one is (no file stays open).
          let bytes;
          try {
            bytes = readSegmentBody(bodiesDir, row.file, data, row.fileOffset, row.size);
          } catch (err) {
            throw new Error(`Cannot read body ${bodyId}: ${(err as Error).message}`, {
              cause: err,
            });
          }
          if (bytes) return new MemoryBodyReader(bytes, row.structure);
          lastFile = row.file;
          continue;
        }
        try {
          const file = await Deno.open(join(bodiesDir, row.file), { read: true });
          // A file cut short is refused here, before a FETCH promises its bytes in a literal
          // that could then not be finished.
          const end = row.fileOffset + row.size - data.length;
          const { size } = await file.stat().catch((err) => {
            file.close();
            throw err;
          });
          if (size < end) {
            file.close();
            throw new Error(
              `Cannot read body ${bodyId}: its file ${row.file} is shorter than its record (${size} of ${end} bytes)`,
            );
          }
          return new FileBodyReader(data, file, row.fileOffset, row.size, row.structure);
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
          // Freed between the row read and the open: the message was expunged meanwhile, or its
          // segment was compacted (the row now names another file; read it again).
          lastFile = row.file;
        }
      }
    },
    readSmallBodies: (ids: number[]) =>
      Promise.resolve(read<Map<number, SmallBody>>("smallBodies", [ids, SMALL_BODIES_BUDGET])),
    async readBody(bodyId: number) {
      const reader = await (store as unknown as Store).openBody(bodyId);
      if (!reader) return null;
      try {
        return await reader.read(0, reader.size);
      } finally {
        await reader.close();
      }
    },

    async freeUnreferencedBodies() {
      let freed = 0;
      for (let after: number | null = 0; after !== null;) {
        const page: { freed: number; next: number | null } = await write(
          "freeUnreferencedBodiesPage",
          [after, 500],
        );
        freed += page.freed;
        after = page.next;
      }
      return freed;
    },

    async sweepBodyFiles(before: number) {
      if (!bodiesDir || !existsSync(bodiesDir)) return 0;
      if (read<boolean>("backupPinned", [])) return 0;
      let removed = 0;
      // Mostly deleted body segments first (segments.ts), one per write, at most COMPACT_STEPS.
      for (let i = 0; i < COMPACT_STEPS; i++) {
        const step = await write<{ moved: number; freed: number } | null>(
          "compactBodySegment",
          [now() - COMPACT_MIN_AGE_MS],
        );
        if (!step) break;
        removed++;
      }
      for (const dir of [bodiesDir, tmpDirOf(bodiesDir)]) {
        const spools = dir !== bodiesDir;
        let names: string[] = [];
        const flush = async () => {
          // A body file is an orphan when no row names it; a spool when nobody finished it.
          const known = spools ? [] : read<string[]>("knownBodyFiles", [names]);
          for (const n of names) {
            if (known.includes(n)) continue;
            await Deno.remove(join(dir, n)).then(() => removed++, () => {});
          }
          names = [];
        };
        for await (const e of Deno.readDir(dir)) {
          if (!e.isFile || !isBodyFileName(e.name)) continue;
          // The change time moves on every write and link: files in use are never old.
          const info = await Deno.stat(join(dir, e.name)).catch(() => null);
          if (!info || (info.ctime?.getTime() ?? now()) >= before) continue;
          names.push(e.name);
          if (names.length >= 200) await flush();
        }
        await flush();
      }
      return removed;
    },

    async backup(path: string) {
      // The snapshot is written beside the file and takes its name once complete: a backup
      // killed part-way (Ctrl-C, kill -9) leaves only FILE.partial, never a FILE that looks
      // finished and restores a database whose bodies are missing. The file exists empty and
      // private before the snapshot goes in (VACUUM INTO accepts it).
      const partial = `${path}.partial`;
      if (await Deno.lstat(path).then(() => true, () => false)) {
        throw new Deno.errors.AlreadyExists(`${path} exists`);
      }
      await Deno.remove(partial).catch(() => {}); // the leftover of an interrupted run
      const f = await Deno.open(partial, { write: true, createNew: true, mode: 0o600 });
      f.close();
      await Deno.chmod(partial, 0o600);
      await write("setBackupPin", [now() + 6 * 3600_000]);
      try {
        await heavy("snapshotInto", [partial, bodiesDir]);
        await Deno.link(partial, path); // never over a file that appeared meanwhile
        await Deno.remove(partial);
      } catch (err) {
        await Deno.remove(partial).catch(() => {});
        throw err;
      } finally {
        await write("setBackupPin", [null]);
      }
    },

    async migrateData(options = {}) {
      const { onProgress, vacuum = "small", signal } = options;
      let bodiesMoved = 0;
      if (bodiesDir && read<boolean>("legacyBodiesPending", [])) {
        const total = await heavy<{ bodies: number }>("countLegacyBodies", []);
        for (let after: number | null = 0; after !== null;) {
          if (signal?.aborted) return { bodiesMoved, vacuumed: false, vacuumPending: false };
          const r: { moved: number; next: number | null } = await write("moveLegacyBodies", [
            after,
            32 << 20,
          ]);
          bodiesMoved += r.moved;
          after = r.next;
          onProgress?.({ step: "bodies", done: bodiesMoved, total: total.bodies });
        }
      }
      let vacuumed = false;
      const mode = read<number>("autoVacuumMode", []);
      const small = engine.db.path === ":memory:" ||
        (existsSync(engine.db.path) && statSync(engine.db.path).size < SMALL_DB_BYTES);
      if (signal?.aborted) return { bodiesMoved, vacuumed: false, vacuumPending: mode !== 2 };
      if (mode !== 2 && (vacuum === "always" || (vacuum === "small" && small))) {
        onProgress?.({ step: "vacuum", done: 0, total: 1 });
        await pending(() => exec.write.alone(op("convertToIncremental", [])));
        onProgress?.({ step: "vacuum", done: 1, total: 1 });
        vacuumed = true;
      }
      return { bodiesMoved, vacuumed, vacuumPending: mode !== 2 && !vacuumed };
    },

    close() {
      closing ??= exec.write.drained().then(() => exec.close());
      return closing;
    },
  };
  Object.defineProperties(store, Object.getOwnPropertyDescriptors(special));
  return store as unknown as SqliteStore;
}
