// PostgreSQL implementation of the store, for several tern instances sharing one database
// (README "Growing beyond one machine"). The same use-case interface as SQLite (types.ts) and the
// same contract suite; the differences are where things run:
//  - reads go to a connection pool (any connection: a write's promise resolves after COMMIT,
//    so a later read sees it);
//  - writes are grouped per instance (write_batch.ts: one transaction, a SAVEPOINT each, advisory
//    locks taken in one order so instances do not deadlock);
//  - large bodies are chunked blobs in the database (bodies.ts, spool.ts), reachable from every
//    instance; nothing of the store lives on the instance's disk.
// Only src/app and src/cli use this module (scripts/check_layers.ts).

import { RelayError } from "../../errors.ts";
import type { BodyReader, SmallBody, Store } from "../types.ts";
import { MemoryBodyReader } from "../sqlite/body_reader.ts";
import { connect, redactUrl, type Sql } from "./connection.ts";
import { migrate, type Migration, PG_MIGRATIONS } from "./migrations.ts";
import { WriteBatcher } from "./write_batch.ts";
import type { KeyContext, MethodsOf, OpDef } from "./op.ts";
import { accountOps } from "./account_ops.ts";
import { mailOps } from "./mail_ops.ts";
import { queryOps } from "./mail_queries.ts";
import { miscOps } from "./misc_ops.ts";
import { queueOps } from "./queue_ops.ts";
import { spaceOps } from "./space_ops.ts";
import { bodyRow, INLINE_LIMIT, smallBodies } from "./bodies.ts";
import { BlobBodyReader } from "./body_reader.ts";
import { PgSpool } from "./spool.ts";
import { PgSharedState } from "./shared_state.ts";
import { type ChannelReceiver, PgEventChannel } from "./event_channel.ts";
import { LEADER_JOBS, PgLeaderLock } from "./leader_lock.ts";

export { PG_MIGRATIONS, PgMigrationError } from "./migrations.ts";
export { redactUrl } from "./connection.ts";
export { ImportError, importSqlite } from "./import_sqlite.ts";
export type { ImportProgress, ImportReport } from "./import_sqlite.ts";
export type { LoginThrottleParams, PgSharedState } from "./shared_state.ts";
export type { ChannelReceiver, PgEventChannel } from "./event_channel.ts";
export type { PgLeaderLock } from "./leader_lock.ts";

const OPS = { ...accountOps, ...mailOps, ...queryOps, ...miscOps, ...queueOps, ...spaceOps };
type Ops = typeof OPS;

/** Bytes of small bodies one readSmallBodies call returns at most. */
const SMALL_BODIES_BUDGET = 1 << 20;
const SWEEP_PAGE = 500;

export interface PostgresStoreOptions {
  migrations?: readonly Migration[];
  now?: () => number;
  /** Pool size for reads and writes (default 10); spools use a few more connections. */
  poolSize?: number;
  /** application_name of the connections (instances tell themselves apart in pg_stat_activity). */
  name?: string;
  /**
   * How far the database's clock is ahead of `now` (ms), instead of measuring it (DbClockOffset):
   * tests whose instances script one time to the millisecond give them the same figure.
   */
  clockOffsetMs?: number;
}

export interface PostgresStore extends Store, MethodsOf<Pick<Ops, "claimPushJobs">> {
  readonly kind: "postgres";
  /** The pool (shared-state helpers and the event bridge run their statements on it). */
  readonly sql: Sql;
  /** The database as shown to people (no password). */
  readonly where: string;
  readonly writeStats: { batches: number; ops: number; retries: number };
  /** Decisions instances share: send rate, login throttle, creations, task runs. */
  readonly shared: PgSharedState;
  /** A LISTEN/NOTIFY bridge for the event bus (start() it; the store's close() closes it). */
  eventChannel(options: {
    instance: string;
    receiver: ChannelReceiver;
    onError?: (err: unknown) => void;
  }): PgEventChannel;
  /** A session-level lock on a connection of its own: one instance at a time does `job`. */
  leaderLock(job: keyof typeof LEADER_JOBS): PgLeaderLock;
}

