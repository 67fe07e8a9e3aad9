// SMTP connection caching (as Postfix's scache): after a message, the session waits a few
// seconds for the next one to the same peer instead of saying QUIT; it ends after a number of
// messages or an age, and QUIT is only sent once it has been idle that long.

import type { AttemptBudget } from "./deadlines.ts";
import { SmtpSession, type SmtpTarget } from "./smtp_client.ts";
import { TransportError } from "./conn.ts";

export interface SmtpPoolOptions {
  /** How long an idle session waits for the next message before QUIT. */
  idleMs?: number;
  /** Messages per session. */
  maxMessages?: number;
  /** A session is not reused after this age. */
  maxAgeMs?: number;
  /** Idle sessions kept per peer. */
  maxIdlePerPeer?: number;
}

interface Idle {
  session: SmtpSession;
  timer: ReturnType<typeof setTimeout>;
}

export class SmtpPool {
  #idle = new Map<string, Idle[]>();
  #all = new Set<SmtpSession>();
  #quits = new Set<Promise<void>>();
  #o: Required<SmtpPoolOptions>;
  #closed = false;
  /** Sessions opened so far. */
  opened = 0;

  constructor(options: SmtpPoolOptions = {}) {
    this.#o = {
      idleMs: options.idleMs ?? 5_000,
      maxMessages: options.maxMessages ?? 100,
      maxAgeMs: options.maxAgeMs ?? 300_000,
      maxIdlePerPeer: options.maxIdlePerPeer ?? 20,
    };
  }

  static key(t: SmtpTarget): string {
    return `${t.address}|${t.port}|${t.servername}|${t.insecure ? 1 : 0}|${t.heloName}`;
  }

  /** An idle session to the peer, or a new one. */
  async acquire(t: SmtpTarget, budget: AttemptBudget): Promise<{
    session: SmtpSession;
    reused: boolean;
  }> {
    const list = this.#idle.get(SmtpPool.key(t));
    while (list?.length) {
      const { session, timer } = list.pop()!;
      clearTimeout(timer);
      if (session.usable) return { session, reused: true };
      this.#forget(session);
    }
    const session = await SmtpSession.open(t, budget);
    this.opened++;
    if (this.#closed) {
      session.destroy();
      throw new TransportError("Outbound delivery is stopping", "closed");
    }
    this.#all.add(session);
    return { session, reused: false };
  }

  /** Gives a session back after a transaction: kept for the next message, or ended. */
  release(t: SmtpTarget, session: SmtpSession): void {
    const o = this.#o;
    const worn = session.transactions >= o.maxMessages ||
      performance.now() - session.openedAt >= o.maxAgeMs;
    const key = SmtpPool.key(t);
    let list = this.#idle.get(key);
    if (this.#closed || !session.usable || worn || (list?.length ?? 0) >= o.maxIdlePerPeer) {
      return this.#quit(session);
    }
    if (!list) this.#idle.set(key, list = []);
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const l = this.#idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (i >= 0) l!.splice(i, 1);
        if (l?.length === 0) this.#idle.delete(key);
        this.#quit(session);
      }, o.idleMs),
    };
    list.push(entry);
  }

  /** A session that failed: closed without QUIT. */
  discard(session: SmtpSession): void {
    session.destroy();
    this.#forget(session);
  }

  #quit(session: SmtpSession) {
    const p = session.quit().finally(() => {
      this.#quits.delete(p);
      this.#forget(session);
    });
    this.#quits.add(p);
  }

  #forget(session: SmtpSession) {
    this.#all.delete(session);
  }

  /** Sessions open now (idle or in use). */
  get size(): number {
    return this.#all.size;
  }

  /** QUIT to idle sessions, sessions in use are cut (their delivery fails and is retried). */
  async close(): Promise<void> {
    this.#closed = true;
    const idle = new Set<SmtpSession>();
    for (const list of this.#idle.values()) {
      for (const { session, timer } of list) {
        clearTimeout(timer);
        idle.add(session);
        this.#quit(session);
      }
    }
    this.#idle.clear();
    for (const s of this.#all) if (!idle.has(s)) s.destroy();
    await Promise.all([...this.#quits]);
    this.#all.clear();
  }
}
