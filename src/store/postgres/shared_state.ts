// State that instances sharing one database must agree on, which a single SQLite process keeps
// in memory: the send rate per sender, the login throttle, just-in-time account creations per
// client address and which instance runs a scheduled task. Each decision is one statement (or
// one short transaction) so two instances deciding at once see each other; none of it is worth
// a WAL flush (synchronous_commit off: after a database crash a limit may start afresh).

import type postgres from "postgres";
import type { Sql } from "./connection.ts";
import { lockKey } from "./write_batch.ts";

/** Rows past their use are deleted at most this often per instance. */
const PRUNE_EVERY_MS = 10 * 60_000;

export interface LoginThrottleParams {
  freeFailures: number;
  windowMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxWaitMs: number;
  trustMs: number;
}

export class PgSharedState {
  #sql: Sql;
  /** When each kind of row was last pruned (this process's clock). */
  #pruned = new Map<string, number>();
  #pruning = new Set<Promise<unknown>>();

  /** `sql`: a pool with asynchronous commit. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /**
   * GCRA on the database's clock (instances' clocks may differ): one more message for `key`
   * when its theoretical arrival time minus the tolerance is not in the future.
   */
  async takeSendRate(
    key: string,
    intervalMs: number,
    toleranceMs: number,
  ): Promise<{ allowed: boolean; retryAfterMs: number }> {
    this.#prune(
      "send_rate",
      (tx) => tx`DELETE FROM send_rate WHERE tat < extract(epoch FROM clock_timestamp()) * 1000`,
    );
    const [r] = await this.#sql<{ taken: number | null; earliest: number | null }[]>`
      WITH now AS (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t),
      up AS (
        INSERT INTO send_rate AS s (key, tat) SELECT ${key}, now.t + ${intervalMs} FROM now
        ON CONFLICT (key) DO UPDATE SET tat = GREATEST(s.tat, (SELECT t FROM now)) + ${intervalMs}
        WHERE GREATEST(s.tat, (SELECT t FROM now)) - ${toleranceMs} <= (SELECT t FROM now)
        RETURNING tat)
      SELECT (SELECT tat FROM up) AS taken,
        (SELECT GREATEST(s.tat, now.t) - ${toleranceMs} - now.t FROM send_rate s, now
          WHERE s.key = ${key}) AS earliest`;
    if (r.taken !== null) return { allowed: true, retryAfterMs: 0 };
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(r.earliest ?? 1)) };
  }

  /**
   * The login throttle's admission (auth/login_throttle.ts has the rules): the wait before the
   * attempt, or refused; an admitted attempt takes its slot in both keys at once.
   */
  async loginAdmit(
    ip: string,
    account: string,
    now: number,
    p: LoginThrottleParams,
  ): Promise<{ wait: number } | { refused: true; retryAfterMs: number }> {
    // On the callers' clock (injected in tests), as every other time in these rows.
    this.#prune("login", async (tx) => {
      await tx`DELETE FROM login_trust WHERE until < ${now}`;
      // Failures older than a day are past any window the throttle is configured with.
      await tx`DELETE FROM login_failures WHERE since < ${now - 86_400_000}`;
    });
    const [r] = await this.#sql<{ trusted: boolean; wait: number }[]>`
      WITH t AS (SELECT 1 FROM login_trust WHERE pair = ${pair(ip, account)} AND until > ${now}),
      s AS (
        SELECT key, next_at,
          login_delay(failures, ${p.freeFailures}, ${p.baseDelayMs}, ${p.maxDelayMs}) AS delay
        FROM login_failures
        WHERE key IN (${"ip " + ip}, ${"acct " + account}) AND ${now} - since <= ${p.windowMs}
        FOR UPDATE),
      st AS (
        SELECT GREATEST(${now}::bigint, COALESCE(max(next_at) FILTER (WHERE delay > 0),
          ${now}::bigint)) AS start FROM s),
      up AS (
        UPDATE login_failures f SET next_at = st.start + s.delay FROM s, st
        WHERE f.key = s.key AND NOT EXISTS (SELECT 1 FROM t)
          AND st.start - ${now} <= ${p.maxWaitMs})
      SELECT EXISTS (SELECT 1 FROM t) AS trusted, (SELECT start FROM st) - ${now} AS wait`;
    if (r.trusted) return { wait: 0 };
    if (r.wait > p.maxWaitMs) return { refused: true, retryAfterMs: r.wait };
    return { wait: r.wait };
  }

  async loginFailure(ip: string, account: string, now: number, p: LoginThrottleParams) {
    await this.#sql`
      WITH d AS (DELETE FROM login_trust WHERE pair = ${pair(ip, account)})
      INSERT INTO login_failures AS f (key, failures, since, next_at)
      SELECT k, 1, ${now}, ${now} + login_delay(1, ${p.freeFailures}, ${p.baseDelayMs},
        ${p.maxDelayMs})
      FROM unnest(${["ip " + ip, "acct " + account]}::text[]) AS k
      ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN ${now} - f.since > ${p.windowMs} THEN 1 ELSE f.failures + 1 END,
        since = CASE WHEN ${now} - f.since > ${p.windowMs} THEN ${now} ELSE f.since END,
        next_at = GREATEST(
          CASE WHEN ${now} - f.since > ${p.windowMs} THEN ${now} ELSE f.next_at END,
          ${now} + login_delay(
            CASE WHEN ${now} - f.since > ${p.windowMs} THEN 1 ELSE f.failures + 1 END,
            ${p.freeFailures}, ${p.baseDelayMs}, ${p.maxDelayMs}))`;
  }

  /** The pair is trusted for trustMs (written again only when a day of it has passed). */
  async loginSuccess(ip: string, account: string, now: number, p: LoginThrottleParams) {
    await this.#sql`
      INSERT INTO login_trust AS t (pair, until) VALUES (${pair(ip, account)}, ${now + p.trustMs})
      ON CONFLICT (pair) DO UPDATE SET until = excluded.until
      WHERE t.until < excluded.until - 86400000`;
  }

  async loginFailures(key: string, now: number, windowMs: number): Promise<number> {
    const [r] = await this.#sql<{ n: number }[]>`
      SELECT failures AS n FROM login_failures WHERE key = ${key} AND ${now} - since <= ${windowMs}`;
    return r?.n ?? 0;
  }

  /**
   * Counts one just-in-time creation from `ip` when fewer than `max` happened in the hour before
   * `now` (one transaction per address at a time).
   */
  async takeCreation(ip: string, max: number, now: number): Promise<boolean> {
    this.#prune(
      "creations",
      (tx) => tx`DELETE FROM account_creations WHERE at < ${now - 3600_000}`,
    );
    return await this.#sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${lockKey(`jit:${ip}`)})`;
      const [r] = await tx<{ n: number }[]>`
        SELECT count(*) AS n FROM account_creations WHERE ip = ${ip} AND at > ${now - 3600_000}`;
      if (r.n >= max) return false;
      await tx`INSERT INTO account_creations (ip, at) VALUES (${ip}, ${now})`;
      return true;
    }) as boolean;
  }

  /**
   * Claims a scheduled task's run: true for exactly one instance per `periodMs` (the one that
   * asks first once the last start is that old).
   */
  async claimTask(name: string, instance: string, now: number, periodMs: number) {
    const rows = await this.#sql`
      INSERT INTO task_runs AS r (name, started_at, instance) VALUES (${name}, ${now}, ${instance})
      ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at,
        instance = excluded.instance
      WHERE r.started_at <= ${now - periodMs}
      RETURNING name`;
    return rows.length > 0;
  }

  /**
   * Deletes rows of one kind that no decision needs any more: at most every few minutes per
   * kind and instance, in the background, on the clock of the call that triggered it.
   */
  #prune(kind: string, work: (tx: postgres.TransactionSql) => Promise<unknown>) {
    const t = Date.now();
    if (t - (this.#pruned.get(kind) ?? 0) < PRUNE_EVERY_MS) return;
    this.#pruned.set(kind, t);
    const p = this.#sql.begin(work).catch(() => {
      // Best effort: the next call tries again; nothing depends on these rows being gone.
      this.#pruned.delete(kind);
    }).finally(() => this.#pruning.delete(p));
    this.#pruning.add(p);
  }

  /** Resolves when background pruning has finished (closing the store waits for it). */
  settled(): Promise<unknown> {
    return Promise.all([...this.#pruning]);
  }
}

function pair(ip: string, account: string): string {
  return `${ip}\n${account}`;
}