/** Connects, migrates (one instance at a time) and returns the store. */
export async function startPostgresStore(
  url: string,
  options: PostgresStoreOptions = {},
): Promise<PostgresStore> {
  const where = redactUrl(url);
  const name = options.name ?? "tern";
  const sql = connect(url, { max: options.poolSize ?? 10, name });
  // Spooled chunks commit asynchronously (spool.ts explains why that is durable enough).
  const bulk = connect(url, { max: 4, name: `${name} spool`, asyncCommit: true });
  const now = options.now ?? Date.now;
  const offset = new DbClockOffset(sql, now, options.clockOffsetMs);
  try {
    await migrate(sql, where, options.migrations ?? PG_MIGRATIONS, options.now?.());
    await offset.measure();
  } catch (err) {
    await Promise.all([sql.end({ timeout: 1 }), bulk.end({ timeout: 1 })]);
    throw connectError(err, where);
  }
  return buildStore(
    sql,
    bulk,
    where,
    now,
    offset,
    (job) => new PgLeaderLock(url, job, name),
  );
}

/** A look at the database's clock again after this long (while the store is used). */
const CLOCK_CHECK_MS = 60_000;
/** A new offset is taken only past this change (the clock was set), not for the noise. */
const CLOCK_STEP_MS = 1_000;

/**
 * How far the database's clock is ahead of this instance's, for claim leases (queue_ops.ts) and
 * push jobs (misc_ops.ts): instances' clocks may differ, and a lease timed on one of them let
 * another instance send the same message or push again, or never take over a dead one's. Measured at start (the middle of the query's
 * round trip), looked at again once a minute while the store is used, and changed only when it
 * moved by more than a second (this clock was set). One figure for a while, not each
 * statement's own clock: the reads of one look at the queue (the due recipients, then the next
 * time to look) must agree on which claims have ended, or a claim ending between them leaves
 * its recipient in neither, never looked at again. Times scripted by a caller (tests) hold as
 * they are: the offset cancels out.
 */
class DbClockOffset {
  ms = 0;
  #known = false;
  #checkedAt = 0;
  #checking: Promise<void> | null = null;

  constructor(readonly sql: Sql, readonly now: () => number, readonly fixed?: number) {
    if (fixed !== undefined) this.ms = fixed;
  }

