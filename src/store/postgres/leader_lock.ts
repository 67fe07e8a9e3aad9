// A session-level advisory lock on a connection of its own, so that one instance of several does
// a job that must not run twice at once (the outbound worker keeps its queues in memory). The
// lock lives as long as the connection: when the holder dies (kill -9, a lost machine) the
// server ends its session and the lock is free for the next instance that tries. The holder
// checks now and then that its session still holds it: postgres.js reconnects by itself after a
// dropped connection, and the new session holds nothing.

import { connect, type Sql } from "./connection.ts";

/** First key of tern's session locks ("tern" in ASCII), in the two-integer key space. */
const LOCK_CLASS = 0x7465726e;

/** The jobs that run on one instance at a time (second key). */
export const LEADER_JOBS = { outbound: 1 } as const;

/** A lock statement that has not answered by then fails, and its connection is replaced. */
const STATEMENT_DEADLINE_MS = 5_000;

export class PgLeaderLock {
  #sql: Sql;
  #open: () => Sql;
  #job: number;
  #held = false;

  constructor(url: string, job: keyof typeof LEADER_JOBS, name = "tern") {
    this.#open = () => connect(url, { max: 1, name: `${name} ${job} lock`, lasting: true });
    this.#sql = this.#open();
    this.#job = LEADER_JOBS[job];
  }

  /**
   * Runs one statement within the deadline. A statement that fails or hangs (a connection the
   * server ended, a network that went away) leaves this instance not holding the lock, and the
   * connection is replaced so the next try starts from a fresh session.
   */
  async #run<T>(statement: (sql: Sql) => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        statement(this.#sql),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("the lock's statement did not answer in time")),
            STATEMENT_DEADLINE_MS,
          );
        }),
      ]);
    } catch (err) {
      const old = this.#sql;
      this.#sql = this.#open();
      old.end({ timeout: 0 }).catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether this instance held the lock at the last look. */
  get held(): boolean {
    return this.#held;
  }

  /**
   * Takes the lock if it is free, or checks that this session still holds it; true while held.
   * A failed statement (the database unreachable) counts as not held and is thrown.
   */
  async acquire(): Promise<boolean> {
    try {
      if (this.#held) {
        const [r] = await this.#run((sql) =>
          sql<{ n: number }[]>`
          SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'
            AND pid = pg_backend_pid() AND classid = ${LOCK_CLASS}::oid
            AND objid = ${this.#job}::oid AND objsubid = 2 AND granted`
        );
        this.#held = r.n > 0;
      } else {
        const [r] = await this.#run((sql) =>
          sql<{ ok: boolean }[]>`
          SELECT pg_try_advisory_lock(${LOCK_CLASS}::int, ${this.#job}::int) AS ok`
        );
        this.#held = r.ok;
      }
    } catch (err) {
      this.#held = false;
      throw err;
    }
    return this.#held;
  }

  /** Gives the lock up by ending the session (another instance may take it at once). */
  async close(): Promise<void> {
    this.#held = false;
    await this.#sql.end({ timeout: 5 });
  }
}
