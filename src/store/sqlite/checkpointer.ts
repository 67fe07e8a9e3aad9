// WAL checkpoints off the writer's path. SQLite's automatic checkpoint runs inside the COMMIT
// that crosses its threshold: that commit copies the WAL's pages into the database file and
// waits for the database file's fsync, and every write queued behind it waits too (measured with
// 100 KB bodies: one batch in five took ~40 ms instead of ~6, half the writer's time). Here a
// thread of its own, on its own connection, runs PASSIVE checkpoints while writes go on: they
// take no write lock, so the writer is never held up. Rounds follow each other while they find
// much to copy and are spaced otherwise. The thread starts only when writes come fast
// (START_COMMITS within a second) and stops when they stop: starting an isolate holds the main
// thread ~20 ms (measured: the benchmark's "wake one user" 250 -> EXISTS went from 6 to 27 ms
// when the first delivery after a pause started it), which a trickle of chat messages should not
// pay; a trickle is served by the writer's own checkpoint below.
//
// Durability does not depend on it: a checkpoint syncs the WAL before it copies and the database
// file after, and SQLite starts the WAL over only once every frame is in the synced database.
// Under steady writes a concurrent checkpoint never finds the WAL fully copied when the writer
// begins (a batch committed during the round), so the WAL would not start over; the writer
// therefore keeps its own automatic checkpoint at a higher threshold (WRITER_CHECKPOINT_BYTES).
// That one copies only the frames written since this thread's last round, and the WAL starts
// over. Without this thread (it failed, or has not started yet) the threshold still bounds the
// WAL.

import type { StoreThread } from "./store_thread.ts";
import { OnDemandThread } from "./on_demand_thread.ts";

/**
 * WAL size at which the writer checkpoints itself (SQLite's default: 1000 frames). It stays
 * within the WAL's size limit (db.ts, 8 MiB), so a WAL that starts over is never cut back and
 * grown again (measured: the cut alone held the writer ~40 ms, and a growing file's syncs must
 * also write its new size). SQLite counts it in frames of one page each: 1800 frames of 4 KiB
 * pages (4120 bytes with their header); Db converts it for the database's page size.
 */
export const WRITER_CHECKPOINT_BYTES = 1800 * 4120;

/** Least time between two checkpoint rounds: each costs two syncs, whatever it copies. */
const INTERVAL_MS = 100;
/** A round that copied this many bytes of pages (128 of 4 KiB) is followed by the next at once. */
const BUSY_BYTES = 128 * 4096;
/** The thread stops after this long without writes (idle memory stays low). */
const IDLE_MS = 30_000;
/** Commits within START_WINDOW_MS that start the thread when it is not running. */
const START_COMMITS = 8;
const START_WINDOW_MS = 1_000;

export interface CheckpointResult {
  /** 1 when another checkpoint was running (the writer's own): this one did nothing. */
  busy: number;
  /** Frames in the WAL, and how many of them are in the database file now. */
  log: number;
  checkpointed: number;
  /** The database's page size (one per frame). */
  pageSize: number;
}

export class Checkpointer {
  /** Started by fast writes, retired after IDLE_MS without a round. */
  #thread: OnDemandThread<StoreThread>;
  /** A write committed since the last round began. */
  #due = false;
  #round: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the next round may start. */
  #nextAt = 0;
  /** Frames in the WAL at the last round. */
  #lastLog = 0;
  #closed = false;
  /** Commits counted since #windowStart, while the thread is not running. */
  #windowStart = 0;
  #windowCommits = 0;
  /** Rounds run, and the last failure (the writer's own checkpoint covers for failed rounds). */
  readonly stats: { rounds: number; failures: number; lastError: string | null } = {
    rounds: 0,
    failures: 0,
    lastError: null,
  };

  constructor(start: () => Promise<StoreThread>) {
    this.#thread = new OnDemandThread("checkpoint", start, {
      idleMs: IDLE_MS,
      onRetireError: (err) => this.#failed(err),
    });
  }

  /**
   * A write committed: a round runs soon (at most one per INTERVAL_MS) when the thread runs or
   * writes come fast enough to start it.
   */
  poke(): void {
    if (this.#closed) return;
    this.#due = true;
    if (!this.#thread.active && !this.#fastWrites()) return;
    this.#schedule();
  }

  #fastWrites(): boolean {
    const now = performance.now();
    if (now - this.#windowStart > START_WINDOW_MS) {
      this.#windowStart = now;
      this.#windowCommits = 0;
    }
    return ++this.#windowCommits >= START_COMMITS;
  }

  #schedule(): void {
    if (!this.#due || this.#round || this.#timer !== undefined || this.#closed) return;
    const wait = Math.max(0, this.#nextAt - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#round = this.#run().finally(() => {
        this.#round = null;
        this.#schedule();
      });
    }, wait);
  }

  async #run(): Promise<void> {
    this.#due = false;
    let copiedBytes = 0;
    try {
      const r = (await this.#thread.use((t) =>
        t.request({ t: "call", op: { name: "walCheckpoint", args: [], now: Date.now() } })
      )) as CheckpointResult;
      this.stats.rounds++;
      if (!r.busy) {
        // Frames added since the last round (all of them when the WAL started over meanwhile).
        copiedBytes = (r.log >= this.#lastLog ? r.log - this.#lastLog : r.log) * r.pageSize;
        this.#lastLog = r.log;
      }
    } catch (err) {
      // Nothing is lost: the WAL keeps the frames, and the writer's own checkpoint bounds it.
      this.#failed(err);
    }
    // Under heavy writes rounds follow each other, so that what is left for the writer's own
    // checkpoint (the frames since the last round) stays small; otherwise they are spaced.
    this.#nextAt = performance.now() + (copiedBytes >= BUSY_BYTES ? 0 : INTERVAL_MS);
  }

  #failed = (err: unknown): void => {
    this.stats.failures++;
    this.stats.lastError = (err as Error)?.message ?? String(err);
  };

  /** Waits for the round under way, then stops the thread. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
    await this.#thread.close();
  }
}