  async measure(): Promise<void> {
    if (this.fixed !== undefined) return;
    const before = this.now();
    const [r] = await this.sql<{ t: number }[]>`
      SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t`;
    const after = this.now();
    const ms = Math.round(r.t - (before + after) / 2);
    this.#checkedAt = after;
    if (!this.#known || Math.abs(ms - this.ms) > CLOCK_STEP_MS) this.ms = ms;
    this.#known = true;
  }

  /** With each operation: a look again in the background once the last is a minute old. */
  check(at: number): void {
    if (this.fixed !== undefined || this.#checking || at - this.#checkedAt < CLOCK_CHECK_MS) return;
    this.#checkedAt = at;
    this.#checking = this.measure().catch(() => {}).finally(() => (this.#checking = null));
  }

  settled(): Promise<void> {
    return this.#checking ?? Promise.resolve();
  }
}

/** A connection failure says which database could not be reached, without its password. */
function connectError(err: unknown, where: string): unknown {
  const code = (err as { code?: string })?.code ?? "";
  if (
    /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|CONNECT_TIMEOUT|28P01|28000|3D000)$/.test(code)
  ) {
    return new Error(`Cannot connect to PostgreSQL at ${where}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return err;
}

function buildStore(
  sql: Sql,
  bulk: Sql,
  where: string,
  now: () => number,
  offset: DbClockOffset,
  newLock: (job: keyof typeof LEADER_JOBS) => PgLeaderLock,
): PostgresStore {
  const writes = new WriteBatcher(sql);
  const accounts = new Map<number, number>();
  const ctx: KeyContext = {
    async accountOf(mailboxId) {
      const known = accounts.get(mailboxId);
      if (known !== undefined) return known;
      const [r] = await sql<{ a: number }[]>`
        SELECT account_id AS a FROM mailboxes WHERE id = ${mailboxId}`;
      // A missing mailbox needs no lock: the operation finds nothing (or says so) itself.
      if (!r) return 0;
      if (accounts.size > 100_000) accounts.clear();
      accounts.set(mailboxId, r.a);
      return r.a;
    },
    async accountsOf(addresses) {
      if (addresses.length === 0) return [];
      const rows = await sql<{ id: number }[]>`
        SELECT id FROM accounts WHERE address = ANY(${addresses}::text[])`;
      return rows.map((r) => r.id);
    },
  };
  const call = (name: string, def: OpDef, args: unknown[]): Promise<unknown> => {
    const at = now();
    offset.check(at);
    const env = { now: () => at, clockOffset: () => offset.ms };
    if (def.kind === "read") return def.run(sql, env, ...(args as never[]));
    let keys: Promise<string[]> | null = null;
    if (def.kind === "write") {
      try {
        keys = Promise.resolve(def.keys(ctx, args));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return writes.add({ name, run: def.run, args, env, keys });
  };
  const store: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(OPS) as [string, OpDef][]) {
    store[name] = (...args: unknown[]) => call(name, def, args);
  }

  let closing: Promise<void> | null = null;
  const shared = new PgSharedState(bulk);
  const channels: PgEventChannel[] = [];
  const locks: PgLeaderLock[] = [];
  const special: Omit<PostgresStore, keyof Ops> = {
    kind: "postgres",
    sql,
    where,
    get writeStats() {
      return writes.stats;
    },
    shared,
    eventChannel(options) {
      const channel = new PgEventChannel({ sql, notify: bulk, ...options });
      channels.push(channel);
      return channel;
    },
    leaderLock(job) {
      const lock = newLock(job);
      locks.push(lock);
      return lock;
    },
    createSpool: () => new PgSpool(bulk, now),
    async openBody(bodyId: number): Promise<BodyReader | null> {
      const row = await bodyRow(sql, bodyId);
      if (!row) return null;
      if (row.blobId === null) return new MemoryBodyReader(row.data, row.structure);
      return new BlobBodyReader(sql, row.data, row.blobId, row.blobOffset, row.size, row.structure);
    },
    readSmallBodies: (ids: number[]): Promise<Map<number, SmallBody>> =>
      smallBodies(sql, ids, SMALL_BODIES_BUDGET, INLINE_LIMIT),
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
        const page = await call("freeUnreferencedBodiesPage", OPS.freeUnreferencedBodiesPage, [
          after,
          500,
        ]) as { freed: number; next: number | null };
        freed += page.freed;
        after = page.next;
      }
      return freed;
    },
    async sweepBodyFiles(before: number) {
      let removed = 0;
      for (;;) {
        const n = await call("sweepBlobs", OPS.sweepBlobs, [before, SWEEP_PAGE]) as number;
        removed += n;
        if (n < SWEEP_PAGE) return removed;
      }
    },
    backup(_path: string) {
      return Promise.reject(
        new RelayError(
          "invalid_argument",
          "A PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump, or base backups with WAL archiving), not `tern backup`",
        ),
      );
    },
    close() {
      closing ??= writes.drained().then(async () => {
        await Promise.all(channels.map((c) => c.close()));
        await Promise.all(locks.map((l) => l.close()));
        await shared.settled();
        await offset.settled();
        await Promise.all([sql.end({ timeout: 5 }), bulk.end({ timeout: 5 })]);
      });
      return closing;
    },
  };
  Object.defineProperties(store, Object.getOwnPropertyDescriptors(special));
  return store as unknown as PostgresStore;
}

// The op tables give every Store method with the Store's signature (checked here at compile
// time): what the Store needs beyond them is in `special` above.
type Check<T extends Partial<Store>> = T;
export type _OpsMatchStore = Check<
  MethodsOf<Omit<Ops, "freeUnreferencedBodiesPage" | "sweepBlobs" | "claimPushJobs">>
>;
