// A store thread started on first use and retired after it has been idle a while: the writer and
// the reader for heavy reads (mod.ts), the checkpoint thread (checkpointer.ts). An idle relay
// then holds none of their isolates (the writer's is about 15 MB), and one in use pays a start
// only after a pause.
//
// Invariants:
//  - A thread is retired only when no use is under way: a use disarms the idle timer when it
//    begins and the last use to settle arms it again. A retire never drops a request in flight.
//  - Uses that begin while a thread starts share that start (one thread, never two). A use that
//    begins while a thread is being retired starts a new one; with `oneAtATime` (the writer: one
//    write connection at a time) the new one starts only once the retired one has closed.
//  - A thread that died (`alive` false: out of memory, a bug) is replaced at the next use.
//  - close() refuses uses that begin after it (they fail with "store closed"), waits for a start
//    under way, then closes the thread at once. It does not wait for the uses under way: their
//    requests are posted before the close request and a StoreThread answers in order (worker.ts);
//    anything still unanswered fails with "store <name> thread closed" (store_thread.ts), so a
//    request that never settles cannot hold the shutdown. The store drains its writes before it
//    closes, so the writer has none then.

/** What OnDemandThread needs of a thread (StoreThread). */
export interface Retirable {
  readonly alive: boolean;
  close(): Promise<void>;
}

export interface OnDemandOptions {
  /** The thread is retired after this long without a use under way. */
  idleMs: number;
  /** A new thread starts only once the retired one has closed (default: at once). */
  oneAtATime?: boolean;
  /** A retired thread's close failed (it is gone either way); default: counted in stats. */
  onRetireError?: (err: unknown) => void;
  /** Tests: a fake clock. */
  timers?: {
    set(fn: () => void, ms: number): unknown;
    clear(id: unknown): void;
  };
}

export class OnDemandThread<T extends Retirable> {
  readonly name: string;
  /** Threads started and retired (after idle) so far, and the last retire's failure. */
  readonly stats: { starts: number; retires: number; lastRetireError: string | null } = {
    starts: 0,
    retires: 0,
    lastRetireError: null,
  };
  #start: () => Promise<T>;
  #idleMs: number;
  #oneAtATime: boolean;
  #onRetireError: (err: unknown) => void;
  #set: (fn: () => void, ms: number) => unknown;
  #clear: (id: unknown) => void;
  #thread: T | null = null;
  #starting: Promise<T> | null = null;
  /** The last retired thread's close (oneAtATime starts wait for it; close() too). */
  #retiring: Promise<void> = Promise.resolve();
  /** Uses under way. */
  #busy = 0;
  #timer: unknown;
  #closing: Promise<void> | null = null;

  constructor(name: string, start: () => Promise<T>, options: OnDemandOptions) {
    this.name = name;
    this.#start = start;
    this.#idleMs = options.idleMs;
    this.#oneAtATime = options.oneAtATime ?? false;
    this.#onRetireError = options.onRetireError ?? (() => {});
    this.#set = options.timers?.set ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clear = options.timers?.clear ?? ((id) => clearTimeout(id as number | undefined));
  }

  /** The thread runs now (started and not dead, retired or closed). */
  get running(): boolean {
    return !!this.#thread?.alive;
  }

  /** The thread runs or is starting. */
  get active(): boolean {
    return this.running || this.#starting !== null;
  }

  /**
   * Runs `fn` with the thread, started first when none runs; the thread is not retired before
   * `fn` has settled.
   */
  async use<R>(fn: (thread: T) => Promise<R>): Promise<R> {
    if (this.#closing) throw new Error(`store closed: no ${this.name} thread after close()`);
    this.#clear(this.#timer);
    this.#timer = undefined;
    this.#busy++;
    try {
      return await fn(await this.#ensure());
    } finally {
      if (--this.#busy === 0 && !this.#closing) {
        this.#timer = this.#set(() => this.#retire(), this.#idleMs);
      }
    }
  }

  #ensure(): Promise<T> {
    if (this.#thread?.alive) return Promise.resolve(this.#thread);
    this.#starting ??= (this.#oneAtATime ? this.#retiring.then(() => this.#start()) : this.#start())
      .then((t) => {
        this.stats.starts++;
        return (this.#thread = t);
      })
      .finally(() => (this.#starting = null));
    return this.#starting;
  }

  #retire(): void {
    this.#timer = undefined;
    // The timer is disarmed whenever a use begins; this holds by construction.
    if (this.#busy > 0 || this.#closing) return;
    const t = this.#thread;
    this.#thread = null;
    if (!t) return;
    this.stats.retires++;
    this.#retiring = t.close().catch((err) => {
      this.stats.lastRetireError = (err as Error)?.message ?? String(err);
      this.#onRetireError(err);
    });
  }

  /**
   * Refuses new uses, waits for a start under way (the uses waiting for it post their requests
   * first), then closes the thread. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#clear(this.#timer);
      this.#timer = undefined;
      await this.#starting?.catch(() => null);
      // Only a oneAtATime thread's retire is waited for (the next start waits for it too).
      if (this.#oneAtATime) await this.#retiring;
      const t = this.#thread;
      this.#thread = null;
      await t?.close();
    })();
    return this.#closing;
  }
}
